"""D2D cooperation inside a cell: the collect step of an edge round with cluster-head relaying or consensus.

Both variants plug into :func:`sim.protocols.hierarchical` (edge-only or
HierFAVG) in place of "every device uploads": each round an edge's switched-on
devices are grouped into *clusters*, the connected components of their D2D
graph now (:meth:`sim.d2d.Sidelink.graph`: contacts, plus minimum-spanning-tree
links when ``d2d.connect_with_mst``, which makes a cell one cluster).

* **Relay** (``d2d = "relay"``, the HF-FM prototype's D2D variant, arXiv
  2509.03695): each cluster picks a head (``head_selection``: best uplink
  median SNR, most central, or seeded random). Updates travel to the head
  along the cluster's minimum spanning tree (edge weight: distance), as a
  convergecast: each device trains, waits for its children's subtree
  aggregates, averages them with its own update (weights: samples) and
  forwards the result once to its parent. The head makes the cluster's one
  uplink. A D2D transfer that fails (its contact closed) makes the sender
  upload its subtree aggregate itself. The edge averages what arrives
  (weights: samples), so its model is the plain sample-weighted average of
  its devices' updates, as without D2D.
* **Consensus** (``d2d = "consensus"``; multi-stage hybrid FL, Hosseinalipour
  et al. 2020, arXiv 2007.09511): after local training, each cluster runs
  ``consensus_steps`` synchronous steps x_i ← x_i + d·Σ_{j∈N(i)} (x_j − x_i),
  i.e. x ← W·x with W from :func:`channels.max_degree_weights` (d = 1/(Δ+1))
  or :func:`channels.metropolis_weights`. In every step each member
  broadcasts its model once to its neighbours at the worst neighbour's rate,
  members taking turns on the cluster's band. A pair whose exchange failed in
  a step does not mix in that step (its weight moves to the diagonal, so W
  stays doubly stochastic). Then one member per cluster, drawn with the D2D
  generator, uploads for the cluster with the cluster's samples as weight.
  The steps run on (n_i·x_i, n_i) and each device uses their ratio (ratio
  consensus), so the models tend to the *sample-weighted* mean; as the maths
  is linear, device u's model after the steps is computed once,
  Σ_j P_uj n_j x_j / Σ_j P_uj n_j with P the product of the step matrices,
  through the learner's weighted mean (the combination's compute time is not
  charged: microseconds against seconds of airtime).
"""

from __future__ import annotations

import functools
from collections.abc import Generator, Iterable, Sequence
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np
import simpy

from channels import clusters, consensus, distance_m, max_degree_weights, metropolis_weights, select_cluster_head
from sim.d2d import Sidelink
from sim.d2d_medium import median_snr_db
from sim.learner import Update
from sim.scenario import SchemeConfig

if TYPE_CHECKING:
    from sim.protocols import EdgeRound
    from sim.world import Edge, World

ModelResult = Generator[simpy.Event, object, Update]


def d2d_edge_round(world: World, scheme: SchemeConfig) -> EdgeRound:
    """The collect step of ``scheme``'s edge rounds on ``world`` (``scheme.d2d`` is "relay" or "consensus")."""
    sidelink = Sidelink(world)
    if scheme.d2d == "relay":
        return functools.partial(relay_round, sidelink, scheme.head_selection)
    return functools.partial(consensus_round, sidelink, scheme.consensus_steps, scheme.consensus_weights)


def cluster_head(sidelink: Sidelink, members: Sequence[int], strategy: str, graph: nx.Graph) -> int:
    """The member that uploads for the cluster (:func:`channels.select_cluster_head`).

    ``best_snr`` ranks members by the median uplink SNR to their edge now
    (:func:`sim.d2d_medium.median_snr_db`), ``central`` by D2D closeness in
    ``graph``, ``random`` draws with the sidelink's generator.
    """
    if strategy == "best_snr":
        world = sidelink.world
        ids = np.asarray(members)
        edge_xy = world.layout.edge_xy[world.layout.device_edge[ids]]
        snr_db = median_snr_db(world.scenario.uplink, distance_m(sidelink.positions(world.env.now)[ids], edge_xy))
        return select_cluster_head(members, "best_snr", snr=dict(zip(ids.tolist(), np.atleast_1d(snr_db).tolist())))
    if strategy == "central":
        return select_cluster_head(members, "central", graph=graph)
    return select_cluster_head(members, "random", rng=sidelink.rng)


# --------------------------------------------------------------------------- relay


def relay_round(
    sidelink: Sidelink, head_selection: str, world: World, edge: Edge, participants: list[int], model: Update, r: int
) -> ModelResult:
    """One edge round with cluster-head relaying; returns the edge's new model."""
    env = world.env
    graph = sidelink.graph(participants)
    uploads: dict[int, Update] = {}
    jobs = [
        env.process(_relay_cluster(sidelink, graph, members, cluster_head(sidelink, members, head_selection, graph),
                                   model, r, uploads))  # fmt: skip
        for members in clusters(graph, participants)
    ]
    yield env.all_of(jobs)
    return (yield from world.aggregate(edge.id, [uploads[d] for d in sorted(uploads)], r, base=model))


