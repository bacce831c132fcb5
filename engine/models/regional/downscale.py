"""Downscale a gridded Dataset onto a fine regular lat/lon grid over a domain (xarray in, xarray out).

This is the coords-aware glue between xarray Datasets and the torch downscalers of this package:
it picks the domain and target grid, puts the DEM on the coarse and fine grids, batches the
leading dimensions (time, lead_time, member...) through the model on the chosen device, and
returns a Dataset that follows the data contract. File and run-store I/O stay in
:mod:`engine.jobs.downscale_job`.

Methods (``method=``):

- ``bilinear``: bilinear interpolation (the baseline), any variable;
- ``lapse_rate``: temperature with a locally estimated lapse rate
  (:class:`~engine.models.regional.temperature.LapseRateDownscaler`);
- ``fixed_lapse``: temperature with the standard -6.5 K km-1 (for comparison);
- ``mass_consistent``: ``u10`` and ``v10`` together
  (:class:`~engine.models.regional.wind.MassConsistentWind`);
- ``neural_field``: temperature, lapse rate plus a physics-guided coordinate network fitted to the
  whole case (:class:`~engine.models.regional.neural_field.NeuralFieldDownscaler`);
- ``orographic``: precipitation (``precip_rate`` mm h-1 or ``tp`` mm) with Smith-Barstad
  orographic modulation and exact coarse-cell means
  (:class:`~engine.models.regional.precip.OrographicPrecipDownscaler`), steered by a uniform
  wind (given, the input's own wind, or the radar echo motion).

Inputs are regular lat/lon grids or regular grids of a map projection (``y``/``x`` in the CRS's
units with a CF grid mapping: radar composites, nowcast run stores). Projected inputs are
resampled bilinearly onto a lat/lon grid of about their own spacing first (in the native
projection coordinates, no-data kept as NaN), except for ``orographic``, which works from the
native cells directly so that it conserves the means of the input's own cells.

Public API: ``METHODS``, ``DEFAULT_METHOD``, ``DownscaleError``, ``downscale_dataset``,
``parse_steering_wind``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
import xarray as xr

from engine.coords import lat_lon_grid
from engine.errors import CoordError, DimensionError, VariableNotFoundError, WxError
from engine.lexicon import attrs_for, convert_units
from engine.models.nowcast.motion import FlowParams, estimate_motion
from engine.models.regional.grid import (
    M_PER_DEG,
    LatLonGrid,
    ProjectedGrid,
    SourceGrid,
    dem_to_grid,
    interp_regular,
    normalise_longitudes,
    resample_to_latlon,
    target_grid,
)
from engine.models.regional.neural_field import NeuralFieldDownscaler
from engine.models.regional.precip import AssignedCells, OrographicPrecipDownscaler
from engine.models.regional.temperature import STANDARD_LAPSE, LapseRateDownscaler
from engine.models.regional.wind import MassConsistentWind

#: Method → variables it applies to (``None``: any variable).
METHODS: dict[str, tuple[str, ...] | None] = {
    "bilinear": None,
    "lapse_rate": ("t2m", "t"),
    "fixed_lapse": ("t2m", "t"),
    "mass_consistent": ("u10", "v10"),
    "neural_field": ("t2m", "t"),
    "orographic": ("precip_rate", "tp"),
}

#: The method used when none is given (each but bilinear needs a DEM).
DEFAULT_METHOD: dict[str, str] = {
    "t2m": "lapse_rate", "u10": "mass_consistent", "v10": "mass_consistent",
    "precip_rate": "orographic", "tp": "orographic",
}

class DownscaleError(WxError, ValueError):
    """Options or inputs of a downscaling request are unusable."""


_T = TypeVar("_T")


def _needs_dem(value: _T | None, method: str) -> _T:
    """``value``, the DEM or a field derived from it, which every method but bilinear needs."""
    if value is None:
        raise DownscaleError(f"--method {method} needs a DEM (--dem FILE or dataset)")
    return value


def _is_projected(ds: xr.Dataset, name: str) -> bool:
    """Whether ``ds`` is on a projected ``(y, x)`` grid (else a regular ``(lat, lon)`` one)."""
    if "lat" in ds.dims and "lon" in ds.dims:
        return False
    if "y" in ds.dims and "x" in ds.dims:
        return True
    raise CoordError(
        f"{name}: downscaling needs a regular (lat, lon) grid or a projected (y, x) grid with a CF grid mapping;"
        f" dims are {dict(ds.sizes)}"
    )


def _projected_window(
    ds: xr.Dataset, src: ProjectedGrid, box: tuple[float, ...], margin_deg: float
) -> tuple[xr.Dataset, ProjectedGrid, tuple[float, float, float, float]]:
    """The projected input cut to the footprint of ``box`` plus ``margin_deg``; its grid; the padded box."""
    coslat = max(math.cos(math.radians(0.5 * (box[0] + box[1]))), 0.05)
    padded = (max(box[0] - margin_deg, -90.0), min(box[1] + margin_deg, 90.0),
              box[2] - margin_deg / coslat, box[3] + margin_deg / coslat)
    rows, cols = src.window(*padded)
    return ds.isel(y=rows, x=cols), ProjectedGrid(src.x[cols], src.y[rows], src.crs), padded


def _subset(ds: xr.Dataset, grid: LatLonGrid, margin: float) -> xr.Dataset:
    """Input cut to the target grid plus ``margin`` degrees, longitudes put in the grid's frame."""
    centre = float(np.mean(grid.lon))
    ds = ds.assign_coords(lon=normalise_longitudes(ds["lon"].values, centre)).sortby("lon")
    lat = ds["lat"].values
    lo, hi = grid.lat.min() - margin, grid.lat.max() + margin
    ds = ds.isel(lat=np.flatnonzero((lat >= lo) & (lat <= hi)))
    lon = ds["lon"].values
    ds = ds.isel(lon=np.flatnonzero((lon >= grid.lon.min() - margin) & (lon <= grid.lon.max() + margin)))
    if ds.sizes["lat"] < 2 or ds.sizes["lon"] < 2:
        raise CoordError(
            f"the input grid has fewer than 2x2 points over the domain lat {grid.lat.min():.2f}..{grid.lat.max():.2f},"
            f" lon {grid.lon.min():.2f}..{grid.lon.max():.2f}"
        )
    return ds


