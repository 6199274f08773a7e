"""Sweeps: grid × repeats, resume after interruption, CI from seeded repeats, determinism."""

from __future__ import annotations

import csv

import h5py
import pytest

import sim.sweep as sweep
from sim.scenario import ScenarioError

BASE = ["training.enabled=false", "rounds=2", "network.payload_bytes=200000"]
GRID = {"uplink.tx_power_dbm": ["10", "23"]}


def read_rows(path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_grid_points_cover_the_product_with_seeded_repeats() -> None:
    points = sweep.grid_points({"a": ["1", "2"], "b": ["x"]}, repeats=3, base_seed=10)
    assert len(points) == 6
    assert [p.seed for p in points[:3]] == [10, 11, 12]
    assert len({p.name for p in points}) == 6


def test_bad_grid_is_a_clear_error() -> None:
    with pytest.raises(ScenarioError, match="key=v1,v2"):
        sweep.parse_grid(["novalues"])
    with pytest.raises(ScenarioError, match="unknown key 'uplink.nope'"):
        sweep.run_sweep("small", BASE, {"uplink.nope": ["1"]}, "unused", progress=False)


def test_sweep_summary_resume_and_determinism(tmp_path, monkeypatch) -> None:
    out = tmp_path / "a"
    summary = sweep.run_sweep("small", BASE, GRID, out, repeats=2, progress=False)
    rows = read_rows(summary)
    assert {(r["uplink.tx_power_dbm"], r["scheme"]) for r in rows} == {
        (p, s) for p in ("10", "23") for s in ("star", "edge-only", "hier-E2")
    }
    edge_10 = next(r for r in rows if r["uplink.tx_power_dbm"] == "10" and r["scheme"] == "edge-only")
    edge_23 = next(r for r in rows if r["uplink.tx_power_dbm"] == "23" and r["scheme"] == "edge-only")
    assert edge_10["repeats"] == "2"
    assert float(edge_10["latency_s_ci95"]) > 0  # different seeds -> different layouts
    assert float(edge_23["latency_s_mean"]) < float(edge_10["latency_s_mean"])  # more power, faster uplink

    # interrupt: one point missing, one left incomplete; a rerun runs exactly those two
    files = sorted(out.glob("*.h5"))
    files[0].unlink()
    with h5py.File(files[1], "a") as f:
        f["meta"].attrs["status"] = "running"
    calls: list[str] = []
    real = sweep._run_point
    monkeypatch.setattr(sweep, "_run_point", lambda *a: calls.append(a[2]) or real(*a))
    sweep.run_sweep("small", BASE, GRID, out, repeats=2, progress=False)
    assert sorted(calls) == sorted(str(f) for f in files[:2])
    assert read_rows(out / "summary.csv") == rows

    # same seeds in a new directory, in parallel workers: the same rows
    monkeypatch.undo()
    again = sweep.run_sweep("small", BASE, GRID, tmp_path / "b", repeats=2, jobs=2, progress=False)
    assert read_rows(again) == rows
