r"""Initial states of the Williamson et al. (1992) shallow-water test cases 2 and 6.

Both are given in closed form on the model grid, so the dynamical core can be checked against
known answers: case 2 (steady zonal geostrophic flow) must stay steady, and case 6 (the
Rossby-Haurwitz wave of wavenumber ``R = 4``) moves eastward almost rigidly, at the angular speed
that Haurwitz (1940) derived for the non-divergent barotropic vorticity equation,

.. math:: \nu = \frac{R (3 + R)\,\omega - 2\Omega}{(1 + R)(2 + R)} .

Public API: ``williamson_case2``, ``rossby_haurwitz``, ``haurwitz_angular_speed``.

References
----------
Williamson, D. L. et al. (1992), J. Comput. Phys. 102, 211-224, sections 3.2 and 3.6.
Haurwitz, B. (1940): The motion of atmospheric disturbances on the spherical earth.
J. Marine Res. 3, 254-267.
"""

from __future__ import annotations

import math

import torch

from engine.models.global_.shallow_water import ShallowWaterModel


def _latlon(model: ShallowWaterModel) -> tuple[torch.Tensor, torch.Tensor]:
    g = model.spec
    return g.lats.reshape(-1, 1), g.lons.reshape(1, -1)


def williamson_case2(model: ShallowWaterModel, *, alpha: float = 0.0, gh0: float = 2.94e4) -> torch.Tensor:
    """Test case 2: global steady-state nonlinear zonal geostrophic flow.

    Parameters
    ----------
    model : ShallowWaterModel
        Supplies grid, radius, rotation rate.
    alpha : float
        Angle (rad) between the flow's axis and the rotation axis (0: purely zonal).
    gh0 : float
        ``g h0`` (m2 s-2); 2.94e4 in Williamson et al.

    Returns
    -------
    Tensor
        State ``(1, 3, T + 1, T + 1)``; the wind is ``u0 = 2 pi a / 12 days`` (38.6 m s-1).
    """
    cfg = model.config
    lat, lon = _latlon(model)
    a, om = cfg.radius, cfg.omega
    u0 = 2 * math.pi * a / (12 * 86400.0)
    ca, sa = math.cos(alpha), math.sin(alpha)
    u = u0 * (torch.cos(lat) * ca + torch.cos(lon) * torch.sin(lat) * sa)
    v = -u0 * torch.sin(lon) * sa * torch.ones_like(lat)
    phi = gh0 - (a * om * u0 + 0.5 * u0**2) * (-torch.cos(lon) * torch.cos(lat) * sa + torch.sin(lat) * ca) ** 2
    return model.state_from_grid(u, v, phi).unsqueeze(0)


def rossby_haurwitz(model: ShallowWaterModel, *, wavenumber: int = 4, omega_k: float = 7.848e-6, h0: float = 8000.0) -> torch.Tensor:
    """Test case 6: Rossby-Haurwitz wave (Williamson et al. 1992, eqs. 143-148).

    Parameters
    ----------
    model : ShallowWaterModel
    wavenumber : int
        ``R`` (4 in the standard case).
    omega_k : float
        ``omega = K`` (s-1), 7.848e-6.
    h0 : float
        Mean height (m), 8000.

    Returns
    -------
    Tensor
        State ``(1, 3, T + 1, T + 1)``.
    """
    cfg = model.config
    lat, lon = _latlon(model)
    a, om, g = cfg.radius, cfg.omega, cfg.gravity
    r, w, k = wavenumber, omega_k, omega_k
    c, s = torch.cos(lat), torch.sin(lat)
    u = a * w * c + a * k * c ** (r - 1) * (r * s**2 - c**2) * torch.cos(r * lon)
    v = -a * k * r * c ** (r - 1) * s * torch.sin(r * lon)
    big_a = 0.5 * w * (2 * om + w) * c**2 + 0.25 * k**2 * c ** (2 * r) * ((r + 1) * c**2 + (2 * r**2 - r - 2) - 2 * r**2 / c**2)
    big_b = 2 * (om + w) * k / ((r + 1) * (r + 2)) * c**r * ((r**2 + 2 * r + 2) - (r + 1) ** 2 * c**2)
    big_c = 0.25 * k**2 * c ** (2 * r) * ((r + 1) * c**2 - (r + 2))
    phi = g * h0 + a**2 * (big_a + big_b * torch.cos(r * lon) + big_c * torch.cos(2 * r * lon))
    return model.state_from_grid(u, v, phi).unsqueeze(0)


def haurwitz_angular_speed(*, wavenumber: int = 4, omega_k: float = 7.848e-6, omega: float = 7.292e-5) -> float:
    """Haurwitz (1940) angular phase speed (rad s-1, positive eastward) of the non-divergent wave."""
    r = wavenumber
    return (r * (3 + r) * omega_k - 2 * omega) / ((1 + r) * (2 + r))
