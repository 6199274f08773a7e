"""D2D contacts on the SimPy clock: every contact interval opens and closes a contact at its exact times.

Where the intervals come from (:func:`contact_intervals_for`):

* static devices — the contact graph of the layout
  (:func:`channels.contact_graph`, KD-tree): each pair within range is in
  contact from t = 0 on, forever;
* moving devices — the exact intervals of nodes moving linearly between the
  samples of the mobility trace (:func:`channels.contact_intervals`, roots of
  ‖Δp + Δv·τ‖² = R²). Positions are held before the first and after the last
  sample, so a contact open at the last sample never closes and one open at
  the first sample is open from t = 0.

Only pairs of devices of the same edge are kept (D2D cooperation stays in a cell).

    >>> env = simpy.Environment()
    >>> intervals = np.array([(2.0, 5.0, 0, 1)], dtype=CONTACT_DTYPE)
    >>> clock = ContactClock(env, intervals)
    >>> env.run()
    >>> [(c.t_s, c.up) for c in clock.changes]
    [(2.0, True), (5.0, False)]
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import simpy

from channels import CONTACT_DTYPE, contact_graph, contact_intervals

Pair = tuple[int, int]


class MobilityTrack(Protocol):
    """A mobility trace on a common time grid (``traces`` MobilityTrace)."""

    times_s: np.ndarray
    xy_m: np.ndarray

    def at(self, t_s: float) -> np.ndarray: ...


@dataclass(frozen=True)
class ContactChange:
    """A contact of devices a < b opened (``up``) or closed at ``t_s``."""

    t_s: float
    a: int
    b: int
    up: bool


def contact_intervals_for(
    device_xy_m: np.ndarray, track: MobilityTrack | None, radius_m: float, peers: Iterable[Pair]
) -> np.ndarray:
    """Contact intervals (:data:`channels.CONTACT_DTYPE`) of the ``peers`` pairs within ``radius_m``.

    Static devices (``track`` None): [0, inf) for each peer pair within range
    at ``device_xy_m``. Moving devices: the exact intervals of the track, an
    interval touching the track's first sample starting at 0 (or earlier) and
    one touching its last sample ending at inf.
    """
    if radius_m <= 0:
        return np.zeros(0, CONTACT_DTYPE)
    if track is None:
        graph = contact_graph(device_xy_m, radius_m)
        ab = np.array(sorted(graph.edges()), dtype=np.int64).reshape(-1, 2)
        out = np.zeros(len(ab), CONTACT_DTYPE)
        out["start_s"], out["end_s"] = 0.0, math.inf
        out["a"], out["b"] = ab.min(axis=1), ab.max(axis=1)
    else:
        times_s = np.asarray(track.times_s, dtype=float)
        out = contact_intervals(times_s, track.xy_m, radius_m)
        out["start_s"] = np.where(out["start_s"] <= times_s[0], min(times_s[0], 0.0), out["start_s"])
        out["end_s"] = np.where(out["end_s"] >= times_s[-1], math.inf, out["end_s"])
    keep = set(peers)
    return out[np.array([(int(a), int(b)) in keep for a, b in zip(out["a"], out["b"])], dtype=bool)]


class ContactClock:
    """Contacts of device pairs as events on ``env``'s clock.

    A process walks through the interval boundaries in time order: at an
    interval's start the pair's contact opens, at its end it closes (closed
    intervals, so a contact is still up at its end time until the clock gets
    there; a zero-length contact opens and closes at once). Protocols ask
    whether a pair is in contact now, when its contact closes, and wait on
    events that fire when it closes or reopens.

    Args:
        env: the SimPy environment.
        intervals: contact intervals (:data:`channels.CONTACT_DTYPE`), a < b;
            those starting at or before now are open at construction.
    """

    def __init__(self, env: simpy.Environment, intervals: np.ndarray) -> None:
        self.env = env
        self.changes: list[ContactChange] = []
        """Every contact opened or closed so far, in clock order."""
        self._intervals: dict[Pair, list[tuple[float, float]]] = {}
        for start, end, a, b in intervals[["start_s", "end_s", "a", "b"]].tolist():
            self._intervals.setdefault((a, b), []).append((max(start, 0.0), end))
        for spans in self._intervals.values():
            spans.sort()
        self._up: set[Pair] = set()
        self._closing: dict[Pair, simpy.Event] = {}
        self._opening: dict[Pair, simpy.Event] = {}
        boundaries = sorted(
            (t, order, a, b)
            for (a, b), spans in self._intervals.items()
            for start, end in spans
            for t, order in ((start, 0), (end, 1))
            if math.isfinite(t)
        )
        now = env.now
        due = [x for x in boundaries if x[0] <= now]
        for t, order, a, b in due:
            self._change(a, b, order == 0)
        later = boundaries[len(due) :]
        if later:
            env.process(self._run(later))

    def _run(self, boundaries: list[tuple[float, int, int, int]]) -> Generator[simpy.Event, object, None]:
        for t, order, a, b in boundaries:
            if t > self.env.now:
                yield self.env.timeout(t - self.env.now)
            self._change(a, b, order == 0)

    def _change(self, a: int, b: int, up: bool) -> None:
        pair = (a, b)
        if up:
            self._up.add(pair)
        else:
            self._up.discard(pair)
        self.changes.append(ContactChange(self.env.now, a, b, up))
        waiting = (self._opening if up else self._closing).pop(pair, None)
        if waiting is not None:
            waiting.succeed(self.env.now)

    def is_up(self, a: int, b: int) -> bool:
        """Whether devices a and b are in contact now."""
        return (min(a, b), max(a, b)) in self._up

    def pairs_up(self) -> list[Pair]:
        """The pairs in contact now, sorted."""
        return sorted(self._up)

    def _open_interval(self, a: int, b: int) -> tuple[float, float] | None:
        """(start, end) of the contact of a and b open now, None when they are not in contact."""
        pair = (min(a, b), max(a, b))
        if pair not in self._up:
            return None
        now = self.env.now
        return next(span for span in self._intervals[pair] if span[0] <= now <= span[1])

    def opened_at(self, a: int, b: int) -> float:
        """Start of the contact of a and b open now (inf when they are not in contact)."""
        span = self._open_interval(a, b)
        return math.inf if span is None else span[0]

    def closes_at(self, a: int, b: int) -> float:
        """End of the contact of a and b open now (inf: it never closes); now when they are not in contact."""
        span = self._open_interval(a, b)
        return self.env.now if span is None else span[1]

    def closing(self, a: int, b: int) -> simpy.Event:
        """An event that fires when the open contact of a and b closes (never, when it never does)."""
        return self._closing.setdefault((min(a, b), max(a, b)), self.env.event())

    def opening(self, a: int, b: int) -> simpy.Event | None:
        """An event that fires when a and b next come into contact; None when they never do again."""
        pair = (min(a, b), max(a, b))
        now = self.env.now
        if not any(start > now or start == now < end for start, end in self._intervals.get(pair, [])):
            return None
        return self._opening.setdefault(pair, self.env.event())
