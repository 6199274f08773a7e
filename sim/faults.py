"""Simulated faults: seeded draws and schedules the protocols ask, and the SimPy helpers they use.

What can go wrong (configured in the scenario's ``[faults]`` section, see
:class:`sim.scenario.FaultsConfig`; the defaults have no faults at all):

* **Mid-round dropout** — device d drops in round r with probability
  ``dropout_prob``: right after training (its update is lost) or, for a share
  ``dropout_during_upload`` of the drops, part-way through its upload (it sends
  a uniform fraction of the message, then vanishes). Draws are one matrix per
  run indexed (round, device), so every scheme meets the same drops whatever
  the order of its events.
* **Stragglers** — with ``deadline_s`` an edge (the cloud for star) aggregates
  what arrived within ``deadline_s`` of its round start and cuts the rest.
* **Deep fades and link outages** — an uplink attempt fails when its SNR on
  its share of the cell falls below ``outage_snr_db`` (at the start, or at a
  fading-block redraw) or when the device's link goes down (an on/off outage
  process: link-up periods ~ Exp(1 / ``outage_rate_per_s``), outages ~
  Exp(``outage_mean_s``)); the device retries after an exponential back-off.
* **Edge crashes** — edge j is down during [at_s, at_s + down_s); its devices
  are re-homed to the nearest edge alive at the crash (or wait for it).
* **Cloud outages** — cloud transfers and aggregations wait for the window's end.
* **Faulty updates** — with probability ``corrupt_prob`` a device's update is
  NaN or its change is scaled (:func:`models.guards.corrupt_state`); the
  aggregation guards (:mod:`models.guards`) are what stops them.

Example::

    >>> import numpy as np
    >>> from sim.scenario import FaultsConfig
    >>> config = FaultsConfig(dropout_prob=0.5, edge_crashes=[{"edge": 1, "at_s": 10.0, "down_s": 5.0}])
    >>> plan = FaultPlan(config, n_devices=4, rounds=3, edge_xy_m=np.array([[0.0, 0], [100, 0], [300, 0]]),
    ...                  seed=np.random.SeedSequence(0))
    >>> plan.edge_up_at(1, 12.0), plan.edge_up_at(1, 16.0)
    (15.0, 16.0)
    >>> plan.nearest_alive_edge(np.array([90.0, 0.0]), 12.0)
    0
    >>> [plan.backoff_s(k) for k in (1, 2, 3)] == [config.backoff_s * 2 ** k for k in (0, 1, 2)]
    True
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import simpy

from channels import db_to_linear, noise_power_w, snr_linear
from sim.radio import RadioMedium
from sim.scenario import FaultsConfig
from traces.generators import on_off_availability


FAULT_STREAM = 1001
"""Spawn key of the faults' stream: a child of the root seed no ``root.spawn`` call reaches."""


@dataclass(frozen=True)
class Dropout:
    """A device dropping out of a round: when, and (during the upload) the share of the message it sent."""

    when: Literal["after_training", "during_upload"]
    sent_fraction: float = 0.0


