"""training.batch_clients: devices that start training together train in one batch, with the results of one by one."""

from __future__ import annotations

import numpy as np

from sim.runner import RunResult, Setup
from sim.scenario import load_scenario

OVERRIDES = ["rounds=2", 'schemes=[{name="star", protocol="star"}, {name="h2", protocol="hierarchical", cloud_period=2}]']


def run(batch_clients: bool) -> tuple[RunResult, Setup]:
    setup = Setup.from_scenario(load_scenario("small", OVERRIDES + [f"training.batch_clients={str(batch_clients).lower()}"]))
    result = RunResult()
    for scheme in setup.scenario.schemes:
        setup.simulate(scheme, result.add)
    return result, setup


def test_batched_clients_give_the_one_by_one_results(monkeypatch) -> None:
    import sim.learner

    calls: list[int] = []
    original = sim.learner.batched_local_train
    monkeypatch.setattr(sim.learner, "batched_local_train", lambda model, jobs, *a, **k: calls.append(len(jobs))
                        or original(model, jobs, *a, **k))  # fmt: skip
    batched, _ = run(True)
    alone, _ = run(False)
    assert calls and max(calls) > 1  # clients really trained together
    np.testing.assert_array_equal(batched.table("events"), alone.table("events"))  # timing is FLOP-based
    got, expected = batched.table("metrics"), alone.table("metrics")
    np.testing.assert_array_equal(got[["scheme", "round", "task"]], expected[["scheme", "round", "task"]])
    np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-3)
    np.testing.assert_allclose(got["accuracy"], expected["accuracy"], atol=2 / 300)  # a test sample or two may flip
    assert (got["round"] == 2).any()
