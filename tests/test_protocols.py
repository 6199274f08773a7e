"""Protocols: timing against hand computation, HierFAVG(E=1) == FedAvg, learning, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sim.runner import RunResult, Setup, run_scenario
from sim.scenario import SchemeConfig, load_scenario
from traces.schema import EVENT_KINDS, ROLES

KIND = {k: i for i, k in enumerate(EVENT_KINDS)}
ROLE = {r: i for i, r in enumerate(ROLES)}


def messages(events: np.ndarray, kind: str) -> np.ndarray:
    """The transmitter's header row of every message of ``kind`` (one per message)."""
    return events[(events["kind"] == KIND[kind]) & (events["role"] == ROLE["tx"]) & (events["module"] == b"header")]


def paper_network_only(rounds: int = 2) -> Setup:
    scenario = load_scenario(
        "paper", ["training.enabled=false", "network.payload_bytes=6000000", f"rounds={rounds}"]
    )
    return Setup.from_scenario(scenario)


def test_star_round_latency_and_energy_match_hand_computation() -> None:
    setup = paper_network_only()
    result = RunResult()
    setup.simulate(SchemeConfig(name="star", protocol="star"), result.add)
    rounds = result.table("rounds")
    message_bits = 8 * (6_000_000 + 64)
    wan_s = 0.1 + message_bits / 4e6
    compute_s = np.array([setup.learner.train_flops(d) for d in range(40)]) / setup.device_flops_per_s
    aggregate_s = 2 * sum(setup.learner.parameter_count(setup.learner.held(d)) for d in range(40)) / 1e12
    expected_latency = (compute_s + wan_s).max() + aggregate_s + wan_s
    assert rounds["latency_s"] == pytest.approx([expected_latency] * 2, rel=1e-9)
    airtime_s = message_bits / 4e6
    assert rounds["energy_uplink_j"] == pytest.approx([40 * 0.8 * airtime_s] * 2)
    assert rounds["energy_downlink_j"] == pytest.approx([40 * 0.8 * airtime_s] * 2)
    assert rounds["energy_compute_j"] == pytest.approx([(2.0 * compute_s).sum()] * 2)
    assert rounds["bytes_up"].tolist() == [40 * 6_000_064] * 2


def test_hierarchical_cloud_rounds_and_backhaul_traffic() -> None:
    setup = paper_network_only(rounds=4)
    result = RunResult()
    setup.simulate(SchemeConfig(name="h", protocol="hierarchical", cloud_period=2), result.add)
    rounds, events = result.table("rounds"), result.table("events")
    assert rounds["cloud_aggregation"].tolist() == [0, 1, 0, 1]
    backhaul_up = messages(events, "backhaul_up")
    assert sorted(backhaul_up["round"].tolist()) == [2] * 10 + [4] * 10
    uplinks = messages(events, "uplink")
    assert len(uplinks) == 4 * 40
    # every device's uplink is received by its own edge
    nodes = setup.nodes_table()
    assert (nodes["edge"][uplinks["node"]] == uplinks["peer"]).all()
    # backhaul energy: 10 edges x 0.8 W x message airtime, up and down
    airtime_s = 8 * 6_000_064 / 4e6
    assert rounds["energy_backhaul_j"] == pytest.approx([0, 2 * 10 * 0.8 * airtime_s] * 2)


def test_shared_cell_makes_a_crowded_cell_slower() -> None:
    base = ["training.enabled=false", "rounds=1", "network.payload_bytes=1000000",
            "uplink.fading.kind=\"none\"", "schemes=[{name=\"e\", protocol=\"edge_only\"}]",
            "topology.n_edges=1", "topology.min_edge_separation_m=0"]  # fmt: skip

    def mean_uplink_s(devices: int) -> float:
        result = run_scenario(load_scenario("small", base + [f"topology.devices_per_edge={devices}"]), None, progress=False)
        ev = result.table("events")
        up = ev[(ev["kind"] == KIND["uplink"]) & (ev["role"] == ROLE["tx"])]
        return float(up["duration_s"].mean())

    assert mean_uplink_s(8) > 3 * mean_uplink_s(1)


def final_models(scenario_overrides: list[str], scheme: SchemeConfig) -> list[dict[str, torch.Tensor]]:
    setup = Setup.from_scenario(load_scenario("small", scenario_overrides))
    world = setup.simulate(scheme, RunResult().add)
    return [u.state for u in world.held_models]


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-4)  # float32 summation order differs


def test_hierarchical_with_period_one_equals_star_fedavg() -> None:
    overrides = ["rounds=3"]
    (star,) = final_models(overrides, SchemeConfig(name="s", protocol="star"))
    hier = final_models(overrides, SchemeConfig(name="h", protocol="hierarchical", cloud_period=1))
    assert len(hier) == 2
    for state in hier:
        assert_same_state(state, star)
    edge_only = final_models(overrides, SchemeConfig(name="e", protocol="edge_only"))
    with pytest.raises(AssertionError):
        assert_same_state(edge_only[0], star)


def test_edge_only_with_one_edge_equals_fedavg() -> None:
    overrides = ["rounds=2", "topology.n_edges=1", "topology.devices_per_edge=4"]
    (star,) = final_models(overrides, SchemeConfig(name="s", protocol="star"))
    (edge,) = final_models(overrides, SchemeConfig(name="e", protocol="edge_only"))
    assert_same_state(edge, star)


def test_training_learns_well_above_chance() -> None:
    scenario = load_scenario("small", ["schemes=[{name=\"star\", protocol=\"star\"}]"])
    metrics = run_scenario(scenario, None, progress=False).table("metrics")
    first = {m["task"].decode(): m["accuracy"] for m in metrics[metrics["round"] == 0]}
    last = {m["task"].decode(): m["accuracy"] for m in metrics[metrics["round"] == scenario.rounds]}
    # chance: 1/4 for shape and activity; vqa's most frequent answer (yes or no) is 1/6 of samples
    required = {"shape": 0.45, "activity": 0.7, "vqa": 0.4}
    for task, floor in required.items():
        assert last[task] > floor, (task, last[task])
        assert last[task] > first[task] + 0.15, (task, first[task], last[task])


def test_same_seed_same_results_different_seed_different_layout() -> None:
    overrides = ["rounds=2"]
    a = run_scenario(load_scenario("small", overrides), None, progress=False)
    b = run_scenario(load_scenario("small", overrides), None, progress=False)
    for table in ("rounds", "metrics", "events", "ledger"):
        assert a.table(table).tobytes() == b.table(table).tobytes(), table
    c = run_scenario(load_scenario("small", overrides + ["seed=8"]), None, progress=False)
    assert not np.array_equal(a.table("rounds")["latency_s"], c.table("rounds")["latency_s"])


def test_network_only_mode_has_no_metrics_and_fixed_payload() -> None:
    result = run_scenario(load_scenario("small", ["training.enabled=false", "rounds=2", "network.payload_bytes=1000"]),
                          None, progress=False)  # fmt: skip
    assert len(result.table("metrics")) == 0
    events = result.table("events")
    transfers = events[events["role"] == ROLE["tx"]]
    assert set(transfers["module"].tolist()) == {b"model", b"header"}
    assert set(transfers["bytes"][transfers["module"] == b"model"].tolist()) == {1000}
    assert set(transfers["bytes"][transfers["module"] == b"header"].tolist()) == {64}
