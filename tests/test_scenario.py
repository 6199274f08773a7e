"""Scenario schema: presets load, overrides apply, bad input names the key."""

from __future__ import annotations

import pytest

from sim.scenario import ScenarioError, load_scenario, preset_names


def test_presets_are_shipped_and_valid() -> None:
    assert {"paper", "small"} <= set(preset_names())
    for name in preset_names():
        scenario = load_scenario(name)
        assert scenario.name == name


def test_paper_preset_matches_the_prototype() -> None:
    s = load_scenario("paper")
    assert (s.topology.n_edges, s.topology.devices_per_edge, s.topology.area_m) == (10, 4, 5000.0)
    assert s.uplink.tx_power_dbm == 30.0 and s.uplink.bandwidth_hz == 4e6
    assert (s.uplink.pathloss.ref_gain_db, s.uplink.pathloss.exponent) == (-30.0, 3.0)
    assert s.uplink.fading.kind == "rayleigh" and s.uplink.noise_psd_dbm_hz == -174.0
    assert (s.backhaul.latency_s, s.backhaul.rate_bps, s.backhaul.tx_power_w) == (0.1, 4e6, 0.8)
    assert s.data.dirichlet_alpha == 0.1 and s.training.batch_size == 8
    assert [(x.protocol, x.cloud_period, x.d2d) for x in s.schemes] == [
        ("star", 1, "none"), ("edge_only", 1, "none"), ("hierarchical", 2, "none"), ("hierarchical", 8, "none"),
        ("edge_only", 1, "relay"), ("hierarchical", 2, "relay"), ("hierarchical", 8, "relay"),
    ]
    # the prototype's D2D: 0.2 W, 8 MHz, neighbours within 30 m, clusters connected by MST edges
    assert (s.d2d.tx_power_dbm, s.d2d.bandwidth_hz, s.d2d.radius_m, s.d2d.connect_with_mst) == (23.0, 8e6, 30.0, True)


def test_overrides_parse_toml_values_and_list_indices() -> None:
    s = load_scenario("small", ["training.enabled=false", "uplink.bandwidth_hz=2e6", "schemes.0.name=fedavg"])
    assert s.training.enabled is False
    assert s.uplink.bandwidth_hz == 2e6
    assert s.schemes[0].name == "fedavg"


def test_explicit_positions() -> None:
    s = load_scenario(
        "small",
        ["topology.edge_positions_m=[[0.0, 0.0], [500.0, 0.0]]", "topology.device_positions_m=[[10.0, 0.0], [490.0, 0.0]]"],
    )
    assert s.topology.n_devices == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["topology.foo=1"], "unknown key 'topology.foo'"),
        (["uplink.bandwidth_hz=-1"], "uplink.bandwidth_hz: Input should be greater than 0 (got -1)"),
        (["topology.n_edges=0"], "topology.n_edges: Input should be greater than 0 (got 0)"),
        (["topology.devices_per_edge=0"], "topology.devices_per_edge: Input should be greater than 0"),
        (["schemes.5.name=x"], "schemes.5"),
        (["rounds"], "not of the form key=value"),
        (["schemes.1.name=star"], "scheme names must be unique"),
        (["compute.device_flops_per_s=[2e9, 1e9]"], "min <= max"),
        (["uplink.pathloss.model=\"bogus\""], "uplink.pathloss"),
    ],
)
def test_bad_input_names_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario("small", overrides)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ScenarioError, match="unknown preset 'nope'; presets are .*paper"):
        load_scenario("nope")


def test_scenario_file(tmp_path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('name = "mine"\nrounds = 2\n[uplink]\nbandwidth_hz = 1e6\ntx_power_dbm = 20\n'
                    '[downlink]\nbandwidth_hz = 1e6\ntx_power_dbm = 30\n[[schemes]]\nname = "s"\nprotocol = "star"\n')
    assert load_scenario(str(path)).name == "mine"
    path.write_text("rounds = [")
    with pytest.raises(ScenarioError, match="invalid TOML"):
        load_scenario(str(path))
