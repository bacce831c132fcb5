"""Grids: which case a field is, grid spacing, FSS windows in km, grid comparison, lat-lon regridding."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import xarray as xr

from engine.errors import CoordError, DimensionError
from verification.pipeline.options import VerificationError

# --------------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------------


def _case_of(da: xr.DataArray) -> Literal["grid", "latlon"]:
    if "y" in da.dims and "x" in da.dims:
        return "grid"
    if "lat" in da.dims and "lon" in da.dims:
        return "latlon"
    raise DimensionError(f"{da.name}: expected grid dims (y, x) or (lat, lon), got {da.dims}")


def grid_spacing_km(da: xr.DataArray) -> float:
    """Grid spacing in km: projected ``x`` in metres (CF units ``m`` or ``km``), or ``lat`` degrees.

    Raises
    ------
    CoordError
        If the grid has no usable 1-D coordinates.
    """
    if "x" in da.dims and "x" in da.coords and da.sizes["x"] > 1:
        step = float(np.median(np.abs(np.diff(da["x"].values.astype(float)))))
        units = str(da["x"].attrs.get("units", "m")).lower()
        return step if units in ("km", "kilometre", "kilometer") else step / 1000.0
    if "lat" in da.dims and da.sizes["lat"] > 1:
        # one degree of latitude is 111.2 km on a sphere of radius 6371 km
        return float(np.median(np.abs(np.diff(da["lat"].values.astype(float))))) * 111.195
    raise CoordError(f"{da.name}: cannot tell the grid spacing (no 1-D x or lat coordinate)")


def windows_from_km(km: Sequence[float], spacing_km: float) -> tuple[int, ...]:
    """FSS windows in grid points for window sizes in km: the nearest odd count, at least 1.

    Odd sizes keep the window centred on its grid point (scipy's ``uniform_filter`` shifts even
    windows by half a cell).

    Raises
    ------
    VerificationError
        If a size is not a positive number.
    """
    out = []
    for k in km:
        if not (isinstance(k, int | float) and math.isfinite(k) and k > 0):
            raise VerificationError(f"windows: {k!r} km is not a positive size")
        n = max(1, int(round(k / spacing_km)))
        out.append(n if n % 2 == 1 else n + 1)
    return tuple(dict.fromkeys(out))


def _same_grid(a: xr.DataArray, b: xr.DataArray, dims: Sequence[str]) -> bool:
    for d in dims:
        if d not in a.dims or d not in b.dims or a.sizes[d] != b.sizes[d]:
            return False
        if d in a.coords and d in b.coords:
            va, vb = a[d].values.astype(float), b[d].values.astype(float)
            spacing = float(np.abs(np.diff(va)).min()) if va.size > 1 else 1.0
            # a millionth of a cell: tolerates float32/float64 round trips, nothing more
            if not np.allclose(va, vb, rtol=0.0, atol=1e-6 * spacing):
                return False
    return True


def _lon_to(values: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Longitudes in the target grid's convention (0..360 or -180..180)."""
    return np.mod(values, 360.0) if np.nanmax(target) > 180.0 else np.mod(values + 180.0, 360.0) - 180.0


def regrid_latlon(data: xr.DataArray, lat: xr.DataArray | np.ndarray, lon: xr.DataArray | np.ndarray) -> xr.DataArray:
    """Bilinear interpolation of a regular latitude-longitude field to another such grid.

    The source longitudes are converted to the target's convention and sorted; on a global
    source (columns covering 360 degrees) one column is copied to each side, shifted by 360
    degrees, so target points between the last and the first column interpolate across the
    date line instead of becoming NaN. Latitudes are sorted ascending before ``interp``.

    Parameters
    ----------
    data : xarray.DataArray
        Field with 1-D ``lat`` and ``lon`` dims (degrees), any other dims.
    lat, lon : array-like
        Target coordinates (degrees).

    Returns
    -------
    xarray.DataArray
        ``data`` on the target grid (NaN outside the source's latitude range), same units.
    """
    lat_t = np.asarray(lat, dtype=float)
    lon_t = np.asarray(lon, dtype=float)
    src = data.assign_coords(lon=_lon_to(data["lon"].values.astype(float), lon_t)).sortby("lon").sortby("lat")
    lons = src["lon"].values
    if lons.size > 1:
        step = float(np.median(np.diff(lons)))
        if abs(lons.size * step - 360.0) < 0.5 * step:
            left = src.isel(lon=[-1]).assign_coords(lon=[lons[-1] - 360.0])
            right = src.isel(lon=[0]).assign_coords(lon=[lons[0] + 360.0])
            src = xr.concat([left, src, right], dim="lon")
    out = src.interp(lat=lat_t, lon=lon_t, method="linear")
    return out.assign_attrs(data.attrs)
