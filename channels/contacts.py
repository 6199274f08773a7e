"""D2D geometry and graphs: contact graphs, MST connection, contact intervals, consensus weights, cluster heads.

Positions are in metres on a plane, times in simulated seconds. A pair of
nodes is *in contact* when their distance is at most the D2D radius R
(closed disc, ``distance_m <= radius_m``), the HF-FM prototype's
"neighbours within 30 m" (arXiv 2509.03695).

- :func:`contact_graph` — the unit-disc graph of a snapshot (KD-tree, edge
  attribute ``distance_m``);
- :func:`connect_with_mst` — the prototype's "clusters made connected by
  adding minimum-spanning-tree edges";
- :func:`contact_intervals` — exact contact start/end times for nodes moving
  linearly between trace samples;
- :func:`max_degree_weights`, :func:`metropolis_weights`, :func:`consensus`,
  :func:`consensus_factor` — distributed averaging x ← W·x (Xiao & Boyd 2004);
- :func:`select_cluster_head`, :func:`clusters` — who uploads for whom.

Graph functions number the nodes of a weight matrix in ``sorted(graph.nodes)``
order.

    >>> xy = np.array([[0.0, 0.0], [20.0, 0.0], [100.0, 0.0]])
    >>> g = contact_graph(xy, 30.0)
    >>> sorted(g.edges(data="distance_m"))
    [(0, 1, 20.0)]
    >>> clusters(g, [0, 1, 2])
    [[0, 1], [2]]
    >>> h = connect_with_mst(g, xy)
    >>> sorted(h.edges(data="mst", default=False))
    [(0, 1, False), (1, 2, True)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import networkx as nx
import numpy as np
from numpy.typing import ArrayLike
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

CONTACT_DTYPE = np.dtype([("start_s", "<f8"), ("end_s", "<f8"), ("a", "<i4"), ("b", "<i4")])
"""Row type of :func:`contact_intervals`: closed interval [start_s, end_s] of contact between nodes a < b."""

# Relative slack of KD-tree query radii; the exact test is then applied to the candidates.
_QUERY_SLACK = 1e-9
# Pieces of one pair's contact in consecutive trace segments are joined when both touch the
# shared sample time to within this fraction of the segment length (rounding of the roots).
_MERGE_REL_TOL = 1e-9


# --------------------------------------------------------------------------- validation helpers


def _xy_array(xy_m: ArrayLike, name: str = "xy_m") -> np.ndarray:
    """``xy_m`` as a finite float array of shape (n, 2)."""
    try:
        xy = np.asarray(xy_m, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers of shape (n, 2), got {xy_m!r}") from exc
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2), got {xy.shape}")
    if not np.isfinite(xy).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return xy


def _radius(radius_m: float, *, strictly_positive: bool = False) -> float:
    try:
        r = float(radius_m)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"radius_m must be a number, got {radius_m!r}") from exc
    ok = np.isfinite(r) and (r > 0 if strictly_positive else r >= 0)
    if not ok:
        raise ValueError(f"radius_m must be {'positive' if strictly_positive else 'non-negative'} and finite, got {r}")
    return r


def _node_ids(nodes: Sequence[int], n: int | None, name: str) -> list[int]:
    """Distinct integer node ids (Python ints); length ``n`` when given."""
    try:
        ids = [int(v) for v in nodes]
        bad = [v for v in nodes if int(v) != v or isinstance(v, bool)]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of integer node ids, got {nodes!r}") from exc
    if bad:
        raise ValueError(f"{name} must hold integer node ids, got {bad[0]!r}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"{name} must not repeat a node id, got {ids}")
    if n is not None and len(ids) != n:
        raise ValueError(f"{name} must have one id per position ({n}), got {len(ids)}")
    return ids


def _undirected(graph: nx.Graph, name: str = "graph") -> None:
    if not isinstance(graph, nx.Graph):
        raise ValueError(f"{name} must be a networkx.Graph, got {type(graph).__name__}")
    if graph.is_directed():
        raise ValueError(f"{name} must be undirected (D2D contacts are symmetric)")


def _pair_distance_m(xy: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """‖xy[i] − xy[j]‖₂ for index arrays i, j (the one distance formula of this module)."""
    diff = xy[i] - xy[j]
    return np.sqrt(np.sum(diff * diff, axis=-1))


# --------------------------------------------------------------------------- snapshot graphs


def contact_graph(xy_m: ArrayLike, radius_m: float, nodes: Sequence[int] | None = None) -> nx.Graph:
    """Unit-disc contact graph: an edge {i, j} iff ‖p_i − p_j‖₂ ≤ R, with edge attribute ``distance_m``.

    Candidate pairs come from a KD-tree (``scipy.spatial.cKDTree.query_pairs``,
    O(n log n + edges)), then the exact test ``distance_m <= radius_m`` is
    applied, so the boundary is closed and uses the same distance formula as the
    rest of this module.

    Args:
        xy_m: (n, 2) positions in m.
        radius_m: D2D range R in m (≥ 0; the HF-FM prototype uses 30 m).
        nodes: node id of each row (default 0..n−1). Every id is a node of the
            result, also when it has no neighbour.

    Raises:
        ValueError: ``xy_m`` not (n, 2) or not finite, ``radius_m`` negative,
            ``nodes`` of the wrong length, repeated or not integers.

    >>> g = contact_graph([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]], 5.0, nodes=[7, 2, 9])
    >>> sorted(g.nodes), list(g.edges(data="distance_m"))
    ([2, 7, 9], [(7, 2, 5.0)])
    """
    xy = _xy_array(xy_m)
    r = _radius(radius_m)
    n = len(xy)
    ids = list(range(n)) if nodes is None else _node_ids(nodes, n, "nodes")
    graph = nx.Graph()
    graph.add_nodes_from(ids)
    if n < 2:
        return graph
    pairs = cKDTree(xy).query_pairs(r * (1.0 + _QUERY_SLACK), output_type="ndarray")
    if len(pairs) == 0:
        return graph
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    d = _pair_distance_m(xy, pairs[:, 0], pairs[:, 1])
    keep = d <= r
    id_arr = np.asarray(ids)
    graph.add_edges_from(
        (int(id_arr[i]), int(id_arr[j]), {"distance_m": float(dist)})
        for (i, j), dist in zip(pairs[keep], d[keep], strict=True)
    )
    return graph


def _dense_prim(weight: np.ndarray) -> list[tuple[int, int]]:
    """Minimum spanning tree of the complete graph with symmetric weight matrix ``weight`` (k×k, k ≥ 1).

    Prim (1957) on a dense matrix, O(k²) with one vectorized update per added
    vertex; ties go to the smallest index. Returns k − 1 pairs (a, b), a < b.
    Zero weights are ordinary edges (unlike ``scipy.sparse.csgraph``'s dense
    input, where values within 1e-8 of 0 mean "no edge").
    """
    k = len(weight)
    in_tree = np.zeros(k, dtype=bool)
    in_tree[0] = True
    best = weight[0].astype(float).copy()
    parent = np.zeros(k, dtype=np.int64)
    pairs = []
    for _ in range(k - 1):
        v = int(np.argmin(np.where(in_tree, np.inf, best)))
        pairs.append((min(v, int(parent[v])), max(v, int(parent[v]))))
        in_tree[v] = True
        closer = weight[v] < best
        best = np.where(closer, weight[v], best)
        parent = np.where(closer, v, parent)
    return pairs


def connect_with_mst(graph: nx.Graph, xy_m: ArrayLike, nodes: Sequence[int] | None = None) -> nx.Graph:
    """A connected copy of ``graph``: components joined by minimum-spanning-forest edges of the complete graph.

    Kruskal (1956) over the complete Euclidean graph on the nodes, starting from
    the components of ``graph`` as already-merged sets: edges are taken in order
    of increasing length and kept when they join two different sets. Kept edges
    are exactly the minimum spanning tree of the *component graph* whose edge
    {A, B} has weight min_{i∈A, j∈B} ‖p_i − p_j‖ (contracting the components
    does not change which inter-component edges Kruskal keeps), so each added
    edge is the closest pair of points between the two groups it joins. This is
    the HF-FM prototype's "clusters made connected by adding
    minimum-spanning-tree edges" (arXiv 2509.03695).

    Implementation: dense distance matrix (O(n²) memory, fine for a few hundred
    to a few thousand nodes), per-component-pair minima with
    ``np.minimum.reduceat``, Prim's algorithm on the k×k component matrix
    (same tree as Kruskal up to ties; coincident points of two components give
    a 0 m edge), and one argmin per added edge.

    Added edges carry ``mst=True`` and ``distance_m``; existing edges and their
    attributes are copied unchanged.

    Args:
        graph: undirected graph (e.g. from :func:`contact_graph`).
        xy_m: (n, 2) positions in m, row k the position of ``nodes[k]``.
        nodes: node id of each row of ``xy_m``; default ``sorted(graph.nodes)``.
            Must be exactly the node set of ``graph``.

    Raises:
        ValueError: ``graph`` directed, ``xy_m`` not (len(graph), 2), or
            ``nodes`` not the node set of ``graph``.

    >>> xy = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [30.0, 0.0]])
    >>> h = connect_with_mst(contact_graph(xy, 2.0), xy)
    >>> sorted((u, v, d) for u, v, d in h.edges(data="distance_m") if h.edges[u, v].get("mst"))
    [(1, 2, 9.0), (2, 3, 20.0)]
    """
    _undirected(graph)
    xy = _xy_array(xy_m)
    ids = sorted(graph.nodes) if nodes is None else _node_ids(nodes, None, "nodes")
    if set(ids) != set(graph.nodes) or len(ids) != graph.number_of_nodes():
        raise ValueError(f"nodes must be exactly the nodes of graph ({graph.number_of_nodes()} nodes), got {ids}")
    if len(xy) != len(ids):
        raise ValueError(f"xy_m must have one row per node of graph ({len(ids)}), got shape {xy.shape}")
    out = graph.copy()
    n = len(ids)
    if n < 2:
        return out
    index = {v: k for k, v in enumerate(ids)}
    edges = np.array([(index[u], index[v]) for u, v in graph.edges()], dtype=np.int64).reshape(-1, 2)
    adjacency = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    k, labels = connected_components(adjacency, directed=False)
    if k == 1:
        return out
    order = np.argsort(labels, kind="stable")  # nodes grouped by component, ascending index inside
    starts = np.searchsorted(labels[order], np.arange(k))
    dist = cdist(xy, xy)
    dist_sorted = dist[np.ix_(order, order)]
    comp_min = np.minimum.reduceat(np.minimum.reduceat(dist_sorted, starts, axis=0), starts, axis=1)
    members = np.split(order, starts[1:])
    added = []
    for a, b in sorted(_dense_prim(comp_min)):
        block = dist[np.ix_(members[a], members[b])]
        ia, ib = np.unravel_index(int(np.argmin(block)), block.shape)
        i, j = sorted((int(members[a][ia]), int(members[b][ib])))
        added.append((i, j))
    pairs = np.array(added)
    d = _pair_distance_m(xy, pairs[:, 0], pairs[:, 1])
    out.add_edges_from(
        (ids[i], ids[j], {"distance_m": float(dist_ij), "mst": True})
        for (i, j), dist_ij in zip(added, d, strict=True)
    )
    return out


# --------------------------------------------------------------------------- contacts over time


def _segment_contacts(
    p0: np.ndarray, p1: np.ndarray, dt_s: float, r: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Contact pieces of one trace segment of length ``dt_s``: (i, j, τ_start, τ_end, clipped_start, clipped_end).

    Returns i < j, offsets 0 ≤ τ_start ≤ τ_end ≤ dt_s from the segment start,
    and whether each piece was cut by the segment start / end.
    """
    n = len(p0)
    empty_i = np.empty(0, dtype=np.int64)
    empty_f = np.empty(0)
    empty_b = np.empty(0, dtype=bool)
    if n < 2:
        return empty_i, empty_i, empty_f, empty_f, empty_b, empty_b
    step = p1 - p0
    max_disp = float(np.sqrt(np.max(np.sum(step * step, axis=1))))
    # Each node stays within half its displacement of its midpoint position, so a pair
    # that ever comes within r is within r + max_disp at the midpoints.
    mid = 0.5 * (p0 + p1)
    pairs = cKDTree(mid).query_pairs((r + max_disp) * (1.0 + _QUERY_SLACK) + 1e-12, output_type="ndarray")
    if len(pairs) == 0:
        return empty_i, empty_i, empty_f, empty_f, empty_b, empty_b
    i, j = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    dp = p0[j] - p0[i]  # relative position at τ = 0
    dv = (step[j] - step[i]) / dt_s  # relative velocity
    a = np.sum(dv * dv, axis=1)
    b = 2.0 * np.sum(dp * dv, axis=1)
    c = np.sum(dp * dp, axis=1) - r * r
    disc = b * b - 4.0 * a * c
    moving = a > 0.0
    # Still pairs (same velocity): in contact on the whole segment iff c ≤ 0.
    lo = np.where(c <= 0.0, 0.0, np.inf)
    hi = np.where(c <= 0.0, dt_s, -np.inf)
    real = moving & (disc >= 0.0)
    if real.any():
        am, bm, cm = a[real], b[real], c[real]
        sqrt_disc = np.sqrt(disc[real])
        # Numerically stable roots (Press et al., Numerical Recipes §5.6):
        # q = −(b + sgn(b)·√disc)/2, roots q/a and c/q.
        q = -0.5 * (bm + np.where(bm >= 0.0, 1.0, -1.0) * sqrt_disc)
        r1 = q / am
        r2 = np.divide(cm, q, out=np.zeros_like(q), where=q != 0.0)  # q = 0 ⇒ b = c = 0: double root 0
        lo[real] = np.minimum(r1, r2)
        hi[real] = np.maximum(r1, r2)
    lo[moving & ~real] = np.inf
    hi[moving & ~real] = -np.inf
    start = np.maximum(lo, 0.0)
    end = np.minimum(hi, dt_s)
    hit = start <= end
    tol = _MERGE_REL_TOL * dt_s
    return (i[hit], j[hit], start[hit], end[hit], lo[hit] <= tol, hi[hit] >= dt_s - tol)


