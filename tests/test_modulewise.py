"""Module-wise HF-FM traffic and aggregation through the simulator: who sends, receives and averages what."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from sim.learner import Update
from sim.runner import RunResult, Setup
from sim.scenario import SchemeConfig, load_scenario
from traces.schema import EVENT_KINDS, ROLES

KIND = {k: i for i, k in enumerate(EVENT_KINDS)}
ROLE = {r: i for i, r in enumerate(ROLES)}
# small preset: 2 edges x 3 devices; device 1 has no image, device 4 only the sensor; edge 1 runs no vqa
HETEROGENEOUS = [
    "heterogeneity.device_modalities=[['image','text','sensor'],['text','sensor'],['image','text','sensor'],"
    "['image','text','sensor'],['sensor'],['image','text','sensor']]",
    "heterogeneity.tasks_by_edge=[['shape','vqa','activity'],['shape','activity']]",
]


def simulate(overrides: Sequence[str], scheme: SchemeConfig) -> tuple[Setup, np.ndarray]:
    setup = Setup.from_scenario(load_scenario("small", list(overrides)))
    result = RunResult()
    setup.simulate(scheme, result.add)
    return setup, result.table("events")


def modules_of(events: np.ndarray, node: int, role: str, kinds: Sequence[str]) -> set[str]:
    rows = events[(events["node"] == node) & (events["role"] == ROLE[role]) & np.isin(events["kind"], [KIND[k] for k in kinds])]
    return {m.decode() for m in rows["module"]}


def test_a_device_without_a_modality_never_sends_or_receives_its_encoder() -> None:
    scheme = SchemeConfig(name="h", protocol="hierarchical", cloud_period=1)
    setup, events = simulate(["training.enabled=false", "rounds=2", *HETEROGENEOUS], scheme)
    radio = ["uplink", "downlink"]
    assert "encoder/image" not in modules_of(events, 1, "tx", radio) | modules_of(events, 1, "rx", radio)
    assert "encoder/image" in modules_of(events, 0, "tx", radio) & modules_of(events, 0, "rx", radio)
    assert modules_of(events, 4, "tx", radio) & {"encoder/image", "encoder/text"} == set()
    # edge 1 (devices 3-5) runs no vqa: its devices never see the vqa head, its backhaul never carries it
    for device in (3, 4, 5):
        assert not {"head/vqa", "prompt/vqa"} & (modules_of(events, device, "tx", radio) | modules_of(events, device, "rx", radio))
    edge1 = setup.layout.n_devices + 1
    assert "head/vqa" not in modules_of(events, edge1, "tx", ["backhaul_up"]) | modules_of(events, edge1, "rx", ["backhaul_down"])
    assert "head/vqa" in modules_of(events, edge1 - 1, "tx", ["backhaul_up"])


def test_message_bytes_are_the_held_tensors_plus_the_header() -> None:
    scheme = SchemeConfig(name="e", protocol="edge_only")
    setup, events = simulate(["training.enabled=false", "rounds=1", *HETEROGENEOUS], scheme)
    learner = setup.learner
    named = dict(learner.model.named_parameters())
    for device in range(setup.layout.n_devices):
        held = learner.held(device)
        expected = sum(named[p].numel() * named[p].element_size() for k in held for p in learner.registry.params(k))
        rows = events[(events["node"] == device) & (events["kind"] == KIND["uplink"]) & (events["role"] == ROLE["tx"])]
        assert [m.decode() for m in rows["module"]] == [*held, "header"]
        assert int(rows["bytes"].sum()) == expected + 64
        # the energy of the message is shared by bytes, so the rows add up to power x airtime
        radiated_w = 10 ** (setup.scenario.uplink.tx_power_dbm / 10) / 1e3  # the small preset draws what it radiates
        assert rows["energy_j"].sum() == pytest.approx(radiated_w * rows["duration_s"][0], rel=1e-12)


def test_heterogeneity_cuts_traffic() -> None:
    scheme = SchemeConfig(name="e", protocol="edge_only")
    _, full = simulate(["training.enabled=false", "rounds=1"], scheme)
    _, partial = simulate(["training.enabled=false", "rounds=1", *HETEROGENEOUS], scheme)
    up = KIND["uplink"]
    assert partial["bytes"][partial["kind"] == up].sum() < full["bytes"][full["kind"] == up].sum()


class Recorder:
    """Wraps a learner's aggregate to keep every (updates, base, result) call, by aggregating node order."""

    def __init__(self, setup: Setup) -> None:
        self.calls: list[tuple[list[Update], Update, Update]] = []
        inner = setup.learner.aggregate

        def aggregate(updates: Sequence[Update], base: Update) -> Update:
            out = inner(updates, base)
            self.calls.append((list(updates), base, out))
            return out

        setup.learner.aggregate = aggregate  # type: ignore[method-assign]


def expected_module_mean(updates: list[Update], base: Update, module: str, name: str) -> torch.Tensor:
    holders = [u for u in updates if module in u.weights]
    if not holders:
        return base.state[name]
    w = torch.tensor([u.weights[module] for u in holders], dtype=torch.float64)
    stacked = torch.stack([u.state[name].double() for u in holders])
    return (torch.tensordot(w, stacked, dims=1) / w.sum()).float()


def test_each_module_is_averaged_over_its_holders_only_at_edge_and_cloud() -> None:
    setup = Setup.from_scenario(load_scenario("small", ["rounds=1", "training.local_steps=2", *HETEROGENEOUS]))
    recorder = Recorder(setup)
    setup.simulate(SchemeConfig(name="h", protocol="hierarchical", cloud_period=1), RunResult().add)
    edge_calls, cloud_calls = recorder.calls[:2], recorder.calls[2:]
    assert len(edge_calls) == 2 and len(cloud_calls) == 1
    registry = setup.learner.registry
    for updates, base, out in recorder.calls:
        for module in registry.keys:
            for name in registry.params(module):
                torch.testing.assert_close(out.state[name], expected_module_mean(updates, base, module, name), rtol=0, atol=1e-6)
        for module in base.modules:
            assert out.weights[module] == sum(u.weights.get(module, 0.0) for u in updates)
    # the cloud got edge 1's modules without the vqa ones, and edge 0's with them
    (edge0_up, edge1_up), _, _ = cloud_calls[0]
    assert "head/vqa" in edge0_up.weights and "head/vqa" not in edge1_up.weights
    # the vqa head at the cloud is edge 0's (its only holder); device 1 had no image, so edge 0's image
    # encoder is the mean of devices 0 and 2 only
    name = registry.params("head/vqa")[0]
    torch.testing.assert_close(cloud_calls[0][2].state[name], edge0_up.state[name], rtol=0, atol=0)
    device_updates = next(updates for updates, _, _ in edge_calls if any("head/vqa" in u.weights for u in updates))
    assert [("encoder/image" in u.weights) for u in device_updates] == [True, False, True]
