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
* **Module relaying** — a device that gains a task or modality
  (``[[heterogeneity.task_arrivals]]``, ``[[heterogeneity.modality_arrivals]]``)
  fetches the new modules before it trains: with ``SchemeConfig.module_relay``
  from the best D2D neighbour holding them, else from its edge (the cloud in
  star) (:mod:`sim.module_relay`).

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

Faults (``[faults]``, :mod:`sim.faults`, :mod:`sim.fault_actions`): devices may
drop out, send faulty updates or fail transfers (then retry after a back-off);
an aggregator with ``deadline_s`` averages what arrived within that time of
its round start; guards screen updates before averaging, and a server left
with fewer than ``min_updates`` keeps its model. An edge that crashes loses
the round it was in; while it is down it either waits (its devices idle, the
cloud round waits for it) or sits its rounds out (``rehome``: its devices join
the nearest edge alive, the cloud averages the edges present), and it resumes
with the model it had. A cloud outage delays cloud transfers and aggregations.

Checkpoint barriers (:mod:`sim.checkpoint`): star calls ``world.on_barrier`` at
every round end; hierarchical when the cloud holds every edge's upload of a
cloud round (not with re-homing). ``resume`` restarts a protocol from such a state.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import simpy

from sim.d2d_protocols import d2d_edge_round
from sim.fault_actions import Rehoming, device_round, screen, wait_for_cloud
from sim.faults import gather_until
from sim.learner import Update
from sim.module_relay import ModuleFetch
from sim.scenario import SchemeConfig
from sim.world import Edge, World

Process = Generator[simpy.Event, object, None]
EdgeRound = Callable[[World, Edge, list[int], Update, int], Generator[simpy.Event, object, Update]]
"""How an edge gets its new model in round r from its participants: (world, edge, participants, model, r) → model."""


def star(world: World, resume: dict[str, object] | None = None) -> Process:
    """Star FedAvg: devices ↔ cloud every round; each device sends and receives the modules it holds.

    ``resume``: ``{"round": r, "model": ...}`` of a barrier; the rounds after r run.
    """
    env = world.env
    model = world.learner.initial_update() if resume is None else resume["model"]
    first = 1 if resume is None else int(resume["round"]) + 1  # type: ignore[call-overload]
    world.holders_per_round = 1
    for r in range(first, world.scenario.rounds + 1):
        participants = world.available(world.devices)
        procs = {d: env.process(device_round(world, d, model, r)) for d in participants}
        arrived = yield from gather_until(env, procs, deadline_at(world))
        updates = screen(world, world.cloud_id, {d: u for d, u in arrived.items() if u is not None}, model, r)
        if updates:
            yield from wait_for_cloud(world, world.cloud_id, r)
            model = yield from world.aggregate(world.cloud_id, updates, r, base=model)
        receivers = world.available(world.devices)
        yield env.all_of([env.process(world.wan(d, world.for_device(d, model, r), r, up=False)) for d in receivers])
        world.report(r, model)
        world.on_barrier(r, {"round": r, "model": model})


def deadline_at(world: World) -> float | None:
    """Absolute deadline of an aggregator's round starting now (None: wait for all)."""
    deadline_s = world.scenario.faults.deadline_s
    return None if deadline_s is None else world.env.now + deadline_s


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
        self._models: dict[int, Update | None] = {}
        self._held: dict[int, Update] = {}
        self._returned = {edge.index: world.env.event() for edge in world.edges}

    def submit(self, edge: Edge, model: Update, held: Update) -> simpy.Event:
        """Hand in ``edge``'s modules (after its backhaul upload; ``held``: its whole model).

        The event yields the global modules it needs.
        """
        self._models[edge.index] = model
        self._held[edge.index] = held
        self._check_complete()
        return self._returned[edge.index]

    def absent(self, edge: Edge) -> None:
        """``edge`` is down and takes no part (re-homing): the cloud averages without it."""
        self._models[edge.index] = None
        self._check_complete()

    def _check_complete(self) -> None:
        world = self.world
        if len(self._models) < len(world.edges):
            return
        if world.rehoming is None:  # a barrier: every device and link is idle, the cloud holds every upload
            edges = {e.index: {"up": self._models[e.index], "model": self._held[e.index]} for e in world.edges}
            world.on_barrier(self.r, {"round": self.r, "cloud": self.cloud.model, "edges": edges})
        world.env.process(self._aggregate_and_return())

    def _aggregate_and_return(self) -> Process:
        world = self.world
        present = [e for e in world.edges if self._models[e.index] is not None]
        if not present:
            return
        ordered = [self._models[e.index] for e in present]
        yield from wait_for_cloud(world, world.cloud_id, self.r)
        self.cloud.model = yield from world.aggregate(world.cloud_id, ordered, self.r, base=self.cloud.model)
        sent = {k for m in ordered for k in m.modules}
        for edge in present:  # what its devices hold next round: a device gaining a module may fetch it from the edge
            needed = sent & {k for d in edge.devices for k in world.learner.held(d, self.r + 1)}
            world.env.process(self._return(edge, world.learner.restrict(self.cloud.model, needed)))

    def _return(self, edge: Edge, model: Update) -> Process:
        yield from self.world.backhaul(edge, model, self.r, up=False)
        self._returned[edge.index].succeed(model)


def collect_uploads(world: World, edge: Edge, participants: list[int], model: Update, r: int) -> Generator[
    simpy.Event, object, Update
]:
    """Plain HierFAVG edge round: every participant trains and uploads over the cell, the edge averages.

    With faults: what arrived (before the deadline) and passed the guards; none: the edge keeps ``model``.
    """
    env = world.env
    procs = {d: env.process(device_round(world, d, model, r, edge)) for d in participants}
    arrived = yield from gather_until(env, procs, deadline_at(world))
    updates = screen(world, edge.id, {d: u for d, u in arrived.items() if u is not None}, model, r)
    if not updates:
        return model
    return (yield from world.aggregate(edge.id, updates, r, base=model))


