"""Parameter sweeps: a grid of overrides × seeded repeats, one HDF5 run per point, a CSV summary.

    hffm sweep paper --grid uplink.bandwidth_hz=1e6,4e6 --grid rounds=4 --repeats 3 --out runs/bw --jobs 2

Points already complete in ``--out`` are skipped, so an interrupted sweep
resumes where it stopped. Repeat ``r`` uses seed ``scenario.seed + r``. The
summary ``summary.csv`` holds, per grid point and scheme, the mean and the 95 %
confidence half-width (Student t over the repeats) of every metric.

Example::

    >>> points = grid_points({"rounds": ["2", "4"], "uplink.tx_power_dbm": ["20"]}, repeats=2, base_seed=7)
    >>> [p.name for p in points][:2]
    ['rounds=2__uplink.tx_power_dbm=20__seed=7', 'rounds=2__uplink.tx_power_dbm=20__seed=8']
"""

from __future__ import annotations

import csv
import itertools
import math
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from scipy import stats
from tqdm import tqdm

from sim.report import summarize
from sim.scenario import ScenarioError, load_scenario
from traces import RunFileError, read_run

SUMMARY_FILE = "summary.csv"


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: its grid assignment and seed."""

    assignments: tuple[tuple[str, str], ...]
    seed: int

    @property
    def name(self) -> str:
        parts = [f"{k}={v}" for k, v in self.assignments] + [f"seed={self.seed}"]
        return re.sub(r"[^A-Za-z0-9_.=+-]", "_", "__".join(parts))

    def overrides(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.assignments] + [f"seed={self.seed}"]


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``["a.b=1,2", "c=x"]`` → ``{"a.b": ["1", "2"], "c": ["x"]}`` (values stay TOML text)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ScenarioError(f"--grid {item!r} is not of the form key=v1,v2,...")
        grid[key] = [v for v in values.split(",") if v]
    return grid


def grid_points(grid: dict[str, list[str]], repeats: int, base_seed: int) -> list[SweepPoint]:
    """The cartesian product of the grid, each point repeated with seeds base_seed + r."""
    keys = list(grid)
    points = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        for r in range(repeats):
            points.append(SweepPoint(tuple(zip(keys, combo)), base_seed + r))
    return points


def _run_point(source: str, overrides: list[str], path: str, threads: int) -> str:
    import torch

    from sim.runner import run_scenario

    torch.set_num_threads(threads)
    run_scenario(load_scenario(source, overrides), path, force=True, progress=False)
    return path


def _is_complete(path: Path) -> bool:
    try:
        return read_run(path).complete
    except RunFileError:
        return False


def run_sweep(
    source: str,
    base_overrides: Sequence[str],
    grid: dict[str, list[str]],
    out_dir: str | Path,
    repeats: int = 1,
    jobs: int = 1,
    progress: bool = True,
) -> Path:
    """Run the missing points of the sweep in ``jobs`` worker processes; write and return the summary CSV."""
    if repeats < 1 or jobs < 1:
        raise ScenarioError("--repeats and --jobs must be at least 1")
    base = load_scenario(source, base_overrides)
    points = grid_points(grid, repeats, base.seed)
    for point in points:  # validate every point before running any
        load_scenario(source, [*base_overrides, *point.overrides()])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo = [p for p in points if not _is_complete(out / f"{p.name}.h5")]
    threads = 1 if jobs > 1 else 2
    with tqdm(total=len(points), initial=len(points) - len(todo), desc="sweep", unit="run", disable=not progress) as bar:
        if jobs == 1:
            for p in todo:
                _run_point(source, [*base_overrides, *p.overrides()], str(out / f"{p.name}.h5"), threads)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
                futures = [
                    pool.submit(_run_point, source, [*base_overrides, *p.overrides()], str(out / f"{p.name}.h5"), threads)
                    for p in todo
                ]
                for future in as_completed(futures):
                    future.result()
                    bar.update()
    return write_summary(points, out)


def _mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and 95 % half-width t_{0.975, n-1}·s/√n (0 for a single value)."""
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        return float(a.mean()), 0.0
    half = stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a))
    return float(a.mean()), float(half)


def write_summary(points: Sequence[SweepPoint], out: Path) -> Path:
    """Aggregate the points' runs into ``out/summary.csv`` (mean and 95 % CI per metric)."""
    groups: dict[tuple[tuple[str, str], ...], list[Path]] = {}
    for p in points:
        groups.setdefault(p.assignments, []).append(out / f"{p.name}.h5")
    keys = [k for k, _ in points[0].assignments] if points else []
    rows: list[dict[str, object]] = []
    for assignments, paths in groups.items():
        per_scheme: dict[str, dict[str, list[float]]] = {}
        for path in paths:
            for s in summarize(read_run(path)):
                values = per_scheme.setdefault(s.scheme, {})
                metrics = {"latency_s": s.latency_s, "energy_j": s.energy_j, "sim_time_s": s.sim_time_s}
                metrics |= {f"energy_{c}_j": v for c, v in s.energy_by_category_j.items()}
                metrics |= {f"accuracy_{t}": a for t, a in s.final_accuracy.items()}
                for name, value in metrics.items():
                    values.setdefault(name, []).append(value)
        for scheme, values in per_scheme.items():
            row: dict[str, object] = dict(assignments) | {"scheme": scheme, "repeats": len(paths)}
            for name, series in values.items():
                row[f"{name}_mean"], row[f"{name}_ci95"] = _mean_ci(series)
            rows.append(row)
    columns = keys + ["scheme", "repeats"] + sorted({c for r in rows for c in r} - set(keys) - {"scheme", "repeats"})
    path = out / SUMMARY_FILE
    tmp = path.with_suffix(".csv.part")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return path
