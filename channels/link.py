"""Link budget: noise, SNR, rate (Shannon, attenuated Shannon, CQI/MCS table), airtime, radio energy.

    >>> round(float(w_to_dbm(noise_power_w(1e6))), 6)
    -114.0
    >>> float(shannon_rate_bps(1e6, 1.0))
    1000000.0
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from channels.units import db_to_linear, dbm_to_w, w_to_dbm  # noqa: F401  (w_to_dbm used in the doctest)


def noise_power_w(bandwidth_hz: ArrayLike, noise_psd_dbm_hz: float = -174.0, noise_figure_db: float = 0.0) -> np.ndarray:
    """Thermal noise N = −174 dBm/Hz + 10·log10(B) + NF, in W (kT0 at 290 K ≈ −174 dBm/Hz)."""
    b = np.asarray(bandwidth_hz, dtype=float)
    if np.any(~(b > 0)):
        raise ValueError("bandwidth_hz must be positive")
    return dbm_to_w(noise_psd_dbm_hz + 10.0 * np.log10(b) + noise_figure_db)


def snr_linear(tx_power_w: ArrayLike, gain_linear: ArrayLike, noise_w: ArrayLike) -> np.ndarray:
    """SNR = P·g / N (linear)."""
    return np.asarray(tx_power_w, dtype=float) * np.asarray(gain_linear, dtype=float) / np.asarray(noise_w, dtype=float)


def shannon_rate_bps(bandwidth_hz: ArrayLike, snr: ArrayLike, rate_cap_bps: float | None = None) -> np.ndarray:
    """Shannon capacity B·log2(1 + SNR) (Shannon 1948), optionally capped at ``rate_cap_bps``."""
    rate = np.asarray(bandwidth_hz, dtype=float) * np.log2(1.0 + np.asarray(snr, dtype=float))
    return rate if rate_cap_bps is None else np.minimum(rate, rate_cap_bps)


def attenuated_shannon_rate_bps(
    bandwidth_hz: ArrayLike, snr: ArrayLike, alpha: float = 0.6, snr_min_db: float = -10.0, max_eff: float = 4.4
) -> np.ndarray:
    """Attenuated Shannon bound, 3GPP TR 36.942 Annex A.2.

    Throughput/B = 0 for SNR < SNR_min, α·log2(1 + SNR) up to ``max_eff``,
    ``max_eff`` beyond (α = 0.6, SNR_min = −10 dB, 4.4 bit/s/Hz for the downlink).
    """
    snr = np.asarray(snr, dtype=float)
    eff = np.minimum(alpha * np.log2(1.0 + snr), max_eff)
    eff = np.where(snr < db_to_linear(snr_min_db), 0.0, eff)
    return np.asarray(bandwidth_hz, dtype=float) * eff


_CQI_EFFICIENCY = np.array(
    [0.1523, 0.2344, 0.3770, 0.6016, 0.8770, 1.1758, 1.4766, 1.9141,
     2.4063, 2.7305, 3.3223, 3.9023, 4.5234, 5.1152, 5.5547]
)  # fmt: skip
MCS_TABLE_CQI: np.ndarray = np.stack(
    [10.0 * np.log10(2.0 ** (_CQI_EFFICIENCY / 0.6) - 1.0), _CQI_EFFICIENCY], axis=-1
)
"""CQI 1..15 of 3GPP TS 36.213 Table 7.2.3-1: columns (SNR threshold dB, efficiency bit/s/Hz).

Efficiencies are the spec's. The spec gives no SNR thresholds; ours are the SNR
at which the attenuated Shannon bound with α = 0.6 (TR 36.942 A.2) reaches each
efficiency: SNR = 2^(eff/0.6) − 1 (≈ −6.9 dB for CQI 1, ≈ 27.9 dB for CQI 15).
"""


def mcs_rate_bps(bandwidth_hz: ArrayLike, snr: ArrayLike, table: np.ndarray = MCS_TABLE_CQI) -> np.ndarray:
    """B × efficiency of the highest table entry whose SNR threshold is met (0 below the lowest)."""
    snr_db = 10.0 * np.log10(np.maximum(np.asarray(snr, dtype=float), 1e-300))
    index = np.searchsorted(table[:, 0], snr_db, side="right") - 1
    eff = np.where(index >= 0, table[np.maximum(index, 0), 1], 0.0)
    return np.asarray(bandwidth_hz, dtype=float) * eff


def airtime_s(payload_bits: ArrayLike, rate_bps: ArrayLike) -> np.ndarray:
    """Transmission time L / R (∞ for R = 0)."""
    rate = np.asarray(rate_bps, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(rate > 0, np.asarray(payload_bits, dtype=float) / np.where(rate > 0, rate, 1.0), np.inf)


def radio_energy_j(power_w: ArrayLike, airtime_s: ArrayLike) -> np.ndarray:
    """Radio energy E = P·t (transmit or receive power times airtime)."""
    return np.asarray(power_w, dtype=float) * np.asarray(airtime_s, dtype=float)
