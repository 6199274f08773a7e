"""D2D protocols: cluster-head relaying (uploads per cluster, same edge model) and consensus (exact mixing, rate)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from channels import clusters, contact_graph, distance_m
from sim.protocols import scheme_process
from sim.runner import RunResult, Setup, run_scenario
from sim.scenario import SchemeConfig, load_scenario
from sim.world import World, WorldInputs
from tests.test_d2d_contacts import LineTrack
from traces.schema import EVENT_KINDS, OUTCOMES, ROLES

KIND = {k: i for i, k in enumerate(EVENT_KINDS)}
ROLE = {r: i for i, r in enumerate(ROLES)}
FAILED = OUTCOMES.index("failed")
PAPER_6MB = ["training.enabled=false", "network.payload_bytes=6000000", "rounds=2"]


def messages(events: np.ndarray, kind: str, role: str = "tx") -> np.ndarray:
    """One row per message (a message has one row per module): the distinct (round, node, peer, start) of its rows."""
    rows = events[(events["kind"] == KIND[kind]) & (events["role"] == ROLE[role])]
    return np.unique(rows[["round", "node", "peer", "t_start_s"]])


def relay_scheme(**extra: object) -> str:
    fields = ", ".join(f"{k}={v!r}".replace("'", '"') for k, v in extra.items())
    return f'schemes=[{{name="relay", protocol="edge_only", d2d="relay"{", " if fields else ""}{fields}}}]'


@pytest.mark.parametrize("mst", [True, False])
def test_cluster_heads_upload_once_per_cluster_per_round(mst: bool) -> None:
    scenario = load_scenario("paper", PAPER_6MB + [relay_scheme(), f"d2d.connect_with_mst={str(mst).lower()}",
                                                   "d2d.radius_m=300.0"])  # fmt: skip
    setup = Setup.from_scenario(scenario)
    layout = setup.layout
    expected = []  # (edge, cluster) → head: the member closest to its edge (best median uplink SNR)
    for j in range(layout.n_edges):
        members = np.flatnonzero(layout.device_edge == j).tolist()
        groups = [members] if mst else clusters(contact_graph(layout.device_xy, 300.0), members)
        for group in groups:
            d = distance_m(layout.device_xy[group], layout.edge_xy[j])
            expected.append(group[int(np.argmin(d))])
    if not mst:
        assert layout.n_edges < len(expected) < layout.n_devices  # some cells split, some devices grouped
    events = run_scenario(scenario, None, progress=False).table("events")
    uplinks = messages(events, "uplink")
    for r in (1, 2):
        assert sorted(uplinks["node"][uplinks["round"] == r].tolist()) == sorted(expected)
        d2d = messages(events, "d2d")
        assert (d2d["round"] == r).sum() == layout.n_devices - len(expected)  # every other member forwards once
    assert not (events["outcome"] == FAILED).any()
    again = run_scenario(scenario, None, progress=False).table("events")
    assert again.tobytes() == events.tobytes()


def test_d2d_energy_is_power_times_airtime_and_fills_the_d2d_category() -> None:
    scenario = load_scenario("paper", PAPER_6MB + [relay_scheme(), "d2d.rx_power_w=0.1", "d2d.tx_energy_power_w=0.5"])
    result = run_scenario(scenario, None, progress=False)
    events = result.table("events")
    d2d = events[events["kind"] == KIND["d2d"]]
    assert len(d2d) > 0
    for role, power_w in (("tx", 0.5), ("rx", 0.1)):
        for message in messages(events, "d2d", role):
            rows = d2d[(d2d["role"] == ROLE[role]) & (d2d[["round", "node", "peer", "t_start_s"]] == message)]
            assert len(set(rows["duration_s"])) == 1
            assert rows["energy_j"].sum() == pytest.approx(power_w * rows["duration_s"][0], rel=1e-9)
    rounds = result.table("rounds")
    for r in (1, 2):
        assert rounds["energy_d2d_j"][r - 1] == pytest.approx(d2d["energy_j"][d2d["round"] == r].sum(), rel=1e-12)


def final_state(setup: Setup, scheme: SchemeConfig) -> dict[str, torch.Tensor]:
    (edge_model,) = setup.simulate(scheme, RunResult().add).held_models
    return edge_model.state


def flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([state[k].double().flatten() for k in sorted(state)])


def test_relaying_gives_the_same_edge_model_as_plain_uploads() -> None:
    scenario = load_scenario("small", ["rounds=1", "topology.n_edges=1", "topology.devices_per_edge=4",
                                       "training.local_steps=3", "d2d.radius_m=1000.0"])  # fmt: skip
    setup = Setup.from_scenario(scenario)
    plain = final_state(setup, SchemeConfig(name="e", protocol="edge_only"))
    relay = final_state(setup, SchemeConfig(name="r", protocol="edge_only", d2d="relay", head_selection="central"))
    assert plain.keys() == relay.keys()
    for key in plain:  # float32 group averages differ from the flat average by rounding only
        torch.testing.assert_close(relay[key], plain[key], rtol=1e-5, atol=1e-6)
    assert not torch.equal(flat(plain), flat(setup.learner.initial_state))


def line_of_four(extra: list[str]) -> list[str]:
    """One edge, four devices 20 m apart on a line; radius 25 m: the path graph 0-1-2-3."""
    return ["rounds=1", "topology.edge_positions_m=[[0.0, 0.0]]", "d2d.connect_with_mst=false", "d2d.radius_m=25.0",
            "topology.device_positions_m=[[100.0, 0.0], [120.0, 0.0], [140.0, 0.0], [160.0, 0.0]]"] + extra  # fmt: skip


def test_consensus_sends_one_broadcast_per_member_and_step_and_one_upload() -> None:
    steps = 3
    scenario = load_scenario("small", line_of_four(["training.enabled=false", "d2d.rx_power_w=0.1",
        f'schemes=[{{name="c", protocol="edge_only", d2d="consensus", consensus_steps={steps}}}]']))  # fmt: skip
    events = run_scenario(scenario, None, progress=False).table("events")
    broadcasts = messages(events, "d2d")
    assert sorted(broadcasts["node"].tolist()) == sorted([0, 1, 2, 3] * steps)
    received = messages(events, "d2d", "rx")  # rx rows carry the sender as peer: one per (sender, receiver, step)
    assert len(received) == 2 * 3 * steps  # the path has 3 links, each heard both ways
    assert {(int(m["peer"]), int(m["node"])) for m in received} == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)}
    assert len(messages(events, "uplink")) == 1


def test_consensus_model_is_the_ratio_consensus_mix_and_converges_geometrically() -> None:
    scenario = load_scenario("small", line_of_four(["training.local_steps=3"]))
    setup = Setup.from_scenario(scenario)
    learner = setup.learner
    learner.reset()
    start = learner.initial_update()
    devices = [learner.train(j, start) for j in range(4)]  # what the run's devices compute in round 1
    learner.reset()
    n = np.array([d.n_samples for d in devices], dtype=float)
    x = torch.stack([flat(d.state) for d in devices])
    mean = flat(final_state(setup, SchemeConfig(name="relay", protocol="edge_only", d2d="relay")))
    torch.testing.assert_close(mean, torch.tensor(n) @ x / n.sum(), rtol=1e-5, atol=1e-6)
    # max-degree weights on the path 0-1-2-3: W = I − L/(Δ+1), Δ = 2
    laplacian = np.diag([1.0, 2.0, 2.0, 1.0]) - (np.eye(4, k=1) + np.eye(4, k=-1))
    w = np.eye(4) - laplacian / 3.0
    rate = sorted(np.abs(np.linalg.eigvalsh(w)))[-2]  # second-largest eigenvalue modulus, 1 − (2 − √2)/3
    assert rate == pytest.approx(1 - (2 - np.sqrt(2)) / 3)
    spread = float(torch.linalg.norm(x - mean, dim=1).max())
    errors = []
    for k in (1, 2, 4, 8, 16):
        result = RunResult()
        world = setup.simulate(SchemeConfig(name=f"c{k}", protocol="edge_only", d2d="consensus", consensus_steps=k),
                               result.add)  # fmt: skip
        got = flat(world.held_models[0].state)
        (uploader,) = messages(result.table("events"), "uplink")["node"].tolist()
        q = np.linalg.matrix_power(w, k)[uploader] * n
        torch.testing.assert_close(got, torch.tensor(q / q.sum()) @ x, rtol=1e-5, atol=1e-6)
        # ratio consensus: ‖x̂ − x̄‖ ≤ 2ε/(N/4 − ε)·max_j ‖x_j − x̄‖ with ε = max n·√3·rate^k (the row's deviation)
        eps = n.max() * np.sqrt(3) * rate**k
        errors.append(float(torch.linalg.norm(got - mean)))
        if eps < n.sum() / 4:
            assert errors[-1] <= 2 * eps / (n.sum() / 4 - eps) * spread + 1e-5
    assert errors[-1] < 0.05 * errors[0] and errors == sorted(errors, reverse=True)


def test_a_relay_transfer_cut_by_a_closing_contact_falls_back_to_the_uplink() -> None:
    # device 1 starts 10 m from device 0 and walks away at 10 m/s: the 30 m contact closes at t = 2 s
    track = LineTrack(np.array([0.0, 100.0]), np.array([[[100.0, 0.0], [90.0, 0.0]], [[100.0, 0.0], [-910.0, 0.0]]]))
    scenario = load_scenario("small", [
        "training.enabled=false", "rounds=1", "network.payload_bytes=200000000", "d2d.connect_with_mst=false",
        "topology.edge_positions_m=[[100.0, 50.0]]", "topology.device_positions_m=[[100.0, 0.0], [90.0, 0.0]]",
        "uplink.bandwidth_hz=1e9", "downlink.bandwidth_hz=1e9", 'd2d.on_contact_loss="resume"',
    ])  # fmt: skip
    setup = Setup.from_scenario(scenario)
    result = RunResult()
    rngs = (np.random.default_rng(0), np.random.default_rng(1))
    world = World(scenario, setup.layout, setup.device_flops_per_s, setup.learner, rngs, "relay", result.add,
                  WorldInputs(positions=track))  # fmt: skip
    world.env.run(until=world.env.process(scheme_process(world, SchemeConfig(name="relay", protocol="edge_only",
                                                                             d2d="relay"))))  # fmt: skip
    events = result.table("events")
    d2d = events[events["kind"] == KIND["d2d"]]
    assert len(d2d) > 0 and (d2d["outcome"] == FAILED).all()  # the pair never meets again: resume gives up
    np.testing.assert_allclose(d2d["t_start_s"] + d2d["duration_s"], 2.0, rtol=1e-9)
    assert sorted(messages(events, "uplink")["node"].tolist()) == [0, 1]  # head and the cut-off member
