"""channels.contacts: D2D contact graphs, MST connection, exact contact intervals, consensus, cluster heads.

Expected values are computed by hand (layouts, straight-line passes) or by an
independent brute force (all pairs, fine time grid, networkx MST, eigenvalues).
"""

from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np
import pytest

import channels
from channels import contacts
from channels.contacts import (
    CONTACT_DTYPE,
    clusters,
    connect_with_mst,
    consensus,
    consensus_factor,
    contact_graph,
    contact_intervals,
    max_degree_weights,
    metropolis_weights,
    select_cluster_head,
)


def test_exports() -> None:
    """The doctests run in test_channels_doctests.py; here: channels re-exports the module's API."""
    for name in ("contact_graph", "connect_with_mst", "contact_intervals", "max_degree_weights",
                 "metropolis_weights", "consensus", "consensus_factor", "select_cluster_head", "clusters",
                 "CONTACT_DTYPE"):  # fmt: skip
        assert getattr(channels, name) is getattr(contacts, name)
        assert name in channels.__all__


# --------------------------------------------------------------------------- contact_graph

HAND_XY = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0], [0.0, 5.1], [100.0, 100.0]])
# By hand, R = 5: |01| = 5 (boundary, in), |12| = 5 (in), |13| = sqrt(9 + 1.21) (in),
# |03| = 5.1, |23| = sqrt(36 + 8.41), |02| = 10, node 4 far from all.
HAND_EDGES = {(0, 1): 5.0, (1, 2): 5.0, (1, 3): math.sqrt(10.21)}


def test_contact_graph_hand_layout() -> None:
    g = contact_graph(HAND_XY, 5.0)
    assert sorted(g.nodes) == [0, 1, 2, 3, 4]
    got = {tuple(sorted(e)): d for *e, d in g.edges(data="distance_m")}
    assert got.keys() == HAND_EDGES.keys()
    for e, d in HAND_EDGES.items():
        assert got[e] == pytest.approx(d, abs=1e-12)


def test_contact_graph_node_ids_follow_rows() -> None:
    ids = [10, 11, 12, 13, 14]
    g = contact_graph(HAND_XY, 5.0, nodes=ids)
    assert sorted(g.nodes) == ids
    assert {tuple(sorted(e)) for e in g.edges} == {(ids[i], ids[j]) for i, j in HAND_EDGES}
    assert contact_graph(np.zeros((0, 2)), 5.0).number_of_nodes() == 0
    assert list(contact_graph([[1.0, 2.0]], 5.0).nodes) == [0]


def test_contact_graph_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 300, (150, 2))
    g = contact_graph(xy, 30.0)
    expected = {(i, j) for i, j in itertools.combinations(range(150), 2)
                if math.hypot(*(xy[i] - xy[j])) <= 30.0}  # fmt: skip
    assert {tuple(sorted(e)) for e in g.edges} == expected


def test_contact_graph_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="xy_m"):
        contact_graph(np.zeros((3, 3)), 5.0)
    with pytest.raises(ValueError, match="xy_m"):
        contact_graph([[0.0, np.nan]], 5.0)
    with pytest.raises(ValueError, match="radius_m"):
        contact_graph(HAND_XY, -1.0)
    with pytest.raises(ValueError, match="nodes"):
        contact_graph(HAND_XY, 5.0, nodes=[1, 2, 3])
    with pytest.raises(ValueError, match="nodes"):
        contact_graph(HAND_XY, 5.0, nodes=[1, 1, 2, 3, 4])


# --------------------------------------------------------------------------- connect_with_mst

GROUPS_XY = np.array([
    [0.0, 0.0], [1.0, 0.0], [0.0, 1.0],          # A
    [100.0, 0.0], [101.0, 0.0], [100.0, 1.0],    # B
    [0.0, 200.0], [1.0, 200.0], [0.0, 201.0],    # C
])  # fmt: skip


