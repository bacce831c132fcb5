"""Shared pieces of the radar readers: the canonical radar Dataset, Z-R conversion, time stamps.

Every radar reader (:mod:`engine.readers.radar_mch`, ``radar_knmi``, ``radar_bom``, ``radar_fmi``,
``radar_odim``, ``radar_mrms``) returns the same shape of Dataset, built here by
:func:`build_radar_dataset`:

- ``precip_rate`` (mm h-1, float32, dims ``(time, y, x)``), ``reflectivity`` (dBZ, float32) where
  that is the file's native quantity;
- NaN marks *no data* (outside radar coverage, or flagged missing); ``0`` mm h-1 marks *no rain*
  (the radar looked and saw nothing above its detection threshold);
- ``time``: the valid time (the end of the accumulation period for accumulated products), UTC,
  ``datetime64[ns]``, one entry;
- ``x``/``y`` projection coordinates (metres), rows north to south as stored in the files,
  2-D ``lat``/``lon`` (WGS84) and a CF ``crs`` variable (:func:`engine.coords.attach_projection`);
- attributes ``institution``, ``product``, ``accutime`` (minutes, accumulated products),
  ``zr_a``/``zr_b`` (when a Z-R relation was applied), ``source_files``.

Public API: ``MARSHALL_PALMER``, ``dbz_to_rate``, ``rate_to_dbz``, ``accumulation_to_rate``,
``build_radar_dataset``, ``check_variables``, ``check_zr``, ``crs_from_cf``, ``utc_datetime64``, ``time_from_name``,
``is_hdf5``, ``HDF5_MAGIC``, ``WGS84``.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr
from pyproj import CRS

from engine.coords import attach_projection
from engine.errors import FormatError, ReaderError, VariableNotFoundError
from engine.lexicon import attrs_for

#: Z-R coefficients ``(a, b)`` of ``Z = a R**b`` (Z in mm6 m-3, R in mm h-1) after Marshall and
#: Palmer (1948) as usually quoted (Marshall, Langille and Palmer 1955): the default wherever a
#: provider does not state its own relation.
MARSHALL_PALMER: tuple[float, float] = (200.0, 1.6)

#: Datum of the 2-D ``lat``/``lon`` coordinates of every radar Dataset.
WGS84 = CRS.from_epsg(4326)

#: The 8-byte signature at the start of every HDF5 file (netCDF-4 files included).
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def dbz_to_rate(dbz: np.ndarray, a: float = MARSHALL_PALMER[0], b: float = MARSHALL_PALMER[1]) -> np.ndarray:
    r"""Rain rate from reflectivity by a power-law Z-R relation.

    .. math:: Z = 10^{\mathrm{dBZ}/10}, \qquad R = (Z / a)^{1/b}

    Parameters
    ----------
    dbz : ndarray
        Reflectivity (dBZ), any shape; NaN stays NaN.
    a, b : float
        Coefficients of :math:`Z = a R^b` (Z in mm6 m-3, R in mm h-1). The default is
        Marshall-Palmer, ``a=200, b=1.6``. Providers use their own: FMI ``a=223, b=1.53``,
        MeteoSwiss ``a=316, b=1.5`` (the values pysteps' importers report for those sources).

    Returns
    -------
    ndarray
        Rain rate (mm h-1), float32, same shape as ``dbz``.

    Notes
    -----
    Which relation each reader uses:

    - FMI PGM (reflectivity native): ``Z = 223 R^1.53``, FMI's relation (the ``zr_a``/``zr_b``
      pysteps' ``import_fmi_pgm`` reports); overridable.
    - ODIM_H5 DBZH-only files: the file's ``how/zr_a``, ``how/zr_b`` when present, else
      Marshall-Palmer; overridable.
    - MeteoSwiss AQC/CPC: the DN scale itself is defined through ``Z = 316 R^1.5``; the reader
      decodes that table (no separate conversion).
    - KNMI, BoM, MRMS, ODIM RATE/ACRR: the files hold precipitation already; no Z-R is applied.

    References
    ----------
    Marshall, J. S. and W. M. Palmer, 1948: The distribution of raindrops with size.
    J. Meteor., 5, 165-166.
    """
    if a <= 0 or b <= 0:
        raise ValueError(f"Z-R coefficients must be positive; got a={a}, b={b}")
    dbz64 = np.asarray(dbz, dtype="float64")
    # R = (10**(dBZ/10) / a)**(1/b) written as one exponential: fewer temporaries, same numbers.
    rate = np.power(10.0, (dbz64 / 10.0 - np.log10(a)) / b)
    return rate.astype("float32")


def rate_to_dbz(rate: np.ndarray, a: float = MARSHALL_PALMER[0], b: float = MARSHALL_PALMER[1]) -> np.ndarray:
    r"""Reflectivity from rain rate, the inverse of :func:`dbz_to_rate`.

    .. math:: \mathrm{dBZ} = 10 \log_{10}(a R^b)

    Parameters
    ----------
    rate : ndarray
        Rain rate (mm h-1), any shape, strictly positive where finite (0 gives ``-inf``).
    a, b : float
        Coefficients of :math:`Z = a R^b`.

    Returns
    -------
    ndarray
        Reflectivity (dBZ), float32.
    """
    with np.errstate(divide="ignore"):
        return (10.0 * (np.log10(a) + b * np.log10(np.asarray(rate, dtype="float64")))).astype("float32")


def accumulation_to_rate(accumulation: np.ndarray, accutime_min: float) -> np.ndarray:
    r"""Mean rain rate (mm h-1) from an accumulation (mm) over ``accutime_min`` minutes.

    .. math:: R = A \cdot 60 / \Delta t_{\min}

    so a 5-minute accumulation is multiplied by 12.

    Parameters
    ----------
    accumulation : ndarray
        Precipitation amount (mm, i.e. kg m-2), any shape.
    accutime_min : float
        Length of the accumulation period in minutes (> 0).

    Returns
    -------
    ndarray
        Rain rate (mm h-1), float32.
    """
    if not accutime_min > 0:
        raise ValueError(f"accumulation period must be positive minutes; got {accutime_min}")
    return (np.asarray(accumulation, dtype="float64") * (60.0 / accutime_min)).astype("float32")


def utc_datetime64(dt: datetime) -> np.datetime64:
    """A timezone-aware or naive-UTC :class:`datetime` as ``datetime64[ns]`` (naive, UTC)."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(dt, "ns")


def time_from_name(path: Path, pattern: str, fmt: str) -> np.datetime64:
    """Time stamp encoded in a file name.

    Parameters
    ----------
    path : Path
        The file; only its name is used.
    pattern : str
        Regular expression with one group capturing the time stamp.
    fmt : str
        :meth:`datetime.strptime` format of that group (UTC).

    Raises
    ------
    FormatError
        If the name does not carry a time stamp of that form.
    """
    m = re.search(pattern, path.name)
    if not m:
        raise FormatError(path, f"file name has no time stamp matching {pattern!r}")
    try:
        return utc_datetime64(datetime.strptime(m.group(1), fmt))
    except ValueError as err:
        raise FormatError(path, f"bad time stamp {m.group(1)!r} in file name: {err}") from err


def is_hdf5(path: Path) -> bool:
    """Whether ``path`` starts with the HDF5 signature (never raises)."""
    try:
        with open(path, "rb") as f:
            return f.read(8) == HDF5_MAGIC
    except OSError:
        return False


def check_zr(path: Path, a: float, b: float) -> None:
    """Validate Z-R coefficients given to a reader.

    Raises
    ------
    ReaderError
        If ``a`` or ``b`` is not a finite positive number.
    """
    if not (np.isfinite(a) and np.isfinite(b) and a > 0 and b > 0):
        raise ReaderError(path, f"zr_a and zr_b must be positive numbers; got zr_a={a}, zr_b={b}")


def check_variables(path: Path, variables: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """The canonical variables to return: ``variables`` (validated) or everything ``available``.

    Raises
    ------
    VariableNotFoundError
        If a requested variable is not provided for this file.
    """
    if variables is None:
        return list(available)
    missing = [v for v in variables if v not in available]
    if missing:
        raise VariableNotFoundError(path, f"no variable {', '.join(missing)}; has {', '.join(available)}")
    return list(dict.fromkeys(variables))


def crs_from_cf(attrs: Mapping[str, object]) -> CRS:
    """CRS from CF grid-mapping attributes, cached.

    ``pyproj.CRS.from_cf`` searches the PROJ database for a matching datum, which costs about
    half a second, far more than reading a radar frame; every frame of a sequence carries the
    same attributes, so the result is cached on them.
    """
    key = json.dumps({k: np.asarray(v).tolist() for k, v in attrs.items()}, sort_keys=True)
    return _crs_from_cf_json(key)


@functools.lru_cache(maxsize=32)
def _crs_from_cf_json(key: str) -> CRS:
    return CRS.from_cf(json.loads(key))


@functools.lru_cache(maxsize=32)
def _grid_template(crs_wkt: str, x_bytes: bytes, y_bytes: bytes) -> xr.Dataset:
    # Radar sequences are long series of frames on one grid; computing 2-D lat/lon with pyproj for
    # every frame would cost more than decoding the frame itself, so the georeferenced (empty)
    # Dataset is built once per grid and its coordinate arrays are shared read-only.
    x = np.frombuffer(x_bytes, dtype="float64")
    y = np.frombuffer(y_bytes, dtype="float64")
    with warnings.catch_warnings():
        # pyproj warns that CF has no parameter for the oblique Mercator's skew angle (Swiss LV03);
        # nothing is lost because attach_projection also stores the full ``crs_wkt``.
        warnings.filterwarnings("ignore", message="angle from rectified to skew grid", category=UserWarning)
        crs = CRS.from_wkt(crs_wkt)
        # lat/lon in WGS 84 (not CH1903 etc.), as stations and maps use.
        template = attach_projection(xr.Dataset(), crs, x=x, y=y)
    for name in ("x", "y", "lat", "lon"):
        template[name].values.flags.writeable = False
    return template


def build_radar_dataset(
    path: Path,
    fields: Mapping[str, np.ndarray],
    *,
    time: np.datetime64,
    crs: CRS | str,
    x: np.ndarray,
    y: np.ndarray,
    attrs: Mapping[str, object],
    field_attrs: Mapping[str, Mapping[str, object]] | None = None,
) -> xr.Dataset:
    """Assemble the canonical one-frame radar Dataset.

    Parameters
    ----------
    path : Path
        The source file (recorded in ``source_files``).
    fields : mapping of str to ndarray
        Canonical name → 2-D field ``(y, x)`` in canonical units (``precip_rate`` mm h-1,
        ``reflectivity`` dBZ); cast to float32.
    time : datetime64
        Valid time (end of the accumulation), UTC.
    crs : pyproj.CRS or str
        Projection of the grid.
    x, y : ndarray
        1-D cell-centre coordinates (metres; degrees for geographic grids), ``y`` in file row
        order (north to south for every format read here).
    attrs : mapping
        Dataset attributes (``institution``, ``product``, ``accutime``...).
    field_attrs : mapping, optional
        Extra attributes per variable (e.g. the Z-R relation used).

    Returns
    -------
    Dataset
        Variables with dims ``(time, y, x)`` plus ``lat``/``lon``/``crs`` as described in the
        module docstring.

    Raises
    ------
    FormatError
        If a field's shape does not match ``(len(y), len(x))``.
    """
    x = np.ascontiguousarray(x, dtype="float64")
    y = np.ascontiguousarray(y, dtype="float64")
    crs = CRS.from_user_input(crs)
    template = _grid_template(crs.to_wkt(), x.tobytes(), y.tobytes())
    data_vars: dict[str, xr.Variable] = {"crs": template["crs"].variable}
    for name, values in fields.items():
        if values.shape != (y.size, x.size):
            raise FormatError(
                path, f"{name} has shape {values.shape}, expected {(y.size, x.size)} from the georeferencing"
            )
        extra = dict((field_attrs or {}).get(name, {}))
        data_vars[name] = xr.Variable(
            ("time", "y", "x"),
            np.asarray(values, dtype="float32")[np.newaxis],
            attrs=attrs_for(name, grid_mapping="crs", **extra),
        )
    # One constructor call with the template's (shared, read-only) coordinate variables: adding
    # coordinates one by one re-aligns the indexes each time and costs more than the decoding.
    coords = {name: template[name].variable for name in ("x", "y", "lat", "lon")}
    coords["time"] = xr.Variable(
        "time", np.array([time], dtype="datetime64[ns]"), {"standard_name": "time", "axis": "T"}
    )
    ds = xr.Dataset(data_vars, coords=coords, attrs={k: v for k, v in attrs.items() if v is not None})
    ds.attrs["source_files"] = str(path)
    ds.attrs.setdefault("y_order", "north_to_south")
    return ds
