r"""The Jablonowski & Williamson (2006) baroclinic-instability test of a dynamical core.

The test has two parts (JW06, sections 2-3): an analytic, balanced, zonally symmetric steady
state of the dry hydrostatic primitive equations, which a core must keep steady (it is
baroclinically unstable, so round-off and truncation errors eventually grow), and the same
state with a small Gaussian bump in the zonal wind at (20E, 40N), which grows into a baroclinic
wave train in the northern hemisphere over 6-10 days.

With ``eta_v = (eta - eta_0) pi / 2`` the steady state is (JW06, eqs. 2-10)

.. math::

    u &= u_0 \cos^{3/2}\eta_v \, \sin^2 2\varphi, \qquad v = 0, \qquad p_s = 1000\ \mathrm{hPa},\\
    \bar T(\eta) &= T_0 \eta^{R\Gamma/g} + [\eta < \eta_t]\ \Delta T (\eta_t - \eta)^5, \\
    T &= \bar T + \tfrac{3}{4} \frac{\eta \pi u_0}{R} \sin\eta_v \cos^{1/2}\eta_v
         \left\{ A(\varphi)\, 2 u_0 \cos^{3/2}\eta_v + B(\varphi)\, a\Omega \right\}, \\
    \Phi &= \bar\Phi(\eta) + u_0 \cos^{3/2}\eta_v
         \left\{ A(\varphi)\, u_0 \cos^{3/2}\eta_v + B(\varphi)\, a\Omega \right\}, \\
    A(\varphi) &= -2 \sin^6\varphi \left(\cos^2\varphi + \tfrac13\right) + \tfrac{10}{63}, \qquad
    B(\varphi) = \tfrac85 \cos^3\varphi \left(\sin^2\varphi + \tfrac23\right) - \tfrac\pi4,

with :math:`\bar\Phi` the hydrostatic integral of :math:`\bar T` from :math:`\bar\Phi(1) = 0`;
the surface geopotential is :math:`\Phi(\varphi, \eta = 1)`. The perturbation (eq. 12) is

.. math:: u' = u_p \exp\left(-(r / R)^2\right), \quad
          r = a \arccos\left(\sin\varphi_c \sin\varphi + \cos\varphi_c \cos\varphi \cos(\lambda - \lambda_c)\right),

with :math:`u_p = 1` m/s, :math:`R = a / 10`, :math:`(\lambda_c, \varphi_c) = (20^\circ E, 40^\circ N)`.

Here eta is sigma (the sigma-coordinate version the paper allows: ``ps = p0`` initially, so
``eta = p / p0 = p / ps = sigma``); the 26 levels of the paper are
:meth:`~engine.models.global_.primitive.vertical.SigmaLevels.jablonowski_williamson`. The balance
holds for any values of ``a``, ``Omega``, ``R`` and ``g``, so by default the state is built with
the model's own constants (:mod:`~engine.models.global_.primitive.vertical`), which differ from
the paper's table 1 (a = 6.371229e6 m, Omega = 7.29212e-5 s-1, R = 287 J kg-1 K-1) by less
than 1e-4 relative: the model is then tested on a state that is steady for its own equations.

Public API: ``JW06Parameters``, ``jw06_zonal_wind``, ``jw06_temperature``,
``jw06_geopotential``, ``jw06_perturbation``, ``jw06_steady_state``, ``jw06_baroclinic_wave``,
``zonal_mean_l2``.

References
----------
Jablonowski, C. and D. L. Williamson (2006): A baroclinic instability test case for atmospheric
model dynamical cores. Q. J. R. Meteorol. Soc. 132, 2943-2975, doi:10.1256/qj.06.12.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from engine.errors import CoordError
from engine.models.global_.primitive.vertical import R_DRY, SigmaLevels
from engine.models.global_.spectral import EARTH_OMEGA, GRAVITY, SpectralGrid

__all__ = [
    "JW06Parameters",
    "jw06_baroclinic_wave",
    "jw06_geopotential",
    "jw06_perturbation",
    "jw06_steady_state",
    "jw06_temperature",
    "jw06_zonal_wind",
    "zonal_mean_l2",
]


@dataclass(frozen=True)
class JW06Parameters:
    """Parameters of the test (JW06, table 1) and the constants the state is balanced with.

    Attributes
    ----------
    u0 : float
        Jet maximum (m s-1), 35.
    eta0, eta_t : float
        Level of the jet maximum (0.252) and of the tropopause (0.2).
    t0 : float
        Surface temperature of the mean profile (K), 288.
    gamma : float
        Tropospheric lapse rate (K m-1), 0.005.
    delta_t : float
        Stratospheric temperature parameter (K), 4.8e5.
    ps : float
        Surface pressure (Pa), 1e5 everywhere.
    up : float
        Perturbation amplitude (m s-1), 1.
    lon_c, lat_c : float
        Perturbation centre (degrees east, north), 20 and 40.
    radius_frac : float
        Perturbation radius as a fraction of the Earth's radius, 1/10.
    radius, omega, r_dry, gravity : float
        Earth's radius (m), rotation rate (s-1), gas constant (J kg-1 K-1) and gravity (m s-2);
        the model's values by default (``radius=None``: the grid's radius).
    """

    u0: float = 35.0
    eta0: float = 0.252
    eta_t: float = 0.2
    t0: float = 288.0
    gamma: float = 0.005
    delta_t: float = 4.8e5
    ps: float = 1.0e5
    up: float = 1.0
    lon_c: float = 20.0
    lat_c: float = 40.0
    radius_frac: float = 0.1
    radius: float | None = None
    omega: float = EARTH_OMEGA
    r_dry: float = R_DRY
    gravity: float = GRAVITY

    def __post_init__(self) -> None:
        if not 0.0 < self.eta_t < self.eta0 < 1.0:
            raise CoordError(f"JW06 parameters: need 0 < eta_t < eta0 < 1, got eta_t={self.eta_t}, eta0={self.eta0}")
        if self.ps <= 0 or self.t0 <= 0 or self.radius_frac <= 0:
            raise CoordError(
                f"JW06 parameters: ps, t0 and radius_frac must be positive, got {self.ps}, {self.t0}, {self.radius_frac}"
            )

    @property
    def exponent(self) -> float:
        """``R Gamma / g`` (about 0.1464), the exponent of the tropospheric mean profile."""
        return self.r_dry * self.gamma / self.gravity


def _eta_v(eta: torch.Tensor, p: JW06Parameters) -> torch.Tensor:
    return (eta - p.eta0) * (math.pi / 2)


def _meridional_factors(lat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``A(phi)`` and ``B(phi)`` of the module docstring (both have zero global mean)."""
    s, c = torch.sin(lat), torch.cos(lat)
    a_fac = -2 * s**6 * (c**2 + 1.0 / 3.0) + 10.0 / 63.0
    b_fac = 1.6 * c**3 * (s**2 + 2.0 / 3.0) - math.pi / 4
    return a_fac, b_fac


