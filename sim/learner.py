"""Learners: what the protocols call to train, aggregate and evaluate, module by module.

An :class:`Update` is a model or part of one: the tensors of some modules
(by parameter name) and an aggregation weight per module. Devices train and
send only the modules they hold (:mod:`sim.profiles`); servers average each
module over the children that hold it (:func:`models.aggregate_modules`);
modules held by no child pass through unchanged.

:class:`TorchLearner` runs real PyTorch steps; the simulated duration of local
training is its counted FLOPs divided by the device's FLOP/s, never host time.
:class:`NetworkOnlyLearner` keeps the same interface and the same module
bookkeeping with no tensors, for fast latency/energy what-ifs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from models import (
    M3TData,
    ModelConfig,
    ModuleRegistry,
    ModuleUpdate,
    aggregate_modules,
    build_model,
    dirichlet_partition,
    local_train,
    make_m3t_dataset,
    train_step_flops,
)
from models.batched import ClientJob, batch_key, batched_local_train, supports
from models.train import TrainResult
from sim.eval_worker import BackgroundEvaluator, Metrics, PendingEvaluation
from sim.profiles import PAYLOAD_MODULE, DeviceProfile, ModulePlan, profile_timelines
from sim.scenario import Scenario

State = dict[str, torch.Tensor] | None
"""Trainable tensors by parameter name (None in network-only mode)."""


@dataclass(frozen=True)
class Update:
    """Modules a node holds or sends: tensors (None without training) and an aggregation weight per module.

    Attributes:
        state: tensors of the modules, by parameter name.
        weights: module key → aggregation weight (sample counts); its keys are the modules carried.
        n_samples: samples behind this model (the weight of the whole model in evaluation).
        loss: mean local training loss (devices' updates).
    """

    state: State
    weights: Mapping[str, float]
    n_samples: int
    loss: float = float("nan")

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(self.weights)


@dataclass(eq=False)
class _PendingTraining:
    """A submitted local training and, once trained, its result."""

    device: int
    model: Update
    r: int
    update: Update | None = None


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
    """The :class:`models.ModelConfig` of the scenario's ``[model]`` section."""
    spec = scenario.model
    return ModelConfig(
        d_model=spec.d_model,
        n_layers=spec.n_layers,
        n_heads=spec.n_heads,
        lora_rank=spec.lora_rank,
        lora_alpha=spec.lora_alpha,
        modalities=tuple(spec.modalities),
        tasks=tuple(spec.tasks),
        adapters=tuple(spec.adapters),
        adapter_dim=spec.adapter_dim,
        moe_experts=spec.moe_experts,
        moe_top_k=spec.moe_top_k,
        moe_aux_weight=spec.moe_aux_weight,
        text_backbone_dir=spec.text_backbone,
    )


class NetworkOnlyLearner:
    """Module bookkeeping without training: updates carry weights but no tensors.

    Args:
        scenario: the run's scenario.
        model: the built model (for its modules, sizes and FLOP counts only).
        profiles: each device's modalities and tasks in round 1 (later rounds add the scenario's arrivals:
            :func:`sim.profiles.profile_timelines`).
        n_samples: samples per device (the aggregation weights).
    """

    def __init__(
        self, scenario: Scenario, model: torch.nn.Module, profiles: Sequence[DeviceProfile], n_samples: Sequence[int]
    ) -> None:
        self.model = model
        self.registry = ModuleRegistry(model)
        self.plan = ModulePlan(self.registry.keys, scenario.aggregation.rules)
        self.timelines = profile_timelines(scenario, profiles)
        """Each device's profiles over the rounds."""
        self.profiles = [t.at(1) for t in self.timelines]
        """Each device's profile in round 1."""
        self.n_samples = list(n_samples)
        self._training = scenario.training
        self._fixed_payload_bytes = scenario.network.payload_bytes
        self._held_steps = [
            tuple(self.plan.ordered(self.registry.held(p.modalities, p.tasks) & self.plan.trainable) for p in t.profiles)
            for t in self.timelines
        ]
        self._numel = {k: sum(model.get_parameter(name).numel() for name in self.registry.params(k)) for k in self.registry.keys}
        self._flops: dict[tuple[tuple[str, ...], DeviceProfile], int] = {}
        self.initial_state: State = None

    # ------------------------------------------------------------------ bookkeeping
    def held(self, device: int, r: int = 1) -> tuple[str, ...]:
        """The modules ``device`` holds, trains and sends in round ``r`` (registry order)."""
        return self._held_steps[device][self.timelines[device].step(r)]

    @property
    def has_arrivals(self) -> bool:
        """Some device gains a task or modality after round 1 (its held modules change over the rounds)."""
        return any(len(t.starts) > 1 for t in self.timelines)

    def initial_update(self) -> Update:
        """The initial model: every trainable module, weight 0."""
        return Update(self.initial_state, dict.fromkeys(self.plan.ordered(self.plan.trainable), 0.0), 0)

    def message_sizes(self, update: Update) -> list[tuple[str, int]]:
        """(module, bytes) of the tensors a message carrying ``update`` sends (header excluded).

        With ``network.payload_bytes`` set, one ``"model"`` entry of that size stands for any module set.
        """
        if self._fixed_payload_bytes is not None:
            return [(PAYLOAD_MODULE, self._fixed_payload_bytes)] if update.modules else []
        return [(k, self.registry.nbytes(k)) for k in update.modules]

    @property
    def fixed_payload(self) -> bool:
        """Messages have a fixed size (``network.payload_bytes``) instead of their modules' bytes."""
        return self._fixed_payload_bytes is not None

    def parameter_count(self, modules: Iterable[str]) -> int:
        """Parameters of ``modules`` (for the aggregation FLOP count)."""
        return sum(self._numel[k] for k in modules)

    def train_flops(self, device: int, r: int = 1) -> int:
        """FLOPs of the device's local training in round ``r``: ``local_steps`` counted steps of its configuration."""
        profile = self.timelines[device].at(r)
        key = (self.held(device, r), profile)
        if key not in self._flops:
            with torch_threads(1):  # a counted step is tiny: a second thread only waits (0.6 s vs 8 ms when loaded)
                step = train_step_flops(
                    self.model, self._training.batch_size, modules=key[0], modalities=profile.modalities,
                    tasks=profile.tasks,
                )  # fmt: skip
            self._flops[key] = step * self._training.local_steps
        return self._flops[key]

    def restrict(self, update: Update, modules: Iterable[str]) -> Update:
        """The part of ``update`` made of ``modules`` (those it has)."""
        keep = [k for k in self.plan.ordered(modules) if k in update.weights]
        state = None if update.state is None else self.registry.select(update.state, keep)
        return Update(state, {k: update.weights[k] for k in keep}, update.n_samples, update.loss)

    def merge(self, base: Update, received: Update) -> Update:
        """``base`` with the tensors of ``received``'s modules replaced (base keeps its own weights)."""
        if base.state is None:
            return base
        state = {**base.state, **(received.state or {})}
        return Update({name: state[name] for name in base.state}, base.weights, base.n_samples, base.loss)

    def complete(self, partial: Update, base: Update) -> Update:
        """``partial`` plus, with weight 0, the modules of ``base`` it lacks (a whole model again)."""
        if set(partial.weights) >= set(base.weights):
            return partial
        weights = {k: partial.weights.get(k, 0.0) for k in self.plan.ordered({*base.weights, *partial.weights})}
        state = None
        if base.state is not None:
            merged = {**base.state, **(partial.state or {})}
            state = {name: merged[name] for name in base.state}
        return Update(state, weights, partial.n_samples, partial.loss)

    def reset(self) -> None:
        """Nothing to reset without training."""

    # ------------------------------------------------------------------ learning
    def submit(self, device: int, model: Update, r: int = 1) -> Callable[[], Update]:
        """Start the device's local training of round ``r``; calling the result gives its :class:`Update`.

        Here the training runs at once; :class:`TorchLearner` defers it so that
        the trainings submitted before the first result is asked for run together.
        """
        update = self.train(device, model, r)
        return lambda: update

    def train(self, device: int, model: Update, r: int = 1) -> Update:
        weight = float(self.n_samples[device])
        return Update(None, dict.fromkeys(self.held(device, r), weight), self.n_samples[device])

    def aggregate(self, updates: Sequence[Update], base: Update | None) -> Update:
        """Module-wise: each module's weight is summed over its holders; ``base``'s unheld modules keep weight 0."""
        return Update(None, self._summed_weights(updates, base), sum(u.n_samples for u in updates))

    def _summed_weights(self, updates: Sequence[Update], base: Update | None) -> dict[str, float]:
        """Module → Σ of the holders' weights, over ``base``'s modules (or the updates' own without a base)."""
        modules = base.modules if base is not None else self.plan.ordered(k for u in updates for k in u.modules)
        return {k: float(sum(u.weights.get(k, 0.0) for u in updates)) for k in modules}

    def evaluate(self, updates: Sequence[Update]) -> PendingEvaluation:
        """No metrics without training."""
        return PendingEvaluation.ready({})


class TorchLearner(NetworkOnlyLearner):
    """Real local training of the M3T model on each device's data partition and modalities."""

    def __init__(
        self,
        scenario: Scenario,
        model: torch.nn.Module,
        profiles: Sequence[DeviceProfile],
        seeds: np.random.SeedSequence,
    ) -> None:
        data_seq, part_seq, torch_seq = seeds.spawn(3)
        data_cfg = scenario.data
        n_devices = len(profiles)
        total = n_devices * data_cfg.samples_per_device
        pool = make_m3t_dataset(total + data_cfg.test_samples, _seed_int(data_seq))
        self.test_data: M3TData = pool.subset(np.arange(total, total + data_cfg.test_samples))
        train = pool.subset(np.arange(total))
        labels = train.labels[data_cfg.partition_task].numpy()
        parts = dirichlet_partition(labels, n_devices, data_cfg.dirichlet_alpha, np.random.default_rng(part_seq))
        super().__init__(scenario, model, profiles, [len(p) for p in parts])
        model_modalities = tuple(scenario.model.modalities)
        self._data_steps: list[list[M3TData]] = []  # per device and profile: its partition, the modalities it senses
        for idx, timeline in zip(parts, self.timelines):
            data = train.subset(idx)
            self._data_steps.append(
                [data.without([m for m in model_modalities if m not in p.modalities]) for p in timeline.profiles]
            )
        self.initial_state = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
        self._evaluator = BackgroundEvaluator(model, self.test_data)
        self._aggregation = scenario.aggregation
        self._device_seeds = [_seed_int(s) for s in torch_seq.spawn(n_devices)]
        self._generators: list[torch.Generator] = []
        self.reset()

    def reset(self) -> None:
        """Restart every device's sampling RNG, so each scheme starts from the same state."""
        self._generators = [torch.Generator().manual_seed(s) for s in self._device_seeds]
        self._pending: list[_PendingTraining] = []

    def submit(self, device: int, model: Update, r: int = 1) -> Callable[[], Update]:
        """Queue the device's training; the first result asked for trains every queued one (``training.batch_clients``).

        Trainings are independent (own start model, data and generator), so
        running them later and together gives what running each at submission
        gives, up to float rounding: queued clients with the same modules,
        tasks, modalities and minibatch size and full start states train in one
        :func:`models.batched.batched_local_train`; if any queued start state is
        partial (then the shared model's other values matter), all run one by
        one in submission order, as without batching.
        """
        if not self._training.batch_clients:
            return super().submit(device, model, r)
        job = _PendingTraining(device, model, r)
        self._pending.append(job)
        return lambda: job.update if job.update is not None else self._train_pending(job)

    def _train_pending(self, wanted: _PendingTraining) -> Update:
        jobs, self._pending = self._pending, []
        t = self._training
        trainable = set(self.initial_state)
        together = supports(self.model) and all(set(job.model.state) >= trainable for job in jobs)
        groups: dict[tuple, list[tuple[_PendingTraining, ClientJob]]] = {}
        for job in jobs:
            step = self.timelines[job.device].step(job.r)
            client = ClientJob(job.model.state, self._data_steps[job.device][step], self._generators[job.device])
            key = (self.held(job.device, job.r), self.timelines[job.device].profiles[step].tasks,
                   batch_key(client, t.batch_size)) if together else (id(job),)  # fmt: skip
            groups.setdefault(key, []).append((job, client))
        for group in groups.values():
            if len(group) == 1:
                job = group[0][0]
                job.update = self.train(job.device, job.model, job.r)
                continue
            first = group[0][0]
            held = self.held(first.device, first.r)
            tasks = self.timelines[first.device].profiles[self.timelines[first.device].step(first.r)].tasks
            with torch_threads(1):
                results = batched_local_train(
                    self.model, [client for _, client in group], t.local_steps, t.batch_size, t.lr,
                    modules=held, tasks=tasks, expert_weighting=self._aggregation.expert_weighting,
                )  # fmt: skip
            for (job, _), result in zip(group, results):
                job.update = self._update(result, held)
        assert wanted.update is not None
        return wanted.update

    def _update(self, result: TrainResult, held: Sequence[str]) -> Update:
        weights = {k: float(result.module_weights[k]) for k in held}
        return Update(result.state, weights, result.n_samples, result.mean_loss)

    def train(self, device: int, model: Update, r: int = 1) -> Update:
        """Local steps in round ``r`` on the device's data from ``model``; returns the device's held modules."""
        t, step = self._training, self.timelines[device].step(r)
        held = self.held(device, r)
        with torch_threads(1):
            result = local_train(
                self.model, model.state, self._data_steps[device][step], t.local_steps, t.batch_size, t.lr,
                self._generators[device], modules=held, tasks=self.timelines[device].profiles[step].tasks,
                expert_weighting=self._aggregation.expert_weighting,
            )  # fmt: skip
        return self._update(result, held)

    def aggregate(self, updates: Sequence[Update], base: Update | None) -> Update:
        """Module-wise weighted mean over each module's holders; ``base`` supplies the modules no one sent."""
        with torch_threads(1):  # memory-bound sums: a second thread only spins against the evaluation worker
            merged = aggregate_modules(
                [ModuleUpdate(u.state, dict(u.weights)) for u in updates],
                self.registry,
                base=None if base is None else base.state,
                lora=self._aggregation.lora,
            )
        names = merged.state if base is None else base.state
        state = {name: merged.state[name] for name in names}
        return Update(state, self._summed_weights(updates, base), sum(u.n_samples for u in updates))

    def evaluate(self, updates: Sequence[Update]) -> PendingEvaluation:
        """Held-out loss and score per task of the models held, weighted per task by their ``head/<task>`` weight.

        A task whose head no holder trained is weighted by sample counts. Models
        shared by several holders (after a cloud round) are evaluated once. The
        evaluation runs in the background worker (:mod:`sim.eval_worker`).
        """
        holders: dict[int, list[Update]] = {}
        for u in updates:
            holders.setdefault(id(u.state), []).append(u)
        groups = list(holders.values())
        return self._evaluator.submit([group[0].state for group in groups], partial(_combine_metrics, groups))


def _combine_metrics(groups: Sequence[Sequence[Update]], results: Sequence[Metrics]) -> Metrics:
    """Per task, the mean of the groups' metrics weighted by their head weight (else samples, else equally)."""
    out: Metrics = {}
    for task in results[0]:
        weight = np.array([sum(u.weights.get(f"head/{task}", 0.0) for u in g) for g in groups])
        if not weight.sum() > 0:
            weight = np.array([sum(u.n_samples for u in g) for g in groups], dtype=float)
        if not weight.sum() > 0:
            weight = np.ones(len(groups))
        loss, score = weight @ np.array([r[task] for r in results]) / weight.sum()
        out[task] = (float(loss), float(score))
    return out


def _seed_int(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1)[0])


def make_learner(
    scenario: Scenario, seeds: np.random.SeedSequence, profiles: Sequence[DeviceProfile],
    trainer: Callable[..., TorchLearner] = TorchLearner,
) -> NetworkOnlyLearner:  # fmt: skip
    """The learner the scenario asks for (``training.enabled``), with its model built from the seed.

    ``trainer`` builds the training learner (``TorchLearner`` or a backend's, :mod:`sim.backends`).
    """
    model_seq, data_seqs = seeds.spawn(2)
    model = build_model(model_config(scenario), _seed_int(model_seq))
    if scenario.training.enabled:
        return trainer(scenario, model, profiles, data_seqs)
    return NetworkOnlyLearner(scenario, model, profiles, [scenario.data.samples_per_device] * len(profiles))
