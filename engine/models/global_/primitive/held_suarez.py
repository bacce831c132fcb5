r"""The Held & Suarez (1994) forcing of a dry dynamical core: Newtonian cooling and Rayleigh drag.

The benchmark replaces all physics by a relaxation of temperature towards a zonally symmetric
radiative-equilibrium profile and a linear drag on the winds in the boundary layer
(HS94, eqs. 1-4; ``sigma = p / ps``):

.. math::

    \partial_t \mathbf v &= \dots - k_v(\sigma)\, \mathbf v, \qquad
    \partial_t T = \dots - k_T(\varphi, \sigma)\, [T - T_{eq}(\varphi, p)], \\
    T_{eq} &= \max\left\{200\,\mathrm K,\ \left[315\,\mathrm K - (\Delta T)_y \sin^2\varphi
              - (\Delta\theta)_z \ln\frac{p}{p_0} \cos^2\varphi\right] \left(\frac{p}{p_0}\right)^\kappa\right\}, \\
    k_T &= k_a + (k_s - k_a) \max\left(0, \frac{\sigma - \sigma_b}{1 - \sigma_b}\right) \cos^4\varphi, \qquad
    k_v = k_f \max\left(0, \frac{\sigma - \sigma_b}{1 - \sigma_b}\right),

with :math:`\sigma_b = 0.7`, :math:`k_f = 1\ \mathrm{day}^{-1}`, :math:`k_a = 1/40\ \mathrm{day}^{-1}`,
:math:`k_s = 1/4\ \mathrm{day}^{-1}`, :math:`(\Delta T)_y = 60` K, :math:`(\Delta\theta)_z = 10` K,
:math:`p_0 = 1000` hPa and :math:`\kappa = R / c_p` (2/7 in the paper; the model's
:data:`~engine.models.global_.primitive.vertical.KAPPA`, 0.28570, by default so that the forcing
and the core's thermodynamics share one value).

The rates are functions of latitude and sigma only, so :class:`HeldSuarezForcing` computes them
once for a grid and a set of levels; ``T_eq`` depends on the surface pressure and is recomputed
from the current ``ps`` at every call. Fields may carry any leading (batch, member) dims.

Public API: ``HeldSuarezParameters``, ``equilibrium_temperature``, ``thermal_relaxation_rate``,
``friction_rate``, ``HeldSuarezForcing``.

References
----------
Held, I. M. and M. J. Suarez (1994): A proposal for the intercomparison of the dynamical cores of
atmospheric general circulation models. Bull. Amer. Meteor. Soc. 75, 1825-1830.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.errors import CoordError
from engine.models.global_.primitive.vertical import KAPPA, P0, SigmaLevels
from engine.models.global_.spectral import SpectralGrid

__all__ = [
    "HeldSuarezForcing",
    "HeldSuarezParameters",
    "equilibrium_temperature",
    "friction_rate",
    "thermal_relaxation_rate",
]

_DAY = 86400.0


@dataclass(frozen=True)
class HeldSuarezParameters:
    """The constants of HS94 (section 2), rates in s-1.

    Attributes
    ----------
    t_surface_eq, t_min : float
        Equilibrium temperature at the equator's surface (315 K) and its floor (200 K).
    delta_t_y, delta_theta_z : float
        Equator-to-pole temperature difference (60 K) and vertical potential-temperature
        scale (10 K).
    sigma_b : float
        Top of the boundary layer in sigma (0.7).
    k_f, k_a, k_s : float
        Surface drag rate (1/day), free-atmosphere and surface cooling rates (1/40 and 1/4 day).
    p0 : float
        Reference pressure (Pa), 1e5.
    kappa : float
        ``R / cp`` of the potential-temperature factor.
    """

    t_surface_eq: float = 315.0
    t_min: float = 200.0
    delta_t_y: float = 60.0
    delta_theta_z: float = 10.0
    sigma_b: float = 0.7
    k_f: float = 1.0 / _DAY
    k_a: float = 1.0 / (40.0 * _DAY)
    k_s: float = 1.0 / (4.0 * _DAY)
    p0: float = P0
    kappa: float = KAPPA

    def __post_init__(self) -> None:
        if not 0.0 <= self.sigma_b < 1.0:
            raise CoordError(f"Held-Suarez parameters: sigma_b must be in [0, 1), got {self.sigma_b}")
        if min(self.k_f, self.k_a, self.k_s) < 0:
            raise CoordError(
                f"Held-Suarez parameters: rates must be >= 0, got k_f={self.k_f}, k_a={self.k_a}, k_s={self.k_s}"
            )


def _check_sigma(sigma: torch.Tensor) -> None:
    if torch.any(sigma <= 0) or torch.any(sigma > 1):
        raise CoordError(
            f"Held-Suarez: sigma must lie in (0, 1], got {float(sigma.min()):g} ... {float(sigma.max()):g}"
        )


def _boundary_layer_weight(sigma: torch.Tensor, p: HeldSuarezParameters) -> torch.Tensor:
    return torch.clamp((sigma - p.sigma_b) / (1.0 - p.sigma_b), min=0.0)


def equilibrium_temperature(
    lat: torch.Tensor, pressure: torch.Tensor, params: HeldSuarezParameters = HeldSuarezParameters()
) -> torch.Tensor:
    """Radiative-equilibrium temperature ``T_eq`` (K), HS94 eq. 3.

    Parameters
    ----------
    lat : Tensor
        Latitude (rad), broadcastable against ``pressure`` (e.g. ``(nlat, 1)``).
    pressure : Tensor
        Pressure (Pa), > 0, e.g. ``sigma * ps`` of shape ``(..., nlev, nlat, nlon)``.
    params : HeldSuarezParameters

    Returns
    -------
    Tensor
        ``T_eq`` (K), the broadcast shape, between ``t_min`` and ``t_surface_eq (p / p0)^kappa``.
    """
    if torch.any(pressure <= 0):
        raise CoordError(f"Held-Suarez: pressure must be > 0 Pa, got min {float(pressure.min()):g}")
    p = params
    ratio = pressure / p.p0
    s2 = torch.sin(lat) ** 2
    t = (p.t_surface_eq - p.delta_t_y * s2 - p.delta_theta_z * torch.log(ratio) * (1.0 - s2)) * ratio**p.kappa
    return torch.clamp(t, min=p.t_min)


def thermal_relaxation_rate(
    lat: torch.Tensor, sigma: torch.Tensor, params: HeldSuarezParameters = HeldSuarezParameters()
) -> torch.Tensor:
    """Newtonian cooling rate ``k_T`` (s-1), HS94 eq. 4: ``k_a`` aloft, up to ``k_s`` at the equator's surface.

    Parameters
    ----------
    lat : Tensor
        Latitude (rad), broadcastable against ``sigma``.
    sigma : Tensor
        Sigma (1), in (0, 1], e.g. ``(nlev, 1, 1)``.
    params : HeldSuarezParameters

    Returns
    -------
    Tensor
        ``k_T`` (s-1), the broadcast shape.
    """
    _check_sigma(sigma)
    p = params
    return p.k_a + (p.k_s - p.k_a) * _boundary_layer_weight(sigma, p) * torch.cos(lat) ** 4


def friction_rate(sigma: torch.Tensor, params: HeldSuarezParameters = HeldSuarezParameters()) -> torch.Tensor:
    """Rayleigh drag rate ``k_v`` (s-1), HS94 eq. 2: 0 above ``sigma_b``, ``k_f`` at the surface.

    Parameters
    ----------
    sigma : Tensor
        Sigma (1), in (0, 1].
    params : HeldSuarezParameters

    Returns
    -------
    Tensor
        ``k_v`` (s-1), the shape of ``sigma``.
    """
    _check_sigma(sigma)
    return params.k_f * _boundary_layer_weight(sigma, params)


class HeldSuarezForcing:
    """HS94 forcing on a model grid: tendencies, or an implicit (backward Euler) relaxation step.

    Parameters
    ----------
    grid : SpectralGrid
        Model grid (its latitudes, dtype and device are used).
    levels : SigmaLevels
        Model levels; the forcing is evaluated at the full levels.
    params : HeldSuarezParameters

    Attributes
    ----------
    k_t : Tensor
        ``k_T`` (s-1), ``(nlev, nlat, 1)``.
    k_v : Tensor
        ``k_v`` (s-1), ``(nlev, 1, 1)``.
    """

    def __init__(self, grid: SpectralGrid, levels: SigmaLevels, params: HeldSuarezParameters = HeldSuarezParameters()):
        self.params, self.levels = params, levels
        self.nlat, self.nlon = grid.nlat, grid.nlon
        self.lat = grid.lats.reshape(-1, 1)
        self.sigma = levels.tensor("full", dtype=grid.dtype, device=grid.lats.device).reshape(-1, 1, 1)
        self.k_t = thermal_relaxation_rate(self.lat, self.sigma, params)
        self.k_v = friction_rate(self.sigma, params)

    def to(self, device: torch.device | str) -> HeldSuarezForcing:
        """Move the precomputed fields to ``device`` (in place; returns self)."""
        self.lat, self.sigma = self.lat.to(device), self.sigma.to(device)
        self.k_t, self.k_v = self.k_t.to(device), self.k_v.to(device)
        return self

    def _check(self, t: torch.Tensor, ps: torch.Tensor) -> None:
        want = (self.levels.nlev, self.nlat, self.nlon)
        if tuple(t.shape[-3:]) != want or tuple(ps.shape[-2:]) != want[1:] or ps.shape[:-2] != t.shape[:-3]:
            raise CoordError(
                f"Held-Suarez forcing: fields must be (..., {want[0]}, {want[1]}, {want[2]}) and ps (..., {want[1]}, {want[2]}) "
                f"with the same leading dims, got t {tuple(t.shape)} and ps {tuple(ps.shape)}"
            )

    def equilibrium(self, ps: torch.Tensor) -> torch.Tensor:
        """``T_eq`` (K) at the full levels for surface pressure ``ps`` (Pa, ``(..., nlat, nlon)``)."""
        return equilibrium_temperature(self.lat, self.sigma * ps.unsqueeze(-3), self.params)

    def tendencies(
        self, u: torch.Tensor, v: torch.Tensor, t: torch.Tensor, ps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Forcing tendencies ``(du/dt, dv/dt, dT/dt)`` (m s-2, m s-2, K s-1).

        Parameters
        ----------
        u, v : Tensor
            Winds (m s-1), ``(..., nlev, nlat, nlon)``.
        t : Tensor
            Temperature (K), same shape.
        ps : Tensor
            Surface pressure (Pa), ``(..., nlat, nlon)``.
        """
        self._check(t, ps)
        return -self.k_v * u, -self.k_v * v, -self.k_t * (t - self.equilibrium(ps))

    def relax(
        self, u: torch.Tensor, v: torch.Tensor, t: torch.Tensor, ps: torch.Tensor, dt: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""Apply the forcing over ``dt`` seconds implicitly (backward Euler), stable for any ``dt``.

        .. math:: x^{n+1} = \frac{x^n + \Delta t\, k\, x_{eq}}{1 + \Delta t\, k}

        with ``x_eq = 0`` for the winds and ``T_eq`` for temperature: for a linear damping the
        backward step never overshoots the equilibrium, whatever ``dt k``.
        Arguments as :meth:`tendencies`; returns the new ``(u, v, t)``.
        """
        if not dt > 0:
            raise CoordError(f"Held-Suarez forcing: dt must be > 0 s, got {dt}")
        self._check(t, ps)
        damp_v = 1.0 / (1.0 + dt * self.k_v)
        t_new = (t + dt * self.k_t * self.equilibrium(ps)) / (1.0 + dt * self.k_t)
        return u * damp_v, v * damp_v, t_new
