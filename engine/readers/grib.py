"""GRIB1/GRIB2 analyses and forecasts through cfgrib/ecCodes.

cfgrib splits a GRIB file into hypercubes (one per combination of level type, step type...);
:class:`GribReader` opens them all (:func:`cfgrib.open_datasets`), translates each field's
``shortName``/``typeOfLevel``/level into a canonical name of :mod:`engine.lexicon` (``z`` on
``isobaricInhPa`` 500 → ``z500``; ``2t`` → ``t2m``; ``prmsl``/``msl`` → ``msl``) and merges them.

Output layout (DESIGN.md data contract):

- analyses (every ``step`` zero): dims ``(time, [member,] lat, lon)``;
- forecasts (a ``step`` dim, or a non-zero step): dims ``(init_time, lead_time, [member,] lat, lon)``
  with a ``valid_time = init_time + lead_time`` coordinate;
- ensembles: cfgrib's ``number`` becomes ``member`` (a length-1 dim for a single perturbed or
  control member, so members of several files concatenate);
- ``lat``/``lon`` as in the file; ``attrs["lat_order"]`` says ``"descending"`` or ``"ascending"``.

Spectral fields (``gridType = "sh"``), which cfgrib cannot put on a grid, are synthesised onto a
regular equiangular latitude-longitude grid (poles included) with torch-harmonics' inverse
real spherical-harmonic transform: see :func:`spectral_to_grid`.

cfgrib writes ``.idx`` index files beside the data by default; the sample folder is read-only
and indexes of a file read once are not worth keeping, so this reader never writes them.

Public API: ``GribReader``, ``spectral_to_grid``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

# The eccodes wheels bundle their own libproj/libsqlite (through eckitlib); if they load first, pyproj
# later fails with "no database context specified" or crashes. Loading pyproj's libproj first avoids it.
import pyproj  # noqa: F401
import xarray as xr

from engine.errors import FormatError, MissingDependencyError
from engine.lexicon import level_name
from engine.readers._common import LAT_ATTRS, LON_ATTRS, canonical_da, check_readable, lat_order, select_variables
from engine.readers.base import has_suffix, read_head, readers

try:  # optional dependency (extra "grib"): fail on use, not on import
    import cfgrib
    import eccodes
except ImportError:  # pragma: no cover - exercised only without the extra
    cfgrib = None
    eccodes = None

#: ecCodes shortName → canonical base for fields on pressure levels (level in hPa appended).
PRESSURE_LEVEL_NAMES: dict[str, str] = {
    "z": "z", "gh": "gh", "t": "t", "u": "u", "v": "v", "q": "q", "r": "r", "vo": "vo",
}

#: ecCodes shortName → canonical name for single-level fields.
SINGLE_LEVEL_NAMES: dict[str, str] = {
    "2t": "t2m", "t2m": "t2m", "2d": "d2m", "d2m": "d2m", "2r": "rh2m",
    "10u": "u10", "u10": "u10", "10v": "v10", "v10": "v10",
    "msl": "msl", "prmsl": "msl", "sp": "sp", "tp": "tp", "10fg": "wind_gust", "gust": "wind_gust",
    "lsm": "land_sea_fraction", "orog": "orography",
}

_GRIB_SUFFIXES = (".grib", ".grb", ".grib1", ".grib2", ".grb2")


def _require_grib() -> None:
    if cfgrib is None or eccodes is None:
        raise MissingDependencyError("cfgrib", "grib", "GRIB files")


def _canonical_name(short: str, type_of_level: str, level: float | None) -> str | None:
    """Canonical name of one GRIB field, or None when the lexicon has no such variable."""
    if type_of_level == "isobaricInhPa" and short in PRESSURE_LEVEL_NAMES and level is not None:
        return level_name(PRESSURE_LEVEL_NAMES[short], level)
    if type_of_level == "isobaricInhPa":
        return None
    return SINGLE_LEVEL_NAMES.get(short)


def _is_forecast(ds: xr.Dataset) -> bool:
    if "step" not in ds.coords:
        return False
    steps = np.atleast_1d(ds["step"].values)
    return "step" in ds.dims or bool(np.any(steps != np.timedelta64(0, "ns")))


def _standardise_dims(ds: xr.Dataset, forecast: bool) -> xr.Dataset:
    """Rename cfgrib's dims to the data contract and make time/member dims explicit."""
    ds = ds.rename({k: v for k, v in {"latitude": "lat", "longitude": "lon"}.items() if k in ds.variables})
    if forecast:
        ds = ds.drop_vars("valid_time", errors="ignore").rename({"time": "init_time", "step": "lead_time"})
        for dim in ("lead_time", "init_time"):
            if dim not in ds.dims:
                ds = ds.expand_dims(dim)
        ds = ds.assign_coords(valid_time=ds["init_time"] + ds["lead_time"])
    else:
        ds = ds.drop_vars(["step", "valid_time"], errors="ignore")
        if "time" in ds.coords and "time" not in ds.dims:
            ds = ds.expand_dims("time")
    if "number" in ds.coords:
        data_type = next((str(v.attrs.get("GRIB_dataType", "")) for v in ds.data_vars.values()), "")
        # A single perturbed ("pf") or control ("cf") member is still an ensemble member: keep it as a
        # length-1 dim so that members from several files concatenate; drop the number of deterministic fields.
        if "number" in ds.dims or data_type in ("pf", "cf"):
            ds = ds.rename({"number": "member"})
            if "member" not in ds.dims:
                ds = ds.expand_dims("member")
        else:
            ds = ds.drop_vars("number")
    return ds


