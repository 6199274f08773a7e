"""Compute time and energy of local training.

Time is FLOPs over the device's sustained FLOP/s (simulated time, never host
time). Two energy models: constant power × time, or the CMOS dynamic-energy
model E = κ·C·f² for C CPU cycles at clock f with effective switched
capacitance κ (energy κ·f² per cycle; Mao et al., "A Survey on Mobile Edge
Computing: The Communication Perspective", IEEE COMST 2017, local computing
model; Tran et al., "Federated Learning over Wireless Networks: Optimization
Model Design and Analysis", INFOCOM 2019, where κ is written α_n/2).

    >>> energy_dvfs_j(1e-28, 1e9, 1e9)
    0.1
    >>> compute_time_s(2e12, 1e12)
    2.0
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from channels._validate import nonnegative, positive, scalar_or_array


def compute_time_s(flops: ArrayLike, flops_per_s: ArrayLike) -> float | np.ndarray:
    """t = FLOPs / (FLOP/s).

    Raises:
        ValueError: negative ``flops`` or non-positive ``flops_per_s``.
    """
    return scalar_or_array(nonnegative(flops, "flops") / positive(flops_per_s, "flops_per_s"))


def energy_power_time_j(power_w: ArrayLike, time_s: ArrayLike) -> float | np.ndarray:
    """E = P·t (constant average power over the busy time).

    Raises:
        ValueError: negative power or time.
    """
    return scalar_or_array(nonnegative(power_w, "power_w") * nonnegative(time_s, "time_s"))


def energy_dvfs_j(kappa: float, cycles: ArrayLike, freq_hz: ArrayLike) -> float | np.ndarray:
    """E = κ·C·f² (dynamic CMOS energy of C cycles at clock f; Mao et al. 2017, Tran et al. 2019).

    Args:
        kappa: effective switched capacitance κ (J·s², typically ~1e−28).
        cycles: CPU cycles C.
        freq_hz: clock frequency f.

    Raises:
        ValueError: negative ``kappa`` or ``cycles``, non-positive ``freq_hz``.
    """
    k = nonnegative(kappa, "kappa")
    c = nonnegative(cycles, "cycles")
    f = positive(freq_hz, "freq_hz")
    return scalar_or_array(k * c * f * f)


def cycles_for_flops(flops: ArrayLike, flops_per_cycle: ArrayLike) -> float | np.ndarray:
    """C = FLOPs / (FLOPs per cycle).

    Raises:
        ValueError: negative ``flops`` or non-positive ``flops_per_cycle``.
    """
    return scalar_or_array(nonnegative(flops, "flops") / positive(flops_per_cycle, "flops_per_cycle"))
