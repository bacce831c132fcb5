"""Helpers shared by the non-radar readers (kept private: the public API is the readers).

Public API (package-internal): ``lat_lon_attrs``, ``canonical_da``, ``select_variables``,
``check_readable``, ``normalise_units``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from engine.errors import FormatError, VariableNotFoundError
from engine.lexicon import attrs_for, convert_units, lookup
from engine.readers.base import read_head

LAT_ATTRS: dict[str, str] = {"units": "degrees_north", "standard_name": "latitude", "long_name": "Latitude"}
LON_ATTRS: dict[str, str] = {"units": "degrees_east", "standard_name": "longitude", "long_name": "Longitude"}

# Spellings of units found in the sample files, mapped to the lexicon's UDUNITS spelling.
_UNIT_ALIASES: dict[str, str] = {
    "m**2 s**-2": "m2 s-2",
    "m2/s2": "m2 s-2",
    "m^2/s^2": "m2 s-2",
    "m s**-1": "m s-1",
    "m/s": "m s-1",
    "meters/second": "m s-1",
    "meters": "m",
    "metres": "m",
    "gpm": "m",
    "kilometers": "km",
    "hectopascals": "hPa",
    "millimeters": "mm",
    "celsius": "degC",
    "degrees_c": "degC",
    "deg": "degree",
    "degrees": "degree",
    "(0 - 1)": "1",
    "~": "1",
}


def normalise_units(units: str) -> str:
    """Map a native units string onto the lexicon's spelling (``"m**2 s**-2"`` → ``"m2 s-2"``)."""
    u = units.strip()
    return _UNIT_ALIASES.get(u, _UNIT_ALIASES.get(u.lower(), u))


def canonical_da(
    values: np.ndarray | xr.DataArray, name: str, *, units: str | None = None, dims: Sequence[str] | None = None,
    **extra_attrs: object,
) -> xr.DataArray:
    """Wrap ``values`` as the canonical variable ``name``, converting from ``units`` if given.

    Parameters
    ----------
    values : ndarray or DataArray
        Native values.
    name : str
        Canonical name (``"t2m"``, ``"z500"``...).
    units : str, optional
        Native units; converted to the canonical units of ``name`` with
        :func:`engine.lexicon.convert_units` (after :func:`normalise_units`).
    dims : sequence of str, optional
        Dimension names when ``values`` is a bare array.
    **extra_attrs
        Further attributes (e.g. ``native_name``).

    Returns
    -------
    DataArray
        Named ``name`` with CF ``units``/``standard_name``/``long_name`` attributes.
    """
    target = lookup(name).units
    if isinstance(values, xr.DataArray):
        da = values.copy(deep=False)
        da.attrs = {}
    else:
        da = xr.DataArray(values, dims=dims)
    if units is not None:
        native = normalise_units(units)
        if native != target:
            da = da.copy(data=convert_units(np.asarray(da.values), native, target))
    da.name = name
    da.attrs = attrs_for(name, **extra_attrs)
    return da


def select_variables(ds: xr.Dataset, variables: Sequence[str] | None, path: Path) -> xr.Dataset:
    """Keep ``variables`` of ``ds``; raise :class:`VariableNotFoundError` naming the file if one is missing."""
    if variables is None:
        return ds
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise VariableNotFoundError(
            path, f"no variable {', '.join(missing)}; available: {', '.join(sorted(map(str, ds.data_vars)))}"
        )
    # Keep auxiliary variables such as the CF ``crs`` that the kept variables refer to.
    keep = list(variables)
    for v in variables:
        gm = ds[v].attrs.get("grid_mapping")
        if gm and gm in ds.data_vars and gm not in keep:
            keep.append(gm)
    return ds[keep]


def requested(variables: Sequence[str] | None, available: Mapping[str, object] | Sequence[str], path: Path) -> list[str]:
    """Names to read: ``variables`` checked against ``available`` (all when ``variables`` is None)."""
    names = list(available)
    if variables is None:
        return names
    missing = [v for v in variables if v not in names]
    if missing:
        raise VariableNotFoundError(path, f"no variable {', '.join(missing)}; available: {', '.join(sorted(names))}")
    return list(variables)


