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

Devices switched off when a round starts sit it out (a holder with no
participant keeps its model). All weights are sample counts, so hierarchical with ``cloud_period = 1``
computes the same model as star FedAvg.
"""

from __future__ import annotations

from collections.abc import Generator

import simpy

from sim.learner import Update
from sim.scenario import SchemeConfig
from sim.world import Edge, World

Process = Generator[simpy.Event, object, None]


def star(world: World) -> Process:
    """Star FedAvg: devices ↔ cloud every round."""
    env = world.env
    model = Update(world.learner.initial_state, 0)
    world.holders_per_round = 1
    for r in range(1, world.scenario.rounds + 1):
        participants = world.available(world.devices)
        trained = yield env.all_of([env.process(_star_device(world, d, model, r)) for d in participants])
        if participants:
            model = yield from world.aggregate(world.cloud_id, list(trained.values()), r)
        receivers = world.available(world.devices)
        yield env.all_of([env.process(world.wan(d, model, r, up=False)) for d in receivers])
        world.report(r, model)


def _star_device(world: World, device: int, model: Update, r: int) -> Generator[simpy.Event, object, Update]:
    update = yield from world.train(device, model.state, r)
    yield from world.wan(device, update, r, up=True)
    return update


class CloudRound:
    """One cloud aggregation: collects every edge's model, averages, returns it over each backhaul."""

    def __init__(self, world: World, r: int) -> None:
        self.world = world
        self.r = r
        self._models: dict[int, Update] = {}
        self._returned = {edge.index: world.env.event() for edge in world.edges}

    def submit(self, edge: Edge, model: Update) -> simpy.Event:
        """Hand in ``edge``'s model (after its backhaul upload); the event yields the global model."""
        self._models[edge.index] = model
        if len(self._models) == len(self.world.edges):
            self.world.env.process(self._aggregate_and_return())
        return self._returned[edge.index]

    def _aggregate_and_return(self) -> Process:
        world = self.world
        ordered = [self._models[e.index] for e in world.edges]
        model = yield from world.aggregate(world.cloud_id, ordered, self.r)
        for edge in world.edges:
            world.env.process(self._return(edge, model))

    def _return(self, edge: Edge, model: Update) -> Process:
        yield from self.world.backhaul(edge, model, self.r, up=False)
        self._returned[edge.index].succeed(model)


def hierarchical(world: World, cloud_period: int | None) -> Process:
    """HierFAVG with cloud aggregation every ``cloud_period`` edge rounds (``None``: edge-only)."""
    env = world.env
    world.holders_per_round = len(world.edges)
    cloud_rounds: dict[int, CloudRound] = {}
    if cloud_period is not None:
        for r in range(cloud_period, world.scenario.rounds + 1, cloud_period):
            cloud_rounds[r] = CloudRound(world, r)
    yield env.all_of([env.process(_edge_loop(world, edge, cloud_rounds)) for edge in world.edges])


def _edge_loop(world: World, edge: Edge, cloud_rounds: dict[int, CloudRound]) -> Process:
    env = world.env
    model = Update(world.learner.initial_state, 0)
    for r in range(1, world.scenario.rounds + 1):
        participants = world.available(edge.devices)
        trained = yield env.all_of([env.process(_edge_device(world, d, model, r)) for d in participants])
        if participants:  # otherwise the edge keeps its model
            model = yield from world.aggregate(edge.id, list(trained.values()), r)
        if r in cloud_rounds:
            yield from world.backhaul(edge, model, r, up=True)
            model = yield cloud_rounds[r].submit(edge, model)
        yield from world.broadcast(edge, model, r)
        world.report(r, model)


def _edge_device(world: World, device: int, model: Update, r: int) -> Generator[simpy.Event, object, Update]:
    update = yield from world.train(device, model.state, r)
    yield from world.upload(device, update, r)
    return update


def scheme_process(world: World, scheme: SchemeConfig) -> Process:
    """The SimPy process that runs ``scheme`` on ``world``."""
    if scheme.protocol == "star":
        return star(world)
    if scheme.protocol == "edge_only":
        return hierarchical(world, None)
    return hierarchical(world, scheme.cloud_period)
