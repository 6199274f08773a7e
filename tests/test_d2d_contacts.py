"""D2D sidelink: config, pair links, link-budget range, contacts on the SimPy clock, transfers cut by contact loss."""

from __future__ import annotations

import doctest
import importlib
import math
from dataclasses import dataclass

import numpy as np
import pytest
import simpy

from channels import dbm_to_w, noise_power_w
from sim.d2d import Sidelink
from sim.d2d_contacts import ContactClock, contact_intervals_for
from sim.d2d_medium import PairLinks, SidelinkBroadcast, median_snr_db, sidelink_range_m
from sim.radio import RadioMedium
from sim.runner import RunResult, Setup
from sim.scenario import D2DConfig, ScenarioError, load_scenario
from sim.world import World, WorldInputs
from traces.schema import EVENT_KINDS, OUTCOMES, ROLES

KIND = {k: i for i, k in enumerate(EVENT_KINDS)}
ROLE = {r: i for i, r in enumerate(ROLES)}
FAILED = OUTCOMES.index("failed")


@dataclass
class LineTrack:
    """Scripted mobility: straight lines between samples, positions held outside the samples."""

    times_s: np.ndarray
    xy_m: np.ndarray

    def at(self, t_s: float) -> np.ndarray:
        n = self.xy_m.shape[1]
        return np.array([[np.interp(t_s, self.times_s, self.xy_m[:, i, k]) for k in (0, 1)] for i in range(n)])


def passing_track() -> LineTrack:
    """Device 0 stays at (100, 0); device 1 passes it at 10 m/s along y = 0, out to +100 m and back."""
    return LineTrack(
        np.array([0.0, 20.0, 40.0]),
        np.array([[[100.0, 0.0], [0.0, 0.0]], [[100.0, 0.0], [200.0, 0.0]], [[100.0, 0.0], [0.0, 0.0]]]),
    )


def test_d2d_defaults_are_the_prototype_and_bad_values_name_the_key() -> None:
    d2d = load_scenario("small").d2d
    assert (d2d.tx_power_dbm, d2d.bandwidth_hz, d2d.tx_energy_power_w, d2d.radius_m) == (23.0, 8e6, 0.6, 30.0)
    assert d2d.connect_with_mst and d2d.on_contact_loss == "fail" and d2d.pathloss.model == "log_distance"
    mistakes = {
        "d2d.radius_m=0": "d2d.radius_m",
        "d2d.radius_m=inf": "needs snr_threshold_db",
        "d2d.range=3": "unknown key 'd2d.range'",
        'd2d.on_contact_loss="retry"': "d2d.on_contact_loss",
        'schemes=[{name="s", protocol="star", d2d="relay"}]': "star has no cells",
        'schemes=[{name="e", protocol="edge_only", d2d="consensus", consensus_steps=0}]': "consensus_steps",
    }
    for override, message in mistakes.items():
        with pytest.raises(ScenarioError, match=message):
            load_scenario("small", [override])


def test_pair_links_are_the_device_pairs_of_each_cell() -> None:
    links = PairLinks(np.array([1, 0, 1, 1, 0]))
    assert list(zip(links.a.tolist(), links.b.tolist())) == [(0, 2), (0, 3), (1, 4), (2, 3)]
    assert links.link(4, 1) == links.link(1, 4) == 2
    assert (0, 1) not in links
    distance = links.distance_function(lambda t_s: np.array([[0, 0], [0, 0], [3, 4], [0, 1], [t_s, 0]], float))
    np.testing.assert_allclose(distance(np.array([0, 2, 3]), 6.0), [5.0, 6.0, np.hypot(3, 3)])


def test_link_budget_range_matches_the_closed_form_of_log_distance() -> None:
    # SNR(d) = P + β0 − 10·α·log10(d) − (N0 + 10·log10 B)  ⇒  d = 10^((P + β0 − N − SNR*) / (10·α))
    noise_dbm = -174.0 + 10 * math.log10(8e6)
    for threshold_db in (10.0, 35.0):
        expected_m = 10 ** ((23.0 - 30.0 - noise_dbm - threshold_db) / 30.0)
        config = D2DConfig(radius_m=float("inf"), snr_threshold_db=threshold_db)
        assert sidelink_range_m(config) == pytest.approx(expected_m, rel=1e-9)
        assert float(median_snr_db(config, expected_m)) == pytest.approx(threshold_db, abs=1e-9)
    assert sidelink_range_m(D2DConfig(snr_threshold_db=10.0)) == 30.0  # the radius binds first
    assert sidelink_range_m(D2DConfig(snr_threshold_db=200.0)) == 0.0