def contact_intervals(times_s: ArrayLike, xy_m: ArrayLike, radius_m: float) -> np.ndarray:
    """Exact D2D contact intervals of nodes moving linearly between trace samples.

    Between samples t_k and t_{k+1} (Δt = t_{k+1} − t_k) node i moves at constant
    velocity v_i = (p_i(t_{k+1}) − p_i(t_k))/Δt. For a pair (i, j) with relative
    position Δp = p_j(t_k) − p_i(t_k) and relative velocity Δv = v_j − v_i, the
    distance at t_k + τ is ‖Δp + Δv·τ‖, so the pair is in contact when

        ‖Δv‖²·τ² + 2(Δp·Δv)·τ + ‖Δp‖² − R² ≤ 0,   0 ≤ τ ≤ Δt,

    a quadratic a·τ² + b·τ + c ≤ 0 with a = ‖Δv‖², b = 2Δp·Δv, c = ‖Δp‖² − R².
    For a > 0 the solution is [τ₁, τ₂] ∩ [0, Δt] with τ₁,₂ = (−b ∓ √(b² − 4ac))/(2a)
    (none if b² − 4ac < 0); for a = 0 (equal velocities) it is all of [0, Δt] iff
    c ≤ 0. Roots use the cancellation-free form q = −(b + sgn(b)√(b² − 4ac))/2,
    τ = q/a and c/q (Press et al., *Numerical Recipes*, §5.6).

    Pieces of the same pair in consecutive segments that meet at the shared
    sample are merged into one interval. A contact already open at the first
    sample starts at ``times_s[0]``; one still open at the last sample ends at
    ``times_s[-1]`` (the trace says nothing beyond it). Intervals are closed;
    a tangential pass gives start_s == end_s.

    Candidate pairs per segment come from a KD-tree on the segment's midpoint
    positions with radius R + max_i ‖p_i(t_{k+1}) − p_i(t_k)‖ (each node stays
    within half its displacement of its midpoint), so the cost is
    O(T·(n log n + candidates)), fine for thousands of nodes.

    Args:
        times_s: (T,) strictly increasing sample times in s.
        xy_m: (T, n, 2) positions in m; ``xy_m[k, i]`` is node i at ``times_s[k]``.
        radius_m: D2D range R in m (> 0).

    Returns:
        Structured array of dtype :data:`CONTACT_DTYPE` — fields ``start_s``,
        ``end_s``, ``a``, ``b`` (node indices, a < b) — sorted by
        (start_s, a, b).

    Raises:
        ValueError: ``times_s`` not 1-D, not finite or not strictly increasing;
            ``xy_m`` not (T, n, 2) or not finite; ``radius_m`` not positive.

    Node 1 passes node 0 at 10 m/s along the x axis; R = 30 m:

    >>> c = contact_intervals([0.0, 20.0], [[[0, 0], [-100, 0]], [[0, 0], [100, 0]]], 30.0)
    >>> c[["start_s", "end_s"]].tolist(), c["a"].tolist(), c["b"].tolist()
    ([(7.0, 13.0)], [0], [1])
    """
    try:
        t = np.asarray(times_s, dtype=float)
        xy = np.asarray(xy_m, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"times_s and xy_m must be numeric arrays: {exc}") from exc
    if t.ndim != 1 or len(t) < 1:
        raise ValueError(f"times_s must have shape (T,) with T ≥ 1, got {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError("times_s must be finite")
    if len(t) > 1 and not np.all(np.diff(t) > 0):
        raise ValueError("times_s must be strictly increasing")
    if xy.ndim != 3 or xy.shape[0] != len(t) or xy.shape[2] != 2:
        raise ValueError(f"xy_m must have shape (T={len(t)}, n, 2), got {xy.shape}")
    if not np.isfinite(xy).all():
        raise ValueError("xy_m must be finite (no NaN or inf)")
    r = _radius(radius_m, strictly_positive=True)

    if len(t) == 1:  # a single snapshot: zero-length contacts at that instant
        g = contact_graph(xy[0], r)
        ab = np.array(sorted(g.edges()), dtype=np.int64).reshape(-1, 2)
        out = np.zeros(len(ab), dtype=CONTACT_DTYPE)
        out["start_s"] = out["end_s"] = t[0]
        out["a"], out["b"] = ab[:, 0], ab[:, 1]
        return out

    parts = [_segment_contacts(xy[k], xy[k + 1], float(t[k + 1] - t[k]), r) for k in range(len(t) - 1)]
    seg = np.concatenate([np.full(len(p[0]), k, dtype=np.int64) for k, p in enumerate(parts)])
    i, j, tau0, tau1, open_start, open_end = (np.concatenate([p[f] for p in parts]) for f in range(6))
    if len(seg) == 0:
        return np.zeros(0, dtype=CONTACT_DTYPE)
    start = t[seg] + tau0
    end = np.where(tau1 >= t[seg + 1] - t[seg], t[seg + 1], t[seg] + tau1)
    order = np.lexsort((seg, j, i))
    i, j, seg, start, end = i[order], j[order], seg[order], start[order], end[order]
    open_start, open_end = open_start[order], open_end[order]
    # Piece m continues piece m−1: same pair, next segment, and both touch the shared sample.
    cont = np.zeros(len(seg), dtype=bool)
    cont[1:] = (i[1:] == i[:-1]) & (j[1:] == j[:-1]) & (seg[1:] == seg[:-1] + 1) & open_end[:-1] & open_start[1:]
    first = np.flatnonzero(~cont)
    last = np.append(first[1:] - 1, len(seg) - 1)
    out = np.zeros(len(first), dtype=CONTACT_DTYPE)
    out["start_s"], out["end_s"] = start[first], end[last]
    out["a"], out["b"] = i[first], j[first]
    return out[np.lexsort((out["b"], out["a"], out["start_s"]))]


# --------------------------------------------------------------------------- consensus


def _adjacency(graph: nx.Graph) -> np.ndarray:
    """0/1 symmetric adjacency in ``sorted(graph.nodes)`` order, self-loops ignored."""
    _undirected(graph)
    ids = sorted(graph.nodes)
    index = {v: k for k, v in enumerate(ids)}
    adj = np.zeros((len(ids), len(ids)))
    e = np.array([(index[u], index[v]) for u, v in graph.edges() if u != v], dtype=np.int64).reshape(-1, 2)
    adj[e[:, 0], e[:, 1]] = 1.0
    adj[e[:, 1], e[:, 0]] = 1.0
    return adj


def max_degree_weights(graph: nx.Graph, d: float | None = None) -> np.ndarray:
    """Constant-edge-weight consensus matrix W = I − d·L (Xiao & Boyd 2004, §4.1).

    L = D − A is the graph Laplacian (D the degree diagonal, A the adjacency), so
    x ← W·x is the consensus step x_i ← x_i + d·Σ_{j∈N(i)} (x_j − x_i) of the
    HF-FM paper's D2D cooperative training (arXiv 2509.03695; Hosseinalipour et
    al., multi-stage hybrid FL). W is symmetric with W·1 = 1, hence doubly
    stochastic. With 0 < d < 1/Δ (Δ the maximum degree) every diagonal entry
    1 − d·deg_i is positive, W is nonnegative, and on a connected graph its
    eigenvalues other than 1 lie in (−1, 1), so W^k → 11ᵀ/n. (Xiao & Boyd's
    "maximum-degree weights" take d = 1/Δ, which on a bipartite regular graph
    gives eigenvalue −1 and no convergence, hence the strict bound here.)

    Args:
        graph: undirected graph; node k of W is ``sorted(graph.nodes)[k]``.
        d: step size; default 1/(Δ + 1). Any d > 0 is allowed when the graph
            has no edge.

    Returns:
        (n, n) float array.

    Raises:
        ValueError: ``graph`` directed, or ``d`` not in (0, 1/Δ).

    >>> max_degree_weights(nx.path_graph(3))
    array([[0.66666667, 0.33333333, 0.        ],
           [0.33333333, 0.33333333, 0.33333333],
           [0.        , 0.33333333, 0.66666667]])
    """
    adj = _adjacency(graph)
    deg = adj.sum(axis=1)
    max_deg = float(deg.max()) if len(deg) else 0.0
    if d is None:
        step = 1.0 / (max_deg + 1.0)
    else:
        step = float(d)
        if not (step > 0.0 and (max_deg == 0.0 or step * max_deg < 1.0)):
            raise ValueError(f"d must satisfy 0 < d < 1/max_degree = 1/{max_deg:g}, got {d}")
    laplacian = np.diag(deg) - adj
    return np.eye(len(adj)) - step * laplacian


def metropolis_weights(graph: nx.Graph) -> np.ndarray:
    """Metropolis–Hastings consensus weights (Xiao & Boyd 2004, §4.2; Xiao, Boyd & Lall 2005).

        W_ij = 1 / (1 + max(deg_i, deg_j))   for each edge {i, j},
        W_ii = 1 − Σ_{j≠i} W_ij,             W_ij = 0 otherwise.

    Symmetric and doubly stochastic with W_ii ≥ 1/(1 + deg_i) > 0; needs only
    the neighbours' degrees, so each node can compute its own row. Converges to
    the average on any connected graph.

    Args:
        graph: undirected graph; node k of W is ``sorted(graph.nodes)[k]``.

    Returns:
        (n, n) float array.

    Raises:
        ValueError: ``graph`` directed.

    >>> metropolis_weights(nx.star_graph(2))
    array([[0.33333333, 0.33333333, 0.33333333],
           [0.33333333, 0.66666667, 0.        ],
           [0.33333333, 0.        , 0.66666667]])
    """
    adj = _adjacency(graph)
    deg = adj.sum(axis=1)
    w = adj / (1.0 + np.maximum.outer(deg, deg))
    np.fill_diagonal(w, 1.0 - w.sum(axis=1))
    return w


def _weight_matrix(w: ArrayLike) -> np.ndarray:
    try:
        m = np.asarray(w, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"W must be a numeric (n, n) array, got {w!r}") from exc
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"W must be square (n, n), got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("W must be finite")
    return m


def consensus(x: ArrayLike, W: ArrayLike, steps: int) -> np.ndarray:  # noqa: N803 (matrix name of the paper)
    """``steps`` synchronous consensus iterations x ← W·x (Xiao & Boyd 2004, eq. (1)).

    Row i of ``x`` is node i's value (any trailing shape, e.g. a flattened
    model); the result is W^steps·x. With a doubly stochastic W the average
    (1/n)·Σ_i x_i is preserved at every step; on a connected graph with W from
    :func:`max_degree_weights` or :func:`metropolis_weights` every row tends to
    that average, the error shrinking by at least :func:`consensus_factor` (W)
    per step.

    Raises:
        ValueError: ``W`` not square, ``x`` without one row per node, or
            ``steps`` not a non-negative integer.

    >>> consensus(np.array([0.0, 3.0, 6.0]), metropolis_weights(nx.path_graph(3)), 60).round(9)
    array([3., 3., 3.])
    """
    m = _weight_matrix(W)
    try:
        vals = np.array(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"x must be a numeric array with one row per node, got {x!r}") from exc
    if vals.ndim == 0 or vals.shape[0] != m.shape[0]:
        raise ValueError(f"x must have one row per node ({m.shape[0]}), got shape {vals.shape}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    flat = vals.reshape(len(vals), -1)
    for _ in range(int(steps)):
        flat = m @ flat
    return flat.reshape(vals.shape)


def consensus_factor(W: ArrayLike) -> float:  # noqa: N803
    """Per-step convergence factor r(W) = ‖W − 11ᵀ/n‖₂ (Xiao & Boyd 2004, eq. (4)).

    For symmetric doubly stochastic W this is max(|λ₂|, |λ_n|), the largest
    eigenvalue modulus apart from the eigenvalue 1 of the all-ones vector;
    ‖x_{k+1} − x̄‖ ≤ r(W)·‖x_k − x̄‖. r < 1 iff the consensus converges (a
    connected graph with the weights of this module); 1 on a disconnected graph.

    >>> round(consensus_factor(metropolis_weights(nx.complete_graph(4))), 12)
    0.0
    """
    m = _weight_matrix(W)
    n = len(m)
    if n == 0:
        return 0.0
    return float(np.linalg.norm(m - 1.0 / n, 2))


# --------------------------------------------------------------------------- clusters and heads


def _members(members: Sequence[int], graph: nx.Graph | None) -> list[int]:
    ids = _node_ids(members, None, "members")
    if not ids:
        raise ValueError("members must not be empty")
    if graph is not None:
        missing = [v for v in ids if v not in graph]
        if missing:
            raise ValueError(f"members must be nodes of graph; not in graph: {missing}")
    return ids


def clusters(graph: nx.Graph, members: Sequence[int]) -> list[list[int]]:
    """Connected components of the subgraph of ``graph`` induced by ``members``.

    Paths through non-members do not count (devices of another cell do not
    relay). Each cluster is sorted; clusters are sorted by their first id.

    Raises:
        ValueError: ``graph`` directed, ``members`` repeated, not integers, or
            not nodes of ``graph``.

    >>> clusters(nx.path_graph(5), [4, 0, 1, 3])
    [[0, 1], [3, 4]]
    """
    _undirected(graph)
    ids = _node_ids(members, None, "members")
    missing = [v for v in ids if v not in graph]
    if missing:
        raise ValueError(f"members must be nodes of graph; not in graph: {missing}")
    comps = [sorted(c) for c in nx.connected_components(graph.subgraph(ids))]
    return sorted(comps, key=lambda c: c[0])


def select_cluster_head(
    members: Sequence[int],
    strategy: Literal["best_snr", "central", "random"],
    *,
    snr: Mapping[int, float] | None = None,
    graph: nx.Graph | None = None,
    rng: np.random.Generator | None = None,
) -> int:
    """The member that collects its cluster's updates and uploads for it (HF-FM prototype's cluster head).

    Strategies:

    - ``"best_snr"``: argmax_i snr[i] — the member with the best uplink, so the
      one upload of the cluster is the fastest (needs ``snr``, node → SNR, any
      monotone unit: linear or dB).
    - ``"central"``: argmin_i Σ_{j∈members} δ(i, j), δ the shortest-path length
      with edge weight ``distance_m`` in the subgraph induced by ``members`` —
      the max-closeness node (closeness = (n − 1)/Σ_j δ(i, j), Bavelas 1950;
      ``networkx.closeness_centrality``), minimising total D2D distance to the
      head (needs ``graph``; the members must be connected in it).
    - ``"random"``: ``rng.choice(sorted(members))`` — the prototype's unseeded
      choice, made reproducible (needs ``rng``).

    Ties are broken by the smallest node id.

    Raises:
        ValueError: unknown ``strategy``; ``members`` empty or repeated; the
            argument the strategy needs missing or incomplete (``snr`` without a
            member or with NaN, ``graph`` without a member, an edge without
            ``distance_m``, or members not connected in it).

    >>> select_cluster_head([4, 2, 9], "best_snr", snr={2: 3.0, 4: 8.0, 9: 8.0})
    4
    >>> select_cluster_head([0, 1, 2], "central", graph=contact_graph([[0, 0], [1, 0], [2, 0]], 1.0))
    1
    """
    if strategy == "best_snr":
        ids = _members(members, None)
        if snr is None:
            raise ValueError("snr (mapping node → uplink SNR) is required for strategy='best_snr'")
        missing = [v for v in ids if v not in snr]
        if missing:
            raise ValueError(f"snr has no value for members {missing}")
        values = np.array([float(snr[v]) for v in ids])
        if np.isnan(values).any():
            raise ValueError("snr must not be NaN for a member")
        best = values.max()
        return min(v for v, s in zip(ids, values, strict=True) if s == best)
    if strategy == "central":
        if graph is None:
            raise ValueError("graph (with edge attribute distance_m) is required for strategy='central'")
        _undirected(graph)
        ids = _members(members, graph)
        sub = graph.subgraph(ids)
        no_dist = [(u, v) for u, v, dist in sub.edges(data="distance_m") if dist is None]
        if no_dist:
            raise ValueError(f"graph edges need attribute distance_m; missing on {no_dist[0]}")
        if not nx.is_connected(sub):
            raise ValueError(
                f"members must be connected in graph for strategy='central', got clusters {clusters(graph, ids)} "
                "(use connect_with_mst, or pick a head per cluster)"
            )
        lengths = nx.all_pairs_dijkstra_path_length(sub, weight="distance_m")
        totals = {v: sum(to.values()) for v, to in lengths}
        best = min(totals.values())
        return min(v for v, s in totals.items() if s == best)
    if strategy == "random":
        ids = _members(members, None)
        if rng is None:
            raise ValueError("rng (numpy.random.Generator) is required for strategy='random'")
        return int(rng.choice(np.array(sorted(ids))))
    raise ValueError(f"strategy must be one of 'best_snr', 'central', 'random', got {strategy!r}")
