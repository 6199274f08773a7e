"""Small-scale fading power gains |h|² with E[|h|²] = 1, and block fading over time.

* Rayleigh: h ~ CN(0, 1), so |h|² ~ Exp(1) (Goldsmith, *Wireless
  Communications*, 2005, §3.2.1).
* Rician with K-factor K (linear): h = sqrt(K/(K+1)) + sqrt(1/(K+1))·CN(0, 1),
  i.e. a LOS component of power K/(K+1) plus scattered power 1/(K+1), total
  mean power Ω = 1 (Goldsmith 2005 §3.2.1). K → ∞ gives |h|² → 1, K = 0 is Rayleigh.
* Block fading: the gain stays constant over a coherence interval T_c and is
  redrawn independently in the next one (the block-fading channel of
  Biglieri, Proakis & Shamai, "Fading channels", IEEE Trans. IT, 1998).

    >>> g = fading_power_gain("rayleigh", 100_000, np.random.default_rng(1))
    >>> round(float(g.mean()), 2)
    1.0
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from channels.units import db_to_linear

FadingKind = Literal["none", "rayleigh", "rician"]
_KINDS = ("none", "rayleigh", "rician")


def _check_kind(kind: str, k_factor_db: float | None) -> None:
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of 'none', 'rayleigh', 'rician', got {kind!r}")
    if kind == "rician":
        if k_factor_db is None:
            raise ValueError("k_factor_db is required for rician fading")
        if math.isnan(k_factor_db):
            raise ValueError("k_factor_db must not be NaN")


def fading_power_gain(
    kind: FadingKind,
    size: int | tuple[int, ...],
    rng: np.random.Generator,
    k_factor_db: float | None = None,
) -> np.ndarray:
    """Draw fading power gains |h|² with E[|h|²] = 1.

    Args:
        kind: ``"none"`` (all ones, no draw), ``"rayleigh"`` (|h|² ~ Exp(1)) or
            ``"rician"`` (h = sqrt(K/(K+1)) + sqrt(1/(K+1))·CN(0, 1), K = 10^(k_factor_db/10)).
        size: output shape.
        rng: the generator to draw from.
        k_factor_db: Rician K-factor in dB (required for ``"rician"``; +inf → no fading).

    Returns:
        ndarray of shape ``size``.

    Raises:
        ValueError: unknown ``kind``, missing ``k_factor_db`` for Rician, negative ``size``.
    """
    _check_kind(kind, k_factor_db)
    if np.any(np.asarray(size) < 0):
        raise ValueError(f"size must be non-negative, got {size!r}")
    if kind == "none":
        return np.ones(size)
    if kind == "rayleigh":
        return rng.exponential(1.0, size)
    k = float(db_to_linear(k_factor_db))  # type: ignore[arg-type]
    if math.isinf(k):
        return np.ones(size)
    scatter = (rng.standard_normal(size) + 1j * rng.standard_normal(size)) / math.sqrt(2.0)
    h = math.sqrt(k / (k + 1.0)) + math.sqrt(1.0 / (k + 1.0)) * scatter
    return np.abs(h) ** 2


class BlockFading:
    """Per-link block fading: constant within a coherence block, independent across blocks.

    The block of time t is b(t) = floor(t / T_c) (:meth:`block_index`). A
    link's gain for a block is drawn from the one ``rng`` the first time that
    link is asked about that block; repeated asks in the same block return the
    same value. With ``coherence_s=None`` every ask draws a new value
    ("redrawn per transfer"). The sequence of values is a deterministic
    function of the ``rng`` state and the order of asks. Asking about an
    earlier block after a later one draws a fresh value (only the latest block
    per link is remembered).

    Args:
        kind: fading kind, see :func:`fading_power_gain`.
        n_links: number of links; links are indexed 0 … n_links − 1.
        rng: the generator all draws come from.
        coherence_s: coherence time T_c in s, or None to redraw on every ask.
        k_factor_db: Rician K-factor in dB (Rician only).

    >>> bf = BlockFading("rayleigh", 2, np.random.default_rng(0), coherence_s=1.0)
    >>> bf.gain(0, 0.2) == bf.gain(0, 0.9), bf.gain(0, 0.9) == bf.gain(0, 1.1)
    (True, False)
    """

    def __init__(
        self,
        kind: FadingKind,
        n_links: int,
        rng: np.random.Generator,
        coherence_s: float | None,
        k_factor_db: float | None = None,
    ) -> None:
        _check_kind(kind, k_factor_db)
        if int(n_links) != n_links or n_links < 0:
            raise ValueError(f"n_links must be a non-negative integer, got {n_links!r}")
        if coherence_s is not None and not coherence_s > 0:
            raise ValueError(f"coherence_s must be positive or None, got {coherence_s}")
        self.kind = kind
        self.n_links = int(n_links)
        self.rng = rng
        self.coherence_s = coherence_s
        self.k_factor_db = k_factor_db
        self._block = np.full(self.n_links, np.iinfo(np.int64).min, dtype=np.int64)
        self._gain = np.ones(self.n_links)

    def block_index(self, t_s: float) -> int:
        """b(t) = floor(t / T_c + 1e-9); −1 when ``coherence_s`` is None.

        The 1e-9 (in units of blocks) makes a boundary reached by accumulated
        floating-point time, e.g. 0.1 + 0.2 for T_c = 0.3, count as crossed.
        """
        if self.coherence_s is None:
            return -1
        if not t_s >= 0:
            raise ValueError(f"t_s must be non-negative, got {t_s}")
        return math.floor(t_s / self.coherence_s + 1e-9)

    def _draw(self, n: int) -> np.ndarray:
        return fading_power_gain(self.kind, n, self.rng, self.k_factor_db)

    def _check_links(self, links: np.ndarray) -> None:
        if links.size and (links.min() < 0 or links.max() >= self.n_links):
            raise ValueError(f"link indices must be in [0, {self.n_links}), got {links.min()}..{links.max()}")

    def gain(self, link: int, t_s: float) -> float:
        """Power gain |h|² of ``link`` in the coherence block containing ``t_s``."""
        self._check_links(np.asarray([link]))
        if self.kind == "none":
            return 1.0
        if self.coherence_s is None:
            return float(self._draw(1)[0])
        block = self.block_index(t_s)
        if self._block[link] != block:
            self._block[link] = block
            self._gain[link] = self._draw(1)[0]
        return float(self._gain[link])

    def gains(self, links: ArrayLike, t_s: float) -> np.ndarray:
        """Vectorized :meth:`gain`: the gains of ``links`` (1-D int array) at time ``t_s``.

        Links whose stored block is stale get new values, drawn in one batch in
        order of first appearance in ``links``; a link listed twice gets the
        same value twice. With ``coherence_s=None`` every entry is a new draw.
        """
        links = np.asarray(links, dtype=np.int64).reshape(-1)
        self._check_links(links)
        if self.kind == "none":
            return np.ones(len(links))
        if self.coherence_s is None:
            return self._draw(len(links))
        block = self.block_index(t_s)
        stale = links[self._block[links] != block]
        _, first = np.unique(stale, return_index=True)
        stale = stale[np.sort(first)]
        self._block[stale] = block
        self._gain[stale] = self._draw(len(stale))
        return self._gain[links].copy()