def _relay_cluster(
    sidelink: Sidelink, graph: nx.Graph, members: list[int], head: int, model: Update, r: int,
    uploads: dict[int, Update],
) -> Generator[simpy.Event, object, None]:  # fmt: skip
    """Convergecast of one cluster to its head along the minimum spanning tree (edge weight: distance)."""
    env = sidelink.world.env
    tree = nx.minimum_spanning_tree(graph.subgraph(members), weight="distance_m")
    parent = dict(nx.bfs_predecessors(tree, head))
    forwarded = {v: env.event() for v in members}
    jobs = [
        env.process(_relay_member(sidelink, graph, v, parent.get(v), [c for c in members if parent.get(c) == v],
                                  forwarded, model, r, uploads))  # fmt: skip
        for v in members
    ]
    yield env.all_of(jobs)


def _relay_member(
    sidelink: Sidelink, graph: nx.Graph, device: int, parent: int | None, children: list[int],
    forwarded: dict[int, simpy.Event], model: Update, r: int, uploads: dict[int, Update],
) -> Generator[simpy.Event, object, None]:  # fmt: skip
    """Train, merge the children's subtree aggregates, forward once (or upload: head, or D2D failure)."""
    world = sidelink.world
    own = yield from world.train(device, model, r)
    received = yield world.env.all_of([forwarded[c] for c in children])
    parts = [own] + [received[forwarded[c]] for c in children if received[forwarded[c]] is not None]
    subtree = own if len(parts) == 1 else (yield from world.aggregate(device, parts, r))
    if parent is not None and (yield from sidelink.unicast(device, parent, subtree, r, graph)):
        forwarded[device].succeed(subtree)
        return
    yield from world.upload(device, subtree, r)
    uploads[device] = subtree
    forwarded[device].succeed(None)


# --------------------------------------------------------------------------- consensus


def consensus_round(
    sidelink: Sidelink, steps: int, weighting: str, world: World, edge: Edge, participants: list[int], model: Update,
    r: int,
) -> ModelResult:  # fmt: skip
    """One edge round with D2D consensus in each cluster, then one upload per cluster; returns the edge's model."""
    env = world.env
    graph = sidelink.graph(participants)
    jobs = [
        env.process(_consensus_cluster(sidelink, graph, members, steps, weighting, model, r))
        for members in clusters(graph, participants)
    ]
    done = yield env.all_of(jobs)
    return (yield from world.aggregate(edge.id, [done[job] for job in jobs], r, base=model))


def without_pairs(weights: np.ndarray, pairs: Iterable[tuple[int, int]]) -> np.ndarray:
    """W with the weight of each pair (i, j) (matrix indices) moved to the diagonal: those pairs do not mix.

    W'_ij = W'_ji = 0, W'_ii = W_ii + W_ij, W'_jj = W_jj + W_ji: rows and
    columns still sum to 1 and W' stays symmetric, so a step with W' keeps
    the average.

    >>> without_pairs(np.full((2, 2), 0.5), [(0, 1)])
    array([[1., 0.],
           [0., 1.]])
    """
    out = np.array(weights, dtype=float)
    for i, j in pairs:
        out[i, i] += out[i, j]
        out[j, j] += out[j, i]
        out[i, j] = out[j, i] = 0.0
    return out


def _consensus_cluster(
    sidelink: Sidelink, graph: nx.Graph, members: list[int], steps: int, weighting: str, model: Update, r: int
) -> ModelResult:
    """Train, ``steps`` consensus steps over D2D broadcasts, then the drawn member uploads; returns its upload."""
    world, env = sidelink.world, sidelink.world.env
    jobs = [env.process(world.train(v, model, r)) for v in members]
    trained = yield env.all_of(jobs)
    updates = [trained[job] for job in jobs]
    index = {v: i for i, v in enumerate(members)}
    mixing = np.eye(len(members))
    if len(members) > 1:
        cluster = graph.subgraph(members)
        weights = max_degree_weights(cluster) if weighting == "max_degree" else metropolis_weights(cluster)
        band = sidelink.band()
        for _ in range(steps):
            sends = [
                env.process(sidelink.broadcast(v, sorted(cluster.neighbors(v)), updates[index[v]], r, graph, band))
                for v in members
            ]
            missed = yield env.all_of(sends)
            failed = {tuple(sorted((index[v], index[u]))) for v, job in zip(members, sends) for u in missed[job]}
            mixing = consensus(mixing, without_pairs(weights, failed), 1)
    uploader = int(sidelink.rng.choice(members))
    upload = mix(world, updates, mixing[index[uploader]])
    yield from world.upload(uploader, upload, r)
    return upload


def mix(world: World, updates: Sequence[Update], row: np.ndarray) -> Update:
    """Per module, Σ_j row_j·w_j·x_j / Σ_j row_j·w_j over its holders, through the learner; weights: the members' sums.

    ``row`` is the uploader's row of the product of the step matrices and w_j
    member j's weight of the module (its samples): the result is what ratio
    consensus leaves at the uploader. It carries the modules held by some
    member the steps reached, each weighted by the whole cluster's weight of it.
    """
    parts = [
        Update(u.state, {k: float(p) * w for k, w in u.weights.items()}, u.n_samples)
        for u, p in zip(updates, row)
        if p > 0
    ]
    merged = world.learner.aggregate(parts, None)
    totals = {k: sum(u.weights.get(k, 0.0) for u in updates) for k in merged.modules}
    return Update(merged.state, totals, sum(u.n_samples for u in updates))
