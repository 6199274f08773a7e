"""FedAvg and payload bytes."""

from __future__ import annotations

import pytest
import torch

from models import state_nbytes, weighted_average


def _states() -> list[dict[str, torch.Tensor]]:
    return [
        {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([[0.0]])},
        {"a": torch.tensor([3.0, 6.0]), "b": torch.tensor([[4.0]])},
        {"a": torch.tensor([-1.0, 0.0]), "b": torch.tensor([[8.0]])},
    ]


def test_weighted_average_matches_hand_computation() -> None:
    out = weighted_average(_states(), [1.0, 2.0, 1.0])
    # a: (1·[1,2] + 2·[3,6] + 1·[−1,0]) / 4 = [6, 14] / 4;  b: (0 + 8 + 8) / 4
    assert torch.allclose(out["a"], torch.tensor([1.5, 3.5]))
    assert torch.allclose(out["b"], torch.tensor([[4.0]]))
    assert list(out) == ["a", "b"] and all(t.dtype == torch.float32 for t in out.values())


def test_zero_weight_drops_a_state() -> None:
    first, second = _states()[:2]
    out = weighted_average([first, second], [1, 0])
    assert all(torch.equal(out[k], first[k]) for k in first)


def test_half_precision_inputs_average_in_float32() -> None:
    out = weighted_average([{"w": torch.tensor([1.0], dtype=torch.float16)}] * 2, [1, 1])
    assert out["w"].dtype == torch.float32 and out["w"].item() == 1.0


def test_weighted_average_errors() -> None:
    states = _states()
    with pytest.raises(ValueError, match="at least one"):
        weighted_average([], [])
    with pytest.raises(ValueError, match="positive"):
        weighted_average(states[:2], [0, 0])
    with pytest.raises(ValueError, match="weights"):
        weighted_average(states[:2], [1])
    with pytest.raises(ValueError, match="'c'"):
        weighted_average([states[0], {**states[1], "c": torch.zeros(1)}], [1, 1])
    with pytest.raises(ValueError, match="'b'"):
        weighted_average([states[0], {**states[1], "b": torch.zeros(2)}], [1, 1])


def test_state_nbytes_counts_tensor_bytes() -> None:
    state = {
        "f32": torch.zeros(3, 4),
        "f16": torch.zeros(5, dtype=torch.float16),
        "i8": torch.zeros(7, dtype=torch.int8),
        "f64": torch.zeros(2, dtype=torch.float64),
    }
    assert state_nbytes(state) == 12 * 4 + 5 * 2 + 7 * 1 + 2 * 8
    assert state_nbytes({}) == 0


def test_average_of_group_averages_is_the_flat_average_up_to_float32_rounding() -> None:
    # hierarchical FedAvg (edge averages, then their average weighted by edge sample counts) = flat FedAvg
    gen = torch.Generator().manual_seed(0)
    states = [{"w": torch.randn(1000, generator=gen)} for _ in range(6)]
    n = [5.0, 17.0, 3.0, 11.0, 8.0, 2.0]
    flat = weighted_average(states, n)["w"]
    groups = [range(0, 2), range(2, 5), range(5, 6)]
    edge = [weighted_average([states[i] for i in g], [n[i] for i in g]) for g in groups]
    hier = weighted_average(edge, [sum(n[i] for i in g) for g in groups])["w"]
    exact = sum(n[i] / sum(n) * states[i]["w"].double() for i in range(6))
    eps = torch.finfo(torch.float32).eps
    assert float((flat.double() - exact).abs().max()) <= eps * float(exact.abs().max())  # correctly rounded
    assert float((hier - flat).abs().max()) <= 2 * eps * max(float(s["w"].abs().max()) for s in states)
