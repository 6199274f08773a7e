"""Learners: what the protocols call to train, aggregate and evaluate.

:class:`TorchLearner` runs real PyTorch steps (models package); the simulated
duration of local training is its counted FLOPs divided by the device's FLOP/s,
never host time. :class:`NetworkOnlyLearner` keeps the same interface with no
training (fixed payload, same FLOP count), for fast latency/energy what-ifs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from models import (
    M3TData,
    ModelConfig,
    build_model,
    dirichlet_partition,
    evaluate,
    local_train,
    make_m3t_dataset,
    state_nbytes,
    train_step_flops,
    trainable_state,
    weighted_average,
)
from sim.scenario import Scenario

State = dict[str, torch.Tensor] | None
"""A model's trainable tensors (None in network-only mode)."""


@dataclass(frozen=True)
class Update:
    """A device's (or server's) model after local training or aggregation, with its weight."""

    state: State
    n_samples: int
    loss: float = float("nan")


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch intra-op threads, then restore the previous count.

    The model is small: one thread is fastest for training at batch 8 (its
    matmuls are too small to split) and safest for evaluation (two threads
    slow down 4-16x when another process holds the second core).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def model_config(scenario: Scenario) -> ModelConfig:
    spec = scenario.model
    return ModelConfig(
        d_model=spec.d_model,
        n_layers=spec.n_layers,
        n_heads=spec.n_heads,
        lora_rank=spec.lora_rank,
        lora_alpha=spec.lora_alpha,
    )


class NetworkOnlyLearner:
    """No training: updates carry no tensors; payload is fixed or the real model's size.

    Args:
        scenario: the run's scenario.
        model: the built model (used for its size and FLOP count only).
        n_samples: samples per device (the aggregation weights).
    """

    def __init__(self, scenario: Scenario, model: torch.nn.Module, n_samples: Sequence[int]) -> None:
        self.model = model
        self.initial_state: State = None
        self.n_samples = list(n_samples)
        state = trainable_state(model)
        self._payload_bytes = scenario.network.payload_bytes or state_nbytes(state)
        self._parameters = sum(t.numel() for t in state.values())
        self._train_flops = train_step_flops(model, scenario.training.batch_size) * scenario.training.local_steps

    def payload_bytes(self, state: State) -> int:
        """Bytes of the tensors a message carries (header excluded)."""
        return self._payload_bytes

    def parameter_count(self) -> int:
        """Trainable parameters per model (for the aggregation FLOP count)."""
        return self._parameters

    def train_flops(self) -> int:
        """FLOPs of one device's local training in a round (``local_steps`` steps)."""
        return self._train_flops

    def reset(self) -> None:
        """Nothing to reset without training."""

    def train(self, device: int, state: State) -> Update:
        return Update(None, self.n_samples[device])

    def aggregate(self, updates: Sequence[Update]) -> Update:
        return Update(None, sum(u.n_samples for u in updates))

    def evaluate(self, updates: Sequence[Update]) -> dict[str, tuple[float, float]]:
        return {}


class TorchLearner(NetworkOnlyLearner):
    """Real local training of the LoRA multi-modal model on each device's data partition."""

    def __init__(
        self, scenario: Scenario, model: torch.nn.Module, seeds: np.random.SeedSequence, n_devices: int
    ) -> None:
        data_seq, part_seq, torch_seq = seeds.spawn(3)
        data_cfg = scenario.data
        total = n_devices * data_cfg.samples_per_device
        pool = make_m3t_dataset(total + data_cfg.test_samples, _seed_int(data_seq))
        self.test_data: M3TData = pool.subset(np.arange(total, total + data_cfg.test_samples))
        train = pool.subset(np.arange(total))
        labels = train.labels[data_cfg.partition_task].numpy()
        parts = dirichlet_partition(labels, n_devices, data_cfg.dirichlet_alpha, np.random.default_rng(part_seq))
        self.device_data = [train.subset(idx) for idx in parts]
        super().__init__(scenario, model, [len(p) for p in parts])
        self.initial_state = trainable_state(model)
        self._training = scenario.training
        self._device_seeds = [_seed_int(s) for s in torch_seq.spawn(n_devices)]
        self._generators: list[torch.Generator] = []
        self.reset()

    def reset(self) -> None:
        """Restart every device's sampling RNG, so each scheme starts from the same state."""
        self._generators = [torch.Generator().manual_seed(s) for s in self._device_seeds]

    def train(self, device: int, state: State) -> Update:
        t = self._training
        with torch_threads(1):
            result = local_train(
                self.model, state, self.device_data[device], t.local_steps, t.batch_size, t.lr, self._generators[device]
            )
        return Update(result.state, result.n_samples, result.mean_loss)

    def aggregate(self, updates: Sequence[Update]) -> Update:
        """FedAvg weighted by sample count (McMahan et al. 2017)."""
        weights = [float(u.n_samples) for u in updates]
        return Update(weighted_average([u.state for u in updates], weights), int(sum(weights)))

    def evaluate(self, updates: Sequence[Update]) -> dict[str, tuple[float, float]]:
        """Held-out loss and accuracy per task of the models held, weighted by their samples.

        Models shared by several holders (after a cloud round) are evaluated once.
        """
        weight: dict[int, float] = {}
        distinct: dict[int, Update] = {}
        for u in updates:
            distinct.setdefault(id(u.state), u)
            weight[id(u.state)] = weight.get(id(u.state), 0.0) + u.n_samples
        total = sum(weight.values())
        loss_acc: dict[str, np.ndarray] = {}
        for key, u in distinct.items():
            with torch_threads(1):
                results = evaluate(self.model, u.state, self.test_data)
            for task, values in results.items():
                loss_acc[task] = loss_acc.get(task, np.zeros(2)) + weight[key] / total * np.asarray(values)
        return {task: (float(v[0]), float(v[1])) for task, v in loss_acc.items()}


def _seed_int(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1)[0])


def make_learner(scenario: Scenario, seeds: np.random.SeedSequence, n_devices: int) -> NetworkOnlyLearner:
    """The learner the scenario asks for (``training.enabled``), with its model built from the seed."""
    model_seq, data_seqs = seeds.spawn(2)
    model = build_model(model_config(scenario), _seed_int(model_seq))
    if scenario.training.enabled:
        return TorchLearner(scenario, model, data_seqs, n_devices)
    return NetworkOnlyLearner(scenario, model, [scenario.data.samples_per_device] * n_devices)
