"""The same FedAvg workload in hffm and in Flower's simulation engine: wall time and final accuracy.

    benchmarks/flower_venv.sh [--rounds 5] [--devices 40]     # creates the Flower venv, then runs this

Workload (both sides): the paper preset's model, data and Dirichlet
partition (every device holding every module and modality, experts weighted
by samples like everything else, so hffm's module-wise mean is plain FedAvg), star FedAvg over ``--devices`` clients (all sampled every
round), ``training.local_steps`` AdamW steps at ``training.batch_size`` per
round, weights = sample counts, ``--rounds`` rounds, evaluation of the global
model on the held-out set after the last round. hffm runs its star scheme
(one process; its clock also simulates the network, which costs no training
time); Flower runs a ``ClientApp`` per device on its Ray backend (one CPU
per client) with its ``FedAvg`` strategy and the same local-training and
evaluation functions (:mod:`models`) and the same minibatches (a Flower
client is rebuilt every round, so it replays its device's generator up to the
round). The aggregation differs only in rounding (hffm accumulates in float64,
Flower in float32), which local training amplifies a little.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from models import evaluate, local_train
from models.train import _batches
from sim.learner import TorchLearner, torch_threads
from sim.runner import Setup, run_scenario
from sim.scenario import HeterogeneityConfig, Scenario, load_scenario


def workload(devices: int, rounds: int) -> Scenario:
    scenario = load_scenario("paper", [
        f"rounds={rounds}", f"topology.n_edges={devices // 4}", "topology.devices_per_edge=4",
        'schemes=[{name="star", protocol="star"}]', f"training.eval_every={rounds}", "aggregation.expert_weighting=false",
    ])  # fmt: skip
    return scenario.model_copy(update={"heterogeneity": HeterogeneityConfig()})  # every device holds every module


def run_hffm(scenario: Scenario) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    result = run_scenario(scenario, None, progress=False)
    seconds = time.perf_counter() - start
    metrics = result.table("metrics")
    last = metrics[metrics["round"] == scenario.rounds]
    return seconds, {row["task"].decode(): float(row["accuracy"]) for row in last}


def run_flower(scenario: Scenario) -> tuple[float, dict[str, float]]:
    from flwr.client import ClientApp, NumPyClient
    from flwr.common import Context, ndarrays_to_parameters
    from flwr.server import ServerApp, ServerAppComponents, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.simulation import run_simulation

    start = time.perf_counter()
    setup = Setup.from_scenario(scenario)
    learner = setup.learner
    assert isinstance(learner, TorchLearner)
    names = list(learner.initial_state)
    t = scenario.training
    final: dict[str, float] = {}

    def to_state(arrays: list[np.ndarray]) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(a.copy()) for name, a in zip(names, arrays)}

    class Device(NumPyClient):  # type: ignore[misc]
        def __init__(self, device: int) -> None:
            self.device = device

        def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[list[np.ndarray], int, dict]:
            data = learner._data_steps[self.device][0]
            generator = torch.Generator().manual_seed(learner._device_seeds[self.device])
            for _ in range(int(config["round"]) - 1):  # the minibatches hffm's device drew in earlier rounds
                _batches(len(data), t.local_steps, t.batch_size, generator)
            with torch_threads(1):
                result = local_train(learner.model, to_state(parameters), data, t.local_steps, t.batch_size, t.lr,
                                     generator)  # fmt: skip
            return [result.state[n].numpy() for n in names], result.n_samples, {}

    def client_fn(context: Context) -> Any:
        return Device(int(context.node_config["partition-id"])).to_client()

    def evaluate_fn(server_round: int, parameters: list[np.ndarray], config: dict) -> tuple[float, dict] | None:
        if server_round != scenario.rounds:
            return None
        with torch_threads(1):
            scores = evaluate(learner.model, to_state(parameters), learner.test_data)
        final.update({task: acc for task, (_, acc) in scores.items()})
        return float(sum(loss for loss, _ in scores.values())), {}

    def server_fn(context: Context) -> ServerAppComponents:
        strategy = FedAvg(
            fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=setup.layout.n_devices,
            min_available_clients=setup.layout.n_devices, evaluate_fn=evaluate_fn,
            on_fit_config_fn=lambda r: {"round": r},
            initial_parameters=ndarrays_to_parameters([learner.initial_state[n].numpy() for n in names]),
        )  # fmt: skip
        return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=scenario.rounds))

    run_simulation(
        server_app=ServerApp(server_fn=server_fn), client_app=ClientApp(client_fn=client_fn),
        num_supernodes=setup.layout.n_devices, backend_config={"client_resources": {"num_cpus": 1}},
    )  # fmt: skip
    return time.perf_counter() - start, final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--devices", type=int, default=40)
    args = parser.parse_args()
    scenario = workload(args.devices, args.rounds)
    print(f"{args.devices} devices, {args.rounds} rounds of star FedAvg, {scenario.training.local_steps} local steps "
          f"at batch {scenario.training.batch_size}")  # fmt: skip
    for name, run in (("hffm", run_hffm), ("Flower", run_flower)):
        seconds, accuracy = run(scenario)
        scores = ", ".join(f"{task} {100 * acc:.1f} %" for task, acc in sorted(accuracy.items()))
        print(f"{name:<7} {seconds:7.1f} s wall   final accuracy: {scores}", flush=True)


if __name__ == "__main__":
    main()
