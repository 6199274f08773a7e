"""Federated protocols as SimPy processes, written like their pseudo-code.

* **Star** — FedAvg through the cloud (McMahan et al. 2017): every round each
  device trains, uploads over the wide-area link, the cloud averages and sends
  the model back to every device.
* **Hierarchical** — HierFAVG (Liu et al. 2020, arXiv 1905.06641): every round
  each edge's devices train and upload over the shared cell, the edge
  averages; every ``cloud_period`` rounds the edges send their models over the
  backhaul, the cloud averages and returns the global model; the edge then
  broadcasts its (edge or global) model to its devices. Edges run their rounds
  independently and meet only at cloud rounds.
* **Edge-only** — hierarchical without the cloud.
* **+D2D** (``SchemeConfig.d2d``) — edge-only or hierarchical whose edge
  rounds gather the devices' models over the D2D sidelink first: cluster-head
  relaying or consensus (:mod:`sim.d2d_protocols`).

Module-wise (the HF-FM idea, arXiv 2509.03695): a device trains and sends
only the modules it holds (its modalities' encoders, its tasks' prompts and
heads, the shared adapters and experts) and receives only those; a server
averages each module over the children that sent it; modules no child sent
pass through. An edge sends the cloud the modules it aggregated whose rule puts
them at the cloud tier in this cloud round, and gets back the global version of
those its devices hold.

Devices switched off when a round starts sit it out (a holder with no
participant keeps its model). All weights are sample counts, so with every
device holding every module hierarchical with ``cloud_period = 1`` computes
the same model as star FedAvg.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import simpy

from sim.d2d_protocols import d2d_edge_round
from sim.learner import Update
from sim.scenario import SchemeConfig
from sim.world import Edge, World

Process = Generator[simpy.Event, object, None]
EdgeRound = Callable[[World, Edge, list[int], Update, int], Generator[simpy.Event, object, Update]]
"""How an edge gets its new model in round r from its participants: (world, edge, participants, model, r) → model."""


def star(world: World) -> Process:
    """Star FedAvg: devices ↔ cloud every round; each device sends and receives the modules it holds."""
    env = world.env
    model = world.learner.initial_update()
    world.holders_per_round = 1
    for r in range(1, world.scenario.rounds + 1):
        participants = world.available(world.devices)
        trained = yield env.all_of([env.process(_star_device(world, d, model, r)) for d in participants])
        if participants:
            model = yield from world.aggregate(world.cloud_id, list(trained.values()), r, base=model)
        receivers = world.available(world.devices)
        yield env.all_of([env.process(world.wan(d, world.for_device(d, model), r, up=False)) for d in receivers])
        world.report(r, model)


def _star_device(world: World, device: int, model: Update, r: int) -> Generator[simpy.Event, object, Update]:
    update = yield from world.train(device, model, r)
    yield from world.wan(device, update, r, up=True)
    return update


class Cloud:
    """The cloud's model across cloud rounds (module-wise: modules no edge sent keep their last global value)."""

    def __init__(self, world: World) -> None:
        self.model = world.learner.initial_update()


class CloudRound:
    """One cloud aggregation: collects every edge's modules, averages each over its senders, returns them."""

    def __init__(self, world: World, cloud: Cloud, r: int) -> None:
        self.world = world
        self.cloud = cloud
        self.r = r
        self._models: dict[int, Update] = {}
        self._returned = {edge.index: world.env.event() for edge in world.edges}

    def submit(self, edge: Edge, model: Update) -> simpy.Event:
        """Hand in ``edge``'s modules (after its backhaul upload); the event yields the global modules it needs."""
        self._models[edge.index] = model
        if len(self._models) == len(self.world.edges):
            self.world.env.process(self._aggregate_and_return())
        return self._returned[edge.index]

    def _aggregate_and_return(self) -> Process:
        world = self.world
        ordered = [self._models[e.index] for e in world.edges]
        self.cloud.model = yield from world.aggregate(world.cloud_id, ordered, self.r, base=self.cloud.model)
        sent = {k for m in ordered for k in m.modules}
        for edge in world.edges:
            needed = sent & {k for d in edge.devices for k in world.learner.held(d)}
            world.env.process(self._return(edge, world.learner.restrict(self.cloud.model, needed)))

    def _return(self, edge: Edge, model: Update) -> Process:
        yield from self.world.backhaul(edge, model, self.r, up=False)
        self._returned[edge.index].succeed(model)


def collect_uploads(world: World, edge: Edge, participants: list[int], model: Update, r: int) -> Generator[
    simpy.Event, object, Update
]:
    """Plain HierFAVG edge round: every participant trains and uploads over the cell, the edge averages."""
    env = world.env
    trained = yield env.all_of([env.process(_edge_device(world, d, model, r)) for d in participants])
    return (yield from world.aggregate(edge.id, list(trained.values()), r, base=model))


def hierarchical(world: World, cloud_period: int | None, collect: EdgeRound = collect_uploads) -> Process:
    """HierFAVG with cloud aggregation every ``cloud_period`` edge rounds (``None``: edge-only)."""
    env = world.env
    world.holders_per_round = len(world.edges)
    cloud_rounds: dict[int, CloudRound] = {}
    if cloud_period is not None:
        cloud = Cloud(world)
        for r in range(cloud_period, world.scenario.rounds + 1, cloud_period):
            cloud_rounds[r] = CloudRound(world, cloud, r)
    period = cloud_period or 1
    yield env.all_of([env.process(_edge_loop(world, edge, cloud_rounds, period, collect)) for edge in world.edges])


def _edge_loop(
    world: World, edge: Edge, cloud_rounds: dict[int, CloudRound], period: int, collect: EdgeRound
) -> Process:
    learner = world.learner
    model = learner.initial_update()
    for r in range(1, world.scenario.rounds + 1):
        participants = world.available(edge.devices)
        if participants:  # otherwise the edge keeps its model
            model = learner.complete((yield from collect(world, edge, participants, model, r)), model)
        if r in cloud_rounds:
            aggregated = [k for k, w in model.weights.items() if w > 0]
            up = learner.restrict(model, learner.plan.to_cloud(aggregated, r // period))
            yield from world.backhaul(edge, up, r, up=True)
            model = learner.merge(model, (yield cloud_rounds[r].submit(edge, up)))
        yield from world.broadcast(edge, model, r)
        world.report(r, model)


def _edge_device(world: World, device: int, model: Update, r: int) -> Generator[simpy.Event, object, Update]:
    update = yield from world.train(device, model, r)
    yield from world.upload(device, update, r)
    return update


def scheme_process(world: World, scheme: SchemeConfig) -> Process:
    """The SimPy process that runs ``scheme`` on ``world``."""
    if scheme.protocol == "star":
        return star(world)
    collect = collect_uploads if scheme.d2d == "none" else d2d_edge_round(world, scheme)
    if scheme.protocol == "edge_only":
        return hierarchical(world, None, collect)
    return hierarchical(world, scheme.cloud_period, collect)
