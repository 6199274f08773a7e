"""FedAvg, module-wise aggregation (naive and product LoRA) and payload bytes."""

from __future__ import annotations

import pytest
import torch

from models import ModelConfig, ModuleRegistry, ModuleUpdate, aggregate_modules, build_model, state_nbytes
from models import trainable_state, weighted_average


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


# ---------------------------------------------------------------- module-wise aggregation

SMALL = ModelConfig(d_model=8, n_heads=2, n_layers=1, lora_rank=2, moe_experts=2, moe_top_k=1, stem_channels=2)


@pytest.fixture(scope="module")
def small() -> tuple[torch.nn.Module, ModuleRegistry]:
    model = build_model(SMALL, seed=0)
    return model, ModuleRegistry(model)


def _random_state(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.randn(t.shape, generator=gen) for n, t in trainable_state(model).items()}


def _holder(registry: ModuleRegistry, state: dict[str, torch.Tensor], weights: dict[str, float]) -> ModuleUpdate:
    return ModuleUpdate(registry.select(state, weights), weights)


def test_module_mean_is_over_its_holders_only(small) -> None:
    model, reg = small
    states = [_random_state(model, s) for s in range(3)]
    w = [2.0, 5.0, 3.0]
    everything = [k for k in reg.keys]
    without_image = [k for k in reg.keys if k != "encoder/image"]
    updates = [
        _holder(reg, states[0], dict.fromkeys(everything, w[0])),
        _holder(reg, states[1], dict.fromkeys(without_image, w[1])),  # lacks the image encoder
        _holder(reg, states[2], dict.fromkeys(everything, w[2])),
    ]
    out = aggregate_modules(updates, reg)
    for name in reg.params("encoder/image"):  # (2·x0 + 3·x2) / 5: holder 1 plays no part
        hand = (2.0 * states[0][name].double() + 3.0 * states[2][name].double()) / 5.0
        assert torch.allclose(out.state[name], hand.float(), rtol=1e-6, atol=1e-7), name
    for name in reg.params("head/vqa"):  # (2·x0 + 5·x1 + 3·x2) / 10
        hand = (2.0 * states[0][name].double() + 5.0 * states[1][name].double() + 3.0 * states[2][name].double()) / 10
        assert torch.allclose(out.state[name], hand.float(), rtol=1e-6, atol=1e-7), name
    assert out.weights["encoder/image"] == 5.0 and out.weights["head/vqa"] == 10.0
    assert list(out.weights) == list(reg.keys)
    assert list(out.state) == [n for k in reg.keys for n in reg.params(k)]
    assert all(t.dtype == torch.float32 for t in out.state.values())


def test_unheld_modules_pass_through_from_base_with_weight_zero(small) -> None:
    model, reg = small
    base = _random_state(model, 10)
    update = _holder(reg, _random_state(model, 11), {"head/shape": 4.0, "moe/gate": 4.0})
    out = aggregate_modules([update], reg, base=base)
    assert list(out.state) == list(base)  # every module, registry order
    for key in reg.keys:
        for name in reg.params(key):
            expected = update.state[name] if key in update.weights else base[name]
            assert torch.equal(out.state[name], expected), name
        assert out.weights[key] == (4.0 if key in update.weights else 0.0)
    no_base = aggregate_modules([update], reg)
    assert list(no_base.weights) == ["moe/gate", "head/shape"] and set(no_base.state) == set(update.state)
    with pytest.raises(ValueError, match="part of module"):
        aggregate_modules([update], reg, base={reg.params("encoder/image")[0]: torch.zeros(1)})


def test_zero_weights_fall_back_to_the_plain_mean(small) -> None:
    model, reg = small
    a, b = _random_state(model, 1), _random_state(model, 2)
    out = aggregate_modules([_holder(reg, a, {"head/vqa": 0.0}), _holder(reg, b, {"head/vqa": 0.0})], reg)
    for name in reg.params("head/vqa"):
        assert torch.allclose(out.state[name], (a[name] + b[name]) / 2)
    assert out.weights == {"head/vqa": 0.0}
    # a zero weight beside a positive one drops that holder
    out = aggregate_modules([_holder(reg, a, {"head/vqa": 0.0}), _holder(reg, b, {"head/vqa": 1.0})], reg)
    assert all(torch.equal(out.state[n], b[n]) for n in reg.params("head/vqa"))


