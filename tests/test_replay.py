"""Replay: recorded gains, positions and availability stand in for the models and reproduce the event sequence."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from sim.cli import main
from sim.inputs import build_inputs, load_trace_inputs
from sim.radio import ChannelReplay, ReplayMismatchError
from sim.runner import RunResult, Setup, run_scenario
from sim.scenario import SchemeConfig, load_scenario
from sim.world import WorldInputs
from traces import read_run

SCHEME = SchemeConfig(name="h", protocol="hierarchical", cloud_period=2)


def recorded_replay(samples: list[tuple[float, str, np.ndarray, np.ndarray]]) -> dict[str, ChannelReplay]:
    replay = {}
    for medium in ("uplink", "downlink"):
        rows = [(t, link, gain) for t, name, links, gains in samples if name == medium for link, gain in zip(links, gains)]
        t_s, links, gains = (np.array(column) for column in zip(*rows))
        replay[medium] = ChannelReplay(t_s, links.astype(int), gains)
    return replay


def test_replayed_gains_reproduce_the_events_under_other_radio_seeds() -> None:
    setup = Setup.from_scenario(load_scenario("small", ["training.enabled=false", "rounds=4"]))
    original = RunResult()
    world = setup.simulate(SCHEME, original.add)
    replay = recorded_replay(world.channel_samples)

    setup.radio_seeds = tuple(np.random.SeedSequence(12345).spawn(2))
    other = RunResult()
    setup.simulate(SCHEME, other.add)
    assert other.table("events").tobytes() != original.table("events").tobytes()  # the seeds matter

    replayed = RunResult()
    setup.simulate(SCHEME, replayed.add, inputs=WorldInputs(channel_replay=replay))
    assert replayed.table("events").tobytes() == original.table("events").tobytes()


def record(overrides: list[str]) -> dict[str, ChannelReplay]:
    setup = Setup.from_scenario(load_scenario("small", ["training.enabled=false", *overrides]))
    return recorded_replay(setup.simulate(SCHEME, RunResult().add).channel_samples)


def test_a_trace_from_another_scenario_is_refused() -> None:
    longer = Setup.from_scenario(load_scenario("small", ["training.enabled=false", "rounds=3"]))
    with pytest.raises(ReplayMismatchError, match="ran out of samples"):
        longer.simulate(SCHEME, RunResult().add, inputs=WorldInputs(channel_replay=record(["rounds=2"])))
    bigger = Setup.from_scenario(load_scenario("small", ["training.enabled=false", "rounds=2", "network.header_bytes=999"]))
    with pytest.raises(ReplayMismatchError, match="same scenario"):
        bigger.simulate(SCHEME, RunResult().add, inputs=WorldInputs(channel_replay=record(["rounds=2"])))


# ---------------------------------------------------------------- replay through files

MOVING = ["training.enabled=false", "rounds=4", "mobility.model=random_waypoint", "mobility.speed_m_s=[5.0, 15.0]",
          "availability.model=on_off", "availability.mean_on_s=3.0", "availability.mean_off_s=1.0",
          "uplink.fading.kind=rician", "uplink.fading.k_factor_db=3.0"]  # fmt: skip


@pytest.fixture(scope="module")
def recorded_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run file of the small preset with random waypoint mobility, on/off churn and Rician uplink fading."""
    path = tmp_path_factory.mktemp("recorded") / "recorded.h5"
    run_scenario(load_scenario("small", MOVING), path, progress=False)
    return path


def test_replaying_a_run_file_reproduces_its_events_under_other_radio_seeds(recorded_path: Path) -> None:
    """Positions, availability and gains recorded in a run file reproduce /events byte for byte."""
    scenario = load_scenario("small", MOVING)
    recorded = read_run(recorded_path)
    assert len(recorded.mobility) and len(recorded.availability) and len(recorded.channel)
    assert 0 < len(recorded.events) and (recorded.availability["off_s"] < 30).any()  # devices do switch off

    setup = Setup.from_scenario(scenario)
    setup.radio_seeds = tuple(np.random.SeedSequence(4242).spawn(2))
    unreplayed = RunResult()
    for scheme in scenario.schemes:
        setup.simulate(scheme, unreplayed.add, inputs=build_inputs(scenario, setup.layout).world_inputs(scheme.name))
    assert unreplayed.table("events").tobytes() != recorded.events.tobytes()  # the radio seeds matter

    inputs = load_trace_inputs(recorded_path, scenario, setup.layout)
    replayed = RunResult()
    for scheme in scenario.schemes:
        setup.simulate(scheme, replayed.add, inputs=inputs.world_inputs(scheme.name))
    assert replayed.table("events").tobytes() == recorded.events.tobytes()
    assert replayed.table("rounds").tobytes() == recorded.rounds.tobytes()


def test_hffm_run_trace_reproduces_the_recorded_run_and_records_the_same_traces(tmp_path) -> None:
    sets = [arg for override in MOVING for arg in ("--set", override)]
    recorded, replayed = tmp_path / "recorded.h5", tmp_path / "replayed.h5"
    assert main(["run", "small", *sets, "--out", str(recorded), "--quiet"]) == 0  # through the CLI both ways
    assert main(["run", "small", *sets, "--trace", str(recorded), "--out", str(replayed), "--quiet"]) == 0
    a, b = read_run(recorded), read_run(replayed)
    for table in ("nodes", "links", "events", "rounds", "mobility", "availability", "channel"):
        assert getattr(a, table).tobytes() == getattr(b, table).tobytes(), table
    assert b.meta["trace"] == str(recorded)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["rounds=6"], "ran out of samples|is it the same scenario"),
        (["topology.devices_per_edge=2"], "moves 6 nodes; the scenario has 4 devices"),
        (["schemes.2.name=hier2"], "has the channel of schemes star, edge-only, hier-E2, not of hier2"),
    ],
)
def test_a_trace_that_does_not_fit_the_scenario_is_one_error_line(
    recorded_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: list[str], message: str
) -> None:
    out = tmp_path / "replayed.h5"
    sets = [arg for override in [*MOVING, *overrides] for arg in ("--set", override)]
    assert main(["run", "small", *sets, "--trace", str(recorded_path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hffm: error: ") and re.search(message, err) and err.count("\n") == 1
    assert not out.exists()  # nothing half-written is left behind


def test_a_trace_file_that_is_not_one_is_one_error_line(tmp_path, capsys) -> None:
    bogus = tmp_path / "bogus.h5"
    bogus.write_bytes(b"no hdf5 here")
    out = tmp_path / "out.h5"
    assert main(["run", "small", "--set", "training.enabled=false", "--trace", str(bogus), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unreadable HDF5 trace file" in err and err.count("\n") == 1
