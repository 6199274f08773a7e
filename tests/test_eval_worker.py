"""Held-out evaluation in the background worker: the same numbers as in line, rows written in order."""

from __future__ import annotations

import doctest
import pickle
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import torch

import sim.eval_worker
from models.data import make_m3t_dataset
from models.net import ModelConfig, build_model, trainable_state
from models.train import evaluate, local_train
from sim.eval_worker import BackgroundEvaluator, PendingEvaluation
from sim.learner import TorchLearner, Update, torch_threads
from sim.runner import run_scenario
from sim.scenario import load_scenario
from sim.metrics_queue import MetricsQueue
from traces import read_run


def _trained_states(model: torch.nn.Module, n: int) -> list[dict[str, torch.Tensor]]:
    data = make_m3t_dataset(64, seed=3)
    states = [trainable_state(model)]
    for seed in range(n - 1):
        result = local_train(model, states[0], data, steps=4, batch_size=8, lr=3e-3,
                             generator=torch.Generator().manual_seed(seed))  # fmt: skip
        states.append(result.state)
    return states


def test_worker_gives_exactly_the_in_process_metrics() -> None:
    model = build_model(ModelConfig(), seed=0)
    test = make_m3t_dataset(96, seed=7)
    states = _trained_states(model, 3)
    evaluator = BackgroundEvaluator(model, test)
    pending = evaluator.submit(states, combine=lambda results: {str(i): r for i, r in enumerate(results)})
    with torch_threads(1):  # as the learner evaluated in line
        expected = [evaluate(model, s, test) for s in states]
    got = pending.result()
    assert [got[str(i)] for i in range(3)] == expected  # bit for bit
    assert expected[1] != expected[2]  # the states differ, so a mix-up would show


def test_a_state_changed_after_submission_is_evaluated_as_submitted() -> None:
    model = build_model(ModelConfig(), seed=0)
    test = make_m3t_dataset(64, seed=7)
    state = {name: t.clone() for name, t in trainable_state(model).items()}
    expected = evaluate(model, state, test)
    pending = BackgroundEvaluator(model, test).submit([state], combine=lambda results: results[0])
    for t in state.values():
        t.mul_(0.0)  # later training in the caller must not reach the worker's copy
    assert pending.result() == expected


def test_queue_writes_rows_in_submission_order_whatever_finishes_first() -> None:
    written: list[tuple[bytes, int]] = []

    def sink(table: str, rows: np.ndarray) -> None:
        assert table == "metrics"
        written.extend((bytes(row["scheme"]), int(row["round"])) for row in rows)

    futures = [Future(), Future()]
    queue = MetricsQueue(sink)
    for r, future in enumerate(futures):
        queue.add(b"s", r, float(r), PendingEvaluation(future, lambda results: {"shape": results[0]}))
    futures[1].set_result([(0.5, 0.9)])
    queue.add(b"s", 2, 2.0, PendingEvaluation.ready({"vqa": (1.0, 0.1)}))
    assert written == [] and len(queue) == 3  # round 0 holds the line
    futures[0].set_result([(0.7, 0.8)])
    queue.add(b"t", 3, 3.0, PendingEvaluation.ready({}))
    assert written == [(b"s", 0), (b"s", 1), (b"s", 2)] and len(queue) == 0


def test_drain_waits_for_every_pending_evaluation() -> None:
    rows: list[np.ndarray] = []
    queue = MetricsQueue(lambda _table, r: rows.append(r))
    model = build_model(ModelConfig(), seed=1)
    evaluator = BackgroundEvaluator(model, make_m3t_dataset(64, seed=2))
    for r in range(3):
        queue.add(b"s", r, float(r), evaluator.submit([trainable_state(model)], combine=lambda results: results[0]))
    queue.drain()
    assert len(queue) == 0
    table = np.concatenate(rows)
    assert list(table["round"]) == [r for r in range(3) for _ in range(3)]  # three tasks per round, in order
    assert sorted({bytes(t) for t in table["task"]}) == [b"activity", b"shape", b"vqa"]


def test_docstring_example() -> None:
    result = doctest.testmod(sim.eval_worker, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_a_killed_worker_fails_its_pending_calls_and_a_new_one_takes_over() -> None:
    model = build_model(ModelConfig(), seed=0)
    test = make_m3t_dataset(64, seed=7)
    evaluator = BackgroundEvaluator(model, test)
    state = trainable_state(model)
    assert evaluator.submit([state], combine=lambda results: results[0]).result()  # registered and working
    worker = sim.eval_worker._shared_worker()
    pending = evaluator.submit([state] * 200, combine=lambda results: results[0])
    worker._process.kill()
    with pytest.raises(RuntimeError, match="evaluation worker stopped"):
        pending.result()
    again = evaluator.submit([state], combine=lambda results: results[0])  # a fresh worker, the model sent again
    assert sim.eval_worker._shared_worker() is not worker
    with torch_threads(1):
        assert again.result() == evaluate(model, state, test)


def test_a_pickled_evaluator_works_in_the_process_that_unpickles_it() -> None:
    model = build_model(ModelConfig(), seed=0)
    test = make_m3t_dataset(64, seed=7)
    copy = pickle.loads(pickle.dumps(BackgroundEvaluator(model, test)))  # e.g. a learner sent to Ray workers
    state = trainable_state(model)
    with torch_threads(1):
        assert copy.submit([state], combine=lambda results: results[0]).result() == evaluate(model, state, test)


class _InterruptedInRound3(TorchLearner):
    """Ctrl-C as round 3's training starts."""

    def train(self, device: int, model: Update, r: int = 1) -> Update:
        if r == 3:
            raise KeyboardInterrupt
        return super().train(device, model, r)


def test_an_interrupted_run_file_keeps_the_metrics_of_every_closed_round(tmp_path: Path) -> None:
    scenario = load_scenario("small", [
        "rounds=4", "training.local_steps=2", "data.samples_per_device=24", "data.test_samples=60",
        "model.d_model=32", "model.n_layers=1", "model.moe_experts=0", 'schemes=[{name="star", protocol="star"}]',
    ])  # fmt: skip
    full = run_scenario(scenario, None, progress=False).table("metrics")
    out = tmp_path / "run.h5"
    with pytest.raises(KeyboardInterrupt):
        run_scenario(scenario, out, progress=False, trainer=_InterruptedInRound3)
    run = read_run(out)
    assert not run.complete
    closed = full[full["round"] <= 2]  # rounds 0 (the initial model), 1 and 2 closed before the interrupt
    assert len(closed) == 9 and run.metrics.tobytes() == closed.tobytes()