def _lora_update(reg: ModuleRegistry, model, factors: dict[str, torch.Tensor], weight: float) -> ModuleUpdate:
    state = reg.select(trainable_state(model), ["lora/layer0"])
    return ModuleUpdate({**state, **factors}, {"lora/layer0": weight})


def _delta(state: dict[str, torch.Tensor], a: str) -> torch.Tensor:
    return state[a.replace(".lora_A.", ".lora_B.")].double() @ state[a].double()


def test_product_lora_is_exact_when_the_mean_update_has_rank_at_most_r(small) -> None:
    model, reg = small
    gen = torch.Generator().manual_seed(0)
    a_names = [n for n in reg.params("lora/layer0") if ".lora_A." in n]
    updates, weights = [], [1.0, 3.0]
    for w in weights:  # each holder's B·A has rank 1 (one nonzero column of B): the mean has rank ≤ 2 = r
        factors = {}
        for a in a_names:
            b = a.replace(".lora_A.", ".lora_B.")
            shape_b = dict(model.named_parameters())[b].shape
            factors[a] = torch.randn(2, dict(model.named_parameters())[a].shape[1], generator=gen)
            factors[b] = torch.zeros(shape_b)
            factors[b][:, 0] = torch.randn(shape_b[0], generator=gen)
        updates.append(_lora_update(reg, model, factors, w))
    product = aggregate_modules(updates, reg, lora="product").state
    naive = aggregate_modules(updates, reg, lora="naive").state
    for a in a_names:
        exact = (1.0 * _delta(updates[0].state, a) + 3.0 * _delta(updates[1].state, a)) / 4.0
        assert torch.allclose(_delta(product, a), exact, atol=1e-5 * float(exact.abs().max())), a
        assert not torch.allclose(_delta(naive, a), exact, atol=1e-2 * float(exact.abs().max())), a
        assert product[a].shape == updates[0].state[a].shape


def test_product_lora_beyond_rank_r_is_the_best_rank_r_approximation(small) -> None:
    model, reg = small
    updates = [_lora_update(reg, model, reg.select(_random_state(model, s), ["lora/layer0"]), 1.0) for s in range(3)]
    product = aggregate_modules(updates, reg, lora="product").state
    for a in (n for n in reg.params("lora/layer0") if ".lora_A." in n):
        exact = sum(_delta(u.state, a) for u in updates) / 3
        singular = torch.linalg.svdvals(exact)
        assert int((singular > 1e-9 * singular[0]).sum()) > SMALL.lora_rank  # the mean update has rank > r
        # Eckart–Young: the error of the best rank-r approximation is the norm of the dropped singular values
        err = torch.linalg.matrix_norm(_delta(product, a) - exact)
        assert float(err) == pytest.approx(float(singular[SMALL.lora_rank :].norm()), rel=1e-5)


def test_product_lora_keeps_a_trainable_when_nobody_trained(small) -> None:
    # fresh LoRA: B = 0, so the mean update is 0; A must not collapse to 0 (LoRA would never learn again)
    model, reg = small
    updates = [_lora_update(reg, model, {}, w) for w in (1.0, 2.0)]
    out = aggregate_modules(updates, reg, lora="product").state
    for name in reg.params("lora/layer0"):
        assert torch.equal(out[name], updates[0].state[name]), name


def test_module_aggregation_errors(small) -> None:
    model, reg = small
    state = _random_state(model, 0)
    good = _holder(reg, state, {"head/vqa": 1.0})
    with pytest.raises(ValueError, match="lora must be"):
        aggregate_modules([good], reg, lora="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown modules"):
        aggregate_modules([ModuleUpdate({}, {"head/colour": 1.0})], reg)
    with pytest.raises(ValueError, match="not finite"):
        aggregate_modules([_holder(reg, state, {"head/vqa": -1.0})], reg)
    with pytest.raises(ValueError, match="missing"):
        aggregate_modules([ModuleUpdate(reg.select(state, ["head/shape"]), {"head/vqa": 1.0})], reg)
    name = reg.params("head/vqa")[1]
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        aggregate_modules([good, ModuleUpdate({**good.state, name: torch.zeros(3)}, good.weights)], reg)
