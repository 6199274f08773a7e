"""Wireless channel and energy models (numpy, vectorized over links; no SimPy, torch or h5py).

The chain: geometry → path loss (+ shadowing, LOS state) → fading → SNR → rate
→ airtime → energy.

    >>> import numpy as np
    >>> d_m = np.array([100.0, 1000.0])
    >>> gain = db_to_linear(-LogDistance(-30.0, 3.0).path_loss_db(d_m))   # the HF-FM prototype's uplink
    >>> snr = snr_linear(dbm_to_w(30.0), gain, noise_power_w(1e6))
    >>> rate = shannon_rate_bps(1e6, snr)
    >>> np.round(airtime_s(48e6, rate), 2)                                  # a 6 MB model
    array([2.68, 6.02])
"""

from channels.compute import compute_time_s, cycles_for_flops, energy_dvfs_j, energy_power_time_j
from channels.fading import BlockFading, fading_power_gain
from channels.geometry import clustered_layout, distance_3d_m, distance_m
from channels.link import (
    MCS_TABLE_CQI,
    airtime_s,
    attenuated_shannon_rate_bps,
    mcs_rate_bps,
    noise_power_w,
    radio_energy_j,
    shannon_rate_bps,
    snr_linear,
)
from channels.pathloss import (
    FreeSpace,
    LogDistance,
    PathLossModel,
    TR38901,
    los_probability_inh_office,
    los_probability_uma,
    los_probability_umi,
)
from channels.units import SPEED_OF_LIGHT_M_S, db_to_linear, dbm_to_w, linear_to_db, w_to_dbm

__all__ = [
    "MCS_TABLE_CQI",
    "SPEED_OF_LIGHT_M_S",
    "TR38901",
    "BlockFading",
    "FreeSpace",
    "LogDistance",
    "PathLossModel",
    "airtime_s",
    "attenuated_shannon_rate_bps",
    "clustered_layout",
    "compute_time_s",
    "cycles_for_flops",
    "db_to_linear",
    "dbm_to_w",
    "distance_3d_m",
    "distance_m",
    "energy_dvfs_j",
    "energy_power_time_j",
    "fading_power_gain",
    "linear_to_db",
    "los_probability_inh_office",
    "los_probability_uma",
    "los_probability_umi",
    "mcs_rate_bps",
    "noise_power_w",
    "radio_energy_j",
    "shannon_rate_bps",
    "snr_linear",
    "w_to_dbm",
]