def test_connect_with_mst_three_groups_adds_the_two_shortest_connectors() -> None:
    g = contact_graph(GROUPS_XY, 5.0)
    assert nx.number_connected_components(g) == 3
    h = connect_with_mst(g, GROUPS_XY)
    assert nx.is_connected(h)
    assert g.number_of_edges() == 9 and nx.number_connected_components(g) == 3  # input untouched
    added = {tuple(sorted((u, v))): d for u, v, d in h.edges(data="distance_m") if h.edges[u, v].get("mst")}
    # By hand: A–B closest pair (1,0)–(100,0) = 99 m; A–C (0,1)–(0,200) = 199 m;
    # B–C at best (100,1)–(1,200) = sqrt(99² + 199²) ≈ 222.3 m, so not used.
    assert added == {(1, 3): 99.0, (2, 6): 199.0}
    for u, v in g.edges:
        assert h.edges[u, v] == g.edges[u, v]


def test_connect_with_mst_custom_ids_and_coincident_points() -> None:
    ids = [30 + k for k in range(9)][::-1]
    g = contact_graph(GROUPS_XY, 5.0, nodes=ids)
    h = connect_with_mst(g, GROUPS_XY, nodes=ids)
    added = {tuple(sorted((u, v))) for u, v in h.edges if h.edges[u, v].get("mst")}
    assert added == {tuple(sorted((ids[1], ids[3]))), tuple(sorted((ids[2], ids[6])))}
    # Coincident points in different components: joined by a 0 m edge, then the 5 m one.
    e = nx.empty_graph(3)
    h = connect_with_mst(e, [[0.0, 0.0], [0.0, 0.0], [5.0, 0.0]])
    assert sorted(h.edges(data="distance_m")) == [(0, 1, 0.0), (0, 2, 5.0)]
    assert connect_with_mst(nx.empty_graph(1), [[0.0, 0.0]]).number_of_edges() == 0


def test_connect_with_mst_equals_kruskal_on_the_complete_graph() -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)
        xy = rng.uniform(0, 400, (120, 2))
        g = contact_graph(xy, 25.0)
        h = connect_with_mst(g, xy)
        comps = nx.number_connected_components(g)
        added = [(u, v, d) for u, v, d in h.edges(data="distance_m") if h.edges[u, v].get("mst")]
        assert nx.is_connected(h) and len(added) == comps - 1
        # Independent: networkx Kruskal on the complete graph, intra-component pairs weight 0.
        label = {v: k for k, c in enumerate(nx.connected_components(g)) for v in c}
        full = nx.Graph()
        for i, j in itertools.combinations(range(len(xy)), 2):
            w = 0.0 if label[i] == label[j] else math.hypot(*(xy[i] - xy[j]))
            full.add_edge(i, j, weight=w)
        mst_len = nx.minimum_spanning_tree(full, algorithm="kruskal").size(weight="weight")
        assert sum(d for *_, d in added) == pytest.approx(mst_len, rel=1e-12)
        for u, v, d in added:
            assert label[u] != label[v] and d == pytest.approx(math.hypot(*(xy[u] - xy[v])))


def test_connect_with_mst_rejects_bad_arguments() -> None:
    g = contact_graph(GROUPS_XY, 5.0)
    with pytest.raises(ValueError, match="xy_m"):
        connect_with_mst(g, GROUPS_XY[:5])
    with pytest.raises(ValueError, match="nodes"):
        connect_with_mst(g, GROUPS_XY, nodes=list(range(1, 10)))
    with pytest.raises(ValueError, match="graph"):
        connect_with_mst(nx.DiGraph(g), GROUPS_XY)


# --------------------------------------------------------------------------- contact_intervals


def _linear_trace(times_s: np.ndarray, start_xy: np.ndarray, velocity_m_s: np.ndarray, t0_s: float) -> np.ndarray:
    """Positions (T, n, 2) of nodes on straight lines p_i(t) = start_i + v_i·(t − t0)."""
    return start_xy[None, :, :] + velocity_m_s[None, :, :] * (np.asarray(times_s)[:, None, None] - t0_s)


