"""The embedded M3T dataset and the Dirichlet label-skew partition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.data import ALL_TASKS, ANSWERS, COLOURS, MODALITIES, SHAPES, SIZE_MEAN_PX, SIZE_STD_PX, TASKS, VOCAB
from models.data import M3TData, dirichlet_partition, m3t_data_from_arrays, make_m3t_dataset


@pytest.fixture(scope="module")
def data() -> M3TData:
    return make_m3t_dataset(2000, seed=3)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = make_m3t_dataset(50, seed=1), make_m3t_dataset(50, seed=1), make_m3t_dataset(50, seed=2)
    for name in ("image", "text", "sensor"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
        assert not torch.equal(getattr(a, name), getattr(c, name)), name
    for task in TASKS:
        assert torch.equal(a.labels[task], b.labels[task])


def test_shapes_and_dtypes(data: M3TData) -> None:
    assert len(data) == 2000
    assert data.image.shape == (2000, 3, 16, 16) and data.image.dtype == torch.float32
    assert data.text.shape == (2000, 6) and data.text.dtype == torch.int64
    assert data.sensor.shape == (2000, 32) and data.sensor.dtype == torch.float32
    assert set(data.labels) == set(ALL_TASKS)
    assert all(data.labels[t].shape == (2000,) and data.labels[t].dtype == torch.int64 for t in TASKS)
    assert data.labels["size"].shape == (2000,) and data.labels["size"].dtype == torch.float32
    assert int(data.text.min()) >= 0 and int(data.text.max()) < len(VOCAB)


def test_labels_in_range_and_every_class_present(data: M3TData) -> None:
    for task, k in TASKS.items():
        counts = np.bincount(data.labels[task].numpy(), minlength=k)
        assert len(counts) == k, task
        assert counts.min() > 0, (task, counts)


def test_vqa_answers_match_question_and_scene(data: M3TData) -> None:
    first = data.text[:, 1].numpy()
    answer = data.labels["vqa"].numpy()
    asks_colour = first == VOCAB.index("colour")
    asks_shape = first == VOCAB.index("shape")
    yes_no = ~asks_colour & ~asks_shape
    assert answer[asks_colour].max() < len(COLOURS)
    assert np.array_equal(answer[asks_shape], len(COLOURS) + data.labels["shape"].numpy()[asks_shape])
    assert set(answer[yes_no]) == {ANSWERS.index("yes"), ANSWERS.index("no")}
    assert 0.4 < np.mean(answer[yes_no] == ANSWERS.index("yes")) < 0.6
    for kind in (asks_colour, asks_shape, yes_no):
        assert 0.25 < kind.mean() < 0.42


def test_still_activity_is_noise_only(data: M3TData) -> None:
    variance = data.sensor.var(dim=1).numpy()
    activity = data.labels["activity"].numpy()
    assert variance[activity == 0].mean() < 0.15
    for k in (1, 2, 3):
        assert variance[activity == k].mean() > 0.4


def test_subset_takes_the_rows(data: M3TData) -> None:
    idx = np.array([5, 0, 7])
    sub = data.subset(idx)
    assert len(sub) == 3
    assert torch.equal(sub.image, data.image[idx]) and torch.equal(sub.sensor, data.sensor[idx])
    assert torch.equal(sub.text, data.text[idx])
    assert all(torch.equal(sub.labels[t], data.labels[t][idx]) for t in TASKS)
    assert torch.equal(sub.inputs()["image"], sub.image)


def test_generation_is_fast() -> None:
    import time

    start = time.perf_counter()
    make_m3t_dataset(10_000, seed=0)
    assert time.perf_counter() - start < 1.0


def _max_class_share(labels: np.ndarray, parts: list[np.ndarray]) -> float:
    return float(np.mean([np.bincount(labels[p]).max() / len(p) for p in parts]))


def test_partition_uses_every_index_once_and_respects_min_samples() -> None:
    labels = np.random.default_rng(0).integers(0, 4, 600)
    parts = dirichlet_partition(labels, 20, 0.1, np.random.default_rng(1), min_samples=5)
    assert len(parts) == 20
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(600))
    assert min(len(p) for p in parts) >= 5


def test_partition_is_deterministic_per_generator_seed() -> None:
    labels = np.repeat(np.arange(4), 50)
    a = dirichlet_partition(labels, 5, 0.5, np.random.default_rng(3))
    b = dirichlet_partition(labels, 5, 0.5, np.random.default_rng(3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_small_alpha_skews_labels_large_alpha_does_not() -> None:
    labels = np.random.default_rng(0).integers(0, 4, 4000)
    skewed = dirichlet_partition(labels, 20, 0.1, np.random.default_rng(1))
    uniform = dirichlet_partition(labels, 20, 1000.0, np.random.default_rng(1))
    assert _max_class_share(labels, skewed) > 0.6
    assert _max_class_share(labels, uniform) < 0.35


def test_partition_rejects_impossible_requests() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="cannot give 10 clients"):
        dirichlet_partition(np.zeros(15, dtype=int), 10, 1.0, rng)
    with pytest.raises(ValueError, match="alpha"):
        dirichlet_partition(np.zeros(15, dtype=int), 2, 0.0, rng)
    with pytest.raises(ValueError, match="n_clients"):
        dirichlet_partition(np.zeros(15, dtype=int), 0, 1.0, rng)
    with pytest.raises(ValueError, match="no Dirichlet"):
        dirichlet_partition(np.zeros(6, dtype=int), 3, 0.01, rng, min_samples=2, max_tries=20)


def test_size_label_is_the_standardised_half_size(data: M3TData) -> None:
    size = data.labels["size"].numpy().astype(float)
    assert abs(size.mean()) < 0.1 and abs(size.std() - 1.0) < 0.05  # U(4, 5.5) standardised by its own law
    half = size * SIZE_STD_PX + SIZE_MEAN_PX
    assert half.min() >= 4.0 - 1e-5 and half.max() <= 5.5 + 1e-5
    # discs are filled: their pixel count grows like π·s², so it tracks the label
    discs = data.labels["shape"].numpy() == SHAPES.index("disc")
    bright = (data.image[discs].max(dim=1).values > 0.6).sum(dim=(1, 2)).numpy()
    assert np.corrcoef(bright, half[discs] ** 2)[0, 1] > 0.9


def test_without_drops_modalities_and_keeps_the_rest(data: M3TData) -> None:
    small = data.subset(range(5))
    no_image = small.without(["image"])
    assert no_image.image is None and no_image.modalities == ("text", "sensor")
    assert no_image.text is small.text and len(no_image) == 5
    assert set(no_image.inputs()) == {"text", "sensor"}
    assert no_image.subset([0, 2]).image is None and len(no_image.subset([0, 2])) == 2
    assert small.without(MODALITIES).modalities == () and len(small.without(MODALITIES)) == 5
    with pytest.raises(ValueError, match="'lidar'"):
        small.without(["lidar"])
    with pytest.raises(ValueError, match="disagree"):
        M3TData(small.image, small.text[:4], None, {})


def test_data_from_arrays() -> None:
    labels = {"shape": np.array([0, 3]), "size": np.array([0.5, -1.0])}
    d = m3t_data_from_arrays(np.zeros((2, 3, 16, 16), np.float64), None, np.ones((2, 32)), labels)
    assert d.modalities == ("image", "sensor") and d.image.dtype == torch.float32 and d.sensor.dtype == torch.float32
    assert d.labels["shape"].dtype == torch.int64 and d.labels["size"].dtype == torch.float32
    assert d.labels["size"].tolist() == [0.5, -1.0]
    with pytest.raises(ValueError, match=r"'shape' must be integer classes in \[0, 4\)"):
        m3t_data_from_arrays(None, None, np.ones((2, 32)), {"shape": np.array([0, 4])})
    with pytest.raises(ValueError, match="'vqa'"):
        m3t_data_from_arrays(None, None, np.ones((2, 32)), {"vqa": np.array([0.0, 1.0])})
