"""Figures from run files and sweep summaries (used by ``hffm report`` and the notebooks).

Every function draws on a given matplotlib ``Axes`` (or makes one) and labels
its axes with units. Example::

    from traces import read_run
    from sim import plots
    run = read_run("runs/paper.h5")
    fig, axes = plots.figure(1, 2)
    plots.accuracy_vs_time(run, "vqa", axes[0])
    plots.energy_breakdown(run, axes[1])
    fig.savefig("paper.png")
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.report import summarize
from traces import CATEGORIES, EVENT_KINDS, RunData
from traces.schema import ROLES

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def figure(rows: int, cols: int, width_in: float = 4.3, height_in: float = 3.5) -> tuple[Figure, np.ndarray]:
    """A figure of ``rows × cols`` axes (non-interactive backend when none is set)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(width_in * cols, height_in * rows), constrained_layout=True)
    return fig, np.atleast_1d(axes).ravel()


def accuracy_vs_time(run: RunData, task: str, ax: Axes, schemes: Sequence[str] | None = None) -> None:
    """Held-out accuracy of ``task`` against simulated wall-clock, one line per scheme."""
    for scheme in schemes or run.schemes:
        m = run.scheme_rows("metrics", scheme)
        m = m[m["task"] == task.encode()]
        ax.plot(m["time_s"], 100 * m["accuracy"], marker=".", label=scheme)
    ax.set_title(f"task: {task}")
    ax.set_xlabel("simulated wall-clock (s)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def energy_breakdown(run: RunData, ax: Axes) -> None:
    """Mean energy per round, stacked by kind (uplink, downlink, backhaul, compute), one bar per scheme."""
    summaries = summarize(run)
    bottom = np.zeros(len(summaries))
    for category in CATEGORIES:
        values = np.array([s.energy_by_category_j[category] for s in summaries])
        ax.bar([s.scheme for s in summaries], values, bottom=bottom, label=category)
        bottom += values
    ax.set_title("energy per round")
    ax.set_ylabel("energy (J)")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize=8)


def pareto(points: Sequence[dict[str, float | str]], ax: Axes, x: str = "latency_s", y: str = "energy_j",
           colour: str = "accuracy", colour_label: str = "mean final accuracy (%)") -> None:  # fmt: skip
    """Trade-off scatter of sweep rows (``x`` vs ``y`` coloured by ``colour``), Pareto front drawn.

    Each point is a dict with at least ``x``, ``y``, ``colour`` and ``label``;
    the front is the set of points no other point beats in both ``x`` and ``y``.
    """
    xs = np.array([float(p[x]) for p in points])
    ys = np.array([float(p[y]) for p in points])
    cs = np.array([float(p[colour]) for p in points])
    sc = ax.scatter(xs, ys, c=cs, cmap="viridis")
    for p, xi, yi in zip(points, xs, ys):
        ax.annotate(str(p.get("label", "")), (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
    order = np.lexsort((ys, xs))
    front, best = [], np.inf
    for i in order:
        if ys[i] < best:
            front.append(i)
            best = ys[i]
    ax.plot(xs[front], ys[front], "k--", lw=1, label="Pareto front")
    ax.figure.colorbar(sc, ax=ax, label=colour_label)
    ax.set_xlabel(x.replace("_s", " (s)").replace("_", " "))
    ax.set_ylabel(y.replace("_j", " (J)").replace("_", " "))
    ax.legend(fontsize=8)


_TIMELINE_COLOURS = {
    "compute": "tab:green",
    "uplink": "tab:blue",
    "downlink": "tab:orange",
    "backhaul_up": "tab:purple",
    "backhaul_down": "tab:pink",
    "wan_up": "tab:blue",
    "wan_down": "tab:orange",
    "aggregate": "tab:red",
    "d2d": "tab:cyan",
    "dropout": "tab:gray",
    "edge_crash": "black",
    "cloud_outage": "tab:brown",
    "guard": "tab:olive",
}


def timeline(run: RunData, scheme: str, round_index: int, ax: Axes, max_nodes: int = 40) -> None:
    """Gantt chart of one round: each node's compute, transmissions and aggregations over simulated time."""
    ev = run.scheme_rows("events", scheme)
    # what each node does: local rows, and one tx row per message (its header row; messages log a row per module)
    local, tx = ev["role"] == ROLES.index("local"), ev["role"] == ROLES.index("tx")
    ev = ev[(ev["round"] == round_index) & (local | (tx & (ev["module"] == b"header")))]
    nodes = sorted(set(ev["node"].tolist()))[:max_nodes]
    seen: set[str] = set()
    for row_index, node in enumerate(nodes):
        mine = ev[ev["node"] == node]
        for e in mine:
            kind = EVENT_KINDS[int(e["kind"])]
            label = None if kind in seen else kind
            seen.add(kind)
            ax.broken_barh([(e["t_start_s"], max(e["duration_s"], 1e-9))], (row_index - 0.4, 0.8),
                           color=_TIMELINE_COLOURS[kind], label=label)  # fmt: skip
    ax.set_yticks(range(len(nodes)), [str(n) for n in nodes], fontsize=6)
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("node id")
    ax.set_title(f"{scheme}: round {round_index}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def read_summary(path: str | Path) -> list[dict[str, str]]:
    """Rows of a sweep's ``summary.csv``."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def sweep_lines(rows: Sequence[dict[str, str]], key: str, axes: Sequence[Axes], metrics: Sequence[str] = ("latency_s", "energy_j"),
                log_x: bool = False) -> None:  # fmt: skip
    """Mean ± 95 % CI of each metric against the swept ``key``, one line per scheme, one axes per metric."""
    labels = {"latency_s": "latency per round (s)", "energy_j": "energy per round (J)", "sim_time_s": "simulated time (s)"}
    for scheme in dict.fromkeys(r["scheme"] for r in rows):
        mine = sorted((r for r in rows if r["scheme"] == scheme), key=lambda r: float(r[key]))
        x = [float(r[key]) for r in mine]
        for ax, metric in zip(axes, metrics):
            mean = [float(r[f"{metric}_mean"]) for r in mine]
            ci = [float(r[f"{metric}_ci95"]) for r in mine]
            ax.errorbar(x, mean, yerr=ci, marker="o", capsize=3, label=scheme)
            ax.set_xlabel(key)
            ax.set_ylabel(labels.get(metric, metric.replace("accuracy_", "accuracy ")))
            ax.grid(alpha=0.3)
            if log_x:
                ax.set_xscale("log")
    axes[0].legend(fontsize=8)
