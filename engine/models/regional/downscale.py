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
  whole case (:class:`~engine.models.regional.neural_field.NeuralFieldDownscaler`).

Public API: ``METHODS``, ``DEFAULT_METHOD``, ``downscale_dataset``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from engine.errors import CoordError, VariableNotFoundError, WxError
from engine.lexicon import attrs_for, convert_units
from engine.models.regional.grid import LatLonGrid, dem_to_grid, interp_regular, normalise_longitudes, target_grid
from engine.models.regional.neural_field import NeuralFieldDownscaler
from engine.models.regional.temperature import STANDARD_LAPSE, LapseRateDownscaler
from engine.models.regional.wind import MassConsistentWind

#: Method → variables it applies to (``None``: any variable).
METHODS: dict[str, tuple[str, ...] | None] = {
    "bilinear": None,
    "lapse_rate": ("t2m", "t"),
    "fixed_lapse": ("t2m", "t"),
    "mass_consistent": ("u10", "v10"),
    "neural_field": ("t2m", "t"),
}

#: The method used when none is given.
DEFAULT_METHOD: dict[str, str] = {"t2m": "lapse_rate", "u10": "mass_consistent", "v10": "mass_consistent"}


class DownscaleError(WxError, ValueError):
    """Options or inputs of a downscaling request are unusable."""


def _regular(ds: xr.Dataset, name: str) -> xr.Dataset:
    if "lat" not in ds.dims or "lon" not in ds.dims:
        raise CoordError(
            f"{name}: downscaling needs a regular (lat, lon) grid; dims are {dict(ds.sizes)}"
            " (regrid projected data first)"
        )
    return ds


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
    # Air temperature in K: the coldest and hottest surface readings ever (184 K, 330 K) with room.
    "t2m": (150.0, 350.0, "K"),
    "t": (150.0, 350.0, "K"),
    # Wind components in m s-1: 10 m gusts beyond 120 m s-1 are unknown; km/h or knots of a jet
    # stream would exceed that.
    "u10": (-120.0, 120.0, "m s-1"),
    "v10": (-120.0, 120.0, "m s-1"),
}
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
    vmin, vmax, med = float(finite.min()), float(finite.max()), float(np.median(finite))
    if units == "K" and med < lo:
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


