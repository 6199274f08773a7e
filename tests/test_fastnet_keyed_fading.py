"""Keyed (order-free) block fading: pure in (key, link, epoch), with the distributions of channels.fading."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from sim.keyed_fading import KeyedBlockFading, splitmix64


def test_splitmix64_matches_the_reference_sequence() -> None:
    # SplitMix64 with seed 0 (state += 0x9E3779B97F4A7C15, then the finalizer): the published first outputs
    states = (np.arange(1, 4, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    assert splitmix64(states).tolist() == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


def test_values_do_not_depend_on_the_order_of_asks() -> None:
    a = KeyedBlockFading("rayleigh", 50, key=11, coherence_s=0.1)
    b = KeyedBlockFading("rayleigh", 50, key=11, coherence_s=0.1)
    links = np.arange(50)
    forward = a.gains(links, 0.35)
    backward = np.concatenate([b.gains(np.array([link]), 0.31) for link in links[::-1]])[::-1]
    np.testing.assert_array_equal(forward, backward)
    assert not np.array_equal(forward, a.gains(links, 0.41))  # next block: new values
    assert not np.array_equal(forward, KeyedBlockFading("rayleigh", 50, key=12, coherence_s=0.1).gains(links, 0.35))


def test_per_transfer_draws_count_each_links_asks() -> None:
    f = KeyedBlockFading("rayleigh", 3, key=5, coherence_s=None)
    first = f.gains(np.array([0, 1]), 0.0)
    second = f.gains(np.array([1, 1, 2]), 9.0)
    assert second[0] != first[1] and second[0] != second[1]
    np.testing.assert_array_equal(second, f.gains_at(np.array([1, 1, 2]), np.array([1, 2, 0])))


def test_rayleigh_is_exponential_and_independent_across_blocks_and_links() -> None:
    f = KeyedBlockFading("rayleigh", 2000, key=1, coherence_s=1.0)
    links = np.repeat(np.arange(2000), 25)
    blocks = np.tile(np.arange(25), 2000)
    g = f.gains_at(links, blocks).reshape(2000, 25)
    assert stats.kstest(g.ravel(), "expon").pvalue > 1e-3
    assert abs(np.corrcoef(g[:, :-1].ravel(), g[:, 1:].ravel())[0, 1]) < 0.02  # consecutive blocks
    assert abs(np.corrcoef(g[:-1].ravel(), g[1:].ravel())[0, 1]) < 0.02  # neighbouring links


def test_rician_power_gain_is_scaled_noncentral_chi_square() -> None:
    k = 10 ** (6.0 / 10)
    f = KeyedBlockFading("rician", 50_000, key=2, coherence_s=None, k_factor_db=6.0)
    g = f.gains(np.arange(50_000), 0.0)
    # 2(K+1)|h|^2 ~ noncentral chi-square, 2 degrees of freedom, non-centrality 2K
    assert stats.kstest(2 * (k + 1) * g, "ncx2", args=(2, 2 * k)).pvalue > 1e-3
    assert g.mean() == pytest.approx(1.0, abs=0.01)


def test_no_fading_is_one() -> None:
    np.testing.assert_array_equal(KeyedBlockFading("none", 4, 0, 0.1).gains(np.arange(4), 1.0), np.ones(4))
