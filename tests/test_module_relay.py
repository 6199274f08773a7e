"""Module relaying: a device that gains a task or modality fetches the new modules over D2D, else from its edge."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from sim.learner import Update
from sim.runner import RunResult, Setup
from sim.scenario import SchemeConfig, ScenarioError, load_scenario
from traces.schema import EVENT_KINDS, ROLES

KIND = {k: i for i, k in enumerate(EVENT_KINDS)}
ROLE = {r: i for i, r in enumerate(ROLES)}
VQA = ("prompt/vqa", "head/vqa")
# small preset: 2 edges x 3 devices (0-2 at edge 0, 3-5 at edge 1); devices 1 and 2 run vqa from round 1,
# device 0 (beside them) and device 3 (no vqa in its cell) from round 2
ARRIVALS = [
    "heterogeneity.device_tasks=[['shape'],['shape','vqa'],['shape','vqa'],['shape'],['shape'],['shape']]",
    "heterogeneity.task_arrivals=[{device=0, task='vqa', round=2}, {device=3, task='vqa', round=2}]",
]
RELAY = SchemeConfig(name="relay", protocol="edge_only", d2d="relay", module_relay=True)


def run(overrides: Sequence[str], scheme: SchemeConfig) -> tuple[Setup, RunResult]:
    setup = Setup.from_scenario(load_scenario("small", list(overrides)))
    result = RunResult()
    setup.simulate(scheme, result.add)
    return setup, result


def rows(events: np.ndarray, r: int, kind: str, role: str, node: int) -> np.ndarray:
    return events[(events["round"] == r) & (events["kind"] == KIND[kind]) & (events["role"] == ROLE[role])
                  & (events["node"] == node)]  # fmt: skip


def modules(selected: np.ndarray) -> list[str]:
    return sorted(m.decode() for m in selected["module"])


def fetched_rows(events: np.ndarray, r: int, kind: str, device: int) -> np.ndarray:
    """What ``device`` received by ``kind`` in round ``r`` before it trained (the fetch, not the round's broadcast)."""
    (compute,) = rows(events, r, "compute", "local", device)
    got = rows(events, r, kind, "rx", device)
    return got[got["t_start_s"] + got["duration_s"] <= compute["t_start_s"]]


def carrying(selected: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """The rows of ``selected`` of the modules ``names``."""
    return selected[np.isin(selected["module"], [n.encode() for n in names])]


def sent(events: np.ndarray, r: int, device: int) -> set[str]:
    """Modules ``device`` sent in round ``r`` (uplink or D2D forward)."""
    return set(modules(rows(events, r, "uplink", "tx", device))) | set(modules(rows(events, r, "d2d", "tx", device)))


def test_a_relayed_module_is_byte_identical_to_the_holders_copy() -> None:
    scenario = load_scenario("small", ["rounds=2", "training.local_steps=2", "d2d.radius_m=1000.0", *ARRIVALS])
    setup = Setup.from_scenario(scenario)
    trained_from: dict[tuple[int, int], Update] = {}
    train = setup.learner.train

    def recording_train(device: int, model: Update, r: int = 1) -> Update:
        trained_from[device, r] = model
        return train(device, model, r)

    setup.learner.train = recording_train  # type: ignore[method-assign]
    result = RunResult()
    world = setup.simulate(RELAY, result.add)
    events = result.table("events")
    xy = setup.layout.device_xy
    holder = min((1, 2), key=lambda v: (float(np.linalg.norm(xy[v] - xy[0])), v))  # the nearest vqa holder
    received = fetched_rows(events, 2, "d2d", 0)
    assert modules(received) == sorted([*VQA, "header"]) and set(received["peer"]) == {holder}
    assert not carrying(fetched_rows(events, 2, "downlink", 0), VQA).size
    fetch = world.module_fetch
    assert fetch is not None
    fetched = fetch.fetched[0]
    names = [p for k in VQA for p in setup.learner.registry.params(k)]
    assert sorted(fetched.state) == sorted(names) and fetched.modules == VQA
    for name in names:
        holders_copy = trained_from[holder, 2].state[name]
        assert torch.equal(fetched.state[name], holders_copy)  # byte for byte the holder's copy
        assert torch.equal(trained_from[0, 2].state[name], holders_copy)  # and device 0 trains from it
        assert not torch.equal(holders_copy, setup.learner.initial_state[name])  # trained in round 1, not initial
    assert fetch.new_modules(0, 2) == VQA and fetch.new_modules(0, 1) == () and fetch.new_modules(1, 2) == ()


@pytest.mark.parametrize("radius_m, scheme, device", [
    (1.0, RELAY, 0),  # no D2D contact
    (1000.0, RELAY, 3),  # contacts, but no one in its cell holds vqa
    (1000.0, SchemeConfig(name="plain", protocol="edge_only", d2d="relay"), 0),  # a holder near, no module_relay
])  # fmt: skip
def test_otherwise_the_edge_sends_the_new_modules_before_the_device_trains(
    radius_m: float, scheme: SchemeConfig, device: int
) -> None:
    setup, result = run(["training.enabled=false", "rounds=2", f"d2d.radius_m={radius_m}", "d2d.connect_with_mst=false",
                         *ARRIVALS], scheme)  # fmt: skip
    events = result.table("events")
    edge = setup.layout.n_devices + int(setup.layout.device_edge[device])
    fetch = fetched_rows(events, 2, "downlink", device)
    assert modules(fetch) == sorted([*VQA, "header"]) and set(fetch["peer"]) == {edge}
    assert not carrying(rows(events, 2, "d2d", "rx", device), VQA).size
    assert not set(VQA) & sent(events, 1, device) and set(VQA) <= sent(events, 2, device)


@pytest.mark.parametrize("radius_m, kind", [(1000.0, "d2d"), (1.0, "downlink")])
def test_bytes_on_the_air_are_the_modules_nbytes_plus_the_header(radius_m: float, kind: str) -> None:
    setup, result = run(["training.enabled=false", "rounds=2", f"d2d.radius_m={radius_m}",
                         "d2d.connect_with_mst=false", "network.header_bytes=100", *ARRIVALS], RELAY)  # fmt: skip
    events = result.table("events")
    named = dict(setup.learner.model.named_parameters())
    nbytes = {k: sum(named[p].numel() * named[p].element_size() for p in setup.learner.registry.params(k)) for k in VQA}
    message = fetched_rows(events, 2, kind, 0)
    assert modules(message) == sorted([*VQA, "header"])
    assert {m.decode(): int(b) for m, b in zip(message["module"], message["bytes"])} == {**nbytes, "header": 100}
    assert int(message["bytes"].sum()) == nbytes["prompt/vqa"] + nbytes["head/vqa"] + 100


def test_a_modality_arrival_brings_its_encoder() -> None:
    setup, result = run(["training.enabled=false", "rounds=2", "d2d.radius_m=1000.0",
                         "heterogeneity.device_modalities=[['image'],['image','sensor'],['image'],['image'],['image'],"
                         "['image']]", "heterogeneity.modality_arrivals=[{device=0, modality='sensor', round=2}]"],
                        RELAY)  # fmt: skip
    events = result.table("events")
    assert "encoder/sensor" not in setup.learner.held(0, 1) and "encoder/sensor" in setup.learner.held(0, 2)
    got = fetched_rows(events, 2, "d2d", 0)
    assert modules(got) == ["encoder/sensor", "header"] and set(got["peer"]) == {1}
    assert "encoder/sensor" not in sent(events, 1, 0) and "encoder/sensor" in sent(events, 2, 0)
    assert setup.learner.train_flops(0, 2) > setup.learner.train_flops(0, 1)


def digest(result: RunResult) -> bytes:
    return b"".join(result.table(t).tobytes() for t in ("events", "rounds", "metrics", "ledger"))


def test_no_arrivals_give_byte_identical_results() -> None:
    base = ["rounds=2", "training.local_steps=2", "d2d.radius_m=300.0"]
    scheme = SchemeConfig(name="r", protocol="hierarchical", d2d="relay")
    _, before = run(base, scheme)
    _, knobs = run([*base, "heterogeneity.task_arrivals=[]", "heterogeneity.modality_arrivals=[]"],
                   SchemeConfig(name="r", protocol="hierarchical", d2d="relay", module_relay=True))  # fmt: skip
    assert digest(knobs) == digest(before) and len(before.table("metrics")) > 0
    # a task arriving in round 1 is the same as having it from the start
    tasks = "heterogeneity.device_tasks=[['shape','vqa'],['shape'],['shape'],['shape'],['shape'],['shape']]"
    _, listed = run([*base, tasks], scheme)
    _, arrived = run([*base, tasks.replace("'shape','vqa'", "'shape'"),
                      "heterogeneity.task_arrivals=[{device=0, task='vqa', round=1}]"], scheme)  # fmt: skip
    assert digest(arrived) == digest(listed) and digest(listed) != digest(before)


@pytest.mark.parametrize("override, message", [
    ("heterogeneity.task_arrivals=[{device=6, task='vqa', round=2}]", "device 6 does not exist"),
    ("heterogeneity.task_arrivals=[{device=0, task='size', round=2}]", "task 'size' is not in model.tasks"),
    ("heterogeneity.modality_arrivals=[{device=0, modality='text', round=11}]", r"after the last round \(10\)"),
    ('schemes=[{name="e", protocol="edge_only", module_relay=true}]', "module_relay needs d2d"),
    ("network.engine='aggregated'", "need network.engine = 'events'"),
])  # fmt: skip
def test_bad_arrivals_and_relay_knobs_are_one_line_errors(override: str, message: str) -> None:
    extra = [] if "arrivals" in override else ["heterogeneity.task_arrivals=[{device=0, task='vqa', round=2}]"]
    with pytest.raises(ScenarioError, match=message):
        load_scenario("small", ["training.enabled=false", override, *extra])
