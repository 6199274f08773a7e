"""Small-scale fading power gains |h|² with E[|h|²] = 1, and block fading over time.

Rayleigh: |h|² ~ Exp(1). Rician with K-factor K (linear):
h = sqrt(K/(K+1)) + sqrt(1/(K+1))·CN(0, 1) (Goldsmith 2005 §3.2.2).
Block fading: the gain is constant over a coherence interval T_c and redrawn
independently in the next one.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from channels.units import db_to_linear

FadingKind = Literal["none", "rayleigh", "rician"]


def fading_power_gain(
    kind: FadingKind, size: int | tuple[int, ...], rng: np.random.Generator, k_factor_db: float | None = None
) -> np.ndarray:
    """Draw ``size`` fading power gains |h|² of the given kind (mean 1)."""
    if kind == "none":
        return np.ones(size)
    if kind == "rayleigh":
        return rng.exponential(1.0, size)
    if kind == "rician":
        if k_factor_db is None:
            raise ValueError("rician fading needs k_factor_db")
        k = float(db_to_linear(k_factor_db))
        scatter = (rng.standard_normal(size) + 1j * rng.standard_normal(size)) / math.sqrt(2.0)
        h = math.sqrt(k / (k + 1.0)) + math.sqrt(1.0 / (k + 1.0)) * scatter
        return np.abs(h) ** 2
    raise ValueError(f"fading kind must be none, rayleigh or rician, got {kind!r}")


class BlockFading:
    """Per-link block fading: constant within a coherence block, redrawn in the next.

    Block index of time t is floor(t / coherence_s). A link's gain for a block
    is drawn (from the one ``rng``) the first time it is asked for; repeated
    asks in the same block return the same value. With ``coherence_s=None``
    every ask draws anew ("redrawn per transfer"). Deterministic for a given
    order of asks.
    """

    def __init__(
        self,
        kind: FadingKind,
        n_links: int,
        rng: np.random.Generator,
        coherence_s: float | None,
        k_factor_db: float | None = None,
    ) -> None:
        if coherence_s is not None and not coherence_s > 0:
            raise ValueError(f"coherence_s must be positive, got {coherence_s}")
        self.kind = kind
        self.rng = rng
        self.coherence_s = coherence_s
        self.k_factor_db = k_factor_db
        self._block = np.full(n_links, -1, dtype=np.int64)
        self._gain = np.ones(n_links)

    def _draw(self, n: int) -> np.ndarray:
        return fading_power_gain(self.kind, n, self.rng, self.k_factor_db)

    def gain(self, link: int, t_s: float) -> float:
        """Power gain of ``link`` in the block containing ``t_s``."""
        if self.kind == "none":
            return 1.0
        if self.coherence_s is None:
            return float(self._draw(1)[0])
        block = math.floor(t_s / self.coherence_s)
        if self._block[link] != block:
            self._block[link] = block
            self._gain[link] = self._draw(1)[0]
        return float(self._gain[link])

    def gains(self, links: np.ndarray, t_s: float) -> np.ndarray:
        """Vectorized :meth:`gain` for distinct ``links`` at one time."""
        links = np.asarray(links, dtype=np.int64)
        if self.kind == "none":
            return np.ones(len(links))
        if self.coherence_s is None:
            return self._draw(len(links))
        block = math.floor(t_s / self.coherence_s)
        stale = links[self._block[links] != block]
        self._block[stale] = block
        self._gain[stale] = self._draw(len(stale))
        return self._gain[links].copy()
