r"""Simple physics of the primitive-equation core: Held-Suarez forcing and large-scale condensation.

Two parameterisations, each from the literature and none tuned to verifying analyses:

- **Held & Suarez (1994)**: Rayleigh friction ``k_v(sigma)`` in the boundary layer
  (``sigma > 0.7``, 1 day-1 at the ground) and Newtonian relaxation of temperature to a zonal
  radiative-equilibrium profile (:mod:`~engine.models.global_.primitive.held_suarez`). The
  friction depends on sigma only, so the core applies it implicitly in spectral space with the
  hyperdiffusion; the relaxation is a grid-space temperature tendency.
- **Large-scale condensation** (Molteni 2003, SPEEDY, section 2.3; with the latent-heat
  feedback on saturation of Frierson et al. 2006, eq. 7): where specific humidity exceeds
  ``rh_crit`` times saturation, the excess

  .. math:: \Delta q = \frac{q - r\,q_s(T, p)}{1 + (L / c_p)\, r\, \partial q_s / \partial T}

  is removed with relaxation time ``tau`` (4 h in SPEEDY), heating the air by ``L / c_p`` per
  unit removed, and falls out at once as precipitation
  ``P = sum_k Delta q_k / tau * ps dsigma_k / g`` (kg m-2 s-1 = mm s-1, reported in mm h-1;
  no re-evaporation). Saturation vapour pressure over water from Bolton (1980, eq. 10),
  ``e_s = 611.2 exp(17.67 (T - 273.15) / (T - 29.65))`` Pa, and
  ``q_s = eps e_s / (p - (1 - eps) e_s)``, ``eps = 0.622``. Humidity is a tracer for the
  dynamics (no virtual-temperature effect).

Both act on the state at step ``n - 1`` of the leapfrog scheme (the core's lagged physics).

Public API: ``Physics``, ``LargeScaleCondensation``, ``saturation_vapour_pressure``,
``saturation_specific_humidity``, ``LATENT_HEAT``.

References
----------
Held, I. M. and M. J. Suarez (1994): A proposal for the intercomparison of the dynamical cores of
atmospheric general circulation models. Bull. Amer. Meteor. Soc. 75, 1825-1830.
Molteni, F. (2003): Atmospheric simulations using a GCM with simplified physical
parametrizations. I. Clim. Dyn. 20, 175-191 (SPEEDY; large-scale condensation, section 2.3).
Frierson, D. M. W., I. M. Held and P. Zurita-Gotor (2006): A gray-radiation aquaplanet moist GCM.
Part I. J. Atmos. Sci. 63, 2548-2566.
Bolton, D. (1980): The computation of equivalent potential temperature. Mon. Wea. Rev. 108,
1046-1053.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.errors import CoordError
from engine.models.global_.primitive.held_suarez import HeldSuarezForcing
from engine.models.global_.primitive.vertical import CP_DRY, GRAVITY, SigmaLevels

__all__ = [
    "LATENT_HEAT",
    "LargeScaleCondensation",
    "Physics",
    "saturation_specific_humidity",
    "saturation_vapour_pressure",
]

#: Latent heat of vaporisation at 0 C (J kg-1), as in SPEEDY and Frierson et al. (2006).
LATENT_HEAT = 2.5e6
_EPS = 0.622


def saturation_vapour_pressure(t: torch.Tensor) -> torch.Tensor:
    """Saturation vapour pressure over water (Pa) at temperature ``t`` (K), Bolton (1980, eq. 10)."""
    return 611.2 * torch.exp(17.67 * (t - 273.15) / (t - 29.65))


def saturation_specific_humidity(t: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``q_s`` (kg kg-1) and ``d q_s / d T`` (kg kg-1 K-1) at ``t`` (K) and pressure ``p`` (Pa).

    ``e_s`` is limited to ``p / 2`` so that ``q_s`` stays finite in hot, very low-pressure air.
    """
    es = torch.minimum(saturation_vapour_pressure(t), 0.5 * p)
    qs = _EPS * es / (p - (1 - _EPS) * es)
    dlnes = 17.67 * 243.5 / (t - 29.65) ** 2  # d ln e_s / dT
    dqs = qs * dlnes * p / (p - (1 - _EPS) * es)
    return qs, dqs


