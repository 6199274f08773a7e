"""Mixture-of-experts routing and load-balancing loss; bottleneck adapters."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from models import ModelConfig, build_model, make_m3t_dataset, trainable_state
from models.adapters import BottleneckAdapter
from models.moe import MoELayer, load_balancing_loss, top_k_routing
from models.net import base_net


def _indicator_experts(moe: MoELayer) -> None:
    """Make expert j output the basis vector e_j whatever its input, so y − x = the token's routing weights."""
    with torch.no_grad():
        for j, expert in enumerate(moe.experts):
            for p in expert.parameters():
                p.zero_()
            expert.w_out.bias[j] = 1.0


@pytest.mark.parametrize(("n_experts", "k"), [(4, 1), (4, 2), (5, 3), (3, 3)])
def test_each_token_goes_to_exactly_k_experts_with_renormalised_weights(n_experts: int, k: int) -> None:
    torch.manual_seed(0)
    moe = MoELayer(d_model=8, n_experts=n_experts, top_k=k, hidden=4)
    _indicator_experts(moe)
    x = torch.randn(6, 7, 8)
    with torch.no_grad():
        routing = (moe(x) - x).reshape(-1, 8)[:, :n_experts]
        logits = moe.gate(x.reshape(-1, 8))
    assert ((routing.abs() > 1e-6).sum(dim=1) == k).all()  # k nonzero weights per token
    assert torch.allclose(routing.sum(dim=1), torch.ones(42), atol=1e-6)
    top = logits.topk(k, dim=1)
    chosen = torch.zeros_like(routing, dtype=torch.bool).scatter_(1, top.indices, True)
    assert torch.equal(routing.abs() > 1e-6, chosen)  # the k largest logits
    expected = torch.softmax(logits, dim=1) * chosen
    assert torch.allclose(routing, expected / expected.sum(dim=1, keepdim=True), atol=1e-6)
    assert torch.equal(moe.last_expert_tokens, chosen.sum(dim=0))
    assert int(moe.last_expert_tokens.sum()) == k * 42


def test_top_k_routing_weights_by_hand() -> None:
    idx, w = top_k_routing(torch.tensor([[1.0, 3.0, 2.0, 0.0]]), 3)
    assert idx.tolist() == [[1, 2, 0]]
    z = math.e**3 + math.e**2 + math.e
    assert w[0].tolist() == pytest.approx([math.e**3 / z, math.e**2 / z, math.e / z])


def test_load_balancing_loss_by_hand() -> None:
    # E = 2, top-1, two tokens with gate logits [2, 0] and [1, 0]: both go to expert 0, so f = (1, 0);
    # P_0 = (σ(2) + σ(1)) / 2 with σ(a) = 1 / (1 + e^(−a)); loss = E·(f_0·P_0 + f_1·P_1) = 2·P_0.
    moe = MoELayer(d_model=2, n_experts=2, top_k=1, hidden=3)
    with torch.no_grad():
        moe.gate.weight.copy_(torch.eye(2))
        moe.gate.bias.zero_()
    moe(torch.tensor([[2.0, 0.0], [1.0, 0.0]]))
    sigma = [1 / (1 + math.exp(-a)) for a in (2.0, 1.0)]
    assert float(moe.last_aux_loss.detach()) == pytest.approx(2 * (sigma[0] + sigma[1]) / 2, rel=1e-6)
    assert moe.last_expert_tokens.tolist() == [2, 0]


def test_load_balancing_loss_top_2_by_hand() -> None:
    # E = 3, top-2, two tokens routed to {0, 1} and {0, 2}: slots (2, 1, 1) of k·T = 4 → f = (½, ¼, ¼)
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.4, 0.1, 0.5]])
    # P = mean over tokens = (0.45, 0.2, 0.35)
    loss = load_balancing_loss(probs, torch.tensor([[0, 1], [2, 0]]), 3)
    assert float(loss) == pytest.approx(3 * (0.5 * 0.45 + 0.25 * 0.2 + 0.25 * 0.35))
    # uniform routing and probabilities give exactly 1, the minimum
    uniform = load_balancing_loss(torch.full((3, 3), 1 / 3), torch.tensor([[0, 1], [1, 2], [2, 0]]), 3)
    assert float(uniform) == pytest.approx(1.0, rel=1e-6)


