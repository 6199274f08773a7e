"""Order-free block fading: the gain of link ℓ in epoch e is a pure function of (key, ℓ, e).

:class:`channels.BlockFading` draws from one generator in the order the
simulator asks, so a link's gain depends on what every other link asked
before it. That ties the channel to the event order and makes it impossible
to compute many cells at once (the aggregated network-only engine,
:mod:`sim.fastnet`) and get the same numbers. :class:`KeyedBlockFading`
instead derives every value from a counter-based generator (Salmon et al.,
"Parallel random numbers: as easy as 1, 2, 3", SC 2011): the uniform for
(link, epoch, draw) is the SplitMix64 finalizer (Steele, Lea & Flood,
"Fast splittable pseudorandom number generators", OOPSLA 2014) of those
counters and a 64-bit key taken from the medium's ``numpy.random.Generator``.
The epoch is the coherence block (block fading) or the link's transfer count
(a new draw per transfer). The fading distribution itself stays in
:func:`channels.fading_power_gain`, fed by :class:`CounterDraws`.

Another benefit: the same link sees the same fading in the same block under
every scheme of a run (common random numbers across schemes).

    >>> f = KeyedBlockFading("rayleigh", 4, key=7, coherence_s=0.05)
    >>> a = f.gains(np.array([3, 1]), 0.12)
    >>> b = f.gains(np.array([1]), 0.13)          # same block, other order
    >>> bool(a[1] == b[0]), bool(f.gains(np.array([1]), 0.16)[0] == b[0])
    (True, False)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from channels import BlockFading, fading_power_gain
from channels.fading import FadingKind
from sim.radio import RadioMedium
from sim.scenario import FadingConfig, RadioConfig

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_DRAW_STRIDE = 0xD1B54A32D192ED03


def splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer (Steele et al. 2014): a bijective 64-bit mix with full avalanche.

    z ← (z ⊕ z≫30)·0xBF58476D1CE4E5B9; z ← (z ⊕ z≫27)·0x94D049BB133111EB; z ← z ⊕ z≫31 (mod 2⁶⁴).
    """
    z = np.asarray(z, dtype=np.uint64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    return z ^ (z >> np.uint64(31))


class CounterDraws:
    """A stand-in for ``numpy.random.Generator`` whose i-th output depends only on (key, links[i], epochs[i], call).

    Supports the two methods :func:`channels.fading_power_gain` uses,
    ``exponential`` and ``standard_normal``, each returning one value per
    (link, epoch) pair; successive calls use successive draw counters.
    Uniforms are U = (⌊h / 2¹¹⌋ + 1)·2⁻⁵³ ∈ (0, 1] from the 64-bit hash h;
    Exp(1) = −ln U (inverse CDF); N(0, 1) by Box–Muller from two uniforms.
    """

    def __init__(self, link_hash: np.ndarray, epochs: np.ndarray) -> None:
        self._base = link_hash ^ (epochs.astype(np.uint64) * np.uint64(_GOLDEN))
        self._calls = 0

    def _uniform(self) -> np.ndarray:
        self._calls += 1
        h = splitmix64(self._base + np.uint64((self._calls * _DRAW_STRIDE) % 2**64))
        return ((h >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0**-53

    def _check(self, size: int | tuple[int, ...]) -> None:
        if int(np.prod(size)) != len(self._base):
            raise ValueError(f"CounterDraws serves {len(self._base)} values per call, asked for {size}")

    def exponential(self, scale: float = 1.0, size: int | tuple[int, ...] = 1) -> np.ndarray:
        self._check(size)
        return -scale * np.log(self._uniform())

    def standard_normal(self, size: int | tuple[int, ...] = 1) -> np.ndarray:
        self._check(size)
        radius = np.sqrt(-2.0 * np.log(self._uniform()))
        return radius * np.cos(2.0 * math.pi * self._uniform())


class KeyedBlockFading(BlockFading):
    """Block fading whose values do not depend on the order of asks (same interface as ``BlockFading``).

    Args:
        kind: fading kind, see :func:`channels.fading_power_gain`.
        n_links: number of links (0 … n_links − 1).
        key: 64-bit key (draw it from the medium's generator).
        coherence_s: coherence time T_c in s; None redraws on every ask (epoch = the link's ask count).
        k_factor_db: Rician K-factor in dB.
    """

    def __init__(
        self, kind: FadingKind, n_links: int, key: int, coherence_s: float | None, k_factor_db: float | None = None
    ) -> None:
        super().__init__(kind, n_links, None, coherence_s, k_factor_db)  # type: ignore[arg-type]  # no generator: values come from the key
        self._link_hash = splitmix64(np.uint64(key % 2**64) ^ (np.arange(n_links, dtype=np.uint64) * np.uint64(_MIX1)))
        self._asks = np.zeros(n_links, dtype=np.int64)

    def gains_at(self, links: ArrayLike, epochs: ArrayLike) -> np.ndarray:
        """Gains of ``links`` in ``epochs`` (element-wise; pure: same inputs, same values)."""
        links = np.asarray(links, dtype=np.int64).reshape(-1)
        self._check_links(links)
        draws = CounterDraws(self._link_hash[links], np.asarray(epochs, dtype=np.int64).reshape(-1))
        return fading_power_gain(self.kind, len(links), draws, self.k_factor_db)  # type: ignore[arg-type]

    def block_indices(self, t_s: np.ndarray) -> np.ndarray:
        """Vectorized :meth:`block_index` (same floor(t / T_c + 1e-9)); needs ``coherence_s``."""
        assert self.coherence_s is not None
        return np.floor(np.asarray(t_s) / self.coherence_s + 1e-9).astype(np.int64)

    def next_transfer_epochs(self, links: np.ndarray) -> np.ndarray:
        """Per-transfer epochs of ``links`` (their ask counts, counting repeats), then count these asks."""
        order = np.argsort(links, kind="stable")
        ranked = links[order]
        first = np.r_[0, np.flatnonzero(np.diff(ranked)) + 1]
        repeat = np.arange(len(links)) - np.repeat(first, np.diff(np.r_[first, len(links)]))
        epochs = np.empty(len(links), dtype=np.int64)
        epochs[order] = self._asks[ranked] + repeat
        np.add.at(self._asks, links, 1)
        return epochs

    def gain(self, link: int, t_s: float) -> float:
        return float(self.gains(np.array([link]), t_s)[0])

    def gains(self, links: ArrayLike, t_s: float) -> np.ndarray:
        """Gains of ``links`` at ``t_s``: the epoch is the block of ``t_s``, or each link's ask count."""
        links = np.asarray(links, dtype=np.int64).reshape(-1)
        self._check_links(links)
        if self.kind == "none":
            return np.ones(len(links))
        if self.coherence_s is None:
            return self.gains_at(links, self.next_transfer_epochs(links))
        return self.gains_at(links, np.full(len(links), self.block_index(t_s)))


class KeyedRadioMedium(RadioMedium):
    """A :class:`sim.radio.RadioMedium` whose small-scale fading is :class:`KeyedBlockFading`.

    The large-scale gains are drawn as in the parent (same generator, same
    order); the fading key is the generator's next 63-bit integer.
    """

    def _make_fading(self, fading: FadingConfig, n_links: int, rng: np.random.Generator) -> KeyedBlockFading:
        return KeyedBlockFading(fading.kind, n_links, int(rng.integers(2**63)), fading.coherence_s, fading.k_factor_db)

    @property
    def fading(self) -> KeyedBlockFading:
        """The medium's keyed block fading."""
        return self._fading  # type: ignore[return-value]

    def gains_at(self, links: np.ndarray, epochs: np.ndarray) -> np.ndarray:
        """Total gains (large-scale × fading) of static ``links`` in ``epochs``, element-wise, without logging."""
        if self._static_gain is None or self._replay is not None:
            raise ValueError("gains_at needs static links and no channel replay")
        return self._static_gain[links] * self.fading.gains_at(links, epochs)


def radio_medium(config: RadioConfig, *args: Any, **kwargs: Any) -> RadioMedium:
    """The medium ``config.fading.draws`` asks for, built with :class:`sim.radio.RadioMedium`'s arguments:
    :class:`KeyedRadioMedium` (keyed) or ``RadioMedium`` (sequential)."""
    medium = KeyedRadioMedium if config.fading.draws == "keyed" else RadioMedium
    return medium(config, *args, **kwargs)