def _check_eta(eta: torch.Tensor) -> None:
    if torch.any(eta <= 0) or torch.any(eta > 1):
        raise CoordError(f"JW06: eta (sigma) must lie in (0, 1], got {float(eta.min()):g} ... {float(eta.max()):g}")


def jw06_zonal_wind(lat: torch.Tensor, eta: torch.Tensor, params: JW06Parameters = JW06Parameters()) -> torch.Tensor:
    """Zonal wind of the steady state (m s-1), JW06 eq. 2.

    Parameters
    ----------
    lat : Tensor
        Latitude (rad), broadcastable against ``eta``.
    eta : Tensor
        Vertical coordinate eta = sigma (1), in (0, 1].
    params : JW06Parameters

    Returns
    -------
    Tensor
        ``u0 cos^{3/2}(eta_v) sin^2(2 lat)``, broadcast shape.
    """
    _check_eta(eta)
    return params.u0 * torch.cos(_eta_v(eta, params)) ** 1.5 * torch.sin(2 * lat) ** 2


def _mean_temperature(eta: torch.Tensor, p: JW06Parameters) -> torch.Tensor:
    t_bar = p.t0 * eta**p.exponent
    strat = p.delta_t * torch.clamp(p.eta_t - eta, min=0.0) ** 5
    return t_bar + strat


