"""The D2D sidelink as a radio medium: device pairs as links, link range from the link budget, receiver bands.

* :class:`PairLinks` numbers the D2D links: every unordered pair of devices of
  the same edge (D2D cooperation stays inside a cell), so a
  :class:`sim.radio.RadioMedium` over ``len(links)`` links gives each pair its
  large-scale gain and fading (a pair's channel is reciprocal: one link id for
  both directions).
* :func:`median_snr_db` and :func:`sidelink_range_m` turn a radio
  configuration into the range a link has (the distance where the median SNR
  falls to a threshold).
* :class:`SidelinkCell` is a receiver's sidelink band: a
  :class:`sim.media.SharedCell` (equal FDMA split among the senders
  transmitting to it at that moment) whose flows can be stopped when their
  contact closes.
* :class:`SidelinkBroadcast` is a cluster's broadcast band: one sender at a
  time, at the worst receiver's rate, recomputed every fading block.

No formula lives here: gains, noise and SNR come from :mod:`channels`.

    >>> links = PairLinks(np.array([0, 0, 1, 0, 1]))
    >>> len(links), links.link(3, 0), links.link(2, 4), (0, 2) in links
    (4, 1, 3, False)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence

import numpy as np
import simpy
from scipy.optimize import brentq

from channels import TR38901, db_to_linear, dbm_to_w, linear_to_db, noise_power_w, snr_linear
from sim.media import OutageError, SharedCell
from sim.radio import LinkDistance, RadioMedium
from sim.scenario import D2DConfig, RadioConfig

Positions = Callable[[float], np.ndarray]
"""t_s → (n_devices, 2) device positions in m."""

_MAX_RANGE_M = 1e7
"""Upper end of the range search: a link budget reaching farther than 10 000 km is a configuration mistake."""


class PairLinks:
    """Link ids of the D2D pairs: unordered pairs {a, b} of devices on the same edge, in (a, b) order, a < b.

    Args:
        device_edge: edge index of each device.
    """

    def __init__(self, device_edge: np.ndarray) -> None:
        edge_of = np.asarray(device_edge, dtype=np.int64)
        pairs = [
            (int(a), int(b))
            for j in np.unique(edge_of)
            for k, a in enumerate(np.flatnonzero(edge_of == j))
            for b in np.flatnonzero(edge_of == j)[k + 1 :]
        ]
        pairs.sort()
        self.a = np.array([p[0] for p in pairs], dtype=np.int64)
        self.b = np.array([p[1] for p in pairs], dtype=np.int64)
        self._id = {p: i for i, p in enumerate(pairs)}

    def __len__(self) -> int:
        return len(self._id)

    def __contains__(self, pair: tuple[int, int]) -> bool:
        a, b = pair
        return (min(a, b), max(a, b)) in self._id

    def link(self, a: int, b: int) -> int:
        """The link id of the pair {a, b} (either order); KeyError when they are not D2D peers."""
        return self._id[(min(a, b), max(a, b))]

    def distance_function(self, positions: Positions) -> LinkDistance:
        """(links, t_s) → distance of each link's two devices at t_s (m), for :class:`sim.radio.RadioMedium`."""

        def distance_m(links: np.ndarray, t_s: float) -> np.ndarray:
            xy = positions(t_s)
            return np.linalg.norm(xy[self.a[links]] - xy[self.b[links]], axis=-1)

        return distance_m


def median_snr_db(config: RadioConfig, distance_m: np.ndarray | float) -> np.ndarray:
    """Median SNR in dB at ``distance_m``: P_tx·g(d)/N(B), g the path loss gain without shadowing or fading.

    SNR = P_tx · 10^(−PL(d)/10) / (N0·B·NF) (:func:`channels.snr_linear`,
    :func:`channels.noise_power_w`), with PL the model's deterministic loss;
    for 3GPP TR 38.901 with a stochastic LOS state, the NLOS loss (the
    conservative one). Rayleigh fading has median |h|² = ln 2 ≈ −1.6 dB, not
    counted here: this is the link budget, not one realisation.

    >>> from sim.scenario import D2DConfig
    >>> round(float(median_snr_db(D2DConfig(), 30.0)), 2)  # 23 dBm − (30 + 44.31) dB + 105.0 dBm
    53.66
    """
    model = config.pathloss.build()
    los = False if isinstance(model, TR38901) and model.los == "stochastic" else None
    gain = db_to_linear(-np.asarray(model.path_loss_db(distance_m, los), dtype=float))
    noise_w = noise_power_w(config.bandwidth_hz, config.noise_psd_dbm_hz, config.noise_figure_db)
    return np.asarray(linear_to_db(snr_linear(dbm_to_w(config.tx_power_dbm), gain, noise_w)), dtype=float)


