"""Network-only mode at scale: host seconds vs number of devices, with a linear fit.

    .venv/bin/python benchmarks/scaling.py [--devices 1000 2000 ...] [--rounds 10]
        [--payload-bytes 6000000] [--events-up-to 4000] [--out benchmarks/results]

The paper preset grown at constant density (4 devices per edge, the square's
side growing with √edges), network-only with a fixed payload, keyed fading
and one HierFAVG scheme (E = 2), written to an HDF5 run file. Each point runs
in a fresh process and is timed by part (host time is a performance figure,
never a simulated quantity): the clustered layout, FLOP counting (one counted
training step per device profile), and the rest (the simulation, row
building and HDF5 writing), which should grow linearly. The aggregated engine
runs every size; the event engine the sizes up to ``--events-up-to``.
Writes ``scaling.csv`` and ``scaling.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from timing import timed

DEVICES = (1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000)
FIELDS = ("engine", "devices", "rounds", "total_s", "layout_s", "flop_count_s", "rest_s", "event_rows", "file_mb")


def scenario_overrides(devices: int, rounds: int, payload_bytes: int, engine: str) -> list[str]:
    edges = devices // 4
    return [
        "training.enabled=false",
        f"rounds={rounds}",
        f"network.payload_bytes={payload_bytes}",
        f"topology.n_edges={edges}",
        "topology.devices_per_edge=4",
        f"topology.area_m={5000.0 * (edges / 10) ** 0.5}",  # the paper's 10 edges per 25 km²
        'schemes=[{name="hier-E2", protocol="hierarchical", cloud_period=2}]',
        'uplink.fading.draws="keyed"',
        'downlink.fading.draws="keyed"',
        f'network.engine="{engine}"',
    ]


def measure_one(devices: int, rounds: int, payload_bytes: int, engine: str) -> dict[str, Any]:
    """One timed run in this process."""
    from sim import learner, runner
    from sim.scenario import load_scenario

    spent: dict[str, float] = defaultdict(float)
    runner.clustered_layout = timed(spent, "layout", runner.clustered_layout)
    learner.train_step_flops = timed(spent, "flops", learner.train_step_flops)
    scenario = load_scenario("paper", scenario_overrides(devices, rounds, payload_bytes, engine))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.h5"
        start = time.perf_counter()
        result = runner.run_scenario(scenario, out, progress=False)
        total = time.perf_counter() - start
        size_mb = out.stat().st_size / 1e6
    return {
        "engine": engine,
        "devices": devices,
        "rounds": rounds,
        "total_s": round(total, 3),
        "layout_s": round(spent["layout"], 3),
        "flop_count_s": round(spent["flops"], 3),
        "rest_s": round(total - spent["layout"] - spent["flops"], 3),
        "event_rows": sum(len(rows) for rows in result.tables["events"]),
        "file_mb": round(size_mb, 1),
    }


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")  # fmt: skip
    return f"{os.cpu_count()} cores, {cpu}, load average {os.getloadavg()[0]:.1f} at start"


def plot(rows: list[dict[str, Any]], path: Path) -> str:
    """Seconds vs devices per engine, and the linear fit of the aggregated engine's rest; returns the fit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    fit_text = ""
    for engine, marker in (("aggregated", "o"), ("events", "s")):
        mine = [r for r in rows if r["engine"] == engine]
        if not mine:
            continue
        n = np.array([r["devices"] for r in mine], dtype=float)
        ax.plot(n, [r["total_s"] for r in mine], marker=marker, label=f"{engine} engine: total")
        rest = np.array([r["rest_s"] for r in mine])
        ax.plot(n, rest, marker=marker, linestyle="--", label=f"{engine}: without layout and FLOP counting")
        if engine == "aggregated" and len(mine) >= 2:
            slope, intercept = np.polyfit(n, rest, 1)
            r2 = 1 - np.sum((rest - (slope * n + intercept)) ** 2) / np.sum((rest - rest.mean()) ** 2)
            fit_text = f"rest = {intercept:.2f} s + {1e6 * slope:.1f} µs × devices (R² = {r2:.3f})"
            grid = np.linspace(0, n.max(), 50)
            ax.plot(grid, slope * grid + intercept, color="grey", linewidth=0.8, label="linear fit")
    ax.set_xlabel("devices")
    ax.set_ylabel(f"host seconds ({rows[0]['rounds']} rounds, one scheme)")
    ax.set_title(fit_text, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return fit_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=list(DEVICES))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--payload-bytes", type=int, default=6_000_000)
    parser.add_argument("--events-up-to", type=int, default=4000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--one", nargs=2, metavar=("DEVICES", "ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(int(args.one[0]), args.rounds, args.payload_bytes, args.one[1])))
        return
    print(machine())
    rows = []
    for devices in args.devices:
        for engine in ("aggregated", "events"):
            if engine == "events" and devices > args.events_up_to:
                continue
            command = [sys.executable, __file__, "--one", str(devices), engine, "--rounds", str(args.rounds),
                       "--payload-bytes", str(args.payload_bytes)]  # fmt: skip
            row = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            rows.append(row)
            print(", ".join(f"{k}={row[k]}" for k in FIELDS), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "scaling.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(plot(rows, args.out / "scaling.png"))


if __name__ == "__main__":
    main()
