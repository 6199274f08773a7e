"""Local training, evaluation and FLOP counting.

Simulated training time is FLOPs / device FLOP/s, so FLOPs are counted, never
timed: :func:`train_step_flops` runs one forward + backward under
``torch.utils.flop_counter.FlopCounterMode`` and adds the optimizer's update.

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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft import PeftModel
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from models.data import TASKS, M3TData
from models.net import M3TNet, load_trainable_state, trainable_state

ADAMW_FLOPS_PER_PARAM = 10
"""Approximate FLOPs of one AdamW update per parameter (moments, bias correction, sqrt, division, decay)."""


@dataclass
class TrainResult:
    """A client's model after local training.

    Attributes:
        state: the new trainable state (see :func:`models.net.trainable_state`).
        mean_loss: mean over the steps of the minibatch loss (sum of the task cross-entropies).
        n_samples: size of the client's data (its FedAvg weight).
        steps: optimizer steps taken.
    """

    state: dict[str, torch.Tensor]
    mean_loss: float
    n_samples: int
    steps: int


def _loss(model: nn.Module, inputs: dict[str, torch.Tensor], labels: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ_t CE(logits_t, y_t): the sum over tasks of the mean cross-entropy."""
    logits = model(inputs)
    return torch.stack([F.cross_entropy(out, labels[task]) for task, out in logits.items()]).sum()


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


def local_train(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    data: M3TData,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
) -> TrainResult:
    """``steps`` AdamW steps from ``state`` on ``data``; the model is left holding the new state.

    A fresh AdamW (Loshchilov & Hutter 2019; weight decay 0.01) over the
    trainable parameters each call, as a device keeps no optimizer state
    between rounds. ``generator`` alone decides the minibatch order.
    """
    if steps < 1 or batch_size < 1 or len(data) < 1:
        raise ValueError(f"need steps, batch_size and data of at least 1, got {steps}, {batch_size}, {len(data)}")
    load_trainable_state(model, state)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, fused=True)
    model.train()
    total = torch.zeros(())
    for idx in _batches(len(data), steps, batch_size, generator):
        optimizer.zero_grad(set_to_none=True)
        loss = _loss(model, data.inputs(idx), {task: y[idx] for task, y in data.labels.items()})
        loss.backward()
        optimizer.step()
        total += loss.detach()
    return TrainResult(trainable_state(model), float(total) / steps, len(data), steps)


def evaluate(
    model: nn.Module, state: dict[str, torch.Tensor], data: M3TData, batch_size: int = 512
) -> dict[str, tuple[float, float]]:
    """Task → (mean cross-entropy, accuracy) of ``state`` on ``data``; the model is left holding ``state``."""
    load_trainable_state(model, state)
    model.eval()
    loss = dict.fromkeys(TASKS, 0.0)
    correct = dict.fromkeys(TASKS, 0.0)
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            rows = slice(start, start + batch_size)
            for task, out in model(data.inputs(rows)).items():
                labels = data.labels[task][rows]
                loss[task] += float(F.cross_entropy(out, labels, reduction="sum"))
                correct[task] += float((out.argmax(-1) == labels).sum())
    return {task: (loss[task] / len(data), correct[task] / len(data)) for task in TASKS}


def train_step_flops(model: nn.Module, batch_size: int) -> int:
    """FLOPs of one training step at ``batch_size``: forward + backward, counted, plus the optimizer.

    ``FlopCounterMode`` counts the matrix products (Linear, matmul, conv) of the
    forward and of the backward actually run (input gradients through the frozen
    backbone, weight gradients of the trainable parameters only); elementwise
    work (LayerNorm, softmax, activations) is O(n·d) against O(n·d²) and not
    counted. The AdamW update is added as ``ADAMW_FLOPS_PER_PARAM`` = 10 FLOPs
    per trainable parameter (an estimate, not counted). The inputs are zeros of
    the configured shapes: FLOPs do not depend on values.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    if not isinstance(base, M3TNet):
        raise TypeError(f"expected an M3TNet (or a peft model of one), got {type(base).__name__}")
    cfg = base.cfg
    inputs = {
        "image": torch.zeros(batch_size, 3, cfg.image_size, cfg.image_size),
        "text": torch.zeros(batch_size, cfg.text_len, dtype=torch.long),
        "sensor": torch.zeros(batch_size, cfg.sensor_len),
    }
    labels = {task: torch.zeros(batch_size, dtype=torch.long) for task in TASKS}
    counter = FlopCounterMode(display=False)
    with counter:
        _loss(model, inputs, labels).backward()
    model.zero_grad(set_to_none=True)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return int(counter.get_total_flops()) + ADAMW_FLOPS_PER_PARAM * n_trainable
