"""Input checks and output shaping shared by the channel modules (private).

Every public function converts its inputs with :func:`as_float_array` (NaN is
rejected, the argument is named in the error) and returns with
:func:`scalar_or_array`: a Python ``float`` for scalar input, an ndarray of the
broadcast shape otherwise.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def as_float_array(x: ArrayLike, name: str) -> np.ndarray:
    """``np.asarray(x, float)``; ValueError naming ``name`` if not numeric or NaN."""
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number or an array of numbers, got {x!r}") from exc
    if np.isnan(a).any():
        raise ValueError(f"{name} must not be NaN")
    return a


def _first_bad(a: np.ndarray, bad: np.ndarray) -> float:
    return float(a[bad].flat[0]) if a.ndim else float(a)


def positive(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as a float array, every element > 0, else ValueError naming ``name``."""
    a = as_float_array(x, name)
    bad = ~(a > 0)
    if bad.any():
        raise ValueError(f"{name} must be positive, got {_first_bad(a, bad)}")
    return a


def nonnegative(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as a float array, every element ≥ 0, else ValueError naming ``name``."""
    a = as_float_array(x, name)
    bad = ~(a >= 0)
    if bad.any():
        raise ValueError(f"{name} must be non-negative, got {_first_bad(a, bad)}")
    return a


def scalar_or_array(a: np.ndarray) -> float | np.ndarray:
    """A Python float for a 0-d result, the array itself otherwise."""
    a = np.asarray(a)
    return float(a) if a.ndim == 0 else a
