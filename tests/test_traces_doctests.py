"""The examples in the docstrings of traces.* (and sim.inputs, which builds on them) run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["traces.recorder", "traces.inputs", "traces.generators", "traces.importers", "sim.inputs"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
