"""Faults in whole simulations: deadlines, re-homing, crash waits, cloud outages, retries, dropouts, guards.

Each check reads the event log (and, where needed, which updates the servers
averaged, recorded by wrapping ``World.aggregate``) and compares it with what
the fault plan and the timing rules say.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim.runner import RunResult, Setup
from sim.scenario import SchemeConfig, load_scenario
from sim.world import World
from traces.schema import EVENT_KINDS, OUTCOMES, ROLES

KIND = {k: i for i, k in enumerate(EVENT_KINDS)}
ROLE = {r: i for i, r in enumerate(ROLES)}
OUT = {o: i for i, o in enumerate(OUTCOMES)}
NETWORK_ONLY = ["training.enabled=false", "network.payload_bytes=2000000"]
EDGE_ONLY = SchemeConfig(name="e", protocol="edge_only")
STAR = SchemeConfig(name="s", protocol="star")
N_DEV = 6  # small preset: 2 edges x 3 devices; edge ids 6 and 7, cloud 8


def simulate(overrides: list[str], scheme: SchemeConfig, monkeypatch: pytest.MonkeyPatch | None = None):
    """Run one scheme; returns (events, rounds, averaged) where averaged maps (node, round) to the device tags."""
    setup = Setup.from_scenario(load_scenario("small", overrides))
    averaged: dict[tuple[int, int], list[int]] = {}
    if monkeypatch is not None:
        train = setup.learner.train

        def tagged(device, model, r=1):  # the update carries its sender in ``loss``
            return dataclasses.replace(train(device, model, r), loss=float(device))

        monkeypatch.setattr(setup.learner, "train", tagged)
        aggregate = World.aggregate

        def recording(world, node, updates, r, base=None):
            averaged.setdefault((node, r), []).extend(int(u.loss) for u in updates)
            return (yield from aggregate(world, node, updates, r, base))

        monkeypatch.setattr(World, "aggregate", recording)
    result = RunResult()
    setup.simulate(scheme, result.add)
    return result.table("events"), result.table("rounds"), averaged


def rows(events: np.ndarray, kind: str, role: str | None = None, outcome: str | None = None) -> np.ndarray:
    keep = events["kind"] == KIND[kind]
    if role is not None:
        keep &= events["role"] == ROLE[role]
    if outcome is not None:
        keep &= events["outcome"] == OUT[outcome]
    return events[keep]


def test_deadline_aggregation_uses_exactly_the_updates_that_arrived_in_time(monkeypatch) -> None:
    deadline_s = 0.9
    events, _, averaged = simulate(NETWORK_ONLY + ["rounds=3", f"faults.deadline_s={deadline_s}"], EDGE_ONLY,
                                   monkeypatch)  # fmt: skip
    compute = rows(events, "compute")
    arrived = rows(events, "uplink", "rx", "ok")
    missed = events[events["outcome"] == OUT["missed"]]
    assert len(missed) > 0 and len(arrived) > 0  # the deadline bites, but not everyone
    for edge_id, devices in ((6, {0, 1, 2}), (7, {3, 4, 5})):
        for r in (1, 2, 3):
            mine = compute[(compute["round"] == r) & np.isin(compute["node"], list(devices))]
            start_s = mine["t_start_s"].min()
            came = arrived[(arrived["round"] == r) & (arrived["node"] == edge_id)]
            assert (came["t_start_s"] + came["duration_s"] <= start_s + deadline_s + 1e-12).all()
            assert sorted(averaged.get((edge_id, r), [])) == sorted(set(came["peer"].tolist()))
            mine_cut = (missed["round"] == r) & np.isin(missed["node"], list(devices)) & (missed["role"] != ROLE["rx"])
            cut = missed[mine_cut]
            assert set(cut["node"].tolist()) == devices - set(came["peer"].tolist())
            assert cut["t_start_s"] + cut["duration_s"] == pytest.approx([start_s + deadline_s] * len(cut), abs=1e-9)


CRASH = ['faults.edge_crashes=[{edge=0, at_s=2.0, down_s=3.0}]']


def test_rehomed_devices_upload_to_the_nearest_alive_edge() -> None:
    events, rounds, _ = simulate(NETWORK_ONLY + ["rounds=3"] + CRASH, EDGE_ONLY)
    up_tx = rows(events, "uplink", "tx", "ok")
    up_rx = rows(events, "uplink", "rx", "ok")
    round2 = up_tx[up_tx["round"] == 2]
    # edge 0's devices (0, 1, 2) send round 2 to edge 1 (node 7), and edge 7 receives their bytes
    assert sorted(set(round2["node"][round2["peer"] == 7].tolist())) == [0, 1, 2, 3, 4, 5]
    guests_rx = up_rx[(up_rx["round"] == 2) & (up_rx["node"] == 7) & np.isin(up_rx["peer"], [0, 1, 2])]
    assert guests_rx["bytes"].sum() == 3 * (2_000_000 + 64)
    assert not ((up_rx["round"] == 2) & (up_rx["node"] == 6)).any()
    # attempts at the crashed edge fail at once, and the crash is in the log
    failed = rows(events, "uplink", "tx", "failed")
    assert (failed["peer"] == 6).all() and (failed["t_start_s"] >= 2.0).all() and (failed["duration_s"] == 0).all()
    (crash,) = rows(events, "edge_crash")
    assert crash["node"] == 6 and crash["t_start_s"] == 2.0 and crash["duration_s"] >= 3.0
    # back home in round 3
    round3 = up_tx[up_tx["round"] == 3]
    assert set(round3["peer"][np.isin(round3["node"], [0, 1, 2])].tolist()) == {6}
    assert len(rounds) == 3


def test_waiting_edge_redoes_the_round_after_recovery() -> None:
    events, _, _ = simulate(NETWORK_ONLY + ["rounds=3", 'faults.on_edge_crash="wait"'] + CRASH, EDGE_ONLY)
    compute = rows(events, "compute")
    redone = compute[(compute["round"] == 2) & np.isin(compute["node"], [0, 1, 2])]
    assert len(redone) == 6  # trained before the crash, and again after it
    assert (redone["t_start_s"][3:] >= 5.0).all()
    up_rx = rows(events, "uplink", "rx", "ok")
    at_edge0 = up_rx[(up_rx["round"] == 2) & (up_rx["node"] == 6)]
    assert len(set(at_edge0["peer"].tolist())) == 3 and (at_edge0["t_start_s"] >= 5.0).all()
    (crash,) = rows(events, "edge_crash")
    assert crash["t_start_s"] == 2.0 and crash["duration_s"] == pytest.approx(3.0, abs=1e-9)


def test_cloud_outage_delays_star_aggregation_by_the_rest_of_the_window() -> None:
    base_events, base_rounds, _ = simulate(NETWORK_ONLY + ["rounds=2"], STAR)
    aggregation_s = float(rows(base_events, "aggregate")["t_start_s"][0])
    at_s, down_s = aggregation_s - 0.01, 0.5
    outage = f"faults.cloud_outages=[{{at_s={at_s}, down_s={down_s}}}]"
    events, rounds, _ = simulate(NETWORK_ONLY + ["rounds=2", outage], STAR)
    delay_s = at_s + down_s - aggregation_s
    assert rounds["latency_s"] == pytest.approx(base_rounds["latency_s"] + np.array([delay_s, 0.0]), abs=1e-9)
    (outage,) = rows(events, "cloud_outage")
    assert outage["node"] == 8 and outage["t_start_s"] == aggregation_s
    assert outage["duration_s"] == pytest.approx(delay_s, abs=1e-12)


def test_failed_attempts_back_off_exponentially_and_cost_energy() -> None:
    overrides = NETWORK_ONLY + ["rounds=2", "faults.outage_snr_db=22", "faults.max_retries=3", "faults.backoff_s=0.05"]
    events, rounds, _ = simulate(overrides, EDGE_ONLY)
    up = rows(events, "uplink", "tx")
    failed = up[up["outcome"] == OUT["failed"]]
    assert len(failed) > 0
    power_w = 10 ** (23.0 / 10) / 1000  # 23 dBm radiated = electrical power here
    assert failed["energy_j"] == pytest.approx(power_w * failed["duration_s"], rel=1e-12)
    retried = 0
    for (r, device) in {(int(x["round"]), int(x["node"])) for x in failed}:
        tries = up[(up["round"] == r) & (up["node"] == device)]
        tries = tries[np.argsort(tries["t_start_s"], kind="stable")]
        attempts = [t for t in tries if t["module"] in (b"", b"header") or t["outcome"] == OUT["failed"]]
        assert len(attempts) <= 4
        retried += len(attempts) > 1
        for k in range(1, len(attempts)):
            previous_end = attempts[k - 1]["t_start_s"] + attempts[k - 1]["duration_s"]
            assert attempts[k]["t_start_s"] == pytest.approx(previous_end + 0.05 * 2 ** (k - 1), abs=1e-9)
    assert retried > 0
    assert rounds["energy_uplink_j"].sum() == pytest.approx(up["energy_j"].sum(), rel=1e-12)


def test_dropouts_follow_the_plan_and_lose_their_updates(monkeypatch) -> None:
    overrides = NETWORK_ONLY + ["rounds=3", "faults.dropout_prob=0.4", "faults.dropout_during_upload=0.5"]
    events, _, averaged = simulate(overrides, EDGE_ONLY, monkeypatch)
    setup = Setup.from_scenario(load_scenario("small", overrides))
    plan = World(setup.scenario, setup.layout, setup.device_flops_per_s, setup.learner,
                 (np.random.default_rng(0), np.random.default_rng(0)), "x", lambda *_: None).faults  # fmt: skip
    drops = {(r, d): plan.dropout(d, r) for r in (1, 2, 3) for d in range(N_DEV)}
    logged = {(int(x["round"]), int(x["node"])) for x in rows(events, "dropout")}
    assert logged == {key for key, drop in drops.items() if drop is not None} and logged
    partial = rows(events, "uplink", "tx", "failed")
    for x in partial:
        drop = drops[(int(x["round"]), int(x["node"]))]
        assert drop is not None and drop.when == "during_upload"
        assert x["bytes"] == int(drop.sent_fraction * 8 * 2_000_064) // 8
    for (node, r), tags in averaged.items():
        assert all(drops[(r, d)] is None for d in tags)


def test_guards_keep_nan_and_boosted_updates_out_of_the_model() -> None:
    common = ["rounds=2", "faults.corrupt_prob=0.4", "training.local_steps=2", "data.test_samples=100"]
    for kind in ("nan", "scale"):
        corrupt = common + [f'faults.corrupt_kind="{kind}"', "faults.corrupt_scale=1000"]
        setup = Setup.from_scenario(load_scenario("small", corrupt + ["faults.guards.enabled=true"]))
        guarded = RunResult()
        world = setup.simulate(STAR, guarded.add)
        corrupted = {(r, d) for r in (1, 2) for d in range(N_DEV) if world.faults.corrupts(d, r)}
        assert corrupted
        rejected = rows(guarded.table("events"), "guard", outcome="rejected")
        assert {(int(x["round"]), int(x["peer"])) for x in rejected} == corrupted
        assert np.isfinite(guarded.table("metrics")["loss"]).all()
        if kind == "nan":
            unguarded = RunResult()
            Setup.from_scenario(load_scenario("small", corrupt)).simulate(STAR, unguarded.add)
            last = unguarded.table("metrics")
            assert np.isnan(last["loss"][last["round"] == 2]).all()


def test_too_few_accepted_updates_keep_the_previous_model(monkeypatch) -> None:
    overrides = NETWORK_ONLY + ["rounds=4", "faults.dropout_prob=0.2", "faults.dropout_during_upload=0",
                                "faults.guards.enabled=true", "faults.guards.min_updates=6"]  # fmt: skip
    events, _, averaged = simulate(overrides, STAR, monkeypatch)
    # network-only updates carry no tensors, so the guards only count: after any dropout, no aggregation
    dropped_rounds = {int(x["round"]) for x in rows(events, "dropout")}
    assert 0 < len(dropped_rounds) < 4
    assert {r for (_node, r) in averaged} == {1, 2, 3, 4} - dropped_rounds
    assert sorted(rows(events, "aggregate")["round"].tolist()) == sorted({1, 2, 3, 4} - dropped_rounds)
