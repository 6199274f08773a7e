"""Fault plan: seeded dropout/corruption draws, outage process, crash windows, deep fades, deadline gathering."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import simpy

import sim.faults
from sim.faults import DeepFade, FaultPlan, gather_until
from sim.radio import RadioMedium
from sim.scenario import FaultsConfig, RadioConfig, ScenarioError, load_scenario

EDGES = np.array([[0.0, 0.0], [100.0, 0.0], [300.0, 0.0]])


def plan(n_devices: int = 4, rounds: int = 3, seed: int = 0, **config: object) -> FaultPlan:
    return FaultPlan(FaultsConfig(**config), n_devices, rounds, EDGES, np.random.SeedSequence(seed))


def test_no_faults_by_default() -> None:
    p = plan(n_devices=50, rounds=20)
    assert all(p.dropout(d, r) is None and not p.corrupts(d, r) for d in range(50) for r in range(1, 21))
    assert p.link_down_until(0, 5.0) is None and p.next_link_outage_s(0, 5.0) == math.inf
    assert p.edge_up_at(0, 1.0) == 1.0 and p.cloud_up_at(1.0) == 1.0 and p.crashing_edges == []


def test_dropout_frequency_split_and_determinism() -> None:
    n, rounds, prob = 500, 20, 0.3
    p = plan(n, rounds, dropout_prob=prob, dropout_during_upload=0.25)
    drops = [p.dropout(d, r) for r in range(1, rounds + 1) for d in range(n)]
    dropped = [x for x in drops if x is not None]
    trials = n * rounds
    # binomial(10000, 0.3): sd = 45.8; 5 sd bounds
    assert abs(len(dropped) - prob * trials) < 5 * math.sqrt(trials * prob * (1 - prob))
    mid = [x for x in dropped if x.when == "during_upload"]
    share = len(mid) / len(dropped)
    assert abs(share - 0.25) < 5 * math.sqrt(0.25 * 0.75 / len(dropped))
    fractions = np.array([x.sent_fraction for x in mid])
    assert fractions.min() >= 0 and fractions.max() < 1 and abs(fractions.mean() - 0.5) < 0.05
    assert all(x.sent_fraction == 0 for x in dropped if x.when == "after_training")
    again = plan(n, rounds, dropout_prob=prob, dropout_during_upload=0.25)
    assert [again.dropout(d, r) for r in range(1, rounds + 1) for d in range(n)] == drops
    other = plan(n, rounds, seed=1, dropout_prob=prob, dropout_during_upload=0.25)
    assert [other.dropout(d, r) for r in range(1, rounds + 1) for d in range(n)] != drops


def test_one_fault_kind_does_not_shift_another() -> None:
    a = plan(100, 5, dropout_prob=0.5)
    b = plan(100, 5, dropout_prob=0.5, corrupt_prob=0.5, outage_rate_per_s=1.0)
    assert [a.dropout(d, r) for r in range(1, 6) for d in range(100)] == [
        b.dropout(d, r) for r in range(1, 6) for d in range(100)
    ]
    corrupted = sum(b.corrupts(d, r) for r in range(1, 6) for d in range(100))
    assert abs(corrupted - 250) < 5 * math.sqrt(500 * 0.25)


def test_outage_process_time_share_and_queries() -> None:
    # up ~ Exp(mean 4 s), down ~ Exp(mean 1 s): the link is down 1 / (4 + 1) = 20 % of the time
    p = plan(n_devices=200, rounds=1, outage_rate_per_s=0.25, outage_mean_s=1.0, outage_horizon_s=400.0)
    rng = np.random.default_rng(5)
    times = rng.uniform(0, 390, 4000)
    devices = rng.integers(0, 200, 4000)
    down = [p.link_down_until(int(d), float(t)) for d, t in zip(devices, times)]
    share = np.mean([x is not None for x in down])
    assert abs(share - 0.2) < 0.03
    for d, t, until in zip(devices, times, down):
        if until is None:
            nxt = p.next_link_outage_s(int(d), float(t))
            assert nxt > t and p.link_down_until(int(d), float(t + 0.999 * (nxt - t))) is None
            if nxt < 400.0:
                assert p.link_down_until(int(d), nxt) is not None
        else:
            assert until > t and p.link_down_until(int(d), until) is None
    assert p.link_down_until(0, 400.0) is None  # after the horizon links stay up


def test_crash_windows_chain_and_backoff_doubles() -> None:
    crashes = [{"edge": 2, "at_s": 10.0, "down_s": 5.0}, {"edge": 2, "at_s": 14.0, "down_s": 6.0}]
    p = plan(edge_crashes=crashes, cloud_outages=[{"at_s": 1.0, "down_s": 2.0}], backoff_s=0.25)
    assert p.edge_up_at(2, 9.99) == 9.99 and p.edge_up_at(2, 10.0) == 20.0 and p.edge_up_at(2, 20.0) == 20.0
    assert p.crashes(2) == [(10.0, 15.0), (14.0, 20.0)] and p.crashing_edges == [2]
    assert p.cloud_up_at(2.0) == 3.0 and p.cloud_up_at(3.0) == 3.0
    assert [p.backoff_s(k) for k in (1, 2, 3, 4)] == [0.25, 0.5, 1.0, 2.0]


def test_nearest_alive_edge() -> None:
    crashes = [{"edge": 1, "at_s": 0.0, "down_s": 10.0}, {"edge": 0, "at_s": 5.0, "down_s": 10.0}]
    p = plan(edge_crashes=crashes)
    here = np.array([110.0, 0.0])
    assert p.nearest_alive_edge(here, 1.0) == 0  # 110 m from edge 0, 190 m from edge 2
    assert p.nearest_alive_edge(here, 6.0) == 2
    assert p.nearest_alive_edge(here, 12.0) == 1
    all_down = plan(edge_crashes=[{"edge": j, "at_s": 0.0, "down_s": 1.0} for j in range(3)])
    assert all_down.nearest_alive_edge(here, 0.5) is None


def test_deep_fade_threshold_against_hand_computed_snr() -> None:
    config = RadioConfig(bandwidth_hz=1e6, tx_power_dbm=30.0)
    medium = RadioMedium(config, lambda links, t: np.full(len(links), 100.0), 1, np.random.default_rng(0))
    # 1 W x 1e-12 over -174 dBm/Hz + 60 dB = 3.98e-15 W: SNR = 251.2 = 24.0 dB
    gain = np.array([1e-12])
    assert not DeepFade(medium, 23.9)(gain, 1e6)[0]
    assert DeepFade(medium, 24.1)(gain, 1e6)[0]
    # on half the band the noise halves: 27.0 dB
    assert not DeepFade(medium, 26.9)(gain, 0.5e6)[0] and DeepFade(medium, 27.1)(gain, 0.5e6)[0]


def test_gather_until_keeps_the_early_and_interrupts_the_late() -> None:
    env = simpy.Environment()
    cut: list[tuple[int, float, object]] = []

    def worker(key: int, duration_s: float):
        try:
            yield env.timeout(duration_s)
        except simpy.Interrupt as stop:
            cut.append((key, env.now, stop.cause))
            return None
        return key * 10

    def server():
        procs = {k: env.process(worker(k, d)) for k, d in ((1, 1.0), (2, 2.0), (3, 3.0))}
        got = yield from gather_until(env, procs, deadline_s=2.5)
        return got, env.now

    main = env.process(server())
    env.run(main)
    assert main.value == ({1: 10, 2: 20}, 2.5)
    assert cut == [(3, 2.5, "deadline")]

    env = simpy.Environment()
    procs = {k: env.process(worker(k, d)) for k, d in ((1, 1.0), (2, 2.0))}
    waiter = env.process(gather_until(env, procs, deadline_s=None))
    env.run(waiter)
    assert waiter.value == {1: 10, 2: 20} and env.now == 2.0


def test_config_ranges_are_validated() -> None:
    with pytest.raises(ValueError, match="dropout_prob"):
        FaultsConfig(dropout_prob=1.5)
    with pytest.raises(ValueError, match="down_s"):
        FaultsConfig(edge_crashes=[{"edge": 0, "at_s": 1.0, "down_s": 0.0}])
    with pytest.raises(ValueError, match="outage_snr_db"):
        FaultsConfig(outage_snr_db=float("nan"))
    with pytest.raises(ScenarioError, match="edge 2 does not exist"):
        load_scenario("small", ['faults.edge_crashes=[{edge=2, at_s=1.0, down_s=1.0}]'])
    assert load_scenario("small", ["faults.dropout_prob=0.2"]).faults.dropout_prob == 0.2


def test_docstring_examples() -> None:
    result = doctest.testmod(sim.faults, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