def _intervals(c: np.ndarray) -> list[tuple[float, float, int, int]]:
    return [(float(s), float(e), int(a), int(b)) for s, e, a, b in c.tolist()]


def _assert_intervals(c: np.ndarray, expected: list[tuple[float, float, int, int]]) -> None:
    assert c.dtype == CONTACT_DTYPE
    got = _intervals(c)
    assert len(got) == len(expected), got
    for (s, e, a, b), (s0, e0, a0, b0) in zip(got, expected, strict=True):
        assert (a, b) == (a0, b0)
        assert s == pytest.approx(s0, abs=1e-9) and e == pytest.approx(e0, abs=1e-9)


# Node 0 at rest at the origin; node 1 along x from −100 m at 10 m/s; R = 30 m:
# |−100 + 10t| ≤ 30 ⇔ 7 ≤ t ≤ 13.
PASS_START = np.array([[0.0, 0.0], [-100.0, 0.0]])
PASS_V = np.array([[0.0, 0.0], [10.0, 0.0]])


@pytest.mark.parametrize("times", [
    [0.0, 20.0],
    np.linspace(0.0, 20.0, 21),                # samples hit 7 and 13 exactly
    [0.0, 7.0, 13.0, 20.0],                    # contact exactly one segment long
    [0.0, 3.3, 7.5, 10.0, 12.2, 12.9, 20.0],   # irregular
])  # fmt: skip
def test_pass_by_at_rest_node_any_sampling(times: list[float]) -> None:
    t = np.asarray(times)
    c = contact_intervals(t, _linear_trace(t, PASS_START, PASS_V, 0.0), 30.0)
    _assert_intervals(c, [(7.0, 13.0, 0, 1)])


def test_crossing_both_moving() -> None:
    # Node 0 from (0, −60) at (0, 6) m/s, node 1 from (80, 0) at (−8, 0) m/s: p1 − p0 = (1 − t/10)·(80, 60),
    # distance 100·|1 − t/10| ≤ 50 ⇔ 5 ≤ t ≤ 15 (they meet at t = 10).
    start = np.array([[0.0, -60.0], [80.0, 0.0]])
    v = np.array([[0.0, 6.0], [-8.0, 0.0]])
    for t in (np.array([0.0, 30.0]), np.linspace(0.0, 30.0, 13), np.array([0.0, 5.0, 10.0, 11.0, 30.0])):
        _assert_intervals(contact_intervals(t, _linear_trace(t, start, v, 0.0), 50.0), [(5.0, 15.0, 0, 1)])


def test_oblique_path_with_time_offset() -> None:
    # Node 0 at rest at (10, 20); node 1 from the origin at t = 100 s with velocity (3, 4) m/s.
    # Along the unit direction (0.6, 0.8) the projection of (10, 20) is s = 22 m, perpendicular
    # distance sqrt(500 − 22²) = 4 m; R = 5 m ⇒ half chord 3 m ⇒ s ∈ [19, 25] ⇒ t − 100 ∈ [3.8, 5].
    start = np.array([[10.0, 20.0], [0.0, 0.0]])
    v = np.array([[0.0, 0.0], [3.0, 4.0]])
    for t in (np.array([100.0, 110.0]), np.linspace(100.0, 110.0, 7), np.array([100.0, 104.0, 104.5, 110.0])):
        _assert_intervals(contact_intervals(t, _linear_trace(t, start, v, 100.0), 5.0), [(103.8, 105.0, 0, 1)])


