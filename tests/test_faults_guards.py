"""Aggregation guards: NaN/Inf and huge-norm updates are rejected, hand-computed norms, minimum count."""

from __future__ import annotations

import doctest
import math

import pytest
import torch

import models.guards
from models.guards import corrupt_state, enough_accepted, is_finite, screen_updates, update_norm

REF = {"a": torch.zeros(2), "b": torch.zeros(1, 2)}


def state(a: list[float], b: list[float]) -> dict[str, torch.Tensor]:
    return {"a": torch.tensor(a), "b": torch.tensor([b])}


def test_update_norm_is_the_euclidean_norm_over_all_tensors() -> None:
    # (3, 4) and (12, 0) relative to (0, 0) and (0, 0): sqrt(9 + 16 + 144) = 13
    assert update_norm(state([3.0, 4.0], [12.0, 0.0]), REF) == pytest.approx(13.0, rel=1e-15)
    shifted = {"a": torch.tensor([1.0, 1.0]), "b": torch.tensor([[1.0, 1.0]])}
    assert update_norm(state([4.0, 5.0], [13.0, 1.0]), shifted) == pytest.approx(13.0, rel=1e-15)


def test_norm_refuses_mismatched_states() -> None:
    with pytest.raises(ValueError, match="key 'c'"):
        update_norm({"a": torch.zeros(2), "c": torch.zeros(1)}, {"a": torch.zeros(2)})
    # an update may carry fewer tensors than the reference (module-wise): the norm is over its own
    assert update_norm({"a": torch.tensor([3.0, 4.0])}, REF) == 5.0
    with pytest.raises(ValueError, match="shape"):
        update_norm({"a": torch.zeros(3)}, {"a": torch.zeros(2)})


def honest(n: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [{k: 0.01 * torch.randn(v.shape, generator=g) for k, v in REF.items()} for _ in range(n)]


def test_nan_and_inf_updates_are_rejected() -> None:
    updates = honest(4)
    updates[1] = corrupt_state(updates[1], REF, "nan", 0.0)
    updates[3] = {"a": torch.tensor([math.inf, 0.0]), "b": torch.zeros(1, 2)}
    s = screen_updates(updates, REF, max_norm_ratio=5.0)
    assert s.accepted == (0, 2)
    assert s.rejected == ((1, "non_finite"), (3, "non_finite"))
    assert math.isinf(s.norms[1]) and math.isinf(s.norms[3])
    assert not is_finite(updates[1]) and is_finite(updates[0])


def test_huge_norm_update_is_rejected_and_a_moderate_one_kept() -> None:
    updates = honest(5)
    updates[2] = corrupt_state(updates[2], REF, "scale", 100.0)
    updates[4] = corrupt_state(updates[4], REF, "scale", 1.5)
    s = screen_updates(updates, REF, max_norm_ratio=10.0)
    assert s.rejected == ((2, "norm"),)
    assert s.accepted == (0, 1, 3, 4)
    assert s.norms[2] == pytest.approx(100.0 * update_norm(honest(5)[2], REF), rel=1e-6)


def test_threshold_is_k_times_the_median_of_the_others() -> None:
    # norms 1, 2, 3, x: the others' median for x is 2, so x = 20 passes with k = 10 and 20.5 does not
    def one(norm: float) -> dict[str, torch.Tensor]:
        return state([norm, 0.0], [0.0, 0.0])

    assert screen_updates([one(1), one(2), one(3), one(20)], REF, 10.0).rejected == ()
    assert screen_updates([one(1), one(2), one(3), one(20.5)], REF, 10.0).rejected == ((3, "norm"),)
    # two updates: each is judged against the other, so the huge one goes and the small one stays
    assert screen_updates([one(1), one(50)], REF, 10.0).accepted == (0,)
    # a single update has no peer: only finiteness counts
    assert screen_updates([one(1e9)], REF, 10.0).accepted == (0,)


def test_minimum_number_of_accepted_updates() -> None:
    updates = honest(3)
    updates[0] = corrupt_state(updates[0], REF, "nan", 0.0)
    s = screen_updates(updates, REF, 10.0)
    assert enough_accepted(s, 2) and not enough_accepted(s, 3)


def test_ratio_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_norm_ratio"):
        screen_updates(honest(2), REF, 0.0)


def test_docstring_examples() -> None:
    result = doctest.testmod(models.guards, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
