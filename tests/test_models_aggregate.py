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


# ---------------------------------------------------------------- bit-identity with the plain per-tensor computation


def _reference_mean64(tensors: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """The weighted mean as first written: every tensor widened on its own, stacked, then one tensordot."""
    total = float(sum(weights))
    w = torch.tensor([float(x) / total for x in weights], dtype=torch.float64)
    return torch.tensordot(w, torch.stack([t.double() for t in tensors]), dims=1)


def _reference_product(a: list[torch.Tensor], b: list[torch.Tensor], w: list[float]) -> tuple[torch.Tensor, ...]:
    """SVD re-factoring of the mean product, zero-padded to rank r; null directions take the mean A rows."""
    delta = _reference_mean64([bk.double() @ ak.double() for ak, bk in zip(a, b, strict=True)], w)
    (m, n), r = delta.shape, a[0].shape[0]
    u, s, vh = torch.linalg.svd(delta, full_matrices=False)
    k, f64 = min(r, len(s)), torch.float64
    s_r = torch.cat([s[:k], torch.zeros(r - k, dtype=f64)])
    null = s_r <= float(s.max()) * max(m, n) * torch.finfo(f64).eps
    b_out = torch.cat([u[:, :k], torch.zeros(m, r - k, dtype=f64)], dim=1) * s_r.sqrt()
    a_out = s_r.sqrt()[:, None] * torch.cat([vh[:k], torch.zeros(r - k, n, dtype=f64)])
    return torch.where(null[:, None], _reference_mean64(a, w), a_out).float(), b_out.float()


def _reference_aggregate(updates: list[ModuleUpdate], reg: ModuleRegistry, base, lora: str) -> ModuleUpdate:
    state, weights = {}, {}
    for key in reg.keys:
        names, holders = reg.params(key), [u for u in updates if key in u.weights]
        if not holders and base is not None:
            state.update({n: base[n] for n in names})
            weights[key] = 0.0
        if not holders:
            continue
        w = [float(u.weights[key]) for u in holders]
        weights[key], mean_w = sum(w), w if sum(w) > 0 else [1.0] * len(w)
        for name in names:
            if lora == "product" and ".lora_A." in name:
                b = name.replace(".lora_A.", ".lora_B.")
                pair = _reference_product([u.state[name] for u in holders], [u.state[b] for u in holders], mean_w)
                state[name], state[b] = pair
            elif not (lora == "product" and ".lora_B." in name):
                state[name] = _reference_mean64([u.state[name] for u in holders], mean_w).float()
    return ModuleUpdate({n: state[n] for k in reg.keys for n in reg.params(k) if n in state}, weights)


def _random_updates(model, reg: ModuleRegistry, seed: int) -> list[ModuleUpdate]:
    """Holders of random module subsets (some modules held by none), weights that repeat across modules,
    zero weights beside positive ones, one module weighted 0 by all its holders, one holder in float16."""
    gen = torch.Generator().manual_seed(seed)
    keys = [k for k in reg.keys if k != "head/shape"]  # head/shape: held by no one
    updates = []
    for k in range(6):
        held = [key for key in keys if torch.rand(1, generator=gen) < 0.7] + ["lora/layer0"]
        counts = torch.randint(0, 3, (len(held),), generator=gen).tolist()
        weights = {key: [0.0, 5.0 + k, 0.37 * (k + 1)][c] for key, c in zip(held, counts, strict=True)}
        weights["moe/gate"] = 0.0
        state = {n: torch.randn(t.shape, generator=gen) for n, t in reg.select(trainable_state(model), weights).items()}
        if k == 3:
            state = {n: t.half() for n, t in state.items()}
        updates.append(ModuleUpdate(state, weights))
    return updates


@pytest.mark.parametrize("lora", ["naive", "product"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_module_aggregation_is_bit_identical_to_the_per_tensor_computation(small, seed: int, lora: str) -> None:
    model, reg = small
    updates = _random_updates(model, reg, seed)
    base = _random_state(model, 100 + seed)
    out = aggregate_modules(updates, reg, base=base, lora=lora)
    ref = _reference_aggregate(updates, reg, base, lora)
    assert out.weights == ref.weights and out.weights["moe/gate"] == 0.0 and out.weights["head/shape"] == 0.0
    assert list(out.state) == list(ref.state) == [n for k in reg.keys for n in reg.params(k)]
    for name, tensor in ref.state.items():
        assert out.state[name].dtype == torch.float32 and torch.equal(out.state[name], tensor), name
    no_base = aggregate_modules(updates, reg, lora=lora)
    assert set(no_base.state) == set(out.state) - set(reg.params("head/shape"))


def test_product_lora_null_directions_are_bit_identical_to_the_reference(small) -> None:
    # fresh B = 0 for some factors: every direction is null and A comes from the mean of the holders' A rows
    model, reg = small
    updates = _random_updates(model, reg, 5)
    for u in updates:
        for name in [n for n in u.state if ".lora_B." in n][:2]:
            u.state[name].zero_()
    out = aggregate_modules(updates, reg, lora="product")
    ref = _reference_aggregate(updates, reg, None, "product")
    assert all(torch.equal(out.state[n], ref.state[n]) for n in ref.state)


def test_weighted_average_is_bit_identical_to_the_per_tensor_computation() -> None:
    gen = torch.Generator().manual_seed(3)
    states = [{"a": torch.randn(3, 5, generator=gen), "b": torch.randn(7, generator=gen)} for _ in range(5)]
    weights = [3.0, 0.0, 1.25, 7.0, 2.0]
    out = weighted_average(states, weights)
    for key in ("a", "b"):
        assert torch.equal(out[key], _reference_mean64([s[key] for s in states], weights).float())