class FaultPlan:
    """The faults of one run, drawn from one seed; every scheme gets a fresh, identical plan.

    Args:
        config: the ``[faults]`` section.
        n_devices: devices in the run.
        rounds: rounds per scheme.
        edge_xy_m: (n_edges, 2) edge positions (re-homing picks the nearest alive one).
        seed: the faults' own stream; spawns the dropout, upload-fraction, corruption
            and outage-process generators (so one kind of fault never shifts another's draws),
            and the seeds of the re-homed links' radio media (:attr:`guest_link_seeds`).
    """

    def __init__(
        self, config: FaultsConfig, n_devices: int, rounds: int, edge_xy_m: np.ndarray, seed: np.random.SeedSequence
    ) -> None:
        self.config = config
        self.edge_xy_m = np.asarray(edge_xy_m, dtype=float)
        drop_seq, fraction_seq, corrupt_seq, outage_seq, guest_seq = seed.spawn(5)
        self.guest_link_seeds: tuple[np.random.SeedSequence, ...] = tuple(guest_seq.spawn(2))
        """Seeds of the uplink and downlink media of re-homed devices' links to other edges."""
        shape = (rounds + 1, n_devices)  # row 0 unused: rounds count from 1
        self._drop_u = np.random.default_rng(drop_seq).random(shape)
        self._sent_fraction = np.random.default_rng(fraction_seq).random(shape)
        self._corrupt_u = np.random.default_rng(corrupt_seq).random(shape)
        self._link_up: tuple[np.ndarray, ...] | None = None
        self._link_down: tuple[np.ndarray, ...] | None = None
        if config.outage_rate_per_s > 0:
            schedule = on_off_availability(
                np.random.default_rng(outage_seq),
                n_devices,
                1.0 / config.outage_rate_per_s,
                config.outage_mean_s,
                config.outage_horizon_s,
            )
            rows = schedule.rows()
            self._link_up = tuple(rows["on_s"][rows["node"] == d] for d in range(n_devices))
            self._link_down = tuple(rows["off_s"][rows["node"] == d] for d in range(n_devices))
        self._crashes: dict[int, list[tuple[float, float]]] = {}
        for crash in config.edge_crashes:
            self._crashes.setdefault(crash.edge, []).append((crash.at_s, crash.at_s + crash.down_s))
        self._cloud_down = sorted((w.at_s, w.at_s + w.down_s) for w in config.cloud_outages)

    @property
    def plain_transfers(self) -> bool:
        """No fault touches a transfer (no deadline, outage, crash or cloud outage): plain actions suffice."""
        c = self.config
        return (c.deadline_s is None and c.outage_snr_db is None and c.outage_rate_per_s == 0
                and not c.edge_crashes and not c.cloud_outages)  # fmt: skip

    # ------------------------------------------------------------ device faults
    def dropout(self, device: int, r: int) -> Dropout | None:
        """Whether (and how) ``device`` drops out of round ``r``.

        Drop iff u < p with u ~ U(0, 1) drawn for (r, device); a drop happens
        during the upload iff u < p · ``dropout_during_upload``, and then the
        share of the message sent is a second uniform draw for (r, device).
        """
        p = self.config.dropout_prob
        u = self._drop_u[r, device]
        if not u < p:
            return None
        if u < p * self.config.dropout_during_upload:
            return Dropout("during_upload", float(self._sent_fraction[r, device]))
        return Dropout("after_training")

    def corrupts(self, device: int, r: int) -> bool:
        """Whether ``device`` hands in a faulty update in round ``r`` (probability ``corrupt_prob``)."""
        return bool(self._corrupt_u[r, device] < self.config.corrupt_prob)

    def backoff_s(self, attempt: int) -> float:
        """Wait before retry ``attempt`` (1, 2, ...): backoff_s · 2^(attempt−1).

        The doubling of TCP's retransmission timer (RFC 6298, §5.5), without
        randomisation: the simulator is deterministic anyway.
        """
        return self.config.backoff_s * 2.0 ** (attempt - 1)

    def link_down_until(self, device: int, t_s: float) -> float | None:
        """End of the outage of ``device``'s link at ``t_s`` (None: the link is up)."""
        if self._link_up is None or self._link_down is None or t_s >= self.config.outage_horizon_s:
            return None
        up, down = self._link_up[device], self._link_down[device]
        k = int(np.searchsorted(up, t_s, side="right")) - 1
        if k >= 0 and t_s < down[k]:
            return None
        return float(up[k + 1]) if k + 1 < len(up) else self.config.outage_horizon_s

    def next_link_outage_s(self, device: int, t_s: float) -> float:
        """When the up link of ``device`` at ``t_s`` next goes down (inf: not before the outage horizon)."""
        if self._link_up is None or self._link_down is None:
            return math.inf
        up, down = self._link_up[device], self._link_down[device]
        k = int(np.searchsorted(up, t_s, side="right")) - 1
        end = float(down[k]) if k >= 0 else t_s
        return end if end < self.config.outage_horizon_s else math.inf

    # ------------------------------------------------------------ server faults
    @property
    def crashing_edges(self) -> list[int]:
        """Indices of the edges with at least one crash."""
        return sorted(self._crashes)

    def crashes(self, edge: int) -> list[tuple[float, float]]:
        """(down_at_s, up_at_s) of each crash of edge ``edge``."""
        return list(self._crashes.get(edge, []))

    def edge_up_at(self, edge: int, t_s: float) -> float:
        """``t_s`` if edge ``edge`` is up then, else when it recovers (overlapping crashes chain)."""
        return _up_at(self._crashes.get(edge, []), t_s)

    def next_crash_s(self, edge: int, t_s: float) -> float:
        """Start of the first crash of edge ``edge`` after ``t_s`` (inf: none)."""
        return min((down for down, _ in self._crashes.get(edge, []) if down > t_s), default=math.inf)

    def crash_between(self, edge: int, start_s: float, end_s: float) -> float | None:
        """When edge ``edge`` first went down in (start_s, end_s] (None: it did not)."""
        return min((down for down, _ in self._crashes.get(edge, []) if start_s < down <= end_s), default=None)

    def down_since(self, edge: int, t_s: float) -> float:
        """Start of the crash edge ``edge`` is in at ``t_s`` (``t_s`` itself if it is up)."""
        return min((down for down, up in self._crashes.get(edge, []) if down <= t_s < up), default=t_s)

    def cloud_up_at(self, t_s: float) -> float:
        """``t_s`` if the cloud is up then, else the end of its outage."""
        return _up_at(self._cloud_down, t_s)

    def nearest_alive_edge(self, device_xy_m: np.ndarray, t_s: float) -> int | None:
        """The edge nearest to ``device_xy_m`` among those up at ``t_s`` (None if all are down)."""
        alive = [j for j in range(len(self.edge_xy_m)) if self.edge_up_at(j, t_s) == t_s]
        if not alive:
            return None
        distance_m = np.linalg.norm(self.edge_xy_m[alive] - device_xy_m, axis=-1)
        return alive[int(np.argmin(distance_m))]


