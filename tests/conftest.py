"""Shared fixtures: small scenarios built in code (no downloads, tiny models)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def network_only_small() -> list[str]:
    """Overrides turning the small preset into a fast network-only scenario."""
    return ["training.enabled=false", "rounds=2"]
