"""``hffm`` command line: run scenarios, report runs, list presets.

    hffm run PRESET_OR_TOML [--set key=value ...] [--trace traces.h5] --out run.h5 [--force] [--quiet]
             [--checkpoint-every N]
    hffm run --resume run.h5 [--quiet]
    hffm report run.h5 [--plot run.png] [--force]
    hffm sweep PRESET_OR_TOML --grid key=v1,v2 [--grid ...] --out DIR [--repeats R] [--jobs N]
    hffm plot SWEEP_DIR_OR_SUMMARY_CSV --x KEY [--out sweep.png] [--log-x] [--force]
    hffm import one|bonnmotion|sumo|csv SRC --out traces.h5 [--force]
    hffm presets

A user mistake (bad scenario, unknown preset, existing output, unreadable run
file) prints one line ``hffm: error: ...`` and exits with status 2; existing
files are never overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sim.radio import ReplayMismatchError
from sim.scenario import Scenario, ScenarioError, load_scenario, preset_names, scenario_from_dict
from traces import OutputExistsError, RunFileError
from traces.recorder import temp_beside
from traces.importers import IMPORTERS, TraceFormatError

if TYPE_CHECKING:
    from sim.learner import TorchLearner

USAGE_ERROR = 2


class UsageError(Exception):
    """A mistake in the command line or its inputs."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hffm", description="Hierarchical federated foundation model co-simulator")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario and record it to HDF5")
    run.add_argument("scenario", nargs="?", help="preset name (see `hffm presets`) or path to a .toml file")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a scenario key, e.g. --set uplink.bandwidth_hz=2e6 (repeatable)")  # fmt: skip
    run.add_argument("--out", help="output HDF5 file")
    run.add_argument("--force", action="store_true", help="replace an existing output file")
    run.add_argument("--checkpoint-every", type=int, metavar="N",
                     help="save OUT.ckpt at round barriers N rounds apart and after each scheme (for --resume)")
    run.add_argument("--resume", metavar="RUN", help="continue the run RUN (killed or interrupted) from RUN.ckpt")
    run.add_argument("--trace", help="trace or run file whose positions, availability and channel gains drive the run")
    run.add_argument("--quiet", action="store_true", help="no progress bars, no table")
    run.add_argument("--backend", choices=("local", "ray"), default="local",
                     help="where local training runs: this process, or Ray tasks (pip install 'hffm[ray]')")
    run.add_argument("--ray-address", metavar="HOST:PORT", help="a running Ray cluster (default: start a local one)")
    report = sub.add_parser("report", help="print a run's results table and plot accuracy vs simulated time")
    report.add_argument("run", help="HDF5 run file")
    report.add_argument("--plot", help="PNG to write (default: the run file with .png)")
    report.add_argument("--force", action="store_true", help="replace an existing PNG")
    sweep = sub.add_parser("sweep", help="run a grid of overrides x seeded repeats, one HDF5 per point, CSV summary")
    sweep.add_argument("scenario", help="preset name or .toml file")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...", help="a swept key (repeatable)")
    sweep.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="a fixed override for every point (repeatable)")  # fmt: skip
    sweep.add_argument("--out", required=True, help="directory of the runs and summary.csv")
    sweep.add_argument("--repeats", type=int, default=1, help="seeds per point: seed, seed+1, ...")
    sweep.add_argument("--jobs", type=int, default=1, help="worker processes")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    plot = sub.add_parser("plot", help="plot a sweep summary: latency and energy per round vs a swept key")
    plot.add_argument("summary", help="sweep directory or its summary.csv")
    plot.add_argument("--x", required=True, help="the swept key on the x-axis")
    plot.add_argument("--out", help="PNG to write (default: beside the summary, named after the key)")
    plot.add_argument("--log-x", action="store_true", help="logarithmic x-axis")
    plot.add_argument("--force", action="store_true", help="replace an existing PNG")
    imp = sub.add_parser("import", help="convert a mobility or contact trace into an hffm trace file")
    imp.add_argument("format", choices=sorted(IMPORTERS), help="format of SRC (see docs/trace-format.md)")
    imp.add_argument("src", help="file to import")
    imp.add_argument("--out", required=True, help="trace file to write (HDF5)")
    imp.add_argument("--force", action="store_true", help="replace an existing output file")
    sub.add_parser("presets", help="list the shipped scenario presets")
    return parser


