"""--backend ray: local training as Ray tasks gives the local backend's metrics; clear errors otherwise."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from sim.backends import BackendError, learner_factory
from sim.cli import main
from sim.runner import run_scenario
from sim.scenario import load_scenario

OVERRIDES = ["rounds=2", 'schemes=[{name="star", protocol="star"}, {name="h2", protocol="hierarchical", cloud_period=2}]']


def test_unknown_backend_and_stray_address_are_refused() -> None:
    with pytest.raises(BackendError, match="unknown backend"):
        learner_factory("spark")
    with pytest.raises(BackendError, match="--ray-address needs --backend ray"):
        learner_factory("local", "10.0.0.1:6379")


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed")
def test_ray_backend_without_ray_is_one_clear_error(tmp_path, capsys) -> None:
    assert main(["run", "small", "--out", str(tmp_path / "run.h5"), "--backend", "ray", "--quiet"]) == 2
    assert 'pip install "hffm[ray]"' in capsys.readouterr().err
    assert not (tmp_path / "run.h5").exists()


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install 'hffm[ray]')")
def test_ray_backend_gives_the_local_metrics(tmp_path) -> None:
    import ray

    scenario = load_scenario("small", OVERRIDES)
    local = run_scenario(scenario, None, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_scenario(scenario, None, progress=False, trainer=learner_factory("ray"))
    finally:
        ray.shutdown()
    for table in ("events", "rounds", "metrics"):
        np.testing.assert_array_equal(remote.table(table), local.table(table))
    assert len(local.table("metrics")) > 0