def _split_levels(ds: xr.Dataset, path: Path, unmapped: list[str]) -> list[xr.DataArray]:
    """One canonical DataArray per (variable, pressure level) of one cfgrib hypercube."""
    out: list[xr.DataArray] = []
    for native, da in ds.data_vars.items():
        short = str(da.attrs.get("GRIB_shortName", native))
        tol = str(da.attrs.get("GRIB_typeOfLevel", ""))
        units = str(da.attrs.get("GRIB_units", da.attrs.get("units", "")))
        level_coord = "isobaricInhPa" if "isobaricInhPa" in da.coords else None
        levels = np.atleast_1d(da[level_coord].values) if level_coord else [None]
        for level in levels:
            name = _canonical_name(short, tol, None if level is None else float(level))
            if name is None:
                unmapped.append(f"{short}@{tol}" + ("" if level is None else f"{float(level):g}"))
                continue
            part = da
            if level_coord:
                part = da.sel({level_coord: level}) if level_coord in da.dims else da
                part = part.drop_vars(level_coord)
            # Drop scalar level coords cfgrib adds ("surface", "meanSea", "heightAboveGround"...).
            part = part.drop_vars([c for c in part.coords if c == tol and c not in part.dims], errors="ignore")
            part = canonical_da(part, name, units=units, native_name=short, grib_type_of_level=tol)
            if level is not None:
                part.attrs["level_hpa"] = float(level)
            out.append(part)
    return out


