"""channels.fading: fading distributions and block-fading bookkeeping."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from channels.fading import BlockFading, fading_power_gain

N = 20_000


def test_none_is_ones_and_draws_nothing() -> None:
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    g = fading_power_gain("none", (3, 2), rng)
    np.testing.assert_array_equal(g, np.ones((3, 2)))
    assert rng.bit_generator.state == before


def test_rayleigh_mean_one_and_exponential_cdf() -> None:
    g = fading_power_gain("rayleigh", N, np.random.default_rng(1))
    assert g.shape == (N,)
    assert g.mean() == pytest.approx(1.0, abs=4 / math.sqrt(N))
    for x in (0.1, 1.0, 3.0):
        assert np.mean(g < x) == pytest.approx(1 - math.exp(-x), abs=0.015)
    assert stats.kstest(g, "expon").pvalue > 0.01


@pytest.mark.parametrize("k_db", [0.0, 6.0, 10.0])
def test_rician_mean_one_and_rice_amplitude(k_db: float) -> None:
    g = fading_power_gain("rician", N, np.random.default_rng(2), k_factor_db=k_db)
    assert g.mean() == pytest.approx(1.0, abs=0.03)
    # |h| is Rice with LOS amplitude ν = sqrt(K/(K+1)) and per-dimension σ² = 1/(2(K+1)).
    k = 10 ** (k_db / 10)
    nu, sigma = math.sqrt(k / (k + 1)), math.sqrt(1 / (2 * (k + 1)))
    assert stats.kstest(np.sqrt(g), stats.rice(nu / sigma, scale=sigma).cdf).pvalue > 0.01


def test_rician_large_k_tends_to_one() -> None:
    g = fading_power_gain("rician", 1000, np.random.default_rng(3), k_factor_db=60.0)
    np.testing.assert_allclose(g, 1.0, atol=0.02)
    assert g.var() < 1e-4
    np.testing.assert_array_equal(fading_power_gain("rician", 5, np.random.default_rng(3), k_factor_db=math.inf), 1.0)


def test_rician_k_zero_is_rayleigh() -> None:
    g = fading_power_gain("rician", N, np.random.default_rng(4), k_factor_db=-math.inf)
    assert stats.kstest(g, "expon").pvalue > 0.01


def test_bad_kind_and_missing_k_raise() -> None:
    with pytest.raises(ValueError, match="kind"):
        fading_power_gain("nakagami", 3, np.random.default_rng(0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k_factor_db"):
        fading_power_gain("rician", 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="k_factor_db"):
        BlockFading("rician", 3, np.random.default_rng(0), 1.0)
    with pytest.raises(ValueError, match="coherence_s"):
        BlockFading("rayleigh", 3, np.random.default_rng(0), 0.0)


def test_block_fading_same_block_same_value_new_block_new_value() -> None:
    bf = BlockFading("rayleigh", 3, np.random.default_rng(5), coherence_s=0.5)
    g0 = bf.gain(0, 0.0)
    assert bf.gain(0, 0.1) == g0 and bf.gain(0, 0.4999) == g0
    g1 = bf.gain(0, 0.5)
    assert g1 != g0
    assert bf.gain(0, 0.9) == g1
    assert bf.gain(1, 0.2) != g0  # links are independent
    assert bf.gain(0, 0.95) == g1  # asking about another link does not disturb link 0


def test_block_fading_values_follow_the_rng_stream() -> None:
    # Each new (link, block) takes the next Exp(1) value from the one generator.
    expected = np.random.default_rng(6).exponential(1.0, 3)
    bf = BlockFading("rayleigh", 2, np.random.default_rng(6), coherence_s=1.0)
    got = [bf.gain(0, 0.0), bf.gain(1, 0.3), bf.gain(0, 0.7), bf.gain(0, 1.2)]
    np.testing.assert_allclose(got, [expected[0], expected[1], expected[0], expected[2]])


def test_block_fading_none_coherence_redraws_every_call() -> None:
    bf = BlockFading("rayleigh", 1, np.random.default_rng(7), coherence_s=None)
    values = [bf.gain(0, 1.0) for _ in range(5)]
    assert len(set(values)) == 5
    assert bf.block_index(3.0) == -1


def test_block_fading_deterministic_given_call_order() -> None:
    def run() -> list[float]:
        bf = BlockFading("rician", 4, np.random.default_rng(8), coherence_s=0.2, k_factor_db=3.0)
        return [bf.gain(link, t) for t in (0.0, 0.1, 0.25, 0.6) for link in (3, 0, 2)]

    assert run() == run()


def test_block_index_boundary_tolerance() -> None:
    bf = BlockFading("rayleigh", 1, np.random.default_rng(0), coherence_s=0.3)
    assert bf.block_index(0.1 + 0.2) == 1  # 0.30000000000000004 / 0.3 and 0.3 / 0.3 both count as block 1
    assert bf.block_index(0.29) == 0
    assert bf.block_index(3 * 0.1) == 1


def test_gains_vectorized_matches_gain() -> None:
    bf = BlockFading("rayleigh", 5, np.random.default_rng(9), coherence_s=1.0)
    g = bf.gains(np.array([4, 1, 1, 3]), 0.5)
    assert g.shape == (4,)
    assert g[1] == g[2]  # a repeated link gets one value
    assert bf.gain(4, 0.9) == g[0] and bf.gain(1, 0.1) == g[1]
    g_next = bf.gains(np.array([4, 1]), 1.5)
    assert g_next[0] != g[0] and g_next[1] != g[1]
    np.testing.assert_array_equal(bf.gains(np.array([4, 1]), 1.7), g_next)
    none = BlockFading("rayleigh", 3, np.random.default_rng(9), coherence_s=None)
    a, b = none.gains(np.arange(3), 0.0), none.gains(np.arange(3), 0.0)
    assert not np.any(a == b)


def test_no_fading_block_gain_is_one() -> None:
    bf = BlockFading("none", 2, np.random.default_rng(0), coherence_s=1.0)
    assert bf.gain(1, 5.0) == 1.0
    np.testing.assert_array_equal(bf.gains(np.array([0, 1]), 5.0), [1.0, 1.0])


def test_out_of_range_link_raises() -> None:
    bf = BlockFading("rayleigh", 2, np.random.default_rng(0), coherence_s=1.0)
    with pytest.raises(ValueError, match="link"):
        bf.gain(2, 0.0)
    with pytest.raises(ValueError, match="link"):
        bf.gains(np.array([0, -1]), 0.0)
