"""Aggregation guards: screen model updates before averaging, and the faulty updates they screen out.

A server about to average K updates x_1..x_K that all started from the model
x_ref it sent computes each update's change norm n_k = ‖x_k − x_ref‖₂ (over
every tensor, float64) and rejects

* an update with a NaN or ±Inf anywhere (reason ``"non_finite"``), and
* an update whose norm exceeds ``max_norm_ratio`` times the median norm of
  the *other* finite updates (reason ``"norm"``): n_k > k · median_{j≠k} n_j.

The norm test is norm bounding (Sun et al. 2019, "Can you really backdoor
federated learning?", arXiv 1911.07963, §4) with the bound set relative to
the round's own updates, so it needs no tuning to the model's scale. Taking
the median of the others (leave-one-out) lets one huge update among two be
caught, and a majority of honest updates keeps the median honest. An update
with no finite peer is judged on finiteness alone.

    >>> import torch
    >>> ref = {"w": torch.zeros(2)}
    >>> ups = [{"w": torch.tensor([1.0, 0.0])}, {"w": torch.tensor([0.0, 1.2])},
    ...        {"w": torch.tensor([float("nan"), 0.0])}, {"w": torch.tensor([100.0, 0.0])}]
    >>> s = screen_updates(ups, ref, max_norm_ratio=10.0)
    >>> s.accepted, s.rejected
    ((0, 1), ((2, 'non_finite'), (3, 'norm')))
    >>> enough_accepted(s, min_updates=2)
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

State = dict[str, torch.Tensor]

REJECT_REASONS: tuple[str, ...] = ("non_finite", "norm")
"""Why :func:`screen_updates` rejects an update."""


def is_finite(state: State) -> bool:
    """True when every element of every tensor is finite (no NaN, no ±Inf)."""
    return all(bool(torch.isfinite(t).all()) for t in state.values())


def update_norm(state: State, reference: State) -> float:
    """‖x − x_ref‖₂ = sqrt(Σ_tensors Σ_elements (x − x_ref)²) over the tensors of ``state``, in float64.

    ``reference`` may hold more tensors (a whole model, ``state`` the modules one client sends).

    Raises:
        ValueError: ``state`` has a key ``reference`` lacks, or a shape that differs (naming the key).
    """
    if not state.keys() <= reference.keys():
        key = sorted(state.keys() - reference.keys())[0]
        raise ValueError(f"update has key {key!r}, the reference does not")
    total = 0.0
    for key, tensor in state.items():
        if tensor.shape != reference[key].shape:
            raise ValueError(f"update has shape {tuple(tensor.shape)} for key {key!r}, "
                             f"reference has {tuple(reference[key].shape)}")  # fmt: skip
        total += float(torch.sum((tensor.double() - reference[key].double()) ** 2))
    return math.sqrt(total)


@dataclass(frozen=True)
class Screening:
    """The verdict on one round's updates (indices into the screened sequence).

    Attributes:
        accepted: indices of the updates to average, in input order.
        rejected: ``(index, reason)`` of the others, reason in :data:`REJECT_REASONS`.
        norms: each update's change norm (``inf`` for a non-finite update).
    """

    accepted: tuple[int, ...]
    rejected: tuple[tuple[int, str], ...]
    norms: tuple[float, ...]


def screen_updates(states: Sequence[State], reference: State, max_norm_ratio: float) -> Screening:
    """Accept the finite updates whose change norm is at most ``max_norm_ratio`` × the others' median.

    Args:
        states: the updates to screen.
        reference: the model every update started from (it may hold more tensors than an update).
        max_norm_ratio: k > 0 of the rule n_k ≤ k · median_{j≠k, finite} n_j.

    Raises:
        ValueError: ``max_norm_ratio`` is not positive, or a state's keys or shapes differ from ``reference``.
    """
    if not max_norm_ratio > 0:
        raise ValueError(f"max_norm_ratio must be positive, got {max_norm_ratio}")
    finite = [is_finite(s) for s in states]
    norms = [update_norm(s, reference) if ok else math.inf for s, ok in zip(states, finite)]
    accepted: list[int] = []
    rejected: list[tuple[int, str]] = []
    for k, norm in enumerate(norms):
        others = [n for j, n in enumerate(norms) if j != k and finite[j]]
        if not finite[k]:
            rejected.append((k, "non_finite"))
        elif others and norm > max_norm_ratio * _median(others):
            rejected.append((k, "norm"))
        else:
            accepted.append(k)
    return Screening(tuple(accepted), tuple(rejected), tuple(norms))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def enough_accepted(screening: Screening, min_updates: int) -> bool:
    """Whether the round may aggregate: at least ``min_updates`` accepted (else keep the previous model)."""
    return len(screening.accepted) >= min_updates


Corruption = Literal["nan", "scale"]


def corrupt_state(state: State, reference: State, kind: Corruption, scale: float) -> State:
    """A faulty update for fault injection: NaN everywhere, or the change from ``reference`` scaled.

    ``"nan"`` models a numerically broken client (every element NaN);
    ``"scale"`` models a faulty or malicious one, x' = x_ref + scale · (x − x_ref)
    (the boosting attack of Bhagoji et al. 2019, arXiv 1811.12470, §3).
    """
    if kind == "nan":
        return {key: torch.full_like(t, math.nan) for key, t in state.items()}
    return {key: reference[key] + scale * (t - reference[key]) for key, t in state.items()}
