"""Aggregation of model states.

    >>> import torch
    >>> weighted_average([{"w": torch.tensor([0.0])}, {"w": torch.tensor([3.0])}], [2, 1])["w"]
    tensor([1.])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def weighted_average(states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """FedAvg (McMahan et al. 2017, arXiv 1602.05629): x = Σ_k w_k·x_k / Σ_k w_k for every tensor.

    Accumulated in float64 and returned in float32: the result is the exact
    weighted mean rounded once, and averaging group averages (edge, then
    cloud) differs from the flat average only by the groups' own rounding
    (local training later amplifies such differences). Keys come out in the
    first state's order. Typical weights are the clients' sample counts.

    Raises:
        ValueError: no states, a weight count that differs from the state count,
            a non-positive total weight, or states whose keys or shapes differ (naming the key).
    """
    if not states:
        raise ValueError("weighted_average needs at least one state")
    if len(weights) != len(states):
        raise ValueError(f"{len(states)} states but {len(weights)} weights")
    total = float(sum(weights))
    if not total > 0:
        raise ValueError(f"total weight must be positive, got {total}")
    keys = list(states[0])
    for k, state in enumerate(states[1:], start=1):
        if state.keys() != states[0].keys():
            key = sorted(state.keys() ^ states[0].keys())[0]
            raise ValueError(f"state {k} and state 0 disagree on key {key!r}")
        for key in keys:
            if state[key].shape != states[0][key].shape:
                raise ValueError(f"state {k} has shape {tuple(state[key].shape)} for key {key!r}, "
                                 f"state 0 has {tuple(states[0][key].shape)}")  # fmt: skip
    w = torch.tensor([float(x) / total for x in weights], dtype=torch.float64)
    return {key: torch.tensordot(w, torch.stack([s[key].double() for s in states]), dims=1).float() for key in keys}
