"""SimPy media against rates computed by hand from B·log2(1 + P·g / (N0·B))."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from sim.media import BroadcastChannel, SharedCell, WiredLink
from sim.radio import RadioMedium
from sim.scenario import RadioConfig

N0_W_PER_HZ = 10 ** ((-174 - 30) / 10)  # -174 dBm/Hz in W/Hz
P_W = 1.0  # 30 dBm


def shannon_bps(bandwidth_hz: float, gain: float) -> float:
    return bandwidth_hz * math.log2(1 + P_W * gain / (N0_W_PER_HZ * bandwidth_hz))


def medium(distances_m: list[float], coherence_s: float | None = None) -> RadioMedium:
    config = RadioConfig(
        bandwidth_hz=4e6,
        tx_power_dbm=30.0,
        pathloss={"model": "log_distance", "ref_gain_db": -30.0, "exponent": 3.0},
        fading={"kind": "none", "coherence_s": coherence_s},
    )
    distances = np.asarray(distances_m)
    return RadioMedium(config, lambda links, _t: distances[links], len(distances), np.random.default_rng(0))


def gain(d_m: float) -> float:
    return 1e-3 * d_m**-3  # -30 dB at 1 m, exponent 3


def run_flows(cell_medium: RadioMedium, bits: list[float], starts: list[float] | None = None) -> list[tuple]:
    env = simpy.Environment()
    cell = SharedCell(env, cell_medium, 4e6)
    results: list[tuple] = [None] * len(bits)  # type: ignore[list-item]

    def flow(i: int, delay: float):
        yield env.timeout(delay)
        results[i] = yield cell.transfer(i, bits[i])

    for i in range(len(bits)):
        env.process(flow(i, (starts or [0.0] * len(bits))[i]))
    env.run()
    return results


def test_single_flow_uses_the_whole_band() -> None:
    (start, end), = run_flows(medium([1000.0]), [8e6])
    assert start == 0.0
    assert end == pytest.approx(8e6 / shannon_bps(4e6, gain(1000.0)), rel=1e-12)


def test_two_flows_share_then_the_survivor_takes_the_band() -> None:
    (s1, e1), (s2, e2) = run_flows(medium([800.0, 800.0]), [4e6, 8e6])
    half = shannon_bps(2e6, gain(800.0))
    full = shannon_bps(4e6, gain(800.0))
    t1 = 4e6 / half
    t2 = t1 + (8e6 - half * t1) / full
    assert (s1, s2) == (0.0, 0.0)
    assert e1 == pytest.approx(t1, rel=1e-12)
    assert e2 == pytest.approx(t2, rel=1e-12)


def test_late_joiner_slows_the_first_flow() -> None:
    (_, e1), (s2, e2) = run_flows(medium([500.0, 500.0]), [40e6, 1e6], starts=[0.0, 0.5])
    full, half = shannon_bps(4e6, gain(500.0)), shannon_bps(2e6, gain(500.0))
    left_after_join = 40e6 - full * 0.5
    t2 = 0.5 + 1e6 / half
    assert s2 == 0.5 and e2 == pytest.approx(t2, rel=1e-12)
    assert e1 == pytest.approx(t2 + (left_after_join - half * (t2 - 0.5)) / full, rel=1e-12)


def test_forty_concurrent_uploads_take_longer_than_one() -> None:
    one = run_flows(medium([700.0] * 40), [8e6])[0][1]
    forty = max(end for _, end in run_flows(medium([700.0] * 40), [8e6] * 40))
    assert forty == pytest.approx(8e6 / shannon_bps(4e6 / 40, gain(700.0)), rel=1e-9)
    assert forty > 10 * one


def test_coherence_boundaries_do_not_change_a_static_channel() -> None:
    plain = run_flows(medium([900.0, 900.0]), [4e6, 6e6])
    blocked = run_flows(medium([900.0, 900.0], coherence_s=0.01), [4e6, 6e6])
    for (a0, a1), (b0, b1) in zip(plain, blocked):
        assert (a0, a1) == pytest.approx((b0, b1), rel=1e-9)


def test_broadcast_runs_at_the_worst_receivers_rate_one_at_a_time() -> None:
    env = simpy.Environment()
    channel = BroadcastChannel(env, medium([100.0, 1000.0]), 4e6)
    ends = []

    def send():
        ends.append((yield from channel.send([0, 1], 4e6)))

    env.process(send())
    env.process(send())
    env.run()
    t = 4e6 / shannon_bps(4e6, gain(1000.0))
    assert ends[0] == pytest.approx((0.0, t))
    assert ends[1] == pytest.approx((t, 2 * t))


def test_wired_link_latency_plus_serialisation() -> None:
    env = simpy.Environment()
    link = WiredLink(env, latency_s=0.1, rate_bps=4e6)
    out = []

    def send():
        out.append((yield from link.send(48e6)))

    env.process(send())
    env.run()
    assert env.now == pytest.approx(12.1)  # the prototype's 0.1 + 48000 kbit / 4000 kbit/s
    assert out == [pytest.approx(12.0)]


def test_flows_finish_at_large_simulated_times() -> None:
    """Remaining bits that float error leaves above zero must not stall the clock (regression)."""
    env = simpy.Environment(initial_time=123_456.789)
    cell = SharedCell(env, medium([900.0, 950.0, 990.0], coherence_s=0.05), 4e6)
    done = [cell.transfer(i, 48e6 + i) for i in range(3)]
    env.run(until=env.all_of(done))
    assert all(event.ok for event in done)
    assert env.now > 123_456.789
