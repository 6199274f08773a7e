"""Models: the modular multi-modal multi-task (M3T) model, its embedded dataset, local training and aggregation.

Torch, peft and numpy only — no SimPy, no HDF5 (``transformers`` optionally,
for a pretrained text backbone). The model (:mod:`models.net`) has an encoder
per modality, a prompt per task, a frozen fusion backbone with LoRA and/or
bottleneck adapters, a mixture-of-experts layer and a head per task; only the
trainable part (:func:`trainable_state`) is trained, aggregated and sent,
module by module (:class:`ModuleRegistry`, :func:`aggregate_modules`,
:func:`state_nbytes`).

    >>> import numpy as np, torch
    >>> data = make_m3t_dataset(64, seed=1)
    >>> parts = dirichlet_partition(data.labels["shape"].numpy(), 2, 0.5, np.random.default_rng(0))
    >>> model = build_model(ModelConfig(), seed=0)
    >>> result = local_train(model, trainable_state(model), data.subset(parts[0]), steps=2, batch_size=8,
    ...                      lr=1e-3, generator=torch.Generator().manual_seed(0))
    >>> result.steps, result.n_samples == len(parts[0])
    (2, True)
    >>> merged = weighted_average([result.state, trainable_state(model)], [result.n_samples, 1.0])
    >>> state_nbytes(merged) == 4 * sum(t.numel() for t in merged.values())
    True
    >>> registry = ModuleRegistry(model)
    >>> update = ModuleUpdate(result.state, result.module_weights)
    >>> out = aggregate_modules([update], registry, base=trainable_state(model))
    >>> list(out.weights) == list(registry.keys)
    True
"""

from models.aggregate import ModuleUpdate, aggregate_modules, weighted_average
from models.data import (
    ALL_TASKS,
    MODALITIES,
    REGRESSION_TASKS,
    TASKS,
    M3TData,
    dirichlet_partition,
    m3t_data_from_arrays,
    make_m3t_dataset,
)
from models.net import M3TNet, ModelConfig, build_model, load_trainable_state, trainable_state
from models.payload import state_nbytes
from models.registry import ModuleRegistry, module_key
from models.train import TrainResult, evaluate, local_train, train_step_flops

__all__ = [
    "ALL_TASKS",
    "MODALITIES",
    "REGRESSION_TASKS",
    "TASKS",
    "M3TData",
    "M3TNet",
    "ModelConfig",
    "ModuleRegistry",
    "ModuleUpdate",
    "TrainResult",
    "aggregate_modules",
    "build_model",
    "dirichlet_partition",
    "evaluate",
    "load_trainable_state",
    "local_train",
    "m3t_data_from_arrays",
    "make_m3t_dataset",
    "module_key",
    "state_nbytes",
    "train_step_flops",
    "trainable_state",
    "weighted_average",
]