def _default_domain(ds: xr.Dataset) -> tuple[float, float, float, float]:
    lat, lon = ds["lat"].values, ds["lon"].values
    dlat, dlon = abs(float(lat[1] - lat[0])), abs(float(lon[1] - lon[0]))
    return (float(lat.min()) - dlat / 2, float(lat.max()) + dlat / 2, float(lon.min()) - dlon / 2,
            float(lon.max()) + dlon / 2)


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
        Coarse input with dims ``(..., lat, lon)`` (1-D regular coordinates, degrees); leading
        dims such as ``time``, ``lead_time``, ``member`` are kept.
    variable : str
        Canonical variable (``t2m`` K, ``u10``/``v10`` m s-1 -- the wind method downscales both).
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
        Method parameters: ``radius``, ``prior_relief`` (lapse rate), ``alpha`` (winds).
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    Dataset
        The downscaled variable(s) on ``(..., lat, lon)`` (lat descending) plus the fine
        ``orography`` (m) when a DEM was used; attributes record the method and options.

    Raises
    ------
    VariableNotFoundError, CoordError, DownscaleError
        Missing variables, a grid that is not regular or does not cover the domain, an unknown
        method or one that does not fit the variable, a missing DEM or one that does not cover
        the domain, values in implausible units (temperature in degC, winds in km/h, a DEM in
        km or feet).
    """
    options = dict(options or {})
    name = str(ds.attrs.get("source_files", "input"))
    if variable not in ds.data_vars:
        raise VariableNotFoundError(name, f"no variable {variable!r}; has {', '.join(map(str, ds.data_vars))}")
    method = (method or DEFAULT_METHOD.get(variable, "bilinear")).lower()
    if method not in METHODS:
        raise DownscaleError(f"--method {method!r}: unknown; available: {', '.join(sorted(METHODS))}")
    allowed = METHODS[method]
    if allowed is not None and variable not in allowed:
        raise DownscaleError(f"--method {method} applies to {', '.join(allowed)}, not {variable!r}")
    if method != "bilinear" and dem is None:
        raise DownscaleError(f"--method {method} needs a DEM (--dem FILE or dataset)")
    if not (resolution > 0):
        raise DownscaleError(f"--resolution {resolution}: must be a positive number of degrees")
    variables = ["u10", "v10"] if method == "mass_consistent" else [variable]
    for v in variables:
        if v not in ds.data_vars:
            raise VariableNotFoundError(name, f"method {method} needs {v!r}; has {', '.join(map(str, ds.data_vars))}")
    ds = _regular(ds, name)
    for v in variables:
        _check_units(ds[v], v, name)
    box = tuple(float(x) for x in domain) if domain is not None else _default_domain(ds)
    if len(box) != 4:
        raise DownscaleError(f"--domain needs 4 numbers LAT0 LAT1 LON0 LON1, got {box}")
    fine = target_grid(*box, resolution)
    dlat = abs(float(ds["lat"][1] - ds["lat"][0]))
    radius = int(options.get("radius", 2))
    work = _subset(ds[variables + (["orography"] if "orography" in ds.data_vars else [])],
                   fine, margin=(radius + 1.5) * dlat)
    coarse = LatLonGrid.of(work)
    if coarse.dlat < resolution * 0.999:
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
            lat0, lat1, lon0, lon1 = _dem_extent(dem, float(np.mean(fine.lon)))  # type: ignore[arg-type]
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
            z_coarse = dem_to_grid(dem, coarse, name="--dem")  # type: ignore[arg-type]
        if z_coarse.shape != coarse.shape:
            raise CoordError(f"coarse orography shape {z_coarse.shape} does not match the input grid {coarse.shape}")

    dev = torch.device(device)
    model: torch.nn.Module | None
    if method == "lapse_rate":
        model = LapseRateDownscaler(z_fine, z_coarse, radius=radius,  # type: ignore[arg-type]
                                    prior_relief=float(options.get("prior_relief", 30.0)))
    elif method == "fixed_lapse":
        model = LapseRateDownscaler(z_fine, z_coarse, fixed_lapse=float(options.get("lapse", STANDARD_LAPSE)))  # type: ignore[arg-type]
    elif method == "neural_field":
        model = NeuralFieldDownscaler(z_fine, z_coarse, steps=int(options.get("steps", 300)))  # type: ignore[arg-type]
    elif method == "mass_consistent":
        model = MassConsistentWind(z_fine, alpha=float(options.get("alpha", 1.0)))  # type: ignore[arg-type]
    else:
        model = None
    if model is not None:
        model = model.to(dev)

    data = work[variables].to_array("variable").transpose("variable", ..., "lat", "lon")
    lead_dims = [d for d in data.dims if d not in ("variable", "lat", "lon")]
    lead_shape = [data.sizes[d] for d in lead_dims]
    n = int(np.prod(lead_shape)) if lead_shape else 1
    arr = data.values.reshape(len(variables), n, *coarse.shape).astype("float32")
    out = np.empty((len(variables), n, *fine.shape), dtype="float32")
    ccoords = {"lat": coarse.lat, "lon": coarse.lon, "variable": np.array(variables)}
    fcoords = {"lat": fine.lat, "lon": fine.lon}
    info: dict[str, float] = {}
    if method == "neural_field":
        batch_size = n  # one network per case: the time axis is one of its inputs
    elif method == "mass_consistent":
        batch_size = min(batch_size, 8)  # the float64 CG solver holds about ten fields per time step
    with torch.enable_grad() if method == "neural_field" else torch.no_grad():
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            x = torch.from_numpy(arr[:, start:stop]).to(dev)
            if method == "bilinear":
                y = interp_regular(x, coarse, fine)
            elif method == "mass_consistent":
                y = model(x.permute(1, 0, 2, 3), ccoords, fcoords).permute(1, 0, 2, 3)  # type: ignore[misc]
                info = dict(model.last_info)  # type: ignore[union-attr]
            else:
                y = model(x[0], ccoords, fcoords)[None]  # type: ignore[misc]
            out[:, start:stop] = y.float().cpu().numpy()
            if progress:
                progress(stop / n, f"downscaled {stop}/{n} fields")

    coords: dict[str, Any] = {d: data[d] for d in lead_dims if d in data.coords}
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
        source_grid_deg=float(coarse.dlat),
        **{f"option_{k}": v for k, v in options.items()},
        **{f"solver_{k}": v for k, v in info.items()},
    )
    return result


def bilinear_field(coarse: np.ndarray, src: LatLonGrid, dst: LatLonGrid) -> np.ndarray:
    """Bilinear interpolation of a numpy field ``(..., ny, nx)`` between grids (baseline helper)."""
    return interp_regular(torch.from_numpy(np.ascontiguousarray(coarse)), src, dst).numpy()
