"""Large-scale path loss models, vectorized over link distances.

Each model is a small frozen dataclass with

* ``path_loss_db(d_2d_m, los=None)`` — the deterministic loss in dB (positive
  for physical parameters), no randomness;
* ``gain_db(d_2d_m, rng)`` — one realisation of the large-scale gain in dB
  (= −loss): LOS state drawn from the model's LOS probability where it has
  one, plus log-normal shadowing N(0, σ²) in dB where configured.

Models: :class:`LogDistance` (the HF-FM prototype's β0·d^−α), :class:`FreeSpace`
(Friis) and :class:`TR38901` (3GPP TR 38.901 v17.0.0 Table 7.4.1-1: UMa,
UMi-Street Canyon, InH-Office; LOS probability Table 7.4.2-1).

    >>> round(FreeSpace(2.4e9).path_loss_db(1000.0), 2)
    100.05
    >>> LogDistance(-30.0, 3.0).path_loss_db(1000.0)
    120.0
    >>> round(TR38901("UMa", 3.5e9, los="los").path_loss_db(100.0), 2)
    83.14
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike

from channels._validate import nonnegative, positive, scalar_or_array
from channels.units import SPEED_OF_LIGHT_M_S


def _check_std(std_db: float, name: str = "shadowing_std_db") -> None:
    if not std_db >= 0:
        raise ValueError(f"{name} must be non-negative, got {std_db}")


def _shadowing_db(rng: np.random.Generator, std_db: np.ndarray | float, shape: tuple[int, ...]) -> np.ndarray:
    """Log-normal shadowing: X_σ ~ N(0, σ²) in dB (TR 38.901 §7.4.1, "SF")."""
    return rng.standard_normal(shape) * std_db


@dataclass(frozen=True)
class LogDistance:
    """Simplified log-distance model: gain_dB = β0 − 10·α·log10(d / d0) (Goldsmith 2005, §2.6).

    In linear terms g = β0·(d/d0)^−α; the HF-FM prototype uses β0 = −30 dB at
    d0 = 1 m and α = 3. The model holds for d ≥ d0: shorter distances are
    clipped to d0, so the gain never exceeds β0. The LOS argument is ignored.
    Optional log-normal shadowing with ``shadowing_std_db`` (Goldsmith 2005, §2.7).

    Attributes:
        ref_gain_db: β0, the gain at ``ref_distance_m`` (dB, negative = loss).
        exponent: α, the path loss exponent (2 free space, 2.7–3.5 urban).
        ref_distance_m: d0 (m).
        shadowing_std_db: σ of the shadowing in dB (0 = none).
    """

    ref_gain_db: float = -30.0
    exponent: float = 3.0
    ref_distance_m: float = 1.0
    shadowing_std_db: float = 0.0

    def __post_init__(self) -> None:
        if not self.exponent >= 0:
            raise ValueError(f"exponent must be non-negative, got {self.exponent}")
        if not self.ref_distance_m > 0:
            raise ValueError(f"ref_distance_m must be positive, got {self.ref_distance_m}")
        _check_std(self.shadowing_std_db)

    def path_loss_db(self, d_2d_m: ArrayLike, los: ArrayLike | None = None) -> float | np.ndarray:
        """PL = −β0 + 10·α·log10(max(d, d0) / d0) dB."""
        d = np.maximum(positive(d_2d_m, "d_2d_m"), self.ref_distance_m)
        return scalar_or_array(-self.ref_gain_db + 10.0 * self.exponent * np.log10(d / self.ref_distance_m))

    def gain_db(self, d_2d_m: ArrayLike, rng: np.random.Generator) -> float | np.ndarray:
        """−PL + X_σ, X_σ ~ N(0, σ²) dB (no draw when σ = 0)."""
        gain = -np.asarray(self.path_loss_db(d_2d_m))
        if self.shadowing_std_db > 0:
            gain = gain - _shadowing_db(rng, self.shadowing_std_db, gain.shape)
        return scalar_or_array(gain)


@dataclass(frozen=True)
class FreeSpace:
    """Friis free-space loss FSPL = 20·log10(4π·d·f / c) dB (Friis 1946; ITU-R P.525 in SI units).

    ``d`` is the link distance as given (no antenna heights). Valid in the far
    field (d ≫ λ = c/f); the LOS argument is ignored. Optional log-normal
    shadowing with ``shadowing_std_db``.
    """

    carrier_hz: float
    shadowing_std_db: float = 0.0

    def __post_init__(self) -> None:
        if not self.carrier_hz > 0:
            raise ValueError(f"carrier_hz must be positive, got {self.carrier_hz}")
        _check_std(self.shadowing_std_db)

    def path_loss_db(self, d_2d_m: ArrayLike, los: ArrayLike | None = None) -> float | np.ndarray:
        """FSPL = 20·log10(4π·d·f / c) dB."""
        d = positive(d_2d_m, "d_2d_m")
        return scalar_or_array(20.0 * np.log10(4.0 * np.pi * d * self.carrier_hz / SPEED_OF_LIGHT_M_S))

    def gain_db(self, d_2d_m: ArrayLike, rng: np.random.Generator) -> float | np.ndarray:
        """−FSPL + X_σ, X_σ ~ N(0, σ²) dB (no draw when σ = 0)."""
        gain = -np.asarray(self.path_loss_db(d_2d_m))
        if self.shadowing_std_db > 0:
            gain = gain - _shadowing_db(rng, self.shadowing_std_db, gain.shape)
        return scalar_or_array(gain)


# --- 3GPP TR 38.901 Table 7.4.2-1: LOS probability ---------------------------------------


def los_probability_uma(d_2d_m: ArrayLike, h_ut_m: float = 1.5) -> float | np.ndarray:
    """UMa LOS probability, 3GPP TR 38.901 v17.0.0 Table 7.4.2-1 (outdoor UT, d = d_2D-out).

    Pr_LOS = 1 for d ≤ 18 m, else
    [18/d + exp(−d/63)·(1 − 18/d)]·[1 + C'(h_UT)·(5/4)·(d/100)³·exp(−d/150)],
    with C'(h_UT) = 0 for h_UT ≤ 13 m and ((h_UT − 13)/10)^1.5 for 13 m < h_UT ≤ 23 m.

    Raises:
        ValueError: a negative distance, or h_UT outside (0, 23] m.
    """
    d = nonnegative(d_2d_m, "d_2d_m")
    if not 0 < h_ut_m <= 23.0:
        raise ValueError(f"h_ut_m must be in (0, 23] m for UMa (Table 7.4.2-1), got {h_ut_m}")
    c_prime = 0.0 if h_ut_m <= 13.0 else ((h_ut_m - 13.0) / 10.0) ** 1.5
    ds = np.maximum(d, 18.0)  # the far branch is only used for d > 18 m; avoid 18/0
    far = (18.0 / ds + np.exp(-ds / 63.0) * (1.0 - 18.0 / ds)) * (
        1.0 + c_prime * 1.25 * (ds / 100.0) ** 3 * np.exp(-ds / 150.0)
    )
    return scalar_or_array(np.where(d <= 18.0, 1.0, far))


def los_probability_umi(d_2d_m: ArrayLike) -> float | np.ndarray:
    """UMi-Street Canyon LOS probability, 3GPP TR 38.901 v17.0.0 Table 7.4.2-1.

    Pr_LOS = 1 for d_2D-out ≤ 18 m, else 18/d + exp(−d/36)·(1 − 18/d).

    Raises:
        ValueError: a negative distance.
    """
    d = nonnegative(d_2d_m, "d_2d_m")
    ds = np.maximum(d, 18.0)
    return scalar_or_array(np.where(d <= 18.0, 1.0, 18.0 / ds + np.exp(-ds / 36.0) * (1.0 - 18.0 / ds)))


def los_probability_inh_office(d_2d_m: ArrayLike, mixed: bool = True) -> float | np.ndarray:
    """InH-Office LOS probability, 3GPP TR 38.901 v17.0.0 Table 7.4.2-1.

    Mixed office: 1 (d ≤ 1.2 m); exp(−(d − 1.2)/4.7) (1.2 m < d < 6.5 m);
    0.32·exp(−(d − 6.5)/32.6) (d ≥ 6.5 m).
    Open office (``mixed=False``): 1 (d ≤ 5 m); exp(−(d − 5)/70.8) (5 m < d ≤ 49 m);
    0.54·exp(−(d − 49)/211.7) (d > 49 m).

    Raises:
        ValueError: a negative distance.
    """
    d = nonnegative(d_2d_m, "d_2d_m")
    if mixed:
        p = np.where(d <= 1.2, 1.0, np.where(d < 6.5, np.exp(-(d - 1.2) / 4.7), 0.32 * np.exp(-(d - 6.5) / 32.6)))
    else:
        p = np.where(d <= 5.0, 1.0, np.where(d <= 49.0, np.exp(-(d - 5.0) / 70.8), 0.54 * np.exp(-(d - 49.0) / 211.7)))
    return scalar_or_array(p)


# --- 3GPP TR 38.901 Table 7.4.1-1: path loss ---------------------------------------------

Scenario = Literal["UMa", "UMi", "InH"]
LosMode = Literal["stochastic", "los", "nlos"]

_DEFAULT_H_BS_M: dict[str, float] = {"UMa": 25.0, "UMi": 10.0, "InH": 3.0}
_SIGMA_SF_DB: dict[tuple[str, bool], float] = {
    ("UMa", True): 4.0, ("UMa", False): 6.0,
    ("UMi", True): 4.0, ("UMi", False): 7.82,
    ("InH", True): 3.0, ("InH", False): 8.03,
}  # fmt: skip
_MIN_D2D_M = {"UMa": 10.0, "UMi": 10.0}  # outdoor: 10 m ≤ d_2D
_MIN_D3D_M = {"InH": 1.0}  # indoor: 1 m ≤ d_3D
_H_E_M = 1.0  # environment height h_E (Table 7.4.1-1 notes; see TR38901 docstring)


@dataclass(frozen=True)
class TR38901:
    """3GPP TR 38.901 v17.0.0 Table 7.4.1-1 path loss; fc in GHz in the formulas, distances in m.

    With d_3D = sqrt(d_2D² + (h_BS − h_UT)²) and f_c in GHz:

    **UMa** (h_BS = 25 m; 1.5 m ≤ h_UT ≤ 22.5 m; 10 m ≤ d_2D ≤ 5 km)
      LOS:  PL1 = 28.0 + 22·log10(d_3D) + 20·log10(f_c)                 for 10 m ≤ d_2D ≤ d'_BP,
            PL2 = 28.0 + 40·log10(d_3D) + 20·log10(f_c)
                  − 9·log10(d'_BP² + (h_BS − h_UT)²)                    for d'_BP ≤ d_2D ≤ 5 km;  σ_SF = 4 dB.
      NLOS: PL = max(PL_LOS, PL'), PL' = 13.54 + 39.08·log10(d_3D) + 20·log10(f_c)
            − 0.6·(h_UT − 1.5);                                          σ_SF = 6 dB.

    **UMi-Street Canyon** (h_BS = 10 m; 1.5 m ≤ h_UT ≤ 22.5 m; 10 m ≤ d_2D ≤ 5 km)
      LOS:  PL1 = 32.4 + 21·log10(d_3D) + 20·log10(f_c)                 for d_2D ≤ d'_BP,
            PL2 = 32.4 + 40·log10(d_3D) + 20·log10(f_c)
                  − 9.5·log10(d'_BP² + (h_BS − h_UT)²)                  beyond;  σ_SF = 4 dB.
      NLOS: PL = max(PL_LOS, PL'), PL' = 35.3·log10(d_3D) + 22.4 + 21.3·log10(f_c)
            − 0.3·(h_UT − 1.5);                                          σ_SF = 7.82 dB.

    **InH-Office** (h_BS = 3 m; 1 m ≤ d_3D ≤ 150 m)
      LOS:  PL = 32.4 + 17.3·log10(d_3D) + 20·log10(f_c);                σ_SF = 3 dB.
      NLOS: PL = max(PL_LOS, PL'), PL' = 38.3·log10(d_3D) + 17.30 + 24.9·log10(f_c);  σ_SF = 8.03 dB.

    Breakpoint (Table 7.4.1-1, Note 1): d'_BP = 4·h'_BS·h'_UT·f_c / c with f_c in Hz
    and effective heights h' = h − h_E. We use h_E = 1 m for both UMa and UMi.
    For UMi that is the table's value. For UMa it simplifies Note 1, where h_E
    is random: 1 m with probability 1/(1 + C(d_2D, h_UT)), otherwise drawn from
    {12, 15, …, h_UT − 1.5} m. Because C = 0 for h_UT ≤ 13 m, h_E = 1 m is
    exact for h_UT ≤ 13 m and only an approximation above that.

    Validity and clipping: UMa/UMi 2D distances below 10 m are clipped up to
    10 m; InH 3D distances below 1 m are clipped up to 1 m. Distances beyond
    the upper limits (5 km, 150 m) are extrapolated with the same formulas.
    The frequency range of the table is 0.5–100 GHz (not enforced).

    Attributes:
        scenario: ``"UMa"``, ``"UMi"`` (Street Canyon) or ``"InH"`` (Office).
        carrier_hz: carrier frequency f_c in Hz.
        h_bs_m: BS antenna height; None → 25 m (UMa), 10 m (UMi), 3 m (InH).
        h_ut_m: UT antenna height (default 1.5 m).
        los: ``"stochastic"`` draws each link's LOS state from Table 7.4.2-1
            in :meth:`gain_db` (InH: mixed office); ``"los"``/``"nlos"`` fix it.
        shadowing: add the table's log-normal shadow fading in :meth:`gain_db`.
    """

    scenario: Scenario
    carrier_hz: float
    h_bs_m: float | None = None
    h_ut_m: float = 1.5
    los: LosMode = "stochastic"
    shadowing: bool = True

    def __post_init__(self) -> None:
        if self.scenario not in _DEFAULT_H_BS_M:
            raise ValueError(f"scenario must be one of 'UMa', 'UMi', 'InH', got {self.scenario!r}")
        if self.los not in ("stochastic", "los", "nlos"):
            raise ValueError(f"los must be one of 'stochastic', 'los', 'nlos', got {self.los!r}")
        if not self.carrier_hz > 0:
            raise ValueError(f"carrier_hz must be positive, got {self.carrier_hz}")
        if self.h_bs_m is not None and not self.h_bs_m > 0:
            raise ValueError(f"h_bs_m must be positive, got {self.h_bs_m}")
        if not self.h_ut_m > 0:
            raise ValueError(f"h_ut_m must be positive, got {self.h_ut_m}")
        if self.scenario in ("UMa", "UMi"):
            if not self.h_ut_m > _H_E_M or not self.bs_height_m > _H_E_M:
                raise ValueError(
                    f"{self.scenario} needs h_ut_m and h_bs_m above h_E = 1 m for the breakpoint distance "
                    f"(Table 7.4.1-1, Note 1; spec range 1.5 m ≤ h_UT ≤ 22.5 m), got h_ut_m={self.h_ut_m}, "
                    f"h_bs_m={self.bs_height_m}"
                )
        if self.scenario == "UMa" and self.h_ut_m > 23.0:
            raise ValueError(f"h_ut_m must be ≤ 23 m for UMa (Table 7.4.2-1), got {self.h_ut_m}")

    @property
    def bs_height_m(self) -> float:
        """h_BS in m: ``h_bs_m`` or the scenario default (25 / 10 / 3 m)."""
        return _DEFAULT_H_BS_M[self.scenario] if self.h_bs_m is None else float(self.h_bs_m)

    def breakpoint_m(self) -> float:
        """d'_BP = 4·(h_BS − h_E)·(h_UT − h_E)·f_c / c with h_E = 1 m (Table 7.4.1-1, Note 1); f_c in Hz."""
        return 4.0 * (self.bs_height_m - _H_E_M) * (self.h_ut_m - _H_E_M) * self.carrier_hz / SPEED_OF_LIGHT_M_S

    def shadowing_std_db(self, los: bool) -> float:
        """σ_SF of Table 7.4.1-1 for this scenario and LOS state."""
        return _SIGMA_SF_DB[(self.scenario, bool(los))]

    def los_probability(self, d_2d_m: ArrayLike) -> float | np.ndarray:
        """Table 7.4.2-1 for this scenario (InH: mixed office)."""
        if self.scenario == "UMa":
            return los_probability_uma(d_2d_m, self.h_ut_m)
        if self.scenario == "UMi":
            return los_probability_umi(d_2d_m)
        return los_probability_inh_office(d_2d_m, mixed=True)

    def _distances(self, d_2d_m: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """(d_2D, d_3D) with the validity-range clipping of the class docstring."""
        d2 = positive(d_2d_m, "d_2d_m")
        if self.scenario in _MIN_D2D_M:
            d2 = np.maximum(d2, _MIN_D2D_M[self.scenario])
        d3 = np.sqrt(d2 * d2 + (self.bs_height_m - self.h_ut_m) ** 2)
        if self.scenario in _MIN_D3D_M:
            d3 = np.maximum(d3, _MIN_D3D_M[self.scenario])
        return d2, d3

    def _los_db(self, d2: np.ndarray, d3: np.ndarray, fc_ghz: float) -> np.ndarray:
        if self.scenario == "InH":
            return 32.4 + 17.3 * np.log10(d3) + 20.0 * np.log10(fc_ghz)
        a, b_near, k = (28.0, 22.0, 9.0) if self.scenario == "UMa" else (32.4, 21.0, 9.5)
        d_bp = self.breakpoint_m()
        pl1 = a + b_near * np.log10(d3) + 20.0 * np.log10(fc_ghz)
        pl2 = (
            a + 40.0 * np.log10(d3) + 20.0 * np.log10(fc_ghz)
            - k * np.log10(d_bp**2 + (self.bs_height_m - self.h_ut_m) ** 2)
        )  # fmt: skip
        return np.where(d2 <= d_bp, pl1, pl2)

    def _nlos_prime_db(self, d3: np.ndarray, fc_ghz: float) -> np.ndarray:
        if self.scenario == "UMa":
            return 13.54 + 39.08 * np.log10(d3) + 20.0 * np.log10(fc_ghz) - 0.6 * (self.h_ut_m - 1.5)
        if self.scenario == "UMi":
            return 35.3 * np.log10(d3) + 22.4 + 21.3 * np.log10(fc_ghz) - 0.3 * (self.h_ut_m - 1.5)
        return 38.3 * np.log10(d3) + 17.30 + 24.9 * np.log10(fc_ghz)

    def path_loss_db(self, d_2d_m: ArrayLike, los: ArrayLike | None = None) -> float | np.ndarray:
        """Deterministic loss PL_LOS where ``los`` is true, PL_NLOS = max(PL_LOS, PL') elsewhere.

        Args:
            d_2d_m: 2D BS–UT distances in m (> 0; clipped to the minimum, see class doc).
            los: bool or bool array broadcastable to ``d_2d_m``. None uses the
                model's fixed ``los`` setting.

        Raises:
            ValueError: non-positive distances, or ``los`` is None while the
                model's LOS state is "stochastic" (there is no single loss then;
                pass the state, or use :meth:`gain_db`).
        """
        d2, d3 = self._distances(d_2d_m)
        if los is None:
            if self.los == "stochastic":
                raise ValueError(
                    "los must be given (True/False or a bool array) when the model's LOS state is 'stochastic'"
                )
            los = self.los == "los"
        fc_ghz = self.carrier_hz / 1e9
        los_db = self._los_db(d2, d3, fc_ghz)
        nlos_db = np.maximum(los_db, self._nlos_prime_db(d3, fc_ghz))
        return scalar_or_array(np.where(np.asarray(los, dtype=bool), los_db, nlos_db))

    def gain_db(self, d_2d_m: ArrayLike, rng: np.random.Generator) -> float | np.ndarray:
        """−PL − X_σ per link, one realisation.

        Draw order (deterministic for a given ``rng`` state): first the LOS
        states, u < Pr_LOS(d) with u ~ U(0, 1) per link (only when ``los`` is
        "stochastic"), then the shadowing N(0, σ_SF²) per link with σ_SF of the
        drawn state (only when ``shadowing``).
        """
        d2 = positive(d_2d_m, "d_2d_m")
        if self.los == "stochastic":
            los = rng.random(d2.shape) < np.asarray(self.los_probability(d2))
        else:
            los = np.full(d2.shape, self.los == "los")
        loss = np.asarray(self.path_loss_db(d2, los))
        if self.shadowing:
            sigma = np.where(los, self.shadowing_std_db(True), self.shadowing_std_db(False))
            loss = loss + _shadowing_db(rng, sigma, loss.shape)
        return scalar_or_array(-loss)


PathLossModel: TypeAlias = LogDistance | FreeSpace | TR38901
"""Any of the path loss models (what a scenario's ``pathloss.build()`` returns)."""
