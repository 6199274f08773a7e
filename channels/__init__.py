"""Wireless channel and energy models: numpy only, vectorized over links (no SimPy, torch or h5py).

The chain, one module per step, SI units throughout (dB/dBm only in names
that say so, converted in :mod:`channels.units`):

1. :mod:`~channels.geometry` — positions → distances (``clustered_layout``, ``distance_m``);
2. :mod:`~channels.pathloss` — distance → large-scale gain in dB (``LogDistance``,
   ``FreeSpace``, ``TR38901`` with LOS probability and shadowing);
3. :mod:`~channels.fading` — small-scale power gain |h|², mean 1 (``BlockFading``);
4. :mod:`~channels.link` — gain → SNR against thermal noise → rate (Shannon,
   attenuated Shannon, CQI table) → airtime → radio energy;
5. :mod:`~channels.compute` — FLOPs → compute time and energy.

D2D: :mod:`~channels.contacts` — contact graphs within a radius, MST
connection of clusters, exact contact intervals of moving nodes, consensus
weights (max-degree, Metropolis) and cluster-head selection.

Example, the HF-FM prototype's uplink (β0 = −30 dB, α = 3, 1 W, 1 MHz, no
fading) for a 6 MB model from 100 m and 1 km:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> d_m = np.array([100.0, 1000.0])
    >>> gain = db_to_linear(LogDistance(-30.0, 3.0).gain_db(d_m, rng))
    >>> snr = snr_linear(dbm_to_w(30.0), gain * fading_power_gain("none", 2, rng), noise_power_w(1e6))
    >>> rate = shannon_rate_bps(1e6, snr)
    >>> np.round(airtime_s(48e6, rate), 2)
    array([2.68, 6.02])
    >>> np.round(radio_energy_j(0.6, airtime_s(48e6, rate)), 2)
    array([1.61, 3.61])
"""

from channels.compute import compute_time_s, cycles_for_flops, energy_dvfs_j, energy_power_time_j
from channels.contacts import (
    CONTACT_DTYPE,
    clusters,
    connect_with_mst,
    consensus,
    consensus_factor,
    contact_graph,
    contact_intervals,
    max_degree_weights,
    metropolis_weights,
    select_cluster_head,
)
from channels.fading import BlockFading, fading_power_gain
from channels.geometry import clustered_layout, distance_3d_m, distance_m
from channels.link import (
    CQI_EFFICIENCY_BPS_HZ,
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
    "CONTACT_DTYPE",
    "CQI_EFFICIENCY_BPS_HZ",
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
    "clusters",
    "compute_time_s",
    "connect_with_mst",
    "consensus",
    "consensus_factor",
    "contact_graph",
    "contact_intervals",
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
    "max_degree_weights",
    "mcs_rate_bps",
    "metropolis_weights",
    "noise_power_w",
    "radio_energy_j",
    "select_cluster_head",
    "shannon_rate_bps",
    "snr_linear",
    "w_to_dbm",
]
