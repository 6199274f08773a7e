"""Where the run time of a scenario goes: torch training steps vs everything else.

    .venv/bin/python benchmarks/overhead.py [PRESET] [--set key=value ...]

Times, with a host clock (host time is a performance figure only, never a
simulated quantity): the local training steps (``local_train`` and, with
``training.batch_clients``, ``batched_local_train`` as the learner calls
them), FLOP counting (one counted step per device configuration), held-out
evaluation as the simulation sees it (handing states to the background
worker, :mod:`sim.eval_worker`, and waiting for results where a run must
have them: before checkpoints and at its end; the evaluations themselves run
in the worker, on the core training leaves idle) and aggregation maths. Prints the share of run time spent outside
training steps, and the share of the simulator proper (SimPy, media,
logging, recording, setup) once those parts are removed too.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from sim import learner
from sim.eval_worker import PendingEvaluation
from sim.learner import TorchLearner
from sim.runner import run_scenario
from sim.scenario import load_scenario
from timing import timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="paper")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    scenario = load_scenario(args.scenario, args.overrides)
    spent: dict[str, float] = defaultdict(float)
    for name in ("local_train", "batched_local_train"):  # the training steps, as sim.learner calls them
        setattr(learner, name, timed(spent, "train", getattr(learner, name)))
    learner.train_step_flops = timed(spent, "flop counting", learner.train_step_flops)
    for name in ("aggregate", "evaluate"):
        setattr(TorchLearner, name, timed(spent, name, getattr(TorchLearner, name)))
    for name in ("wait", "result"):
        setattr(PendingEvaluation, name, timed(spent, "evaluate", getattr(PendingEvaluation, name)))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_scenario(scenario, Path(tmp) / "run.h5", progress=False)
        total = time.perf_counter() - start
    simulator = total - sum(spent.values())
    print(f"scenario {scenario.name}: {len(scenario.schemes)} schemes x {scenario.rounds} rounds")
    print(f"total run time            {total:8.2f} s")
    for name in ("train", "evaluate", "aggregate", "flop counting"):
        print(f"  {name:<24}{spent[name]:8.2f} s  ({100 * spent[name] / total:5.1f} %)")
    print(f"  simulator + setup       {simulator:8.2f} s  ({100 * simulator / total:5.1f} %)")
    print(f"outside training steps: {100 * (total - spent['train']) / total:.1f} % of run time")
    print(f"simulator proper (SimPy, media, logging, HDF5, setup): {100 * simulator / total:.1f} %")


if __name__ == "__main__":
    main()
