"""Sigma levels, physical constants and the Simmons & Burridge (1981) vertical discretisation.

The primitive-equation core uses the terrain-following coordinate ``sigma = p / ps``
(Phillips 1957) with ``nlev`` layers. Half levels ``sigma_{k+1/2}`` bound the layers, full levels
``sigma_k`` lie inside them; index 0 is the TOP layer and ``nlev - 1`` the lowest, as in the
ECMWF and NCAR CAM descriptions. The half levels run from 0 at the top of the atmosphere to 1 at
the ground.

The hydrostatic equation is discretised as in Simmons & Burridge (1981, eqs. 2.11-2.13; the
ECMWF IFS documentation, Part III, section 2.2, uses the same coefficients): with
``ln_ratio_k = ln(p_{k+1/2} / p_{k-1/2})`` and

.. math::

    \\alpha_k = 1 - \\frac{p_{k-1/2}}{\\Delta p_k} \\ln\\frac{p_{k+1/2}}{p_{k-1/2}}, \\qquad
    \\alpha_{\\mathrm{top}} = \\ln 2 \\ (p_{1/2} = 0),

the geopotential on half and full levels is

.. math::

    \\Phi_{k+1/2} = \\Phi_s + R \\sum_{j > k} T_j \\ln\\frac{p_{j+1/2}}{p_{j-1/2}}, \\qquad
    \\Phi_k = \\Phi_{k+1/2} + \\alpha_k R T_k .

In sigma coordinates the ratios depend on sigma alone, so ``Phi - Phi_s = R G T`` with one
constant ``(nlev, nlev)`` matrix ``G`` (:func:`hydrostatic_matrix`), shared by the dynamical
core (pressure-gradient force, semi-implicit operator) and the diagnostics, so that both see
the same geopotential. For an isothermal atmosphere the scheme is exact on half levels and at
the pressure ``ln p_k = ln p_{k+1/2} - alpha_k`` (:func:`sb81_log_pressure`); full levels
``sigma_k`` themselves are the mid-points of the layers, as in CAM, SPEEDY and dinosaur.

Public API: ``R_DRY``, ``CP_DRY``, ``KAPPA``, ``P0``, ``GRAVITY``, ``EARTH_RADIUS``,
``EARTH_OMEGA``, ``SigmaLevels``, ``sb81_alpha``, ``sb81_log_ratio``, ``sb81_log_pressure``,
``hydrostatic_matrix``, ``geopotential``, ``geopotential_half``, ``pressure_full``,
``pressure_half``, ``interp_log_pressure``, ``STANDARD_LAPSE_RATE``, ``standard_atmosphere``.

References
----------
Simmons, A. J. and D. M. Burridge (1981): An energy and angular-momentum conserving vertical
finite-difference scheme and hybrid vertical coordinates. Mon. Wea. Rev. 109, 758-766.
Jablonowski, C. and D. L. Williamson (2006): A baroclinic instability test case for atmospheric
model dynamical cores. Q. J. R. Meteorol. Soc. 132, 2943-2975.
Held, I. M. and M. J. Suarez (1994): A proposal for the intercomparison of the dynamical cores of
atmospheric general circulation models. Bull. Amer. Meteor. Soc. 75, 1825-1830.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.errors import CoordError
from engine.models.global_.spectral import EARTH_OMEGA, EARTH_RADIUS, GRAVITY

#: Gas constant of dry air (J kg-1 K-1) and its specific heat at constant pressure (J kg-1 K-1),
#: the values of the ECMWF IFS and of Jablonowski & Williamson (2006, table 1: R = 287.04).
R_DRY = 287.04
CP_DRY = 1004.64
#: ``R / cp`` (2/7 for an ideal diatomic gas).
KAPPA = R_DRY / CP_DRY
#: Reference pressure (Pa) of potential temperature.
P0 = 1.0e5
#: Tropospheric lapse rate of the ICAO / US (1976) standard atmosphere (K m-1), the one ECMWF uses
#: to extrapolate below the ground and to reduce pressure to sea level (Trenberth et al. 1993).
STANDARD_LAPSE_RATE = 0.0065

# US Standard Atmosphere (1976) layers up to 51 km: base geopotential height (m), lapse rate (K m-1).
_ISA_LAYERS = ((0.0, 0.0065), (11000.0, 0.0), (20000.0, -0.001), (32000.0, -0.0028), (47000.0, 0.0))
_ISA_T0, _ISA_P0 = 288.15, 101325.0

__all__ = [
    "CP_DRY",
    "EARTH_OMEGA",
    "EARTH_RADIUS",
    "GRAVITY",
    "KAPPA",
    "P0",
    "R_DRY",
    "STANDARD_LAPSE_RATE",
    "SigmaLevels",
    "geopotential",
    "geopotential_half",
    "hydrostatic_matrix",
    "interp_log_pressure",
    "pressure_full",
    "pressure_half",
    "sb81_alpha",
    "sb81_log_pressure",
    "sb81_log_ratio",
    "standard_atmosphere",
]

# Jablonowski & Williamson (2006), appendix B, table: the 26-level eta = A + B half levels of
# NCAR CAM3 (top first). The top interface (eta = 0.002194, 2.2 hPa) is moved to 0 here because
# the sigma core has its lid at p = 0 (see SigmaLevels.jablonowski_williamson).
_JW06_HYAI = (
    0.002194067, 0.004895209, 0.009882418, 0.01805201, 0.02983724, 0.04462334, 0.06160587,
    0.07851243, 0.07731271, 0.07590131, 0.07424086, 0.07228744, 0.06998933, 0.06728574,
    0.06410511, 0.06036322, 0.05596111, 0.05078225, 0.04468963, 0.03752191, 0.02908949,
    0.02084739, 0.01334443, 0.00708499, 0.00252136, 0.0, 0.0,
)  # fmt: skip
_JW06_HYBI = (
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.01505309, 0.03276228, 0.05359622, 0.07810627,
    0.1069411, 0.1408637, 0.1807720, 0.2277220, 0.2829562, 0.3479364, 0.4243822, 0.5143168,
    0.6201202, 0.7235355, 0.8176768, 0.8962153, 0.9534761, 0.9851122, 1.0,
)  # fmt: skip


@dataclass(frozen=True)
class SigmaLevels:
    """Half and full sigma levels of the vertical grid (index 0 = top).

    Parameters
    ----------
    half : array-like, (nlev + 1,)
        Half-level sigma values, strictly increasing from 0 (top) to 1 (surface).
    full : array-like, (nlev,), optional
        Full-level sigma values, each strictly inside its layer; the layer mid-points
        ``(half[:-1] + half[1:]) / 2`` by default (CAM, SPEEDY, dinosaur).

    Attributes
    ----------
    nlev : int
        Number of layers.
    dsigma : ndarray, (nlev,)
        Layer thicknesses ``half[1:] - half[:-1]``, summing to 1.

    Raises
    ------
    CoordError
        If the half levels do not run strictly increasing from 0 to 1, or a full level lies
        outside its layer.
    """

    half: np.ndarray
    full: np.ndarray = field(default=None)  # type: ignore[arg-type]  # filled in __post_init__

    def __post_init__(self) -> None:
        half = np.asarray(self.half, dtype=np.float64).reshape(-1)
        if half.size < 2:
            raise CoordError(f"sigma levels: need at least 2 half levels (1 layer), got {half.size}")
        if not np.isclose(half[0], 0.0, atol=1e-12) or not np.isclose(half[-1], 1.0, atol=1e-12):
            raise CoordError(
                f"sigma levels: half levels must run from 0 (top) to 1 (surface), got {half[0]:g} ... {half[-1]:g}"
            )
        if np.any(np.diff(half) <= 0):
            raise CoordError("sigma levels: half levels must increase strictly from the top (0) to the surface (1)")
        half = half.copy()
        half[0], half[-1] = 0.0, 1.0
        full = (half[:-1] + half[1:]) / 2 if self.full is None else np.asarray(self.full, dtype=np.float64).reshape(-1)
        if full.shape != (half.size - 1,):
            raise CoordError(f"sigma levels: {half.size - 1} layers need {half.size - 1} full levels, got {full.size}")
        if np.any(full <= half[:-1]) or np.any(full >= half[1:]):
            raise CoordError("sigma levels: every full level must lie strictly inside its layer")
        half.setflags(write=False)
        full.setflags(write=False)
        object.__setattr__(self, "half", half)
        object.__setattr__(self, "full", full)

    @property
    def nlev(self) -> int:
        """Number of layers (full levels)."""
        return int(self.full.size)

    @property
    def dsigma(self) -> np.ndarray:
        """Layer thicknesses in sigma, ``(nlev,)``."""
        return np.diff(self.half)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SigmaLevels):
            return NotImplemented
        return bool(np.array_equal(self.half, other.half) and np.array_equal(self.full, other.full))

    def __hash__(self) -> int:
        return hash((self.half.tobytes(), self.full.tobytes()))

    def __repr__(self) -> str:
        return f"SigmaLevels(nlev={self.nlev}, full={np.round(self.full, 4).tolist()})"

    def tensor(
        self, which: str = "full", *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """``half``, ``full`` or ``dsigma`` as a tensor (on ``device``)."""
        values = {"half": self.half, "full": self.full, "dsigma": self.dsigma}
        if which not in values:
            raise CoordError(f"sigma levels: no {which!r}; expected half, full or dsigma")
        return torch.tensor(values[which], dtype=dtype, device=device)  # a copy: the arrays are read-only

    # ------------------------------------------------------------------ constructors
    @classmethod
    def equal(cls, nlev: int) -> SigmaLevels:
        """``nlev`` layers equally spaced in sigma (Held & Suarez 1994; dinosaur's ``equidistant``)."""
        if nlev < 1:
            raise CoordError(f"sigma levels: nlev must be >= 1, got {nlev}")
        return cls(np.linspace(0.0, 1.0, nlev + 1))

    @classmethod
    def held_suarez(cls) -> SigmaLevels:
        """The 20 layers equally spaced in sigma of Held & Suarez (1994, section 3)."""
        return cls.equal(20)

    @classmethod
    def jablonowski_williamson(cls) -> SigmaLevels:
        """The 26 levels of Jablonowski & Williamson (2006, appendix B) used as sigma levels.

        The half levels are ``eta = A + B`` of the paper's table (NCAR CAM3 L26), with the top
        interface at eta = 0.002194 (2.2 hPa) lowered to 0: a sigma core has its lid at
        ``p = 0``, and the paper allows pure sigma (``A = 0``) grids for the test. Full levels are
        the layer mid-points, as the paper's table gives them.
        """
        half = np.asarray(_JW06_HYAI) + np.asarray(_JW06_HYBI)
        half[0] = 0.0
        return cls(half)

    @classmethod
    def stretched(cls, nlev: int = 20, *, stretch: float = 0.6) -> SigmaLevels:
        """``nlev`` layers refined near the surface and near the top (the default: L20).

        Half levels are ``sigma(x) = (1 - s) x + s (3 x^2 - 2 x^3)`` at ``x = k / nlev``: a blend
        of equal spacing with the smooth step, whose slope ``1 - s`` at both ends makes the
        lowest and the top layers ``1 - s`` times as thick as equal spacing and the middle ones
        ``1 + s / 2`` times. With ``nlev = 20, s = 0.6`` the lowest layer is 0.024 thick (about
        200 m, full level near 100 m, as in the lowest levels of ECMWF's L31 and CAM's L26) and
        the top one spans 0-24 hPa.
        """
        if nlev < 2:
            raise CoordError(f"sigma levels: nlev must be >= 2, got {nlev}")
        if not 0.0 <= stretch < 1.0:
            raise CoordError(f"sigma levels: stretch must be in [0, 1), got {stretch}")
        x = np.linspace(0.0, 1.0, nlev + 1)
        return cls((1 - stretch) * x + stretch * (3 * x**2 - 2 * x**3))

    @classmethod
    def default(cls) -> SigmaLevels:
        """The default vertical grid of the global core: :meth:`stretched` with 20 layers."""
        return cls.stretched(20)


# ---------------------------------------------------------------------- Simmons & Burridge (1981)
def sb81_log_ratio(levels: SigmaLevels) -> np.ndarray:
    """``ln(sigma_{k+1/2} / sigma_{k-1/2})`` per layer, ``(nlev,)``; ``inf`` for the top layer."""
    with np.errstate(divide="ignore"):
        return np.log(levels.half[1:]) - np.log(levels.half[:-1])


def sb81_alpha(levels: SigmaLevels) -> np.ndarray:
    """The coefficients ``alpha_k`` of Simmons & Burridge (1981, eq. 3.18), ``(nlev,)``.

    ``alpha_k = 1 - sigma_{k-1/2} / dsigma_k * ln(sigma_{k+1/2} / sigma_{k-1/2})``, and ``ln 2``
    for the top layer (``sigma_{1/2} = 0``), so that its full level sits at ``sigma_{3/2} / 2``.
    """
    lnr = sb81_log_ratio(levels)
    alpha = np.empty(levels.nlev)
    alpha[0] = math.log(2.0)
    alpha[1:] = 1.0 - levels.half[1:-1] / levels.dsigma[1:] * lnr[1:]
    return alpha


def sb81_log_pressure(levels: SigmaLevels) -> np.ndarray:
    """``ln(sigma)`` at which the SB81 full-level geopotential is exact for isothermal air, ``(nlev,)``.

    ``ln sigma_k^* = ln sigma_{k+1/2} - alpha_k``; equals Simmons & Burridge's (1981, eq. 3.19)
    full-level pressure ``(p ln p|_{k+1/2} - p ln p|_{k-1/2}) / dp - 1``.
    """
    return np.log(levels.half[1:]) - sb81_alpha(levels)


def hydrostatic_matrix(
    levels: SigmaLevels, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> torch.Tensor:
    """The matrix ``G`` (nlev, nlev) of the discrete hydrostatic equation ``Phi - Phi_s = R_DRY G T``.

    Upper triangular: ``G[k, k] = alpha_k`` and ``G[k, j] = ln(sigma_{j+1/2} / sigma_{j-1/2})``
    for ``j > k`` (Simmons & Burridge 1981, eq. 2.13 in sigma coordinates).

    Parameters
    ----------
    levels : SigmaLevels
        The vertical grid.
    dtype, device
        Of the returned tensor.

    Returns
    -------
    Tensor
        ``(nlev, nlev)``, dimensionless.
    """
    n = levels.nlev
    lnr = sb81_log_ratio(levels)
    g = np.zeros((n, n))
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    g[upper] = np.broadcast_to(lnr, (n, n))[upper]
    g[np.arange(n), np.arange(n)] = sb81_alpha(levels)
    return torch.as_tensor(g, dtype=dtype, device=device)


def _check_levels_dim(t: torch.Tensor, levels: SigmaLevels, what: str) -> None:
    if t.ndim < 3 or t.shape[-3] != levels.nlev:
        raise CoordError(f"{what}: expected (..., {levels.nlev}, lat, lon) with levels on dim -3, got {tuple(t.shape)}")


def geopotential(t: torch.Tensor, phis: torch.Tensor, levels: SigmaLevels) -> torch.Tensor:
    """Full-level geopotential (m2 s-2) from temperature by the SB81 hydrostatic equation.

    Parameters
    ----------
    t : Tensor, (..., nlev, lat, lon)
        Full-level temperature (K); the levels on dim -3, any leading (member) dims.
    phis : Tensor, (lat, lon) or broadcastable to ``t[..., 0, :, :]``
        Surface geopotential (m2 s-2).
    levels : SigmaLevels
        The vertical grid.

    Returns
    -------
    Tensor
        ``phis + R_DRY * G @ t``, shape of ``t``.
    """
    _check_levels_dim(t, levels, "geopotential")
    g = hydrostatic_matrix(levels, dtype=t.dtype, device=t.device)
    return phis.unsqueeze(-3) + R_DRY * torch.einsum("kj,...jyx->...kyx", g, t)


def geopotential_half(t: torch.Tensor, phis: torch.Tensor, levels: SigmaLevels) -> torch.Tensor:
    """Half-level geopotential (m2 s-2), ``(..., nlev + 1, lat, lon)``; ``inf`` at the top (p = 0).

    ``Phi_{k+1/2} = Phi_s + R sum_{j > k} T_j ln(sigma_{j+1/2} / sigma_{j-1/2})``: the same
    sums as :func:`geopotential` (Simmons & Burridge 1981, eq. 2.12).
    """
    _check_levels_dim(t, levels, "geopotential_half")
    lnr = torch.as_tensor(sb81_log_ratio(levels)[1:], dtype=t.dtype, device=t.device)
    # thickness of layers 1..nlev-1, summed from the ground upwards
    dz = R_DRY * t[..., 1:, :, :] * lnr[:, None, None]
    below = torch.flip(torch.cumsum(torch.flip(dz, (-3,)), dim=-3), (-3,))
    surf = torch.broadcast_to(phis.to(t.dtype), t[..., 0, :, :].shape).unsqueeze(-3)
    return torch.cat((torch.full_like(surf, math.inf), surf + below, surf), dim=-3)


def pressure_full(ps: torch.Tensor, levels: SigmaLevels) -> torch.Tensor:
    """Full-level pressure ``sigma_k ps`` (Pa), ``(..., nlev, lat, lon)`` from ``ps (..., lat, lon)`` (Pa)."""
    return levels.tensor("full", dtype=ps.dtype, device=ps.device)[:, None, None] * ps.unsqueeze(-3)


def pressure_half(ps: torch.Tensor, levels: SigmaLevels) -> torch.Tensor:
    """Half-level pressure ``sigma_{k+1/2} ps`` (Pa), ``(..., nlev + 1, lat, lon)``."""
    return levels.tensor("half", dtype=ps.dtype, device=ps.device)[:, None, None] * ps.unsqueeze(-3)


# ---------------------------------------------------------------------- vertical interpolation
def interp_log_pressure(values: torch.Tensor, x_src: torch.Tensor, x_tgt: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation in the vertical, held constant beyond the end levels.

    Parameters
    ----------
    values : Tensor, (..., n, lat, lon)
        Values on ``n`` source levels (levels on dim -3).
    x_src : Tensor, (n,)
        The source coordinate (e.g. ``ln p`` or ``ln sigma``), strictly increasing, the same for
        every column.
    x_tgt : Tensor, (..., k, lat, lon)
        Target coordinate of each output point, in the units of ``x_src``; its leading dims
        broadcast against those of ``values``.

    Returns
    -------
    Tensor
        ``(..., k, lat, lon)``. Outside ``[x_src[0], x_src[-1]]`` the end values are returned;
        callers replace them by their extrapolation where they have one.
    """
    n = x_src.numel()
    lead = torch.broadcast_shapes(values.shape[:-3], x_tgt.shape[:-3])
    xt = torch.broadcast_to(x_tgt, lead + x_tgt.shape[-3:]).contiguous()
    vals = torch.broadcast_to(values, lead + values.shape[-3:])
    upper = torch.searchsorted(x_src.contiguous(), xt).clamp(1, n - 1)
    x0, x1 = x_src[upper - 1], x_src[upper]
    w = ((xt - x0) / (x1 - x0)).clamp(0.0, 1.0)
    v0 = torch.gather(vals, -3, upper - 1)
    v1 = torch.gather(vals, -3, upper)
    return v0 + w * (v1 - v0)


def standard_atmosphere(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Temperature (K) and geopotential (m2 s-2) of the US (1976) standard atmosphere at pressure ``p`` (Pa).

    The layers of the standard (288.15 K and 1013.25 hPa at the ground, 6.5 K km-1 to 11 km,
    isothermal to 20 km, then warming by 1 and 2.8 K km-1, isothermal above 47 km), integrated
    hydrostatically with this module's ``R_DRY`` and ``GRAVITY`` so that it is in exact discrete
    balance with the core (the standard's own constants differ by 5e-5).

    Parameters
    ----------
    p : Tensor
        Pressure (Pa), any shape, ``0 < p``.

    Returns
    -------
    (t, phi) : tuple of Tensor
        The shape of ``p``.
    """
    bases = []  # (ln p_base, z_base, T_base, lapse)
    t_b, lnp_b = _ISA_T0, math.log(_ISA_P0)
    for i, (z_b, lapse) in enumerate(_ISA_LAYERS):
        bases.append((lnp_b, z_b, t_b, lapse))
        if i + 1 < len(_ISA_LAYERS):
            dz = _ISA_LAYERS[i + 1][0] - z_b
            t_top = t_b - lapse * dz
            lnp_b += (GRAVITY / (R_DRY * lapse)) * math.log(t_top / t_b) if lapse else -GRAVITY * dz / (R_DRY * t_b)
            t_b = t_top
    lnp = torch.log(p)
    t = torch.zeros_like(p)
    z = torch.zeros_like(p)
    # Each layer overwrites the points at or above its base: the last one that applies wins.
    for i, (lnp0, z0, t0, lapse) in enumerate(bases):
        here = lnp <= lnp0 if i else torch.ones_like(p, dtype=torch.bool)  # the lowest layer also below the ground
        if lapse:
            tl = t0 * torch.exp((R_DRY * lapse / GRAVITY) * (lnp - lnp0))
            zl = z0 + (t0 - tl) / lapse
        else:
            tl = torch.full_like(p, t0)
            zl = z0 + R_DRY * t0 / GRAVITY * (lnp0 - lnp)
        t, z = torch.where(here, tl, t), torch.where(here, zl, z)
    return t, GRAVITY * z