def sidelink_range_m(config: D2DConfig) -> float:
    """Contact range R: ``radius_m``, shortened to the distance where the median SNR falls to ``snr_threshold_db``.

    The SNR range is the root of median_snr_db(d) = threshold (Brent's method,
    ``scipy.optimize.brentq``; path loss grows with distance, so the root is
    unique). 0 when even 1 cm misses the threshold.

    Raises:
        ValueError: the SNR stays above the threshold beyond 10 000 km and no finite radius bounds it.

    >>> from sim.scenario import D2DConfig
    >>> round(sidelink_range_m(D2DConfig(radius_m=float("inf"), snr_threshold_db=50.0)), 2)  # 10^(47.97/30) m
    39.72
    """
    radius = float(config.radius_m)
    threshold = config.snr_threshold_db
    if threshold is None:
        return radius
    upper = min(radius, _MAX_RANGE_M)
    lower = 1e-2

    def margin_db(d_m: float) -> float:
        return float(median_snr_db(config, d_m)) - threshold

    if margin_db(lower) < 0:
        return 0.0
    if margin_db(upper) >= 0:
        if math.isinf(radius):
            raise ValueError(f"d2d.snr_threshold_db = {threshold} dB is reached beyond {_MAX_RANGE_M:g} m; set radius_m")
        return radius
    return float(brentq(margin_db, lower, upper, xtol=1e-9, rtol=1e-12))


class SidelinkCell(SharedCell):
    """A receiver's sidelink band: concurrent senders share it (equal FDMA split); a flow can be stopped.

    The split and rate rules are :class:`sim.media.SharedCell`'s; :meth:`cancel`
    removes a flow whose contact closed, giving its share back to the others.
    """

    def cancel(self, done: simpy.Event) -> float:
        """Stop the flow whose completion event is ``done`` (not yet triggered); return the bits it delivered."""
        self._advance()
        flow = next(f for f in self._flows if f.done is done)
        self._flows.remove(flow)
        self._reschedule()
        return flow.bits - max(flow.bits_left, 0.0)


class SidelinkBroadcast:
    """A shared broadcast band: one sender at a time, at the rate of its worst receiver in each fading block.

    In coherence block b the rate is min_k R(g_k(b), B) over the receivers
    (multicast to the weakest link); the bits sent in the block are that rate
    times the time spent in it, and the gains are redrawn at the next block
    boundary (the medium's block fading). Without a coherence time the gains
    are drawn once per broadcast, as :class:`sim.media.BroadcastChannel` does.
    """

    def __init__(self, env: simpy.Environment, medium: RadioMedium, bandwidth_hz: float) -> None:
        self.env = env
        self.medium = medium
        self.bandwidth_hz = bandwidth_hz
        self._busy = simpy.Resource(env, capacity=1)

    def _worst_rate_bps(self, links: np.ndarray) -> float:
        return float(self.medium.rates_bps(self.medium.gains(links, self.env.now), self.bandwidth_hz).min())

    def send(self, links: Sequence[int], bits: float) -> Generator[simpy.Event, object, tuple[float, float]]:
        """Broadcast ``bits`` on ``links`` once the band is free; returns ``(start_s, end_s)`` of the airtime."""
        links_arr = np.asarray(links)
        coherence_s = self.medium.coherence_s
        with self._busy.request() as slot:
            yield slot
            start_s, bits_left = self.env.now, float(bits)
            while True:
                rate = self._worst_rate_bps(links_arr)
                if coherence_s is None:
                    if rate <= 0:
                        raise OutageError(f"D2D broadcast on links {links_arr.tolist()} has rate 0 bit/s")
                    yield self.env.timeout(bits_left / rate)
                    break
                block_left_s = (self.medium.block_index(self.env.now) + 1) * coherence_s - self.env.now
                if rate > 0 and bits_left <= rate * block_left_s:
                    yield self.env.timeout(bits_left / rate)
                    break
                yield self.env.timeout(block_left_s)
                bits_left -= rate * block_left_s
            return start_s, self.env.now
