"""Local training, evaluation and FLOP counting.

Simulated training time is FLOPs / device FLOP/s, so FLOPs are counted, not
timed: :func:`train_step_flops` runs one forward + backward under
``torch.utils.flop_counter.FlopCounterMode`` (matmuls and linear layers; the
model writes attention as matmuls so it is counted) and adds the AdamW update
at ~10 FLOPs per trainable parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from models.data import M3TData, make_m3t_dataset
from models.net import load_trainable_state, trainable_state

ADAMW_FLOPS_PER_PARAM = 10


@dataclass
class TrainResult:
    """A client's model after local training."""

    state: dict[str, torch.Tensor]
    mean_loss: float
    n_samples: int
    steps: int


def _loss(model: nn.Module, data: M3TData, idx: torch.Tensor | None) -> torch.Tensor:
    logits = model(data.inputs(idx))
    return sum(F.cross_entropy(out, data.labels[t] if idx is None else data.labels[t][idx]) for t, out in logits.items())


def _batches(n: int, steps: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """``steps`` minibatches sampled without replacement within each epoch."""
    size = min(batch_size, n)
    order = torch.cat([torch.randperm(n, generator=generator) for _ in range(-(-steps * size // n))])
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
    """``steps`` AdamW steps (fresh optimizer, weight decay 0.01) from ``state`` on ``data``; sum of task CEs."""
    load_trainable_state(model, state)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    model.train()
    total = 0.0
    for idx in _batches(len(data), steps, batch_size, generator):
        optimizer.zero_grad(set_to_none=True)
        loss = _loss(model, data, idx)
        loss.backward()
        optimizer.step()
        total += float(loss.detach())
    return TrainResult(trainable_state(model), total / steps, len(data), steps)


def evaluate(
    model: nn.Module, state: dict[str, torch.Tensor], data: M3TData, batch_size: int = 512
) -> dict[str, tuple[float, float]]:
    """Task → (mean cross-entropy, accuracy) of ``state`` on ``data``."""
    load_trainable_state(model, state)
    model.eval()
    sums: dict[str, list[float]] = {}
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            idx = torch.arange(start, min(start + batch_size, len(data)))
            for task, out in model(data.inputs(idx)).items():
                labels = data.labels[task][idx]
                acc = sums.setdefault(task, [0.0, 0.0])
                acc[0] += float(F.cross_entropy(out, labels, reduction="sum"))
                acc[1] += float((out.argmax(-1) == labels).sum())
    return {task: (v[0] / len(data), v[1] / len(data)) for task, v in sums.items()}


def train_step_flops(model: nn.Module, batch_size: int) -> int:
    """FLOPs of one training step at ``batch_size``: forward + backward (counted) + AdamW (≈10/param)."""
    data = make_m3t_dataset(batch_size, seed=0)
    state = trainable_state(model)
    counter = FlopCounterMode(display=False)
    with counter:
        _loss(model, data, None).backward()
    model.zero_grad(set_to_none=True)
    load_trainable_state(model, state)
    n_trainable = sum(t.numel() for t in state.values())
    return int(counter.get_total_flops()) + ADAMW_FLOPS_PER_PARAM * n_trainable
