"""A configured radio medium: the chain of :mod:`channels` functions for a set of links.

Composes large-scale gain (path loss + shadowing, drawn once per link for
static nodes), block fading (per transfer or per coherence interval) and the
rate function (Shannon or MCS) at a given bandwidth. No formula lives here.
"""

from __future__ import annotations

import numpy as np

from channels import (
    BlockFading,
    db_to_linear,
    dbm_to_w,
    mcs_rate_bps,
    noise_power_w,
    shannon_rate_bps,
    snr_linear,
)
from sim.scenario import RadioConfig


class RadioMedium:
    """Gains and rates of ``len(distances_m)`` links that share one :class:`RadioConfig`.

    Args:
        config: the medium's radio parameters.
        distances_m: 2D distance of each link (link index = position in this array).
        rng: the medium's own generator (shadowing, LOS state and fading draws).
    """

    def __init__(self, config: RadioConfig, distances_m: np.ndarray, rng: np.random.Generator) -> None:
        self.config = config
        self.tx_power_w = float(dbm_to_w(config.tx_power_dbm))
        self.tx_energy_power_w = self.tx_power_w if config.tx_energy_power_w is None else config.tx_energy_power_w
        self.rx_power_w = config.rx_power_w
        gain_db = config.pathloss.build().gain_db(np.asarray(distances_m, dtype=float), rng)
        self.large_scale_gain = np.atleast_1d(db_to_linear(gain_db)).astype(float)
        fading = config.fading
        self.coherence_s = fading.coherence_s
        self._fading = BlockFading(
            fading.kind, len(self.large_scale_gain), rng, fading.coherence_s, k_factor_db=fading.k_factor_db
        )

    def block_index(self, t_s: float) -> int:
        """Fading block containing ``t_s`` (−1 when fading is redrawn per transfer)."""
        return self._fading.block_index(t_s)

    def gains(self, links: np.ndarray, t_s: float) -> np.ndarray:
        """Linear power gains of distinct ``links`` at time ``t_s`` (large-scale × fading)."""
        return self.large_scale_gain[links] * self._fading.gains(links, t_s)

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