def test_several_pairs_sorted_with_node_indices() -> None:
    # Three independent scenarios far apart in one trace: pass-by (nodes 0, 1), crossing (2, 3),
    # oblique (4, 5, shifted by 100 s ⇒ here 3.8–5 s).
    start = np.array([[0.0, 0.0], [-100.0, 0.0],
                      [1000.0, -60.0], [1080.0, 0.0],
                      [2010.0, 20.0], [2000.0, 0.0]])  # fmt: skip
    v = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 6.0], [-8.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    t = np.linspace(0.0, 20.0, 9)
    xy = _linear_trace(t, start, v, 0.0)
    # R = 30 m: pass-by 7–13 s; crossing 100·|1 − t/10| ≤ 30 ⇒ 7–13 s; oblique half chord sqrt(900 − 16)
    # ⇒ s ∈ 22 ∓ sqrt(884) ⇒ t ∈ [0, (22 + sqrt(884))/5] (open at the first sample).
    oblique_end = (22.0 + math.sqrt(884.0)) / 5.0
    _assert_intervals(contact_intervals(t, xy, 30.0), [(0.0, oblique_end, 4, 5), (7.0, 13.0, 0, 1), (7.0, 13.0, 2, 3)])


def test_open_at_first_and_last_sample_and_repeated_contacts() -> None:
    t = np.array([5.0, 10.0, 15.0])
    still = np.broadcast_to(np.array([[0.0, 0.0], [10.0, 0.0]]), (3, 2, 2))
    _assert_intervals(contact_intervals(t, still, 30.0), [(5.0, 15.0, 0, 1)])
    # Leaving: 10 m/s away from node 0 ⇒ in contact until 3 s. Approaching: from 7 s to the trace end.
    t = np.array([0.0, 10.0])
    leave = _linear_trace(t, np.zeros((2, 2)), np.array([[0.0, 0.0], [10.0, 0.0]]), 0.0)
    _assert_intervals(contact_intervals(t, leave, 30.0), [(0.0, 3.0, 0, 1)])
    _assert_intervals(contact_intervals(t, _linear_trace(t, PASS_START, PASS_V, 0.0), 30.0), [(7.0, 10.0, 0, 1)])
    # Back and forth: x = −100 → +100 → −100 over 0–20–40 s ⇒ two separate contacts, not merged.
    t = np.array([0.0, 20.0, 40.0])
    xy = np.zeros((3, 2, 2))
    xy[:, 1, 0] = [-100.0, 100.0, -100.0]
    _assert_intervals(contact_intervals(t, xy, 30.0), [(7.0, 13.0, 0, 1), (27.0, 33.0, 0, 1)])
    # A single sample: zero-length contacts at that instant.
    _assert_intervals(contact_intervals([2.0], HAND_XY[None], 5.0),
                      [(2.0, 2.0, 0, 1), (2.0, 2.0, 1, 2), (2.0, 2.0, 1, 3)])  # fmt: skip
    # Never close.
    assert len(contact_intervals([0.0, 1.0], np.broadcast_to(GROUPS_XY, (2, 9, 2)), 5.0)) == 9


def test_random_walkers_match_a_fine_time_grid() -> None:
    rng = np.random.default_rng(7)
    n, samples, radius = 30, 12, 25.0
    times = np.concatenate([[0.0], np.cumsum(rng.uniform(0.5, 2.0, samples - 1))])
    steps = rng.normal(0.0, 12.0, (samples - 1, n, 2))
    xy = np.empty((samples, n, 2))
    xy[0] = rng.uniform(0, 150, (n, 2))
    xy[1:] = xy[0] + np.cumsum(steps, axis=0)
    c = contact_intervals(times, xy, radius)
    assert np.all(c["a"] < c["b"]) and np.all(c["start_s"] <= c["end_s"])
    assert np.all(np.diff(c["start_s"]) >= 0)

    i, j = np.triu_indices(n, 1)
    h = 2e-3
    grid = np.arange(times[0], times[-1], h)
    k = np.clip(np.searchsorted(times, grid, side="right") - 1, 0, samples - 2)
    frac = ((grid - times[k]) / (times[k + 1] - times[k]))[:, None, None]
    pos = xy[k] + frac * (xy[k + 1] - xy[k])  # (G, n, 2), linear between samples
    dist = np.linalg.norm(pos[:, j] - pos[:, i], axis=-1)  # (G, pairs)
    covered = np.zeros_like(dist, dtype=bool)
    pair_index = {(a, b): p for p, (a, b) in enumerate(zip(i.tolist(), j.tolist(), strict=True))}
    for s, e, a, b in c.tolist():
        covered[(grid >= s) & (grid <= e), pair_index[(a, b)]] = True
    near_boundary = np.abs(dist - radius) < 1e-7
    assert np.array_equal((dist <= radius) | near_boundary, covered | near_boundary)
    assert covered.any() and (~covered).any()
    # Every endpoint strictly inside the trace is at distance exactly R.
    for s, e, a, b in c.tolist():
        for t in (s, e):
            if times[0] < t < times[-1]:
                kk = min(np.searchsorted(times, t, side="right") - 1, samples - 2)
                f = (t - times[kk]) / (times[kk + 1] - times[kk])
                p = xy[kk] + f * (xy[kk + 1] - xy[kk])
                assert np.linalg.norm(p[b] - p[a]) == pytest.approx(radius, abs=1e-7)
    # Intervals of one pair are disjoint.
    for (a, b), group in itertools.groupby(sorted(c.tolist(), key=lambda r: (r[2], r[3], r[0])),
                                           key=lambda r: (r[2], r[3])):  # fmt: skip
        rows = list(group)
        for prev, nxt in itertools.pairwise(rows):
            assert nxt[0] > prev[1]


def test_thousands_of_nodes_agree_with_snapshots() -> None:
    rng = np.random.default_rng(3)
    n, radius = 3000, 30.0
    times = np.array([0.0, 10.0, 20.0, 30.0])
    xy = rng.uniform(0, 3000, (1, n, 2)) + np.concatenate([np.zeros((1, n, 2)),
                                                           np.cumsum(rng.normal(0, 20, (3, n, 2)), 0)])  # fmt: skip
    c = contact_intervals(times, xy, radius)
    for k, t in enumerate(times):
        live = {(a, b) for s, e, a, b in c.tolist() if s <= t <= e}
        snap = {tuple(sorted(e)) for e in contact_graph(xy[k], radius).edges}
        assert live == snap


def test_contact_intervals_rejects_bad_arguments() -> None:
    xy = _linear_trace(np.array([0.0, 1.0]), PASS_START, PASS_V, 0.0)
    with pytest.raises(ValueError, match="times_s"):
        contact_intervals([1.0, 1.0], xy, 30.0)
    with pytest.raises(ValueError, match="times_s"):
        contact_intervals([[0.0, 1.0]], xy, 30.0)
    with pytest.raises(ValueError, match="xy_m"):
        contact_intervals([0.0, 1.0, 2.0], xy, 30.0)
    with pytest.raises(ValueError, match="radius_m"):
        contact_intervals([0.0, 1.0], xy, 0.0)


# --------------------------------------------------------------------------- consensus


def _connected_graph(seed: int, n: int = 20) -> nx.Graph:
    xy = np.random.default_rng(seed).uniform(0, 100, (n, 2))
    return connect_with_mst(contact_graph(xy, 30.0), xy)


@pytest.mark.parametrize("weights", [max_degree_weights, metropolis_weights])
def test_weights_symmetric_doubly_stochastic(weights) -> None:  # noqa: ANN001
    for g in (_connected_graph(0), nx.star_graph(5), nx.cycle_graph(6), nx.empty_graph(3),
              nx.relabel_nodes(nx.path_graph(4), {0: 9, 1: 2, 2: 5, 3: 7})):  # fmt: skip
        w = weights(g)
        n = g.number_of_nodes()
        assert w.shape == (n, n)
        assert np.array_equal(w, w.T)
        np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-14)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-14)
        assert np.all(w >= 0.0) and np.all(np.diag(w) > 0.0)
        adj = nx.to_numpy_array(g, nodelist=sorted(g.nodes)) > 0
        assert np.all(w[~adj & ~np.eye(n, dtype=bool)] == 0.0)


