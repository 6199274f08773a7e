"""Hostile scenario input: random TOML text, bytes and overrides give a Scenario or one clear error line.

Through the CLI the same inputs exit 2 with one ``hffm: error:`` line and leave
an existing output file untouched (a scenario that happens to be valid stops
at the existing ``--out`` file, so no simulation runs here).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli import main
from sim.scenario import Scenario, ScenarioError, load_scenario

FUZZ = settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow], database=None)
WORKDIR = Path(tempfile.mkdtemp(prefix="hffm-fuzz-"))
EXISTING = WORKDIR / "existing.h5"
EXISTING.write_bytes(b"keep me")

KNOWN_KEYS = [
    "name", "seed", "rounds", "topology.n_edges", "topology.devices_per_edge", "topology.area_m",
    "topology.edge_positions_m", "topology.device_positions_m", "topology.device_edge",
    "uplink.bandwidth_hz", "uplink.tx_power_dbm", "uplink.pathloss", "uplink.pathloss.model",
    "uplink.pathloss.scenario", "uplink.fading.kind", "uplink.fading.coherence_s", "uplink.rate",
    "downlink.rx_power_w", "backhaul.latency_s", "wan.rate_bps", "compute.device_flops_per_s",
    "model.d_model", "model.n_heads", "model.tasks", "data.dirichlet_alpha", "data.partition_task",
    "training.enabled", "training.local_steps", "network.payload_bytes", "schemes", "schemes.0",
    "schemes.0.protocol", "schemes.1.cloud_period", "schemes.2.name", "faults.dropout_prob",
    "faults.deadline_s", "faults.edge_crashes", "faults.guards.norm_ratio",
]  # fmt: skip


def toml_value() -> st.SearchStrategy[str]:
    scalar = st.one_of(
        st.integers(-(2**70), 2**70).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(_toml_float),
        st.booleans().map(lambda b: str(b).lower()),
        st.text(max_size=12).map(_toml_string),
    )
    listed = st.lists(scalar, max_size=4).map(lambda items: "[" + ", ".join(items) + "]")
    table = st.dictionaries(st.sampled_from(["name", "protocol", "edge", "at_s", "x"]), scalar, max_size=3).map(
        lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}"
    )
    return st.one_of(scalar, listed, table, st.text(max_size=20))


def _toml_float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)


def _toml_string(s: str) -> str:
    return '"' + "".join(c if c.isalnum() or c in " -_." else f"\\u{ord(c):04x}" for c in s if ord(c) < 0x10000) + '"'


def key_path() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=15))


def assert_scenario_or_one_line(source: str, overrides: list[str]) -> None:
    try:
        scenario = load_scenario(source, overrides)
    except ScenarioError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
    else:
        assert isinstance(scenario, Scenario)


def assert_cli_exits_2_or_stops_at_existing_output(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", *argv, "--out", str(EXISTING), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hffm: error:") and "\n" not in err, err
    assert EXISTING.read_bytes() == b"keep me"


@FUZZ
@given(st.lists(st.tuples(key_path(), toml_value()), max_size=4))
def test_random_overrides_of_a_preset(assignments: list[tuple[str, str]]) -> None:
    assert_scenario_or_one_line("small", [f"{k}={v}" for k, v in assignments])


@FUZZ
@given(st.lists(st.text(max_size=30), max_size=3))
def test_random_override_strings(overrides: list[str]) -> None:
    assert_scenario_or_one_line("small", overrides)


@FUZZ
@given(st.text(max_size=300))
def test_random_toml_text(text: str) -> None:
    path = WORKDIR / "random.toml"
    path.write_text(text, encoding="utf-8")
    assert_scenario_or_one_line(str(path), [])


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_as_scenario_file(data: bytes) -> None:
    path = WORKDIR / "bytes.toml"
    path.write_bytes(data)
    assert_scenario_or_one_line(str(path), [])


def _small_preset_text() -> str:
    from importlib import resources

    return resources.files("sim.presets").joinpath("small.toml").read_text()


@FUZZ
@given(st.data())
def test_mutated_preset_text(data: st.DataObject) -> None:
    lines = _small_preset_text().splitlines()
    k = data.draw(st.integers(0, len(lines) - 1))
    action = data.draw(st.sampled_from(["drop", "replace", "duplicate", "truncate"]))
    if action == "drop":
        del lines[k]
    elif action == "replace":
        lines[k] = f"{lines[k].split('=')[0]}= {data.draw(toml_value())}" if "=" in lines[k] else data.draw(st.text())
    elif action == "duplicate":
        lines.insert(k, lines[k])
    else:
        cut = data.draw(st.integers(0, len(lines[k])))
        lines = lines[:k] + [lines[k][:cut]]
    path = WORKDIR / "mutated.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    assert_scenario_or_one_line(str(path), [])


def test_pathological_files(tmp_path: Path) -> None:
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000)
    undecodable = tmp_path / "latin1.toml"
    undecodable.write_bytes("name = \"caf\xe9\"".encode("latin-1"))
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    for path in (deep, undecodable, folder, tmp_path / "missing.toml"):
        assert_scenario_or_one_line(str(path), [])


@settings(max_examples=25, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None)
@given(st.one_of(st.binary(max_size=120), st.text(max_size=120).map(lambda s: s.encode("utf-8", "surrogatepass"))),
       st.lists(st.tuples(key_path(), toml_value()), max_size=2))  # fmt: skip
def test_cli_on_hostile_scenarios(capsys: pytest.CaptureFixture[str], data: bytes, assignments: list) -> None:
    path = WORKDIR / "cli.toml"
    path.write_bytes(data)
    argv = [str(path)]
    for k, v in assignments:
        argv += ["--set", f"{k}={v}"]
    assert_cli_exits_2_or_stops_at_existing_output(argv, capsys)
    assert_cli_exits_2_or_stops_at_existing_output(["small", *argv[1:]], capsys)