def test_contact_times_of_straight_line_crossings_are_events_on_the_clock() -> None:
    # |x1(t) − 100| ≤ 30 with x1 = 10·t (going) and x1 = 400 − 10·t (back): t ∈ [7, 13] and [27, 33]
    intervals = contact_intervals_for(np.zeros((2, 2)), passing_track(), 30.0, [(0, 1)])
    np.testing.assert_allclose(np.c_[intervals["start_s"], intervals["end_s"]], [[7, 13], [27, 33]], atol=1e-9)
    env = simpy.Environment()
    clock = ContactClock(env, intervals)
    seen: list[tuple[str, float]] = []

    def watcher() -> simpy.events.ProcessGenerator:
        for _ in range(2):
            yield clock.opening(0, 1)
            seen.append(("up", env.now))
            assert clock.is_up(1, 0) and clock.closes_at(0, 1) == pytest.approx(env.now + 6)
            yield clock.closing(0, 1)
            seen.append(("down", env.now))
        assert clock.opening(0, 1) is None

    env.process(watcher())
    env.run()
    expected = [("up", 7.0), ("down", 13.0), ("up", 27.0), ("down", 33.0)]
    assert [(k, pytest.approx(t, abs=1e-9)) for k, t in expected] == seen
    assert [(c.t_s, c.up) for c in clock.changes] == [(t, k == "up") for k, t in seen]


def test_static_contacts_open_at_zero_and_never_close_and_other_cells_are_ignored() -> None:
    xy = np.array([[0.0, 0.0], [20.0, 0.0], [45.0, 0.0], [10.0, 0.0]])
    intervals = contact_intervals_for(xy, None, 30.0, [(0, 1), (1, 2)])  # device 3 is in another cell
    assert intervals[["a", "b"]].tolist() == [(0, 1), (1, 2)]
    assert (intervals["start_s"] == 0).all() and np.isinf(intervals["end_s"]).all()
    env = simpy.Environment()
    clock = ContactClock(env, intervals)
    assert clock.pairs_up() == [(0, 1), (1, 2)] and not clock.is_up(0, 2)
    assert math.isinf(clock.closes_at(0, 1))


def _two_device_world(mode: str, payload_bytes: int, sink: RunResult) -> World:
    scenario = load_scenario("small", [
        "training.enabled=false", "rounds=1", f"network.payload_bytes={payload_bytes}", "network.header_bytes=0",
        "topology.edge_positions_m=[[100.0, 50.0]]", "topology.device_positions_m=[[100.0, 0.0], [0.0, 0.0]]",
        "d2d.fading.kind=\"none\"", "d2d.connect_with_mst=false", f"d2d.on_contact_loss=\"{mode}\"",
        "d2d.rx_power_w=0.1",
    ])  # fmt: skip
    setup = Setup.from_scenario(scenario)
    rngs = (np.random.default_rng(0), np.random.default_rng(1))
    return World(scenario, setup.layout, setup.device_flops_per_s, setup.learner, rngs, "t", sink.add,
                 WorldInputs(positions=passing_track()))  # fmt: skip


def _send_at(world: World, t_s: float) -> list[bool]:
    sidelink = Sidelink(world)
    outcome: list[bool] = []

    def sender() -> simpy.events.ProcessGenerator:
        yield world.env.timeout(t_s)
        graph = sidelink.graph([0, 1])
        model = world.learner.initial_update()
        outcome.append((yield from sidelink.unicast(1, 0, model, 1, graph)))
        world.report(1, model)

    world.env.process(sender())
    world.env.run()
    return outcome


def _rate_bps(distance_m: float) -> float:
    # Shannon over 8 MHz at the median SNR (no fading): B·log2(1 + 10^(SNR/10))
    return 8e6 * math.log2(1 + 10 ** (float(median_snr_db(D2DConfig(), distance_m)) / 10))


