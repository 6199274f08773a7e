"""Link budget: noise, SNR, rate (Shannon, attenuated Shannon, CQI table), airtime, radio energy.

    >>> round(w_to_dbm(noise_power_w(1e6)), 6)
    -114.0
    >>> shannon_rate_bps(1e6, 1.0)
    1000000.0
    >>> airtime_s(8e6, 2e6)
    4.0
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from channels._validate import as_float_array, nonnegative, positive, scalar_or_array
from channels.units import db_to_linear, dbm_to_w, w_to_dbm  # noqa: F401  (w_to_dbm: doctest)


def noise_power_w(
    bandwidth_hz: ArrayLike, noise_psd_dbm_hz: float = -174.0, noise_figure_db: float = 0.0
) -> float | np.ndarray:
    """Thermal noise power N = N0 + 10·log10(B) + NF (dBm), returned in W.

    N0 = −174 dBm/Hz is the thermal noise density k·T0 at the reference
    temperature T0 = 290 K of ITU-R P.372 (k = 1.380649e−23 J/K gives
    −173.98 dBm/Hz); NF is the receiver noise figure.
    At B = 1 MHz and NF = 0 dB: −114 dBm ≈ 3.98e−15 W.

    Raises:
        ValueError: ``bandwidth_hz`` not positive, or ``noise_figure_db`` negative.
    """
    b = positive(bandwidth_hz, "bandwidth_hz")
    if not noise_figure_db >= 0:
        raise ValueError(f"noise_figure_db must be non-negative, got {noise_figure_db}")
    return dbm_to_w(noise_psd_dbm_hz + 10.0 * np.log10(b) + noise_figure_db)


def snr_linear(tx_power_w: ArrayLike, gain_linear: ArrayLike, noise_w: ArrayLike) -> float | np.ndarray:
    """SNR = P_tx·g / N (linear), with g the total power gain (path loss × shadowing × fading).

    Raises:
        ValueError: negative power or gain, non-positive noise.
    """
    p = nonnegative(tx_power_w, "tx_power_w")
    g = nonnegative(gain_linear, "gain_linear")
    n = positive(noise_w, "noise_w")
    return scalar_or_array(p * g / n)


def _check_cap(rate_cap_bps: float | None) -> None:
    if rate_cap_bps is not None and not rate_cap_bps > 0:
        raise ValueError(f"rate_cap_bps must be positive or None, got {rate_cap_bps}")


def shannon_rate_bps(
    bandwidth_hz: ArrayLike, snr_linear: ArrayLike, rate_cap_bps: float | None = None
) -> float | np.ndarray:
    """Shannon capacity R = B·log2(1 + SNR) (Shannon 1948), optionally min(R, ``rate_cap_bps``).

    Raises:
        ValueError: negative bandwidth or SNR, non-positive cap.
    """
    b = nonnegative(bandwidth_hz, "bandwidth_hz")
    snr = nonnegative(snr_linear, "snr_linear")
    _check_cap(rate_cap_bps)
    rate = b * np.log2(1.0 + snr)
    if rate_cap_bps is not None:
        rate = np.minimum(rate, rate_cap_bps)
    return scalar_or_array(rate)


def attenuated_shannon_rate_bps(
    bandwidth_hz: ArrayLike,
    snr_linear: ArrayLike,
    alpha: float = 0.6,
    snr_min_db: float = -10.0,
    max_eff: float = 4.4,
) -> float | np.ndarray:
    """Attenuated and truncated Shannon bound, 3GPP TR 36.942 Annex A.2.

    Thr/B = 0                         for SNR < SNR_min,
            α·log2(1 + SNR)           for SNR_min ≤ SNR and α·log2(1 + SNR) < Thr_max,
            Thr_max                   beyond.
    Defaults are the downlink values (α = 0.6, SNR_min = −10 dB, Thr_max = 4.4
    bit/s/Hz); the uplink values are α = 0.4, −10 dB, 2.0 bit/s/Hz.

    Raises:
        ValueError: negative bandwidth or SNR, α outside (0, 1], non-positive ``max_eff``.
    """
    b = nonnegative(bandwidth_hz, "bandwidth_hz")
    snr = nonnegative(snr_linear, "snr_linear")
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if not max_eff > 0:
        raise ValueError(f"max_eff must be positive, got {max_eff}")
    eff = np.minimum(alpha * np.log2(1.0 + snr), max_eff)
    eff = np.where(snr < db_to_linear(snr_min_db), 0.0, eff)
    return scalar_or_array(b * eff)


CQI_EFFICIENCY_BPS_HZ: tuple[float, ...] = (
    0.1523, 0.2344, 0.3770, 0.6016, 0.8770, 1.1758, 1.4766, 1.9141,
    2.4063, 2.7305, 3.3223, 3.9023, 4.5234, 5.1152, 5.5547,
)  # fmt: skip
"""Spectral efficiency of CQI 1…15, 3GPP TS 36.213 Table 7.2.3-1 (4-bit CQI table).

