"""Aggregation of model states.

    >>> import torch
    >>> weighted_average([{"w": torch.tensor([0.0])}, {"w": torch.tensor([3.0])}], [2, 1])["w"]
    tensor([1.])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def weighted_average(states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """FedAvg (McMahan et al. 2017): Σ_k w_k·x_k / Σ_k w_k for every tensor.

    Raises:
        ValueError: no states, weights of another length, non-positive total weight, or mismatched keys.
    """
    if not states:
        raise ValueError("weighted_average needs at least one state")
    if len(weights) != len(states):
        raise ValueError(f"{len(states)} states but {len(weights)} weights")
    total = float(sum(weights))
    if not total > 0:
        raise ValueError(f"total weight must be positive, got {total}")
    keys = states[0].keys()
    for state in states[1:]:
        if state.keys() != keys:
            raise ValueError(f"states disagree on key {sorted(keys ^ state.keys())[0]!r}")
    w = torch.tensor([float(x) / total for x in weights], dtype=torch.float32)
    return {key: torch.tensordot(w, torch.stack([s[key] for s in states]), dims=1) for key in keys}
