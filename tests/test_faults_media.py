"""Shared cell under faults: deep fades abort flows, aborts free the band, guest links use their own medium.

Expected times and bits are computed by hand from R = B·log2(1 + P·g / (N0·B)).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from sim.faults import DeepFade
from sim.media import FlowAborted, SharedCell
from sim.radio import RadioMedium
from sim.scenario import RadioConfig

N0_W_PER_HZ = 10 ** ((-174 - 30) / 10)
B_HZ = 4e6


def snr_db(gain: float, bandwidth_hz: float) -> float:
    return 10 * math.log10(gain / (N0_W_PER_HZ * bandwidth_hz))  # P = 1 W


def rate_bps(gain: float, bandwidth_hz: float) -> float:
    return bandwidth_hz * math.log2(1 + gain / (N0_W_PER_HZ * bandwidth_hz))


def gain(d_m: float) -> float:
    return 1e-3 * d_m**-3


def medium(distances_m: list[float]) -> RadioMedium:
    config = RadioConfig(bandwidth_hz=B_HZ, tx_power_dbm=30.0, fading={"kind": "none"},
                         pathloss={"model": "log_distance", "ref_gain_db": -30.0, "exponent": 3.0})  # fmt: skip
    d = np.asarray(distances_m)
    return RadioMedium(config, lambda links, _t: d[links], len(d), np.random.default_rng(0))


def run(cell_medium: RadioMedium, bits: list[float], threshold_db: float | None, abort_at: dict[int, float] = {}):
    env = simpy.Environment()
    outage = None if threshold_db is None else DeepFade(cell_medium, threshold_db)
    cell = SharedCell(env, cell_medium, B_HZ, outage)
    results: list[object] = [None] * len(bits)

    def flow(i: int):
        done = cell.transfer(i, bits[i])
        waits = [done] + ([env.timeout(abort_at[i])] if i in abort_at else [])
        try:
            yield env.any_of(waits)
        except FlowAborted as exc:
            results[i] = exc
            return
        results[i] = done.value if done.triggered else cell.abort(done, "test")

    for i in range(len(bits)):
        env.process(flow(i))
    env.run()
    return results


def test_a_link_in_deep_fade_aborts_at_once_and_the_other_gets_the_band() -> None:
    near, far = gain(200.0), gain(3000.0)
    threshold = 0.5 * (snr_db(near, B_HZ / 2) + snr_db(far, B_HZ / 2))
    ok, aborted = run(medium([200.0, 3000.0]), [8e6, 8e6], threshold)
    assert isinstance(aborted, FlowAborted) and aborted.cause == "outage"
    assert (aborted.start_s, aborted.end_s, aborted.bits_sent) == (0.0, 0.0, 0.0)
    assert ok == (0.0, pytest.approx(8e6 / rate_bps(near, B_HZ), rel=1e-12))


def test_a_wider_share_can_push_a_link_into_outage() -> None:
    # both links pass on B/2; alone on B the weak one is 3 dB worse and falls below the threshold
    strong, weak = gain(300.0), gain(900.0)
    threshold = snr_db(weak, B_HZ / 2) - 1.0
    assert snr_db(weak, B_HZ) < threshold < snr_db(weak, B_HZ / 2)
    first, second = run(medium([300.0, 900.0]), [1e6, 1e9], threshold)
    t1 = 1e6 / rate_bps(strong, B_HZ / 2)
    assert first == (0.0, pytest.approx(t1, rel=1e-12))
    assert isinstance(second, FlowAborted) and second.end_s == pytest.approx(t1, rel=1e-12)
    assert second.bits_sent == pytest.approx(rate_bps(weak, B_HZ / 2) * t1, rel=1e-9)


def test_abort_frees_the_band_and_reports_the_bits_sent() -> None:
    g = gain(500.0)
    aborted, survivor = run(medium([500.0, 500.0]), [1e8, 5e7], None, abort_at={0: 0.5})
    assert isinstance(aborted, FlowAborted) and aborted.cause == "test" and aborted.end_s == 0.5
    assert aborted.bits_sent == pytest.approx(rate_bps(g, B_HZ / 2) * 0.5, rel=1e-12)
    left = 5e7 - rate_bps(g, B_HZ / 2) * 0.5
    assert survivor == (0.0, pytest.approx(0.5 + left / rate_bps(g, B_HZ), rel=1e-12))


def test_abort_of_a_finished_flow_is_none() -> None:
    env = simpy.Environment()
    cell = SharedCell(env, medium([500.0]), B_HZ)
    done = cell.transfer(0, 1e3)
    env.run(done)
    assert cell.abort(done, "late") is None


def test_a_guest_flow_takes_its_gain_from_its_own_medium() -> None:
    env = simpy.Environment()
    home, guest = medium([100.0]), medium([700.0])
    cell = SharedCell(env, home, B_HZ)
    done = cell.transfer(0, 8e6, medium=guest)
    env.run(done)
    assert done.value[1] == pytest.approx(8e6 / rate_bps(gain(700.0), B_HZ), rel=1e-12)
