"""Where local training runs: in this process (``local``) or as tasks on a Ray cluster (``ray``).

With ``hffm run --backend ray`` the SimPy clock, the media, aggregation and
evaluation stay in the driver; every device's local training is a Ray task
(:class:`RayLearner`). The world submits a training when the device starts
and collects it when its simulated compute time is over
(:meth:`sim.learner.NetworkOnlyLearner.submit`), so the trainings of devices
that compute at the same time run in parallel on the cluster. A task gets the
model once (object store), the device's data once, the start state and the
device's minibatch generator state, runs :func:`models.train.local_train` on
one thread, and returns the trained modules and the generator's new state:
the metrics equal the local backend's for the same seed
(``tests/test_backends.py``).

A multi-machine cluster (same Python, torch and hffm on every machine)::

    ray start --head --port 6379                       # on the head machine
    ray start --address HEAD_IP:6379                   # on every other machine
    hffm run paper --backend ray --ray-address HEAD_IP:6379 --out runs/paper.h5

Without ``--ray-address`` a local Ray instance with this machine's cores is
started. Ray is an optional dependency: ``pip install "hffm[ray]"``.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from models import local_train
from models.data import M3TData
from sim.learner import TorchLearner, Update
from sim.profiles import DeviceProfile
from sim.scenario import Scenario

BACKENDS = ("local", "ray")


class BackendError(RuntimeError):
    """A backend that cannot be used here (Ray not installed, cluster unreachable)."""


def learner_factory(backend: str, address: str | None = None) -> Callable[..., TorchLearner]:
    """What builds the training learner for ``backend`` (``make_learner``'s ``trainer``).

    Raises:
        BackendError: unknown backend, ``ray`` without Ray installed, or an address without ``ray``.
    """
    if backend == "local":
        if address is not None:
            raise BackendError("--ray-address needs --backend ray")
        return TorchLearner
    if backend == "ray":
        if importlib.util.find_spec("ray") is None:
            raise BackendError('--backend ray needs Ray: pip install "hffm[ray]"')
        return functools.partial(RayLearner, address=address)
    raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


_WORKER_MODELS: dict[str, torch.nn.Module] = {}
"""Models a Ray worker process has fetched, by the driver's key (fetched once, not once per task)."""


def _train_task(
    model_key: str, model_ref: list[Any], state: dict[str, torch.Tensor], data: M3TData, generator_state: torch.Tensor,
    kwargs: dict[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, float], int, float, torch.Tensor]:  # fmt: skip
    """One device's local training on a Ray worker (one torch thread, as the local backend).

    ``model_ref`` is ``[ObjectRef]`` (a list, so Ray does not fetch it for every task).
    """
    import ray

    torch.set_num_threads(1)
    if model_key not in _WORKER_MODELS:
        _WORKER_MODELS[model_key] = ray.get(model_ref[0])
    model = _WORKER_MODELS[model_key]
    generator = torch.Generator()
    generator.set_state(generator_state)
    result = local_train(model, state, data, generator=generator, **kwargs)
    return result.state, result.module_weights, result.n_samples, result.mean_loss, generator.get_state()


class RayLearner(TorchLearner):
    """:class:`sim.learner.TorchLearner` whose local trainings are Ray tasks (see the module docstring).

    Args:
        scenario, model, profiles, seeds: as for ``TorchLearner``.
        address: a running cluster (``"HOST:PORT"`` or ``"auto"``); None starts a local instance.
    """

    def __init__(
        self,
        scenario: Scenario,
        model: torch.nn.Module,
        profiles: Sequence[DeviceProfile],
        seeds: np.random.SeedSequence,
        address: str | None = None,
    ) -> None:
        import ray

        super().__init__(scenario, model, profiles, seeds)
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise BackendError(f"cannot reach the Ray cluster at {address!r}: {exc}") from exc
        self._ray = ray
        self._task = ray.remote(num_cpus=1)(_train_task)
        self._model_ref = ray.put(self.model)
        self._model_key = self._model_ref.hex()
        self._data_refs: dict[tuple[int, int], Any] = {}
        self._running: dict[int, Callable[[], Update]] = {}

    def reset(self) -> None:
        super().reset()
        self._running = {}

    def submit(self, device: int, model: Update, r: int = 1) -> Callable[[], Update]:
        """Start the device's training as a Ray task; the returned call waits for it."""
        if device in self._running:  # a training never collected (interrupted): its generator state still counts
            self._running.pop(device)()
        t, step = self._training, self.timelines[device].step(r)
        held = self.held(device, r)
        if (device, step) not in self._data_refs:
            self._data_refs[device, step] = self._ray.put(self._data_steps[device][step])
        kwargs = {
            "steps": t.local_steps, "batch_size": t.batch_size, "lr": t.lr, "modules": held,
            "tasks": self.timelines[device].profiles[step].tasks, "expert_weighting": self._aggregation.expert_weighting,
        }  # fmt: skip
        ref = self._task.remote(self._model_key, [self._model_ref], model.state, self._data_refs[device, step],
                                self._generators[device].get_state(), kwargs)  # fmt: skip
        done: list[Update] = []

        def collect() -> Update:
            if not done:
                state, weights, n_samples, loss, generator_state = self._ray.get(ref)
                self._generators[device].set_state(generator_state)
                done.append(Update(state, {k: float(weights[k]) for k in held}, n_samples, loss))
                if self._running.get(device) is collect:
                    del self._running[device]
            return done[0]

        self._running[device] = collect
        return collect
