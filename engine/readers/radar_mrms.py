"""NOAA MRMS (Multi-Radar/Multi-Sensor) precipitation rate in GRIB2.

MRMS ``PrecipRate`` files hold one GRIB2 message (local discipline 209, category 6, number 1)
on a regular 0.01 deg latitude-longitude grid of 7000 x 3500 points over the contiguous US,
first row north, longitudes 230-300 E. Values are mm h-1; ``-3`` means no radar coverage and
``-999`` missing (both become NaN), ``0`` no precipitation.

Reading is built for speed because a frame is 24.5 million points:

- eccodes (the maintained GRIB library) parses the message and gives every grid and packing
  parameter. For the PNG packing MRMS uses (template 5.41), the 16-bit PNG in section 7 is
  decoded by libpng (through OpenCV when installed, else Pillow) straight to ``uint16`` and
  turned into float32 through a 65536-entry lookup table built from the packing parameters,
  ``(R + X 2^E) 10^-D`` evaluated in double precision like eccodes does. That avoids eccodes'
  float64 output (196 MB per frame) and the conversions after it; the result is identical to
  eccodes' values rounded to float32. Other packings, or a bitmap, fall back to
  ``eccodes.codes_get_values``.
- A sub-window (``extent``) is cut from the decoded integers before conversion, so only the
  window is ever converted to floats.
- ``lat``/``lon`` are 2-D read-only broadcast views of the 1-D axes (no 2 x 98 MB arrays) and the
  CRS is geographic, so nothing has to be projected.

Public API: ``MrmsGrib2Reader`` (registered as ``mrms_grib2``).
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import numpy as np
import xarray as xr
from PIL import Image, UnidentifiedImageError
from pyproj import CRS

from engine.errors import CoordError, FormatError, MissingDependencyError
from engine.lexicon import attrs_for
from engine.readers.base import has_suffix, read_head, readers
from engine.readers.radar_common import check_variables, utc_datetime64

# pyproj is imported above on purpose before eccodes: the eccodes wheels bundle their own libproj
# (via eckitlib), and loading that one first breaks pyproj's PROJ database and crashes at exit.
try:
    import eccodes
except (ImportError, RuntimeError):  # RuntimeError: the Python bindings exist but libeccodes does not
    eccodes = None
cv2: ModuleType | None
try:  # optional (extra "radar"): the faster PNG decoder; Pillow is the fallback
    import cv2
except ImportError:
    cv2 = None

#: GRIB2 discipline number NOAA uses for MRMS products (a local-use discipline).
MRMS_DISCIPLINE = 209
#: (parameterCategory, parameterNumber) of the products read: PrecipRate (mm h-1).
MRMS_PRODUCTS: dict[tuple[int, int], str] = {(6, 1): "PrecipRate"}

# Earth shapes of GRIB2 code table 3.2 with fixed sizes (a, b in metres).
_EARTH_SHAPES: dict[int, tuple[float, float]] = {
    0: (6367470.0, 6367470.0),
    2: (6378160.0, 6356775.0),
    4: (6378137.0, 6356752.314140356),
    5: (6378137.0, 6356752.314245179),
    6: (6371229.0, 6371229.0),
    8: (6371200.0, 6371200.0),
}


def _grib_earth(handle: object) -> CRS:
    """Geographic CRS on the earth shape the message declares (code table 3.2)."""
    shape = int(eccodes.codes_get(handle, "shapeOfTheEarth"))
    if shape in _EARTH_SHAPES:
        a, b = _EARTH_SHAPES[shape]
    else:
        # 1, 3, 7: sizes given in the message; eccodes resolves them (km for 3) into these keys.
        if int(eccodes.codes_get(handle, "earthIsOblate")):
            a = float(eccodes.codes_get(handle, "earthMajorAxisInMetres"))
            b = float(eccodes.codes_get(handle, "earthMinorAxisInMetres"))
        else:
            a = b = float(eccodes.codes_get(handle, "radiusInMetres"))
    return CRS.from_proj4(f"+proj=longlat +a={a} +b={b} +no_defs")


def _window(axis: np.ndarray, lo: float, hi: float, name: str, path: Path) -> slice:
    """Index slice of the points of a monotonic ``axis`` within ``[lo, hi]``."""
    if not lo < hi:
        raise CoordError(f"{path}: extent {name} range must be increasing; got {lo}, {hi}")
    inside = np.flatnonzero((axis >= lo) & (axis <= hi))
    if inside.size == 0:
        raise CoordError(
            f"{path}: extent {name} {lo}..{hi} does not overlap the grid ({axis.min():.3f}..{axis.max():.3f})"
        )
    return slice(int(inside[0]), int(inside[-1]) + 1)


@readers.register("mrms_grib2")
class MrmsGrib2Reader:
    """NOAA MRMS PrecipRate GRIB2 (optionally gzipped) → ``precip_rate`` (mm h-1).

    Detection: ``.grib2``/``.grib2.gz`` suffix, the ``GRIB`` signature, edition 2 and the MRMS
    discipline 209 in section 0.
    """

    suffixes: ClassVar[tuple[str, ...]] = (".grib2", ".grib2.gz", ".grb2")
    description: ClassVar[str] = "NOAA MRMS precipitation rate (GRIB2, 0.01 deg CONUS)"

    def can_open(self, path: Path) -> bool:
        """Suffix, ``GRIB`` signature, edition 2 and discipline 209; never raises."""
        if not has_suffix(path, self.suffixes):
            return False
        head = read_head(path, 16)
        return len(head) >= 16 and head[:4] == b"GRIB" and head[7] == 2 and head[6] == MRMS_DISCIPLINE

    def open(
        self,
        path: Path,
        *,
        variables: Sequence[str] | None = None,
        extent: Sequence[float] | None = None,
    ) -> xr.Dataset:
        """Read one MRMS frame, optionally only a window of it.

        Parameters
        ----------
        path : Path
            A ``PrecipRate_00.00_YYYYMMDD-HHMMSS.grib2`` file (or ``.grib2.gz``).
        variables : sequence of str, optional
            Only ``precip_rate`` is available.
        extent : sequence of 4 float, optional
            ``(lon_min, lon_max, lat_min, lat_max)`` in degrees (longitudes east, -180..180 or
            0..360); grid points inside it are returned. The whole grid when omitted.

        Returns
        -------
        Dataset
            ``precip_rate`` (mm h-1, float32, dims ``(time, y, x)``, ``(1, 3500, 7000)`` for the
            whole grid, rows north to south), ``x`` = longitude (degrees east, -180..180),
            ``y`` = latitude (degrees north, descending), 2-D ``lat``/``lon`` (read-only broadcast
            views), a CF ``crs`` (geographic, on the GRIB earth shape). ``time`` is the valid
            time (UTC). Instantaneous rates: no ``accutime``.

        Raises
        ------
        FormatError
            Not MRMS GRIB2, a product other than PrecipRate, truncated, or an extent outside
            the grid.
        VariableNotFoundError
            ``variables`` names something other than ``precip_rate``.
        CoordError
            ``extent`` is malformed or does not overlap the grid.
        MissingDependencyError
            eccodes is not installed (``pip install 'meteolens[grib]'``).
        """
        path = Path(path)
        names = check_variables(path, variables, ("precip_rate",))
        if eccodes is None:
            raise MissingDependencyError("eccodes", "grib", "MRMS GRIB2 files")
        if extent is not None:
            try:
                extent = [float(v) for v in extent]
            except (TypeError, ValueError) as err:
                raise CoordError(
                    f"{path}: extent must be 4 numbers (lon_min, lon_max, lat_min, lat_max); got {extent!r}"
                ) from err
            if len(extent) != 4:
                raise CoordError(f"{path}: extent must be (lon_min, lon_max, lat_min, lat_max); got {extent}")
        try:
            if path.name.lower().endswith(".gz"):
                with gzip.open(path, "rb") as f:
                    message = f.read()
            else:
                message = path.read_bytes()
        except (OSError, EOFError, zlib.error) as err:
            raise FormatError(path, f"cannot read/decompress (truncated or corrupt?): {err}") from err
        if message[:4] != b"GRIB" or len(message) < 16 or message[7] != 2:
            raise FormatError(path, "not a GRIB2 message")
        total = int.from_bytes(message[8:16], "big")
        if len(message) < total or message[total - 4 : total] != b"7777":
            raise FormatError(
                path, f"GRIB2 message is {total} bytes but the file has {len(message)} or no end marker (truncated?)"
            )
        try:
            handle = eccodes.codes_new_from_message(message[:total])
        except eccodes.CodesInternalError as err:
            raise FormatError(path, f"eccodes cannot parse the message: {err}") from err
        try:
            return self._read(path, handle, message, names, extent)
        except eccodes.CodesInternalError as err:
            raise FormatError(path, f"eccodes: {err}") from err
        finally:
            eccodes.codes_release(handle)

    def _read(
        self, path: Path, handle: object, message: bytes, names: list[str], extent: list[float] | None
    ) -> xr.Dataset:
        get = eccodes.codes_get
        key = (int(get(handle, "parameterCategory")), int(get(handle, "parameterNumber")))
        if int(get(handle, "discipline")) != MRMS_DISCIPLINE or key not in MRMS_PRODUCTS:
            raise FormatError(
                path,
                f"GRIB2 parameter (discipline, category, number) = ({get(handle, 'discipline')}, {key[0]}, {key[1]}) is not MRMS PrecipRate (209, 6, 1)",
            )
        if get(handle, "gridType") != "regular_ll":
            raise FormatError(path, f"grid type {get(handle, 'gridType')} is not regular_ll")
        ni, nj = int(get(handle, "Ni")), int(get(handle, "Nj"))
        lat_first = float(get(handle, "latitudeOfFirstGridPointInDegrees"))
        lat_last = float(get(handle, "latitudeOfLastGridPointInDegrees"))
        lon_first = float(get(handle, "longitudeOfFirstGridPointInDegrees"))
        lon_last = float(get(handle, "longitudeOfLastGridPointInDegrees"))
        if int(get(handle, "iScansNegatively")) or int(get(handle, "jPointsAreConsecutive")):
            raise FormatError(path, "only west-to-east, row-major scanning is supported")
        south_up = bool(int(get(handle, "jScansPositively")))
        # linspace between the stated first/last points, as pysteps does: no drift from
        # accumulating a rounded increment over 7000 points.
        lats = np.linspace(lat_first, lat_last, nj)
        lons = np.linspace(lon_first, lon_last, ni)
        lons = np.where(lons >= 180.0, lons - 360.0, lons)
        if south_up:
            lats = lats[::-1]

        rows, cols = slice(0, nj), slice(0, ni)
        if extent is not None:
            lon_min, lon_max = (v - 360.0 if v >= 180.0 else v for v in extent[:2])
            rows = _window(lats, extent[2], extent[3], "latitude", path)
            cols = _window(lons, lon_min, lon_max, "longitude", path)

        codes = self._png_codes(path, handle, message, nj, ni)
        if codes is not None:
            if south_up:
                codes = codes[::-1]
            rate = self._lookup_table(handle)[codes[rows, cols]]
        else:
            values = eccodes.codes_get_values(handle).reshape(nj, ni)
            if south_up:
                values = values[::-1]
            rate = values[rows, cols].astype("float32")
            rate[rate < 0] = np.nan  # -3 no coverage, -999 missing

        time = self._valid_time(handle)
        lat1 = lats[rows].astype("float32")
        lon1 = lons[cols].astype("float32")
        shape = (lat1.size, lon1.size)
        crs = _grib_earth(handle)
        cf = {k: v for k, v in crs.to_cf().items() if v is not None}
        cf.setdefault("crs_wkt", crs.to_wkt())
        ds = xr.Dataset(
            {"crs": xr.DataArray(np.int32(0), attrs=cf)},
            coords={
                "time": ("time", np.array([time], dtype="datetime64[ns]"), {"standard_name": "time", "axis": "T"}),
                "y": ("y", lats[rows], {"units": "degrees_north", "standard_name": "latitude"}),
                "x": ("x", lons[cols], {"units": "degrees_east", "standard_name": "longitude"}),
                # Read-only views: 2-D coordinates for the data contract without 2 x 98 MB copies.
                "lat": (
                    ("y", "x"),
                    np.broadcast_to(lat1[:, None], shape),
                    {"units": "degrees_north", "standard_name": "latitude"},
                ),
                "lon": (
                    ("y", "x"),
                    np.broadcast_to(lon1[None, :], shape),
                    {"units": "degrees_east", "standard_name": "longitude"},
                ),
            },
        )
        if "precip_rate" in names:
            ds["precip_rate"] = xr.DataArray(
                rate[np.newaxis], dims=("time", "y", "x"), attrs=attrs_for("precip_rate", grid_mapping="crs")
            )
        ds.attrs.update(
            institution="NOAA National Severe Storms Laboratory",
            product=MRMS_PRODUCTS[(int(get(handle, "parameterCategory")), int(get(handle, "parameterNumber")))],
            source_files=str(path),
            y_order="north_to_south",
        )
        return ds

    @staticmethod
    def _valid_time(handle: object) -> np.datetime64:
        get = eccodes.codes_get
        year, month, day, hour, minute, second = (int(get(handle, k)) for k in ("year", "month", "day", "hour", "minute", "second"))
        reference = datetime(year, month, day, hour, minute, second)
        # Valid time = reference time + end of the forecast step (0 for MRMS analyses).
        eccodes.codes_set(handle, "stepUnits", "s")
        step = int(eccodes.codes_get_long(handle, "endStep"))
        return utc_datetime64(reference + timedelta(seconds=step))

    @staticmethod
    def _lookup_table(handle: object) -> np.ndarray:
        """float32 value of each 16-bit code under simple packing; NaN for MRMS' negative flags."""
        get = eccodes.codes_get
        ref = float(get(handle, "referenceValue"))
        e = int(get(handle, "binaryScaleFactor"))
        d = int(get(handle, "decimalScaleFactor"))
        bits = int(get(handle, "bitsPerValue"))
        table = (ref + np.arange(2**bits, dtype="float64") * 2.0**e) * 10.0 ** (-d)
        table[table < 0] = np.nan  # -3 no coverage, -999 missing
        return table.astype("float32")

    @staticmethod
    def _png_codes(path: Path, handle: object, message: bytes, nj: int, ni: int) -> np.ndarray | None:
        """The packed integers of a PNG-packed message as a ``(nj, ni)`` array, else ``None``."""
        get = eccodes.codes_get
        if get(handle, "packingType") != "grid_png" or int(get(handle, "bitMapIndicator")) != 255:
            return None
        if int(get(handle, "bitsPerValue")) not in (8, 16):
            return None  # 24/32-bit PNG packing stores RGB(A) bytes: leave those to eccodes
        start = int(get(handle, "offsetSection7")) + 5  # skip the section's length and number
        end = int(get(handle, "offsetSection7")) + int(get(handle, "section7Length"))
        png = message[start:end]
        if not png.startswith(b"\x89PNG\r\n\x1a\n"):
            raise FormatError(path, "section 7 of a PNG-packed message does not hold a PNG (corrupt?)")
        if cv2 is not None:
            # OpenCV decodes straight into a numpy array (Pillow goes through an extra bytes copy).
            codes = cv2.imdecode(np.frombuffer(png, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
            if codes is None:
                raise FormatError(path, "cannot decode the PNG-packed data (truncated or corrupt?)")
        else:
            try:
                with Image.open(io.BytesIO(png)) as img:
                    codes = np.asarray(img)
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
                raise FormatError(path, f"cannot decode the PNG-packed data (truncated or corrupt?): {err}") from err
        if codes.shape != (nj, ni):
            raise FormatError(path, f"PNG data is {codes.shape}, grid is {(nj, ni)}")
        return codes.astype(np.uint16, copy=False)
