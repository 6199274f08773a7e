"""Message payload size: the bytes of the tensors actually sent.

    >>> import torch
    >>> state_nbytes({"a": torch.zeros(10), "b": torch.zeros(2, 3, dtype=torch.float16)})
    52
"""

from __future__ import annotations

import torch


def state_nbytes(state: dict[str, torch.Tensor]) -> int:
    """Σ numel × element size over the tensors (dtype-aware; no header, no framing)."""
    return sum(t.numel() * t.element_size() for t in state.values())
