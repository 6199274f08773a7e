"""network.engine = 'aggregated' (sim.fastnet) writes the event engine's rows, bit for bit, and refuses what it lacks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim.runner import RunResult, Setup, run_scenario
from sim.scenario import ScenarioError, load_scenario
from traces.schema import EVENT_KINDS, ROLES

SCHEMES = (
    'schemes=[{name="star", protocol="star"}, {name="edge", protocol="edge_only"}, '
    '{name="h1", protocol="hierarchical", cloud_period=1}, {name="h2", protocol="hierarchical", cloud_period=2}]'
)
BASE = [
    "training.enabled=false", "rounds=3", "topology.n_edges=3", "topology.devices_per_edge=4", SCHEMES,
    'uplink.fading={kind="rayleigh", coherence_s=0.002, draws="keyed"}',
    'downlink.fading={kind="rayleigh", draws="keyed"}',
]  # fmt: skip


def run_both(overrides: list[str]) -> dict[str, RunResult]:
    """The same setup simulated by both engines, every scheme."""
    setup = Setup.from_scenario(load_scenario("small", BASE + overrides))
    results = {}
    for engine in ("events", "aggregated"):
        scenario = setup.scenario.model_copy(update={"network": setup.scenario.network.model_copy(update={"engine": engine})})
        engine_setup = dataclasses.replace(setup, scenario=scenario)
        results[engine] = RunResult()
        for scheme in scenario.schemes:
            engine_setup.simulate(scheme, results[engine].add)
    return results


def canonical(rows: np.ndarray) -> np.ndarray:
    """Rows sorted on every field (the engines order rows with equal end times differently)."""
    return rows[np.lexsort([rows[name] for name in reversed(rows.dtype.names)])]


def assert_same_tables(results: dict[str, RunResult]) -> None:
    """Events equal bit for bit; per-round and per-node sums equal up to summation order (the row orders differ)."""
    events, aggregated = results["events"], results["aggregated"]
    rows = events.table("events")
    assert len(rows) > 0
    np.testing.assert_array_equal(canonical(aggregated.table("events")), canonical(rows))
    for table in ("rounds", "ledger", "metrics"):
        expected, got = events.table(table), aggregated.table(table)
        assert got.dtype == expected.dtype and len(got) == len(expected)
        for name in expected.dtype.names:
            if expected.dtype[name].kind == "f":
                np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, atol=0, err_msg=name)
            else:
                np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


@pytest.mark.parametrize(
    "overrides",
    [
        ["network.payload_bytes=2000000"],
        ['downlink.fading={kind="rician", k_factor_db=3.0, coherence_s=0.01, draws="keyed"}', 'uplink.fading.kind="none"'],
    ],
    ids=["fixed-payload-block-fading", "modules-rician-no-uplink-fading"],
)
def test_aggregated_engine_writes_the_event_engines_rows(overrides: list[str]) -> None:
    results = run_both(overrides)
    assert_same_tables(results)
    rounds = results["events"].table("rounds")
    assert (rounds["latency_s"] > 0).all() and len(rounds) == 4 * 3


def test_heterogeneous_devices_send_their_own_modules_in_both_engines() -> None:
    results = run_both(
        ["heterogeneity.missing_modality_prob={image=0.5, text=0.5}", 'heterogeneity.tasks_by_edge=[["shape"], ["vqa", "activity"]]']
    )
    assert_same_tables(results)
    rows = results["events"].table("events")
    sent = rows[(rows["kind"] == EVENT_KINDS.index("uplink")) & (rows["role"] == ROLES.index("tx"))]
    per_device = {int(n): int(sent["bytes"][sent["node"] == n].sum()) for n in range(12)}
    assert len(set(per_device.values())) > 1  # devices really send different module sets


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["training.enabled=true"], "training.enabled"),
        (['uplink.fading.draws="sequential"'], "uplink.fading.draws"),
        (['schemes=[{name="d", protocol="edge_only", d2d="relay"}]'], "d2d"),
        (['mobility.model="random_waypoint"'], "mobility"),
    ],
)
def test_aggregated_engine_refuses_what_it_does_not_model(overrides: list[str], named: str, tmp_path) -> None:
    scenario = load_scenario("small", BASE + ['network.engine="aggregated"'] + overrides)
    with pytest.raises(ScenarioError, match=named):
        run_scenario(scenario, tmp_path / "run.h5", progress=False)
    assert not (tmp_path / "run.h5").exists()  # refused before any file is written
