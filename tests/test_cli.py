"""The hffm command line: runs, reports, and bad input exits 2 with one line, touching nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sim.cli import main
from traces import read_run

FAST = ["--set", "training.enabled=false", "--set", "rounds=2", "--quiet"]


def test_run_then_report(tmp_path, capsys) -> None:
    out = tmp_path / "run.h5"
    assert main(["run", "small", "--out", str(out), "--set", "rounds=2"]) == 0
    printed = capsys.readouterr().out
    assert "star" in printed and "hier-E2" in printed and "acc vqa %" in printed
    assert read_run(out).complete
    assert main(["report", str(out)]) == 0
    assert (tmp_path / "run.png").stat().st_size > 10_000
    assert "latency/round s" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "nope", "--out", "{out}"], "unknown preset 'nope'"),
        (["run", "small", "--set", "topology.foo=1", "--out", "{out}"], "unknown key 'topology.foo'"),
        (["run", "small", "--set", "uplink.bandwidth_hz=-5", "--out", "{out}"], "uplink.bandwidth_hz"),
        (["run", "small", "--set", "topology.n_edges=0", "--out", "{out}"], "topology.n_edges"),
        (["run", "small", "--out", "{existing}"], "exists; pass --force"),
        (["report", "{existing}"], "unreadable HDF5 run"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_keeps_files(tmp_path, capsys, argv, message) -> None:
    existing = tmp_path / "existing.h5"
    existing.write_bytes(b"keep me")
    args = [a.format(out=tmp_path / "new.h5", existing=existing) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hffm: error:") and message in err and "\n" not in err
    assert existing.read_bytes() == b"keep me"
    assert not (tmp_path / "new.h5").exists()


def test_force_replaces(tmp_path) -> None:
    out = tmp_path / "run.h5"
    out.write_bytes(b"old")
    assert main(["run", "small", "--out", str(out), "--force", *FAST]) == 0
    assert read_run(out).complete


def test_console_script_and_bad_arguments(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "sim.cli", "presets"], capture_output=True, text=True)
    assert proc.returncode == 0 and "paper" in proc.stdout.split()
    proc = subprocess.run([sys.executable, "-m", "sim.cli", "run"], capture_output=True, text=True)
    assert proc.returncode == 2
