"""M3T dataset files: a user's multi-modal multi-task samples in one HDF5 file, read into numpy arrays.

Layout (version 1; every array has the sample count n ≥ 1 as its first axis)::

    /                 attrs: format = "hffm-m3t-dataset", version = 1,
                             vocab = [word, ...]  (UTF-8 strings, token id → word, id 0 = padding;
                                                   required with /text)
    /image            float (n, 3, H, H)  RGB images, square            optional
    /text             int   (n, L)        token ids in [0, len(vocab))  optional
    /sensor           float (n, T)        one time series per sample    optional
    /labels/<task>    (n,) per task, at least one task:
                        integer dtype + attr n_classes ≥ 2: class labels in [0, n_classes)
                        float dtype (no n_classes): a regression target

At least one of /image, /text, /sensor must be present; images and sensors
must be finite. The models package turns the arrays into its dataset
(``models.data.m3t_data_from_arrays``); the embedded data's sizes are
H = 16, L = 6, T = 32 and the tasks ``shape`` (4 classes), ``vqa`` (10),
``activity`` (4) and ``size`` (regression). Anything wrong raises
:class:`DatasetFileError` naming the file, the HDF5 dataset and the problem.

    >>> import numpy as np, pathlib, tempfile
    >>> arrays = M3TArrays(image=None, text=None, sensor=np.zeros((2, 8), np.float32),
    ...                    labels={"activity": np.array([0, 3])}, n_classes={"activity": 4})
    >>> path = write_m3t_dataset(pathlib.Path(tempfile.mkdtemp()) / "d.h5", arrays)
    >>> back = read_m3t_dataset(path)
    >>> len(back), back.modalities, back.labels["activity"].tolist(), back.n_classes
    (2, ('sensor',), [0, 3], {'activity': 4})
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from traces.recorder import new_hdf5_file

FORMAT = "hffm-m3t-dataset"
VERSION = 1
INPUTS = ("image", "text", "sensor")


class DatasetFileError(ValueError):
    """An M3T dataset file is missing, unreadable or does not follow the layout (the message says where)."""


@dataclass(frozen=True, eq=False)
class M3TArrays:
    """The contents of an M3T dataset file (validated on construction; see the module docstring).

    Attributes:
        image: float32 (n, 3, H, H) or None.
        text: int64 (n, L) or None.
        sensor: float32 (n, T) or None.
        labels: task → (n,) int64 class labels or float32 regression targets.
        n_classes: classification task → number of classes (regression tasks are absent).
        vocab: token id → word (with text), else None.
    """

    image: np.ndarray | None
    text: np.ndarray | None
    sensor: np.ndarray | None
    labels: dict[str, np.ndarray]
    n_classes: dict[str, int] = field(default_factory=dict)
    vocab: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        present = {m: getattr(self, m) for m in INPUTS if getattr(self, m) is not None}
        if not present:
            raise DatasetFileError("no input: at least one of /image, /text, /sensor is needed")
        if not self.labels:
            raise DatasetFileError("no labels: /labels needs at least one task")
        image, text, sensor = (_array(getattr(self, m), m) for m in INPUTS)
        if image is not None and (image.ndim != 4 or image.shape[1] != 3 or image.shape[2] != image.shape[3]):
            raise DatasetFileError(f"/image must have shape (n, 3, H, H), got {image.shape}")
        if sensor is not None and sensor.ndim != 2:
            raise DatasetFileError(f"/sensor must have shape (n, T), got {sensor.shape}")
        for name, x in (("image", image), ("sensor", sensor)):
            if x is not None and not np.isfinite(x).all():
                raise DatasetFileError(f"/{name} has non-finite values (NaN or inf)")
        vocab = None if self.vocab is None else tuple(str(w) for w in self.vocab)
        if text is not None:
            if text.ndim != 2 or not np.issubdtype(text.dtype, np.integer):
                raise DatasetFileError(f"/text must be integer token ids of shape (n, L), got {text.dtype} {text.shape}")
            if vocab is None or len(vocab) < 2:
                raise DatasetFileError("/text needs the root attribute vocab (id → word, at least 2 words)")
            if text.size and (text.min() < 0 or text.max() >= len(vocab)):
                raise DatasetFileError(f"/text ids must be in [0, {len(vocab)}) (the vocab size), "
                                       f"got [{text.min()}, {text.max()}]")  # fmt: skip
        labels = {task: _label(task, y, self.n_classes.get(task)) for task, y in self.labels.items()}
        extra = sorted(set(self.n_classes) - set(labels))
        if extra:
            raise DatasetFileError(f"n_classes given for tasks without labels: {extra}")
        sizes = {f"/{m}": len(x) for m, x in (("image", image), ("text", text), ("sensor", sensor)) if x is not None}
        sizes |= {f"/labels/{t}": len(y) for t, y in labels.items()}
        if len(set(sizes.values())) != 1 or 0 in sizes.values():
            raise DatasetFileError(f"datasets disagree on the sample count (or it is 0): {sizes}")
        for name, value in (
            ("image", None if image is None else image.astype(np.float32)),
            ("text", None if text is None else text.astype(np.int64)),
            ("sensor", None if sensor is None else sensor.astype(np.float32)),
            ("labels", labels),
            ("n_classes", {t: int(k) for t, k in self.n_classes.items()}),
            ("vocab", vocab if text is not None else None),
        ):
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(next(iter(self.labels.values())))

    @property
    def modalities(self) -> tuple[str, ...]:
        """The inputs present, in the order image, text, sensor."""
        return tuple(m for m in INPUTS if getattr(self, m) is not None)


def _array(x: np.ndarray | None, name: str) -> np.ndarray | None:
    if x is None:
        return None
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DatasetFileError(f"/{name} must hold numbers, got dtype {x.dtype}")
    return x


def _label(task: str, y: np.ndarray, n_classes: int | None) -> np.ndarray:
    """A validated label array: int64 classes in [0, n_classes) or finite float32 targets."""
    y = np.asarray(y)
    where = f"/labels/{task}"
    if y.ndim != 1:
        raise DatasetFileError(f"{where} must have shape (n,), got {y.shape}")
    if np.issubdtype(y.dtype, np.integer):
        if n_classes is None or int(n_classes) < 2:
            raise DatasetFileError(f"{where} holds integer class labels and needs the attribute n_classes >= 2, "
                                   f"got {n_classes}")  # fmt: skip
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise DatasetFileError(f"{where} labels must be in [0, {n_classes}), got [{y.min()}, {y.max()}]")
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        if n_classes is not None:
            raise DatasetFileError(f"{where} holds floats (a regression target) but has n_classes = {n_classes}; "
                                   f"class labels must be integers")  # fmt: skip
        if not np.isfinite(y).all():
            raise DatasetFileError(f"{where} has non-finite values (NaN or inf)")
        return y.astype(np.float32)
    raise DatasetFileError(f"{where} must be integer (classes) or float (regression), got dtype {y.dtype}")


def read_m3t_dataset(path: str | os.PathLike[str]) -> M3TArrays:
    """The arrays of the M3T dataset file at ``path`` (layout in the module docstring).

    Raises:
        DatasetFileError: the file is missing, not HDF5, not an M3T dataset of a known version, or breaks the
            layout (the message names the file and the HDF5 dataset).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetFileError(f"{path}: no such M3T dataset file")
    try:
        with h5py.File(path, "r") as f:
            fmt, version = f.attrs.get("format"), f.attrs.get("version")
            if fmt != FORMAT:
                raise DatasetFileError(f"{path}: not an M3T dataset file (root attribute format = {fmt!r}, "
                                       f"expected {FORMAT!r})")  # fmt: skip
            if version is None or int(version) > VERSION:
                raise DatasetFileError(f"{path}: M3T dataset version {version} is not supported (up to {VERSION})")
            inputs = {m: _read(f, m) for m in INPUTS}
            group = f.get("labels")
            if not isinstance(group, h5py.Group):
                raise DatasetFileError(f"{path}: /labels (a group of one dataset per task) is missing")
            labels = {task: _read(group, task) for task in group}
            n_classes = {t: int(group[t].attrs["n_classes"]) for t in group if "n_classes" in group[t].attrs}
            vocab = f.attrs.get("vocab")
            vocab = None if vocab is None else tuple(w.decode() if isinstance(w, bytes) else str(w) for w in vocab)
    except DatasetFileError as error:
        if str(error).startswith(str(path)):
            raise
        raise DatasetFileError(f"{path}: {error}") from None
    except OSError as error:
        raise DatasetFileError(f"{path}: not a readable HDF5 file ({error})") from None
    try:
        return M3TArrays(**inputs, labels=labels, n_classes=n_classes, vocab=vocab)
    except DatasetFileError as error:
        raise DatasetFileError(f"{path}: {error}") from None


def _read(group: h5py.Group, name: str) -> np.ndarray | None:
    """The array at ``group[name]`` (None if absent); a group there is an error."""
    if name not in group:
        return None
    item = group[name]
    if not isinstance(item, h5py.Dataset):
        raise DatasetFileError(f"{item.name} must be a dataset, not a group")
    return item[()]


def write_m3t_dataset(path: str | os.PathLike[str], arrays: M3TArrays, *, force: bool = False) -> Path:
    """Write ``arrays`` as an M3T dataset file (temporary file beside it, renamed into place when complete).

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is false.
        FileNotFoundError: the directory does not exist.
    """
    path = Path(path)
    with new_hdf5_file(path, force) as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        if arrays.vocab is not None:
            f.attrs["vocab"] = np.array(arrays.vocab, dtype=h5py.string_dtype())
        for name in arrays.modalities:
            f.create_dataset(name, data=getattr(arrays, name), compression="gzip")
        group = f.create_group("labels")
        for task, y in arrays.labels.items():
            group.create_dataset(task, data=y)
            if task in arrays.n_classes:
                group[task].attrs["n_classes"] = arrays.n_classes[task]
    return path
