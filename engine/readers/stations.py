"""Station observations: hourly surface reports (netCDF), foehnix CSV records, ASOS text.

Readers (all return dims ``(station, time)`` or ``(time,)``, canonical names and units):

- ``station_reports`` (:class:`StationReportsReader`): the WXP-decoded hourly surface reports
  ``YYMMDDHH_sao.cdf`` (dim ``report``, char ``id``). One file is one nominal hour → dims
  ``(station, time)`` with ``time`` of length 1 (the hour from the file name or ``filetime``) and
  the actual report times in the ``obs_time`` coordinate. Several reports of one station (specials,
  repeats) are reduced to one: the one nearest the nominal hour, then the most complete.
- ``foehnix_csv`` (:class:`FoehnixCsvReader`): ``;``-separated ``timestamp;dd;ff;rh;t`` records of the
  foehnix package (Ellboegen, Sattelberg) → dims ``(time,)``.
- ``asos_text`` (:class:`AsosTextReader`): tab-separated, xz-compressed ASOS exports
  (``station valid tmpc dwpc mslp``, ``M`` = missing) → dims ``(station, time)`` on the union of
  all report times (NaN where a station did not report); we chose this wide layout over a long
  one because it is what every other station reader returns and what station matching expects,
  at the cost of about 4x the cells of the irregular records for these four stations. The file
  has no coordinates: ``lat``/``lon``/``elevation`` come from ``assets/airports.csv`` (OurAirports,
  see its header), NaN for a station the table lacks.

Public API: ``StationReportsReader``, ``open_station_reports``, ``FoehnixCsvReader``, ``AsosTextReader``,
``FOEHNIX_STATIONS``, ``airport_table``.
"""

from __future__ import annotations

import lzma
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import xarray as xr

from engine.config import REPO_ROOT
from engine.errors import FormatError, ReaderError
from engine.readers._common import (
    LAT_ATTRS,
    LON_ATTRS,
    NC_SUFFIXES,
    canonical_da,
    check_readable,
    nc_header,
    open_netcdf,
    requested,
)
from engine.readers.base import has_suffix, read_head, readers

# --------------------------------------------------------------------------------------------
# station_reports
# --------------------------------------------------------------------------------------------

#: Native variable → (canonical name, native units as spelled in the file, plausible range in native units).
#: Values outside the range are set to NaN: besides the -9999 fill value the files hold decoder garbage
#: (a sea-level pressure of 2.6e-39 hPa, dew points of 9999 degC, wind directions of -70, longitudes of -790).
_SAO_VARIABLES: dict[str, tuple[str, str, tuple[float, float]]] = {
    "T": ("t2m", "celsius", (-90.0, 60.0)),
    "TD": ("d2m", "celsius", (-100.0, 50.0)),
    "PSL": ("msl", "hectopascals", (850.0, 1090.0)),
    "SPD": ("wind_speed", "meters/second", (0.0, 120.0)),
    "DIR": ("wind_dir", "degrees", (0.0, 360.0)),
    "GUST": ("wind_gust", "meters/second", (0.0, 150.0)),
    "VIS": ("visibility", "kilometers", (0.0, 500.0)),
    "PRECIP": ("tp", "millimeters", (0.0, 1000.0)),
}
_SAO_FILL = -9999.0
_SAO_NAME_RE = re.compile(r"^(\d{2})(\d{2})(\d{2})(\d{2})_sao", re.IGNORECASE)


def _chars(values: np.ndarray) -> np.ndarray:
    """Decode a netCDF char array (``(n, len)`` of ``S1``, or already joined by xarray) to stripped str."""
    arr = np.asarray(values)
    if arr.ndim == 2:
        arr = np.array([b"".join(row) for row in arr.astype("S1")])
    return np.array([(v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)).strip("\x00 ") for v in arr])


