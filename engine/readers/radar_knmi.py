"""KNMI radar precipitation composites in the KNMI HDF5 layout (``RAD_NL25_RAP_5min_*.h5``).

Not ODIM: the image lives in ``image1/image_data`` (uint16 precipitation in 0.01 mm, 65535 = no
data), its calibration in ``image1/calibration`` (``GEO=0.01*PV+0.0``), the grid in the
``geographic`` group (pixel offsets and sizes in km) and the projection as a proj4 string in
``geographic/map_projection``; the accumulation period is bounded by
``overview.product_datetime_start``/``_end``.

Public API: ``KnmiHdf5Reader`` (registered as ``knmi_hdf5``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import h5py
import numpy as np
import xarray as xr
from pyproj import CRS
from pyproj.exceptions import CRSError

from engine.errors import FormatError
from engine.readers.base import has_suffix, readers
from engine.readers.radar_common import (
    accumulation_to_rate,
    build_radar_dataset,
    check_variables,
    is_hdf5,
    utc_datetime64,
)

_CALIBRATION_RE = re.compile(r"GEO\s*=\s*([-+0-9.eE]+)\s*\*\s*PV\s*([-+]\s*[0-9.eE]+)?")


def _attr(group: h5py.Group | h5py.Dataset, name: str) -> object:
    """An attribute as a Python scalar/str (KNMI stores 1-element arrays and byte strings)."""
    value = group.attrs[name]
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, bytes | np.bytes_):
        value = value.decode("ascii", errors="replace")
    return value


def _attr_number(path: Path, group: h5py.Group | h5py.Dataset, name: str) -> int | float | str | np.integer | np.floating:
    """A numeric attribute (:func:`_attr`), ready for ``int``/``float``; FormatError if it is not one."""
    value = _attr(group, name)
    if not isinstance(value, int | float | str | np.integer | np.floating):
        raise FormatError(path, f"attribute {name} is {value!r}, not a number")
    return value


def _knmi_time(path: Path, stamp: str) -> np.datetime64:
    # "26-AUG-2010;00:00:00.000"
    try:
        return utc_datetime64(datetime.strptime(stamp.strip(), "%d-%b-%Y;%H:%M:%S.%f"))
    except ValueError as err:
        raise FormatError(path, f"bad KNMI time stamp {stamp!r}: {err}") from err


def knmi_crs(proj4: str, pixel_unit: str) -> tuple[CRS, float]:
    """The grid's CRS in metres and the factor from the file's pixel unit to metres.

    KNMI writes the ellipsoid in kilometres (``+a=6378.137 +b=6356.752``) so that the grid,
    given in km, comes out in km. Older files carry a broken string (``... +x_0=0 y_0=0``, a
    missing ``+``), which pysteps repairs the same way. Both are rewritten here to metres so
    the Dataset's ``x``/``y`` follow the data contract.
    """
    params: dict[str, str] = {}
    for token in proj4.replace("+", " +").split():
        key, _, value = token.lstrip("+").partition("=")
        params[key] = value
    scale = {"KM": 1000.0, "M": 1.0}.get(pixel_unit.upper())
    if scale is None:
        raise ValueError(f"unsupported pixel unit {pixel_unit!r} (expected KM or M)")
    for key in ("a", "b", "R"):
        # An ellipsoid axis below 10 000 can only be in km.
        if key in params and float(params[key]) < 1.0e4:
            params[key] = repr(float(params[key]) * 1000.0)
    for key in ("x_0", "y_0"):
        if key in params:
            params[key] = repr(float(params[key]) * scale)
    params.pop("units", None)
    params["units"] = "m"
    return CRS.from_proj4(" ".join(f"+{k}={v}" if v else f"+{k}" for k, v in params.items())), scale


@readers.register("knmi_hdf5")
class KnmiHdf5Reader:
    """KNMI radar accumulation composite (HDF5) → ``precip_rate`` (mm h-1).

    Detection: ``.h5``/``.hdf5`` suffix, the HDF5 signature, and KNMI's ``image1/image_data``
    and ``geographic/map_projection`` objects.
    """

    suffixes: ClassVar[tuple[str, ...]] = (".h5", ".hdf5", ".hdf")
    description: ClassVar[str] = "KNMI radar precipitation composite (KNMI HDF5, polar stereographic 1 km)"

    def can_open(self, path: Path) -> bool:
        """Suffix, HDF5 signature and KNMI's group layout; never raises."""
        if not (has_suffix(path, self.suffixes) and is_hdf5(path)):
            return False
        try:
            with h5py.File(path, "r") as f:
                return "image1/image_data" in f and "geographic/map_projection" in f and "overview" in f
        except Exception:  # noqa: BLE001 - can_open must never raise; h5py fails in many ways on bad files
            return False

    def open(self, path: Path, *, variables: Sequence[str] | None = None) -> xr.Dataset:
        """Read one KNMI composite.

        Parameters
        ----------
        path : Path
            A KNMI precipitation accumulation HDF5 file (``ACCUMULATED_PRECIPITATION_[MM]``).
        variables : sequence of str, optional
            Only ``precip_rate`` is available.

        Returns
        -------
        Dataset
            ``precip_rate`` (mm h-1, float32, ``(1, 765, 700)`` for NL25): the accumulation
            divided by its period (``×12`` for 5 minutes). ``time`` is the end of the period.
            Attributes ``accutime`` (minutes), ``product``, ``institution``, ``radars``.

        Raises
        ------
        FormatError
            Not a KNMI composite, truncated, an image that is not an accumulation, or bad
            georeferencing.
        VariableNotFoundError
            ``variables`` names something other than ``precip_rate``.
        """
        path = Path(path)
        names = check_variables(path, variables, ("precip_rate",))
        try:
            f = h5py.File(path, "r")
        except OSError as err:
            raise FormatError(path, f"not a readable HDF5 file (truncated?): {err}") from err
        with f:
            try:
                image = f["image1"]
                parameter = str(_attr(image, "image_geo_parameter"))
                if "PRECIPITATION" not in parameter.upper():
                    raise FormatError(path, f"image1 holds {parameter}, expected ACCUMULATED_PRECIPITATION_[MM]")
                raw = image["image_data"][()]
                cal = image["calibration"]
                formula = str(_attr(cal, "calibration_formulas"))
                missing = {
                    int(_attr_number(path, cal, k))
                    for k in ("calibration_missing_data", "calibration_out_of_image")
                    if k in cal.attrs
                }
                geo = f["geographic"]
                proj4 = str(_attr(geo["map_projection"], "projection_proj4_params"))
                pixel_unit = str(_attr(geo, "geo_dim_pixel")).split(",")[0]
                dx = float(_attr_number(path, geo, "geo_pixel_size_x"))
                dy = float(_attr_number(path, geo, "geo_pixel_size_y"))
                col0 = float(_attr_number(path, geo, "geo_column_offset"))
                row0 = float(_attr_number(path, geo, "geo_row_offset"))
                nx = int(_attr_number(path, geo, "geo_number_columns"))
                ny = int(_attr_number(path, geo, "geo_number_rows"))
                overview = f["overview"]
                start = _knmi_time(path, str(np.atleast_1d(overview.attrs["product_datetime_start"])[0].decode()))
                end = _knmi_time(path, str(np.atleast_1d(overview.attrs["product_datetime_end"])[0].decode()))
                product = str(_attr(image, "image_product_name")) if "image_product_name" in image.attrs else ""
                radars = [
                    str(_attr(f[g], "radar_name")) for g in f if g.startswith("radar") and "radar_name" in f[g].attrs
                ]
            except KeyError as err:
                raise FormatError(path, f"not a KNMI composite: missing {err}") from err
            except OSError as err:
                raise FormatError(path, f"cannot read (truncated or corrupt?): {err}") from err

        m = _CALIBRATION_RE.search(formula)
        if not m:
            raise FormatError(path, f"cannot parse calibration formula {formula!r} (expected GEO=gain*PV+offset)")
        gain = float(m.group(1))
        offset = float(m.group(2).replace(" ", "")) if m.group(2) else 0.0
        if raw.shape != (ny, nx):
            raise FormatError(path, f"image is {raw.shape}, geographic group says {(ny, nx)}")
        accutime = (end - start) / np.timedelta64(1, "m")
        if accutime <= 0:
            raise FormatError(path, f"accumulation period {start} to {end} is not positive")
        try:
            crs, to_m = knmi_crs(proj4, pixel_unit)
        except (ValueError, CRSError) as err:
            raise FormatError(path, f"bad projection {proj4!r}: {err}") from err

        if raw.dtype.kind != "u" or raw.dtype.itemsize > 2:
            raise FormatError(path, f"image1/image_data is {raw.dtype}, expected 8- or 16-bit unsigned integers")
        # Decode through a table over every code (mm over the period, then mm h-1): one gather
        # per pixel instead of several float passes.
        table = np.arange(2 ** (8 * raw.dtype.itemsize)) * gain + offset
        table[[m for m in missing if 0 <= m < table.size]] = np.nan
        rate = accumulation_to_rate(table, accutime)[raw]
        # Pixel (row, col) covers [offset + index, offset + index + 1) pixel sizes from the
        # projection origin; dy < 0 because rows run from north to south.
        x = (col0 + np.arange(nx) + 0.5) * dx * to_m
        y = (row0 + np.arange(ny) + 0.5) * dy * to_m
        fields = {"precip_rate": rate}
        return build_radar_dataset(
            path,
            {n: fields[n] for n in names},
            time=end,
            crs=crs,
            x=x,
            y=y,
            attrs={
                "institution": "KNMI - Royal Netherlands Meteorological Institute",
                "product": product,
                "accutime": float(accutime),
                "radars": ", ".join(radars),
            },
        )
