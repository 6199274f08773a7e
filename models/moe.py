"""A sparse mixture-of-experts (MoE) feed-forward layer with top-k routing and a load-balancing loss.

Gate (Shazeer et al. 2017, arXiv 1701.06538, eqs. 3–5): logits g = W_g x
(``gate``, Linear(d, E)); each token goes to the k experts with the largest
logits, with weights softmax over those k logits only (= the full softmax
renormalised over the top k; so with k = 1 the weight is 1 and the gate
learns from the load-balancing loss alone). Output: y = x + Σ_{j ∈ top-k(x)} w_j(x)·E_j(x),
each expert E_j an MLP d → h → d with GELU. Experts only see their tokens
(gather, compute, scatter-add), so the work is k expert MLPs per token,
whatever the routing.

Load balancing (Fedus et al. 2021, Switch Transformer, arXiv 2101.03961,
eq. 4): loss = α·E·Σ_i f_i·P_i with f_i the fraction of routed token slots that
went to expert i and P_i the mean full-softmax probability of expert i over the
tokens. Switch routes to one expert; for top-k each token fills k slots and
f_i = (slots of i) / (k·T), so Σ_i f_i = 1 and perfectly uniform routing still
gives E·Σ_i (1/E)(1/E) = 1. :func:`load_balancing_loss` returns E·Σ_i f_i·P_i;
the trainer multiplies it by α (``ModelConfig.moe_aux_weight``).

    >>> torch.manual_seed(0) and None
    >>> moe = MoELayer(d_model=8, n_experts=4, top_k=2, hidden=16)
    >>> y = moe(torch.randn(3, 5, 8))
    >>> tuple(y.shape), int(moe.last_expert_tokens.sum())  # 15 tokens, 2 experts each
    ((3, 5, 8), 30)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def top_k_routing(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, E) gate logits → expert indices (T, k) and their weights (T, k): softmax over the k largest logits.

    >>> idx, w = top_k_routing(torch.tensor([[0.0, 2.0, 1.0]]), 2)
    >>> idx.tolist(), [round(x, 4) for x in w[0].tolist()]  # e/(e+1), 1/(e+1)
    ([[1, 2]], [0.7311, 0.2689])
    """
    top, idx = logits.topk(k, dim=-1)
    return idx, torch.softmax(top, dim=-1)


def load_balancing_loss(probs: torch.Tensor, expert_idx: torch.Tensor, n_experts: int) -> torch.Tensor:
    """E·Σ_i f_i·P_i (Switch Transformer eq. 4 without α), top-k generalised as in the module docstring.

    Args:
        probs: (T, E) full softmax of the gate logits.
        expert_idx: (T, k) experts each token was routed to.
        n_experts: E.

    >>> probs = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    >>> float(load_balancing_loss(probs, torch.tensor([[0], [1]]), 2))  # balanced: 2·(½·½ + ½·½)
    1.0
    """
    slots = torch.bincount(expert_idx.reshape(-1), minlength=n_experts).to(probs.dtype)
    f = slots / expert_idx.numel()
    return n_experts * torch.dot(f, probs.mean(dim=0))


class Expert(nn.Module):
    """An MLP d → h → d with GELU (``w_in``, ``w_out``; not named fc1/fc2 so LoRA never targets them)."""

    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.w_in = nn.Linear(d_model, hidden)
        self.w_out = nn.Linear(hidden, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_out(F.gelu(self.w_in(x)))


class MoELayer(nn.Module):
    """Residual top-k MoE feed-forward layer (see the module docstring).

    After each forward, :attr:`last_expert_tokens` holds the number of tokens
    routed to each expert (int64, (E,), sums to k·T) and :attr:`last_aux_loss`
    the unscaled load-balancing loss (a tensor in the autograd graph).
    """

    def __init__(self, d_model: int, n_experts: int, top_k: int, hidden: int) -> None:
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must be in [1, n_experts={n_experts}], got {top_k}")
        self.top_k = top_k
        self.gate = nn.Linear(d_model, n_experts)
        self.experts = nn.ModuleList(Expert(d_model, hidden) for _ in range(n_experts))
        self.last_expert_tokens = torch.zeros(n_experts, dtype=torch.long)
        self.last_aux_loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d) → (..., d); every token routed on its own."""
        tokens = x.reshape(-1, x.shape[-1])
        logits = self.gate(tokens)
        idx, weight = top_k_routing(logits, self.top_k)
        n_experts = len(self.experts)
        self.last_aux_loss = load_balancing_loss(torch.softmax(logits, dim=-1), idx, n_experts)
        self.last_expert_tokens = torch.bincount(idx.reshape(-1).detach(), minlength=n_experts)
        # group the token slots by expert: one gather, one call per used expert, one scatter-add
        order = idx.reshape(-1).argsort(stable=True)
        token = order // self.top_k
        routed = tokens[token].split(self.last_expert_tokens.tolist())
        outputs = torch.cat([expert(rows) for expert, rows in zip(self.experts, routed, strict=True) if len(rows)])
        out = tokens.index_add(0, token, weight.reshape(-1)[order, None] * outputs)
        return out.reshape(x.shape)