#: Plausible ranges of the downscaled variables in canonical units, checked on the median (a few
#: bad points should not trip it) and the extremes; outside them the units are almost surely wrong.
_PLAUSIBLE: dict[str, tuple[float, float, str]] = {
    # Precipitation: no rain is negative; 1000 mm h-1 is beyond radar rates of hail cores (the
    # sample composites peak at 30-170 mm h-1), 10 m of rain beyond any accumulation a run holds.
    "precip_rate": (0.0, 1000.0, "mm h-1"),
    "tp": (0.0, 10000.0, "mm"),
    # Air temperature in K: the coldest and hottest surface readings ever (184 K, 330 K) with room.
    "t2m": (150.0, 350.0, "K"),
    "t": (150.0, 350.0, "K"),
    # Wind components in m s-1: 10 m gusts beyond 120 m s-1 are unknown; km/h or knots of a jet
    # stream would exceed that.
    "u10": (-120.0, 120.0, "m s-1"),
    "v10": (-120.0, 120.0, "m s-1"),
}
#: Precipitation whose wettest value is above 0 but below this is not in mm: rain gauges and
#: radars start at 0.1 mm (h-1), so such a field is in metres (m h-1, m) or kg m-2 s-1 (mm s-1).
_MIN_PEAK: dict[str, tuple[float, str]] = {
    "precip_rate": (0.05, "m h-1 (multiply by 1000) or kg m-2 s-1 (multiply by 3600)"),
    "tp": (0.05, "m (multiply by 1000)"),
}
#: Negative precipitation down to this (packing noise of accumulations) is set to 0; below, refused.
_NEGATIVE_PRECIP_NOISE = 1e-3
#: Highest terrain on Earth (Everest, 8849 m) with margin: DEM heights above this are not metres.
_MAX_TERRAIN_M = 9000.0


def _check_units(da: xr.DataArray, variable: str, name: str) -> None:
    """Refuse values whose range shows wrong units (degC given for K, km/h for m s-1)."""
    if variable not in _PLAUSIBLE:
        return
    lo, hi, units = _PLAUSIBLE[variable]
    values = np.asarray(da.values, dtype="float64")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise DownscaleError(f"{name}: {variable} has no finite values")
    vmin, vmax = float(finite.min()), float(finite.max())
    if variable in _MIN_PEAK:
        if vmin < -_NEGATIVE_PRECIP_NOISE:
            raise DownscaleError(
                f"{name}: {variable} has negative values (down to {vmin:.4g} {units}); precipitation cannot be"
                " negative (a fill value, or a difference of accumulations?)"
            )
        peak, hint = _MIN_PEAK[variable]
        if 0.0 < vmax < peak:
            raise DownscaleError(
                f"{name}: {variable} peaks at {vmax:.3g}, below any measurable precipitation (0.1 {units}): "
                f"this looks like {hint}; expected {units}"
            )
        vmin = max(vmin, 0.0)
    med = float(np.median(finite)) if units == "K" else None
    if med is not None and med < lo:
        raise DownscaleError(
            f"{name}: {variable} ranges {vmin:.1f}..{vmax:.1f} (median {med:.1f}), which looks like degC; "
            f"expected kelvin (K), e.g. add 273.15"
        )
    if vmin < lo or vmax > hi:
        raise DownscaleError(
            f"{name}: {variable} ranges {vmin:.4g}..{vmax:.4g}, outside the plausible {lo:g}..{hi:g} {units}; "
            f"expected {units} (check the units of the input)"
        )


