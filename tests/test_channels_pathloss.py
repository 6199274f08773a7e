"""channels.pathloss against hand-computed values of the textbook / 3GPP formulas.

Every expected value below is computed here from the formula written out with
``math`` (TR 38.901 v17.0.0 Tables 7.4.1-1 and 7.4.2-1), not by calling the
model under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from channels.pathloss import (
    TR38901,
    FreeSpace,
    LogDistance,
    PathLossModel,
    los_probability_inh_office,
    los_probability_uma,
    los_probability_umi,
)

C = 299_792_458.0
FC_HZ = 3.5e9
FC_GHZ = 3.5
LOG_FC = math.log10(FC_GHZ)


def d3(d2: float, h_bs: float, h_ut: float) -> float:
    return math.sqrt(d2**2 + (h_bs - h_ut) ** 2)


# --- Friis and log-distance ----------------------------------------------------------------


def test_fspl_textbook_values() -> None:
    # 20·log10(4π d f / c): 100.05 dB at 1 km and 40.05 dB at 1 m for 2.4 GHz.
    model = FreeSpace(2.4e9)
    assert model.path_loss_db(1000.0) == pytest.approx(100.05, abs=0.01)
    assert model.path_loss_db(1.0) == pytest.approx(40.05, abs=0.01)
    assert model.path_loss_db(1000.0) == pytest.approx(20 * math.log10(4 * math.pi * 1000 * 2.4e9 / C), abs=1e-9)


def test_fspl_array_shape_preserved() -> None:
    d = np.array([[1.0, 10.0, 100.0], [1e3, 1e4, 1e5]])
    pl = FreeSpace(2.4e9).path_loss_db(d)
    assert isinstance(pl, np.ndarray) and pl.shape == (2, 3)
    np.testing.assert_allclose(np.diff(pl, axis=1), 20.0)  # +20 dB per decade


def test_log_distance_paper_model() -> None:
    model = LogDistance(ref_gain_db=-30.0, exponent=3.0)
    assert model.path_loss_db(1000.0) == pytest.approx(120.0)
    assert model.gain_db(1000.0, np.random.default_rng(0)) == pytest.approx(-120.0)
    np.testing.assert_allclose(model.path_loss_db(np.array([1.0, 10.0, 100.0])), [30.0, 60.0, 90.0])
    # d0 = 10 m, β0 = −40 dB, α = 2: −40 − 20·log10(50/10)
    assert LogDistance(-40.0, 2.0, 10.0).gain_db(50.0, np.random.default_rng(0)) == pytest.approx(
        -40.0 - 20.0 * math.log10(5.0)
    )


def test_log_distance_clips_below_reference_distance() -> None:
    assert LogDistance(-30.0, 3.0).path_loss_db(0.25) == pytest.approx(30.0)


@pytest.mark.parametrize("model", [LogDistance(-30.0, 3.0, 1.0, 5.0), FreeSpace(2.4e9, shadowing_std_db=5.0)])
def test_shadowing_std_and_mean(model: PathLossModel) -> None:
    d = np.full(20_000, 200.0)
    x = model.gain_db(d, np.random.default_rng(3)) + model.path_loss_db(d)
    assert x.std() == pytest.approx(5.0, rel=0.03)
    assert x.mean() == pytest.approx(0.0, abs=0.15)


def test_no_shadowing_consumes_no_randomness() -> None:
    rng = np.random.default_rng(5)
    before = rng.bit_generator.state
    LogDistance().gain_db(np.array([10.0, 20.0]), rng)
    assert rng.bit_generator.state == before


@pytest.mark.parametrize("model", [LogDistance(), FreeSpace(1e9), TR38901("UMa", 3.5e9, los="los")])
@pytest.mark.parametrize("bad", [0.0, -5.0, np.array([10.0, 0.0])])
def test_non_positive_distance_raises(model: PathLossModel, bad: object) -> None:
    with pytest.raises(ValueError, match="d_2d_m"):
        model.path_loss_db(bad)


def test_bad_model_parameters_raise() -> None:
    with pytest.raises(ValueError, match="carrier_hz"):
        FreeSpace(0.0)
    with pytest.raises(ValueError, match="shadowing_std_db"):
        LogDistance(shadowing_std_db=-1.0)
    with pytest.raises(ValueError, match="scenario"):
        TR38901("RMa", 3.5e9)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="los"):
        TR38901("UMa", 3.5e9, los="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="h_ut_m"):
        TR38901("UMi", 3.5e9, h_ut_m=0.5)


# --- TR 38.901 path loss -------------------------------------------------------------------


def test_uma_los_and_nlos_both_sides_of_breakpoint() -> None:
    h_bs, h_ut = 25.0, 1.5
    d_bp = 4 * (h_bs - 1) * (h_ut - 1) * FC_HZ / C  # ≈ 560 m
    assert 550 < d_bp < 570
    los_model = TR38901("UMa", FC_HZ, los="los")
    nlos_model = TR38901("UMa", FC_HZ, los="nlos")
    assert los_model.breakpoint_m() == pytest.approx(d_bp)
    for d2 in (50.0, 300.0, 1000.0, 3000.0):
        d = d3(d2, h_bs, h_ut)
        if d2 <= d_bp:
            pl_los = 28.0 + 22 * math.log10(d) + 20 * LOG_FC
        else:
            pl_los = 28.0 + 40 * math.log10(d) + 20 * LOG_FC - 9 * math.log10(d_bp**2 + (h_bs - h_ut) ** 2)
        pl_nlos = max(pl_los, 13.54 + 39.08 * math.log10(d) + 20 * LOG_FC - 0.6 * (h_ut - 1.5))
        assert los_model.path_loss_db(d2) == pytest.approx(pl_los, abs=1e-9)
        assert nlos_model.path_loss_db(d2) == pytest.approx(pl_nlos, abs=1e-9)
        assert pl_nlos > pl_los
    # One number checked against a hand calculation on paper: UMa LOS, 100 m, 3.5 GHz ≈ 83.14 dB.
    assert los_model.path_loss_db(100.0) == pytest.approx(83.14, abs=0.01)


def test_uma_nonstandard_ut_height_enters_nlos_and_breakpoint() -> None:
    h_bs, h_ut, d2 = 25.0, 10.0, 200.0
    d_bp = 4 * 24.0 * 9.0 * FC_HZ / C  # ≈ 10 km: still below the breakpoint
    d = d3(d2, h_bs, h_ut)
    pl_los = 28.0 + 22 * math.log10(d) + 20 * LOG_FC
    pl_nlos = max(pl_los, 13.54 + 39.08 * math.log10(d) + 20 * LOG_FC - 0.6 * (h_ut - 1.5))
    model = TR38901("UMa", FC_HZ, h_ut_m=h_ut)
    assert model.breakpoint_m() == pytest.approx(d_bp)
    assert model.path_loss_db(d2, los=True) == pytest.approx(pl_los)
    assert model.path_loss_db(d2, los=False) == pytest.approx(pl_nlos)


def test_umi_los_and_nlos_both_sides_of_breakpoint() -> None:
    h_bs, h_ut = 10.0, 1.5
    d_bp = 4 * (h_bs - 1) * (h_ut - 1) * FC_HZ / C  # ≈ 210 m
    assert 200 < d_bp < 220
    model = TR38901("UMi", FC_HZ)
    for d2 in (30.0, 150.0, 500.0, 2000.0):
        d = d3(d2, h_bs, h_ut)
        if d2 <= d_bp:
            pl_los = 32.4 + 21 * math.log10(d) + 20 * LOG_FC
        else:
            pl_los = 32.4 + 40 * math.log10(d) + 20 * LOG_FC - 9.5 * math.log10(d_bp**2 + (h_bs - h_ut) ** 2)
        pl_nlos = max(pl_los, 35.3 * math.log10(d) + 22.4 + 21.3 * LOG_FC - 0.3 * (h_ut - 1.5))
        assert model.path_loss_db(d2, los=True) == pytest.approx(pl_los, abs=1e-9)
        assert model.path_loss_db(d2, los=False) == pytest.approx(pl_nlos, abs=1e-9)


def test_inh_office_los_nlos_and_the_max() -> None:
    h_bs, h_ut = 3.0, 1.5
    model = TR38901("InH", FC_HZ)
    for d2 in (1.0, 5.0, 20.0, 80.0):
        d = d3(d2, h_bs, h_ut)
        pl_los = 32.4 + 17.3 * math.log10(d) + 20 * LOG_FC
        pl_nlos_prime = 38.3 * math.log10(d) + 17.30 + 24.9 * LOG_FC
        assert model.path_loss_db(d2, los=True) == pytest.approx(pl_los, abs=1e-9)
        assert model.path_loss_db(d2, los=False) == pytest.approx(max(pl_los, pl_nlos_prime), abs=1e-9)
    # Close in, NLOS' is below LOS, so the table's max() returns the LOS loss.
    d = d3(1.0, h_bs, h_ut)
    assert 38.3 * math.log10(d) + 17.30 + 24.9 * LOG_FC < 32.4 + 17.3 * math.log10(d) + 20 * LOG_FC
    assert model.path_loss_db(1.0, los=False) == pytest.approx(model.path_loss_db(1.0, los=True))


def test_fc_in_ghz_at_another_frequency() -> None:
    # UMi LOS at 28 GHz, 50 m: d'_BP ≈ 1.68 km, so PL1 applies.
    d = d3(50.0, 10.0, 1.5)
    expected = 32.4 + 21 * math.log10(d) + 20 * math.log10(28.0)
    assert TR38901("UMi", 28e9, los="los").path_loss_db(50.0) == pytest.approx(expected)


def test_minimum_distance_clipping() -> None:
    uma = TR38901("UMa", FC_HZ, los="los")
    assert uma.path_loss_db(3.0) == pytest.approx(uma.path_loss_db(10.0))
    assert uma.path_loss_db(10.0) == pytest.approx(28.0 + 22 * math.log10(d3(10.0, 25.0, 1.5)) + 20 * LOG_FC)
    # InH with equal heights: d_3D = d_2D, clipped up to 1 m.
    inh = TR38901("InH", FC_HZ, h_bs_m=1.5, h_ut_m=1.5, los="los")
    assert inh.path_loss_db(0.3) == pytest.approx(32.4 + 20 * LOG_FC)


def test_per_link_los_array_and_shapes() -> None:
    model = TR38901("UMa", FC_HZ)
    d = np.array([[100.0, 200.0], [300.0, 400.0]])
    los = np.array([[True, False], [False, True]])
    pl = model.path_loss_db(d, los)
    assert pl.shape == (2, 2)
    assert pl[0, 0] == pytest.approx(model.path_loss_db(100.0, los=True))
    assert pl[0, 1] == pytest.approx(model.path_loss_db(200.0, los=False))


def test_stochastic_model_needs_explicit_los_for_deterministic_loss() -> None:
    with pytest.raises(ValueError, match="los"):
        TR38901("UMa", FC_HZ).path_loss_db(100.0)


def test_positional_construction_used_by_the_scenario_schema() -> None:
    model = TR38901("UMi", FC_HZ, None, 1.5, "nlos", False)
    assert model.bs_height_m == 10.0
    assert model.gain_db(100.0, np.random.default_rng(0)) == pytest.approx(-model.path_loss_db(100.0))


# --- TR 38.901 LOS probability -------------------------------------------------------------


def test_los_probability_uma_values() -> None:
    assert los_probability_uma(10.0) == 1.0
    assert los_probability_uma(18.0) == 1.0
    expected_100 = 18 / 100 + math.exp(-100 / 63) * (1 - 18 / 100)
    assert los_probability_uma(100.0) == pytest.approx(expected_100)
    assert expected_100 == pytest.approx(0.3477, abs=1e-4)
    # Tall UT: C'(18 m) = 0.5^1.5
    c = 0.5**1.5
    expected = expected_100 * (1 + c * 1.25 * 1.0**3 * math.exp(-100 / 150))
    assert los_probability_uma(100.0, h_ut_m=18.0) == pytest.approx(expected)
    assert los_probability_uma(100.0, h_ut_m=13.0) == pytest.approx(expected_100)


def test_los_probability_umi_values() -> None:
    assert los_probability_umi(18.0) == 1.0
    assert los_probability_umi(50.0) == pytest.approx(18 / 50 + math.exp(-50 / 36) * (1 - 18 / 50))
    assert los_probability_umi(1000.0) == pytest.approx(0.018, abs=1e-3)


def test_los_probability_inh_values() -> None:
    assert los_probability_inh_office(1.2) == 1.0
    assert los_probability_inh_office(3.0) == pytest.approx(math.exp(-1.8 / 4.7))
    assert los_probability_inh_office(6.5) == pytest.approx(0.32)
    assert los_probability_inh_office(20.0) == pytest.approx(0.32 * math.exp(-13.5 / 32.6))
    assert los_probability_inh_office(5.0, mixed=False) == 1.0
    assert los_probability_inh_office(49.0, mixed=False) == pytest.approx(math.exp(-44 / 70.8))
    assert los_probability_inh_office(100.0, mixed=False) == pytest.approx(0.54 * math.exp(-51 / 211.7))


def test_los_probability_vectorized() -> None:
    d = np.array([[0.0, 18.0, 100.0], [500.0, 1000.0, 5000.0]])
    for f in (los_probability_uma, los_probability_umi, los_probability_inh_office):
        p = f(d)
        assert isinstance(p, np.ndarray) and p.shape == (2, 3)
        assert np.all((p >= 0) & (p <= 1))
        assert np.all(np.diff(p.ravel()) <= 1e-12)  # non-increasing in distance
    assert los_probability_umi(d)[0, 2] == pytest.approx(18 / 100 + math.exp(-100 / 36) * 0.82)
    with pytest.raises(ValueError, match="d_2d_m"):
        los_probability_umi(-1.0)


def test_stochastic_los_frequency_matches_probability() -> None:
    n = 20_000
    model = TR38901("UMa", FC_HZ, shadowing=False)
    gain = model.gain_db(np.full(n, 100.0), np.random.default_rng(11))
    pl_los = model.path_loss_db(100.0, los=True)
    pl_nlos = model.path_loss_db(100.0, los=False)
    is_los = np.isclose(-gain, pl_los)
    assert np.all(is_los | np.isclose(-gain, pl_nlos))
    p = 18 / 100 + math.exp(-100 / 63) * (1 - 18 / 100)
    assert is_los.mean() == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / n))


@pytest.mark.parametrize(
    ("scenario", "los", "sigma"),
    [("UMa", "los", 4.0), ("UMa", "nlos", 6.0), ("UMi", "los", 4.0), ("UMi", "nlos", 7.82),
     ("InH", "los", 3.0), ("InH", "nlos", 8.03)],
)  # fmt: skip
def test_shadow_fading_std_matches_table(scenario: str, los: str, sigma: float) -> None:
    model = TR38901(scenario, FC_HZ, los=los)  # type: ignore[arg-type]
    d = np.full(20_000, 40.0)
    x = -model.gain_db(d, np.random.default_rng(2)) - model.path_loss_db(d)
    assert x.std() == pytest.approx(sigma, rel=0.03)
    assert x.mean() == pytest.approx(0.0, abs=4 * sigma / math.sqrt(len(d)))


def test_gain_db_is_deterministic_for_a_seed() -> None:
    model = TR38901("UMi", FC_HZ)
    d = np.linspace(20.0, 800.0, 50)
    np.testing.assert_array_equal(model.gain_db(d, np.random.default_rng(4)), model.gain_db(d, np.random.default_rng(4)))
    assert isinstance(model.gain_db(100.0, np.random.default_rng(4)), float)
