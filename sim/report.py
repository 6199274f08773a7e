"""Results tables and figures from a run file (what ``hffm report`` prints and draws).

Example::

    from traces import read_run
    from sim.report import summarize, format_table, plot_run
    run = read_run("runs/paper.h5")
    print(format_table(summarize(run)))
    plot_run(run, "runs/paper.png")
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from traces import CATEGORIES, RunData


@dataclass(frozen=True)
class SchemeSummary:
    """Per-round averages and final accuracy of one scheme."""

    scheme: str
    rounds: int
    sim_time_s: float
    latency_s: float
    energy_j: float
    energy_by_category_j: dict[str, float]
    bytes_up: float
    bytes_down: float
    final_accuracy: dict[str, float]


def summarize(run: RunData) -> list[SchemeSummary]:
    """One summary per scheme (schemes with no completed round are left out)."""
    summaries = []
    for scheme in run.schemes:
        rounds = run.scheme_rows("rounds", scheme)
        if len(rounds) == 0:
            continue
        metrics = run.scheme_rows("metrics", scheme)
        last = metrics[metrics["round"] == metrics["round"].max()] if len(metrics) else metrics
        summaries.append(
            SchemeSummary(
                scheme=scheme,
                rounds=len(rounds),
                sim_time_s=float(rounds["t_end_s"].max()),
                latency_s=float(rounds["latency_s"].mean()),
                energy_j=float(rounds["energy_total_j"].mean()),
                energy_by_category_j={c: float(rounds[f"energy_{c}_j"].mean()) for c in CATEGORIES},
                bytes_up=float(rounds["bytes_up"].mean()),
                bytes_down=float(rounds["bytes_down"].mean()),
                final_accuracy={t.decode(): float(a) for t, a in zip(last["task"], last["accuracy"])},
            )
        )
    return summaries


def format_table(summaries: list[SchemeSummary]) -> str:
    """A plain-text table: per-round latency (s), energy (J) by kind, MB up/down, final accuracy (%)."""
    tasks = sorted({t for s in summaries for t in s.final_accuracy})
    header = (
        ["scheme", "rounds", "latency/round s", "energy/round J"]
        + [f"{c} J" for c in CATEGORIES]
        + ["MB up/round", "MB down/round"]
        + [f"acc {t} %" for t in tasks]
    )
    rows = [header]
    for s in summaries:
        rows.append(
            [s.scheme, str(s.rounds), f"{s.latency_s:.3f}", f"{s.energy_j:.2f}"]
            + [f"{s.energy_by_category_j[c]:.2f}" for c in CATEGORIES]
            + [f"{s.bytes_up / 1e6:.3f}", f"{s.bytes_down / 1e6:.3f}"]
            + [f"{100 * s.final_accuracy[t]:.1f}" if t in s.final_accuracy else "-" for t in tasks]
        )
    return _align(rows)


def format_accuracy_timeline(run: RunData, rows_per_scheme: int = 5) -> str:
    """Accuracy per task against simulated time: for each scheme, ``rows_per_scheme`` evaluations evenly spread.

    Scores are accuracies in % (R² × 100 for a regression task such as ``size``).
    """
    tasks = sorted({t.decode() for t in run.metrics["task"]})
    header = ["scheme", "round", "time s"] + [f"{t} %" for t in tasks]
    rows = [header]
    for scheme in run.schemes:
        metrics = run.scheme_rows("metrics", scheme)
        evaluated = np.unique(metrics["round"])
        if len(evaluated) == 0:
            continue
        picks = evaluated[np.unique(np.linspace(0, len(evaluated) - 1, rows_per_scheme).round().astype(int))]
        for r in picks:
            at = metrics[metrics["round"] == r]
            score = {t.decode(): a for t, a in zip(at["task"], at["accuracy"])}
            rows.append([scheme, str(r), f"{at['time_s'][0]:.2f}"]
                        + [f"{100 * score[t]:.1f}" if t in score else "-" for t in tasks])  # fmt: skip
    if len(rows) == 1:
        return "(no accuracy recorded: network-only run)"
    return _align(rows)


def _align(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell (first column left-aligned), a rule under the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_run(run: RunData, path: str | os.PathLike[str]) -> None:
    """PNG: accuracy per task vs simulated wall-clock per scheme, and energy per round by kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim import plots

    tasks = sorted({t.decode() for t in run.metrics["task"]})
    fig, axes = plots.figure(1, len(tasks) + 1)
    for ax, task in zip(axes, tasks):
        plots.accuracy_vs_time(run, task, ax)
    plots.energy_breakdown(run, axes[-1])
    fig.savefig(path, dpi=120)
    plt.close(fig)
