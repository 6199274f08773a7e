"""channels.geometry: distances and the HF-FM prototype's clustered layout."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from channels import geometry
from channels.geometry import clustered_layout, distance_3d_m, distance_m

PAPER = dict(n_edges=10, devices_per_edge=4, area_m=5000.0, min_edge_separation_m=500.0,
             cluster_center_radius_m=1000.0, device_radius_m=500.0)  # fmt: skip


def test_distance_scalar_and_broadcast() -> None:
    assert distance_m([0.0, 0.0], [3.0, 4.0]) == 5.0
    a = np.array([[0.0, 0.0], [1.0, 1.0], [6.0, 8.0]])
    b = np.array([[0.0, 0.0], [3.0, 4.0]])
    d = distance_m(a[:, None, :], b[None, :, :])
    assert d.shape == (3, 2)
    for i, j in itertools.product(range(3), range(2)):
        assert d[i, j] == pytest.approx(math.hypot(a[i, 0] - b[j, 0], a[i, 1] - b[j, 1]))


def test_distance_rejects_wrong_last_axis() -> None:
    with pytest.raises(ValueError, match="a_xy"):
        distance_m(np.zeros((4, 3)), np.zeros((4, 3)))


def test_distance_3d() -> None:
    assert distance_3d_m(40.0, 31.5, 1.5) == pytest.approx(50.0)
    assert distance_3d_m(0.0, 10.0, 1.5) == pytest.approx(8.5)
    np.testing.assert_allclose(distance_3d_m(np.array([3.0, 0.0]), 5.0, 1.0), [5.0, 4.0])
    with pytest.raises(ValueError, match="d_2d_m"):
        distance_3d_m(-1.0, 10.0, 1.5)
    with pytest.raises(ValueError, match="h_a_m"):
        distance_3d_m(1.0, -10.0, 1.5)


def test_paper_layout_respects_every_constraint() -> None:
    for seed in range(20):
        edge_xy, device_xy, device_edge = clustered_layout(np.random.default_rng(seed), **PAPER)
        assert edge_xy.shape == (10, 2) and device_xy.shape == (40, 2) and device_edge.shape == (40,)
        assert np.issubdtype(device_edge.dtype, np.integer)
        assert device_edge.tolist() == [i // 4 for i in range(40)]
        for pts in (edge_xy, device_xy):
            assert np.all(pts >= 0.0) and np.all(pts <= 5000.0)
        for i, j in itertools.combinations(range(10), 2):
            sep = math.hypot(*(edge_xy[i] - edge_xy[j]))
            assert sep >= 500.0
        for k in range(40):
            e = edge_xy[device_edge[k]]
            assert math.hypot(*(device_xy[k] - e)) <= 1000.0 + 500.0 + 1e-9


def test_layout_is_deterministic_for_a_seed_and_uses_only_the_given_rng() -> None:
    np.random.seed(123)
    global_state = np.random.get_state()[1].copy()
    a = clustered_layout(np.random.default_rng(49), **PAPER)
    b = clustered_layout(np.random.default_rng(49), **PAPER)
    c = clustered_layout(np.random.default_rng(50), **PAPER)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    np.testing.assert_array_equal(np.random.get_state()[1], global_state)


def test_zero_radii_put_devices_on_their_edge() -> None:
    edge_xy, device_xy, device_edge = clustered_layout(np.random.default_rng(1), 3, 2, 1000.0, 100.0, 0.0, 0.0)
    np.testing.assert_allclose(device_xy, edge_xy[device_edge])


def test_devices_are_area_uniform_in_their_disc() -> None:
    # Huge area, no clipping: the radial CDF of a uniform disc is (r/R)², so 1/4 within R/2.
    r_max = 100.0
    edge_xy, device_xy, _ = clustered_layout(np.random.default_rng(7), 1, 8000, 1e6, 0.0, 0.0, r_max)
    r = np.hypot(*(device_xy - edge_xy[0]).T)
    assert r.max() <= r_max
    assert np.mean(r <= r_max / 2) == pytest.approx(0.25, abs=0.02)
    assert np.mean(r <= r_max * 0.9) == pytest.approx(0.81, abs=0.02)


def test_impossible_separation_raises() -> None:
    # Separation discs cannot fit at all: caught before sampling.
    with pytest.raises(ValueError, match="cannot place 10 edges"):
        clustered_layout(np.random.default_rng(0), 10, 4, 100.0, 500.0, 10.0, 10.0)
    # Fits by area but not geometrically (5 points ≥ 1000 m apart in a 1000 m square): runs out of tries.
    with pytest.raises(ValueError, match="max_tries"):
        clustered_layout(np.random.default_rng(0), 5, 1, 1000.0, 1000.0, 10.0, 10.0, max_tries=2000)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(n_edges=0), "n_edges"),
        (dict(devices_per_edge=0), "devices_per_edge"),
        (dict(area_m=-1.0), "area_m"),
        (dict(device_radius_m=-1.0), "device_radius_m"),
    ],
)
def test_bad_arguments_name_themselves(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        clustered_layout(np.random.default_rng(0), **{**PAPER, **kwargs})


def _reference_edges(rng: np.random.Generator, n: int, area_m: float, sep_m: float, max_tries: int):
    """The plain O(n²) rejection sampling: one candidate per draw, checked against every edge placed so far.

    Returns the edges and the number of candidates drawn.
    """
    placed: list[np.ndarray] = []
    for tries in range(1, max_tries + 1):
        candidate = rng.uniform(0.0, area_m, 2)
        if not placed or np.min(np.hypot(*(np.array(placed) - candidate).T)) >= sep_m:
            placed.append(candidate)
            if len(placed) == n:
                return np.array(placed), tries
    raise AssertionError("the reference ran out of tries")


DENSE = (150, 2000.0, 120.0)  # 750-960 candidates for 150 edges: most rejected, many near the separation


@pytest.mark.parametrize("block", [3, 4096])
@pytest.mark.parametrize(
    ("n", "area_m", "sep_m"), [(10, 5000.0, 500.0), (60, 1000.0, 100.0), DENSE, (30, 300.0, 0.0), (40, 1e6, 7.5)]
)
def test_grid_placement_matches_checking_every_edge(monkeypatch, block: int, n: int, area_m: float, sep_m: float):
    monkeypatch.setattr(geometry, "CANDIDATE_BLOCK", block)  # 3: blocks end mid-placement and mid-rejection run
    for seed in range(4):
        fast, slow = np.random.default_rng(seed), np.random.default_rng(seed)
        edges = geometry._separated_points(fast, n, area_m, sep_m, 100_000)
        np.testing.assert_array_equal(edges, _reference_edges(slow, n, area_m, sep_m, 100_000)[0])
        assert fast.random() == slow.random()  # the generator ends where one-at-a-time draws leave it


def test_dense_placement_really_rejects_and_the_layout_uses_it() -> None:
    n, area_m, sep_m = DENSE
    reference, tries = _reference_edges(np.random.default_rng(9), n, area_m, sep_m, 10_000)
    assert tries > 4 * n
    edge_xy, _, _ = clustered_layout(np.random.default_rng(9), n, 1, area_m, sep_m, 10.0, 10.0)
    np.testing.assert_array_equal(edge_xy, reference)


def test_exhausted_tries_leave_the_generator_after_every_candidate(monkeypatch) -> None:
    monkeypatch.setattr(geometry, "CANDIDATE_BLOCK", 7)
    fast = np.random.default_rng(4)
    with pytest.raises(ValueError, match="max_tries=50"):
        geometry._separated_points(fast, 5, 1000.0, 1000.0, 50)
    slow = np.random.default_rng(4)
    slow.uniform(0.0, 1000.0, (50, 2))
    assert fast.random() == slow.random()
