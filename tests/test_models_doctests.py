"""The docstring examples of every models module run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "models",
    "models.data",
    "models.net",
    "models.train",
    "models.aggregate",
    "models.payload",
    "models.registry",
    "models.moe",
    "models.adapters",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0
