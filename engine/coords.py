"""Georeferencing helpers: CF grid mappings and 2-D latitude/longitude for projected grids.

Public API: ``attach_projection``, ``crs_of``, ``lat_lon_grid``.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from pyproj import CRS, Transformer


def attach_projection(ds: xr.Dataset, crs: CRS | str, *, x: np.ndarray, y: np.ndarray) -> xr.Dataset:
    """Give a ``(y, x)`` dataset its projection coordinates, a CF ``crs`` variable and 2-D lat/lon.

    Parameters
    ----------
    ds : Dataset
        Data variables with trailing dims ``(y, x)``.
    crs : pyproj.CRS or str
        The grid's projection (anything ``pyproj.CRS.from_user_input`` accepts).
    x, y : ndarray
        Cell-centre projection coordinates in metres (or degrees for geographic CRSs), 1-D.

    Returns
    -------
    Dataset
        With ``x``/``y`` coords (units from the CRS), 2-D ``lat``/``lon`` (degrees), a scalar
        ``crs`` variable holding ``crs.to_cf()`` plus ``crs_wkt``, and ``grid_mapping="crs"`` on
        every data variable.
    """
    crs = CRS.from_user_input(crs)
    lat, lon = lat_lon_grid(crs, x, y)
    units = crs.axis_info[0].unit_name if crs.axis_info else "m"
    units = {"metre": "m", "degree": "degrees"}.get(units, units)
    ds = ds.assign_coords(
        x=("x", np.asarray(x, dtype="float64"), {"units": units, "standard_name": "projection_x_coordinate"}),
        y=("y", np.asarray(y, dtype="float64"), {"units": units, "standard_name": "projection_y_coordinate"}),
        lat=(("y", "x"), lat, {"units": "degrees_north", "standard_name": "latitude"}),
        lon=(("y", "x"), lon, {"units": "degrees_east", "standard_name": "longitude"}),
    )
    with warnings.catch_warnings():
        # Some projections (the Swiss oblique Mercator) have parameters CF cannot name; the
        # crs_wkt attribute below carries the full definition, which crs_of() reads first.
        warnings.filterwarnings("ignore", message=".*lost in conversion to CF", category=UserWarning)
        cf = {k: v for k, v in crs.to_cf().items() if v is not None}
    cf.setdefault("crs_wkt", crs.to_wkt())
    ds["crs"] = xr.DataArray(np.int32(0), attrs=cf)
    for name in ds.data_vars:
        if name != "crs":
            ds[name].attrs["grid_mapping"] = "crs"
    return ds


def lat_lon_grid(crs: CRS | str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-D WGS 84 latitude and longitude (degrees, float32) of the cell centres ``(y, x)`` of a grid.

    Always WGS 84 (EPSG:4326), never the CRS's own geodetic datum: for a rotated pole that datum
    is the *rotated* sphere, and for national grids (CH1903, RD) it is offset by up to ~100 m,
    while stations and map overlays are in WGS 84.
    """
    crs = CRS.from_user_input(crs)
    xx, yy = np.meshgrid(np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64"))
    to_geo = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = to_geo.transform(xx, yy)
    return lat.astype("float32"), lon.astype("float32")


def crs_of(obj: xr.Dataset | xr.DataArray) -> CRS | None:
    """The pyproj CRS of a projected field from its CF grid mapping, or None if it names none.

    The grid mapping is the variable named by a data variable's ``grid_mapping`` attribute (or
    encoding, where xarray's CF decoding moved it); failing that, a variable called ``crs``, as
    :func:`attach_projection` writes. Its ``crs_wkt`` is used when present (fast and complete),
    else the CF attributes.

    Raises
    ------
    pyproj.exceptions.CRSError
        If the grid mapping is there but describes no valid CRS.
    """
    variables = [obj] if isinstance(obj, xr.DataArray) else list(obj.data_vars.values())
    names = [v.attrs.get("grid_mapping") or v.encoding.get("grid_mapping") for v in variables]
    for name in [n for n in names if n] + ["crs"]:
        holder = obj.coords.get(name) if isinstance(obj, xr.DataArray) else obj.variables.get(name)
        if holder is None:
            continue
        attrs = dict(holder.attrs)
        if "crs_wkt" in attrs:
            return CRS.from_wkt(str(attrs["crs_wkt"]))
        if "grid_mapping_name" in attrs:
            return CRS.from_cf(attrs)
    return None
