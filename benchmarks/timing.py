"""Host-time accounting for the benchmark scripts (a performance figure, never a simulated quantity)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def timed(table: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` that adds the host seconds of every call to ``table[name]`` (a defaultdict(float))."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            table[name] += time.perf_counter() - start

    return wrapper
