"""Distances and node layouts (positions in metres on a plane).

    >>> distance_m([0.0, 0.0], [3.0, 4.0])
    5.0
    >>> distance_3d_m(40.0, 31.5, 1.5)
    50.0
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from channels._validate import as_float_array, nonnegative, scalar_or_array


def distance_m(a_xy: ArrayLike, b_xy: ArrayLike) -> float | np.ndarray:
    """Euclidean distance ‖a − b‖₂ between points of shape (..., 2), broadcasting over leading dims.

    Example: ``distance_m(devices[:, None, :], edges[None, :, :])`` is the
    (n_devices, n_edges) distance matrix.

    Raises:
        ValueError: the last axis of ``a_xy`` or ``b_xy`` is not of length 2.
    """
    a = as_float_array(a_xy, "a_xy")
    b = as_float_array(b_xy, "b_xy")
    for name, p in (("a_xy", a), ("b_xy", b)):
        if p.ndim == 0 or p.shape[-1] != 2:
            raise ValueError(f"{name} must have shape (..., 2), got {p.shape}")
    diff = a - b
    return scalar_or_array(np.sqrt(np.sum(diff * diff, axis=-1)))


def distance_3d_m(d_2d_m: ArrayLike, h_a_m: float, h_b_m: float) -> float | np.ndarray:
    """d_3D = sqrt(d_2D² + (h_a − h_b)²) (3GPP TR 38.901 Fig. 7.4.1-1, d_3D from d_2D, h_BS, h_UT).

    Raises:
        ValueError: a negative 2D distance or antenna height.
    """
    d = nonnegative(d_2d_m, "d_2d_m")
    h_a = float(nonnegative(h_a_m, "h_a_m"))
    h_b = float(nonnegative(h_b_m, "h_b_m"))
    return scalar_or_array(np.sqrt(d * d + (h_a - h_b) ** 2))


def _uniform_in_discs(rng: np.random.Generator, centres: np.ndarray, radius_m: float) -> np.ndarray:
    """One point uniform over the disc of ``radius_m`` around each centre.

    Area-uniform sampling: r = R·sqrt(u), θ = 2π·v with u, v ~ U(0, 1)
    (inverse-CDF of the radial density 2r/R²).
    """
    n = len(centres)
    r = radius_m * np.sqrt(rng.random(n))
    theta = 2.0 * np.pi * rng.random(n)
    return centres + np.stack([r * np.cos(theta), r * np.sin(theta)], axis=-1)


CANDIDATE_BLOCK = 4096
"""Candidates drawn per generator call by :func:`_separated_points` (the draws are the same for any block)."""
_CELL_MARGIN = 1e-6
"""Relative growth of the grid cells over the separation: covers the rounding of cell indices (see below)."""


def _separated_points(rng: np.random.Generator, n: int, area_m: float, sep_m: float, max_tries: int) -> np.ndarray:
    """``n`` points uniform in the ``area_m`` square, pairwise at least ``sep_m`` apart, by rejection sampling.

    Candidate t is the t-th pair of ``rng.uniform(0, area_m)`` draws; it is
    accepted iff min_j ‖p_j − c_t‖₂ ≥ ``sep_m`` over the points accepted
    before it (``np.hypot``). Only points in the 3 × 3 grid cells around the
    candidate are checked (cells of side ``sep_m``·(1 + 10⁻⁶), a dict of
    cell → point indices): a point two or more cells away is farther than
    ``sep_m`` in x or y, and the margin keeps that true when a coordinate's
    computed cell index is off by one through rounding (relative error
    below 10⁻⁶ while area/sep < 10⁹). So the decisions are those of checking
    every point, in O(1) per candidate instead of O(n). Candidates are drawn
    :data:`CANDIDATE_BLOCK` at a time; afterwards the generator is rewound
    and advanced by exactly the candidates examined, so it ends as if they
    had been drawn one at a time.

    Raises:
        ValueError: fewer than ``n`` points placed within ``max_tries`` candidates.
    """
    points = np.empty((n, 2))
    cell_m = sep_m * (1.0 + _CELL_MARGIN)
    cells: dict[tuple[int, int], list[int]] = {}
    start_state = rng.bit_generator.state
    placed = tries = 0
    while placed < n and tries < max_tries:
        for candidate in rng.uniform(0.0, area_m, (min(CANDIDATE_BLOCK, max_tries - tries), 2)):
            tries += 1
            if sep_m > 0:
                cx, cy = int(candidate[0] // cell_m), int(candidate[1] // cell_m)
                block_3x3 = ((gx, gy) for gx in (cx - 1, cx, cx + 1) for gy in (cy - 1, cy, cy + 1))
                near = [i for cell in block_3x3 for i in cells.get(cell, ())]
                if near and np.min(np.hypot(*(points[near] - candidate).T)) < sep_m:
                    continue
                cells.setdefault((cx, cy), []).append(placed)
            points[placed] = candidate
            placed += 1
            if placed == n:
                break
    rng.bit_generator.state = start_state
    rng.uniform(0.0, area_m, (tries, 2))  # the draws of exactly the candidates examined
    if placed < n:
        raise ValueError(
            f"cannot place {n} edges {sep_m} m apart in a {area_m} m square within "
            f"max_tries={max_tries} candidates (placed {placed}); reduce n_edges or "
            f"min_edge_separation_m, or raise max_tries"
        )
    return points


def clustered_layout(
    rng: np.random.Generator,
    n_edges: int,
    devices_per_edge: int,
    area_m: float,
    min_edge_separation_m: float,
    cluster_center_radius_m: float,
    device_radius_m: float,
    max_tries: int = 10_000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The HF-FM prototype's layout (arXiv 2509.03695): edge servers, then a device cluster per edge.

    1. Edge servers uniform in the ``area_m`` × ``area_m`` square, at least
       ``min_edge_separation_m`` apart: rejection sampling, one candidate at a
       time, each accepted if it is far enough from every edge placed so far
       (checked against the nearby edges only, in O(1): :func:`_separated_points`).
    2. Each edge's cluster centre uniform over the disc of
       ``cluster_center_radius_m`` around the edge (r = R·sqrt(u)).
    3. Each device uniform over the disc of ``device_radius_m`` around its
       cluster centre.
    4. Centres and devices clipped into the square. Clipping is a projection
       onto a convex set containing the edge, so it never moves a point
       farther from its edge or centre: the radii still hold after clipping.

    Device i belongs to edge ``i // devices_per_edge``. Only ``rng`` is used,
    so the layout is a deterministic function of its state.

    The paper's prototype: ``n_edges=10, devices_per_edge=4, area_m=5000,
    min_edge_separation_m=500, cluster_center_radius_m=1000, device_radius_m=500``.

    Returns:
        ``edge_xy`` (n_edges, 2), ``device_xy`` (n_edges·devices_per_edge, 2),
        ``device_edge`` (n_edges·devices_per_edge,) int — positions in m.

    Raises:
        ValueError: a bad argument, or the edges cannot be placed
            ``min_edge_separation_m`` apart within ``max_tries`` candidates
            (immediately when discs of that diameter cannot fit at all).

    >>> e, d, k = clustered_layout(np.random.default_rng(0), 10, 4, 5000.0, 500.0, 1000.0, 500.0)
    >>> e.shape, d.shape, k[:6].tolist()
    ((10, 2), (40, 2), [0, 0, 0, 0, 1, 1])
    """
    for name, value in (("n_edges", n_edges), ("devices_per_edge", devices_per_edge), ("max_tries", max_tries)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not area_m > 0:
        raise ValueError(f"area_m must be positive, got {area_m}")
    for name, value in (
        ("min_edge_separation_m", min_edge_separation_m),
        ("cluster_center_radius_m", cluster_center_radius_m),
        ("device_radius_m", device_radius_m),
    ):
        if not value >= 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
    n_edges, devices_per_edge = int(n_edges), int(devices_per_edge)
    sep = float(min_edge_separation_m)
    # Necessary condition: discs of diameter `sep` around the edges are disjoint
    # and lie inside the square grown by sep/2 on every side.
    if n_edges * math.pi * sep**2 / 4.0 > (area_m + sep) ** 2:
        raise ValueError(
            f"cannot place {n_edges} edges {sep} m apart in a {area_m} m square: "
            f"their separation discs do not fit (reduce n_edges or min_edge_separation_m)"
        )
    edge_xy = _separated_points(rng, n_edges, area_m, sep, int(max_tries))
    centres = np.clip(_uniform_in_discs(rng, edge_xy, float(cluster_center_radius_m)), 0.0, area_m)
    device_centres = np.repeat(centres, devices_per_edge, axis=0)
    device_xy = np.clip(_uniform_in_discs(rng, device_centres, float(device_radius_m)), 0.0, area_m)
    device_edge = np.repeat(np.arange(n_edges), devices_per_edge)
    return edge_xy, device_xy, device_edge
