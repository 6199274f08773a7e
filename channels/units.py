"""Unit conversions, in one place: dB ↔ linear power ratio, dBm ↔ W.

Everything inside :mod:`channels` is SI (W, m, Hz, s); dB and dBm appear only
at the edges, with the unit in the argument name. Scalars give floats, arrays
give arrays of the same shape.

    >>> db_to_linear(30.0), dbm_to_w(30.0), round(w_to_dbm(0.2), 4)
    (1000.0, 1.0, 23.0103)
    >>> linear_to_db([1.0, 100.0])
    array([ 0., 20.])
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from channels._validate import as_float_array, nonnegative, scalar_or_array

SPEED_OF_LIGHT_M_S = 299_792_458.0
"""Speed of light in vacuum c, m/s (exact, SI definition of the metre)."""


def db_to_linear(x_db: ArrayLike) -> float | np.ndarray:
    """Power ratio from decibels: x = 10^(x_dB / 10) (IEC 60027-3 definition of the decibel).

    Args:
        x_db: power ratio in dB (any real value, ±inf allowed).

    Returns:
        The linear power ratio, float for scalar input, ndarray otherwise.
    """
    return scalar_or_array(np.power(10.0, as_float_array(x_db, "x_db") / 10.0))


def linear_to_db(x: ArrayLike) -> float | np.ndarray:
    """Decibels from a power ratio: x_dB = 10·log10(x) (IEC 60027-3).

    ``x = 0`` gives −inf (numpy semantics); a negative ratio has no dB value.

    Raises:
        ValueError: ``x`` has a negative (or NaN) element.
    """
    a = nonnegative(x, "x")
    with np.errstate(divide="ignore"):
        return scalar_or_array(10.0 * np.log10(a))


def dbm_to_w(p_dbm: ArrayLike) -> float | np.ndarray:
    """Power in W from dBm: P_W = 10^((P_dBm − 30) / 10) (0 dBm = 1 mW)."""
    return scalar_or_array(np.power(10.0, (as_float_array(p_dbm, "p_dbm") - 30.0) / 10.0))


def w_to_dbm(p_w: ArrayLike) -> float | np.ndarray:
    """Power in dBm from W: P_dBm = 10·log10(P_W) + 30 (0 W gives −inf).

    Raises:
        ValueError: ``p_w`` has a negative (or NaN) element.
    """
    a = nonnegative(p_w, "p_w")
    with np.errstate(divide="ignore"):
        return scalar_or_array(10.0 * np.log10(a) + 30.0)