def _nominal_hour(path: Path, attrs: dict[str, object], obs: pd.Series) -> pd.Timestamp:
    """The report hour: from the file name ``YYMMDDHH_sao``, else ``filetime``, else the median report rounded."""
    m = _SAO_NAME_RE.match(path.name)
    if m:
        yy, mo, dd, hh = (int(g) for g in m.groups())
        # Two-digit years: WXP files date from the 1990s-2000s; pivot at 70 like POSIX strptime %y does.
        year = 1900 + yy if yy >= 70 else 2000 + yy
        return pd.Timestamp(year=year, month=mo, day=dd, hour=hh)
    filetime = str(attrs.get("filetime", ""))
    try:
        return pd.Timestamp(pd.to_datetime(filetime, format="%HZ %d %b %y"))
    except ValueError:
        return pd.Timestamp(obs.dropna().median()).round("h")


@readers.register("station_reports")
class StationReportsReader:
    """Hourly surface station reports decoded by WXP (``*_sao.cdf``)."""

    suffixes: ClassVar[tuple[str, ...]] = NC_SUFFIXES
    description: ClassVar[str] = "hourly surface station reports (WXP *_sao.cdf): t2m, d2m, msl, wind, visibility, tp"

    def can_open(self, path: Path) -> bool:
        """netCDF with a ``report`` dim and ``id``, ``lat``, ``lon``, ``T`` variables along it."""
        if not has_suffix(path, self.suffixes):
            return False
        h = nc_header(path)
        return (
            h is not None
            and "report" in h.dims
            and all(h.var_dims.get(v, ("",))[0] == "report" for v in ("id", "lat", "lon", "T"))
        )

    def open(self, path: Path, *, variables: Sequence[str] | None = None) -> xr.Dataset:
        """Read one hour of reports.

        Parameters
        ----------
        path : Path
            A ``YYMMDDHH_sao.cdf`` file.
        variables : sequence of str, optional
            Canonical names to keep (``t2m``, ``d2m``, ``msl``, ``wind_speed``, ``wind_dir``,
            ``wind_gust``, ``visibility``, ``tp``); all when omitted.

        Returns
        -------
        Dataset
            Dims ``(station, time)`` (``time`` of length 1). Coords ``station`` (ids as str), ``lat``,
            ``lon`` (degrees; NaN where the file has none), ``elevation`` (m), ``obs_time``
            ``(station, time)``. Variables in K, Pa, m s-1, degree, m and mm; ``tp`` has
            ``tp_period_hours`` ``(station, time)`` (the accumulation period, 6 or 24 h). Missing,
            fill (-9999) and out-of-range values are NaN; ``wind_dir`` is NaN for calm (speed 0).

        Raises
        ------
        FormatError
            Not a station-report file, or truncated.
        VariableNotFoundError
            A requested variable is not provided.
        """
        path = Path(path)
        raw = open_netcdf(path, decode_times=False)
        if "report" not in raw.dims or "id" not in raw.variables:
            raise FormatError(path, "not a station-report file (no 'report' dim with an 'id' variable)")
        # Synoptic hours (00, 03, 06... UTC) add PRECIP and others; the other hours lack them.
        present = {native: spec for native, spec in _SAO_VARIABLES.items() if native in raw.variables}
        keep = requested(variables, [spec[0] for spec in present.values()], path)
        frame = pd.DataFrame({"station": _chars(raw["id"].values)})
        frame["obs_time"] = pd.to_datetime(pd.Series(_chars(raw["time"].values)), format="%Y %m %d %H:%M UTC", errors="coerce")
        for native, (lo, hi) in {"lat": (-90.0, 90.0), "lon": (-180.0, 180.0), "elev": (-500.0, 9000.0)}.items():
            frame[native] = _valid(raw[native].values, lo, hi)
        for native, (_name, _units, (lo, hi)) in present.items():
            frame[native] = _valid(raw[native].values, lo, hi)
        if {"T", "TD"} <= set(present):
            # A dew point above the temperature is a decoding error (seen as 63-77 degC dew points); allow rounding.
            frame.loc[frame["TD"] > frame["T"] + 0.5, "TD"] = np.nan
        if {"SPD", "DIR"} <= set(present):
            # Calm (speed 0) has no direction; the reports code it as 0 degrees.
            frame.loc[frame["SPD"] == 0.0, "DIR"] = np.nan
        if "PRECIP" in present and "reftime_PRECIP" in raw.variables:
            frame["tp_period_hours"] = np.where(np.isfinite(frame["PRECIP"]), raw["reftime_PRECIP"].values, np.nan)
        frame = frame[frame["station"] != ""]
        hour = _nominal_hour(path, dict(raw.attrs), frame["obs_time"])
        # One report per station: nearest the nominal hour, then the most complete, then the last in the file.
        frame["_dt"] = (frame["obs_time"] - hour).abs()
        frame["_n"] = frame[list(present)].notna().sum(axis=1)
        frame["_order"] = np.arange(len(frame))
        frame = frame.sort_values(["station", "_dt", "_n", "_order"], ascending=[True, True, False, False])
        frame = frame.drop_duplicates("station", keep="first").set_index("station")
        coords = {
            "station": ("station", frame.index.to_numpy(dtype=str), {"long_name": "Station identifier"}),
            "time": ("time", [np.datetime64(hour, "ns")], {"long_name": "Nominal report hour (UTC)"}),
            "lat": ("station", frame["lat"].to_numpy("float32"), dict(LAT_ATTRS)),
            "lon": ("station", frame["lon"].to_numpy("float32"), dict(LON_ATTRS)),
            "elevation": ("station", frame["elev"].to_numpy("float32"),
                          {"units": "m", "standard_name": "surface_altitude", "long_name": "Station elevation"}),
            "obs_time": (("station", "time"), frame["obs_time"].to_numpy("datetime64[ns]")[:, None],
                         {"long_name": "Time of the report (UTC)"}),
        }
        data = {}
        for native, (name, units, _range) in present.items():
            if name in keep:
                values = frame[native].to_numpy("float64")[:, None]
                data[name] = canonical_da(values, name, units=units, dims=("station", "time"), native_name=native).astype("float32", keep_attrs=True)
        if "tp" in data and "tp_period_hours" in frame:
            coords["tp_period_hours"] = (("station", "time"), frame["tp_period_hours"].to_numpy("float32")[:, None],
                                         {"units": "h", "long_name": "Accumulation period of tp"})
        ds = xr.Dataset(data, coords=coords)
        ds.attrs = {"source_files": str(path), "featureType": "timeSeries"}
        return ds