@pytest.mark.parametrize("mode", ["fail", "resume"])
def test_a_transfer_cut_by_a_closing_contact_fails_or_resumes(mode: str) -> None:
    payload_bytes = 200_000_000  # 1.6 Gbit: ~10 s at 20 m, longer than the 5 s left of the contact
    result = RunResult()
    world = _two_device_world(mode, payload_bytes, result)
    world.holders_per_round = 1
    delivered = _send_at(world, 8.0)  # device 1 is 20 m away at t = 8; the contact closes at t = 13
    events = result.table("events")
    tx = events[(events["kind"] == KIND["d2d"]) & (events["role"] == ROLE["tx"])]
    rx = events[(events["kind"] == KIND["d2d"]) & (events["role"] == ROLE["rx"])]
    # one row per module of the message (and its header) on each side, all with the message's times and outcome
    assert set(tx["node"]) == {1} and set(rx["node"]) == {0}
    for rows in (tx, rx):
        assert len(set(rows[["t_start_s", "duration_s", "outcome"]].tolist())) == 1
    first_piece_s = 13.0 - 8.0
    if mode == "fail":
        assert delivered == [False]
        assert tx["outcome"][0] == rx["outcome"][0] == FAILED
        assert tx["duration_s"][0] == pytest.approx(first_piece_s)
        airtime_s = first_piece_s
    else:
        assert delivered == [True]
        assert tx["outcome"][0] == rx["outcome"][0] == 0
        bits_left = 8 * payload_bytes - _rate_bps(20.0) * first_piece_s
        second_piece_s = bits_left / _rate_bps(30.0)  # resumes at t = 27, device 1 back at 30 m
        assert second_piece_s < 6.0  # finishes inside the second contact
        assert tx["t_start_s"][0] == pytest.approx(8.0)
        assert tx["duration_s"][0] == pytest.approx(27.0 + second_piece_s - 8.0, rel=1e-9)
        airtime_s = first_piece_s + second_piece_s
    assert tx["energy_j"].sum() == pytest.approx(0.6 * airtime_s, rel=1e-9)
    assert rx["energy_j"].sum() == pytest.approx(0.1 * airtime_s, rel=1e-9)


def test_a_transfer_that_fits_in_the_contact_is_delivered_at_the_shannon_rate() -> None:
    result = RunResult()
    world = _two_device_world("fail", 10_000_000, result)
    world.holders_per_round = 1
    assert _send_at(world, 8.0) == [True]
    tx = result.table("events")
    tx = tx[(tx["kind"] == KIND["d2d"]) & (tx["role"] == ROLE["tx"])]
    assert tx["duration_s"][0] == pytest.approx(8e7 / _rate_bps(20.0), rel=1e-9)


@pytest.mark.parametrize("name", ["sim.d2d_medium", "sim.d2d_contacts", "sim.d2d_protocols"])
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0


def test_a_broadcast_runs_at_the_worst_receivers_rate_of_each_fading_block() -> None:
    config = D2DConfig(fading={"kind": "rayleigh", "coherence_s": 0.01})
    links = PairLinks(np.zeros(4, dtype=int))  # four devices of one cell, 3 m to 40 m from device 0
    xy = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 25.0], [40.0, 0.0]])
    samples: list[tuple[float, np.ndarray]] = []
    medium = RadioMedium(config, links.distance_function(lambda t_s: xy), len(links), np.random.default_rng(5),
                         log=lambda t, _links, gains: samples.append((t, gains.copy())))  # fmt: skip
    env = simpy.Environment()
    band = SidelinkBroadcast(env, medium, config.bandwidth_hz)
    bits = 3e8
    receivers = [links.link(0, v) for v in (1, 2, 3)]
    done = env.process(band.send(receivers, bits))
    env.run()
    start_s, end_s = done.value
    assert start_s == 0.0 and end_s > 0.05  # several fading blocks
    # independently: in each block, the minimum Shannon rate of the gains drawn for it, times the time spent in it
    times = [t for t, _ in samples] + [end_s]
    rates = [min(8e6 * np.log2(1 + dbm_to_w(23.0) * gains / noise_power_w(8e6))) for _, gains in samples]
    assert [round(t / 0.01) for t, _ in samples] == list(range(len(samples)))  # one draw per block, at its start
    assert sum(rate * (b - a) for rate, a, b in zip(rates, times[:-1], times[1:])) == pytest.approx(bits, rel=1e-9)
