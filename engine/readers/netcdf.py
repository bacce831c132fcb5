"""Gridded netCDF analyses on regular latitude-longitude (or Gaussian) grids.

:class:`NetcdfGridReader` (``netcdf_grid``) reads these layouts into canonical variables:

- ECMWF/Copernicus style (ERA-Interim ``eraint_uvz.nc``, ERA5 as downloaded from the Climate Data
  Store, old and new): ``z``, ``t``, ``u``, ``v``, ``q``, ``r``... on ``level``/``pressure_level``
  (hPa) become ``z500``, ``u850``...; single-level ``t2m``, ``d2m``, ``u10``, ``v10``, ``msl``,
  ``sp``, ``tp`` (m → mm), ``lsm`` keep or gain their canonical names; a single-level ``z``
  (surface geopotential) becomes ``orography`` (divided by g). ``latitude``/``longitude`` → ``lat``/
  ``lon``; ``time`` or ``valid_time`` → ``time``; ``number`` → ``member``; other dims (ERA-Interim's
  climatological ``month``) are kept.
- NCL's January 1996 blizzard files ``{P,T,U,V,U500,V500}storm.cdf``: one variable each (``p``,
  ``t``, ``u``, ``v``) with *no units attribute* on ``(timestep, lat, lon)``, ``timestep`` in
  hours after the text ``reftime``. From the values (p 96 000-104 400, t 234-308 K in January
  from 20 to 60 N, u/v within ±30 m/s), p is sea-level pressure in Pa and t, u, v are near-surface
  analyses (NCL's own examples call the temperature "T2"): ``msl``, ``t2m``, ``u10``, ``v10``; the
  level of ``u``/``v`` is told only by the file name (``U500storm.cdf`` → ``u500``).
- NCL ``landsea.nc`` (``LSMASK`` classes 0 ocean, 1 land, 2 lake, 3 small island, 4 ice shelf):
  ``land_sea_class`` (the codes, with CF ``flag_values``) and the binary ``land_sea_mask``
  (1 where land or small island; lakes and floating ice shelves count as water).
- SpeedyWeather ``orography.nc`` (``orog`` on an N512 Gaussian grid): metres, although its
  ``units`` attribute says ``m**2 s**-2`` (the file history shows CDO divided the IFS geopotential
  by 9.80665 and set ``long_name="orographic height [m]"`` but not the units) → ``orography``;
  note CDO's ``abs`` made ocean values small positive numbers. SpeedyWeather
  ``land-sea_mask.nc`` (``lsm``, 0-1) → ``land_sea_fraction``.
- CF grids in a projection (a regional model on Lambert or rotated-pole coordinates, a radar
  composite or nowcast exported by meteolens): canonical variables on ``(..., y, x)`` whose
  ``grid_mapping`` names a CF grid-mapping variable. They keep ``x``/``y`` and get the
  ``crs`` variable and 2-D WGS 84 ``lat``/``lon`` of :func:`engine.coords.attach_projection`
  (computed from the projection, not taken from the file, so they are WGS 84 whatever datum
  the file used).

Public API: ``NetcdfGridReader``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import xarray as xr
from pyproj import CRS
from pyproj.exceptions import CRSError

from engine.coords import attach_projection, crs_of
from engine.errors import FormatError
from engine.lexicon import VARIABLES, is_level_name, level_name
from engine.readers._common import (
    NC_SUFFIXES,
    NcHeader,
    canonical_da,
    nc_header,
    normalise_units,
    open_netcdf,
    requested,
    set_lat_lon,
)
from engine.readers.base import has_suffix, readers

#: Standard gravity (m s-2), WMO; used to turn surface geopotential into height.
G0 = 9.80665

_LAT_NAMES = ("lat", "latitude")
_LON_NAMES = ("lon", "longitude")
_LEVEL_NAMES = ("level", "pressure_level", "isobaricInhPa", "plev")
_TIME_NAMES = ("time", "valid_time")

#: Native names of upper-air variables (on a level dim) → canonical base.
UPPER_AIR: dict[str, str] = {"z": "z", "gh": "gh", "t": "t", "u": "u", "v": "v", "q": "q", "r": "r", "vo": "vo"}

#: Native names of single-level fields → canonical names (ERA5 short names and their CDS netCDF names).
SINGLE_LEVEL: dict[str, str] = {
    "t2m": "t2m", "2t": "t2m", "d2m": "d2m", "2d": "d2m", "u10": "u10", "10u": "u10", "v10": "v10", "10v": "v10",
    "msl": "msl", "sp": "sp", "tp": "tp", "i10fg": "wind_gust", "fg10": "wind_gust", "lsm": "land_sea_fraction",
}

#: The blizzard files: native variable → (canonical name at the surface, units the values are in).
_STORM_SURFACE: dict[str, tuple[str, str]] = {"p": ("msl", "Pa"), "t": ("t2m", "K"), "u": ("u10", "m s-1"), "v": ("v10", "m s-1")}
_STORM_LEVEL_RE = re.compile(r"^[uv](\d{3,4})storm$", re.IGNORECASE)

_LANDSEA_CLASSES = "ocean land lake small_island ice_shelf"


def _find(names: Sequence[str], candidates: Sequence[str]) -> str | None:
    return next((c for c in candidates if c in names), None)


def _layout(header: NcHeader) -> str | None:
    """Which supported layout a header describes (``"storm"``, ``"landsea"``, ``"speedy_orog"``, ``"cf"``,
    ``"projected"``), or None."""
    names = header.var_dims
    if {"timestep", "reftime", "lat", "lon"} <= set(names) and any(v in names for v in _STORM_SURFACE):
        return "storm"
    if "LSMASK" in names:
        return "landsea"
    if "orog" in names:
        return "speedy_orog"
    for var, dims in names.items():
        if _find(dims, _LAT_NAMES) and _find(dims, _LON_NAMES) and (var in UPPER_AIR or var in SINGLE_LEVEL or is_level_name(var)):
            return "cf"
    if any(_projected_variable(var, dims, header) for var, dims in names.items()):
        return "projected"
    return None


def _projected_variable(var: str, dims: Sequence[str], header: NcHeader) -> bool:
    """A canonical variable on trailing ``(y, x)`` dims whose ``grid_mapping`` is in the file."""
    mapping = header.var_attrs.get(var, {}).get("grid_mapping")
    canonical = var in VARIABLES or var in SINGLE_LEVEL or is_level_name(var)
    return canonical and tuple(dims[-2:]) == ("y", "x") and isinstance(mapping, str) and mapping in header.var_dims


@readers.register("netcdf_grid")
class NetcdfGridReader:
    """Gridded netCDF analyses (ERA5/ERA-Interim CDS layout, NCL storm and land-sea files, SpeedyWeather inputs)."""

    suffixes: ClassVar[tuple[str, ...]] = NC_SUFFIXES
    description: ClassVar[str] = ("gridded netCDF analyses on lat/lon grids (ERA5/ERA-Interim, NCL, SpeedyWeather) "
                                  "and CF projected grids")

    def can_open(self, path: Path) -> bool:
        """netCDF suffix and signature, and a variable of a supported layout on ``lat``/``lon`` dims."""
        if not has_suffix(path, self.suffixes):
            return False
        header = nc_header(path)
        return header is not None and _layout(header) is not None

    def open(self, path: Path, *, variables: Sequence[str] | None = None) -> xr.Dataset:
        """Read ``path`` into canonical variables on ``([time | month,] [member,] lat, lon)``.

        Parameters
        ----------
        path : Path
            A netCDF file in one of the layouts of the module docstring.
        variables : sequence of str, optional
            Canonical names to keep (``"z500"``, ``"msl"``...); all when omitted.

        Returns
        -------
        Dataset
            Canonical variables with ``lat``/``lon`` coordinates in degrees (``attrs["lat_order"]``
            states the latitude order) and ``attrs["source_files"]``.

        Raises
        ------
        FormatError
            Not netCDF, truncated, or no supported layout.
        VariableNotFoundError
            A requested variable is not in the file.
        """
        path = Path(path)
        raw = open_netcdf(path, decode_times=False)
        header = NcHeader(dims={str(k): n for k, n in raw.sizes.items()},
                          var_dims={str(k): tuple(map(str, v.dims)) for k, v in raw.variables.items()},
                          var_attrs={str(k): dict(v.attrs) for k, v in raw.variables.items()},
                          global_attrs=dict(raw.attrs))
        layout = _layout(header)
        if layout is None:
            raise FormatError(path, "no gridded variable of a supported layout (z/t/u/v..., t2m, msl... on lat/lon dims)")
        crs: CRS | None = None  # the projection of a projected layout
        if layout == "storm":
            arrays = _storm(raw, path)
        elif layout == "landsea":
            arrays = _landsea(raw)
        elif layout == "speedy_orog":
            arrays = _speedy_orography(raw, path)
        elif layout == "projected":
            arrays, crs = _projected_grid(raw, header, path)
        else:
            arrays = _cf_grid(raw, path)
        available = {str(a.name): a for a in arrays}
        keep = requested(variables, available, path)
        # Every layout stores at most single precision (eraint packs int16); float32 halves memory.
        ds = xr.Dataset({name: _as_float32(available[name]) for name in keep})
        if crs is not None:
            ds = attach_projection(ds, crs, x=raw["x"].values, y=raw["y"].values)
            ds.attrs["y_order"] = "north_to_south" if bool(np.all(np.diff(raw["y"].values) < 0)) else "south_to_north"
        ds = set_lat_lon(ds)
        ds.attrs["source_files"] = str(path)
        for key in ("title", "institution", "source", "Conventions"):
            if key in raw.attrs:
                ds.attrs[f"native_{key.lower()}"] = str(raw.attrs[key])
        return ds


def _as_float32(da: xr.DataArray) -> xr.DataArray:
    """float64 (unpacked int16) and integer fractions/masks → float32; class codes stay integers."""
    if da.dtype == np.float64 or (da.dtype.kind in "iu" and da.name != "land_sea_class"):
        return da.astype("float32", keep_attrs=True)
    return da


def _rename_grid(da: xr.DataArray) -> xr.DataArray:
    """``latitude``/``longitude`` → ``lat``/``lon``; other spellings of time/member to the contract."""
    renames = {}
    for dim in da.dims:
        if dim in _LAT_NAMES:
            renames[dim] = "lat"
        elif dim in _LON_NAMES:
            renames[dim] = "lon"
        elif dim in _TIME_NAMES:
            renames[dim] = "time"
        elif dim == "number":
            renames[dim] = "member"
    da = da.rename(renames)
    # New-CDS files carry scalar bookkeeping coords (expver, number); drop the scalar ones.
    scalars = [c for c in da.coords if c not in da.dims and da[c].ndim == 0]
    return da.drop_vars(scalars)


def _decode_time(raw: xr.Dataset, path: Path) -> xr.Dataset:
    """Decode CF time coordinates (read with ``decode_times=False`` so bad units name the file)."""
    try:
        return xr.decode_cf(raw, decode_times=True)
    except ValueError as err:
        raise FormatError(path, f"time coordinate cannot be decoded: {err}") from err


def _cf_grid(raw: xr.Dataset, path: Path) -> list[xr.DataArray]:
    ds = _decode_time(raw, path)
    out: list[xr.DataArray] = []
    for name, var in ds.data_vars.items():
        dims = tuple(map(str, var.dims))
        if not (_find(dims, _LAT_NAMES) and _find(dims, _LON_NAMES)):
            continue
        units = str(var.attrs.get("units", ""))
        level_dim = _find(dims, _LEVEL_NAMES)
        da = _rename_grid(var)
        if level_dim and name in UPPER_AIR:
            level_units = normalise_units(str(ds[level_dim].attrs.get("units", "hPa"))).lower()
            # Levels in Pa (CMIP "plev") are divided to hPa; millibars are hPa already.
            to_hpa = 0.01 if level_units == "pa" else 1.0
            for level in ds[level_dim].values:
                hpa = float(level) * to_hpa
                part = da.sel({level_dim: level}).drop_vars(level_dim)
                out.append(canonical_da(part, level_name(UPPER_AIR[str(name)], hpa), units=units,
                                        native_name=str(name), level_hpa=hpa))
        elif not level_dim and name == "z":
            # ERA5 single-level z is the surface geopotential: height = z / g.
            out.append(canonical_da(da / G0, "orography", native_name="z"))
        elif not level_dim and name in SINGLE_LEVEL:
            out.append(canonical_da(da, SINGLE_LEVEL[str(name)], units=units or None, native_name=str(name)))
        elif not level_dim and is_level_name(str(name)):
            # Already canonical with its level (z500, t850): files written by meteolens itself or
            # prepared for a pretrained model (the FengWu example in docs/global_models.md).
            out.append(canonical_da(da, str(name), units=units or None, native_name=str(name)))
    if not out:
        raise FormatError(path, f"no variable with a canonical name; has {', '.join(map(str, ds.data_vars))}")
    return out


def _projected_grid(raw: xr.Dataset, header: NcHeader, path: Path) -> tuple[list[xr.DataArray], CRS]:
    """Canonical variables on a projected ``(y, x)`` grid, and the grid's projection (which must be readable)."""
    ds = _decode_time(raw, path)
    names = [str(n) for n, v in ds.data_vars.items() if _projected_variable(str(n), tuple(map(str, v.dims)), header)]
    if "x" not in ds.coords or "y" not in ds.coords:
        raise FormatError(path, "a projected grid needs 1-D x and y coordinate variables")
    try:
        crs = crs_of(ds)
    except CRSError as err:  # a grid mapping pyproj cannot read
        raise FormatError(path, f"grid mapping of {', '.join(names)} is not a valid projection: {err}") from err
    if crs is None:
        raise FormatError(path, f"no grid mapping found for {', '.join(names)}")
    out = []
    for name in names:
        # The file's own lat/lon (maybe on another datum) and bookkeeping coords are replaced.
        da = _rename_grid(ds[name].drop_vars([c for c in ("lat", "lon") if c in ds[name].coords]))
        native = SINGLE_LEVEL.get(name, name)
        out.append(canonical_da(da, native, units=str(da.attrs.get("units", "")) or None, native_name=name))
    return out, crs


