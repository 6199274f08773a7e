"""Unit conversions, in one place: dB ↔ linear ratio, dBm ↔ W.

    >>> float(db_to_linear(30.0)), float(dbm_to_w(30.0)), float(w_to_dbm(0.2))
    (1000.0, 1.0, 23.010299956639813)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

SPEED_OF_LIGHT_M_S = 299_792_458.0


def db_to_linear(x_db: ArrayLike) -> np.ndarray | float:
    """Power ratio 10^(x/10)."""
    return np.power(10.0, np.asarray(x_db, dtype=float) / 10.0)


def linear_to_db(x: ArrayLike) -> np.ndarray | float:
    """10·log10(x) for a power ratio x ≥ 0 (0 gives −inf)."""
    x = np.asarray(x, dtype=float)
    if np.any(x < 0):
        raise ValueError("linear_to_db needs non-negative power ratios")
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(x)


def dbm_to_w(p_dbm: ArrayLike) -> np.ndarray | float:
    """P[W] = 10^((P[dBm] − 30)/10)."""
    return db_to_linear(np.asarray(p_dbm, dtype=float) - 30.0)


def w_to_dbm(p_w: ArrayLike) -> np.ndarray | float:
    """P[dBm] = 10·log10(P[W]) + 30."""
    return linear_to_db(p_w) + 30.0
