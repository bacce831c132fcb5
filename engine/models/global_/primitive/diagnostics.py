"""Output fields of the primitive-equation core: pressure levels and the surface, in lexicon names.

From the grid-space state (``u``, ``v``, ``t`` [, ``q``] on sigma levels, ``ps``, ``phis``) to the
canonical variables of :mod:`engine.lexicon`:

- ``z<p>``, ``t<p>``, ``u<p>``, ``v<p>`` (and ``q<p>`` with humidity) at the standard levels
  1000/850/700/500/300/250/200 hPa that the model spans (:func:`pressure_levels_spanned`).
  Geopotential by the model's own hydrostatic equation: from the half level below the target
  inside its layer, ``Phi(p) = Phi_{k+1/2} + R T_k ln(p_{k+1/2} / p)`` (the layer's temperature
  held constant, so it is consistent with Simmons & Burridge 1981 and exact for isothermal
  layers; ECMWF's post-processing does the same). Temperature, winds and humidity linear in
  ``ln p`` between full levels, constant above the top one. Between the lowest full level and
  the ground temperature follows the standard lapse rate; winds and humidity stay at their
  lowest-level values.
- Below the ground, the ECMWF / Trenberth et al. (1993, eqs. 13-16) extrapolation: a surface
  temperature ``T* = T_L (1 + alpha (ps / p_L - 1))`` from the lowest level ``L``,
  ``alpha = gamma R / g`` with ``gamma = 6.5 K km-1``, corrected over warm or high ground
  (``T* < 255 K``: ``T* = (T* + 255) / 2``; ``T0 = T* + gamma phis / (g) > 290.5 K``: ``alpha``
  reduced so that ``T0 = 290.5 K``, or 0 and ``T* = (T* + 290.5) / 2`` if ``T*`` itself exceeds it), then
  ``T(p) = T* (1 + y + y^2 / 2 + y^3 / 6)`` and ``Phi(p) = phis - R T* ln(p / ps) (1 + y / 2 + y^2 / 6)``,
  ``y = alpha ln(p / ps)``.
- ``msl``: the same ``T*`` and ``alpha``, ``msl = ps exp(phis / (R T*) (1 - x / 2 + x^2 / 3))``,
  ``x = alpha phis / (R T*)`` (Trenberth et al. 1993, eq. 15; the ECMWF IFS formula).
- ``t2m``: the lowest-level temperature brought from that level's height ``z_L = (Phi_L - phis) / g``
  down to 2 m along the standard lapse rate, ``t2m = T_L + gamma (z_L - 2 m)``. This carries no
  surface-layer physics (no diurnal cycle of the surface, no inversions): it is the temperature a
  standard atmosphere would have at 2 m given the lowest model level.
- ``u10``/``v10``: the lowest-level wind reduced by the neutral logarithmic profile,
  ``u10 = u_L ln(10 / z0) / ln(z_L / z0)`` with ``z0 = 0.03 m``, the open-terrain roughness to
  which 10 m winds are referred (WMO Guide to Instruments and Methods of Observation, No. 8,
  2018, Vol. I, 5.1.2 and annex 5.B). At ``z_L = 100 m`` the factor is 0.72.
- ``sp`` (surface pressure, Pa) and ``tp`` (mm) when the core gives its precipitation.

Everything is batched over any leading (member) dims and levels and runs on any device.

Public API: ``STANDARD_LEVELS_HPA``, ``ROUGHNESS_LENGTH``, ``pressure_levels_spanned``,
``surface_temperature_extrapolation``, ``pressure_level_fields``, ``mean_sea_level_pressure``,
``near_surface_fields``, ``output_fields``, ``output_names``.

References
----------
Trenberth, K. E., J. C. Berry and L. E. Buja (1993): Vertical interpolation and truncation of
model-coordinate data. NCAR Tech. Note NCAR/TN-396+STR, 54 pp.
Simmons, A. J. and D. M. Burridge (1981): Mon. Wea. Rev. 109, 758-766.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine.errors import CoordError
from engine.lexicon import level_name, lookup
from engine.models.global_.primitive.vertical import (
    GRAVITY,
    R_DRY,
    STANDARD_LAPSE_RATE,
    SigmaLevels,
    geopotential,
    geopotential_half,
    interp_log_pressure,
)

__all__ = [
    "ROUGHNESS_LENGTH",
    "STANDARD_LEVELS_HPA",
    "mean_sea_level_pressure",
    "near_surface_fields",
    "output_fields",
    "output_names",
    "pressure_level_fields",
    "pressure_levels_spanned",
    "surface_temperature_extrapolation",
]

#: The pressure levels (hPa) of the output, bottom first, as ECMWF's charts and WeatherBench use.
STANDARD_LEVELS_HPA = (1000, 850, 700, 500, 300, 250, 200)
#: Roughness length (m) of the 10 m wind reduction: WMO open terrain.
ROUGHNESS_LENGTH = 0.03
_ALPHA = STANDARD_LAPSE_RATE * R_DRY / GRAVITY


def pressure_levels_spanned(
    levels: SigmaLevels, levels_hpa: Sequence[float] = STANDARD_LEVELS_HPA
) -> tuple[float, ...]:
    """The levels of ``levels_hpa`` at or below the model's top full level (at ``ps`` = 1000 hPa)."""
    top = float(levels.full[0]) * 1000.0
    return tuple(lev for lev in levels_hpa if lev >= top)