def _storm(raw: xr.Dataset, path: Path) -> list[xr.DataArray]:
    ref = raw["reftime"].values
    # xarray joins the char array into one 0-d string; a raw |S1 array (other decoders) is joined here.
    ref_bytes = ref.item() if ref.ndim == 0 else b"".join(np.asarray(ref, dtype="S1").tolist())
    reftime = (ref_bytes.decode("ascii", "replace") if isinstance(ref_bytes, bytes) else str(ref_bytes)).strip("\x00 ")
    try:
        t0 = pd.Timestamp(pd.to_datetime(reftime, format="%Y %m %d %H:%M"))
    except ValueError as err:
        raise FormatError(path, f"reftime {reftime!r} is not 'YYYY MM DD HH:MM'") from err
    times = t0 + pd.to_timedelta(raw["timestep"].values.astype("int64"), unit="h")
    level_match = _STORM_LEVEL_RE.match(path.stem)
    out = []
    for native, (surface_name, units) in _STORM_SURFACE.items():
        if native not in raw.data_vars:
            continue
        upper = level_match is not None and native in ("u", "v")
        name = level_name(native, float(level_match.group(1))) if upper and level_match else surface_name
        da = raw[native].rename({"timestep": "time"}).assign_coords(time=("time", times.values))
        out.append(canonical_da(da.astype("float32"), name, units=units, native_name=native,
                                comment="units inferred from the values; the file has no units attribute"))
    if not out:
        raise FormatError(path, "storm layout without p, t, u or v")
    return out


