"""Local training, evaluation and FLOP counting, for the whole model or a subset of its modules and tasks.

Simulated training time is FLOPs / device FLOP/s, so FLOPs are counted, never
timed: :func:`train_step_flops` runs one forward + backward under
``torch.utils.flop_counter.FlopCounterMode`` and adds the optimizer's update.

Losses: cross-entropy for classification tasks, mean squared error for
regression tasks (:data:`models.data.REGRESSION_TASKS`), summed over the
trained tasks, plus α·(load-balancing loss) of the MoE layer
(:mod:`models.moe`, α = ``ModelConfig.moe_aux_weight``). Scores
(:func:`evaluate`): accuracy for classification, R² for regression.

    >>> from models.data import make_m3t_dataset
    >>> from models.net import ModelConfig, build_model, trainable_state
    >>> model = build_model(ModelConfig(), seed=0)
    >>> data = make_m3t_dataset(20, seed=0)
    >>> result = local_train(model, trainable_state(model), data, steps=3, batch_size=8, lr=1e-3,
    ...                      generator=torch.Generator().manual_seed(0))
    >>> result.n_samples, result.steps, result.mean_loss > 0
    (20, 3, True)
    >>> sorted(evaluate(model, result.state, data))
    ['activity', 'shape', 'vqa']
    >>> part = local_train(model, result.state, data.without(["image"]), steps=2, batch_size=8, lr=1e-3,
    ...                    generator=torch.Generator().manual_seed(0), modules=["encoder/text", "head/vqa"],
    ...                    tasks=["vqa"])
    >>> part.module_weights, len(part.state)
    ({'encoder/text': 20.0, 'head/vqa': 20.0}, 4)
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from models.data import MODALITIES, TASKS, M3TData
from models.net import M3TNet, base_net, load_trainable_state
from models.pretrained import PretrainedTextEncoder
from models.registry import ModuleRegistry

ADAMW_FLOPS_PER_PARAM = 10
"""Approximate FLOPs of one AdamW update per parameter (moments, bias correction, sqrt, division, decay)."""


@dataclass
class TrainResult:
    """A holder's modules after local training.

    Attributes:
        state: the trained modules' parameters only (what the device sends), in module order.
        mean_loss: mean over the steps of the minibatch loss (task losses + weighted MoE aux loss).
        n_samples: size of the holder's data (its FedAvg weight).
        steps: optimizer steps taken.
        module_weights: module key → aggregation weight: ``n_samples``, except ``moe/expert/<j>`` =
            ``n_samples`` × (fraction of the routed token slots of all steps that went to expert j) with
            ``expert_weighting``.
    """

    state: dict[str, torch.Tensor]
    mean_loss: float
    n_samples: int
    steps: int
    module_weights: dict[str, float]


def _tasks(net: M3TNet, tasks: Iterable[str] | None, data: M3TData | None = None) -> tuple[str, ...]:
    """``tasks`` (default: all the model's), checked against the model's heads and the data's labels."""
    chosen = tuple(net.cfg.tasks if tasks is None else tasks)
    unknown = sorted(set(chosen) - set(net.cfg.tasks))
    if unknown or not chosen:
        raise ValueError(f"tasks {sorted(chosen)} must be a non-empty subset of the model's {list(net.cfg.tasks)}")
    if data is not None:
        unlabelled = sorted(set(chosen) - set(data.labels))
        if unlabelled:
            raise ValueError(f"the data has no labels for tasks {unlabelled}")
    return chosen


def task_loss(task: str, output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of logits for a classification task, squared error of a prediction for a regression task."""
    if task in TASKS:
        return F.cross_entropy(output, target, reduction=reduction)
    return F.mse_loss(output, target.to(output.dtype), reduction=reduction)


def _loss(
    model: nn.Module, inputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], tasks: Iterable[str]
) -> torch.Tensor:
    """Σ_t L_t(outputs_t, y_t) over ``tasks`` (mean over the batch each) + α·(MoE load-balancing loss)."""
    outputs = model(inputs)
    loss = torch.stack([task_loss(task, outputs[task], labels[task]) for task in tasks]).sum()
    net = base_net(model)
    if net.moe is not None and net.cfg.moe_aux_weight > 0:
        loss = loss + net.cfg.moe_aux_weight * net.moe.last_aux_loss
    return loss


def _batches(n: int, steps: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """``steps`` index batches of min(batch_size, n) samples, without replacement within an epoch.

    The sample order is a concatenation of fresh permutations (one per epoch)
    cut into consecutive batches, so every batch is full and every sample is
    seen once per epoch.
    """
    size = min(batch_size, n)
    epochs = -(-steps * size // n)
    order = torch.cat([torch.randperm(n, generator=generator) for _ in range(epochs)])
    return [order[i * size : (i + 1) * size] for i in range(steps)]


def _modules(registry: ModuleRegistry, modules: Iterable[str] | None) -> tuple[str, ...]:
    """``modules`` (default: every trainable one) in registry order; ValueError if empty or unknown."""
    if modules is None:
        return registry.keys
    chosen = set(modules)
    unknown = sorted(chosen - set(registry.keys))
    if unknown or not chosen:
        raise ValueError(f"modules must be a non-empty subset of the model's {list(registry.keys)}; got {unknown or []}")
    return tuple(k for k in registry.keys if k in chosen)


@contextlib.contextmanager
def _only_trainable(model: nn.Module, names: Collection[str]) -> Iterator[None]:
    """Freeze the trainable parameters not in ``names`` for the block (no gradients, no weight-gradient work)."""
    frozen = [p for name, p in model.named_parameters() if p.requires_grad and name not in names]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def local_train(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    data: M3TData,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    *,
    modules: Collection[str] | None = None,
    tasks: Collection[str] | None = None,
    expert_weighting: bool = False,
) -> TrainResult:
    """``steps`` AdamW steps of ``modules`` from ``state`` on ``data``; the model is left holding the new values.

    ``state`` may be the full trainable state or any part of it covering the
    trained modules; trainable parameters missing from it keep the model's
    current values. Only the parameters of ``modules`` (default: all trainable)
    get gradients and an optimizer; the loss sums the losses of ``tasks``
    (default: all the model's tasks) and the MoE aux loss. ``data`` may lack
    modalities (their encoders get no gradient). A fresh AdamW (Loshchilov &
    Hutter 2019; weight decay 0.01) each call, as a device keeps no optimizer
    state between rounds. ``generator`` alone decides the minibatch order.

    Raises:
        ValueError: steps, batch_size or data empty; unknown modules or tasks; tasks without labels.
        KeyError / ValueError: ``state`` has a non-trainable name or a wrong shape.
    """
    if steps < 1 or batch_size < 1 or len(data) < 1:
        raise ValueError(f"need steps, batch_size and data of at least 1, got {steps}, {batch_size}, {len(data)}")
    net = base_net(model)
    registry = ModuleRegistry(model)
    chosen = _modules(registry, modules)
    task_names = _tasks(net, tasks, data)
    load_trainable_state(model, state, strict=False)
    names = [name for key in chosen for name in registry.params(key)]
    params = dict(model.named_parameters())
    expert_tokens = torch.zeros(net.cfg.moe_experts, dtype=torch.long)
    total = torch.zeros(())
    with _only_trainable(model, set(names)):
        optimizer = torch.optim.AdamW([params[n] for n in names], lr=lr, weight_decay=0.01, fused=True)
        model.train()
        for idx in _batches(len(data), steps, batch_size, generator):
            optimizer.zero_grad(set_to_none=True)
            loss = _loss(model, data.inputs(idx), {task: data.labels[task][idx] for task in task_names}, task_names)
            if loss.requires_grad:
                loss.backward()
                optimizer.step()
            total += loss.detach()
            if net.moe is not None:
                expert_tokens += net.moe.last_expert_tokens
    n = len(data)
    weights = dict.fromkeys(chosen, float(n))
    if expert_weighting and net.moe is not None:
        share = expert_tokens.double() / expert_tokens.sum()
        weights.update({f"moe/expert/{j}": float(n * share[j]) for j in range(len(share)) if f"moe/expert/{j}" in weights})
    new_state = {name: params[name].detach().clone() for name in names}
    return TrainResult(new_state, float(total) / steps, n, steps, weights)


def evaluate(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    data: M3TData,
    batch_size: int = 512,
    tasks: Collection[str] | None = None,
) -> dict[str, tuple[float, float]]:
    """Task → (loss, score) of ``state`` on ``data``; the model is left holding ``state``.

    Classification: (mean cross-entropy, accuracy). Regression: (mean squared
    error, R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)², ȳ the mean target of ``data``; NaN
    if the targets are all equal). ``state`` is a full trainable state;
    ``data`` may lack modalities. ``tasks`` defaults to all the model's.
    """
    net = base_net(model)
    task_names = _tasks(net, tasks, data)
    load_trainable_state(model, state)
    model.eval()
    loss = dict.fromkeys(task_names, 0.0)
    score = dict.fromkeys(task_names, 0.0)
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            rows = slice(start, start + batch_size)
            outputs = model(data.inputs(rows))
            for task in task_names:
                out, labels = outputs[task], data.labels[task][rows]
                loss[task] += float(task_loss(task, out, labels, reduction="sum"))
                if task in TASKS:
                    score[task] += float((out.argmax(-1) == labels).sum())
    n = len(data)
    result = {task: (loss[task] / n, score[task] / n) for task in task_names}
    for task in task_names:
        if task not in TASKS:
            y = data.labels[task].double()
            total_ss = float(((y - y.mean()) ** 2).sum())
            result[task] = (loss[task] / n, 1.0 - loss[task] / total_ss if total_ss > 0 else float("nan"))
    return result


def _zero_batch(net: M3TNet, batch_size: int, modalities: Iterable[str], tasks: Iterable[str]) -> tuple[dict, dict]:
    """Inputs of the given modalities and labels of the given tasks, all zeros except the question.

    The question is ``text_len`` words of token 1 (a full-length question, so a pretrained backbone
    tokenises as many words as the longest question has): FLOPs do not depend on other values.
    """
    cfg = net.cfg
    make = {
        "image": lambda: torch.zeros(batch_size, 3, cfg.image_size, cfg.image_size),
        "text": lambda: torch.full((batch_size, cfg.text_len), min(1, cfg.vocab_size - 1), dtype=torch.long),
        "sensor": lambda: torch.zeros(batch_size, cfg.sensor_len),
    }
    inputs = {m: make[m]() for m in modalities if m in net.encoders}
    labels = {t: torch.zeros(batch_size, dtype=torch.long if t in TASKS else torch.float32) for t in tasks}
    return inputs, labels


def train_step_flops(
    model: nn.Module,
    batch_size: int,
    *,
    modules: Collection[str] | None = None,
    modalities: Collection[str] | None = None,
    tasks: Collection[str] | None = None,
) -> int:
    """FLOPs of one training step at ``batch_size``: forward + backward, counted, plus the optimizer.

    For a holder with ``modalities`` (default: the model's; fewer modalities,
    fewer tokens), training ``modules`` (default: all trainable) on ``tasks``
    (default: the model's). ``FlopCounterMode`` counts the matrix products
    (Linear, matmul, conv) of the forward and of the backward actually run
    (input gradients only as far back as a trained module needs them, weight
    gradients of the trained parameters only); elementwise work (LayerNorm,
    softmax, activations, routing) is O(n·d) against O(n·d²) and not counted.
    A pretrained text backbone is run uncached, forward only (it is frozen and
    precedes every trained parameter), on full-length questions. The AdamW
    update is added as ``ADAMW_FLOPS_PER_PARAM`` = 10 FLOPs per trained
    parameter (an estimate, not counted).

    Raises:
        ValueError: batch_size < 1; unknown modalities, modules or tasks; no modality the model has.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    net = base_net(model)
    registry = ModuleRegistry(model)
    chosen = _modules(registry, modules)
    task_names = _tasks(net, tasks)
    present = tuple(net.cfg.modalities if modalities is None else modalities)
    unknown = sorted(set(present) - set(MODALITIES))
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; known: {list(MODALITIES)}")
    key = (net.cfg, batch_size, tuple(sorted(chosen)), tuple(sorted(present)), tuple(task_names))
    if key not in _STEP_FLOPS:
        _STEP_FLOPS[key] = _count_step_flops(model, net, registry, chosen, present, task_names, batch_size)
    return _STEP_FLOPS[key]


_STEP_FLOPS: dict[tuple, int] = {}
"""Counted step FLOPs by (config, batch size, modules, modalities, tasks): they depend on shapes, never on
values, so one count per configuration serves every model built from it (a sweep counts once per process)."""


def _count_step_flops(
    model: nn.Module, net: M3TNet, registry: ModuleRegistry, chosen: Collection[str], present: tuple[str, ...],
    task_names: tuple[str, ...], batch_size: int,
) -> int:  # fmt: skip
    inputs, labels = _zero_batch(net, batch_size, present, task_names)
    names = {name for key in chosen for name in registry.params(key)}
    text = net.encoders["text"] if "text" in net.encoders else None
    uncached = text.uncached() if isinstance(text, PretrainedTextEncoder) else contextlib.nullcontext()
    counter = FlopCounterMode(display=False)
    with _only_trainable(model, names), uncached, counter:
        loss = _loss(model, inputs, labels, task_names)
        if loss.requires_grad:
            loss.backward()
    model.zero_grad(set_to_none=True)
    n_trained = sum(p.numel() for name, p in model.named_parameters() if name in names)
    return int(counter.get_total_flops()) + ADAMW_FLOPS_PER_PARAM * n_trained