def _check_new_file(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise UsageError(f"{path} exists; pass --force to replace it")
    if not path.parent.is_dir():
        raise UsageError(f"output directory {path.parent} does not exist")


def _cmd_run(args: argparse.Namespace) -> None:
    from sim.report import format_table, summarize
    from traces import read_run

    scenario, out = _resume(args) if args.resume is not None else _run_new(args)
    if not args.quiet:
        print(f"scenario {scenario.name}, seed {scenario.seed}, {scenario.rounds} rounds -> {out}")
        print(format_table(summarize(read_run(out))))


def _run_new(args: argparse.Namespace) -> tuple[Scenario, Path]:
    from sim.runner import run_scenario

    if args.scenario is None or args.out is None:
        raise UsageError("run needs a preset or scenario file and --out (or --resume RUN)")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every must be at least 1, got {args.checkpoint_every}")
    scenario = load_scenario(args.scenario, args.overrides)
    out = Path(args.out)
    _check_new_file(out, args.force)
    trainer = _trainer(args)
    existed = out.exists()
    try:
        run_scenario(scenario, out, force=args.force, progress=not args.quiet, trace=args.trace,
                     checkpoint_every=args.checkpoint_every, trainer=trainer)  # fmt: skip
    except ReplayMismatchError:
        if not existed:  # a run that does not fit its trace is worthless: leave nothing behind
            out.unlink(missing_ok=True)
        raise
    return scenario, out


def _trainer(args: argparse.Namespace) -> Callable[..., TorchLearner]:
    """The training learner of ``--backend`` / ``--ray-address``."""
    from sim.backends import BackendError, learner_factory

    try:
        return learner_factory(args.backend, args.ray_address)
    except BackendError as exc:
        raise UsageError(str(exc)) from exc


def _resume(args: argparse.Namespace) -> tuple[Scenario, Path]:
    """Continue a checkpointed run (its scenario, trace and checkpoint interval come from the checkpoint)."""
    from sim.checkpoint import CheckpointError, checkpoint_path, read_checkpoint
    from sim.runner import run_scenario
    from traces import read_run

    given = [name for name, value in (("a scenario", args.scenario), ("--set", args.overrides), ("--out", args.out),
                                      ("--trace", args.trace), ("--checkpoint-every", args.checkpoint_every)) if value]
    if given:
        raise UsageError(f"--resume takes the run file only, not {', '.join(given)} (they come from its checkpoint)")
    out = Path(args.resume)
    checkpoint = read_checkpoint(checkpoint_path(out))
    for stale in out.parent.glob(f".{out.name}.*.part"):  # replacements a killed run left half-written
        stale.unlink()
    if out.exists():
        run = read_run(out)
        if run.meta.get("scenario") != checkpoint.scenario:
            raise CheckpointError(f"{checkpoint_path(out)} belongs to another run than {out}")
    scenario = scenario_from_dict(checkpoint.scenario)
    run_scenario(scenario, out, force=True, progress=not args.quiet, trace=checkpoint.trace, resume=checkpoint,
                 trainer=_trainer(args))  # fmt: skip
    return scenario, out


def _cmd_import(args: argparse.Namespace) -> None:
    from traces import write_trace

    src, out = Path(args.src), Path(args.out)
    _check_new_file(out, args.force)
    traces = IMPORTERS[args.format](src)
    write_trace(out, traces, meta={"source": f"{args.format}:{src.name}"}, force=args.force)
    if traces.mobility is not None:
        m = traces.mobility
        print(f"{src}: {m.n_nodes} nodes, {len(m.times_s)} sample times in [{m.times_s[0]:g}, {m.times_s[-1]:g}] s -> {out}")
    else:
        nodes = len(set(traces.contacts["a"]) | set(traces.contacts["b"]))
        print(f"{src}: {len(traces.contacts)} contacts between {nodes} nodes -> {out}")


def _write_png(draw: Callable[[str], None], path: Path) -> None:
    """Draw into a temporary PNG beside ``path`` and rename it into place."""
    tmp = temp_beside(path, suffix=".png")
    try:
        draw(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _cmd_plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim import plots
    from sim.sweep import SUMMARY_FILE

    summary = Path(args.summary)
    if summary.is_dir():
        summary = summary / SUMMARY_FILE
    if not summary.is_file():
        raise UsageError(f"{summary} does not exist (run `hffm sweep` first)")
    rows = plots.read_summary(summary)
    columns = list(rows[0]) if rows else ["scheme"]
    swept = columns[: columns.index("scheme")]
    if args.x not in swept:
        raise UsageError(f"{summary} has no swept key {args.x!r}; swept keys: {', '.join(swept) or 'none'}")
    out = Path(args.out) if args.out else summary.with_name(f"{args.x}.png")
    _check_new_file(out, args.force)

    def draw(path: str) -> None:
        fig, axes = plots.figure(1, 2, width_in=5)
        plots.sweep_lines(rows, args.x, axes, log_x=args.log_x)
        fig.savefig(path, dpi=120)
        plt.close(fig)

    _write_png(draw, out)
    print(f"plot: {out}")


def _cmd_report(args: argparse.Namespace) -> None:
    from sim.report import format_accuracy_timeline, format_table, plot_run, summarize
    from traces import read_run

    run = read_run(args.run)
    plot = Path(args.plot) if args.plot else Path(args.run).with_suffix(".png")
    _check_new_file(plot, args.force)
    status = "" if run.complete else "  (incomplete run: the rounds recorded before it stopped)"
    print(f"{run.path}: scenario {run.meta['scenario'].get('name')}, seed {run.meta.get('seed')}{status}")
    print(format_table(summarize(run)))
    print("\naccuracy per task over simulated time")
    print(format_accuracy_timeline(run))
    _write_png(lambda tmp: plot_run(run, tmp), plot)
    print(f"plot: {plot}")


def _cmd_sweep(args: argparse.Namespace) -> None:
    from sim.sweep import parse_grid, run_sweep

    summary = run_sweep(
        args.scenario, args.overrides, parse_grid(args.grid), args.out, args.repeats, args.jobs, not args.quiet
    )
    print(f"summary: {summary}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hffm`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            _cmd_run(args)
        elif args.command == "report":
            _cmd_report(args)
        elif args.command == "sweep":
            _cmd_sweep(args)
        elif args.command == "plot":
            _cmd_plot(args)
        elif args.command == "import":
            _cmd_import(args)
        else:
            print("\n".join(preset_names()))
    except (ScenarioError, UsageError, OutputExistsError, RunFileError, ReplayMismatchError, TraceFormatError) as exc:
        print(f"hffm: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
