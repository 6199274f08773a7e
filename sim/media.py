"""SimPy media: a shared FDMA cell, a downlink broadcast channel and wired links.

Each medium turns "send these bits" into simulated time. Energy and logging
are the caller's business (:mod:`sim.world`); media only decide *when* a
transfer ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

import numpy as np
import simpy

from sim.radio import RadioMedium


FINISHED_BITS = 1e-6
"""A flow with at most this many bits left is finished."""
DUE_RTOL = 1e-12
"""Flows finishing within this relative margin of the timer's delay are finished by it."""


class OutageError(RuntimeError):
    """A transfer can never finish: its rate is zero and the channel never changes."""


class FlowAborted(Exception):
    """A flow left a cell before its last bit (link outage, or :meth:`SharedCell.abort`).

    Attributes:
        start_s, end_s: when the flow started and left.
        bits_sent: bits delivered before it left.
        cause: ``"outage"`` (the cell's outage test) or the cause given to :meth:`SharedCell.abort`.
    """

    def __init__(self, start_s: float, end_s: float, bits_sent: float, cause: str) -> None:
        super().__init__(start_s, end_s, bits_sent, cause)  # SimPy re-raises a copy built from args
        self.start_s, self.end_s, self.bits_sent, self.cause = start_s, end_s, bits_sent, cause

    def __str__(self) -> str:
        return f"flow aborted at t = {self.end_s:.6f} s ({self.cause})"


OutageTest = Callable[[np.ndarray, float], np.ndarray]
"""(gains, bandwidth_hz) → mask of the links in outage (e.g. :class:`sim.faults.DeepFade`)."""


@dataclass(eq=False)
class _Flow:
    link: int
    bits: float
    start_s: float
    done: simpy.Event
    gain: float
    block: int
    medium: RadioMedium
    bits_left: float = field(init=False)
    rate_bps: float = 0.0

    def __post_init__(self) -> None:
        self.bits_left = self.bits