def test_weights_hand_values_in_sorted_node_order() -> None:
    # Path 9 – 2 – 5 – 7; sorted order [2, 5, 7, 9]; degrees 2, 2, 1, 1; Δ = 2, default d = 1/3.
    g = nx.Graph([(9, 2), (2, 5), (5, 7)])
    w = max_degree_weights(g)
    third = 1.0 / 3.0
    expected = np.array([[1 - 2 * third, third, 0, third],
                         [third, 1 - 2 * third, third, 0],
                         [0, third, 1 - third, 0],
                         [third, 0, 0, 1 - third]])  # fmt: skip
    np.testing.assert_allclose(w, expected, atol=1e-15)
    np.testing.assert_allclose(max_degree_weights(g, d=0.25)[2], [0.0, 0.25, 0.75, 0.0])
    # Metropolis: 2–5 edge 1/(1+2); 5–7 and 2–9 edges 1/(1+2); every edge here 1/3.
    np.testing.assert_allclose(metropolis_weights(g), expected, atol=1e-15)
    # Star with centre 0 of degree 3: edge weights 1/4, centre 1/4, leaves 3/4.
    m = metropolis_weights(nx.star_graph(3))
    np.testing.assert_allclose(m[0], [0.25] * 4)
    np.testing.assert_allclose(np.diag(m)[1:], [0.75] * 3)


