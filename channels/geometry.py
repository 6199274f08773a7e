"""Distances and node layouts (positions in metres on a plane)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def distance_m(a_xy: ArrayLike, b_xy: ArrayLike) -> np.ndarray:
    """Euclidean distance between points of shape (..., 2), broadcasting over leading dims."""
    diff = np.asarray(a_xy, dtype=float) - np.asarray(b_xy, dtype=float)
    return np.sqrt(np.sum(diff * diff, axis=-1))


def distance_3d_m(d_2d_m: ArrayLike, h_a_m: float, h_b_m: float) -> np.ndarray:
    """d_3D = sqrt(d_2D² + (h_a − h_b)²) (3GPP TR 38.901 Fig. 7.4.1-1)."""
    d = np.asarray(d_2d_m, dtype=float)
    return np.sqrt(d * d + (h_a_m - h_b_m) ** 2)


def _uniform_in_disc(rng: np.random.Generator, centres: np.ndarray, radius_m: float) -> np.ndarray:
    """Points uniform over discs: r = R·sqrt(u), θ uniform (area-uniform)."""
    r = radius_m * np.sqrt(rng.random(len(centres)))
    theta = rng.uniform(0.0, 2 * np.pi, len(centres))
    return centres + np.stack([r * np.cos(theta), r * np.sin(theta)], axis=-1)


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
    """The HF-FM prototype's layout (arXiv 2509.03695): edges, then device clusters around them.

    Edge servers are uniform in the ``area_m`` square and at least
    ``min_edge_separation_m`` apart (rejection sampling, one edge at a time);
    each edge's cluster centre is uniform within ``cluster_center_radius_m`` of
    it; its devices are uniform within ``device_radius_m`` of the centre;
    positions are clipped into the area. Device i belongs to edge
    ``i // devices_per_edge``.

    Returns:
        ``(edge_xy (M, 2), device_xy (M·K, 2), device_edge (M·K,))``.

    Raises:
        ValueError: the edges cannot be placed with that separation within ``max_tries``.
    """
    if n_edges < 1 or devices_per_edge < 1:
        raise ValueError("n_edges and devices_per_edge must be at least 1")
    if area_m <= 0:
        raise ValueError(f"area_m must be positive, got {area_m}")
    edges: list[np.ndarray] = []
    tries = 0
    while len(edges) < n_edges:
        tries += 1
        if tries > max_tries:
            raise ValueError(
                f"cannot place {n_edges} edges {min_edge_separation_m} m apart in a {area_m} m square "
                f"within {max_tries} tries"
            )
        candidate = rng.uniform(0.0, area_m, 2)
        if all(np.hypot(*(candidate - e)) >= min_edge_separation_m for e in edges):
            edges.append(candidate)
    edge_xy = np.array(edges)
    centres = np.clip(_uniform_in_disc(rng, edge_xy, cluster_center_radius_m), 0.0, area_m)
    device_centres = np.repeat(centres, devices_per_edge, axis=0)
    device_xy = np.clip(_uniform_in_disc(rng, device_centres, device_radius_m), 0.0, area_m)
    device_edge = np.repeat(np.arange(n_edges), devices_per_edge)
    return edge_xy, device_xy, device_edge