def surface_temperature_extrapolation(
    t_lowest: torch.Tensor, ps: torch.Tensor, phis: torch.Tensor, sigma_lowest: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``T*`` (K) and the lapse coefficient ``alpha = gamma R / g`` of the ECMWF / Trenberth (1993) extrapolation.

    Parameters
    ----------
    t_lowest : Tensor, (..., lat, lon)
        Temperature of the lowest model level (K).
    ps : Tensor, (..., lat, lon)
        Surface pressure (Pa).
    phis : Tensor, (lat, lon)
        Surface geopotential (m2 s-2).
    sigma_lowest : float
        Sigma of the lowest full level.

    Returns
    -------
    (t_star, alpha) : tuple of Tensor
        ``(..., lat, lon)`` each.
    """
    del ps  # in sigma coordinates ps / p_L = 1 / sigma_L
    t_star = t_lowest * (1.0 + _ALPHA * (1.0 / sigma_lowest - 1.0))
    t_star = torch.where(t_star < 255.0, 0.5 * (t_star + 255.0), t_star)
    t0 = t_star + STANDARD_LAPSE_RATE * phis / GRAVITY
    alpha = torch.full_like(t_star, _ALPHA)
    warm = t0 > 290.5
    safe_phis = torch.where(phis.abs() > 1e-6, phis, torch.ones_like(phis))
    reduced = R_DRY * (290.5 - t_star) / safe_phis
    alpha = torch.where(warm & (t_star <= 290.5), reduced, alpha)
    alpha = torch.where(warm & (t_star > 290.5), torch.zeros_like(alpha), alpha)
    t_star = torch.where(warm & (t_star > 290.5), 0.5 * (t_star + 290.5), t_star)
    return t_star, alpha


def mean_sea_level_pressure(t: torch.Tensor, ps: torch.Tensor, phis: torch.Tensor, levels: SigmaLevels) -> torch.Tensor:
    """Mean-sea-level pressure (Pa), ``(..., lat, lon)``, by the ECMWF / Trenberth et al. (1993) reduction.

    Parameters
    ----------
    t : Tensor, (..., nlev, lat, lon)
        Temperature (K).
    ps : Tensor, (..., lat, lon)
        Surface pressure (Pa).
    phis : Tensor, (lat, lon)
        Surface geopotential (m2 s-2).
    levels : SigmaLevels
        Model levels.
    """
    t_star, alpha = surface_temperature_extrapolation(t[..., -1, :, :], ps, phis, float(levels.full[-1]))
    x = alpha * phis / (R_DRY * t_star)
    return ps * torch.exp(phis / (R_DRY * t_star) * (1.0 - x / 2.0 + x**2 / 3.0))


def pressure_level_fields(
    u: torch.Tensor,
    v: torch.Tensor,
    t: torch.Tensor,
    ps: torch.Tensor,
    phis: torch.Tensor,
    levels: SigmaLevels,
    *,
    q: torch.Tensor | None = None,
    levels_hpa: Sequence[float] | None = None,
) -> dict[str, torch.Tensor]:
    """``z``, ``t``, ``u``, ``v`` (and ``q``) on pressure levels (module notes), lexicon names.

    Parameters
    ----------
    u, v, t : Tensor, (..., nlev, lat, lon)
        Winds (m s-1) and temperature (K) on the model levels.
    ps : Tensor, (..., lat, lon)
        Surface pressure (Pa).
    phis : Tensor, (lat, lon)
        Surface geopotential (m2 s-2).
    levels : SigmaLevels
        Model levels.
    q : Tensor, optional
        Specific humidity (kg kg-1), like ``t``.
    levels_hpa : sequence of float, optional
        Output levels (hPa); :data:`STANDARD_LEVELS_HPA` that the model spans by default.

    Returns
    -------
    dict of str to Tensor
        ``{"z500": (..., lat, lon), "t850": ..., ...}`` in m2 s-2, K, m s-1, kg kg-1.
    """
    if t.shape[-3] != levels.nlev:
        raise CoordError(f"pressure-level output: t has {t.shape[-3]} levels, the model {levels.nlev}")
    levels_hpa = pressure_levels_spanned(levels) if levels_hpa is None else tuple(levels_hpa)
    if not levels_hpa:
        return {}
    dt, dev = t.dtype, t.device
    p_out = torch.as_tensor([float(lev) * 100.0 for lev in levels_hpa], dtype=dt, device=dev)
    # Target ln(sigma) = ln p - ln ps, (..., K, lat, lon): sigma coordinates make the source levels 1-D.
    x = torch.log(p_out)[:, None, None] - torch.log(ps).unsqueeze(-3)
    ln_full = torch.log(levels.tensor("full", dtype=dt, device=dev))
    ln_half = torch.log(levels.tensor("half", dtype=dt, device=dev)[1:])  # lower boundaries of the layers
    nlev = levels.nlev

    # geopotential above the ground: inside layer k, from its lower half level
    half = geopotential_half(t, phis, levels)
    lead = torch.broadcast_shapes(t.shape[:-3], x.shape[:-3])
    x = torch.broadcast_to(x, lead + x.shape[-3:]).contiguous()
    k = torch.searchsorted(ln_half, x).clamp(max=nlev - 1)
    t_k = torch.gather(torch.broadcast_to(t, lead + t.shape[-3:]), -3, k)
    phi_base = torch.gather(torch.broadcast_to(half, lead + half.shape[-3:]), -3, k + 1)
    z = phi_base + R_DRY * t_k * (ln_half[k] - x)
    temp = interp_log_pressure(t, ln_full, x)
    t_low = t[..., -1:, :, :]
    between = t_low * torch.exp(_ALPHA * (x - ln_full[-1]))  # lowest full level .. ground
    temp = torch.where(x > ln_full[-1], between, temp)

    # below the ground (Trenberth et al. 1993, eq. 16 and the geopotential of eq. 15's profile)
    t_star, alpha = surface_temperature_extrapolation(t[..., -1, :, :], ps, phis, float(levels.full[-1]))
    t_star, alpha = t_star.unsqueeze(-3), alpha.unsqueeze(-3)
    y = alpha * x
    under = x > 0
    z = torch.where(under, phis - R_DRY * t_star * x * (1 + y / 2 + y**2 / 6), z)
    temp = torch.where(under, t_star * (1 + y + y**2 / 2 + y**3 / 6), temp)

    out: dict[str, torch.Tensor] = {}
    fields = {"z": z, "t": temp, "u": interp_log_pressure(u, ln_full, x), "v": interp_log_pressure(v, ln_full, x)}
    if q is not None:
        fields["q"] = interp_log_pressure(q, ln_full, x)
    for base, values in fields.items():
        for i, lev in enumerate(levels_hpa):
            out[level_name(base, lev)] = values[..., i, :, :]
    return out


def near_surface_fields(
    u: torch.Tensor,
    v: torch.Tensor,
    t: torch.Tensor,
    phis: torch.Tensor,
    levels: SigmaLevels,
    *,
    roughness: float | torch.Tensor = ROUGHNESS_LENGTH,
) -> dict[str, torch.Tensor]:
    """``t2m`` (K), ``u10``, ``v10`` (m s-1) from the lowest model level (module notes).

    Parameters
    ----------
    u, v, t : Tensor, (..., nlev, lat, lon)
        Model-level winds (m s-1) and temperature (K).
    phis : Tensor, (lat, lon)
        Surface geopotential (m2 s-2).
    levels : SigmaLevels
        Model levels.
    roughness : float or Tensor
        Roughness length (m), a scalar or ``(lat, lon)``.

    Returns
    -------
    dict of str to Tensor
        ``(..., lat, lon)`` each.
    """
    phi = geopotential(t, phis, levels)
    z_low = (phi[..., -1, :, :] - phis) / GRAVITY
    t_low = t[..., -1, :, :]
    z0 = torch.as_tensor(roughness, dtype=t.dtype, device=t.device)
    factor = torch.log(10.0 / z0) / torch.log(z_low.clamp_min(10.0) / z0)
    return {
        "t2m": t_low + STANDARD_LAPSE_RATE * (z_low - 2.0),
        "u10": u[..., -1, :, :] * factor,
        "v10": v[..., -1, :, :] * factor,
    }


def output_names(levels: SigmaLevels, *, humidity: bool = False, precipitation: bool = False,
                 levels_hpa: Sequence[float] | None = None) -> list[str]:  # fmt: skip
    """The canonical names :func:`output_fields` returns, in its order."""
    levels_hpa = pressure_levels_spanned(levels) if levels_hpa is None else tuple(levels_hpa)
    bases = ("z", "t", "u", "v") + (("q",) if humidity else ())
    names = [level_name(b, lev) for b in bases for lev in levels_hpa]
    names += ["msl", "sp", "t2m", "u10", "v10"] + (["tp"] if precipitation else [])
    for name in names:
        lookup(name)  # every name is canonical (raises UnknownNameError otherwise)
    return names


def output_fields(
    u: torch.Tensor,
    v: torch.Tensor,
    t: torch.Tensor,
    ps: torch.Tensor,
    phis: torch.Tensor,
    levels: SigmaLevels,
    *,
    q: torch.Tensor | None = None,
    precipitation: torch.Tensor | None = None,
    levels_hpa: Sequence[float] | None = None,
    roughness: float | torch.Tensor = ROUGHNESS_LENGTH,
) -> dict[str, torch.Tensor]:
    """Every output variable of the core, ``{name: (..., lat, lon)}`` in lexicon names and units.

    Parameters
    ----------
    u, v, t, ps, phis, levels, q, levels_hpa
        As in :func:`pressure_level_fields`.
    precipitation : Tensor, optional
        Precipitation (mm) over the output interval, ``(..., lat, lon)``, from the core's
        condensation; returned as ``tp``.
    roughness : float or Tensor
        As in :func:`near_surface_fields`.

    Returns
    -------
    dict of str to Tensor
        In the order of :func:`output_names`.
    """
    out = pressure_level_fields(u, v, t, ps, phis, levels, q=q, levels_hpa=levels_hpa)
    out["msl"] = mean_sea_level_pressure(t, ps, phis, levels)
    out["sp"] = ps
    out.update(near_surface_fields(u, v, t, phis, levels, roughness=roughness))
    if precipitation is not None:
        out["tp"] = precipitation
    return out
