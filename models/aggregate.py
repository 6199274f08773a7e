"""Aggregation of model states: FedAvg over whole states and module-wise over holders (LoRA-aware).

    >>> import torch
    >>> weighted_average([{"w": torch.tensor([0.0])}, {"w": torch.tensor([3.0])}], [2, 1])["w"]
    tensor([1.])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from models.registry import ModuleRegistry

LORA_MODES = ("naive", "product")


def _normalised(weights: Sequence[float]) -> torch.Tensor:
    """w_k / Σ_j w_j as float64, each quotient rounded once (Σ w_j > 0 assumed); computed once per module."""
    total = float(sum(weights))
    return torch.tensor([float(x) / total for x in weights], dtype=torch.float64)


def _mean64(tensors: Sequence[torch.Tensor], w: torch.Tensor) -> torch.Tensor:
    """Σ_k w_k·x_k of same-shaped tensors in float64, for weights ``w`` from :func:`_normalised`: w @ X, X the
    (K, numel) stack.

    Stacked in the inputs' dtype and widened once (exact: float64 holds every
    float32 and float16 value), then one (K,) @ (K, numel) product.
    Widening each tensor before stacking gives the same X at about twice the
    cost (benchmarks/aggregation.py); gathering several parameters into one
    wider X does not pay either: the extra flattening and copying costs more
    than the per-parameter products it saves.
    """
    stacked = torch.stack(list(tensors)).view(len(tensors), tensors[0].numel())
    return (w @ stacked.double()).view(tensors[0].shape)


def _mean32(tensors: Sequence[torch.Tensor], w: torch.Tensor) -> torch.Tensor:
    """:func:`_mean64` rounded to float32; the mean of one tensor is that tensor (as float32, not copied).

    Exact either way: w = (1.0,) and float64(x)·1.0 rounds back to float32(x). D2D relays
    aggregate many modules held by one child (600 of the paper preset's 2 800 calls).
    """
    if len(tensors) == 1:
        return tensors[0].float()
    return _mean64(tensors, w).float()


def weighted_average(states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """FedAvg (McMahan et al. 2017, arXiv 1602.05629): x = Σ_k w_k·x_k / Σ_k w_k for every tensor.

    Accumulated in float64 and returned in float32: the result is the exact
    weighted mean rounded once, and averaging group averages (edge, then
    cloud) differs from the flat average only by the groups' own rounding
    (local training later amplifies such differences). Keys come out in the
    first state's order. Typical weights are the clients' sample counts.
    :func:`aggregate_modules` is the same mean taken module by module over
    each module's holders.

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
    _check_shapes(states, keys)
    w = _normalised(weights)
    return {key: _mean32([s[key] for s in states], w) for key in keys}


def _check_shapes(states: Sequence[dict[str, torch.Tensor]], key_names: Sequence[str]) -> None:
    """ValueError naming the first key whose tensors' shapes differ between ``states``."""
    for key in key_names:
        first = states[0][key].shape
        for k, s in enumerate(states):
            if s[key].shape != first:
                shape = tuple(s[key].shape)
                raise ValueError(f"state {k} has shape {shape} for key {key!r}, state 0 has {tuple(first)}")


@dataclass(frozen=True)
class ModuleUpdate:
    """What one holder sends: the tensors of its modules and an aggregation weight per module.

    Attributes:
        state: tensors of the modules this holder sends, by parameter name.
        weights: module key → weight (sample counts; see :attr:`models.train.TrainResult.module_weights`);
            its keys are the modules carried.
    """

    state: dict[str, torch.Tensor]
    weights: dict[str, float]


def _validate(updates: Sequence[ModuleUpdate], params: dict[str, tuple[str, ...]]) -> None:
    """ValueError for an update weighting a module not in ``params`` (module → parameter names), with a
    negative or non-finite weight, or whose tensors are not exactly those of its weighted modules."""
    for k, u in enumerate(updates):
        unknown = sorted(u.weights.keys() - params.keys())
        if unknown:
            raise ValueError(f"update {k} weights unknown modules {unknown}")
        bad = {key: w for key, w in u.weights.items() if not 0 <= float(w) < float("inf")}
        if bad:
            raise ValueError(f"update {k} has weights that are not finite and >= 0: {bad}")
        expected = {name for key in u.weights for name in params[key]}
        missing, extra = sorted(expected - u.state.keys()), sorted(u.state.keys() - expected)
        if missing or extra:
            raise ValueError(f"update {k}'s tensors do not match its weighted modules: missing {missing[:3]}, "
                             f"not in a weighted module {extra[:3]}")  # fmt: skip


def _lora_pairs(names: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(lora_A name, lora_B name) pairs of one module, and its other parameter names."""
    pairs = [(a, a.replace(".lora_A.", ".lora_B.")) for a in names if ".lora_A." in a]
    paired = {n for pair in pairs for n in pair}
    if not all(b in names for _, b in pairs):
        raise ValueError(f"LoRA module with unpaired factors: {sorted(names)}")
    return pairs, [n for n in names if n not in paired]


def _product_mean(
    a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-r factors (A, B) of ΔW = Σ_k w_k B_k A_k / Σ_k w_k by truncated SVD: B = U_r√S_r, A = √S_r V_rᵀ.

    Directions with a zero singular value (ΔW of rank < r; tolerance
    σ_max·max(m, n)·ε, as ``numpy.linalg.matrix_rank``) get B's column 0 and
    the weighted mean of the holders' A rows there: B·A is unchanged, and the
    factors stay trainable (with A = B = 0, LoRA's gradients vanish; e.g.
    before anyone trained, when every B_k = 0). ``w``: the holders' weights
    divided by their sum (:func:`_normalised`).
    """
    a64, b64 = torch.stack(list(a)).double(), torch.stack(list(b)).double()  # widened once, not per holder
    delta = _mean64([bk @ ak for ak, bk in zip(a64, b64, strict=True)], w)
    r = a[0].shape[0]
    u, s, vh = torch.linalg.svd(delta, full_matrices=False)
    n = min(r, len(s))
    s_r = torch.zeros(r, dtype=torch.float64)
    s_r[:n] = s[:n]
    u_r = torch.zeros(delta.shape[0], r, dtype=torch.float64)
    vh_r = torch.zeros(r, delta.shape[1], dtype=torch.float64)
    u_r[:, :n], vh_r[:n] = u[:, :n], vh[:n]
    tol = float(s.max()) * max(delta.shape) * torch.finfo(torch.float64).eps if len(s) else 0.0
    null = s_r <= tol
    root = s_r.sqrt()
    b_out, a_out = u_r * root, root[:, None] * vh_r
    if bool(null.any()):
        a_out[null] = _mean64(a, w)[null]
    return a_out.float(), b_out.float()


def aggregate_modules(
    updates: Sequence[ModuleUpdate],
    registry: ModuleRegistry,
    *,
    base: dict[str, torch.Tensor] | None = None,
    lora: Literal["naive", "product"] = "naive",
) -> ModuleUpdate:
    """Module-wise FedAvg: each module is the weighted mean over exactly the updates that hold it.

    For module m with holders H_m (updates whose ``weights`` has m):
    x_m = Σ_{k∈H_m} w_k,m·x_k,m / Σ_{k∈H_m} w_k,m (float64 accumulation,
    float32 result, as :func:`weighted_average`), and its result weight is
    Σ_{k∈H_m} w_k,m. If every holder's weight is 0 the plain mean is taken
    (weight 0): an all-zero vote still carries models, and dropping them would
    lose the module. A module held by no update but present in ``base`` passes
    through unchanged from ``base`` with weight 0; one in neither is left out.
    Output tensors and weights come in registry order.

    ``lora="product"`` (LoRA-aware; cf. FedEx-LoRA, Singhal et al. 2024,
    arXiv 2410.09432): for every LoRA pair of one target Linear, the exact mean
    update ΔW = Σ_k w_k B_k A_k / Σ_k w_k is formed and re-factored to rank r
    by truncated SVD (B = U_r·√S_r, A = √S_r·V_rᵀ): exact whenever
    rank(ΔW) ≤ r, else the best rank-r approximation (Eckart–Young).
    ``"naive"`` averages A and B separately, and the mean of products is not
    the product of means. With 1×1 factors A₁ = B₁ = 1 and A₂ = B₂ = 3 at equal
    weights, the true mean update is (1·1 + 3·3)/2 = 5; naive gives
    mean(B)·mean(A) = 2·2 = 4:

    >>> from models.net import ModelConfig, build_model, trainable_state
    >>> model = build_model(ModelConfig(n_layers=1, lora_rank=1), seed=0)
    >>> reg = ModuleRegistry(model)
    >>> a, b = reg.params("lora/layer0")[:2]  # lora_A (1×64) and lora_B (64×1) of layer 0's q
    >>> def holder(x):
    ...     zeros = {n: torch.zeros_like(t) for n, t in reg.select(trainable_state(model), ["lora/layer0"]).items()}
    ...     zeros[a][0, 0] = zeros[b][0, 0] = x
    ...     return ModuleUpdate(zeros, {"lora/layer0": 1.0})
    >>> for mode in ("naive", "product"):
    ...     out = aggregate_modules([holder(1.0), holder(3.0)], reg, lora=mode).state
    ...     print(mode, round(float((out[b] @ out[a])[0, 0]), 4))
    naive 4.0
    product 5.0

    Raises:
        ValueError: an unknown ``lora`` mode; an update weighting an unknown module, with a negative or
            non-finite weight, or whose tensors do not match its weighted modules; tensors of one parameter
            with different shapes (naming it); a module only partly in ``base``.
    """
    if lora not in LORA_MODES:
        raise ValueError(f"lora must be one of {list(LORA_MODES)}, got {lora!r}")
    params = {key: registry.params(key) for key in registry.keys}
    _validate(updates, params)
    state: dict[str, torch.Tensor] = {}
    weights: dict[str, float] = {}
    for key, names in params.items():
        holders = [u for u in updates if key in u.weights]
        if not holders:
            in_base = [n for n in names if base is not None and n in base]
            if in_base and len(in_base) < len(names):
                raise ValueError(f"base holds only part of module {key!r}: {in_base}")
            if in_base:
                state.update({n: base[n] for n in names})  # type: ignore[index]
                weights[key] = 0.0
            continue
        w = [float(u.weights[key]) for u in holders]
        total = sum(w)
        norm_w = _normalised(w if total > 0 else [1.0] * len(w))
        _check_shapes([u.state for u in holders], names)
        plain = names
        if lora == "product" and key.startswith("lora/"):
            pairs, plain = _lora_pairs(names)
            for a, b in pairs:
                state[a], state[b] = _product_mean(
                    [u.state[a] for u in holders], [u.state[b] for u in holders], norm_w
                )
        for name in plain:
            state[name] = _mean32([u.state[name] for u in holders], norm_w)
        weights[key] = total
    return ModuleUpdate({n: state[n] for names in params.values() for n in names if n in state}, weights)