def _up_at(windows: list[tuple[float, float]], t_s: float) -> float:
    """The first time ≥ ``t_s`` outside every half-open window [down, up)."""
    moved = True
    while moved:
        moved = False
        for down, up in windows:
            if down <= t_s < up:
                t_s, moved = up, True
    return t_s


class DeepFade:
    """Outage test of a radio link: SNR on the link's bandwidth below ``threshold_db``.

    SNR = P_tx·g / N(B) (:func:`channels.snr_linear`, :func:`channels.noise_power_w`)
    with the medium's transmit power and noise settings, so a flow on a share
    B/n of the cell sees n times less noise than one on the whole band.
    """

    def __init__(self, medium: RadioMedium, threshold_db: float) -> None:
        self.medium = medium
        self.threshold = float(db_to_linear(threshold_db))

    def __call__(self, gains: np.ndarray, bandwidth_hz: float) -> np.ndarray:
        """Per-link mask: True where the link is in outage."""
        c = self.medium.config
        noise_w = noise_power_w(bandwidth_hz, c.noise_psd_dbm_hz, c.noise_figure_db)
        return np.asarray(snr_linear(self.medium.tx_power_w, gains, noise_w)) < self.threshold


def gather_until(
    env: simpy.Environment, processes: Mapping[int, simpy.Process], deadline_s: float | None
) -> Generator[simpy.Event, object, dict[int, object]]:
    """Wait for every process, or until ``deadline_s`` (absolute time); interrupt those still running.

    Use with ``yield from``; returns {key: value} of the processes that
    finished before the deadline (one finishing at the very instant of the
    deadline may fall either side: a tie of probability zero with random channels).
    An interrupted process receives ``simpy.Interrupt("deadline")`` and is
    expected to log what it was cut from; it is waited for (it handles the
    interrupt at the same simulated time) so its rows belong to this round.
    """
    everyone = env.all_of(list(processes.values()))
    if deadline_s is None:
        yield everyone
    else:
        yield env.any_of([everyone, env.timeout(max(0.0, deadline_s - env.now))])
    late = [p for p in processes.values() if not p.triggered]
    for process in late:
        process.interrupt("deadline")
    if late:
        yield env.all_of(late)
    return {key: p.value for key, p in processes.items() if p not in late}