def _mean_geopotential(eta: torch.Tensor, p: JW06Parameters) -> torch.Tensor:
    phi = p.t0 * p.gravity / p.gamma * (1 - eta**p.exponent)
    et = p.eta_t
    poly = (
        (torch.log(eta / et) + 137.0 / 60.0) * et**5
        - 5 * et**4 * eta
        + 5 * et**3 * eta**2
        - 10.0 / 3.0 * et**2 * eta**3
        + 1.25 * et * eta**4
        - 0.2 * eta**5
    )
    return phi - torch.where(eta < et, p.r_dry * p.delta_t * poly, torch.zeros_like(poly))


def jw06_temperature(
    lat: torch.Tensor, eta: torch.Tensor, params: JW06Parameters = JW06Parameters(), *, radius: float
) -> torch.Tensor:
    """Temperature of the steady state (K), JW06 eqs. 4-6.

    Parameters
    ----------
    lat : Tensor
        Latitude (rad), broadcastable against ``eta``.
    eta : Tensor
        eta = sigma, in (0, 1].
    params : JW06Parameters
    radius : float
        Earth's radius (m) the state is balanced for.

    Returns
    -------
    Tensor
        Temperature (K), broadcast shape.
    """
    _check_eta(eta)
    p = params
    ev = _eta_v(eta, p)
    a_fac, b_fac = _meridional_factors(lat)
    cos_ev = torch.cos(ev)
    bracket = a_fac * 2 * p.u0 * cos_ev**1.5 + b_fac * radius * p.omega
    return _mean_temperature(eta, p) + 0.75 * eta * math.pi * p.u0 / p.r_dry * torch.sin(ev) * cos_ev**0.5 * bracket


def jw06_geopotential(
    lat: torch.Tensor, eta: torch.Tensor, params: JW06Parameters = JW06Parameters(), *, radius: float
) -> torch.Tensor:
    """Geopotential of the steady state (m2 s-2), JW06 eqs. 7-10; ``eta = 1`` gives ``phis``.

    Arguments as :func:`jw06_temperature`; the result has their broadcast shape.
    """
    _check_eta(eta)
    p = params
    c15 = torch.cos(_eta_v(eta, p)) ** 1.5
    a_fac, b_fac = _meridional_factors(lat)
    return _mean_geopotential(eta, p) + p.u0 * c15 * (a_fac * p.u0 * c15 + b_fac * radius * p.omega)


def jw06_perturbation(lat: torch.Tensor, lon: torch.Tensor, params: JW06Parameters = JW06Parameters()) -> torch.Tensor:
    """Zonal-wind perturbation (m s-1), JW06 eq. 12: a Gaussian of radius ``a / 10`` at (20E, 40N).

    Parameters
    ----------
    lat, lon : Tensor
        Latitude and longitude (rad), broadcastable.
    params : JW06Parameters

    Returns
    -------
    Tensor
        ``up exp(-(r / R)^2)``, the same on every level.
    """
    latc, lonc = math.radians(params.lat_c), math.radians(params.lon_c)
    cosr = math.sin(latc) * torch.sin(lat) + math.cos(latc) * torch.cos(lat) * torch.cos(lon - lonc)
    # r / R = arccos(.) / radius_frac: the Earth's radius cancels.
    dist = torch.arccos(torch.clamp(cosr, -1.0, 1.0)) / params.radius_frac
    return params.up * torch.exp(-(dist**2))


def _sigma(levels: SigmaLevels | np.ndarray | torch.Tensor, grid: SpectralGrid) -> torch.Tensor:
    full = levels.full if isinstance(levels, SigmaLevels) else levels
    # np.array copies: SigmaLevels holds read-only arrays, which torch warns about sharing.
    sigma = full if torch.is_tensor(full) else torch.from_numpy(np.array(full, dtype=np.float64))
    sigma = sigma.to(dtype=grid.dtype, device=grid.lats.device).reshape(-1)
    if sigma.numel() < 1:
        raise CoordError("JW06: need at least one sigma level")
    return sigma