def check_readable(path: Path) -> None:
    """Raise :class:`FormatError` for a missing, empty or non-regular file, before a library gives a vaguer error."""
    if not path.exists():
        raise FormatError(path, "no such file")
    if not path.is_file():
        raise FormatError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise FormatError(path, "file is empty")


def lat_order(lat: np.ndarray) -> str:
    """``"descending"`` or ``"ascending"`` for a 1-D latitude coordinate (``"ascending"`` for length 1)."""
    lat = np.asarray(lat)
    return "descending" if lat.size > 1 and lat[0] > lat[-1] else "ascending"


def set_lat_lon(ds: xr.Dataset) -> xr.Dataset:
    """Give 1-D ``lat``/``lon`` coordinates their CF attributes and record ``lat_order``."""
    ds["lat"].attrs = dict(LAT_ATTRS)
    ds["lon"].attrs = dict(LON_ATTRS)
    if ds["lat"].ndim == 1:
        ds.attrs["lat_order"] = lat_order(ds["lat"].values)
    return ds


NC_MAGICS: tuple[bytes, ...] = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")
NC_SUFFIXES: tuple[str, ...] = (".nc", ".cdf", ".nc4", ".netcdf")


@dataclass(frozen=True)
class NcHeader:
    """What detection needs from a netCDF header: variable → dims, variable → attrs, global attrs."""

    dims: dict[str, int]
    var_dims: dict[str, tuple[str, ...]]
    var_attrs: dict[str, dict[str, object]]
    global_attrs: dict[str, object]


def nc_header(path: Path) -> NcHeader | None:
    """Header of a netCDF file (classic or netCDF-4), or None if it is not one; never raises.

    Only the header is read (netCDF4 reads data lazily), so this is cheap enough for ``can_open``.
    """
    if read_head(path, 8)[:4] not in {m[:4] for m in NC_MAGICS}:
        return None
    try:
        import netCDF4

        with netCDF4.Dataset(path) as nc:
            return NcHeader(
                dims={k: len(v) for k, v in nc.dimensions.items()},
                var_dims={k: tuple(v.dimensions) for k, v in nc.variables.items()},
                var_attrs={k: {a: v.getncattr(a) for a in v.ncattrs()} for k, v in nc.variables.items()},
                global_attrs={a: nc.getncattr(a) for a in nc.ncattrs()},
            )
    except Exception:  # detection must never raise, whatever the library throws on corrupt files
        return None


def open_netcdf(path: Path, *, decode_times: bool = True) -> xr.Dataset:
    """Open ``path`` with xarray's netCDF4 engine and load it; any failure → :class:`FormatError`.

    Loading eagerly means a truncated file fails here, inside the reader, with the file named,
    rather than later in whoever touches the data.
    """
    check_readable(path)
    if read_head(path, 8)[:4] not in {m[:4] for m in NC_MAGICS}:
        raise FormatError(path, "not a netCDF file (no CDF or HDF5 signature)")
    try:
        _check_classic_size(path)
        with warnings.catch_warnings():
            # ERA-Interim files from the old ECMWF server pack int16 with a NaN _FillValue; xarray
            # rightly drops it (an int16 can never be NaN) and warns. Nothing is lost: say it once, here.
            warnings.filterwarnings("ignore", message=".*non-conforming '_FillValue'")
            with xr.open_dataset(path, engine="netcdf4", decode_times=decode_times) as ds:
                return ds.load()
    except FormatError:
        raise
    except Exception as err:  # netCDF4/HDF5 raise OSError, RuntimeError, ValueError... on corrupt data
        raise FormatError(path, f"cannot be read as netCDF (truncated or corrupt?): {type(err).__name__}: {err}") from err


def _check_classic_size(path: Path) -> None:
    """Raise :class:`FormatError` if a classic (CDF-1/2/5) file is shorter than its variables' data.

    netCDF-C reads past the end of a truncated classic file without an error (HDF5-based
    netCDF-4 files do fail), so a cut-off download would silently yield garbage; the data of
    all variables is a lower bound of the file size (the header comes on top).
    """
    if read_head(path, 4)[:3] != b"CDF":
        return
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        need = sum(int(np.prod(v.shape, dtype=np.int64)) * v.dtype.itemsize
                   for v in nc.variables.values() if isinstance(v.dtype, np.dtype))
    size = path.stat().st_size
    if size < need:
        raise FormatError(path, f"truncated: its variables hold {need} bytes of data but the file has only {size}")
