"""The aggregated engine (sim.fastnet) against the event-driven path (SimPy + sim.media.SharedCell)."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from sim.fastnet_cells import shared_cell_transfers
from sim.keyed_fading import KeyedRadioMedium
from sim.media import SharedCell
from sim.scenario import RadioConfig

BANDWIDTH_HZ = 4e6


def keyed_medium(distances_m: np.ndarray, fading: dict, seed: int = 0) -> KeyedRadioMedium:
    config = RadioConfig(
        bandwidth_hz=BANDWIDTH_HZ,
        tx_power_dbm=30.0,
        pathloss={"model": "log_distance", "ref_gain_db": -30.0, "exponent": 3.0, "shadowing_std_db": 4.0},
        fading=fading,
    )
    return KeyedRadioMedium(config, lambda links, _t: distances_m[links], len(distances_m), np.random.default_rng(seed))


def event_path(
    medium: KeyedRadioMedium, cell: np.ndarray, arrival_s: np.ndarray, bits: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One SimPy process per flow on one SharedCell per cell; link i is flow i."""
    env = simpy.Environment()
    cells = {c: SharedCell(env, medium, BANDWIDTH_HZ) for c in np.unique(cell).tolist()}
    start, end = np.zeros(len(cell)), np.zeros(len(cell))

    def flow(i: int):
        yield env.timeout(arrival_s[i])
        start[i], end[i] = yield cells[int(cell[i])].transfer(i, bits[i])

    for i in range(len(cell)):
        env.process(flow(i))
    env.run()
    return start, end


def random_flows(rng: np.random.Generator, n_cells: int, per_cell: int, bits: float, spread_s: float):
    n = n_cells * per_cell
    cell = np.repeat(np.arange(n_cells), per_cell)
    rng.shuffle(cell)
    arrival = rng.uniform(0.0, spread_s, n)
    arrival[::5] = np.round(arrival[::5], 1)  # some simultaneous arrivals and arrivals on block boundaries
    return cell, arrival, rng.uniform(0.2, 1.0, n) * bits, rng.uniform(100.0, 1500.0, n)


@pytest.mark.parametrize(
    "fading",
    [
        {"kind": "rayleigh", "coherence_s": 0.05},
        {"kind": "rician", "k_factor_db": 3.0, "coherence_s": 0.02},
        {"kind": "rayleigh"},
        {"kind": "none"},
    ],
    ids=["rayleigh-block", "rician-block", "rayleigh-per-transfer", "none"],
)
def test_aggregated_cells_equal_per_flow_processes(fading: dict) -> None:
    rng = np.random.default_rng(3)
    cell, arrival, bits, distance = random_flows(rng, n_cells=12, per_cell=5, bits=4e6, spread_s=1.0)
    start_ref, end_ref = event_path(keyed_medium(distance, fading), cell, arrival, bits)
    fast = shared_cell_transfers(keyed_medium(distance, fading), BANDWIDTH_HZ, cell, np.arange(len(cell)), arrival, bits)
    np.testing.assert_array_equal(fast.start_s, start_ref)
    np.testing.assert_array_equal(fast.end_s, end_ref)
    assert np.all(end_ref > start_ref)
