"""Fault-aware actions: a device's round (train, drop, corrupt, send with retries), cloud waits, guards, re-homing.

The protocols call these instead of the plain :class:`~sim.world.World`
actions; with no fault configured each one does exactly what the plain action
does (same SimPy events in the same order), so fault-free results stay
byte-identical.

Every fault leaves rows in the event log (outcome ``failed``, ``missed`` or
``rejected``; kinds ``dropout``, ``edge_crash``, ``cloud_outage``, ``guard``):

* a transfer attempt that fails (deep fade, link outage, crashed edge) logs
  its ``tx``/``rx`` rows with the bytes it got through and the energy of its
  airtime; a retry waits ``backoff_s · 2^(k−1)`` first;
* an action cut by a deadline logs what it did until then, outcome ``missed``;
* a device that drops out logs a ``dropout`` row (after the partial upload, if any);
* a node waiting for the cloud logs a ``cloud_outage`` row lasting the wait.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np
import simpy

from channels import radio_energy_j
from models.guards import corrupt_state, screen_updates
from sim.faults import Dropout
from sim.keyed_fading import radio_medium
from sim.learner import Update
from sim.media import FlowAborted
from sim.radio import RadioMedium

if TYPE_CHECKING:
    from sim.world import Edge, World

DEADLINE = "deadline"
"""Interrupt cause of a process cut by a round deadline (:func:`sim.faults.gather_until`)."""

Attempt = Literal["ok", "retry", "give_up"]


def cut_outcome(stop: simpy.Interrupt) -> str:
    """Outcome of an action interrupted by ``stop``: ``missed`` for a deadline, else ``failed``."""
    return "missed" if stop.cause == DEADLINE else "failed"


def _log_partial(
    world: World, r: int, start_s: float, kind: str, sender: int, receiver: int, nbytes: int, energy_j: float,
    outcome: str,
) -> None:  # fmt: skip
    """A transfer that did not complete: one ``tx`` and one ``rx`` row with the bytes that got through."""
    world._log(r, start_s, kind, "tx", sender, receiver, nbytes, energy_j, "", outcome)
    world._log(r, start_s, kind, "rx", receiver, sender, nbytes, 0.0, "", outcome)


# ---------------------------------------------------------------------- device round
def train(world: World, device: int, model: Update, r: int) -> Generator[simpy.Event, object, Update]:
    """:meth:`World.train`; if interrupted, log the compute done so far (energy of the elapsed time) and re-raise."""
    start = world.env.now
    try:
        return (yield from world.train(device, model, r))
    except simpy.Interrupt as stop:
        elapsed_s = world.env.now - start
        flops_per_s = float(world.device_flops_per_s[device])
        energy_j = float(world.compute_energy_j(flops_per_s * elapsed_s, flops_per_s, elapsed_s))
        world._log(r, start, "compute", "local", device, -1, 0, energy_j, "", cut_outcome(stop))
        raise


def corrupted(world: World, update: Update, model: Update) -> Update:
    """``update`` made faulty as ``faults.corrupt_kind`` says (:func:`models.guards.corrupt_state`)."""
    if update.state is None or model.state is None:
        return update  # network-only: no tensors to corrupt
    c = world.scenario.faults
    state = corrupt_state(update.state, model.state, c.corrupt_kind, c.corrupt_scale)
    return Update(state, update.weights, update.n_samples, update.loss)


def device_round(
    world: World, device: int, model: Update, r: int, edge: Edge | None = None
) -> Generator[simpy.Event, object, Update | None]:
    """Train from ``model`` and send the update to ``edge`` (None: to the cloud over the WAN).

    Returns the update if it arrived, None if the device dropped out, its
    transfer failed for good, or a deadline interrupted it.
    """
    plan = world.faults
    try:
        update = yield from train(world, device, model, r)
        drop = plan.dropout(device, r)
        if drop is not None and drop.when == "after_training":
            world._log(r, world.env.now, "dropout", "local", device, -1, 0, 0.0, "", "failed")
            return None
        if plan.corrupts(device, r):
            update = corrupted(world, update, model)
        if edge is None:
            sent = yield from wan_up(world, device, update, r, drop)
        else:
            sent = yield from uplink(world, device, update, r, edge, drop)
        return update if sent else None
    except simpy.Interrupt:
        return None


def _backoff(
    world: World, device: int, kind: str, peer: int, r: int, attempt: int
) -> Generator[simpy.Event, object, None]:
    start = world.env.now
    try:
        yield world.env.timeout(world.faults.backoff_s(attempt))
    except simpy.Interrupt as stop:
        _log_partial(world, r, start, kind, device, peer, 0, 0.0, cut_outcome(stop))
        raise


# ---------------------------------------------------------------------- uplink
def uplink(
    world: World, device: int, update: Update, r: int, edge: Edge, drop: Dropout | None = None
) -> Generator[simpy.Event, object, bool]:
    """Device → ``edge`` over its cell, retrying failed attempts; True if the update arrived."""
    plan = world.faults
    link, medium = world.uplink_route(device, edge)
    if drop is None and plan.plain_transfers and medium is None:
        yield from world.upload(device, update, r)
        return True
    sizes = world.message_sizes(update)
    bits = 8 * sum(n for _, n in sizes)
    if drop is not None:
        yield from _uplink_attempt(world, device, link, medium, sizes, drop.sent_fraction * bits, r, edge, "failed")
        world._log(r, world.env.now, "dropout", "local", device, -1, 0, 0.0, "", "failed")
        return False
    for attempt in range(plan.config.max_retries + 1):
        if attempt:
            yield from _backoff(world, device, "uplink", edge.id, r, attempt)
        result = yield from _uplink_attempt(world, device, link, medium, sizes, bits, r, edge)
        if result != "retry":
            return result == "ok"
    return False


def _uplink_attempt(
    world: World, device: int, link: int, medium: RadioMedium | None, sizes: list[tuple[str, int]], bits: float,
    r: int, edge: Edge, outcome_if_done: str = "ok",
) -> Generator[simpy.Event, object, Attempt]:  # fmt: skip
    """One try: fails at once if the edge or the link is down; aborted by a deep fade, a link outage or a crash."""
    env, plan = world.env, world.faults
    now = env.now
    power_w = world.uplink_medium.tx_energy_power_w
    if plan.edge_up_at(edge.index, now) > now:
        _log_partial(world, r, now, "uplink", device, edge.id, 0, 0.0, "failed")
        return "give_up"
    if plan.link_down_until(device, now) is not None:
        _log_partial(world, r, now, "uplink", device, edge.id, 0, 0.0, "failed")
        return "retry"
    done = edge.uplink.transfer(link, bits, medium)
    timers = {cause: env.timeout(t - now) for cause, t in
              (("outage", plan.next_link_outage_s(device, now)), ("crash", plan.next_crash_s(edge.index, now)))
              if math.isfinite(t)}  # fmt: skip
    try:
        yield env.any_of([done, *timers.values()]) if timers else done
    except FlowAborted as lost:
        _log_partial(world, r, lost.start_s, "uplink", device, edge.id, int(lost.bits_sent // 8),
                     float(radio_energy_j(power_w, lost.end_s - lost.start_s)), "failed")  # fmt: skip
        return "retry"
    except simpy.Interrupt as stop:
        cut = edge.uplink.abort(done, str(stop.cause))
        sent_bits = bits if cut is None else cut.bits_sent
        _log_partial(world, r, now, "uplink", device, edge.id, int(sent_bits // 8),
                     float(radio_energy_j(power_w, env.now - now)), cut_outcome(stop))  # fmt: skip
        raise
    if done.triggered and done.ok:
        start_s, end_s = done.value
        energy_j = float(radio_energy_j(power_w, end_s - start_s))
        if outcome_if_done == "ok":
            world._log_message(r, start_s, "uplink", device, [edge.id], sizes, energy_j, 0.0)
            return "ok"
        _log_partial(world, r, start_s, "uplink", device, edge.id, int(bits // 8), energy_j, outcome_if_done)
        return "give_up"
    if done.triggered:  # failed at the same instant a timer fired
        done.defused = True
        lost = done.value
        _log_partial(world, r, lost.start_s, "uplink", device, edge.id, int(lost.bits_sent // 8),
                     float(radio_energy_j(power_w, lost.end_s - lost.start_s)), "failed")  # fmt: skip
        return "retry"
    cause = next(c for c, timer in timers.items() if timer.processed)
    cut = edge.uplink.abort(done, cause)
    assert cut is not None
    _log_partial(world, r, cut.start_s, "uplink", device, edge.id, int(cut.bits_sent // 8),
                 float(radio_energy_j(power_w, cut.end_s - cut.start_s)), "failed")  # fmt: skip
    return "give_up" if cause == "crash" else "retry"


# ---------------------------------------------------------------------- WAN (star)
def wan_up(
    world: World, device: int, update: Update, r: int, drop: Dropout | None = None
) -> Generator[simpy.Event, object, bool]:
    """Device → cloud over the wide-area link, after any cloud outage, retrying across link outages."""
    plan = world.faults
    if drop is None and plan.plain_transfers:
        yield from world.wan(device, update, r, up=True)
        return True
    yield from wait_for_cloud(world, device, r)
    sizes = world.message_sizes(update)
    bits = 8 * sum(n for _, n in sizes)
    if drop is not None:
        yield from _wan_attempt(world, device, sizes, drop.sent_fraction * bits, r, partial=True)
        world._log(r, world.env.now, "dropout", "local", device, -1, 0, 0.0, "", "failed")
        return False
    for attempt in range(plan.config.max_retries + 1):
        if attempt:
            yield from _backoff(world, device, "wan_up", world.cloud_id, r, attempt)
        if (yield from _wan_attempt(world, device, sizes, bits, r)) == "ok":
            return True
    return False


def _wan_attempt(
    world: World, device: int, sizes: list[tuple[str, int]], bits: float, r: int, partial: bool = False
) -> Generator[simpy.Event, object, Attempt]:
    """One WAN try: the transmitter is busy bits/rate, the last bit lands ``latency_s`` later.

    A link outage starting while it transmits cuts it there; ``partial``: the
    sender vanishes after ``bits`` (a dropout), logged as failed.
    """
    env, plan, cloud = world.env, world.faults, world.cloud_id
    link, power_w = world.wan_link, world.scenario.wan.tx_power_w
    start = env.now
    if plan.link_down_until(device, start) is not None:
        _log_partial(world, r, start, "wan_up", device, cloud, 0, 0.0, "failed")
        return "retry"
    airtime_s = bits / link.rate_bps
    outage_in_s = plan.next_link_outage_s(device, start) - start
    cut_s = outage_in_s if outage_in_s < airtime_s else (airtime_s if partial else math.inf)
    try:
        yield env.timeout(cut_s if math.isfinite(cut_s) else link.latency_s + airtime_s)
    except simpy.Interrupt as stop:
        sent_s = min(env.now - start, airtime_s)
        _log_partial(world, r, start, "wan_up", device, cloud, int(bits * sent_s / airtime_s // 8),
                     float(radio_energy_j(power_w, sent_s)), cut_outcome(stop))  # fmt: skip
        raise
    if math.isfinite(cut_s):
        _log_partial(world, r, start, "wan_up", device, cloud, int(bits * cut_s / airtime_s // 8),
                     float(radio_energy_j(power_w, cut_s)), "failed")  # fmt: skip
        return "retry"
    world._log_message(r, start, "wan_up", device, [cloud], sizes, float(radio_energy_j(power_w, airtime_s)), 0.0)
    return "ok"


# ---------------------------------------------------------------------- servers
def wait_for_cloud(world: World, node: int, r: int) -> Generator[simpy.Event, object, None]:
    """If the cloud is in an outage now, wait for its end; ``node`` logs a ``cloud_outage`` row lasting the wait."""
    env = world.env
    start = env.now
    up_s = world.faults.cloud_up_at(start)
    if up_s == start:
        return
    try:
        yield env.timeout(up_s - start)
    finally:
        world._log(r, start, "cloud_outage", "local", node, world.cloud_id, 0, 0.0, "", "failed")


def screen(
    world: World, node: int, arrived: Mapping[int, Update], base: Update, r: int
) -> list[Update] | None:
    """The updates ``node`` may average; guards off: all of them. None: too few passed, keep ``base``.

    ``arrived`` maps each sender to its update; every rejected one logs a
    ``guard`` row (``peer`` the sender, outcome ``rejected``).
    """
    updates = list(arrived.values())
    guards = world.scenario.faults.guards
    if not guards.enabled or not updates:
        return updates or None
    if base.state is not None:  # network-only updates carry no tensors: nothing to screen, only to count
        verdict = screen_updates([u.state for u in updates], base.state, guards.norm_ratio)
        senders = list(arrived)
        for k, _reason in verdict.rejected:
            world._log(r, world.env.now, "guard", "local", node, senders[k], 0, 0.0, "", "rejected")
        updates = [updates[k] for k in verdict.accepted]
    return updates if len(updates) >= guards.min_updates else None


# ---------------------------------------------------------------------- re-homing
class Rehoming:
    """Devices of a crashed edge served by the nearest edge alive (``faults.on_edge_crash = "rehome"``).

    When an edge starts a round it enlists its own switched-on devices and the
    *guests*: devices whose home edge is down now and to which it is the
    nearest edge alive. A device is in one round at a time. A guest's links to
    its host are links of two extra radio media (the cell's uplink and downlink
    settings; link id = device · n_edges + edge index; their own seeds, so the
    home links' draws never shift). A device that last heard from another edge
    first gets the host's model (a join download), then trains and uploads.
    """

    def __init__(self, world: World) -> None:
        self.world = world
        layout = world.layout
        self.n_edges = layout.n_edges
        self.busy: set[int] = set()
        self.last_edge = [int(j) for j in layout.device_edge]
        up_seed, down_seed = world.faults.guest_link_seeds
        self.uplink, self.downlink = (
            radio_medium(config, self._distance_m, layout.n_devices * self.n_edges, np.random.default_rng(seed),
                         static=world.inputs.positions is None,
                         log=lambda t, links, gains, name=name: world.channel_samples.append((t, name, links, gains)))
            for name, config, seed in (("uplink_guest", world.scenario.uplink, up_seed),
                                       ("downlink_guest", world.scenario.downlink, down_seed))
        )  # fmt: skip

    def _distance_m(self, links: np.ndarray, t_s: float) -> np.ndarray:
        layout, positions = self.world.layout, self.world.inputs.positions
        xy = layout.device_xy if positions is None else positions.at(t_s)
        return np.linalg.norm(xy[links // self.n_edges] - layout.edge_xy[links % self.n_edges], axis=-1)

    def is_guest(self, device: int, edge: Edge) -> bool:
        return int(self.world.layout.device_edge[device]) != edge.index

    def link(self, device: int, edge: Edge) -> int:
        return device * self.n_edges + edge.index

    def enlist(self, edge: Edge) -> list[int]:
        """The devices that take part in ``edge``'s round starting now (marked busy until :meth:`release`)."""
        world = self.world
        now = world.env.now
        plan = world.faults
        positions = world.layout.device_xy if world.inputs.positions is None else world.inputs.positions.at(now)
        home = world.layout.device_edge
        members = [
            d for d in world.available(world.devices)
            if d not in self.busy and (
                int(home[d]) == edge.index
                or (plan.edge_up_at(int(home[d]), now) > now
                    and plan.nearest_alive_edge(positions[d], now) == edge.index)
            )
        ]  # fmt: skip
        self.busy.update(members)
        return members

    def release(self, devices: list[int]) -> None:
        self.busy.difference_update(devices)

    def newcomers(self, edge: Edge, devices: list[int]) -> list[int]:
        """Devices of ``devices`` that last heard from another edge."""
        return [d for d in devices if self.last_edge[d] != edge.index]

    def send(self, edge: Edge, model: Update, devices: list[int], r: int) -> Generator[simpy.Event, object, None]:
        """``edge``'s model to ``devices``: its own over the cell, guests over their guest links."""
        own = [d for d in devices if not self.is_guest(d, edge)]
        guests = [d for d in devices if self.is_guest(d, edge)]
        if own:
            yield from self.world.broadcast(edge, model, r, receivers=own)
        if guests:
            yield from self.world.broadcast(edge, model, r, receivers=guests, medium=self.downlink,
                                            link_of=lambda d: self.link(d, edge))  # fmt: skip
        for d in devices:
            self.last_edge[d] = edge.index
