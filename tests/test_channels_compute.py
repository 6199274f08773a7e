"""channels.compute: compute time and energy against hand values."""

from __future__ import annotations

import numpy as np
import pytest

from channels.compute import compute_time_s, cycles_for_flops, energy_dvfs_j, energy_power_time_j


def test_compute_time() -> None:
    assert compute_time_s(2e12, 1e12) == pytest.approx(2.0)
    np.testing.assert_allclose(compute_time_s(np.array([1e9, 4e9]), 2e9), [0.5, 2.0])
    with pytest.raises(ValueError, match="flops_per_s"):
        compute_time_s(1e9, 0.0)
    with pytest.raises(ValueError, match="flops"):
        compute_time_s(-1.0, 1e9)


def test_energy_power_time() -> None:
    assert energy_power_time_j(5.0, 3.0) == pytest.approx(15.0)
    with pytest.raises(ValueError, match="time_s"):
        energy_power_time_j(5.0, -1.0)


def test_dvfs_energy() -> None:
    # κ = 1e−28, C = 1e9 cycles, f = 1 GHz: 1e−28 · 1e9 · 1e18 = 0.1 J; doubling f quadruples E.
    assert energy_dvfs_j(1e-28, 1e9, 1e9) == pytest.approx(0.1)
    assert energy_dvfs_j(1e-28, 1e9, 2e9) == pytest.approx(0.4)
    np.testing.assert_allclose(energy_dvfs_j(2e-28, np.array([1e9, 3e9]), 1e9), [0.2, 0.6])
    with pytest.raises(ValueError, match="freq_hz"):
        energy_dvfs_j(1e-28, 1e9, 0.0)
    with pytest.raises(ValueError, match="kappa"):
        energy_dvfs_j(-1.0, 1e9, 1e9)


def test_cycles_for_flops() -> None:
    assert cycles_for_flops(1.6e10, 16.0) == pytest.approx(1e9)
    with pytest.raises(ValueError, match="flops_per_cycle"):
        cycles_for_flops(1e9, 0.0)
