"""Models: the multi-modal LoRA model, the embedded M3T dataset, local training and aggregation.

No SimPy, no HDF5. Example::

    >>> import numpy as np, torch
    >>> data = make_m3t_dataset(64, seed=1)
    >>> model = build_model(ModelConfig(), seed=0)
    >>> result = local_train(model, trainable_state(model), data, steps=2, batch_size=8, lr=1e-3,
    ...                      generator=torch.Generator().manual_seed(0))
    >>> result.steps, result.n_samples
    (2, 64)
"""

from models.aggregate import weighted_average
from models.data import MODALITIES, TASKS, M3TData, dirichlet_partition, make_m3t_dataset
from models.net import M3TNet, ModelConfig, build_model, load_trainable_state, trainable_state
from models.payload import state_nbytes
from models.train import TrainResult, evaluate, local_train, train_step_flops

__all__ = [
    "MODALITIES",
    "TASKS",
    "M3TData",
    "M3TNet",
    "ModelConfig",
    "TrainResult",
    "build_model",
    "dirichlet_partition",
    "evaluate",
    "load_trainable_state",
    "local_train",
    "make_m3t_dataset",
    "state_nbytes",
    "train_step_flops",
    "trainable_state",
    "weighted_average",
]
