"""Scenario knobs [mobility] / [availability] and sim.inputs: defaults change nothing, seeds are separate, layouts."""

from __future__ import annotations

import numpy as np
import pytest

from sim.inputs import (
    build_inputs,
    inputs_seed_sequence,
    link_rows,
    mobility_bounds_m,
    placed_layout,
)
from sim.runner import RunResult, Setup, run_scenario
from sim.scenario import ScenarioError, load_scenario
from sim.world import Layout
from traces import MobilityTrace
from traces.schema import EVENT_KINDS

FAST = ["training.enabled=false", "rounds=3"]
CHURN = ["availability.model=on_off", "availability.mean_on_s=2.0", "availability.mean_off_s=2.0"]


def test_default_scenario_draws_no_inputs_and_runs_exactly_as_a_world_without_inputs() -> None:
    scenario = load_scenario("small", FAST)
    assert (scenario.mobility.model, scenario.availability.model) == ("static", "always")
    inputs = build_inputs(scenario, Setup.from_scenario(scenario).layout)
    assert inputs.positions is None and inputs.availability is None and inputs.channel is None
    recorded = run_scenario(scenario, out=None, progress=False)
    setup = Setup.from_scenario(scenario)
    plain = RunResult()
    plain.add("nodes", setup.nodes_table())
    for scheme in scenario.schemes:
        setup.simulate(scheme, plain.add)  # the pre-inputs code path: WorldInputs()
    for table in ("nodes", "events", "rounds", "ledger"):
        assert recorded.table(table).tobytes() == plain.table(table).tobytes(), table
    assert len(recorded.table("mobility")) == 0 and len(recorded.table("availability")) == 0


def test_the_inputs_seed_stream_is_none_of_the_runners_streams() -> None:
    ours = inputs_seed_sequence(7).generate_state(4)
    root = np.random.SeedSequence(7)
    for child in root.spawn(64):
        assert not np.array_equal(child.generate_state(4), ours)
    assert not np.array_equal(inputs_seed_sequence(8).generate_state(4), ours)
    np.testing.assert_array_equal(inputs_seed_sequence(np.random.SeedSequence(7)).generate_state(4), ours)


def test_mobility_and_churn_leave_layout_and_device_speeds_alone_and_are_deterministic() -> None:
    base = run_scenario(load_scenario("small", FAST), out=None, progress=False)
    moving = load_scenario("small", [*FAST, "mobility.model=gauss_markov", *CHURN])
    first = run_scenario(moving, out=None, progress=False)
    again = run_scenario(moving, out=None, progress=False)
    assert first.table("nodes").tobytes() == base.table("nodes").tobytes()
    for table in ("events", "mobility", "availability", "channel"):
        assert first.table(table).tobytes() == again.table(table).tobytes(), table
    other_seed = load_scenario("small", [*FAST, "mobility.model=gauss_markov", *CHURN, "seed=8"])
    layout = Setup.from_scenario(other_seed).layout
    assert build_inputs(other_seed, layout).positions.xy_m.tobytes() != build_inputs(moving, layout).positions.xy_m.tobytes()


def test_churn_makes_devices_sit_rounds_out() -> None:
    compute = EVENT_KINDS.index("compute")
    always = run_scenario(load_scenario("small", FAST), out=None, progress=False).table("events")
    churn = run_scenario(load_scenario("small", [*FAST, *CHURN]), out=None, progress=False).table("events")
    assert np.sum(always["kind"] == compute) == 3 * 3 * 6  # schemes x rounds x devices
    assert 0 < np.sum(churn["kind"] == compute) < np.sum(always["kind"] == compute)


def test_moving_devices_change_the_radio_timing() -> None:
    static = run_scenario(load_scenario("small", FAST), out=None, progress=False)
    fast = ["mobility.model=random_waypoint", "mobility.speed_m_s=[30.0, 40.0]"]
    moving = run_scenario(load_scenario("small", [*FAST, *fast]), out=None, progress=False)
    uplink = EVENT_KINDS.index("uplink")
    s, m = static.table("events"), moving.table("events")
    assert s[s["kind"] == uplink]["duration_s"].tobytes() != m[m["kind"] == uplink]["duration_s"].tobytes()
    assert len(moving.table("mobility")) == 6 * 3601  # devices x samples of the default 1 s grid over 3600 s


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("mobility.model=teleport", "mobility.model"),
        ("mobility.speed=2", "unknown key 'mobility.speed'"),
        ("mobility.speed_m_s=[2.0, 1.0]", "min <= max"),
        ("mobility.speed_m_s=[0.0, 1.0]", "greater than 0"),
        ("mobility.alpha=1.5", "mobility.alpha"),
        ("mobility.bounds_m=[0, 0, -1, 10]", "max > min"),
        ("mobility.sample_interval_s=10000", "at most duration_s"),
        ("availability.mean_on_s=0", "availability.mean_on_s"),
        ("availability.model=flaky", "availability.model"),
    ],
)
def test_bad_knobs_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        load_scenario("small", [override])


def square_layout() -> Layout:
    return Layout(np.array([[0.0, 0.0], [100.0, 0.0]]), np.array([[3.0, 4.0], [90.0, 0.0]]), np.array([0, 1]))


def test_links_are_device_edge_pairs_with_their_distances() -> None:
    rows = link_rows(square_layout())
    assert rows["medium"].tolist() == [b"uplink", b"uplink", b"downlink", b"downlink"]
    assert rows[["link", "a", "b"]].tolist() == [(0, 0, 2), (1, 1, 3), (0, 2, 0), (1, 3, 1)]
    assert rows["distance_m"].tolist() == [5.0, 10.0, 5.0, 10.0]


def test_a_trace_places_devices_at_its_start_and_attaches_them_to_the_nearest_edge() -> None:
    layout = square_layout()
    topology = load_scenario("small").topology
    same = MobilityTrace(np.array([0.0]), layout.device_xy[None])
    assert placed_layout(layout, same, topology) is layout  # generated / replayed traces keep the layout
    swapped = MobilityTrace(np.array([0.0, 5.0]), np.array([[[95.0, 1.0], [2.0, 2.0]], [[0.0, 0.0], [0.0, 0.0]]]))
    placed = placed_layout(layout, swapped, topology)
    assert placed.device_xy.tolist() == [[95.0, 1.0], [2.0, 2.0]] and placed.device_edge.tolist() == [1, 0]
    assert placed_layout(layout, None, topology) is layout


def test_default_mobility_area_holds_the_topology_square_and_every_node() -> None:
    scenario = load_scenario("small")
    layout = Layout(np.array([[-50.0, 10.0]]), np.array([[20.0, 1200.0]]), np.array([0]))
    assert mobility_bounds_m(scenario.mobility, scenario.topology, layout) == (-50.0, 0.0, 1000.0, 1200.0)
    given = load_scenario("small", ["mobility.bounds_m=[1, 2, 3, 4]"]).mobility
    assert mobility_bounds_m(given, scenario.topology, layout) == (1.0, 2.0, 3.0, 4.0)