def spectral_to_grid(coeffs: np.ndarray, truncation: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Synthesise an ECMWF spectral field onto a regular equiangular latitude-longitude grid.

    ECMWF (and GRIB ``gridType="sh"``) stores the complex coefficients :math:`f_n^m`,
    :math:`0 \le m \le n \le J`, ordered by ``m`` then ``n``, of

    .. math:: f(\lambda, \mu) = \sum_{n=0}^{J} \sum_{m=-n}^{n} f_n^m \bar P_n^m(\mu) e^{i m \lambda},
              \qquad f_n^{-m} = \overline{f_n^m},

    with associated Legendre functions normalised so that :math:`\tfrac12\int_{-1}^{1} (\bar P_n^m)^2 d\mu = 1`
    and *without* the Condon-Shortley phase. torch-harmonics uses orthonormal harmonics
    (:math:`\int |Y_n^m|^2 d\Omega = 1`), so its coefficients are :math:`\sqrt{4\pi} f_n^m` with
    ``csphase=False``; its real inverse transform adds the conjugate (:math:`m<0`) half itself.

    A maintained library (torch-harmonics, already the engine's spectral-core dependency) does the
    Legendre and Fourier synthesis; only the coefficient ordering and normalisation are ours.

    Parameters
    ----------
    coeffs : ndarray, shape ((J+1)(J+2),)
        GRIB values: real and imaginary parts interleaved, ``m``-major order.
    truncation : int
        Triangular truncation ``J`` (``pentagonalResolutionParameterJ``).

    Returns
    -------
    field : ndarray, shape (2J+3, 4J+4)
        Grid-point values (units of the field), latitude descending from 90 to -90.
    lat : ndarray, shape (2J+3,)
        Latitudes in degrees north (grid spacing ``180 / (2J+2)`` degrees).
    lon : ndarray, shape (4J+4,)
        Longitudes in degrees east from 0 (same spacing).

    Raises
    ------
    MissingDependencyError
        If torch or torch-harmonics is not installed.
    ValueError
        If the number of values does not match the truncation.

    References
    ----------
    ECMWF IFS documentation CY47R3, Part III: Dynamics and numerical procedures, section 2.2.
    """
    try:
        import torch
        import torch_harmonics
    except ImportError as err:
        raise MissingDependencyError("torch-harmonics", "models", "spectral GRIB fields") from err
    n_coef = (truncation + 1) * (truncation + 2)
    if coeffs.size != n_coef:
        raise ValueError(f"{coeffs.size} spectral values, expected {n_coef} for triangular truncation T{truncation}")
    c = coeffs[0::2] + 1j * coeffs[1::2]
    size = truncation + 1
    table = np.zeros((size, size), dtype=np.complex128)  # (n, m) as torch-harmonics expects
    m_idx = np.concatenate([np.full(size - m, m) for m in range(size)])
    n_idx = np.concatenate([np.arange(m, size) for m in range(size)])
    table[n_idx, m_idx] = c * np.sqrt(4.0 * np.pi)
    # 2J+3 latitudes with both poles and 4J+4 longitudes give the same spacing in both directions
    # and resolve the highest wavenumber without aliasing.
    nlat, nlon = 2 * size + 1, 4 * size
    isht = torch_harmonics.InverseRealSHT(nlat, nlon, lmax=size, mmax=size, grid="equiangular",
                                          norm="ortho", csphase=False).double()
    field = isht(torch.from_numpy(table)).numpy()
    lat = np.linspace(90.0, -90.0, nlat)
    lon = np.arange(nlon) * (360.0 / nlon)
    return field, lat, lon


def _read_spectral(path: Path) -> list[xr.DataArray]:
    """Read every spherical-harmonic message of ``path`` with ecCodes and grid it."""
    out: list[xr.DataArray] = []
    with open(path, "rb") as f:
        while True:
            handle = eccodes.codes_grib_new_from_file(f)
            if handle is None:
                break
            try:
                if eccodes.codes_get(handle, "gridType") != "sh":
                    continue
                short = eccodes.codes_get(handle, "shortName")
                tol = eccodes.codes_get(handle, "typeOfLevel")
                level = float(eccodes.codes_get(handle, "level"))
                units = eccodes.codes_get(handle, "units")
                j = int(eccodes.codes_get(handle, "pentagonalResolutionParameterJ"))
                k, m = (int(eccodes.codes_get(handle, key)) for key in ("K", "M"))
                if not j == k == m:
                    raise FormatError(path, f"spectral field {short} has pentagonal truncation J={j} K={k} M={m}; only triangular truncation is supported")
                date, time = int(eccodes.codes_get(handle, "dataDate")), int(eccodes.codes_get(handle, "dataTime"))
                values = eccodes.codes_get_values(handle)
            finally:
                eccodes.codes_release(handle)
            name = _canonical_name(short, tol, level if tol == "isobaricInhPa" else None)
            if name is None:
                continue
            field, lat, lon = spectral_to_grid(values, j)
            t = np.datetime64(f"{date // 10000:04d}-{date // 100 % 100:02d}-{date % 100:02d}T{time // 100:02d}:{time % 100:02d}", "ns")
            da = xr.DataArray(field[np.newaxis], dims=("time", "lat", "lon"),
                              coords={"time": [t], "lat": lat, "lon": lon})
            out.append(canonical_da(da, name, units=units, native_name=short, grib_type_of_level=tol,
                                    spectral_truncation=f"T{j}"))
    return out


@readers.register("grib")
class GribReader:
    """GRIB edition 1 and 2 through cfgrib/ecCodes (regular latitude-longitude grids and spectral fields)."""

    suffixes: ClassVar[tuple[str, ...]] = _GRIB_SUFFIXES
    description: ClassVar[str] = "GRIB1/GRIB2 analyses and forecasts (cfgrib/ecCodes), canonical names"

    def can_open(self, path: Path) -> bool:
        """Suffix ``.grib``/``.grb``/``.grib2``... and the ``GRIB`` indicator at the start of the file."""
        return has_suffix(path, self.suffixes) and read_head(path, 4) == b"GRIB"

    def open(self, path: Path, *, variables: Sequence[str] | None = None) -> xr.Dataset:
        """Read every field of ``path`` into one canonical Dataset.

        Parameters
        ----------
        path : Path
            A GRIB1 or GRIB2 file.
        variables : sequence of str, optional
            Canonical names to keep (``"z500"``, ``"t2m"``...); all when omitted.

        Returns
        -------
        Dataset
            Variables on ``(time | init_time, lead_time, [member,] lat, lon)``; see the module docstring.
            Attributes: ``source_files``, ``lat_order``, ``grib_edition``, ``unmapped_variables``
            (fields with no canonical name, as ``shortName@typeOfLevel[level]``; absent if none).

        Raises
        ------
        FormatError
            Truncated or non-GRIB content, or no field with a canonical name.
        VariableNotFoundError
            A requested variable is not in the file.
        MissingDependencyError
            cfgrib/ecCodes (or, for spectral fields, torch-harmonics) is not installed.
        """
        _require_grib()
        path = Path(path)
        check_readable(path)
        if read_head(path, 4) != b"GRIB":
            raise FormatError(path, "not a GRIB file (does not start with 'GRIB')")
        _check_complete(path)
        try:
            with warnings.catch_warnings():
                # cfgrib's own internal xr.merge triggers xarray's notice about a future default;
                # the merge is cfgrib's, not ours, and users cannot act on it.
                warnings.filterwarnings("ignore", category=FutureWarning, module="cfgrib")
                cubes = cfgrib.open_datasets(str(path), backend_kwargs={"indexpath": ""})
        except Exception as err:  # cfgrib/ecCodes raise many types on corrupt data
            raise FormatError(path, f"cfgrib could not read it: {type(err).__name__}: {err}") from err
        arrays: list[xr.DataArray] = []
        unmapped: list[str] = []
        gridded, spectral = [], False
        for cube in cubes:
            grid_types = {str(v.attrs.get("GRIB_gridType", "")) for v in cube.data_vars.values()}
            if "values" not in cube.dims:
                gridded.append(cube)
            elif grid_types <= {"sh"}:
                spectral = True  # cfgrib leaves spectral coefficients on a bare "values" dim
            else:
                # Reduced Gaussian and unstructured grids would break the (lat, lon) contract; regridding
                # belongs to a preprocessing step, not to a reader.
                raise FormatError(path, f"grid type {', '.join(sorted(grid_types))} is not a regular latitude-longitude "
                                        "grid; regrid it first (e.g. cdo remapbil,r1440x721)")
        forecast = any(_is_forecast(c) for c in gridded)
        for cube in gridded:
            arrays.extend(_split_levels(_standardise_dims(cube, forecast), path, unmapped))
        if spectral:
            arrays.extend(_read_spectral(path))
        if not arrays:
            raise FormatError(path, f"no field with a canonical name; fields present: {', '.join(unmapped) or 'none'}")
        names = [a.name for a in arrays]
        dupes = sorted({str(n) for n in names if names.count(n) > 1})
        if dupes:
            raise FormatError(path, f"fields {', '.join(dupes)} occur in several hypercubes with different time/member layouts")
        try:
            ds = xr.merge(arrays, join="outer", compat="no_conflicts", combine_attrs="drop_conflicts")
        except ValueError as err:
            raise FormatError(path, f"hypercubes cannot be merged on one grid: {err}") from err
        order = [d for d in ("time", "init_time", "lead_time", "member", "lat", "lon") if d in ds.dims]
        ds = ds.transpose(*order, ...)
        ds["lat"].attrs = dict(LAT_ATTRS)
        ds["lon"].attrs = dict(LON_ATTRS)
        ds.attrs = {"source_files": str(path), "lat_order": lat_order(ds["lat"].values)}
        if "lead_time" in ds.coords:
            ds["lead_time"].attrs["long_name"] = "Forecast lead time"
        if unmapped:
            ds.attrs["unmapped_variables"] = ",".join(unmapped)
        return select_variables(ds, variables, path)


def _check_complete(path: Path) -> None:
    """Walk the message headers: each message must end with ``7777`` at its declared length.

    ecCodes silently stops at a truncated last message (cfgrib then returns fewer fields), so a
    cut-off download would pass unnoticed; this walk costs one small read per message.
    """
    size = path.stat().st_size
    offset = 0
    with open(path, "rb") as f:
        while offset < size:
            f.seek(offset)
            head = f.read(16)
            if head[:4] != b"GRIB" and offset > 0:
                # Writers pad messages with zero bytes (GRIB1 to a multiple of 120 bytes): skip them.
                chunk = head + f.read(4096)
                pad = len(chunk) - len(chunk.lstrip(b"\x00"))
                if pad == len(chunk) and offset + pad >= size:
                    return  # padding after the last message
                offset += pad
                f.seek(offset)
                head = f.read(16)
            if head[:4] != b"GRIB":
                raise FormatError(path, f"no GRIB message at byte {offset} (corrupt or not GRIB)")
            edition = head[7]
            if edition == 1:
                length = int.from_bytes(head[4:7], "big")
                if length & 0x800000:
                    # ECMWF large GRIB1 messages: the 24-bit length is in units of 120 bytes; let ecCodes judge.
                    return
            elif edition == 2:
                length = int.from_bytes(head[8:16], "big")
            else:
                raise FormatError(path, f"GRIB edition {edition} at byte {offset} is not 1 or 2")
            if offset + length > size:
                raise FormatError(path, f"truncated: the GRIB message at byte {offset} needs {length} bytes, only {size - offset} left")
            f.seek(offset + length - 4)
            if f.read(4) != b"7777":
                raise FormatError(path, f"GRIB message at byte {offset} does not end with '7777' (corrupt)")
            offset += length