def test_max_degree_step_must_be_below_one_over_max_degree() -> None:
    g = nx.star_graph(3)  # Δ = 3
    max_degree_weights(g, d=0.33)
    for bad in (1.0 / 3.0, 0.5, 0.0, -0.1):
        with pytest.raises(ValueError, match="d must"):
            max_degree_weights(g, d=bad)
    np.testing.assert_array_equal(max_degree_weights(nx.empty_graph(2), d=5.0), np.eye(2))
    with pytest.raises(ValueError, match="graph"):
        metropolis_weights(nx.DiGraph([(0, 1)]))


@pytest.mark.parametrize("weights", [max_degree_weights, metropolis_weights])
def test_consensus_converges_geometrically_and_preserves_the_average(weights) -> None:  # noqa: ANN001
    g = _connected_graph(2)
    w = weights(g)
    eig = np.sort(np.abs(np.linalg.eigvalsh(w)))[::-1]
    assert eig[0] == pytest.approx(1.0)
    rho = eig[1]
    assert rho < 1.0 and consensus_factor(w) == pytest.approx(rho, abs=1e-12)
    x0 = np.random.default_rng(5).normal(0.0, 1.0, (g.number_of_nodes(), 3, 2))
    mean = x0.mean(axis=0)
    x = x0
    errors = [np.linalg.norm(x - mean)]
    for _ in range(60):
        x = consensus(x, w, 1)
        np.testing.assert_allclose(x.mean(axis=0), mean, rtol=0, atol=1e-13)
        errors.append(np.linalg.norm(x - mean))
    ratios = np.array(errors[1:]) / np.array(errors[:-1])
    assert np.all(ratios <= rho + 1e-9)
    assert errors[-1] <= rho**60 * errors[0] + 1e-12
    np.testing.assert_allclose(consensus(x0, w, 60), x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(consensus(x0, w, 3000), np.broadcast_to(mean, x0.shape), atol=1e-9)
    np.testing.assert_array_equal(consensus(x0, w, 0), x0)


def test_consensus_on_a_disconnected_graph_reaches_only_component_averages() -> None:
    g = nx.union(nx.path_graph(3), nx.path_graph([3, 4]))
    x0 = np.array([0.0, 3.0, 6.0, 10.0, 20.0])  # components average 3 and 15; global 7.8
    for w in (max_degree_weights(g), metropolis_weights(g)):
        assert consensus_factor(w) == pytest.approx(1.0)
        x = consensus(x0, w, 2000)
        np.testing.assert_allclose(x, [3.0, 3.0, 3.0, 15.0, 15.0], atol=1e-9)
        assert x.mean() == pytest.approx(7.8)
        assert np.max(np.abs(x - 7.8)) > 4.0


def test_consensus_rejects_bad_arguments() -> None:
    w = metropolis_weights(nx.path_graph(3))
    with pytest.raises(ValueError, match="x"):
        consensus(np.zeros(4), w, 1)
    with pytest.raises(ValueError, match="W"):
        consensus(np.zeros(3), np.ones((3, 2)), 1)
    with pytest.raises(ValueError, match="steps"):
        consensus(np.zeros(3), w, -1)
    with pytest.raises(ValueError, match="steps"):
        consensus(np.zeros(3), w, 1.5)


# --------------------------------------------------------------------------- clusters and heads


def _head_graph() -> nx.Graph:
    # Members 3, 5, 8, 9 (edge lengths in m) plus non-member 1 offering a shortcut 3 – 1 – 9.
    g = nx.Graph()
    for u, v, d in [(3, 5, 4.0), (5, 8, 3.0), (8, 9, 2.0), (5, 9, 4.0), (3, 1, 1.0), (1, 9, 1.0)]:
        g.add_edge(u, v, distance_m=d)
    return g


def test_clusters_restricted_to_members() -> None:
    g = _head_graph()
    assert clusters(g, [9, 3, 5, 8]) == [[3, 5, 8, 9]]
    assert clusters(g, [9, 3, 1]) == [[1, 3, 9]]
    g.add_node(20)
    assert clusters(g, [20, 9, 3, 8]) == [[3], [8, 9], [20]]
    with pytest.raises(ValueError, match="members"):
        clusters(g, [3, 99])


def test_head_best_snr_with_tie_to_smallest_id() -> None:
    members = [9, 8, 5, 3]
    assert select_cluster_head(members, "best_snr", snr={3: 2.0, 5: 7.0, 8: 7.0, 9: 1.0, 1: 99.0}) == 5
    assert select_cluster_head(members, "best_snr", snr={3: 2.0, 5: 6.0, 8: 7.0, 9: 1.0}) == 8
    with pytest.raises(ValueError, match="snr"):
        select_cluster_head(members, "best_snr")
    with pytest.raises(ValueError, match="snr"):
        select_cluster_head(members, "best_snr", snr={3: 1.0})


def test_head_central_within_members() -> None:
    # By hand, within members: sums of shortest paths 3: 4+7+8 = 19, 5: 4+3+4 = 11,
    # 8: 7+3+2 = 12, 9: 8+4+2 = 14 ⇒ 5. Through non-member 1, node 9 (sum 8) would win.
    g = _head_graph()
    assert select_cluster_head([3, 5, 8, 9], "central", graph=g) == 5
    assert select_cluster_head([1, 3, 5, 8, 9], "central", graph=g) == 9
    triangle = nx.Graph()
    triangle.add_weighted_edges_from([(4, 6, 1.0), (6, 2, 1.0), (2, 4, 1.0)], weight="distance_m")
    assert select_cluster_head([6, 4, 2], "central", graph=triangle) == 2
    assert select_cluster_head([6], "central", graph=triangle) == 6
    with pytest.raises(ValueError, match="graph"):
        select_cluster_head([3, 5], "central")
    with pytest.raises(ValueError, match="connected"):
        select_cluster_head([3, 9], "central", graph=g)
    with pytest.raises(ValueError, match="distance_m"):
        select_cluster_head([0, 1], "central", graph=nx.path_graph(2))


def test_head_random_is_seeded_and_covers_members() -> None:
    members = [9, 8, 5, 3]
    a = [select_cluster_head(members, "random", rng=np.random.default_rng(s)) for s in range(200)]
    b = [select_cluster_head(members[::-1], "random", rng=np.random.default_rng(s)) for s in range(200)]
    assert a == b and set(a) == set(members) and all(isinstance(v, int) for v in a)
    with pytest.raises(ValueError, match="rng"):
        select_cluster_head(members, "random")
    with pytest.raises(ValueError, match="strategy"):
        select_cluster_head(members, "closest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="members"):
        select_cluster_head([], "random", rng=np.random.default_rng(0))