CQI 1–6 QPSK, 7–9 16QAM, 10–15 64QAM; code rate ×1024 = 78, 120, 193, 308,
449, 602, 378, 490, 616, 466, 567, 666, 772, 873, 948. CQI 0 is "out of range".
"""

_CQI_ALPHA = 0.6


def _make_cqi_table() -> np.ndarray:
    eff = np.asarray(CQI_EFFICIENCY_BPS_HZ)
    table = np.stack([10.0 * np.log10(2.0 ** (eff / _CQI_ALPHA) - 1.0), eff], axis=-1)
    table.setflags(write=False)
    return table


MCS_TABLE_CQI: np.ndarray = _make_cqi_table()
"""CQI 1…15 as a read-only (15, 2) array: columns (SNR threshold in dB, efficiency in bit/s/Hz).

The efficiencies are TS 36.213 Table 7.2.3-1's. **The thresholds are not in any
spec** (a UE picks its CQI from its own link-level performance at 10 % BLER).
Ours are the SNR at which the attenuated Shannon bound with α = 0.6 (TR 36.942
Annex A.2, without its 4.4 bit/s/Hz truncation) reaches each efficiency:
SNR_th = 2^(eff/0.6) − 1, i.e. ≈ −7.2 dB for CQI 1, ≈ 11.3 dB for CQI 9 and
≈ 27.9 dB for CQI 15. This is a 1/α = 1.67× bandwidth-efficiency loss
relative to Shannon; link-level CQI mappings cited in the literature are
somewhat more optimistic at high SNR (CQI 15 near 20–23 dB).
"""


def mcs_rate_bps(
    bandwidth_hz: ArrayLike, snr_linear: ArrayLike, table: np.ndarray = MCS_TABLE_CQI
) -> float | np.ndarray:
    """R = B × efficiency of the highest table entry whose SNR threshold is met; 0 below the lowest.

    "Met" means SNR_dB ≥ threshold_dB. ``table`` is (n, 2): (threshold dB,
    efficiency bit/s/Hz), thresholds non-decreasing; see :data:`MCS_TABLE_CQI`.

    Raises:
        ValueError: negative bandwidth or SNR, or a malformed table.
    """
    b = nonnegative(bandwidth_hz, "bandwidth_hz")
    snr = nonnegative(snr_linear, "snr_linear")
    tab = as_float_array(table, "table")
    if tab.ndim != 2 or tab.shape[1] != 2 or tab.shape[0] < 1:
        raise ValueError(f"table must have shape (n, 2) with n ≥ 1, got {tab.shape}")
    if np.any(np.diff(tab[:, 0]) < 0):
        raise ValueError("table SNR thresholds (column 0) must be non-decreasing")
    thresholds_lin = np.power(10.0, tab[:, 0] / 10.0)
    index = np.searchsorted(thresholds_lin, snr, side="right") - 1
    eff = np.where(index >= 0, tab[np.maximum(index, 0), 1], 0.0)
    return scalar_or_array(b * eff)


def airtime_s(payload_bits: ArrayLike, rate_bps: ArrayLike) -> float | np.ndarray:
    """Transmission time t = L / R; ∞ for R = 0 (with L > 0), 0 for L = 0.

    Raises:
        ValueError: negative payload or rate.
    """
    bits = nonnegative(payload_bits, "payload_bits")
    rate = nonnegative(rate_bps, "rate_bps")
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(bits == 0, 0.0, bits / rate)
    return scalar_or_array(t)


def radio_energy_j(power_w: ArrayLike, airtime_s: ArrayLike) -> float | np.ndarray:
    """Radio energy E = P·t (transmit or receive power times airtime); 0 W for ∞ s gives 0 J.

    Raises:
        ValueError: negative power or airtime.
    """
    p = nonnegative(power_w, "power_w")
    t = nonnegative(airtime_s, "airtime_s")
    with np.errstate(invalid="ignore"):
        e = np.where(p == 0, 0.0, p * t)
    return scalar_or_array(e)
