"""M3T dataset files: round trip with the embedded data, optional modalities, and one clear error per mistake."""

from __future__ import annotations

import ast
import pathlib

import h5py
import numpy as np
import pytest
import torch

import traces.m3t_dataset
from models import TASKS, m3t_data_from_arrays, make_m3t_dataset
from models.data import VOCAB
from traces import OutputExistsError
from traces.m3t_dataset import DatasetFileError, M3TArrays, read_m3t_dataset, write_m3t_dataset


def _embedded_arrays(n: int = 12) -> M3TArrays:
    data = make_m3t_dataset(n, seed=0)
    return M3TArrays(
        image=data.image.numpy(),
        text=data.text.numpy(),
        sensor=data.sensor.numpy(),
        labels={task: y.numpy() for task, y in data.labels.items()},
        n_classes=dict(TASKS),
        vocab=VOCAB,
    )


def test_round_trip_of_the_embedded_data_gives_the_same_m3t_data(tmp_path: pathlib.Path) -> None:
    path = write_m3t_dataset(tmp_path / "m3t.h5", _embedded_arrays())
    back = read_m3t_dataset(path)
    assert back.vocab == VOCAB and back.n_classes == TASKS and len(back) == 12
    data, original = m3t_data_from_arrays(back.image, back.text, back.sensor, back.labels), make_m3t_dataset(12, seed=0)
    for name in ("image", "text", "sensor"):
        assert torch.equal(getattr(data, name), getattr(original, name)), name
    for task, y in original.labels.items():
        assert torch.equal(data.labels[task], y) and data.labels[task].dtype == y.dtype, task


def test_modalities_are_optional(tmp_path: pathlib.Path) -> None:
    full = _embedded_arrays()
    arrays = M3TArrays(image=full.image, text=None, sensor=None, labels={"shape": full.labels["shape"]},
                       n_classes={"shape": 4}, vocab=VOCAB)  # fmt: skip
    back = read_m3t_dataset(write_m3t_dataset(tmp_path / "image-only.h5", arrays))
    assert back.modalities == ("image",) and back.text is None and back.vocab is None
    assert m3t_data_from_arrays(back.image, back.text, back.sensor, back.labels).modalities == ("image",)


def test_existing_file_needs_force(tmp_path: pathlib.Path) -> None:
    path = write_m3t_dataset(tmp_path / "d.h5", _embedded_arrays(3))
    with pytest.raises(OutputExistsError, match="--force"):
        write_m3t_dataset(path, _embedded_arrays(4))
    write_m3t_dataset(path, _embedded_arrays(4), force=True)
    assert len(read_m3t_dataset(path)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]  # no temporary file left


def _write_raw(path: pathlib.Path, edit) -> pathlib.Path:
    """The embedded data written, then changed in place by ``edit(file)``."""
    write_m3t_dataset(path, _embedded_arrays(6))
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def _replace(name: str, value) -> callable:
    """An edit putting ``value`` at ``name``, keeping the old dataset's attributes."""

    def edit(f: h5py.File) -> None:
        attrs = dict(f[name].attrs)
        del f[name]
        f[name] = value
        f[name].attrs.update(attrs)

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_replace("image", np.zeros((6, 3, 16, 8), np.float32)), r"/image must have shape \(n, 3, H, H\)"),
        (_replace("image", np.zeros((6, 16, 16), np.float32)), r"/image must have shape"),
        (_replace("sensor", np.zeros((5, 32), np.float32)), r"disagree on the sample count.*'/sensor': 5"),
        (_replace("labels/vqa", np.arange(5)), r"disagree on the sample count"),
        (_replace("sensor", np.full((6, 32), np.nan, np.float32)), r"/sensor has non-finite"),
        (_replace("text", np.full((6, 6), 12)), r"/text ids must be in \[0, 12\)"),
        (_replace("text", np.zeros((6, 6), np.float32)), r"/text must be integer token ids"),
        (_replace("labels/shape", np.array([0, 1, 2, 3, 4, 0])), r"/labels/shape labels must be in \[0, 4\)"),
        (_replace("labels/shape", np.array([0, 1, 2, 3, -1, 0])), r"/labels/shape labels must be in \[0, 4\)"),
        (lambda f: f["labels/vqa"].attrs.__delitem__("n_classes"), r"/labels/vqa .* needs the attribute n_classes"),
        (_replace("labels/size", np.array([0.0, 1, 2, np.inf, 4, 5])), r"/labels/size has non-finite"),
        (lambda f: f["labels/size"].attrs.__setitem__("n_classes", 3), r"/labels/size holds floats"),
        (lambda f: f.attrs.__delitem__("vocab"), r"/text needs the root attribute vocab"),
        (lambda f: f.attrs.__setitem__("format", "something"), r"not an M3T dataset file"),
        (lambda f: f.attrs.__setitem__("version", 2), r"version 2 is not supported"),
        (lambda f: [f.__delitem__(m) for m in ("image", "text", "sensor")], r"no input"),
        (lambda f: f.__delitem__("labels"), r"/labels .* is missing"),
        (lambda f: [f["labels"].__delitem__(t) for t in list(f["labels"])], r"no labels"),
        (lambda f: [f.__delitem__("image"), f.create_group("image")], r"/image must be a dataset"),
    ],
)
def test_layout_mistakes_name_the_file_the_dataset_and_the_problem(tmp_path: pathlib.Path, edit, message) -> None:
    path = _write_raw(tmp_path / "bad.h5", edit)
    with pytest.raises(DatasetFileError, match=message) as error:
        read_m3t_dataset(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_missing_and_non_hdf5_files(tmp_path: pathlib.Path) -> None:
    with pytest.raises(DatasetFileError, match="no such M3T dataset file"):
        read_m3t_dataset(tmp_path / "missing.h5")
    (tmp_path / "notes.txt").write_text("not hdf5")
    with pytest.raises(DatasetFileError, match="not a readable HDF5 file"):
        read_m3t_dataset(tmp_path / "notes.txt")
    assert issubclass(DatasetFileError, ValueError)


def test_arrays_are_validated_before_writing(tmp_path: pathlib.Path) -> None:
    with pytest.raises(DatasetFileError, match="n_classes given for tasks without labels"):
        M3TArrays(None, None, np.zeros((2, 4)), {"activity": np.array([0, 1])}, {"activity": 4, "shape": 4})
    with pytest.raises(DatasetFileError, match="/sensor must hold numbers"):
        M3TArrays(None, None, np.array([["a"], ["b"]]), {"size": np.zeros(2)})
    assert not list(tmp_path.iterdir())


def test_module_imports_no_simulator() -> None:
    tree = ast.parse(pathlib.Path(traces.m3t_dataset.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {name.split(".")[0] for name in imported} & {"simpy", "sim", "torch", "models"}
