"""Bottleneck adapters (Houlsby et al. 2019, "Parameter-Efficient Transfer Learning for NLP", arXiv 1902.00751).

x ← x + W_up·GELU(W_down·x + b_down) + b_up, with W_down: d → m and W_up: m → d
(m ≪ d). ``up`` starts at zero, so an adapter starts as the identity and the
adapted model equals the base model (Houlsby et al. §2.1 use a near-identity init).

    >>> adapter = BottleneckAdapter(d_model=8, bottleneck=2)
    >>> x = torch.randn(3, 8)
    >>> torch.equal(adapter(x), x)
    True
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BottleneckAdapter(nn.Module):
    """Residual ``down`` (d → m), GELU, ``up`` (m → d, zero-initialised)."""

    def __init__(self, d_model: int, bottleneck: int) -> None:
        super().__init__()
        self.down = nn.Linear(d_model, bottleneck)
        self.up = nn.Linear(bottleneck, d_model)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d) → (..., d)."""
        return x + self.up(F.gelu(self.down(x)))