@dataclass(frozen=True)
class LargeScaleCondensation:
    """SPEEDY-style large-scale condensation (Molteni 2003, section 2.3).

    Attributes
    ----------
    levels : SigmaLevels
        The model levels (``dsigma`` weights the column precipitation).
    rh_crit : float
        Relative-humidity threshold (0.9 in SPEEDY; 1 gives plain saturation adjustment).
    tau_hours : float
        Relaxation time of the supersaturation (4 h in SPEEDY).
    """

    levels: SigmaLevels
    rh_crit: float = 0.9
    tau_hours: float = 4.0

    def __post_init__(self) -> None:
        if not 0.5 <= self.rh_crit <= 1.0:
            raise CoordError(f"rh_crit: expected 0.5 <= rh_crit <= 1, got {self.rh_crit}")
        if self.tau_hours <= 0:
            raise CoordError(f"tau_hours: must be > 0, got {self.tau_hours}")

    def tendencies(
        self, t: torch.Tensor, q: torch.Tensor, ps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(dT/dt (K s-1), dq/dt (s-1), precipitation rate (mm h-1))`` for ``t, q (..., nlev, lat, lon)``, ``ps (..., lat, lon)``."""
        sigma = self.levels.tensor("full", dtype=t.dtype, device=t.device)[:, None, None]
        dsig = self.levels.tensor("dsigma", dtype=t.dtype, device=t.device)[:, None, None]
        p = sigma * ps.unsqueeze(-3)
        qs, dqs = saturation_specific_humidity(t, p)
        r = self.rh_crit
        excess = torch.clamp(q - r * qs, min=0.0) / (1.0 + LATENT_HEAT / CP_DRY * r * dqs)
        rate = excess / (self.tau_hours * 3600.0)
        precip = torch.sum(rate * dsig, dim=-3) * ps / GRAVITY * 3600.0
        return LATENT_HEAT / CP_DRY * rate, -rate, precip


class Physics:
    """The parameterisations a core runs with: any of Held-Suarez forcing and condensation.

    Parameters
    ----------
    held_suarez : HeldSuarezForcing, optional
        Rayleigh friction (applied implicitly by the core, :attr:`friction`) and Newtonian
        relaxation of temperature.
    condensation : LargeScaleCondensation, optional
        Needs a core with humidity.

    Attributes
    ----------
    friction : Tensor or None
        Rayleigh friction rate per level (s-1, ``(nlev,)``).
    needs_grid : bool
        Whether :meth:`tendencies` has anything to compute.
    """

    def __init__(
        self, held_suarez: HeldSuarezForcing | None = None, condensation: LargeScaleCondensation | None = None
    ):
        self.held_suarez, self.condensation = held_suarez, condensation
        self.friction = held_suarez.k_v.reshape(-1) if held_suarez is not None else None
        self.needs_grid = held_suarez is not None or condensation is not None

    def to(self, device: torch.device | str) -> Physics:
        """Move the precomputed fields to ``device`` (in place; returns self)."""
        if self.held_suarez is not None:
            self.held_suarez.to(device)
            self.friction = self.held_suarez.k_v.reshape(-1)
        return self

    def tendencies(
        self, t: torch.Tensor, ps: torch.Tensor, q: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Grid-space ``(dT/dt, dq/dt or None, precipitation mm h-1 or None)`` from ``t`` (K), ``ps`` (Pa), ``q``."""
        dt = torch.zeros_like(t)
        dq = precip = None
        if self.held_suarez is not None:
            dt = dt - self.held_suarez.k_t * (t - self.held_suarez.equilibrium(ps))
        if self.condensation is not None and q is not None:
            heat, dq, precip = self.condensation.tendencies(t, q, ps)
            dt = dt + heat
        return dt, dq, precip