def open_station_reports(paths: Sequence[str | Path], *, variables: Sequence[str] | None = None) -> xr.Dataset:
    """Read several hourly report files into one ``(station, time)`` Dataset.

    :func:`engine.readers.open_many` needs files on one grid; hourly reports differ in which
    stations reported, so here the stations are outer-joined (NaN where a station did not report
    that hour) and each station's position is taken from the first file that has it.

    Parameters
    ----------
    paths : sequence of str or Path
        ``*_sao.cdf`` files, one per hour, in any order.
    variables : sequence of str, optional
        Canonical names to keep; all when omitted.

    Returns
    -------
    Dataset
        As :meth:`StationReportsReader.open`, with ``time`` sorted and ``attrs["source_files"]``
        listing every file (comma-separated).

    Raises
    ------
    ReaderError
        If ``paths`` is empty, or any file cannot be read (the error names that file).
    """
    if not paths:
        raise ReaderError(Path("."), "no station-report files given")
    reader = StationReportsReader()
    parts = [reader.open(Path(p), variables=variables) for p in paths]
    static = ["lat", "lon", "elevation"]
    meta = pd.concat([p.coords.to_dataset()[static].to_dataframe() for p in parts]).groupby(level="station").first()
    parts = [p.drop_vars(static) for p in parts]
    # tp_period_hours exists only where tp does (synoptic hours); concat needs every coordinate everywhere.
    for name in {str(c) for p in parts for c in p.coords if p[c].dims == ("station", "time")}:
        template = next(p[name] for p in parts if name in p.coords)
        for i, p in enumerate(parts):
            if name not in p.coords:
                parts[i] = p.assign_coords({name: (("station", "time"), np.full((p.sizes["station"], 1), np.nan, "float32"), template.attrs)})
    ds = xr.concat(parts, dim="time", join="outer", data_vars="all",
                   coords="different", compat="equals", combine_attrs="drop_conflicts").sortby("time")
    meta = meta.reindex(ds["station"].values)
    attrs = {"lat": LAT_ATTRS, "lon": LON_ATTRS,
             "elevation": {"units": "m", "standard_name": "surface_altitude", "long_name": "Station elevation"}}
    for name in static:
        ds = ds.assign_coords({name: ("station", meta[name].to_numpy("float32"), dict(attrs[name]))})
    ds.attrs["source_files"] = ",".join(str(p) for p in paths)
    return ds


