"""Initial states of the primitive-equation core from analyses on pressure levels.

Any analysis that :func:`engine.readers.open_any` reads will do if it holds geopotential ``z``
(or geopotential height ``gh``) and temperature ``t`` on at least two common pressure levels
(canonical names ``z500``, ``t850``...; :mod:`engine.lexicon`), on a regular global grid, with
optional ``[time,] [member,]`` dims. Winds ``u``/``v`` and humidity ``q`` (or relative humidity
``r``) are used when present. The steps:

1. **Horizontal**: bilinear regridding of every level to the model's Gaussian grid
   (:func:`~engine.models.global_.initial.regrid_bilinear`).
2. **Orography** (:func:`model_orography`): a DEM (``orography`` in m: the IFS orography of the
   sample data, ETOPO20, or the analysis's own surface geopotential) area-averaged into the
   model's grid cells, then spectrally truncated with the filter of Sardeshmukh & Hoskins (1984)
   that damps degree ``T`` to 10 %, as spectral models smooth their orography against Gibbs
   ripples over the oceans.
3. **Surface pressure** (:func:`surface_pressure`): hydrostatic integration from the lowest
   analysis level above the ground. Between two levels along the temperature profile of step 4
   (its integral is a quartic in ``ln p``, solved by Newton's method from the root of the linear
   profile's quadratic); below the lowest level the
   temperature follows the standard lapse rate 6.5 K km-1 from that level's temperature (the
   ECMWF practice, Trenberth et al. 1993, section 2). Above the top level (ground higher than
   every level) the top pair's profile is extended.
4. **Temperature on sigma levels** (:func:`temperature_on_sigma`): linear in ``ln p`` between
   analysis levels plus, in each layer between two levels, the parabola vanishing at both that
   gives the layer the analysed geopotential thickness (see that function); below the lowest level the same 6.5 K km-1 profile as step 3 (so that the
   model's hydrostatic geopotential reproduces the lowest level's); above the top level the US
   (1976) standard atmosphere plus the top level's anomaly from it, the anomaly tapering
   linearly in ``ln p`` to zero at the standard tropopause (226 hPa) when the top level is below
   it (observed anomalies shrink there: the tropopause is nearly as cold everywhere), and kept
   constant when the top level is at or above it.
5. **Winds**: analysed ``u``/``v`` (levels where both exist) linear in ``ln p``, held constant
   above the top and below the lowest wind level. Without winds, the wind in linear balance
   with the pressure-gradient force on each sigma level, ``div(f grad psi) = div(grad Phi + R T
   grad ln ps)`` (:class:`~engine.models.global_.initial.LinearBalance`, non-divergent), the
   multi-level form of what the shallow-water core does at 500 hPa, with the forcing tapered
   to zero at the equator (scale 15 degrees) where balance does not hold.
6. **Humidity** (optional): ``q`` linear in ``ln p``, constant below the lowest level, falling
   linearly in ``p`` to 0 at the top of the atmosphere above the top level; ``r`` (%) is
   converted to ``q`` at its level first (saturation vapour pressure over water of Bolton 1980).
   Without humidity ``q`` is ``None`` (a dry run). The analysed geopotential includes the
   virtual-temperature effect (thickness ``R Tv d ln p``) that a dry core's ``T`` must carry:
   the thickness correction of step 4 puts it between the analysis levels (about +1 K between
   850 and 500 hPa in the ERA5 sample), so the model reproduces the analysed ``z`` as well as
   the analysed ``t`` at the analysis levels.

Bad input (one level only, levels or geopotential in the wrong units, temperature missing, NaNs)
raises a :class:`~engine.errors.WxError` whose one-line message names the file and the problem.

Public API: ``AnalysisState``, ``PressureLevelAnalysis``, ``read_pressure_levels``,
``model_orography``, ``surface_pressure``, ``temperature_on_sigma``, ``balanced_winds``,
``analysis_state``.

References
----------
Trenberth, K. E., J. C. Berry and L. E. Buja (1993): Vertical interpolation and truncation of
model-coordinate data. NCAR Tech. Note NCAR/TN-396+STR.
Sardeshmukh, P. D. and B. J. Hoskins (1984): Spatial smoothing on the sphere. Mon. Wea. Rev. 112,
2524-2529.
Bolton, D. (1980): The computation of equivalent potential temperature. Mon. Wea. Rev. 108, 1046-1053.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from engine.errors import CoordError, VariableNotFoundError
from engine.models.global_.initial import LinearBalance, _select_time, datetime64_ns, regrid_bilinear, select_members
from engine.models.global_.primitive.vertical import (
    GRAVITY,
    R_DRY,
    STANDARD_LAPSE_RATE,
    SigmaLevels,
    geopotential,
    interp_log_pressure,
    pressure_full,
    standard_atmosphere,
)
from engine.models.global_.spectral import SpectralGrid

__all__ = [
    "AnalysisState",
    "PressureLevelAnalysis",
    "analysis_state",
    "balanced_winds",
    "model_orography",
    "read_pressure_levels",
    "surface_pressure",
    "temperature_on_sigma",
]

_NAME_RE = re.compile(r"^(z|gh|t|u|v|q|r)(\d+)$")
#: Pressure (Pa) of the standard tropopause (11 km in the US 1976 standard atmosphere).
P_TROPOPAUSE = 22632.06
#: Plausible ranges of analysed values, for the units checks: (low, high, units).
_RANGES = {"t": (150.0, 350.0, "K"), "u": (-150.0, 150.0, "m s-1"), "v": (-150.0, 150.0, "m s-1"),
           "q": (-1e-4, 0.05, "kg kg-1"), "r": (-1.0, 110.0, "%")}  # fmt: skip


@dataclass(frozen=True)
class PressureLevelAnalysis:
    """An analysis on pressure levels, regridded to the model grid.

    Attributes
    ----------
    fields : dict of str to Tensor
        ``z`` (m2 s-2), ``t`` (K) and, where present, ``u``, ``v`` (m s-1), ``q`` (kg kg-1), each
        ``(member, n, lat, lon)`` on its own levels.
    levels : dict of str to ndarray
        Pressure levels (hPa, increasing: top first) of each field.
    orography : Tensor or None
        The analysis's own surface height (m), ``(lat, lon)``, if it has one.
    members : ndarray or None
        Member labels, or None when the analysis has no member dim.
    init_time : numpy.datetime64
        Analysis time (NaT when unknown).
    """

    fields: dict[str, torch.Tensor]
    levels: dict[str, np.ndarray]
    orography: torch.Tensor | None
    members: np.ndarray | None
    init_time: np.datetime64


@dataclass(frozen=True)
class AnalysisState:
    """The grid-space initial state of the primitive-equation core (the shared plan's contract).

    Attributes
    ----------
    u, v : Tensor
        Winds (m s-1), ``([member,] nlev, lat, lon)``, levels top first.
    t : Tensor
        Temperature (K), same shape.
    q : Tensor or None
        Specific humidity (kg kg-1), same shape, or None without humidity in the analysis.
    ps : Tensor
        Surface pressure (Pa), ``([member,] lat, lon)``.
    phis : Tensor
        Surface geopotential (m2 s-2), ``(lat, lon)``.
    levels : SigmaLevels
        The model's vertical grid.
    members : ndarray or None
        Member labels (None when the analysis has no member dim, and the tensors have none).
    init_time : numpy.datetime64
        Analysis time.
    winds : str
        ``"analysed"`` or ``"balanced"``.
    """

    u: torch.Tensor
    v: torch.Tensor
    t: torch.Tensor
    q: torch.Tensor | None
    ps: torch.Tensor
    phis: torch.Tensor
    levels: SigmaLevels
    members: np.ndarray | None
    init_time: np.datetime64
    winds: str

    def fields(self) -> dict[str, torch.Tensor | None]:
        """The state as ``{"u", "v", "t", "q", "ps", "phis"}``."""
        return {"u": self.u, "v": self.v, "t": self.t, "q": self.q, "ps": self.ps, "phis": self.phis}


# ---------------------------------------------------------------------------------- reading
def _level_inventory(ds: xr.Dataset, source: str) -> dict[str, dict[float, str]]:
    inv: dict[str, dict[float, str]] = {}
    for name in map(str, ds.data_vars):
        m = _NAME_RE.match(name)
        if m:
            inv.setdefault(m.group(1), {})[float(m.group(2))] = name
    for base, levs in inv.items():
        bad = sorted(lev for lev in levs if not 0.0 < lev <= 1100.0)
        if bad:
            raise CoordError(
                f"{source}: {base} on level(s) {', '.join(f'{b:g}' for b in bad)} hPa: pressure levels must be "
                f"in hPa within (0, 1100]; are the levels in Pa?"
            )
    return inv


def _check_values(name: str, base: str, arr: np.ndarray, level: float, source: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        raise CoordError(
            f"{source}: {name} has {int(bad.sum())} missing (NaN) values of {arr.size}; the global model needs complete fields"
        )
    if base == "z":
        _check_geopotential(name, float(np.mean(arr)), level, source)
        return
    lo, hi, units = _RANGES[base]
    if arr.min() < lo or arr.max() > hi:
        hint = ""
        if base == "t" and arr.max() < 80.0:
            hint = "; is it in degC?"
        elif base == "q" and arr.max() < 50.0:
            hint = "; is it in g kg-1?"
        raise CoordError(
            f"{source}: {name} ranges {arr.min():.4g} .. {arr.max():.4g}, outside the plausible {lo:g} .. {hi:g} {units}{hint}"
        )


def _check_geopotential(name: str, mean: float, level: float, source: str) -> None:
    # The level's standard-atmosphere geopotential: analysed means lie within about 300 m of it
    # at every level (the tropics are warmer, the poles colder); a 15 % or 800 m margin catches
    # geopotential height given as geopotential and levels in the wrong units without false alarms.
    expected = float(standard_atmosphere(torch.tensor(level * 100.0, dtype=torch.float64))[1])
    tol = max(0.15 * abs(expected), 800.0 * GRAVITY)
    if abs(mean - expected) <= tol:
        return
    if abs(mean * GRAVITY - expected) <= tol:
        what = "it looks like geopotential height in m, not geopotential in m2 s-2"
    else:
        what = "are the levels in the wrong units?"
    raise CoordError(
        f"{source}: {name} has mean {mean:.6g} m2 s-2, but the standard atmosphere has {expected:.6g} m2 s-2 "
        f"at {level:g} hPa; {what}"
    )


def read_pressure_levels(
    ds: xr.Dataset,
    grid: SpectralGrid,
    *,
    init_time: np.datetime64 | str | None = None,
    members: Sequence[int] | int | None = None,
    source: str = "input",
) -> PressureLevelAnalysis:
    """Validate an analysis on pressure levels and regrid it to the model grid.

    Parameters
    ----------
    ds : Dataset
        Canonical dataset (``open_any``) with ``z<level>`` (m2 s-2) or ``gh<level>`` (m) and
        ``t<level>`` (K) on at least two common levels (hPa); optionally ``u``/``v``, ``q`` or ``r``
        on levels and ``orography`` (m). Dims ``([time,] [member,] lat, lon)``, a regular global grid.
    grid : SpectralGrid
        The model grid (its device and dtype are those of the output).
    init_time : datetime-like, optional
        Analysis time; the first one when omitted.
    members : sequence of int or int, optional
        Member labels (an int ``N``: the first ``N``); all when omitted.
    source : str
        The file name for error messages.

    Returns
    -------
    PressureLevelAnalysis

    Raises
    ------
    VariableNotFoundError
        If temperature or geopotential is missing, or only one of ``u``/``v``.
    CoordError
        If z and t share fewer than two levels, a level is not in hPa, values are implausible for
        their units, a field has NaNs, or the grid is not regular and global.
    """
    inv = _level_inventory(ds, source)
    if "z" not in inv and "gh" in inv:
        inv["z"] = inv.pop("gh")
    found = ", ".join(map(str, ds.data_vars)) or "none"
    for base, what in (("t", "temperature"), ("z", "geopotential")):
        if base not in inv:
            raise VariableNotFoundError(
                source,
                f"no {what} on pressure levels ({base}500, {base}850...) to initialise the primitive-equation core from; has {found}",
            )
    common = sorted(set(inv["z"]) & set(inv["t"]))
    if len(common) < 2:
        have = ", ".join(f"{lev:g}" for lev in common) or "none"
        raise CoordError(
            f"{source}: geopotential and temperature on {len(common)} common pressure level(s) only ({have} hPa); "
            f"the primitive-equation core needs at least two"
        )
    if ("u" in inv) != ("v" in inv):
        raise VariableNotFoundError(
            source,
            f"has {'u' if 'u' in inv else 'v'} on levels but not {'v' if 'u' in inv else 'u'}; give both winds or neither",
        )
    for c in ("lat", "lon"):
        if c not in ds.coords:
            raise CoordError(f"{source}: no {c!r} coordinate; a regular latitude-longitude grid is required")
    ds = _select_time(ds, init_time, source)
    t0 = datetime64_ns(ds["time"].values if "time" in ds.coords else init_time)
    ds, labels = select_members(ds, members, source)
    wanted: dict[str, list[float]] = {"z": common, "t": common}
    if "u" in inv and (wind := sorted(set(inv["u"]) & set(inv["v"]))):
        wanted["u"] = wanted["v"] = wind
    if "q" in inv or "r" in inv:
        wanted["q"] = sorted(inv["q"] if "q" in inv else inv["r"])

    lat_out, lon_out = grid.lat_deg, grid.lon_deg

    def regrid(arr: np.ndarray) -> torch.Tensor:
        out = regrid_bilinear(arr, ds["lat"].values, ds["lon"].values, lat_out, lon_out, what=source)
        return torch.as_tensor(out, dtype=grid.dtype, device=grid.lats.device)

    def column(name: str) -> np.ndarray:
        return ds[name].transpose("member", "lat", "lon").values.astype("float64")

    fields: dict[str, torch.Tensor] = {}
    for base, levs in wanted.items():
        native = "r" if base == "q" and "q" not in inv else base
        stack = []
        for lev in levs:
            name = inv[native][lev]
            arr = column(name) * (GRAVITY if name.startswith("gh") else 1.0)
            _check_values(name, native, arr, lev, source)
            if native == "r":
                t_lev = column(inv["t"][lev]) if lev in inv["t"] else None
                arr = _specific_humidity(arr, t_lev, lev, name, source)
            stack.append(arr)
        fields[base] = regrid(np.stack(stack, axis=1))
    orog = None
    if "orography" in ds.data_vars:
        oro = ds["orography"]
        oro = oro.isel(member=0) if "member" in oro.dims else oro
        orog = regrid(oro.transpose("lat", "lon").values.astype("float64"))
    return PressureLevelAnalysis(fields=fields, levels={k: np.asarray(v) for k, v in wanted.items()}, orography=orog,
                                 members=labels, init_time=t0)  # fmt: skip


def _specific_humidity(r: np.ndarray, t: np.ndarray | None, level_hpa: float, name: str, source: str) -> np.ndarray:
    """``q`` (kg kg-1) from relative humidity ``r`` (%) and ``t`` (K) at ``level_hpa`` (Bolton 1980, eq. 10)."""
    if t is None:
        raise VariableNotFoundError(
            source, f"{name} (relative humidity) needs the temperature at {level_hpa:g} hPa to give specific humidity"
        )
    es = 611.2 * np.exp(17.67 * (t - 273.15) / (t - 29.65))
    e = np.clip(r, 0.0, 100.0) / 100.0 * es
    p = level_hpa * 100.0
    return 0.622 * e / np.maximum(p - 0.378 * e, 1.0)


# ---------------------------------------------------------------------------------- orography
def model_orography(
    grid: SpectralGrid, dem: xr.Dataset | xr.DataArray | torch.Tensor, *, source: str = "orography"
) -> torch.Tensor:
    """Surface geopotential (m2 s-2, ``(lat, lon)``) of the model from a DEM.

    The DEM (``orography`` in m, sea negative or 0, on a regular or Gaussian latitude-longitude
    grid) is clipped at sea level, averaged (cos-latitude weights) over the DEM points inside each
    model grid cell (cells without a DEM point take the bilinear value), and truncated at ``T``
    with the spectral filter ``exp(-K (l (l + 1))^2)``, ``K`` such that degree ``T`` keeps 10 %
    (Sardeshmukh & Hoskins 1984, eq. 9): the Gibbs ripples of steep mountains over the oceans
    then stay within a few tens of metres.

    Parameters
    ----------
    grid : SpectralGrid
        The model grid.
    dem : Dataset, DataArray or Tensor
        ``orography`` (m) with ``lat``/``lon`` coordinates, or a tensor (m) already on the model grid.
    source : str
        Name for error messages.

    Returns
    -------
    Tensor
        ``(nlat, nlon)`` on the grid's device and dtype.
    """
    if isinstance(dem, torch.Tensor):
        height = dem.to(dtype=grid.dtype, device=grid.lats.device).clamp_min(0.0)
        if height.shape != (grid.nlat, grid.nlon):
            raise CoordError(
                f"{source}: orography shape {tuple(height.shape)} is not the model grid {(grid.nlat, grid.nlon)}"
            )
    else:
        da = dem["orography"] if isinstance(dem, xr.Dataset) else dem
        if "lat" not in da.dims or "lon" not in da.dims:
            raise CoordError(f"{source}: orography needs lat/lon dims, has {da.dims}")
        values = np.clip(da.transpose("lat", "lon").values.astype("float64"), 0.0, None)
        if not np.all(np.isfinite(values)):
            values = np.nan_to_num(values, nan=0.0)  # DEM no-data is ocean in the global DEMs we read
        height = torch.as_tensor(
            _cell_mean(grid, values, da["lat"].values, da["lon"].values, source),
            dtype=grid.dtype,
            device=grid.lats.device,
        )
    ell = grid.ell.reshape(-1, 1)
    t = grid.truncation
    k = math.log(10.0) / float(t * (t + 1)) ** 2
    spec = grid.to_spec(height * GRAVITY) * torch.exp(-k * (ell * (ell + 1)) ** 2)
    return grid.to_grid(spec)


def _cell_mean(grid: SpectralGrid, values: np.ndarray, lat: np.ndarray, lon: np.ndarray, source: str) -> np.ndarray:
    mlat, mlon = grid.lat_deg, grid.lon_deg
    edges = np.concatenate(([90.0], (mlat[:-1] + mlat[1:]) / 2, [-90.0]))  # descending
    row = np.clip(np.searchsorted(-edges, -np.asarray(lat, dtype="float64"), side="right") - 1, 0, grid.nlat - 1)
    dlon = 360.0 / grid.nlon
    col = np.floor(np.mod(np.asarray(lon, dtype="float64") + dlon / 2, 360.0) / dlon).astype(int) % grid.nlon
    cell = (row[:, None] * grid.nlon + col[None, :]).ravel()
    w = np.broadcast_to(np.cos(np.radians(lat))[:, None], values.shape).ravel()
    total = np.bincount(cell, weights=values.ravel() * w, minlength=grid.nlat * grid.nlon)
    weight = np.bincount(cell, weights=w, minlength=grid.nlat * grid.nlon)
    mean = np.divide(total, weight, out=np.zeros_like(total), where=weight > 0).reshape(grid.nlat, grid.nlon)
    if np.any(weight == 0):
        lat_in, vals_in = np.asarray(lat, dtype="float64"), values
        fill = regrid_bilinear(vals_in, lat_in, np.asarray(lon, dtype="float64"), mlat, mlon, what=source)
        mean = np.where(weight.reshape(mean.shape) > 0, mean, fill)
    return mean


# ---------------------------------------------------------------------------------- columns
def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x[..., idx, :, :]`` per column, ``idx (..., lat, lon)``."""
    return torch.gather(x, -3, idx.unsqueeze(-3)).squeeze(-3)


def _thickness_correction(z: torch.Tensor, t: torch.Tensor, x_src: torch.Tensor) -> torch.Tensor:
    """``delta`` (K) per layer, ``(..., n - 1, lat, lon)``: ``R int (T_lin + delta 6 s (1 - s)) dx = z_i - z_{i+1}``."""
    dx = (x_src[1:] - x_src[:-1])[:, None, None]
    linear = R_DRY * 0.5 * (t[..., 1:, :, :] + t[..., :-1, :, :]) * dx
    return (z[..., :-1, :, :] - z[..., 1:, :, :] - linear) / (R_DRY * dx)


def surface_pressure(
    z: torch.Tensor,
    t: torch.Tensor,
    p_levels: torch.Tensor,
    phis: torch.Tensor,
    *,
    lapse_rate: float = STANDARD_LAPSE_RATE,
) -> torch.Tensor:
    """Surface pressure (Pa) by hydrostatic integration from the analysis levels to the ground.

    Parameters
    ----------
    z, t : Tensor, (..., n, lat, lon)
        Geopotential (m2 s-2) and temperature (K) on ``n >= 2`` pressure levels, top first.
    p_levels : Tensor, (n,)
        The levels' pressures (Pa), increasing.
    phis : Tensor, (lat, lon)
        Surface geopotential (m2 s-2).
    lapse_rate : float
        Temperature lapse rate below the lowest level (K m-1).

    Returns
    -------
    Tensor
        ``(..., lat, lon)``.

    Notes
    -----
    From the lowest level ``a`` above the ground, with ``T`` linear in ``x = ln p`` towards the
    next level (``dT/dx = c``), ``Phi(x) = Phi_a - R (T_a d + c d^2 / 2)`` with ``d = x - x_a``;
    its root ``d = -2 D / (R (T_a + sqrt(T_a^2 - 2 c D / R)))``, ``D = Phi_s - Phi_a``, is the
    cancellation-free form. Four Newton steps then add the thickness correction of
    :func:`temperature_on_sigma` (``dPhi/dx = -R T < 0``: the iteration converges monotonically). Below the lowest level ``L``:
    ``ps = p_L (1 + gamma (Phi_L - Phi_s) / (g T_L))^(g / (R gamma))``.
    """
    n = p_levels.numel()
    x = torch.log(p_levels)
    count = (z > phis.unsqueeze(-3)).sum(dim=-3)
    a = (count - 1).clamp(0, n - 2)
    za, ta, tb = _gather(z, a), _gather(t, a), _gather(t, a + 1)
    xa, xb = x[a], x[a + 1]
    c = (ta - tb) / (xa - xb)
    d_phi = phis - za
    disc = (ta**2 - 2 * c * d_phi / R_DRY).clamp_min(1.0)
    d = -2 * d_phi / (R_DRY * (ta + torch.sqrt(disc)))
    # With the thickness correction of temperature_on_sigma (ground between two levels), Newton
    # steps from the quadratic root on R int T dx = Phi_a - Phi_s (dPhi/dx = -R T, monotonic).
    delta = torch.where(count > 0, _gather(_thickness_correction(z, t, x), a), torch.zeros_like(ta))
    width = xb - xa
    for _ in range(4):
        f = (d / width).clamp(0.0, 1.0)
        resid = R_DRY * (ta * d + 0.5 * c * d**2 + delta * width * (3 * f**2 - 2 * f**3)) + d_phi
        d = d - resid / (R_DRY * (ta + c * d + 6 * delta * f * (1 - f)))
    between = torch.exp(xa + d)
    zl, tl = z[..., -1, :, :], t[..., -1, :, :]
    below = p_levels[-1] * (1 + lapse_rate * (zl - phis) / (GRAVITY * tl)) ** (GRAVITY / (R_DRY * lapse_rate))
    return torch.where(count == n, below, between)


def temperature_on_sigma(
    t: torch.Tensor,
    p_levels: torch.Tensor,
    p: torch.Tensor,
    *,
    z: torch.Tensor | None = None,
    lapse_rate: float = STANDARD_LAPSE_RATE,
) -> torch.Tensor:
    """Temperature (K) at pressures ``p`` from temperature on pressure levels (steps 3-4 of the module notes).

    Parameters
    ----------
    t : Tensor, (..., n, lat, lon)
        Temperature on the levels ``p_levels`` (Pa, ``(n,)``, increasing).
    p : Tensor, (..., k, lat, lon)
        Target pressures (Pa), e.g. the model's full levels.
    z : Tensor, (..., n, lat, lon), optional
        Geopotential (m2 s-2) on the same levels. When given, each layer between two levels gets
        the correction ``delta 6 s (1 - s)`` (``s`` the fraction of the layer in ``ln p``), zero at
        both levels, whose ``delta`` makes the layer's hydrostatic thickness ``R int T d ln p``
        equal to the analysed ``z_i - z_{i+1}``: the dry core's temperature then carries the
        analysed thickness (the virtual-temperature effect and the curvature a linear profile
        misses) while keeping the analysed temperature at the analysis levels.
    lapse_rate : float
        Lapse rate below the lowest level (K m-1).

    Returns
    -------
    Tensor
        ``(..., k, lat, lon)``.
    """
    x_src, x = torch.log(p_levels), torch.log(p)
    inside = interp_log_pressure(t, x_src, x)
    if z is not None:
        dx = x_src[1:] - x_src[:-1]
        delta = _thickness_correction(z, t, x_src)
        lead = torch.broadcast_shapes(delta.shape[:-3], x.shape[:-3])
        layer = torch.searchsorted(x_src.contiguous(), torch.broadcast_to(x, lead + x.shape[-3:]).contiguous()) - 1
        layer = layer.clamp(0, x_src.numel() - 2)
        frac = ((x - x_src[layer]) / dx[layer]).clamp(0.0, 1.0)
        inside = inside + torch.gather(torch.broadcast_to(delta, lead + delta.shape[-3:]), -3, layer) * 6 * frac * (
            1 - frac
        )
    tl = t[..., -1:, :, :]
    below = tl * torch.exp((R_DRY * lapse_rate / GRAVITY) * (x - x_src[-1]))
    t_std, _ = standard_atmosphere(p)
    t_std_top, _ = standard_atmosphere(p_levels[:1])
    anomaly = t[..., :1, :, :] - t_std_top
    ptop = float(p_levels[0])
    if ptop > P_TROPOPAUSE:
        taper = ((x - math.log(P_TROPOPAUSE)) / (math.log(ptop) - math.log(P_TROPOPAUSE))).clamp(0.0, 1.0)
    else:
        taper = torch.ones_like(x)
    above = t_std + anomaly * taper
    return torch.where(x > x_src[-1], below, torch.where(x < x_src[0], above, inside))


def _humidity_on_sigma(q: torch.Tensor, p_levels: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    x_src, x = torch.log(p_levels), torch.log(p)
    inside = interp_log_pressure(q, x_src, x)  # constant below the lowest level
    above = q[..., :1, :, :] * p / p_levels[0]
    return torch.where(x < x_src[0], above, inside).clamp_min(0.0)


def balanced_winds(
    grid: SpectralGrid,
    t: torch.Tensor,
    ps: torch.Tensor,
    phis: torch.Tensor,
    levels: SigmaLevels,
    balance: LinearBalance,
    *,
    tropical_taper_deg: float = 15.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-divergent winds (m s-1) in linear balance on each sigma level.

    Solves ``div(f grad psi) = div(grad Phi_k + R T_k grad ln ps)`` (the pressure-gradient force
    in sigma coordinates; Haltiner & Williams 1980, eq. 1-38) level by level with
    :class:`~engine.models.global_.initial.LinearBalance`, ``Phi_k`` from the model's own
    hydrostatic equation (:func:`~engine.models.global_.primitive.vertical.geopotential`). Near
    the equator, where ``f -> 0`` leaves the balance ill-conditioned, the forcing is multiplied by
    ``1 - exp(-(lat / taper)^2)``: on the ERA5 sample at T42 the untapered solution has tropical
    winds up to 117 m s-1 (RMS 21 m s-1 within 20 degrees), the 15-degree taper 44 m s-1 (RMS
    8.5 m s-1), while the extratropical jets (83 m s-1 at most, 12 m s-1 zonal mean at 45 N
    and 530 hPa) change by under 1 m s-1.

    Parameters
    ----------
    grid : SpectralGrid
        The model grid.
    t : Tensor, (..., nlev, lat, lon)
        Temperature (K).
    ps : Tensor, (..., lat, lon)
        Surface pressure (Pa).
    phis : Tensor, (lat, lon)
        Surface geopotential (m2 s-2).
    levels : SigmaLevels
        The model levels.
    balance : LinearBalance
        The balance solver of the grid's truncation (its factorisations live on the CPU).
    tropical_taper_deg : float
        Latitude scale (degrees) of the equatorial taper of the forcing; 0 for none.

    Returns
    -------
    (u, v) : tuple of Tensor
        Shape of ``t``.
    """
    phi = geopotential(t, phis, levels)
    gx, gy = grid.grad(grid.to_spec(torch.log(ps)))
    px, py = grid.grad(grid.to_spec(phi))
    force_div, _ = grid.div_curl(px + R_DRY * t * gx.unsqueeze(-3), py + R_DRY * t * gy.unsqueeze(-3))
    lat = grid.lats.reshape(-1, 1)
    taper = (
        1.0 - torch.exp(-((lat / math.radians(tropical_taper_deg)) ** 2))
        if tropical_taper_deg > 0
        else torch.ones_like(lat)
    )
    phi_eff = grid.invlap * grid.to_spec(grid.to_grid(force_div) * taper)
    # LinearBalance keeps its Cholesky factors and grid on the CPU: solve there, return to the device.
    vrt = (
        balance.vorticity(phi_eff.cpu()).to(phi_eff.device)
        if balance.grid.lats.device != phi_eff.device
        else balance.vorticity(phi_eff)
    )
    return grid.uv(vrt, torch.zeros_like(vrt))


def analysis_state(
    ds: xr.Dataset,
    grid: SpectralGrid,
    levels: SigmaLevels | None = None,
    *,
    orography: xr.Dataset | xr.DataArray | torch.Tensor | None = None,
    init_time: np.datetime64 | str | None = None,
    members: Sequence[int] | int | None = None,
    balance: LinearBalance | None = None,
    omega: float = 7.292e-5,
    source: str = "input",
) -> AnalysisState:
    """The model's grid-space initial state from an analysis on pressure levels.

    Parameters
    ----------
    ds : Dataset
        The analysis (see :func:`read_pressure_levels`).
    grid : SpectralGrid
        The model grid.
    levels : SigmaLevels, optional
        Model levels; :meth:`SigmaLevels.default` when omitted.
    orography : Dataset, DataArray or Tensor, optional
        DEM (m) for :func:`model_orography`. When omitted, the analysis's own ``orography`` (its
        surface geopotential) is used; without either the surface is at sea level everywhere.
    init_time, members, source
        As in :func:`read_pressure_levels`.
    balance : LinearBalance, optional
        Balance solver (built on a CPU copy of ``grid`` when needed and not given).
    omega : float
        Rotation rate (s-1) of the balance when it is built here.

    Returns
    -------
    AnalysisState
        With a member dim when the analysis has members.
    """
    levels = levels or SigmaLevels.default()
    pl = read_pressure_levels(ds, grid, init_time=init_time, members=members, source=source)
    if orography is not None:
        phis = model_orography(grid, orography, source=source)
    elif pl.orography is not None:
        phis = model_orography(grid, pl.orography, source=source)
    else:
        phis = torch.zeros(grid.nlat, grid.nlon, dtype=grid.dtype, device=grid.lats.device)

    def plev(base: str) -> torch.Tensor:
        return torch.as_tensor(pl.levels[base] * 100.0, dtype=grid.dtype, device=grid.lats.device)

    p_zt = plev("t")
    ps = surface_pressure(pl.fields["z"], pl.fields["t"], p_zt, phis)
    p = pressure_full(ps, levels)
    t = temperature_on_sigma(pl.fields["t"], p_zt, p, z=pl.fields["z"])
    if "u" in pl.fields:
        x_src, x = torch.log(plev("u")), torch.log(p)
        u, v = interp_log_pressure(pl.fields["u"], x_src, x), interp_log_pressure(pl.fields["v"], x_src, x)
        winds = "analysed"
    else:
        if balance is None:
            cpu = grid if grid.lats.device.type == "cpu" else copy.deepcopy(grid).cpu()
            balance = LinearBalance(cpu, omega=omega)
        u, v = balanced_winds(grid, t, ps, phis, levels, balance)
        winds = "balanced"
    q = _humidity_on_sigma(pl.fields["q"], plev("q"), p) if "q" in pl.fields else None
    if pl.members is None:
        u, v, t, ps = u[0], v[0], t[0], ps[0]
        q = None if q is None else q[0]
    return AnalysisState(u=u, v=v, t=t, q=q, ps=ps, phis=phis, levels=levels, members=pl.members,
                         init_time=pl.init_time, winds=winds)  # fmt: skip
