"""The docstring examples of every channels module run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["channels", "channels.units", "channels.geometry", "channels.pathloss", "channels.fading",
           "channels.link", "channels.compute", "channels.contacts"]  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0


def test_channels_imports_no_simulator_or_torch() -> None:
    import ast
    import pathlib

    import channels

    for path in pathlib.Path(channels.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for n in names:
                assert n.split(".")[0] not in {"simpy", "torch", "h5py"}, f"{path.name} imports {n}"