def _valid(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``values`` as float64 with the fill value, non-finite and out-of-range values set to NaN."""
    v = np.asarray(values, dtype="float64").copy()
    v[(v == _SAO_FILL) | ~np.isfinite(v) | (v < lo) | (v > hi)] = np.nan
    return v


# --------------------------------------------------------------------------------------------
# foehnix_csv
# --------------------------------------------------------------------------------------------

#: Station metadata of the foehnix sample stations (shared/data/README.md, after Rfoehnix's documentation).
FOEHNIX_STATIONS: dict[str, dict[str, object]] = {
    "ellboegen": {"station_id": "ellboegen", "station_name": "Ellboegen", "station_lat": 47.18694, "station_lon": 11.42889,
                  "station_elevation": 1080.0, "station_role": "valley station, Wipp valley, Tyrol"},
    "sattelberg": {"station_id": "sattelberg", "station_name": "Sattelberg", "station_lat": 47.01083, "station_lon": 11.47889,
                   "station_elevation": 2107.0, "station_role": "crest station on the main Alpine ridge"},
}

#: foehnix column → (canonical name, native units).
_FOEHNIX_COLUMNS: dict[str, tuple[str, str]] = {
    "dd": ("wind_dir", "degree"), "ff": ("wind_speed", "m s-1"), "rh": ("rh2m", "%"), "t": ("t2m", "degC"),
}


@readers.register("foehnix_csv")
class FoehnixCsvReader:
    """foehnix station records: ``timestamp;dd;ff;rh;t`` (Unix seconds UTC, deg, m/s, %, degC)."""

    suffixes: ClassVar[tuple[str, ...]] = (".csv", ".csv.gz")
    description: ClassVar[str] = "foehnix station CSV (timestamp;dd;ff;rh;t): wind, rh2m, t2m"

    def can_open(self, path: Path) -> bool:
        """``.csv`` whose header starts ``timestamp;`` and names ``dd`` and ``ff``."""
        if not has_suffix(path, self.suffixes):
            return False
        first = read_head(path, 256).split(b"\n", 1)[0].strip().decode("ascii", "replace").split(";")
        return len(first) >= 3 and first[0] == "timestamp" and {"dd", "ff"} <= set(first)

    def open(self, path: Path, *, variables: Sequence[str] | None = None) -> xr.Dataset:
        """Read a foehnix station record.

        Parameters
        ----------
        path : Path
            ``ellboegen.csv``, ``sattelberg.csv`` or another file of the same layout.
        variables : sequence of str, optional
            Canonical names to keep (``wind_dir``, ``wind_speed``, ``rh2m``, ``t2m``).

        Returns
        -------
        Dataset
            Dims ``(time,)`` (UTC, sorted). ``wind_dir`` (degree), ``wind_speed`` (m s-1), ``rh2m`` (%),
            ``t2m`` (K); ``NA`` → NaN. Station metadata attrs (``station_id``, ``station_name``, ``station_lat``,
            ``station_lon``, ``station_elevation`` in m) for the known stations only.

        Raises
        ------
        FormatError
            Missing ``timestamp`` column or unparsable numbers.
        VariableNotFoundError
            A requested variable is not in the file.
        """
        path = Path(path)
        check_readable(path)
        try:
            frame = pd.read_csv(path, sep=";", na_values=["NA"], skipinitialspace=True)
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
            raise FormatError(path, f"cannot be parsed as ';'-separated CSV: {err}") from err
        frame.columns = [str(c).strip() for c in frame.columns]
        if "timestamp" not in frame.columns:
            raise FormatError(path, f"no 'timestamp' column; columns are {', '.join(frame.columns)}")
        present = {col: spec for col, spec in _FOEHNIX_COLUMNS.items() if col in frame.columns}
        keep = requested(variables, [name for name, _ in present.values()], path)
        try:
            seconds = pd.to_numeric(frame["timestamp"], errors="raise").astype("int64")
            numbers = {col: pd.to_numeric(frame[col], errors="raise").to_numpy("float64") for col in present}
        except (ValueError, TypeError) as err:
            raise FormatError(path, f"non-numeric value: {err}") from err
        times = pd.to_datetime(seconds, unit="s").to_numpy("datetime64[ns]")  # Unix time is UTC
        data = {
            name: canonical_da(numbers[col], name, units=units, dims=("time",), native_name=col).astype("float32", keep_attrs=True)
            for col, (name, units) in present.items() if name in keep
        }
        ds = xr.Dataset(data, coords={"time": ("time", times, {"long_name": "Time (UTC)"})}).sortby("time")
        ds.attrs = {"source_files": str(path), **FOEHNIX_STATIONS.get(path.name.lower().split(".")[0], {})}
        return ds


# --------------------------------------------------------------------------------------------
# asos_text
# --------------------------------------------------------------------------------------------

#: ASOS column → (canonical name, native units).
_ASOS_COLUMNS: dict[str, tuple[str, str]] = {
    "tmpc": ("t2m", "degC"), "dwpc": ("d2m", "degC"), "mslp": ("msl", "hPa"),
    "sknt": ("wind_speed", "kt"), "drct": ("wind_dir", "degree"),
}


#: Station positions for the ASOS exports, which carry none (OurAirports; source and date in the file header).
AIRPORTS_FILE = REPO_ROOT / "assets" / "airports.csv"
_ELEVATION_ATTRS = {"units": "m", "standard_name": "surface_altitude", "long_name": "Station elevation"}


def airport_table(path: Path = AIRPORTS_FILE) -> pd.DataFrame:
    """The airport coordinate table, indexed by station id (a copy: callers may modify it).

    Parameters
    ----------
    path : Path
        A CSV with ``#`` comment lines and columns ``station, name, lat, lon, elevation_m``
        (degrees north/east, metres above sea level).

    Returns
    -------
    DataFrame
        Index ``station`` (str); columns ``name``, ``lat``, ``lon``, ``elevation_m`` (float).

    Raises
    ------
    ReaderError
        The file is missing, lacks a column, repeats a station or has a coordinate out of range.
    """
    return _airport_table(Path(path)).copy()


@cache
def _airport_table(path: Path) -> pd.DataFrame:
    # read once per process: every ASOS open needs it and the file never changes while running
    check_readable(path)
    try:
        table = pd.read_csv(path, comment="#", dtype={"station": str}, skipinitialspace=True)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ReaderError(path, f"cannot be parsed as CSV: {err}") from err
    missing = {"station", "name", "lat", "lon", "elevation_m"} - set(table.columns)
    if missing:
        raise ReaderError(path, f"missing column(s) {', '.join(sorted(missing))}")
    table["station"] = table["station"].str.strip()
    if table["station"].duplicated().any():
        raise ReaderError(path, f"repeated station(s) {', '.join(table.loc[table['station'].duplicated(), 'station'])}")
    bad = ~(table["lat"].between(-90, 90) & table["lon"].between(-180, 180) & table["elevation_m"].between(-500, 9000))
    if bad.any():
        raise ReaderError(path, f"coordinates out of range for {', '.join(table.loc[bad, 'station'])}")
    return table.set_index("station")


@readers.register("asos_text")
class AsosTextReader:
    """ASOS/AWOS exports of the Iowa Environmental Mesonet (tab-separated, optionally xz/gz compressed)."""

    suffixes: ClassVar[tuple[str, ...]] = (".txt", ".txt.xz", ".txt.gz", ".tsv")
    description: ClassVar[str] = "ASOS text export (station, valid, tmpc, dwpc, mslp; 'M' missing): t2m, d2m, msl"

    def can_open(self, path: Path) -> bool:
        """Text (possibly xz/gz) whose header's first two tab-separated fields are ``station`` and ``valid``."""
        if not has_suffix(path, self.suffixes):
            return False
        fields = [f.strip() for f in read_head(path, 256).split(b"\n", 1)[0].decode("ascii", "replace").split("\t")]
        return len(fields) >= 3 and fields[:2] == ["station", "valid"]

    def open(self, path: Path, *, variables: Sequence[str] | None = None) -> xr.Dataset:
        """Read an ASOS export into ``(station, time)``.

        Parameters
        ----------
        path : Path
            E.g. ``jan-17-co-asos.txt.xz``.
        variables : sequence of str, optional
            Canonical names to keep (``t2m``, ``d2m``, ``msl``; ``wind_speed``/``wind_dir`` when present).

        Returns
        -------
        Dataset
            Dims ``(station, time)``: ``time`` is the sorted union of report times (UTC), NaN where a
            station did not report. Units K, K, Pa. Coords ``lat``, ``lon`` (degrees) and ``elevation``
            (m) per station from :func:`airport_table` (the file has none), NaN for a station the
            table lacks (``attrs["stations_without_coordinates"]`` lists them).

        Raises
        ------
        FormatError
            Not this layout, or a value that is neither a number nor ``M``.
        VariableNotFoundError
            A requested variable is not in the file.
        ReaderError
            ``assets/airports.csv`` is missing or malformed.
        """
        path = Path(path)
        check_readable(path)
        try:
            frame = pd.read_csv(path, sep="\t", na_values=["M"], skipinitialspace=True, dtype={"station": str})
        except (ValueError, pd.errors.ParserError, EOFError, OSError, UnicodeDecodeError, lzma.LZMAError) as err:
            raise FormatError(path, f"cannot be parsed as tab-separated text: {type(err).__name__}: {err}") from err
        frame.columns = [str(c).strip() for c in frame.columns]
        if not {"station", "valid"} <= set(frame.columns):
            raise FormatError(path, f"no 'station' and 'valid' columns; columns are {', '.join(frame.columns)}")
        present = {col: spec for col, spec in _ASOS_COLUMNS.items() if col in frame.columns}
        keep = requested(variables, [name for name, _ in present.values()], path)
        try:
            frame["valid"] = pd.to_datetime(frame["valid"], format="%Y-%m-%d %H:%M")
            for col in present:
                frame[col] = pd.to_numeric(frame[col], errors="raise")
        except (ValueError, TypeError) as err:
            raise FormatError(path, f"unparsable value: {err}") from err
        frame["station"] = frame["station"].str.strip()
        # Repeated (station, time) rows would make the pivot ambiguous: keep the last, as later rows correct earlier ones.
        frame = frame.drop_duplicates(["station", "valid"], keep="last")
        wide = frame.set_index(["station", "valid"])[list(present)].to_xarray()
        data = {
            name: canonical_da(wide[col].values.astype("float64"), name, units=units, dims=("station", "time"),
                               native_name=col).astype("float32", keep_attrs=True)
            for col, (name, units) in present.items() if name in keep
        }
        ids = wide["station"].values.astype(str)
        # The export has no positions; station matching needs them, so they come from the airport
        # table. A station it lacks keeps NaN (matching skips it) rather than a guessed position.
        where = airport_table().reindex(ids)
        ds = xr.Dataset(
            data,
            coords={
                "station": ("station", ids, {"long_name": "Station identifier"}),
                "time": ("time", wide["valid"].values.astype("datetime64[ns]"), {"long_name": "Report time (UTC)"}),
                "lat": ("station", where["lat"].to_numpy("float64"), dict(LAT_ATTRS)),
                "lon": ("station", where["lon"].to_numpy("float64"), dict(LON_ATTRS)),
                "elevation": ("station", where["elevation_m"].to_numpy("float64"), dict(_ELEVATION_ATTRS)),
            },
        )
        unknown = [sid for sid, lat in zip(ids, where["lat"].to_numpy(), strict=True) if not np.isfinite(lat)]
        ds.attrs = {"source_files": str(path), "featureType": "timeSeries",
                    "comment": f"station coordinates from {AIRPORTS_FILE.name} (OurAirports), not from the source file"}
        if unknown:
            ds.attrs["stations_without_coordinates"] = ",".join(unknown)
        return ds
