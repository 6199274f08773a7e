"""Large-scale path loss models, vectorized over link distances.

Each model is a frozen dataclass with

* ``path_loss_db(d_2d_m, los=None)`` — deterministic loss in dB (positive);
* ``gain_db(d_2d_m, rng)`` — one realisation of the large-scale gain in dB
  (= −loss), with the LOS state drawn from the model's LOS probability where
  it has one, and log-normal shadowing N(0, σ²) in dB.

Models: :class:`LogDistance` (the HF-FM prototype's β0·d^−α), :class:`FreeSpace`
(Friis) and :class:`TR38901` (3GPP TR 38.901 v17.0.0 Table 7.4.1-1: UMa,
UMi-Street Canyon, InH-Office; LOS probability Table 7.4.2-1).

    >>> round(float(FreeSpace(2.4e9).path_loss_db(1000.0)), 2)
    100.05
    >>> float(LogDistance(-30.0, 3.0).path_loss_db(1000.0))
    120.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike

from channels.geometry import distance_3d_m
from channels.units import SPEED_OF_LIGHT_M_S


def _positive(name: str, d: ArrayLike) -> np.ndarray:
    d = np.asarray(d, dtype=float)
    if np.any(~(d > 0)):
        raise ValueError(f"{name} must be positive")
    return d


def _shadowing_db(rng: np.random.Generator, std_db: np.ndarray | float, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape) * std_db


@dataclass(frozen=True)
class LogDistance:
    """Gain β0 − 10·α·log10(d/d0) dB (simplified path loss model, Goldsmith 2005 eq. 2.39).

    The HF-FM prototype uses β0 = −30 dB at d0 = 1 m and α = 3.
    """

    ref_gain_db: float = -30.0
    exponent: float = 3.0
    ref_distance_m: float = 1.0
    shadowing_std_db: float = 0.0

    def path_loss_db(self, d_2d_m: ArrayLike, los: ArrayLike | None = None) -> np.ndarray:
        d = _positive("d_2d_m", d_2d_m)
        return -self.ref_gain_db + 10.0 * self.exponent * np.log10(d / self.ref_distance_m)

    def gain_db(self, d_2d_m: ArrayLike, rng: np.random.Generator) -> np.ndarray:
        loss = self.path_loss_db(d_2d_m)
        return -loss + _shadowing_db(rng, self.shadowing_std_db, loss.shape)


@dataclass(frozen=True)
class FreeSpace:
    """Friis free-space loss FSPL = 20·log10(4π·d·f/c) dB (Friis 1946)."""

    carrier_hz: float
    shadowing_std_db: float = 0.0

    def __post_init__(self) -> None:
        if not self.carrier_hz > 0:
            raise ValueError(f"carrier_hz must be positive, got {self.carrier_hz}")

    def path_loss_db(self, d_2d_m: ArrayLike, los: ArrayLike | None = None) -> np.ndarray:
        d = _positive("d_2d_m", d_2d_m)
        return 20.0 * np.log10(4.0 * np.pi * d * self.carrier_hz / SPEED_OF_LIGHT_M_S)

    def gain_db(self, d_2d_m: ArrayLike, rng: np.random.Generator) -> np.ndarray:
        loss = self.path_loss_db(d_2d_m)
        return -loss + _shadowing_db(rng, self.shadowing_std_db, loss.shape)


def los_probability_uma(d_2d_m: ArrayLike, h_ut_m: float = 1.5) -> np.ndarray:
    """UMa LOS probability, TR 38.901 Table 7.4.2-1.

    Pr = 1 for d ≤ 18 m, else [18/d + exp(−d/63)(1 − 18/d)]·(1 + C'(h_UT)·5/4·(d/100)³·exp(−d/150)),
    with C' = 0 for h_UT ≤ 13 m and ((h_UT − 13)/10)^1.5 for 13 m < h_UT ≤ 23 m.
    """
    d = np.maximum(np.asarray(d_2d_m, dtype=float), 1e-9)
    c = 0.0 if h_ut_m <= 13.0 else ((h_ut_m - 13.0) / 10.0) ** 1.5
    far = (18.0 / d + np.exp(-d / 63.0) * (1.0 - 18.0 / d)) * (1.0 + c * 1.25 * (d / 100.0) ** 3 * np.exp(-d / 150.0))
    return np.where(d <= 18.0, 1.0, far)


def los_probability_umi(d_2d_m: ArrayLike) -> np.ndarray:
    """UMi-Street Canyon LOS probability, TR 38.901 Table 7.4.2-1: 1 for d ≤ 18 m, else 18/d + exp(−d/36)(1 − 18/d)."""
    d = np.maximum(np.asarray(d_2d_m, dtype=float), 1e-9)
    return np.where(d <= 18.0, 1.0, 18.0 / d + np.exp(-d / 36.0) * (1.0 - 18.0 / d))


def los_probability_inh_office(d_2d_m: ArrayLike, mixed: bool = True) -> np.ndarray:
    """InH-Office LOS probability, TR 38.901 Table 7.4.2-1.

    Mixed office: 1 (d ≤ 1.2 m), exp(−(d − 1.2)/4.7) (1.2 < d < 6.5 m), 0.32·exp(−(d − 6.5)/32.6) (d ≥ 6.5 m).
    Open office: 1 (d ≤ 5 m), exp(−(d − 5)/70.8) (5 < d ≤ 49 m), 0.54·exp(−(d − 49)/211.7) (d > 49 m).
    """
    d = np.asarray(d_2d_m, dtype=float)
    if mixed:
        return np.where(d <= 1.2, 1.0, np.where(d < 6.5, np.exp(-(d - 1.2) / 4.7), 0.32 * np.exp(-(d - 6.5) / 32.6)))
    return np.where(d <= 5.0, 1.0, np.where(d <= 49.0, np.exp(-(d - 5.0) / 70.8), 0.54 * np.exp(-(d - 49.0) / 211.7)))


_DEFAULT_H_BS_M = {"UMa": 25.0, "UMi": 10.0, "InH": 3.0}
_SHADOWING_DB = {("UMa", True): 4.0, ("UMa", False): 6.0, ("UMi", True): 4.0, ("UMi", False): 7.82,
                 ("InH", True): 3.0, ("InH", False): 8.03}  # fmt: skip
_MIN_D2D_M = {"UMa": 10.0, "UMi": 10.0, "InH": 1.0}


@dataclass(frozen=True)
class TR38901:
    """3GPP TR 38.901 v17.0.0 Table 7.4.1-1 path loss (fc in GHz, distances in m).

    UMa LOS: PL1 = 28.0 + 22·log10(d3D) + 20·log10(fc) for d2D ≤ d'BP,
    PL2 = 28.0 + 40·log10(d3D) + 20·log10(fc) − 9·log10(d'BP² + (hBS − hUT)²) beyond;
    NLOS: max(PL_LOS, 13.54 + 39.08·log10(d3D) + 20·log10(fc) − 0.6·(hUT − 1.5)).
    UMi-Street Canyon LOS: 32.4 + 21·log10(d3D) + 20·log10(fc), beyond d'BP
    32.4 + 40·log10(d3D) + 20·log10(fc) − 9.5·log10(d'BP² + (hBS − hUT)²);
    NLOS: max(PL_LOS, 35.3·log10(d3D) + 22.4 + 21.3·log10(fc) − 0.3·(hUT − 1.5)).
    InH-Office LOS: 32.4 + 17.3·log10(d3D) + 20·log10(fc);
    NLOS: max(PL_LOS, 38.3·log10(d3D) + 17.30 + 24.9·log10(fc)).
    Breakpoint d'BP = 4·h'BS·h'UT·fc/c with h' = h − hE and hE = 1 m (the table's
    value for UMi; for UMa a simplification of Note 1's stochastic hE, exact for
    hUT ≤ 13 m where hE = 1 m with probability 1).
    Shadow fading σ (dB): UMa 4 / 6, UMi 4 / 7.82, InH 3 / 8.03 (LOS / NLOS).

    Validity: UMa and UMi 10 m ≤ d2D ≤ 5 km, InH 1 m ≤ d3D ≤ 150 m (LOS) / 86 m (NLOS);
    shorter distances are clipped up to the minimum, longer ones extrapolated.

    ``los``: "stochastic" draws the LOS state per link from Table 7.4.2-1 in
    :meth:`gain_db`; "los" / "nlos" force it.
    """

    scenario: Literal["UMa", "UMi", "InH"]
    carrier_hz: float
    h_bs_m: float | None = None
    h_ut_m: float = 1.5
    los: Literal["stochastic", "los", "nlos"] = "stochastic"
    shadowing: bool = True

    def __post_init__(self) -> None:
        if self.scenario not in _DEFAULT_H_BS_M:
            raise ValueError(f"scenario must be one of UMa, UMi, InH, got {self.scenario!r}")
        if not self.carrier_hz > 0:
            raise ValueError(f"carrier_hz must be positive, got {self.carrier_hz}")

    @property
    def bs_height_m(self) -> float:
        return _DEFAULT_H_BS_M[self.scenario] if self.h_bs_m is None else self.h_bs_m

    def breakpoint_m(self) -> float:
        """d'BP = 4·(hBS − 1)·(hUT − 1)·fc/c (TR 38.901 Table 7.4.1-1 note 1)."""
        return 4.0 * (self.bs_height_m - 1.0) * (self.h_ut_m - 1.0) * self.carrier_hz / SPEED_OF_LIGHT_M_S

    def los_probability(self, d_2d_m: ArrayLike) -> np.ndarray:
        """Table 7.4.2-1 for this scenario (InH: mixed office)."""
        if self.scenario == "UMa":
            return los_probability_uma(d_2d_m, self.h_ut_m)
        if self.scenario == "UMi":
            return los_probability_umi(d_2d_m)
        return los_probability_inh_office(d_2d_m)

    def _los_db(self, d2: np.ndarray, d3: np.ndarray, fc_ghz: float) -> np.ndarray:
        if self.scenario == "InH":
            return 32.4 + 17.3 * np.log10(d3) + 20.0 * np.log10(fc_ghz)
        a, c, k = (28.0, 22.0, 9.0) if self.scenario == "UMa" else (32.4, 21.0, 9.5)
        d_bp = self.breakpoint_m()
        near = a + c * np.log10(d3) + 20.0 * np.log10(fc_ghz)
        far = a + 40.0 * np.log10(d3) + 20.0 * np.log10(fc_ghz) - k * np.log10(d_bp**2 + (self.bs_height_m - self.h_ut_m) ** 2)
        return np.where(d2 <= d_bp, near, far)

    def _nlos_prime_db(self, d3: np.ndarray, fc_ghz: float) -> np.ndarray:
        if self.scenario == "UMa":
            return 13.54 + 39.08 * np.log10(d3) + 20.0 * np.log10(fc_ghz) - 0.6 * (self.h_ut_m - 1.5)
        if self.scenario == "UMi":
            return 35.3 * np.log10(d3) + 22.4 + 21.3 * np.log10(fc_ghz) - 0.3 * (self.h_ut_m - 1.5)
        return 38.3 * np.log10(d3) + 17.30 + 24.9 * np.log10(fc_ghz)

    def path_loss_db(self, d_2d_m: ArrayLike, los: ArrayLike | None = None) -> np.ndarray:
        """Loss for LOS where ``los`` is true and NLOS elsewhere (default: the ``los`` setting, LOS if stochastic)."""
        d2 = np.maximum(_positive("d_2d_m", d_2d_m), _MIN_D2D_M[self.scenario])
        d3 = distance_3d_m(d2, self.bs_height_m, self.h_ut_m)
        fc_ghz = self.carrier_hz / 1e9
        los_db = self._los_db(d2, d3, fc_ghz)
        nlos_db = np.maximum(los_db, self._nlos_prime_db(d3, fc_ghz))
        if los is None:
            los = self.los != "nlos"
        return np.where(np.asarray(los, dtype=bool), los_db, nlos_db)

    def gain_db(self, d_2d_m: ArrayLike, rng: np.random.Generator) -> np.ndarray:
        d2 = np.asarray(d_2d_m, dtype=float)
        if self.los == "stochastic":
            los = rng.random(d2.shape) < self.los_probability(d2)
        else:
            los = np.full(d2.shape, self.los == "los")
        loss = self.path_loss_db(d2, los)
        if self.shadowing:
            sigma = np.where(los, _SHADOWING_DB[(self.scenario, True)], _SHADOWING_DB[(self.scenario, False)])
            loss = loss + _shadowing_db(rng, sigma, loss.shape)
        return -loss


PathLossModel: TypeAlias = LogDistance | FreeSpace | TR38901