class SharedCell:
    """One cell's uplink, shared by concurrent flows with an equal FDMA split.

    With n flows active, each gets ``bandwidth_hz / n`` and transmits at full
    power over its share, so its rate is ``R(g_i, B/n)`` (noise over B/n). The
    split is recomputed whenever a flow starts or ends, and gains are redrawn
    at coherence-block boundaries when the medium has a coherence time; so 40
    simultaneous uploads take longer than one.

    ``transfer`` returns an event whose value is the ``(start_s, end_s)`` of the flow.

    With an ``outage`` test, a flow whose link is in outage on its share of the
    band (checked whenever the split or its gain changes) leaves the cell: its
    event fails with :class:`FlowAborted`. A flow may use another medium than
    the cell's (``transfer(..., medium=)``, e.g. a re-homed device's link to
    this edge); its gains come from that medium, its rate from the cell's
    radio configuration.
    """

    def __init__(
        self, env: simpy.Environment, medium: RadioMedium, bandwidth_hz: float, outage: OutageTest | None = None
    ) -> None:
        self.env = env
        self.medium = medium
        self.bandwidth_hz = bandwidth_hz
        self.outage = outage
        self._flows: list[_Flow] = []
        self._t_last = 0.0
        self._timer_token = 0

    @property
    def active_flows(self) -> int:
        return len(self._flows)

    def transfer(self, link: int, bits: float, medium: RadioMedium | None = None) -> simpy.Event:
        """Start sending ``bits`` on ``link`` (of ``medium``, default the cell's); the event fires at the last bit."""
        self._advance()
        now = self.env.now
        medium = medium or self.medium
        gain = float(medium.gains(np.array([link]), now)[0])
        flow = _Flow(link, bits, now, self.env.event(), gain, self.medium.block_index(now), medium)
        self._flows.append(flow)
        self._reschedule()
        return flow.done

    def abort(self, done: simpy.Event, cause: str) -> FlowAborted | None:
        """Take the flow of event ``done`` out of the cell now; None if it already finished."""
        self._advance()
        flow = next((f for f in self._flows if f.done is done), None)
        if flow is None:
            return None
        self._flows.remove(flow)
        self._reschedule()
        return FlowAborted(flow.start_s, self.env.now, flow.bits - max(flow.bits_left, 0.0), cause)

    def _advance(self) -> None:
        """Deliver bits at the current rates up to now."""
        elapsed = self.env.now - self._t_last
        if elapsed > 0:
            for flow in self._flows:
                flow.bits_left -= flow.rate_bps * elapsed
        self._t_last = self.env.now

    def _reschedule(self) -> None:
        now = self.env.now
        finished = [f for f in self._flows if f.bits_left <= FINISHED_BITS]
        for flow in finished:
            self._flows.remove(flow)
            flow.done.succeed((flow.start_s, now))
        if not self._flows:
            return
        block = self.medium.block_index(now)
        stale = [f for f in self._flows if f.block != block]
        for medium in dict.fromkeys(f.medium for f in stale):  # the cell's own medium first in practice
            redrawn = [f for f in stale if f.medium is medium]
            for flow, gain in zip(redrawn, medium.gains(np.array([f.link for f in redrawn]), now)):
                flow.gain, flow.block = float(gain), block
        share_hz = self.bandwidth_hz / len(self._flows)
        while self.outage is not None:  # a wider share has more noise: dropping flows can push others out
            in_outage = self.outage(np.array([f.gain for f in self._flows]), share_hz)
            if not in_outage.any():
                break
            for flow in [f for f, out in zip(self._flows, in_outage) if out]:
                self._flows.remove(flow)
                flow.done.fail(FlowAborted(flow.start_s, now, flow.bits - max(flow.bits_left, 0.0), "outage"))
            if not self._flows:
                return
            share_hz = self.bandwidth_hz / len(self._flows)
        rates = self.medium.rates_bps(np.array([f.gain for f in self._flows]), share_hz)
        for flow, rate in zip(self._flows, rates.tolist()):
            flow.rate_bps = rate
        finish_s = [f.bits_left / f.rate_bps if f.rate_bps > 0 else math.inf for f in self._flows]
        delay = min(finish_s)
        # flows due at the timer are finished explicitly: in floating point their
        # remaining bits can stay a hair above zero at large simulated times
        due = [f for f, t in zip(self._flows, finish_s) if t <= delay * (1 + DUE_RTOL)]
        if self.medium.coherence_s is not None:
            boundary = (block + 1) * self.medium.coherence_s - now
            if boundary < delay:
                delay, due = boundary, []
        if math.isinf(delay):
            raise OutageError(
                f"link {self._flows[0].link} has rate 0 bit/s and the channel never changes; "
                "set fading.coherence_s or use rate = 'shannon'"
            )
        self._timer_token += 1
        token = self._timer_token
        timer = self.env.timeout(delay)
        timer.callbacks.append(lambda _event: self._on_timer(token, due))

    def _on_timer(self, token: int, due: list[_Flow]) -> None:
        if token != self._timer_token:
            return  # superseded by a later start or finish
        self._advance()
        for flow in due:
            flow.bits_left = 0.0
        self._reschedule()


class BroadcastChannel:
    """An edge's downlink: one broadcast at a time, at the rate of the worst receiver.

    Rate = min_k R(g_k, B) over the receivers, with the gains drawn at the
    start of the transfer (multicast to the weakest link).
    """

    def __init__(self, env: simpy.Environment, medium: RadioMedium, bandwidth_hz: float) -> None:
        self.env = env
        self.medium = medium
        self.bandwidth_hz = bandwidth_hz
        self._busy = simpy.Resource(env, capacity=1)

    def send(
        self, links: Sequence[int], bits: float, medium: RadioMedium | None = None
    ) -> Generator[simpy.Event, object, tuple[float, float]]:
        """Broadcast ``bits`` to ``links`` (of ``medium``, default the channel's); returns the airtime's ends (s)."""
        with self._busy.request() as slot:
            yield slot
            now = self.env.now
            gains = (medium or self.medium).gains(np.asarray(links), now)
            rate = float(self.medium.rates_bps(gains, self.bandwidth_hz).min())
            if rate <= 0:
                raise OutageError(f"downlink broadcast to links {list(links)} has rate 0 bit/s")
            yield self.env.timeout(bits / rate)
            return now, self.env.now


class WiredLink:
    """A dedicated link with ``latency_s`` and ``rate_bps``: delivery after latency + bits/rate."""

    def __init__(self, env: simpy.Environment, latency_s: float, rate_bps: float) -> None:
        self.env = env
        self.latency_s = latency_s
        self.rate_bps = rate_bps

    def send(self, bits: float) -> Generator[simpy.Event, object, float]:
        """Send ``bits``; returns the transmission time (bits / rate, without propagation latency)."""
        airtime_s = bits / self.rate_bps
        yield self.env.timeout(self.latency_s + airtime_s)
        return airtime_s
