"""Channel replay: recorded gains stand in for the channel models and reproduce the event sequence."""

from __future__ import annotations

import numpy as np
import pytest

from sim.radio import ChannelReplay, ReplayMismatchError
from sim.runner import RunResult, Setup
from sim.scenario import SchemeConfig, load_scenario
from sim.world import WorldInputs

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