def _landsea(raw: xr.Dataset) -> list[xr.DataArray]:
    codes = raw["LSMASK"]
    classes = canonical_da(codes.astype("int8"), "land_sea_class", native_name="LSMASK",
                           flag_values=np.arange(5, dtype="int8"), flag_meanings=_LANDSEA_CLASSES)
    # Land = classes 1 (land) and 3 (small island); lake and ice shelf (floating) are water surfaces.
    mask = canonical_da(codes.isin([1, 3]).astype("float32"), "land_sea_mask", native_name="LSMASK",
                        comment="1 where LSMASK is 1 (land) or 3 (small island), else 0")
    return [classes, mask]


def _speedy_orography(raw: xr.Dataset, path: Path) -> list[xr.DataArray]:
    var = raw["orog"]
    long_name = str(var.attrs.get("long_name", ""))
    units = normalise_units(str(var.attrs.get("units", "")))
    # Known data quirk: the values are metres (CDO divided z by 9.80665) but units still says m**2 s**-2.
    # Trust the metres only when the long_name says so; otherwise divide a true geopotential by g.
    if "[m]" in long_name or units == "m":
        values = var
    elif units == "m2 s-2":
        values = var / G0
    else:
        raise FormatError(path, f"orog has units {units!r} and long_name {long_name!r}; expected metres or m2 s-2")
    return [canonical_da(_rename_grid(values).astype("float32"), "orography", native_name="orog",
                         comment="native units attribute m**2 s**-2 is wrong; values are metres (see file history)")]
