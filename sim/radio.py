"""A configured radio medium: the chain of :mod:`channels` functions for a set of links.

Composes large-scale gain (path loss + shadowing; drawn once per link for
static nodes, or from the distance at each transfer for moving ones), block
fading (per transfer or per coherence interval) and the rate function
(Shannon or MCS) at a given bandwidth. Every gain it hands out can be logged
as a channel sample, and a recorded sequence of samples can stand in for the
models (trace replay). No formula lives here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from channels import BlockFading, db_to_linear, dbm_to_w, mcs_rate_bps, noise_power_w, shannon_rate_bps, snr_linear
from sim.scenario import FadingConfig, RadioConfig

LinkDistance = Callable[[np.ndarray, float], np.ndarray]
"""(links, t_s) → 2D distance of each link at time t_s (m)."""

ChannelLog = Callable[[float, np.ndarray, np.ndarray], None]
"""Receives (t_s, links, gains) for every gain handed out."""


class ReplayMismatchError(ValueError):
    """A replayed channel trace does not match the transfers of this run."""


class ChannelReplay:
    """Serves recorded gains of one medium in the order they were recorded.

    Args:
        t_s, links, gains: the recorded samples of this medium, in recording order.
    """

    def __init__(self, t_s: np.ndarray, links: np.ndarray, gains: np.ndarray) -> None:
        self._t_s, self._links, self._gains = t_s, links, gains
        self._next = 0

    def take(self, links: np.ndarray, t_s: float) -> np.ndarray:
        """The next ``len(links)`` samples; they must be for these links at this time."""
        end = self._next + len(links)
        if end > len(self._gains):
            raise ReplayMismatchError(f"channel trace ran out of samples at t = {t_s:.6f} s")
        window = slice(self._next, end)
        if not (np.array_equal(self._links[window], links) and np.allclose(self._t_s[window], t_s, rtol=0, atol=1e-9)):
            raise ReplayMismatchError(
                f"channel trace has links {self._links[window].tolist()} at t = {self._t_s[window].tolist()} s "
                f"where this run needs links {links.tolist()} at t = {t_s:.6f} s; is it the same scenario?"
            )
        self._next = end
        return self._gains[window]


class RadioMedium:
    """Gains and rates of the links that share one :class:`RadioConfig`.

    Args:
        config: the medium's radio parameters.
        link_distance_m: each link's 2D distance at a time.
        n_links: number of links (link ids are 0..n_links−1).
        rng: the medium's own generator (shadowing, LOS state and fading draws).
        static: distances never change, so the large-scale gain is drawn once per link.
        log: called with every (t, links, gains) handed out.
        replay: recorded gains to serve instead of the models.
    """

    def __init__(
        self,
        config: RadioConfig,
        link_distance_m: LinkDistance,
        n_links: int,
        rng: np.random.Generator,
        static: bool = True,
        log: ChannelLog | None = None,
        replay: ChannelReplay | None = None,
    ) -> None:
        self.config = config
        self.tx_power_w = float(dbm_to_w(config.tx_power_dbm))
        self.tx_energy_power_w = self.tx_power_w if config.tx_energy_power_w is None else config.tx_energy_power_w
        self.rx_power_w = config.rx_power_w
        self._pathloss = config.pathloss.build()
        self._distance = link_distance_m
        self._rng = rng
        self._log = log
        self._replay = replay
        all_links = np.arange(n_links)
        self._static_gain = self._large_scale(all_links, 0.0) if static else None
        self.coherence_s = config.fading.coherence_s
        self._fading = self._make_fading(config.fading, n_links, rng)

    def _make_fading(self, fading: FadingConfig, n_links: int, rng: np.random.Generator) -> BlockFading:
        """The small-scale fading of the links, built after the static large-scale gains are drawn."""
        return BlockFading(fading.kind, n_links, rng, fading.coherence_s, k_factor_db=fading.k_factor_db)

    def _large_scale(self, links: np.ndarray, t_s: float) -> np.ndarray:
        gain_db = self._pathloss.gain_db(np.asarray(self._distance(links, t_s), dtype=float), self._rng)
        return np.atleast_1d(db_to_linear(gain_db)).astype(float)

    def block_index(self, t_s: float) -> int:
        """Fading block containing ``t_s`` (−1 when fading is redrawn per transfer)."""
        return self._fading.block_index(t_s)

    def gains(self, links: np.ndarray, t_s: float) -> np.ndarray:
        """Linear power gains of distinct ``links`` at time ``t_s`` (large-scale × fading)."""
        if self._replay is not None:
            gains = self._replay.take(links, t_s)
        else:
            large = self._static_gain[links] if self._static_gain is not None else self._large_scale(links, t_s)
            gains = large * self._fading.gains(links, t_s)
        if self._log is not None:
            self._log(t_s, links, gains)
        return gains

    def rates_bps(self, gains: np.ndarray, bandwidth_hz: float) -> np.ndarray:
        """Achievable rates over ``bandwidth_hz`` for power ``gains`` at full transmit power."""
        noise_w = noise_power_w(bandwidth_hz, self.config.noise_psd_dbm_hz, self.config.noise_figure_db)
        snr = snr_linear(self.tx_power_w, gains, noise_w)
        if self.config.rate == "mcs":
            rate = mcs_rate_bps(bandwidth_hz, snr)
            if self.config.rate_cap_bps is not None:
                rate = np.minimum(rate, self.config.rate_cap_bps)
            return np.asarray(rate, dtype=float)
        return np.asarray(shannon_rate_bps(bandwidth_hz, snr, self.config.rate_cap_bps), dtype=float)