def _dem_in_metres(dem: xr.Dataset | xr.DataArray) -> xr.Dataset | xr.DataArray:
    """The DEM with its heights in metres: a DEM labelled ``km`` is converted, others pass."""
    da = dem["orography"] if isinstance(dem, xr.Dataset) and "orography" in dem else dem
    if not isinstance(da, xr.DataArray):
        return dem
    units = str(da.attrs.get("units", "m")).strip()
    if units in ("km", "kilometre", "kilometer", "kilometres", "kilometers"):
        metres = da.copy(data=convert_units(da.values.astype("float64"), "km", "m"))
        metres.attrs["units"] = "m"
        return dem.assign(orography=metres) if isinstance(dem, xr.Dataset) else metres
    return dem


def _check_dem_heights(z_fine: np.ndarray, grid: LatLonGrid) -> None:
    """Refuse DEM heights on the domain that cannot be metres (feet, decimetres or kilometres)."""
    top = float(np.nanmax(z_fine))
    if top > _MAX_TERRAIN_M:
        raise DownscaleError(
            f"--dem: terrain reaches {top:.0f} over the domain, higher than any mountain on Earth (8849 m); "
            "the DEM must be in metres (feet?)"
        )
    # Kilometres: a whole domain of a degree or more that never rises 10 units above the sea is
    # far more likely a km DEM than land that flat (even the Netherlands reach 322 m).
    span = (float(np.ptp(grid.lat)) + grid.dlat, float(np.ptp(grid.lon)) + grid.dlon)
    if 0.0 < top < 10.0 and min(span) >= 1.0 - 1e-6:
        raise DownscaleError(
            f"--dem: terrain over the domain is only {float(np.nanmin(z_fine)):.3g}..{top:.3g} high, which looks like "
            "kilometres; the DEM must be in metres (set its units attribute to 'km' to have it converted)"
        )


def _dem_extent(dem: xr.Dataset | xr.DataArray, centre: float) -> tuple[float, float, float, float]:
    """Bounding box (lat0, lat1, lon0, lon1) of the DEM's points, longitudes in the frame around ``centre``."""
    da = dem["orography"] if isinstance(dem, xr.Dataset) and "orography" in dem else dem
    if "lat" not in da.coords or "lon" not in da.coords:
        raise CoordError(f"--dem: orography needs 'lat' and 'lon' coordinates; has {list(da.coords)}")
    lat = np.asarray(da["lat"].values, dtype="float64")
    lon = normalise_longitudes(np.asarray(da["lon"].values, dtype="float64"), centre)
    return float(lat.min()), float(lat.max()), float(lon.min()), float(lon.max())


def _default_domain(ds: xr.Dataset, src: ProjectedGrid | None = None) -> tuple[float, float, float, float]:
    if src is not None:  # projected: the lat/lon box around the outermost cell centres
        x = np.concatenate([src.x, np.full(src.y.size, src.x[-1]), src.x[::-1], np.full(src.y.size, src.x[0])])
        y = np.concatenate([np.full(src.x.size, src.y[0]), src.y, np.full(src.x.size, src.y[-1]), src.y[::-1]])
        lon, lat = src.to_lon_lat(x, y)
        return float(lat.min()), float(lat.max()), float(lon.min()), float(lon.max())
    lat, lon = ds["lat"].values, ds["lon"].values
    dlat, dlon = abs(float(lat[1] - lat[0])), abs(float(lon[1] - lon[0]))
    return (float(lat.min()) - dlat / 2, float(lat.max()) + dlat / 2, float(lon.min()) - dlon / 2,
            float(lon.max()) + dlon / 2)


# --- Steering wind of the orographic method ------------------------------------------------

#: Wind pairs that can steer the orographic model, in order of preference. Smith & Barstad's
#: model is driven by the wind of the moist layer that condenses over the terrain; its vapour
#: decays with the scale height H_w = 2.5 km, so the vapour-weighted layer lies near 2-3 km
#: above the ground, about 700 hPa (and above the crests of most ranges, where the flow is not
#: yet split by the terrain). 850 hPa lies in the lower part of that layer (often blocked or
#: channelled below Alpine crests); 10 m winds are slowed and backed by surface friction, the
#: last resort.
_STEERING_LEVELS = (("u700", "v700"), ("u850", "v850"), ("u10", "v10"))
#: Faster steering winds than this (m s-1) are not a moist low-level flow: wrong units.
_MAX_STEERING = 100.0