def jw06_steady_state(
    grid: SpectralGrid,
    levels: SigmaLevels | np.ndarray | torch.Tensor,
    params: JW06Parameters = JW06Parameters(),
) -> dict[str, torch.Tensor]:
    """The balanced steady state on the model grid at the given sigma (= eta) full levels.

    Parameters
    ----------
    grid : SpectralGrid
        Model grid (latitudes descending, longitudes from 0).
    levels : SigmaLevels or array-like
        Sigma levels (their ``full`` levels), or the full levels themselves, ``(nlev,)``, top first.
    params : JW06Parameters

    Returns
    -------
    dict of str to Tensor
        ``u``, ``v`` (m s-1), ``t`` (K), ``(nlev, nlat, nlon)``; ``ps`` (Pa) and ``phis``
        (m2 s-2), ``(nlat, nlon)``; in the grid's dtype and on its device.
    """
    sigma = _sigma(levels, grid).reshape(-1, 1, 1)
    radius = grid.radius if params.radius is None else params.radius
    lat = grid.lats.reshape(1, -1, 1)
    ones = torch.ones(1, 1, grid.nlon, dtype=grid.dtype, device=lat.device)
    u = jw06_zonal_wind(lat, sigma, params) * ones
    t = jw06_temperature(lat, sigma, params, radius=radius) * ones
    phis = jw06_geopotential(lat[0], torch.ones_like(lat[0]), params, radius=radius) * ones[0]
    return {
        "u": u,
        "v": torch.zeros_like(u),
        "t": t,
        "ps": torch.full_like(phis, params.ps),
        "phis": phis,
    }


def jw06_baroclinic_wave(
    grid: SpectralGrid,
    levels: SigmaLevels | np.ndarray | torch.Tensor,
    params: JW06Parameters = JW06Parameters(),
) -> dict[str, torch.Tensor]:
    """The steady state plus the zonal-wind perturbation on every level (JW06, section 3).

    Parameters and returns as :func:`jw06_steady_state`.
    """
    state = jw06_steady_state(grid, levels, params)
    lat, lon = grid.lats.reshape(-1, 1), grid.lons.reshape(1, -1)
    state["u"] = state["u"] + jw06_perturbation(lat, lon, params)
    return state


def zonal_mean_l2(grid: SpectralGrid, u: torch.Tensor, u_ref: torch.Tensor, levels: SigmaLevels) -> torch.Tensor:
    r"""The l2 difference of the zonal means of ``u`` and ``u_ref``, JW06 eq. 14.

    .. math::

        l_2 = \left\{ \frac{1}{4\pi} \int_0^1 \!\!\int_{-\pi/2}^{\pi/2}
        \left[\bar u(\varphi, \eta, t) - \bar u(\varphi, \eta, 0)\right]^2
        \cos\varphi \, d\varphi \, 2\pi\, d\eta \right\}^{1/2}

    with the quadrature weights of the grid in latitude and the layer thicknesses in eta.

    Parameters
    ----------
    grid : SpectralGrid
    u, u_ref : Tensor
        Zonal winds (m s-1), ``(..., nlev, nlat, nlon)``.
    levels : SigmaLevels
        Their levels (``dsigma`` weights the layers).

    Returns
    -------
    Tensor
        l2 (m s-1), shape ``(...)``.
    """
    if u.shape != u_ref.shape or u.shape[-3] != levels.nlev:
        raise CoordError(
            f"zonal_mean_l2: u {tuple(u.shape)} and u_ref {tuple(u_ref.shape)} must match, with {levels.nlev} levels on dim -3"
        )
    diff = (u - u_ref).mean(dim=-1, keepdim=True)
    per_level = grid.global_mean(diff.expand_as(u) ** 2)
    dsig = levels.tensor("dsigma", dtype=per_level.dtype, device=per_level.device)
    return torch.sqrt(torch.sum(per_level * dsig, dim=-1))
