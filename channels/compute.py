"""Compute time and energy of local training.

Two energy models: constant power × time, or the CMOS dynamic-power model
E = κ·C·f² with C CPU cycles at frequency f and effective switched capacitance
κ (Mao et al., IEEE COMST 2017, eq. (3); Tran et al., INFOCOM 2019, eq. (4)).

    >>> float(energy_dvfs_j(1e-28, 1e9, 1e9))
    0.1
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def compute_time_s(flops: ArrayLike, flops_per_s: ArrayLike) -> np.ndarray:
    """t = FLOPs / (FLOP/s)."""
    rate = np.asarray(flops_per_s, dtype=float)
    if np.any(~(rate > 0)):
        raise ValueError("flops_per_s must be positive")
    return np.asarray(flops, dtype=float) / rate


def energy_power_time_j(power_w: ArrayLike, time_s: ArrayLike) -> np.ndarray:
    """E = P·t."""
    return np.asarray(power_w, dtype=float) * np.asarray(time_s, dtype=float)


def energy_dvfs_j(kappa: float, cycles: ArrayLike, freq_hz: ArrayLike) -> np.ndarray:
    """E = κ·C·f² (dynamic CMOS energy of C cycles at frequency f)."""
    return kappa * np.asarray(cycles, dtype=float) * np.asarray(freq_hz, dtype=float) ** 2


def cycles_for_flops(flops: ArrayLike, flops_per_cycle: float) -> np.ndarray:
    """C = FLOPs / (FLOPs per cycle)."""
    if not flops_per_cycle > 0:
        raise ValueError("flops_per_cycle must be positive")
    return np.asarray(flops, dtype=float) / flops_per_cycle