def parse_steering_wind(value: object) -> tuple[float, float]:
    """``--steering-wind U V`` as two finite floats (m s-1, at most 100 m s-1 in speed).

    Raises
    ------
    DownscaleError
        If ``value`` is not two finite numbers, or is faster than any low-level flow.
    """
    try:
        # any iterable of two numbers; iterating anything else raises the TypeError caught below
        u, v = (float(c) for c in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise DownscaleError(
            f"--steering-wind {value!r}: expected two numbers U V (m s-1, eastward and northward)"
        ) from None
    if not (math.isfinite(u) and math.isfinite(v)):
        raise DownscaleError(f"--steering-wind {u:g} {v:g}: expected two finite numbers U V (m s-1)")
    if math.hypot(u, v) > _MAX_STEERING:
        raise DownscaleError(
            f"--steering-wind {u:g} {v:g}: {math.hypot(u, v):.0f} m s-1 is no low-level flow (at most "
            f"{_MAX_STEERING:g} m s-1; km/h or knots?)"
        )
    return u, v


def _domain_mask(work: xr.Dataset, src: SourceGrid, box: tuple[float, ...]) -> xr.DataArray:
    """Input cells whose centres lie in the domain box (all cells if none does)."""
    if isinstance(src, ProjectedGrid) and ("lat" not in work.coords or work["lat"].ndim != 2):
        lat2, lon2 = lat_lon_grid(src.crs, src.x, src.y)
        lat, lon = xr.DataArray(lat2, dims=("y", "x")), xr.DataArray(lon2, dims=("y", "x"))
    else:
        lat, lon = work["lat"], work["lon"]
    lon = lon.copy(data=normalise_longitudes(lon.values, 0.5 * (box[2] + box[3])))
    mask = (lat >= box[0]) & (lat <= box[1]) & (lon >= box[2]) & (lon <= box[3])
    return mask if bool(mask.any()) else xr.ones_like(mask)


def _steering_winds(
    work: xr.Dataset, rain: xr.DataArray, lead_dims: Sequence[Hashable], src: SourceGrid, box: tuple[float, ...],
    options: dict[str, Any], name: str,
) -> tuple[np.ndarray, str]:
    """Steering wind (m s-1, eastward and northward) per field ``(n, 2)``, and where it came from.

    In order: ``options["steering_wind"]``; the input's own wind (:data:`_STEERING_LEVELS`,
    domain mean per field); the mean echo motion of the precipitation (at least 2 times).
    """
    n = int(np.prod([rain.sizes[d] for d in lead_dims])) if lead_dims else 1
    if options.get("steering_wind") is not None:
        return np.tile(np.array(parse_steering_wind(options["steering_wind"])), (n, 1)), "--steering-wind"
    spatial = [d for d in rain.dims if d not in lead_dims]
    for uname, vname in _STEERING_LEVELS:
        if uname not in work.data_vars or vname not in work.data_vars:
            continue
        mask = _domain_mask(work, src, box)
        comps = []
        for c in (uname, vname):
            mean = work[c].where(mask).mean(spatial)
            extra = [d for d in mean.dims if d not in lead_dims]
            mean = mean.mean(extra) if extra else mean
            comps.append(mean.broadcast_like(rain.isel({d: 0 for d in spatial}, drop=True))
                         .transpose(*lead_dims).values.reshape(n))
        winds = np.stack(comps, axis=1).astype("float64")
        if not np.isfinite(winds).all() or np.hypot(winds[:, 0], winds[:, 1]).max() > _MAX_STEERING:
            raise DownscaleError(
                f"{name}: the domain-mean {uname}/{vname} is missing or beyond {_MAX_STEERING:g} m s-1 for some"
                " fields; give --steering-wind U V (m s-1)"
            )
        return winds, f"{uname}/{vname} domain mean"
    time_dim = next((d for d in ("time", "lead_time") if d in lead_dims and rain.sizes[d] >= 2), None)
    if time_dim is None:
        raise DownscaleError(
            f"--method orographic needs a steering wind: give --steering-wind U V (m s-1, eastward and northward); "
            f"{name} has no u700/v700, u850/v850 or u10/v10 and fewer than 2 times for an echo motion"
        )
    return np.tile(np.array(_echo_motion(rain, time_dim, src, name)), (n, 1)), \
        f"echo motion (optical flow over {rain.sizes[time_dim]} {time_dim} steps)"


def _echo_motion(rain: xr.DataArray, time_dim: str, src: SourceGrid, name: str) -> tuple[float, float]:
    """Mean motion (m s-1, east and north) of the precipitation echoes over the time axis.

    The nowcast's optical flow (:func:`~engine.models.nowcast.motion.estimate_motion`, constant
    motion over all frames, other dims averaged) gives pixels per step; its mean over the pixels
    with echoes is turned into metres on the source grid (through the projection where there
    is one) and divided by the time step.
    """
    steps = np.diff(rain[time_dim].values).astype("timedelta64[ns]").astype("float64") * 1e-9
    if steps.size == 0 or not (steps > 0).all() or np.ptp(steps) > 1e-6 * steps.max():
        raise DownscaleError(
            f"{name}: the {time_dim} steps are not increasing at a constant interval, so no echo motion can be "
            "estimated; give --steering-wind U V (m s-1)"
        )
    other = [d for d in rain.dims if d not in (time_dim, *rain.dims[-2:])]
    frames = rain.mean(other, skipna=True) if other else rain
    t = torch.from_numpy(np.ascontiguousarray(frames.transpose(time_dim, ...).values, dtype="float32"))
    params = FlowParams()
    try:
        with torch.no_grad():
            flow = estimate_motion(t, params)
    except DimensionError as err:
        raise DownscaleError(f"{name}: cannot estimate the echo motion ({err}); give --steering-wind U V (m s-1)") from err
    echo = (torch.nan_to_num(t, nan=0.0) >= params.threshold).any(0)
    if not bool(echo.any()):
        raise DownscaleError(f"{name}: no precipitation echoes to follow; give --steering-wind U V (m s-1)")
    cols, rows = (float(flow[i][echo].mean()) for i in (0, 1))
    east, north = src.displacement_m(rows, cols)
    return east / float(steps[0]), north / float(steps[0])


def _wind_attrs(winds: np.ndarray, source: str) -> dict[str, Any]:
    """Output attributes recording the steering wind (mean, and per field when it varies)."""
    attrs: dict[str, Any] = {"steering_wind": [round(float(w), 3) for w in winds.mean(0)],
                             "steering_wind_source": source}
    if np.ptp(winds, axis=0).max() > 1e-9:
        attrs["steering_wind_by_field"] = np.round(winds, 3).tolist()
    return attrs


def _orographic(
    coarse: np.ndarray, src: SourceGrid, fine: LatLonGrid, z_fine: np.ndarray, winds: np.ndarray,
    device: torch.device, batch_size: int, progress: Callable[[float, str], None] | None,
) -> np.ndarray:
    """Orographic precipitation downscaling of ``coarse`` ``(n, *src.shape)`` to ``(n, *fine.shape)``.

    Each fine cell belongs to the source cell containing its centre (regular or projected), so
    the source cells' means are conserved; Smith-Barstad runs on the fine lat/lon grid with
    ``dx`` per latitude band (see :func:`~engine.models.regional.precip.orographic_rate`), the
    terrain continued at its edge heights beyond the domain. Fields with the same steering wind
    share one model.
    """
    cells = AssignedCells(*src.positions(fine), src.shape)
    dx, dy = fine.spacing_m()
    # Packing noise of accumulations (checked to be tiny before) must not trip the model's check.
    coarse = np.where(coarse < 0, 0.0, coarse).astype("float32")
    out = np.empty((coarse.shape[0], *fine.shape), dtype="float32")
    keys, inverse = np.unique(np.round(winds, 3), axis=0, return_inverse=True)
    done = 0
    with torch.no_grad():
        for k, wind in enumerate(keys):
            model = OrographicPrecipDownscaler(torch.from_numpy(z_fine), dx, dy, cells, (float(wind[0]), float(wind[1])),
                                               pad="edge").to(device)
            idx = np.flatnonzero(inverse.ravel() == k)
            for start in range(0, idx.size, batch_size):
                chunk = idx[start:start + batch_size]
                out[chunk] = model(torch.from_numpy(coarse[chunk]).to(device)).float().cpu().numpy()
                done += chunk.size
                if progress:
                    progress(done / coarse.shape[0], f"downscaled {done}/{coarse.shape[0]} fields")
    return out


def downscale_dataset(
    ds: xr.Dataset,
    variable: str,
    *,
    resolution: float,
    dem: xr.Dataset | xr.DataArray | None = None,
    domain: Sequence[float] | None = None,
    method: str | None = None,
    device: torch.device | str = "cpu",
    coarse_orography: xr.DataArray | None = None,
    batch_size: int = 96,
    options: dict[str, Any] | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> xr.Dataset:
    """Downscale ``variable`` of ``ds`` to a ``resolution``-degree grid over ``domain``.

    Parameters
    ----------
    ds : Dataset
        Coarse input with dims ``(..., lat, lon)`` (1-D regular coordinates, degrees) or
        ``(..., y, x)`` (a map projection: 1-D ``x``/``y`` and a CF grid mapping, as the radar
        readers and nowcasts give); leading dims such as ``time``, ``lead_time``, ``member``
        are kept.
    variable : str
        Canonical variable (``t2m`` K, ``u10``/``v10`` m s-1 -- the wind method downscales both,
        ``precip_rate`` mm h-1, ``tp`` mm).
    resolution : float
        Target grid spacing (degrees).
    dem : Dataset or DataArray, optional
        Terrain (``orography``, m) covering the domain; required by every method but bilinear.
        A DEM whose ``units`` attribute is ``km`` is converted to metres; heights that cannot be
        metres (above 9000, or below 10 over a whole domain of a degree or more) are refused.
    domain : (lat0, lat1, lon0, lon1), optional
        Target box (degrees); the input's extent when omitted.
    method : str, optional
        One of :data:`METHODS`; :data:`DEFAULT_METHOD` of the variable when omitted.
    device : torch.device or str
        Where the model runs.
    coarse_orography : DataArray, optional
        The coarse model's orography (m) on the input grid; else an ``orography`` variable of
        ``ds``; else the DEM area-averaged onto the input grid.
    batch_size : int
        Time steps per batch on the device (bounds memory).
    options : dict, optional
        Method parameters: ``radius``, ``prior_relief`` (lapse rate), ``alpha`` (winds),
        ``steering_wind`` ``(u, v)`` m s-1 (orographic; else the input's u700/v700, u850/v850
        or u10/v10 domain mean per field, else the echo motion of at least 2 time steps).
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    Dataset
        The downscaled variable(s) on ``(..., lat, lon)`` (lat descending) plus the fine
        ``orography`` (m) when a DEM was used; attributes record the method and options (and
        ``steering_wind``, ``steering_wind_source`` for the orographic method). NaN in the
        input (radar no-data) stays NaN.

    Raises
    ------
    VariableNotFoundError, CoordError, DownscaleError
        Missing variables, a grid that is neither regular nor projected with a usable CRS or
        does not cover the domain, an unknown method or one that does not fit the variable, a
        missing DEM or one that does not cover the domain, values in implausible units
        (temperature in degC, winds in km/h, negative precipitation or precipitation in m h-1
        or kg m-2 s-1, a DEM in km or feet), no usable steering wind.
    """
    options = dict(options or {})
    files = str(ds.attrs.get("source_files", "input")).split(",")
    name = files[0] + (f" (and {len(files) - 1} more files)" if len(files) > 1 else "")
    if variable not in ds.data_vars:
        raise VariableNotFoundError(name, f"no variable {variable!r}; has {', '.join(map(str, ds.data_vars))}")
    method = (method or DEFAULT_METHOD.get(variable, "bilinear")).lower()
    if method not in METHODS:
        raise DownscaleError(f"--method {method!r}: unknown; available: {', '.join(sorted(METHODS))}")
    allowed = METHODS[method]
    if allowed is not None and variable not in allowed:
        raise DownscaleError(f"--method {method} applies to {', '.join(allowed)}, not {variable!r}")
    if method != "bilinear":
        _needs_dem(dem, method)
    if not (resolution > 0):
        raise DownscaleError(f"--resolution {resolution}: must be a positive number of degrees")
    variables = ["u10", "v10"] if method == "mass_consistent" else [variable]
    for v in variables:
        if v not in ds.data_vars:
            raise VariableNotFoundError(name, f"method {method} needs {v!r}; has {', '.join(map(str, ds.data_vars))}")
    if method == "orographic" and options.get("steering_wind") is not None:
        options["steering_wind"] = list(parse_steering_wind(options["steering_wind"]))
    projected = _is_projected(ds, name)
    proj = ProjectedGrid.of(ds, name=name) if projected else None
    src: SourceGrid | None = proj
    for v in variables:
        _check_units(ds[v], v, name)
    box = tuple(float(x) for x in domain) if domain is not None else _default_domain(ds, proj)
    if len(box) != 4:
        raise DownscaleError(f"--domain needs 4 numbers LAT0 LAT1 LON0 LON1, got {box}")
    fine = target_grid(*box, resolution)
    radius = int(options.get("radius", 2))
    extra = ["orography"] if "orography" in ds.data_vars else []
    if method == "orographic":
        extra = [w for pair in _STEERING_LEVELS for w in pair if w in ds.data_vars]
    if isinstance(src, ProjectedGrid):
        native = src.spacing_m() / M_PER_DEG
        # Compare sizes in km: a lat/lon cell of R deg is R x R cos(lat) deg, so 0.01 deg cells
        # (0.93 km on average at 46 N) still refine a 1 km radar grid.
        target_km = resolution * M_PER_DEG * math.sqrt(math.cos(math.radians(0.5 * (box[0] + box[1])))) / 1e3
        if target_km > 1.1 * native * M_PER_DEG / 1e3:
            raise DownscaleError(
                f"--resolution {resolution} ({target_km:.3g} km) is coarser than the input grid "
                f"({native * M_PER_DEG / 1e3:.3g} km, about {native:.3g} deg)"
            )
        work, src, padded = _projected_window(ds[variables + extra], src, box, (radius + 1.5) * native)
        if method != "orographic":
            # Every other method works on a regular lat/lon grid: resample at about the native
            # spacing (square cells in km at the domain's middle), then carry on as for one.
            coslat = max(math.cos(math.radians(0.5 * (box[0] + box[1]))), 0.05)
            grid = target_grid(*padded, native, lon_resolution=native / coslat)
            ds = resample_to_latlon(work, src, grid, variables + extra)
            projected = False
    if not projected:
        dlat = abs(float(ds["lat"][1] - ds["lat"][0]))
        work = _subset(ds[variables + extra], fine, margin=(radius + 1.5) * dlat)
        coarse = LatLonGrid.of(work)
        if src is None and coarse.dlat < resolution * 0.999:  # (a resampled projected input was checked in km)
            raise DownscaleError(f"--resolution {resolution} is coarser than the input grid ({coarse.dlat:g} deg)")

    z_fine: np.ndarray | None = None
    if dem is not None:
        dem = _dem_in_metres(dem)
        lat0, lat1, lon0, lon1 = _dem_extent(dem, float(np.mean(fine.lon)))
        # Half a fine cell of slack: a DEM whose outermost points are cell centres of the same
        # domain still covers it.
        slack = 0.5 * resolution + 1e-9
        if lat0 > box[0] + slack or lat1 < box[1] - slack or lon0 > box[2] + slack or lon1 < box[3] - slack:
            raise CoordError(
                f"--dem does not cover the requested domain: DEM covers lat {lat0:.2f}..{lat1:.2f}, "
                f"lon {lon0:.2f}..{lon1:.2f};"
                f" domain lat {box[0]:.2f}..{box[1]:.2f}, lon {box[2]:.2f}..{box[3]:.2f} (choose --domain inside the DEM)"
            )
        z_fine = dem_to_grid(dem, fine, name="--dem")
        _check_dem_heights(z_fine, fine)
    z_coarse: np.ndarray | None = None
    if method in ("lapse_rate", "fixed_lapse", "neural_field"):
        if coarse_orography is not None:
            zc_da = _subset(coarse_orography.to_dataset(name="orography"), fine, margin=(radius + 1.5) * dlat)
            z_coarse = zc_da["orography"].transpose("lat", "lon").values
        elif "orography" in work.data_vars:
            z_coarse = work["orography"].transpose("lat", "lon").values
        else:
            # "Derived from the DEM by block-averaging to the coarse grid": the grid-box mean. The
            # regression margin around the domain may reach beyond a DEM that covers just the
            # domain: keep only the coarse cells whose centres the DEM covers (the bilinear step
            # still reaches every fine point, which lie within half a coarse cell of them).
            if dem is None:  # checked on entry; narrowed here for the type checker
                raise DownscaleError(f"--method {method} needs a DEM (--dem FILE or dataset)")
            lat0, lat1, lon0, lon1 = _dem_extent(dem, float(np.mean(fine.lon)))
            clat, clon = work["lat"].values, work["lon"].values
            eps = 1e-6 * coarse.dlat
            keep_lat = np.flatnonzero((clat >= lat0 - eps) & (clat <= lat1 + eps))
            keep_lon = np.flatnonzero((clon >= lon0 - eps) & (clon <= lon1 + eps))
            if keep_lat.size < 2 or keep_lon.size < 2:
                raise DownscaleError(
                    f"--dem covers fewer than 2x2 cells of the input grid ({coarse.dlat:g} deg); "
                    "give a DEM that extends at least one input cell beyond the domain"
                )
            work = work.isel(lat=keep_lat, lon=keep_lon)
            coarse = LatLonGrid.of(work)
            z_coarse = dem_to_grid(dem, coarse, name="--dem")
        if z_coarse.shape != coarse.shape:
            raise CoordError(f"coarse orography shape {z_coarse.shape} does not match the input grid {coarse.shape}")

    dev = torch.device(device)
    model: torch.nn.Module | None
    if method == "lapse_rate":
        model = LapseRateDownscaler(_needs_dem(z_fine, method), _needs_dem(z_coarse, method), radius=radius,
                                    prior_relief=float(options.get("prior_relief", 30.0)))
    elif method == "fixed_lapse":
        model = LapseRateDownscaler(_needs_dem(z_fine, method), _needs_dem(z_coarse, method),
                                    fixed_lapse=float(options.get("lapse", STANDARD_LAPSE)))
    elif method == "neural_field":
        model = NeuralFieldDownscaler(_needs_dem(z_fine, method), _needs_dem(z_coarse, method),
                                      steps=int(options.get("steps", 300)))
    elif method == "mass_consistent":
        model = MassConsistentWind(_needs_dem(z_fine, method), alpha=float(options.get("alpha", 1.0)))
    else:
        model = None
    if model is not None:
        model = model.to(dev)

    if not projected:
        src = coarse  # the lapse-rate methods may have narrowed it to the DEM's cover
    if src is None:  # unreachable: a projected input set src to its ProjectedGrid above
        raise DownscaleError("internal error: no source grid for the projected input")
    spatial = ("y", "x") if projected else ("lat", "lon")
    data = work[variables].to_array("variable").transpose("variable", ..., *spatial)
    lead_dims = [d for d in data.dims if d not in ("variable", *spatial)]
    lead_shape = [data.sizes[d] for d in lead_dims]
    n = int(np.prod(lead_shape)) if lead_shape else 1
    arr = data.values.reshape(len(variables), n, *src.shape).astype("float32")
    out = np.empty((len(variables), n, *fine.shape), dtype="float32")
    info: dict[str, Any] = {}
    if method == "orographic":
        winds, source = _steering_winds(work, data.isel(variable=0), lead_dims, src, box, options, name)
        info.update(_wind_attrs(winds, source))
        out[0] = _orographic(arr[0], src, fine, _needs_dem(z_fine, method), winds, dev, min(batch_size, 16), progress)
    else:
        ccoords = {"lat": coarse.lat, "lon": coarse.lon, "variable": np.array(variables)}
        fcoords = {"lat": fine.lat, "lon": fine.lon}
        if method == "neural_field":
            batch_size = n  # one network per case: the time axis is one of its inputs
        elif method == "mass_consistent":
            batch_size = min(batch_size, 8)  # the float64 CG solver holds about ten fields per time step
        with torch.enable_grad() if method == "neural_field" else torch.no_grad():
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                x = torch.from_numpy(arr[:, start:stop]).to(dev)
                if model is None:  # bilinear
                    y = interp_regular(x, coarse, fine)
                elif isinstance(model, MassConsistentWind):
                    y = model(x.permute(1, 0, 2, 3), ccoords, fcoords).permute(1, 0, 2, 3)
                    info = {f"solver_{k}": v for k, v in model.last_info.items()}
                else:
                    y = model(x[0], ccoords, fcoords)[None]
                out[:, start:stop] = y.float().cpu().numpy()
                if progress:
                    progress(stop / n, f"downscaled {stop}/{n} fields")

    coords: dict[Hashable, Any] = {d: data[d] for d in lead_dims if d in data.coords}
    coords.update({k: c for k, c in work.coords.items() if k not in ("lat", "lon") and set(c.dims) <= set(lead_dims)})
    coords["lat"] = ("lat", fine.lat, {"units": "degrees_north", "standard_name": "latitude"})
    coords["lon"] = ("lon", fine.lon, {"units": "degrees_east", "standard_name": "longitude"})
    result = xr.Dataset(coords=coords)
    for i, v in enumerate(variables):
        try:
            attrs = attrs_for(v)
        except WxError:
            attrs = dict(ds[v].attrs)
        result[v] = ((*lead_dims, "lat", "lon"), out[i].reshape(*lead_shape, *fine.shape), attrs)
    if z_fine is not None:
        result["orography"] = (("lat", "lon"), z_fine.astype("float32"), attrs_for("orography"))
    result.attrs.update(
        downscaling_method=method,
        resolution_deg=float(resolution),
        domain=list(box),
        lat_order="descending",
        source_grid_deg=float(src.dlat) if isinstance(src, LatLonGrid) else round(src.spacing_m() / M_PER_DEG, 6),
        **({"source_projection": src.crs.name} if isinstance(src, ProjectedGrid) else {}),
        **{f"option_{k}": v for k, v in options.items()},
        **info,
    )
    return result


def bilinear_field(coarse: np.ndarray, src: LatLonGrid, dst: LatLonGrid) -> np.ndarray:
    """Bilinear interpolation of a numpy field ``(..., ny, nx)`` between grids (baseline helper)."""
    return interp_regular(torch.from_numpy(np.ascontiguousarray(coarse)), src, dst).numpy()