def hierarchical(
    world: World, cloud_period: int | None, collect: EdgeRound = collect_uploads,
    resume: dict[str, object] | None = None,
) -> Process:  # fmt: skip
    """HierFAVG with cloud aggregation every ``cloud_period`` edge rounds (``None``: edge-only).

    ``resume``: ``{"round": r, "cloud": ..., "edges": {j: {"up": ..., "model": ...}}}`` of a cloud-round barrier.
    """
    env = world.env
    world.holders_per_round = len(world.edges)
    faults = world.scenario.faults
    if faults.edge_crashes and faults.on_edge_crash == "rehome":
        world.rehoming = Rehoming(world)
    cloud_rounds: dict[int, CloudRound] = {}
    if cloud_period is not None:
        cloud = Cloud(world)
        if resume is not None:
            cloud.model = resume["cloud"]  # type: ignore[assignment]
        for r in range(cloud_period, world.scenario.rounds + 1, cloud_period):
            cloud_rounds[r] = CloudRound(world, cloud, r)
    period = cloud_period or 1
    def at_barrier(edge: Edge) -> dict[str, object] | None:
        if resume is None:
            return None
        return {"round": resume["round"], **resume["edges"][edge.index]}  # type: ignore[index, dict-item]

    yield env.all_of(
        [env.process(_edge_loop(world, edge, cloud_rounds, period, collect, at_barrier(edge))) for edge in world.edges]
    )


def _edge_loop(
    world: World, edge: Edge, cloud_rounds: dict[int, CloudRound], period: int, collect: EdgeRound,
    resume: dict[str, object] | None = None,
) -> Process:  # fmt: skip
    env, learner, rehoming = world.env, world.learner, world.rehoming
    model, r = learner.initial_update(), 1
    if resume is not None:  # at the barrier: this edge's upload of cloud round r is at the cloud
        model, r = resume["model"], int(resume["round"])  # type: ignore[assignment, call-overload]
    down_since: float | None = None
    participants: list[int] = []
    while r <= world.scenario.rounds:
        if resume is None:
            up_at = world.faults.edge_up_at(edge.index, env.now)
            if up_at > env.now:  # down: wait for it, or (re-homing) sit the round out
                down_since = world.faults.down_since(edge.index, env.now) if down_since is None else down_since
                if rehoming is not None:
                    yield from _sit_out(world, edge, model, r, cloud_rounds, down_since)
                    r += 1
                    continue
                yield env.timeout(up_at - env.now)
            if down_since is not None:
                world._log(r, down_since, "edge_crash", "local", edge.id, -1, 0, 0.0, "", "failed")
                down_since = None
            start = env.now
            participants = world.available(edge.devices) if rehoming is None else rehoming.enlist(edge)
            new = model
            if participants:  # otherwise the edge keeps its model
                if rehoming is not None:
                    yield from rehoming.send(edge, model, rehoming.newcomers(edge, participants), r)
                new = learner.complete((yield from collect(world, edge, participants, model, r)), model)
            down_since = world.faults.crash_between(edge.index, start, env.now)
            if down_since is not None:  # the round's updates died with the edge; it resumes with its model
                if rehoming is not None:
                    rehoming.release(participants)
                continue
            model = new
        if r in cloud_rounds:
            if resume is None:
                aggregated = [k for k, w in model.weights.items() if w > 0]
                up = learner.restrict(model, learner.plan.to_cloud(aggregated, r // period))
                yield from wait_for_cloud(world, edge.id, r)
                yield from world.backhaul(edge, up, r, up=True)
            else:
                up, resume = resume["up"], None  # type: ignore[assignment]
            model = learner.merge(model, (yield cloud_rounds[r].submit(edge, up, model)))
        if rehoming is None:
            yield from world.broadcast(edge, model, r)
        else:
            own = [d for d in world.available(edge.devices) if d not in rehoming.busy or d in participants]
            guests = [d for d in participants if rehoming.is_guest(d, edge)]
            yield from rehoming.send(edge, model, own + guests, r)
            rehoming.release(participants)
        world.report(r, model)
        r += 1


def _sit_out(
    world: World, edge: Edge, model: Update, r: int, cloud_rounds: dict[int, CloudRound], down_since: float
) -> Process:
    """A crashed edge's round while its devices are re-homed: it reports its last model and waits for the others."""
    if r in cloud_rounds:
        cloud_rounds[r].absent(edge)
    if r == world.scenario.rounds:  # the run ends before the edge is back: log the downtime in its last round
        world._log(r, down_since, "edge_crash", "local", edge.id, -1, 0, 0.0, "", "failed")
    closed = world.when_round_closed(r)
    world.report(r, model)
    yield closed


def scheme_process(world: World, scheme: SchemeConfig, resume: dict[str, object] | None = None) -> Process:
    """The SimPy process that runs ``scheme`` on ``world`` (from a barrier's state with ``resume``)."""
    if world.learner.has_arrivals:
        world.module_fetch = ModuleFetch(world, scheme)
    if scheme.protocol == "star":
        return star(world, resume)
    collect = collect_uploads if scheme.d2d == "none" else d2d_edge_round(world, scheme)
    if scheme.protocol == "edge_only":
        return hierarchical(world, None, collect, resume)
    return hierarchical(world, scheme.cloud_period, collect, resume)