def test_gradients_reach_the_gate_and_the_chosen_experts_only() -> None:
    # top-2: the renormalised weights depend on the gate (with top-1 the single weight is 1 and the gate
    # learns from the load-balancing loss alone)
    torch.manual_seed(1)
    moe = MoELayer(d_model=4, n_experts=4, top_k=2, hidden=8)
    x = torch.randn(1, 4)
    moe(x).sum().backward()
    used = set(moe.last_expert_tokens.nonzero().flatten().tolist())
    assert len(used) == 2
    assert moe.gate.weight.grad is not None and moe.gate.weight.grad.abs().sum() > 0
    for j, expert in enumerate(moe.experts):
        grad = expert.w_out.weight.grad
        assert (grad is not None and grad.abs().sum() > 0) == (j in used), j


def test_moe_validation() -> None:
    with pytest.raises(ValueError, match="top_k"):
        MoELayer(4, n_experts=2, top_k=3, hidden=4)
    with pytest.raises(ValueError, match="ModelConfig.moe_top_k"):
        ModelConfig(moe_experts=2, moe_top_k=3)
    with pytest.raises(ValueError, match="ModelConfig.moe_experts"):
        ModelConfig(moe_experts=-1)
    with pytest.raises(ValueError, match="ModelConfig.moe_aux_weight"):
        ModelConfig(moe_aux_weight=-0.1)
    with pytest.raises(ValueError, match="ModelConfig.moe_hidden"):
        ModelConfig(moe_hidden=0)
    assert base_net(build_model(ModelConfig(moe_experts=0), seed=0)).moe is None


def test_moe_hidden_width_and_default() -> None:
    assert base_net(build_model(ModelConfig(), seed=0)).moe.experts[0].w_in.out_features == 128  # 2·d
    assert base_net(build_model(ModelConfig(moe_hidden=24), seed=0)).moe.experts[0].w_in.out_features == 24


def test_bottleneck_adapter_by_hand_and_starts_as_identity() -> None:
    adapter = BottleneckAdapter(d_model=3, bottleneck=2)
    x = torch.tensor([[1.0, -2.0, 0.5]])
    assert torch.equal(adapter(x), x)
    with torch.no_grad():
        adapter.down.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        adapter.down.bias.zero_()
        adapter.up.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]]))
        adapter.up.bias.copy_(torch.tensor([0.0, 1.0, 0.0]))
    gelu = [v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in (1.0, -2.0)]  # exact GELU of W_down·x
    expected = [1.0 + gelu[0], -2.0 + 1.0, 0.5 + 2 * gelu[1]]
    assert adapter(x)[0].tolist() == pytest.approx(expected, rel=1e-6)


def test_model_with_adapters_starts_equal_to_its_backbone_and_adapters_train() -> None:
    model = build_model(ModelConfig(adapters=("lora", "bottleneck")), seed=0)
    net = base_net(model)
    inputs = make_m3t_dataset(4, seed=0).inputs()
    with torch.no_grad():
        with_adapters = model(inputs)
        adapters, net.fusion.adapters = net.fusion.adapters, nn.ModuleList()
        without = model(inputs)
        net.fusion.adapters = adapters
    assert all(torch.equal(with_adapters[t], without[t]) for t in with_adapters)
    names = [n for n in trainable_state(model) if ".adapters." in n]
    assert len(names) == 2 * 4 and all(".fusion.adapters." in n for n in names)
    with pytest.raises(ValueError, match="ModelConfig.adapters"):
        ModelConfig(adapters=("prefix",))
    with pytest.raises(ValueError, match="ModelConfig.adapter_dim"):
        ModelConfig(adapter_dim=0)
