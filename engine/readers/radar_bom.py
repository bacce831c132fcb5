"""Australian Bureau of Meteorology Rainfields single-radar products in netCDF.

Two layouts of the same product family are in use and both are read:

- ``prcp-c10`` (Rainfields 3.2, CF-1.7): 10-minute bias-corrected accumulation, ``x``/``y``
  cell centres in km with ``x_bounds``/``y_bounds``, ``_FillValue = -1``;
- ``prcp-cscn`` (Rainfields 3.0, CF-1.6): accumulation over one scan cycle (6 minutes), ``x``/``y``
  in km with ``valid_min``/``valid_max``, ``_FillValue = -32768``.

In both, ``precipitation(y, x)`` is int16 packed (``scale_factor`` 0.05 mm), units ``kg m-2``,
rows north to south, on an Albers equal-area grid centred on the radar (the ``proj`` grid
mapping), and the period is ``start_time`` to ``valid_time`` (seconds since 1970, UTC).

Public API: ``BomNetcdfReader`` (registered as ``bom_netcdf``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import xarray as xr
from pyproj.exceptions import CRSError

from engine.errors import FormatError
from engine.readers.base import has_suffix, read_head, readers
from engine.readers.radar_common import (
    HDF5_MAGIC,
    accumulation_to_rate,
    build_radar_dataset,
    check_variables,
    crs_from_cf,
)

if TYPE_CHECKING:
    # Imported where a file is opened, not here: the reader registry is loaded by every command,
    # most of which never touch a BoM file, and netCDF4 (with its HDF5 libraries) is slow to load.
    import netCDF4

# Units of ``precipitation`` meaning an amount over the period, or already a rate.
_AMOUNT_UNITS = ("kg m-2", "mm")
_RATE_UNITS = ("mm h-1", "mm/h", "kg m-2 h-1")


def _epoch_seconds(path: Path, var: netCDF4.Variable) -> np.datetime64:
    units = getattr(var, "units", "")
    if not units.startswith("seconds since 1970-01-01"):
        raise FormatError(path, f"{var.name} has units {units!r}, expected 'seconds since 1970-01-01 00:00:00 UTC'")
    return np.datetime64(int(var[...]), "s").astype("datetime64[ns]")


def _km_or_m(path: Path, var: netCDF4.Variable) -> np.ndarray:
    units = getattr(var, "units", "m")
    scale = {"km": 1000.0, "m": 1.0}.get(units)
    if scale is None:
        raise FormatError(path, f"coordinate {var.name} has units {units!r}, expected km or m")
    return np.asarray(var[:], dtype="float64") * scale


@readers.register("bom_netcdf")
class BomNetcdfReader:
    """BoM Rainfields radar precipitation (prcp-c10, prcp-cscn, netCDF) → ``precip_rate`` (mm h-1).

    Detection: ``.nc`` suffix, netCDF-4/HDF5 (or classic netCDF) signature, and a Bureau of
    Meteorology ``institution`` attribute with a ``precipitation`` variable.
    """

    suffixes: ClassVar[tuple[str, ...]] = (".nc",)
    description: ClassVar[str] = "Bureau of Meteorology Rainfields single-radar precipitation (netCDF, Albers grid)"

    def can_open(self, path: Path) -> bool:
        """Suffix, signature and BoM attributes; never raises."""
        if not has_suffix(path, self.suffixes):
            return False
        head = read_head(path, 8)
        if not (head.startswith(HDF5_MAGIC) or head[:3] == b"CDF"):
            return False
        try:
            import netCDF4

            with netCDF4.Dataset(path, "r") as nc:
                institution = str(getattr(nc, "institution", ""))
                return "Bureau of Meteorology" in institution and "precipitation" in nc.variables
        except Exception:  # noqa: BLE001 - can_open must never raise; netCDF4 fails in many ways on bad files
            return False

    def open(self, path: Path, *, variables: Sequence[str] | None = None) -> xr.Dataset:
        """Read one Rainfields file.

        Parameters
        ----------
        path : Path
            A ``*.prcp-c10.nc`` or ``*.prcp-cscn.nc`` file.
        variables : sequence of str, optional
            Only ``precip_rate`` is available.

        Returns
        -------
        Dataset
            ``precip_rate`` (mm h-1, float32, ``(1, 512, 512)``): the accumulation divided by the
            period (``×6`` for 10 minutes, ``×10`` for 6). ``time`` is ``valid_time``, the end of
            the period. Attributes ``accutime`` (minutes), ``product`` (the file's title),
            ``station_id``, ``station_name``.

        Raises
        ------
        FormatError
            Not a Rainfields file, truncated, or missing time/grid information.
        VariableNotFoundError
            ``variables`` names something other than ``precip_rate``.
        """
        path = Path(path)
        names = check_variables(path, variables, ("precip_rate",))
        import netCDF4

        try:
            nc = netCDF4.Dataset(path, "r")
        except OSError as err:
            raise FormatError(path, f"not a readable netCDF file (truncated?): {err}") from err
        with nc:
            try:
                pvar = nc.variables["precipitation"]
                units = str(getattr(pvar, "units", ""))
                # netCDF4 applies scale_factor/add_offset and masks _FillValue: masked = no data.
                values = np.ma.filled(pvar[:].astype("float64"), np.nan)
                # Read as CF cell centres. prcp-c10 is symmetric about the radar (±127.75 km, with
                # bounds); prcp-cscn runs -128..127.5 km, i.e. half a cell off-centre, which suggests
                # corner coordinates, but the file does not say so: the CF reading is kept (at most
                # half a 0.5 km cell, 250 m, of uncertainty).
                x = _km_or_m(path, nc.variables["x"])
                y = _km_or_m(path, nc.variables["y"])
                mapping = nc.variables[pvar.grid_mapping]
                crs = crs_from_cf({k: mapping.getncattr(k) for k in mapping.ncattrs()})
                valid = _epoch_seconds(path, nc.variables["valid_time"])
                start = _epoch_seconds(path, nc.variables["start_time"]) if "start_time" in nc.variables else None
                attrs = {
                    k: nc.getncattr(k) for k in ("title", "station_id", "station_name", "source") if k in nc.ncattrs()
                }
            except (KeyError, AttributeError) as err:
                raise FormatError(path, f"not a Rainfields radar file: missing {err}") from err
            except CRSError as err:
                raise FormatError(path, f"bad grid mapping: {err}") from err
            except (OSError, RuntimeError) as err:
                raise FormatError(path, f"cannot read (truncated or corrupt?): {err}") from err

        if values.shape != (y.size, x.size):
            raise FormatError(path, f"precipitation is {values.shape}, expected (y, x) = {(y.size, x.size)}")
        if y.size > 1 and y[0] < y[-1]:
            # Keep the contract's north-to-south rows for any file written south-up.
            values, y = values[::-1], y[::-1]
        accutime = None if start is None else (valid - start) / np.timedelta64(1, "m")
        if units in _AMOUNT_UNITS:
            if accutime is None or accutime <= 0:
                raise FormatError(path, f"accumulation in {units} but no positive start_time..valid_time period")
            rate = accumulation_to_rate(values, accutime)
        elif units in _RATE_UNITS:
            rate = values.astype("float32")
        else:
            raise FormatError(
                path, f"precipitation has units {units!r}; expected one of {', '.join(_AMOUNT_UNITS + _RATE_UNITS)}"
            )
        return build_radar_dataset(
            path,
            {n: {"precip_rate": rate}[n] for n in names},
            time=valid,
            crs=crs,
            x=x,
            y=y,
            attrs={
                "institution": "Commonwealth of Australia, Bureau of Meteorology",
                "product": attrs.get("title", "Rainfields precipitation"),
                "accutime": None if accutime is None else float(accutime),
                "station_id": None if "station_id" not in attrs else int(attrs["station_id"]),
                "station_name": None if "station_name" not in attrs else str(attrs["station_name"]),
            },
        )
