"""channels.units: dB/linear and dBm/W conversions against hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from channels.units import SPEED_OF_LIGHT_M_S, db_to_linear, dbm_to_w, linear_to_db, w_to_dbm


def test_speed_of_light_is_the_si_value() -> None:
    assert SPEED_OF_LIGHT_M_S == 299_792_458.0


@pytest.mark.parametrize(
    ("x_db", "expected"),
    [(0.0, 1.0), (30.0, 1000.0), (-30.0, 1e-3), (3.0, 1.9952623149688795), (-174.0, 10 ** -17.4)],
)
def test_db_to_linear_hand_values(x_db: float, expected: float) -> None:
    out = db_to_linear(x_db)
    assert isinstance(out, float)
    assert out == pytest.approx(expected, rel=1e-12)


def test_linear_to_db_hand_values_and_zero() -> None:
    assert linear_to_db(100.0) == pytest.approx(20.0)
    assert linear_to_db(0.5) == pytest.approx(-3.010299956639812)
    assert linear_to_db(0.0) == -math.inf


def test_linear_to_db_negative_raises_naming_argument() -> None:
    with pytest.raises(ValueError, match="x"):
        linear_to_db(-1.0)
    with pytest.raises(ValueError):
        linear_to_db(np.array([1.0, -0.1]))


def test_dbm_w_hand_values() -> None:
    assert dbm_to_w(30.0) == pytest.approx(1.0)
    assert dbm_to_w(0.0) == pytest.approx(1e-3)
    assert dbm_to_w(23.0) == pytest.approx(0.19952623149688797)
    assert w_to_dbm(1e-3) == pytest.approx(0.0, abs=1e-12)
    assert w_to_dbm(0.2) == pytest.approx(23.010299956639813)
    assert w_to_dbm(0.0) == -math.inf
    with pytest.raises(ValueError, match="p_w"):
        w_to_dbm(-1.0)


def test_arrays_keep_shape_and_round_trip() -> None:
    x_db = np.linspace(-150.0, 50.0, 12).reshape(3, 4)
    lin = db_to_linear(x_db)
    assert isinstance(lin, np.ndarray) and lin.shape == (3, 4)
    np.testing.assert_allclose(lin, 10.0 ** (x_db / 10.0), rtol=1e-12)
    np.testing.assert_allclose(linear_to_db(lin), x_db, atol=1e-9)
    p_w = dbm_to_w(x_db)
    assert p_w.shape == (3, 4)
    np.testing.assert_allclose(w_to_dbm(p_w), x_db, atol=1e-9)


def test_lists_are_accepted() -> None:
    np.testing.assert_allclose(db_to_linear([10.0, 20.0]), [10.0, 100.0])


def test_nan_is_rejected() -> None:
    with pytest.raises(ValueError, match="x_db"):
        db_to_linear(float("nan"))
