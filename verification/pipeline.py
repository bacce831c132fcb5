r"""The verification pipeline: read a run store and a reference, align them, score, write scores.

This is the thin layer between storage and the metric library. It never computes a score
itself: every number comes from :mod:`verification.metrics`, :mod:`verification.stations` or
:mod:`verification.radar_quality`; the pipeline only decides *what* to compare with *what*.

Three cases, chosen from the data (not from the run's kind):

* **projected grids** (``y, x``; radar nowcasts): the reference is a set of observed frames
  (sample dataset, files, or another run); each lead time is compared with the frame at its
  *valid* time (exactly, or the nearest within ``time_tolerance``: see below). Default
  metrics: POD, FAR, CSI, ETS and frequency bias at 0.1, 1 and 5 mm/h, the FSS at 1 and
  5 mm/h over :data:`DEFAULT_WINDOWS`, MAE, RMSE and bias, and the CRPS for ensembles
  (deterministic scores use the ensemble mean).
* **latitude-longitude grids** (``lat, lon``; global runs): the reference is an analysis; it
  is interpolated bilinearly to the run grid when the grids differ (``xarray.interp``, with
  longitudes brought to the run's convention and padded by one column on each side on global
  grids so the interpolation wraps around the date line). Scores are latitude weighted
  (:func:`verification.latitude_weights`): RMSE, bias and, with a climatology, the
  uncentred ACC (the WMO headline form); ensembles add the CRPS and spread / skill. An
  analysis ensemble (``member`` dim, e.g. the ERA5 EDA) is reduced to its mean, the best
  estimate of the truth.
* **stations** (a reference with a ``station`` dim, or a single-station file carrying
  ``station_lat`` / ``station_lon`` attributes): the forecast is matched to the stations
  (:func:`verification.match_to_stations`, bilinear), scored per station and lead time
  (:func:`verification.score_table`), and the matched values are written as point forecasts.

Matching in time
    Each forecast valid time is compared with the reference time nearest to it within
    :attr:`VerifyOptions.time_tolerance` (inclusive; a tie goes to the earlier reference time;
    :func:`verification.stations.nearest_time_indices`). The default tolerance is 0, an exact
    match, for every kind of reference, so existing scores do not change and a reference at
    another cadence fails loudly instead of being matched to reports the user did not expect.
    Station references are matched **per station** and only to *valid* reports: each
    station's nearest finite observation within the tolerance is used
    (:func:`verification.stations.match_to_times`), so a missing (NaN) report never hides a
    valid one a few minutes away, one station's gap does not move another's match, and a
    station with no valid report within the tolerance has no score at that lead time (NaN,
    left out), never a farther report. For METAR / ASOS stations ``30min`` is the usual choice
    (each hour's routine report, at hh:53 or so, lies within it); for a gridded reference a
    tolerance lets a lead time use a shifted frame when the frame at its valid time is missing.
    A valid time with no reference time at all within the tolerance is an error (projected
    grids, stations) or left out with a note (analyses), as with exact matching. The times
    actually used are returned in :attr:`VerificationResult.obs_time` (and the ``obs_time``
    coordinate of :attr:`VerificationResult.observations` for stations); the catalogue has no
    column for them, so they are not stored. The persistence baseline uses the reference
    matched to the init time the same way.

Repeated reference times
    A station reference that repeats a time is refused with an error naming the reference and
    the repeated times (two reports at one time are ambiguous; the ASOS reader already keeps
    the last of repeated rows). Gridded references index one frame per time: a time found in
    more than one file (or twice in one file) is taken from the first file in the order given
    (globs and folders sorted), and :func:`verify_run` notes how many times repeated.

Scores are tidy rows ``run_id, reference, variable, lead_time, metric, threshold, scale,
region, value``. ``threshold`` is in the variable's units (mm/h for rain), ``scale`` is the
FSS window in grid points, ``region`` is ``None`` for the whole domain and
``station:<id>`` for one station (the convention of the app's station pages).

Persistence baseline
    Every verification also scores persistence for the same start: the reference at the run's
    init time (the observed frame, the analysis, or each station's observation) held over all
    lead times. Its scores are stored under a separate,
    catalogued *baseline run* ``<run_id>.persistence`` (model ``persistence``, the same kind,
    domain and init time as the run, no store; ``parameters.baseline_of`` names the run), with
    the same reference, variable, metric names, thresholds and scales. The scores table keeps
    one meaning per column, and the app's skill plots and scorecards, which group scores by
    the run's model, show persistence as one more model without special cases. (A ``:`` in
    the id is not allowed by the catalogue, hence the ``.``.)

Large archives
    The run store opens lazily (dask). Reference frames are indexed once (file, position in
    the file, valid time) and read one at a time through ``dask.delayed``, so nothing holds a
    whole archive: :func:`score_fields` computes one lead time at a time, loading only that
    lead's forecast and observed frames. The same code therefore runs on in-memory and on
    chunked (dask) inputs and gives identical numbers.

Public API: ``VerifyOptions``, ``VerificationResult``, ``QualityResult``, ``VerificationError``,
``Reference``, ``FrameIndex``, ``parse_time_tolerance``, ``parse_thresholds``,
``METRICS``, ``DEFAULT_THRESHOLDS``, ``DEFAULT_FSS_THRESHOLDS``, ``DEFAULT_WINDOWS``,
``verify_run``, ``assess_run``, ``score_fields``, ``open_reference``, ``regrid_latlon``,
``grid_spacing_km``, ``run_grid_spacing_km``, ``windows_from_km``, ``baseline_run_id``,
``summary_table``.
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from engine.errors import CoordError, DimensionError, UnknownNameError, WxError
from engine.storage.catalog import Catalog, RunRecord
from engine.storage.zarr_store import open_run_store
from engine.types import XarrayLike
from verification._dims import latitude_weights
from verification.metrics import (
    acc,
    bias,
    contingency_table,
    crps_ensemble,
    fss,
    mae,
    mse,
    rmse,
    scores_from_table,
    spread_skill,
)
from verification.radar_quality import QualityConfig, QualityReport, assess_sequence
from verification.stations import match_to_stations, match_to_times, nearest_time_indices, score_table

__all__ = [
    "DEFAULT_FSS_THRESHOLDS",
    "DEFAULT_THRESHOLDS",
    "DEFAULT_WINDOWS",
    "METRICS",
    "FrameIndex",
    "QualityResult",
    "Reference",
    "VerificationError",
    "VerificationResult",
    "VerifyOptions",
    "assess_run",
    "baseline_run_id",
    "grid_spacing_km",
    "open_reference",
    "parse_thresholds",
    "parse_time_tolerance",
    "regrid_latlon",
    "run_grid_spacing_km",
    "score_fields",
    "summary_table",
    "verify_run",
    "windows_from_km",
]

#: Event thresholds (mm/h) of the categorical scores of rain, after common radar practice:
#: drizzle / any rain, moderate, heavy.
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.1, 1.0, 5.0)
#: FSS thresholds (mm/h): 0.1 mm/h covers nearly every wet pixel, which says little at large scales.
DEFAULT_FSS_THRESHOLDS: tuple[float, ...] = (1.0, 5.0)
#: FSS windows in grid points (1 = grid scale); 1 km radar grids: 1, 5, 11 and 21 km.
DEFAULT_WINDOWS: tuple[int, ...] = (1, 5, 11, 21)

#: Suffix of the catalogued baseline run holding the persistence scores of a run.
PERSISTENCE_SUFFIX = ".persistence"

Family = Literal["categorical", "fss", "continuous", "acc", "ensemble"]


@dataclass(frozen=True)
class MetricInfo:
    """A metric the pipeline can compute: its family (what it needs) and a one-line description."""

    name: str
    family: Family
    description: str


#: Metric name -> description; the names are those written to the ``metric`` column.
METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("pod", "categorical", "probability of detection at each threshold"),
        MetricInfo("far", "categorical", "false alarm ratio at each threshold"),
        MetricInfo("csi", "categorical", "critical success index at each threshold"),
        MetricInfo("ets", "categorical", "equitable threat score at each threshold"),
        MetricInfo("hss", "categorical", "Heidke skill score at each threshold"),
        MetricInfo("frequency_bias", "categorical", "frequency bias at each threshold"),
        MetricInfo("fss", "fss", "fractions skill score at each FSS threshold and window"),
        MetricInfo("bias", "continuous", "mean error, forecast minus reference"),
        MetricInfo("mae", "continuous", "mean absolute error"),
        MetricInfo("mse", "continuous", "mean squared error"),
        MetricInfo("rmse", "continuous", "root mean squared error"),
        MetricInfo("acc", "acc", "uncentred anomaly correlation against a climatology"),
        MetricInfo("crps", "ensemble", "continuous ranked probability score of the ensemble"),
        MetricInfo("spread", "ensemble", "ensemble spread (root mean member variance)"),
        MetricInfo("rmse_ensemble_mean", "ensemble", "RMSE of the ensemble mean (the spread's partner)"),
        MetricInfo("spread_skill", "ensemble", "spread / skill ratio, 1 for a consistent ensemble"),
    )
}

#: Default metrics per case (ensemble metrics are dropped for deterministic runs).
_DEFAULTS: dict[str, tuple[str, ...]] = {
    "grid": ("csi", "pod", "far", "ets", "frequency_bias", "fss", "mae", "rmse", "bias", "crps"),
    "latlon": ("rmse", "bias", "acc", "crps", "spread", "rmse_ensemble_mean", "spread_skill"),
    "stations": ("bias", "mae", "rmse", "crps"),
}

#: Default climatology of the anomaly correlation (sample dataset name).
DEFAULT_CLIMATOLOGY = "era-interim-climatology"


class VerificationError(WxError, ValueError):
    """Verification cannot proceed: bad option, missing reference times, unusable reference."""


# --------------------------------------------------------------------------------------------
# Options and results
# --------------------------------------------------------------------------------------------


def parse_thresholds(values: Sequence[Any]) -> tuple[float, ...]:
    """Event thresholds as given (numbers or strings such as ``"0.5"``) as finite floats.

    Raises
    ------
    VerificationError
        If a value is not a finite number, or values repeat.
    """
    out = []
    for v in values:
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise VerificationError(f"thresholds: {v!r} is not a number") from None
        if not math.isfinite(x):
            raise VerificationError(f"thresholds: {v!r} is not a finite number")
        out.append(x)
    if len(set(out)) != len(out):
        raise VerificationError(f"thresholds: values repeat: {list(values)}")
    return tuple(out)


def parse_time_tolerance(value: Any, *, name: str = "time_tolerance") -> pd.Timedelta:
    """A time tolerance as a non-negative :class:`pandas.Timedelta`.

    Parameters
    ----------
    value : str, Timedelta, timedelta, timedelta64 or None
        ``"30min"``, ``"1h"``, ``"PT30M"``, ``"00:30:00"``, a timedelta, or ``None`` / ``0`` /
        ``"0"`` for an exact match. A bare number other than 0 is refused: it has no unit.
    name : str
        How the value was given (``time_tolerance``, ``--time-tolerance``), for the message.

    Returns
    -------
    pandas.Timedelta

    Raises
    ------
    VerificationError
        If ``value`` is not a duration, has no unit, or is negative.
    """
    if value is None:
        return pd.Timedelta(0)
    hint = "give a duration such as 30min, 1h or PT30M"
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None:
            if number == 0:
                return pd.Timedelta(0)
            raise VerificationError(f"{name}: {value!r} has no unit; {hint}")
        try:
            tol = pd.Timedelta(text)
        except ValueError:
            raise VerificationError(f"{name}: {value!r} is not a duration; {hint}") from None
    elif isinstance(value, bool) or not isinstance(value, pd.Timedelta | np.timedelta64 | _dt.timedelta | int | float):
        raise VerificationError(f"{name}: {value!r} is not a duration; {hint}")
    elif isinstance(value, int | float):
        if value != 0:
            raise VerificationError(f"{name}: {value!r} has no unit; {hint}")
        return pd.Timedelta(0)
    else:
        tol = pd.Timedelta(value)
    if pd.isna(tol):
        raise VerificationError(f"{name}: {value!r} is not a duration; {hint}")
    if tol < pd.Timedelta(0):
        raise VerificationError(f"{name}: {value!r} is negative; the tolerance is a distance in time (>= 0)")
    return tol


@dataclass(frozen=True)
class VerifyOptions:
    """What to compute; validated on construction.

    Attributes
    ----------
    metrics : tuple of str, optional
        Names from :data:`METRICS`; default depends on the case (module docstring).
    thresholds : tuple of float, optional
        Event thresholds of the categorical scores (units of the variable); also the FSS
        thresholds when given. Default :data:`DEFAULT_THRESHOLDS` for ``precip_rate``.
    windows : tuple of int, optional
        FSS windows in grid points (odd sizes centre the window); default :data:`DEFAULT_WINDOWS`.
    variable : str, optional
        The variable to verify; default the run's first variable with a ``lead_time`` dim.
    climatology : str, optional
        Dataset name or file of the climatology for the ACC; default
        :data:`DEFAULT_CLIMATOLOGY` when it holds the variable.
    persistence : bool
        Also score the persistence baseline (gridded cases).
    station_method : {"bilinear", "nearest"}
        Interpolation to stations.
    time_tolerance : Timedelta or str
        How far the reference time used for a forecast valid time may be from it (inclusive; a
        tie goes to the earlier reference time): e.g. ``"30min"`` (any form
        :func:`parse_time_tolerance` takes; stored as a ``Timedelta``). Stations are matched one
        by one, each to its nearest *valid* report (module docstring, "Matching in time").
        Default 0, an exact match, for gridded and station references alike: existing results
        stay as they were, and the right tolerance depends on the reference's report times
        *and* on the forecast's output step (30 min suits hourly forecasts against METAR
        reports at hh:53, but would let one hourly report stand for six 5-minute nowcast
        steps), so it is the user's choice; without it a reference at other minutes fails with
        an error naming the option.

    Raises
    ------
    UnknownNameError
        A metric name is unknown.
    VerificationError
        A threshold is not a finite number, a window not a positive integer, values repeat, or
        the time tolerance is not a non-negative duration.
    """

    metrics: tuple[str, ...] | None = None
    thresholds: tuple[float, ...] | None = None
    windows: tuple[int, ...] | None = None
    variable: str | None = None
    climatology: str | None = None
    persistence: bool = True
    station_method: Literal["bilinear", "nearest"] = "bilinear"
    time_tolerance: pd.Timedelta | str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_tolerance", parse_time_tolerance(self.time_tolerance))
        if self.metrics is not None:
            names = tuple(str(m).lower() for m in self.metrics)
            for name in names:
                if name not in METRICS:
                    raise UnknownNameError("metric", name, METRICS)
            if not names:
                raise VerificationError("metrics: give at least one metric name")
            object.__setattr__(self, "metrics", tuple(dict.fromkeys(names)))
        if self.thresholds is not None:
            object.__setattr__(self, "thresholds", parse_thresholds(self.thresholds))
        if self.windows is not None:
            wins = []
            for w in self.windows:
                try:
                    n = float(w)
                except (TypeError, ValueError):
                    raise VerificationError(f"windows: {w!r} is not a number of grid points") from None
                if not n.is_integer() or n < 1:
                    raise VerificationError(f"windows: {w!r} is not a positive whole number of grid points")
                wins.append(int(n))
            if len(set(wins)) != len(wins):
                raise VerificationError(f"windows: values repeat: {wins}")
            object.__setattr__(self, "windows", tuple(wins))
        if self.station_method not in ("bilinear", "nearest"):
            raise VerificationError(f"station_method={self.station_method!r}: expected 'bilinear' or 'nearest'")


@dataclass
class VerificationResult:
    """What :func:`verify_run` computed (and wrote).

    Attributes
    ----------
    run_id, reference, variable : str
        The run, the reference label (``dataset:<name>``, ``run:<id>`` or ``files:<spec>``) and
        the variable verified.
    case : {"grid", "latlon", "stations"}
        Which comparison was made (module docstring).
    scores : DataFrame
        Tidy scores of the run and, when computed, of its persistence baseline (rows whose
        ``run_id`` is :attr:`baseline_run_id`).
    baseline_run_id : str or None
        The catalogued baseline run, when persistence was scored.
    point_forecasts : DataFrame or None
        Station cases: the forecasts matched to the stations.
    notes : list of str
        What was skipped and why (e.g. no climatology for the ACC).
    obs_time : xarray.DataArray or None
        The reference time used for each lead time: on ``lead_time`` (gridded cases; only the
        lead times verified) or ``(lead_time, station)`` (stations; NaT where a station had no
        valid report within the tolerance), with the ``valid_time`` coordinate. Not stored:
        the catalogue has no column for it.
    observations : xarray.DataArray or None
        Station cases: the observations scored, on ``(lead_time, station)``, with the
        coordinates ``valid_time`` and ``obs_time``.
    """

    run_id: str
    reference: str
    variable: str
    case: str
    scores: pd.DataFrame
    baseline_run_id: str | None = None
    point_forecasts: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    obs_time: xr.DataArray | None = None
    observations: xr.DataArray | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-able summary: run, reference, variable, case, notes and the scores as records."""
        records = []
        for row in self.scores.to_dict("records"):
            rec: dict[str, Any] = {}
            for key, value in row.items():
                if key == "lead_time":
                    rec[key] = None if pd.isna(value) else pd.Timedelta(value).isoformat()
                elif isinstance(value, float | np.floating):
                    rec[key] = float(value) if math.isfinite(value) else None
                else:
                    rec[key] = None if value is None or (not isinstance(value, str) and pd.isna(value)) else value
            rec["lead_minutes"] = (
                None if rec["lead_time"] is None else pd.Timedelta(row["lead_time"]).total_seconds() / 60.0
            )
            records.append(rec)
        return {
            "run_id": self.run_id,
            "reference": self.reference,
            "variable": self.variable,
            "case": self.case,
            "baseline_run_id": self.baseline_run_id,
            "notes": list(self.notes),
            "scores": records,
        }


@dataclass
class QualityResult:
    """What :func:`assess_run` computed (and wrote).

    Attributes
    ----------
    run_id, reference : str
        The run and the reference label (as in :class:`VerificationResult`).
    sequence : QualityReport
        The report of the whole sequence (``scope="sequence"``).
    frames : list of QualityReport
        One report per lead time, in lead-time order.
    """

    run_id: str
    reference: str
    sequence: QualityReport
    frames: list[QualityReport]

    def to_json(self) -> dict[str, Any]:
        """JSON-able reports (lead times as ISO 8601 durations)."""

        def rec(report: QualityReport) -> dict[str, Any]:
            r = report.to_record()
            r["lead_time"] = None if r["lead_time"] is None else pd.Timedelta(r["lead_time"]).isoformat()
            return r

        return {
            "run_id": self.run_id,
            "reference": self.reference,
            "sequence": rec(self.sequence),
            "frames": [rec(f) for f in self.frames],
        }


def baseline_run_id(run_id: str) -> str:
    """Id of the catalogued persistence baseline of ``run_id`` (see the module docstring)."""
    return f"{run_id}{PERSISTENCE_SUFFIX}"


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


# --------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------


@dataclass
class FrameIndex:
    """Gridded reference frames indexed by valid time; a frame is read only when asked for.

    ``loader(key)`` returns the frame of one index entry as a 2-D DataArray; ``template`` has
    the grid's dims and coordinates; ``repeated`` lists the times found more than once while
    indexing (the first occurrence is the one indexed).
    """

    label: str
    times: dict[np.datetime64, Any]
    loader: Callable[[Any], xr.DataArray]
    template: xr.DataArray
    repeated: tuple[np.datetime64, ...] = ()

    def frame(self, t: np.datetime64) -> xr.DataArray:
        """The frame valid at ``t`` (read now); ``KeyError`` if there is none."""
        return self.loader(self.times[t])

    def nearest(
        self, times: Sequence[np.datetime64], tolerance: pd.Timedelta | str = "0s"
    ) -> list[np.datetime64 | None]:
        """For each of ``times``, the indexed time nearest to it within ``tolerance``, or ``None``.

        The tolerance is inclusive and a tie goes to the earlier time
        (:func:`verification.stations.nearest_time_indices`); 0 is an exact match.
        """
        keys = list(self.times)
        pos = nearest_time_indices(np.array(keys, dtype="datetime64[ns]"), np.asarray(times), tolerance)
        return [None if k < 0 else keys[k] for k in pos]

    def missing(self, times: Sequence[np.datetime64], tolerance: pd.Timedelta | str = "0s") -> list[np.datetime64]:
        """The ``times`` without a frame within ``tolerance`` (default: exactly), in the order given."""
        return [t for t, m in zip(times, self.nearest(times, tolerance), strict=True) if m is None]

    def stack(self, times: Sequence[np.datetime64], dim: str, coord: np.ndarray) -> xr.DataArray:
        """Lazy (dask) stack of the frames at ``times`` along ``dim`` with coordinate ``coord``."""
        import dask
        import dask.array as dsa

        shape = self.template.shape
        parts = [
            dsa.from_delayed(
                # the declared dtype must be the real one: dask trusts it for the whole graph
                dask.delayed(lambda key: np.asarray(self.loader(key).values, dtype=self.template.dtype))(self.times[t]),
                shape=shape,
                dtype=self.template.dtype,
            )
            for t in times
        ]
        data = dsa.stack(parts, axis=0)
        coords = {d: self.template[d] for d in self.template.dims if d in self.template.coords}
        return xr.DataArray(
            data, dims=(dim, *self.template.dims), coords={dim: coord, **coords}, attrs=self.template.attrs
        )


@dataclass
class Reference:
    """An opened reference: gridded frames indexed by valid time, or a station dataset.

    Attributes
    ----------
    label : str
        ``dataset:<name>``, ``run:<id>`` or ``files:<as typed>``; the ``reference`` column.
    frames : FrameIndex or None
        Gridded references.
    stations : xarray.Dataset or None
        Station references: variables on ``(station, time)``, ``lat``/``lon`` coordinates.
    """

    label: str
    frames: FrameIndex | None = None
    stations: xr.Dataset | None = None


def _time_key(value: Any) -> np.datetime64:
    return np.datetime64(pd.Timestamp(value).to_datetime64(), "ns")


def _reference_label(against: Sequence[str], catalog: Catalog) -> str:
    from engine import datasets

    if len(against) == 1:
        item = against[0]
        if catalog.has_run(item):
            return f"run:{item}"
        if not Path(item).expanduser().exists() and item.lower() in datasets.load_catalogue():
            return f"dataset:{item.lower()}"
    return "files:" + " ".join(against)


def _single_station(ds: xr.Dataset, label: str) -> xr.Dataset:
    """A one-station file (foehnix CSV: coordinates in attributes) as a ``station`` dataset."""
    # The same id the catalogue's stations table uses (the demo ingests the file under it).
    sid = str(ds.attrs.get("station_id") or Path(str(ds.attrs.get("source_files", "station"))).stem.lower())
    out = ds.expand_dims(station=[sid])
    coords = {
        "lat": ("station", [float(ds.attrs["station_lat"])]),
        "lon": ("station", [float(ds.attrs["station_lon"])]),
    }
    if "station_elevation" in ds.attrs:
        coords["elevation"] = ("station", [float(ds.attrs["station_elevation"])])
    return out.assign_coords(coords)


def open_reference(
    against: str | Sequence[str],
    variable: str,
    *,
    catalog: Catalog,
    data_root: Path | None,
) -> Reference:
    """Index a reference: another run, a sample dataset, or files (globs, folders).

    Gridded references are indexed by valid time without keeping their data: each file is
    opened once to learn its times and grid, and frames are read again on demand (the file
    read last is kept open, so a multi-time file such as a GRIB analysis is read once). A
    time found again (in a later file, or twice in one file) keeps its first frame and is
    listed in :attr:`FrameIndex.repeated`.
    Station references (a ``station`` dim, or station coordinates in the attributes) are
    opened whole; they are small.

    Parameters
    ----------
    against : str or sequence of str
        A catalogued run id, a sample dataset name, or files / globs / folders.
    variable : str
        The canonical variable needed.
    catalog : Catalog
        To resolve run ids.
    data_root : Path or None
        The sample data folder, for dataset names.

    Raises
    ------
    ReaderError
        Nothing matches ``against`` or a file cannot be read.
    VerificationError
        The reference lacks ``variable``, has no time coordinate, or its files disagree on the grid.
    """
    from engine import datasets
    from engine.readers import open_any

    items = [against] if isinstance(against, str) else list(against)
    if not items:
        raise VerificationError("against: give a dataset name, a run id or files")
    label = _reference_label(items, catalog)
    if label.startswith("run:"):
        return _run_reference(catalog, items[0], variable, label)

    fmt: str | None = None
    if label.startswith("dataset:"):
        meta = datasets.get(items[0])
        fmt = meta.format
        if meta.kind == "stations" or meta.combine != "time":
            return _whole_reference(datasets.open_dataset(meta.name, data_root), variable, label)
    paths = datasets.resolve_inputs(items, data_root)

    cache: dict[str, Any] = {"path": None, "ds": None}
    lock = threading.Lock()

    def opened(path: Path) -> xr.Dataset:
        # keep the file read last: consecutive frames of one file cost one read
        if cache["path"] != path:
            cache["ds"] = open_any(path, format=fmt)
            cache["path"] = path
        return cache["ds"]

    times: dict[np.datetime64, tuple[Path, int | None]] = {}
    repeated: list[np.datetime64] = []
    template: xr.DataArray | None = None
    for path in paths:
        ds = opened(path)
        if "station" in ds.dims or "station_lat" in ds.attrs:
            if len(paths) > 1:
                raise VerificationError(f"{path}: station files are verified one at a time (or as a dataset name)")
            return _whole_reference(ds, variable, label)
        if variable not in ds.data_vars:
            raise VerificationError(f"{path}: no variable {variable!r} (has {', '.join(map(str, ds.data_vars))})")
        da = ds[variable]
        if "time" not in da.coords:
            raise VerificationError(
                f"{path}: {variable} has no time coordinate, so it cannot be matched to valid times"
            )
        tvals = np.atleast_1d(da["time"].values)
        frame = _to_frame(da.isel(time=0) if "time" in da.dims else da)
        if template is None:
            template = frame
        elif not _same_grid(frame, template, tuple(map(str, frame.dims[-2:]))):
            raise VerificationError(
                f"{path}: grid {dict(frame.sizes)} differs from the first file's {dict(template.sizes)}"
            )
        for i, t in enumerate(tvals):
            key = _time_key(t)
            if key in times:
                repeated.append(key)  # the first file's frame is kept (module docstring)
            else:
                times[key] = (path, i if "time" in da.dims else None)
    assert template is not None  # resolve_inputs never returns an empty list

    def load(key: tuple[Path, int | None]) -> xr.DataArray:
        path, i = key
        # dask may call this from several threads; the one-file cache is not thread-safe
        with lock:
            da = opened(path)[variable]
            return _to_frame(da.isel(time=i) if i is not None else da).load()

    return Reference(label, frames=FrameIndex(label, times, load, template, tuple(repeated)))


def _to_frame(da: xr.DataArray) -> xr.DataArray:
    """One reference time: the member mean of an analysis ensemble, scalar coordinates dropped."""
    if "member" in da.dims:
        # an ensemble of analyses (ERA5 EDA): its mean is the best estimate of the truth
        da = da.mean("member", keep_attrs=True)
    extra = [d for d in da.dims if d not in ("y", "x", "lat", "lon")]
    if extra:
        raise DimensionError(f"{da.name}: reference frames must be 2-D grids; extra dims {extra}")
    # the data contract's order (y, x) / (lat, lon), whatever order the file stores
    order = [d for d in ("y", "x", "lat", "lon") if d in da.dims]
    return da.drop_vars([c for c in da.coords if c not in da.dims]).transpose(*order)


def _whole_reference(ds: xr.Dataset, variable: str, label: str) -> Reference:
    if "station" not in ds.dims and "station_lat" in ds.attrs:
        ds = _single_station(ds, label)
    if "station" in ds.dims:
        if variable not in ds.data_vars:
            raise VerificationError(
                f"{label}: no station variable {variable!r} (has {', '.join(map(str, ds.data_vars))})"
            )
        if "lat" not in ds.coords or "lon" not in ds.coords:
            raise VerificationError(f"{label}: the stations have no coordinates (lat/lon), so they cannot be matched")
        return Reference(label, stations=ds)
    if variable not in ds.data_vars or "time" not in ds[variable].dims:
        raise VerificationError(f"{label}: no {variable!r} with a time dim to verify against")
    da = ds[variable]
    frames: dict[np.datetime64, int] = {}
    repeated = []
    for i, t in enumerate(da["time"].values):
        key = _time_key(t)
        if key in frames:
            repeated.append(key)  # the first is kept, as for files
        else:
            frames[key] = i
    template = _to_frame(da.isel(time=0))
    return Reference(
        label,
        frames=FrameIndex(label, frames, lambda i: _to_frame(da.isel(time=i)).load(), template, tuple(repeated)),
    )


def _run_reference(catalog: Catalog, run_id: str, variable: str, label: str) -> Reference:
    """Another run as reference: each of its lead times is a frame at its valid time."""
    rec = catalog.get_run(run_id)
    ds = _open_run(rec)
    if variable not in ds.data_vars:
        raise VerificationError(f"{label}: no variable {variable!r} (has {', '.join(map(str, ds.data_vars))})")
    da = _single_init(ds[variable], rec.run_id)
    valid = _valid_times(da, rec)
    frames = {_time_key(t): k for k, t in enumerate(valid)}
    template = _to_frame(da.isel(lead_time=0))
    return Reference(
        label, frames=FrameIndex(label, frames, lambda k: _to_frame(da.isel(lead_time=k)).load(), template)
    )


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


def _open_run(rec: RunRecord) -> xr.Dataset:
    if rec.status != "succeeded":
        raise VerificationError(f"run {rec.run_id} is {rec.status}, not succeeded: nothing to verify")
    if rec.path is None:
        raise VerificationError(f"run {rec.run_id} has no run store (a baseline run or an import without data)")
    return open_run_store(rec.path)


def _single_init(da: xr.DataArray, run_id: str) -> xr.DataArray:
    if "init_time" in da.dims:
        if da.sizes["init_time"] != 1:
            raise DimensionError(f"run {run_id}: {da.sizes['init_time']} init times; verify runs with one init time")
        da = da.isel(init_time=0)
    if "lead_time" not in da.dims:
        raise DimensionError(f"run {run_id}: {da.name} has no lead_time dim (dims {da.dims})")
    return da


def _init_time(da: xr.DataArray, rec: RunRecord) -> np.datetime64:
    if "init_time" in da.coords:
        return _time_key(np.ravel(da["init_time"].values)[0])
    if rec.init_time is not None:
        return _time_key(rec.init_time)
    raise CoordError(f"run {rec.run_id}: no init time in the store or the catalogue")


def _valid_times(da: xr.DataArray, rec: RunRecord) -> list[np.datetime64]:
    if "valid_time" in da.coords and da["valid_time"].dims == ("lead_time",):
        return [_time_key(t) for t in da["valid_time"].values]
    init = _init_time(da, rec)
    return [init + np.timedelta64(pd.Timedelta(lead).to_timedelta64(), "ns") for lead in da["lead_time"].values]


def _pick_variable(ds: xr.Dataset, wanted: str | None, run_id: str) -> str:
    candidates = [str(v) for v in ds.data_vars if "lead_time" in ds[v].dims]
    if wanted is not None:
        if wanted not in candidates:
            raise VerificationError(f"run {run_id}: no forecast variable {wanted!r} (has {', '.join(candidates)})")
        return wanted
    if not candidates:
        raise VerificationError(f"run {run_id}: the store holds no variable with a lead_time dim")
    return candidates[0]


def _fmt_times(times: Sequence[np.datetime64], limit: int = 6) -> str:
    text = ", ".join(pd.Timestamp(t).strftime("%Y-%m-%d %H:%M") for t in times[:limit])
    return text + (f" and {len(times) - limit} more" if len(times) > limit else "")


def _fmt_duration(td: pd.Timedelta) -> str:
    sec = pd.Timedelta(td).total_seconds()
    if sec and sec % 3600 == 0:
        return f"{sec / 3600:g} h"
    return f"{sec / 60:g} min" if sec % 60 == 0 else f"{sec:g} s"


def _within(tolerance: pd.Timedelta) -> str:
    """`` within <tolerance>`` for the messages about missing times; empty for an exact match."""
    if tolerance > pd.Timedelta(0):
        return f" within {_fmt_duration(tolerance)}"
    return ""


def _tolerance_hint(tolerance: pd.Timedelta) -> str:
    """For an exact match, a pointer to the option that allows the nearest time instead."""
    if tolerance > pd.Timedelta(0):
        return ""
    return "; for the nearest reference time, set a time tolerance (time_tolerance, --time-tolerance 30min)"


def _require_times(
    frames: FrameIndex, times: Sequence[np.datetime64], run_id: str, tolerance: pd.Timedelta
) -> list[np.datetime64]:
    """The frame time matched to each of ``times``; an error naming the times that have none."""
    matched = frames.nearest(times, tolerance)
    missing = [t for t, m in zip(times, matched, strict=True) if m is None]
    if missing:
        have = sorted(frames.times)
        span = f"{_fmt_times(have[:1])} to {_fmt_times(have[-1:])}" if have else "nothing"
        raise VerificationError(
            f"{frames.label}: no frame{_within(tolerance)} at {len(missing)} valid time(s) of run {run_id}: "
            f"{_fmt_times(missing)} (the reference covers {span}, {len(have)} times){_tolerance_hint(tolerance)}"
        )
    return [m for m in matched if m is not None]


def _offset_note(
    label: str, valid: Sequence[np.datetime64] | np.ndarray, used: Sequence[np.datetime64 | None],
    what: str = "lead time(s)",
) -> str | None:
    """A note on the ``what`` verified against a reference time other than their valid time."""
    offsets = [abs(pd.Timedelta(u - v)) for v, u in zip(valid, used, strict=True) if u is not None and u != v]
    if not offsets:
        return None
    return (
        f"{len(offsets)} of {len(valid)} {what} scored against {label} at a time other than the valid time "
        f"(the nearest within the tolerance; largest offset {_fmt_duration(max(offsets))})"
    )


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def _rows_of(metric: str, value: XarrayLike, lead: Any) -> list[dict[str, Any]]:
    """Flatten a score over its ``threshold`` / ``window`` dims into rows."""
    # The metrics return the type of their inputs; the fields scored here are DataArrays.
    if not isinstance(value, xr.DataArray):
        raise TypeError(f"{metric}: expected a DataArray score, got {type(value).__name__}")
    rows = []
    thr = value["threshold"].values if "threshold" in value.dims else [None]
    win = value["window"].values if "window" in value.dims else [None]
    for t in thr:
        for w in win:
            sel = {}
            if t is not None:
                sel["threshold"] = t
            if w is not None:
                sel["window"] = w
            v = float(value.sel(sel)) if sel else float(value)
            rows.append(
                {
                    "lead_time": lead,
                    "metric": metric,
                    "threshold": np.nan if t is None else float(t),
                    "scale": np.nan if w is None else float(w),
                    "value": v if math.isfinite(v) else np.nan,
                }
            )
    return rows


def score_fields(
    fcst: xr.DataArray,
    obs: xr.DataArray,
    *,
    metrics: Sequence[str],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    fss_thresholds: Sequence[float] = DEFAULT_FSS_THRESHOLDS,
    windows: Sequence[int] = DEFAULT_WINDOWS,
    climatology: xr.DataArray | None = None,
    weights: xr.DataArray | None = None,
    member_dim: Hashable = "member",
) -> pd.DataFrame:
    """Scores of aligned forecast and reference fields, one lead time at a time.

    Each lead time is loaded (computed, for dask inputs) on its own and scored over the whole
    grid, so memory holds one lead's fields whatever the length of the sequence, and chunked
    and in-memory inputs give identical numbers. Deterministic scores of an ensemble use the
    ensemble mean; ensemble metrics are skipped for deterministic forecasts.

    Parameters
    ----------
    fcst : xarray.DataArray
        Forecast on ``(lead_time, [member,] <grid>)``, units of the variable.
    obs : xarray.DataArray
        Reference on ``(lead_time, <grid>)`` with the same coordinates.
    metrics : sequence of str
        Names from :data:`METRICS`.
    thresholds : sequence of float
        Thresholds of the categorical scores (units of the variable).
    fss_thresholds : sequence of float
        Thresholds of the FSS.
    windows : sequence of int
        FSS windows in grid points.
    climatology : xarray.DataArray, optional
        For ``acc``: on ``(lead_time, <grid>)`` or ``<grid>``.
    weights : xarray.DataArray, optional
        Grid weights (e.g. :func:`verification.latitude_weights`) for every score.
    member_dim : str
        The ensemble dim.

    Returns
    -------
    DataFrame
        Columns ``lead_time, metric, threshold, scale, value`` (NaN threshold / scale where the
        metric has none).

    Raises
    ------
    DimensionError
        If the inputs lack ``lead_time`` or their lead times differ.
    VerificationError
        If ``acc`` is asked for without a climatology.
    """
    for name, arr in (("fcst", fcst), ("obs", obs)):
        if "lead_time" not in arr.dims:
            raise DimensionError(f"{name} has no lead_time dim (dims {arr.dims})")
    if fcst.sizes["lead_time"] != obs.sizes["lead_time"]:
        raise DimensionError(f"fcst has {fcst.sizes['lead_time']} lead times, obs {obs.sizes['lead_time']}")
    ensemble = member_dim in fcst.dims and fcst.sizes[member_dim] > 1
    if member_dim in fcst.dims and not ensemble:
        fcst = fcst.isel({member_dim: 0}, drop=True)
    if "acc" in metrics and climatology is None:
        raise VerificationError("acc needs a climatology (--climatology DATASET|FILE)")
    kw: dict[str, Any] = {"weights": weights} if weights is not None else {}
    rows: list[dict[str, Any]] = []
    for k in range(fcst.sizes["lead_time"]):
        lead = pd.Timedelta(fcst["lead_time"].values[k]) if "lead_time" in fcst.coords else pd.Timedelta(k, "s")
        f_k = fcst.isel(lead_time=k, drop=True).load()
        o_k = obs.isel(lead_time=k, drop=True).load()
        det = f_k.mean([member_dim]) if ensemble else f_k
        categorical = [m for m in metrics if METRICS[m].family == "categorical"]
        if categorical and thresholds:
            table = contingency_table(det, o_k, threshold=list(thresholds), **kw)
            scores = scores_from_table(table, categorical)
            for m in categorical:
                rows += _rows_of(m, scores[m], lead)
        if "fss" in metrics and fss_thresholds and windows:
            rows += _rows_of("fss", fss(det, o_k, threshold=list(fss_thresholds), window=list(windows), **kw), lead)
        for name, func in (("bias", bias), ("mae", mae), ("mse", mse), ("rmse", rmse)):
            if name in metrics:
                rows += _rows_of(name, func(det, o_k, **kw), lead)
        if "acc" in metrics and climatology is not None:
            clim = climatology.isel(lead_time=k, drop=True) if "lead_time" in climatology.dims else climatology
            rows += _rows_of("acc", acc(det, o_k, climatology=clim.load(), centred=False, **kw), lead)
        if ensemble:
            if "crps" in metrics:
                rows += _rows_of("crps", crps_ensemble(f_k, o_k, member_dim=member_dim, **kw), lead)
            wanted = [m for m in ("spread", "rmse_ensemble_mean", "spread_skill") if m in metrics]
            if wanted:
                ss = spread_skill(f_k, o_k, member_dim=member_dim, **kw)
                parts = {"spread": ss["spread"], "rmse_ensemble_mean": ss["rmse"], "spread_skill": ss["ratio"]}
                for m in wanted:
                    rows += _rows_of(m, parts[m], lead)
    return pd.DataFrame(rows, columns=["lead_time", "metric", "threshold", "scale", "value"])


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------


def _metrics_for(case: str, options: VerifyOptions, ensemble: bool) -> list[str]:
    names = list(options.metrics or _DEFAULTS[case])
    if not ensemble:
        asked = [m for m in names if METRICS[m].family == "ensemble"]
        if options.metrics is not None and asked:
            raise VerificationError(f"metrics {', '.join(asked)} need an ensemble; the run is deterministic")
        names = [m for m in names if METRICS[m].family != "ensemble"]
    return names


def _climatology(
    spec: str | None, variable: str, valid: Sequence[np.datetime64], target: xr.DataArray, data_root: Path | None
) -> tuple[xr.DataArray | None, str | None]:
    """The climatology at the run's valid times on the run grid, or ``None`` and why not."""
    from engine import datasets
    from engine.readers import open_any

    name = spec or DEFAULT_CLIMATOLOGY
    try:
        if Path(name).expanduser().is_file():
            ds = open_any(Path(name).expanduser())
        else:
            ds = datasets.open_dataset(name, data_root)
    except WxError as err:
        if spec is not None:
            raise
        return None, f"no ACC: default climatology {name} unavailable ({err})"
    if variable not in ds.data_vars:
        if spec is not None:
            raise VerificationError(
                f"climatology {name}: no variable {variable!r} (has {', '.join(map(str, ds.data_vars))})"
            )
        return None, f"no ACC: climatology {name} has no {variable}"
    clim = ds[variable]
    months = xr.DataArray([pd.Timestamp(t).month for t in valid], dims=["lead_time"])
    if "month" in clim.dims:
        have = set(int(m) for m in clim["month"].values)
        lacking = sorted(set(int(m) for m in months.values) - have)
        if lacking:
            raise VerificationError(f"climatology {name}: no month {lacking} (has {sorted(have)})")
        clim = clim.sel(month=months)
    elif "dayofyear" in clim.dims:
        clim = clim.sel(dayofyear=xr.DataArray([pd.Timestamp(t).dayofyear for t in valid], dims=["lead_time"]))
    elif any(d not in ("lat", "lon") for d in clim.dims):
        raise VerificationError(f"climatology {name}: expected dims (month|dayofyear, lat, lon), got {clim.dims}")
    clim = clim.drop_vars([c for c in clim.coords if c not in ("lat", "lon")])
    if not _same_grid(clim, target, ("lat", "lon")):
        clim = regrid_latlon(clim, target["lat"].values, target["lon"].values)
    note = f"ACC against the climatology {name}"
    return clim.assign_coords(lat=target["lat"].values, lon=target["lon"].values), note


def _baseline(catalog: Catalog, rec: RunRecord, reference: str) -> str:
    """Register (once) the baseline run that holds the persistence scores of ``rec``."""
    bid = baseline_run_id(rec.run_id)
    if catalog.has_run(bid):
        existing = catalog.get_run(bid)
        if existing.parameters.get("baseline_of") != rec.run_id:
            raise VerificationError(f"run {bid} exists and is not the persistence baseline of {rec.run_id}")
        return bid
    catalog.register_run(
        bid,
        "persistence",
        rec.kind,
        rec.domain,
        rec.init_time,
        {
            "baseline_of": rec.run_id,
            "method": "the reference at the run's init time, held over every lead time",
            "reference": reference,
        },
        status="succeeded",
    )
    return bid


def _finish_rows(df: pd.DataFrame, run_id: str, reference: str, variable: str) -> pd.DataFrame:
    out = df.copy()
    out.insert(0, "run_id", run_id)
    out.insert(1, "reference", reference)
    out.insert(2, "variable", variable)
    if "region" not in out:
        out["region"] = None
    return out[["run_id", "reference", "variable", "lead_time", "metric", "threshold", "scale", "region", "value"]]


def verify_run(
    catalog: Catalog,
    run_id: str,
    against: str | Sequence[str],
    *,
    data_root: Path | None,
    options: VerifyOptions | None = None,
    write: bool = True,
) -> VerificationResult:
    """Verify a catalogued run against a reference and write the scores to the catalogue.

    Parameters
    ----------
    catalog : Catalog
        The catalogue holding the run; scores, baseline run and point forecasts go there.
    run_id : str
        A succeeded run with a store.
    against : str or sequence of str
        Sample dataset name, another run id, or files / globs / folders.
    data_root : Path or None
        The sample data folder (dataset names, default climatology).
    options : VerifyOptions, optional
        Metrics, thresholds, windows, variable, climatology, persistence, time tolerance.
    write : bool
        Write to the catalogue (``False``: compute only).

    Returns
    -------
    VerificationResult

    Raises
    ------
    UnknownRunError
        ``run_id`` is not catalogued.
    VerificationError
        The reference lacks valid times of the run (within the time tolerance), a station
        reference repeats a report time, or a metric cannot be computed for this case.
    CoordError
        The run and the reference grids differ (projected grids are never regridded).
    ReaderError
        The reference cannot be found or read.
    """
    options = options or VerifyOptions()
    rec = catalog.get_run(run_id)
    ds = _open_run(rec)
    variable = _pick_variable(ds, options.variable, run_id)
    fc = _single_init(ds[variable], run_id)
    ref = open_reference(against, variable, catalog=catalog, data_root=data_root)
    if ref.stations is not None:
        gm = fc.attrs.get("grid_mapping")
        if gm in ds:
            # the CF grid mapping lets station matching use the exact projection
            fc = fc.assign_coords({gm: ds[gm]})
        return _verify_stations(catalog, rec, fc, ref, variable, options, write)
    assert ref.frames is not None
    case = _case_of(fc)
    ensemble = "member" in fc.dims and fc.sizes["member"] > 1
    metrics = _metrics_for(case, options, ensemble)
    valid = _valid_times(fc, rec)
    tolerance = options.time_tolerance
    assert isinstance(tolerance, pd.Timedelta)  # VerifyOptions normalises it
    notes: list[str] = []
    if ref.frames.repeated:
        notes.append(
            f"{len(ref.frames.repeated)} time(s) repeated in {ref.label} (e.g. {_fmt_times(ref.frames.repeated[:1])}):"
            " the first file's frame was used"
        )
    used = ref.frames.nearest(valid, tolerance)
    n_missing = sum(u is None for u in used)
    if case == "latlon" and 0 < n_missing < len(valid):
        # Analyses come at their own cadence (the ERA5 sample is 12-hourly) while a run writes
        # every output step: verify the leads that have an analysis and say which were left out.
        keep = [i for i, u in enumerate(used) if u is not None]
        notes.append(f"{n_missing} lead time(s) without an analysis{_within(tolerance)} in {ref.label} left out")
        fc = fc.isel(lead_time=keep)
        valid = [valid[i] for i in keep]
    frame_times = _require_times(ref.frames, valid, run_id, tolerance)
    offsets = _offset_note(ref.label, valid, frame_times)
    if offsets:
        notes.append(offsets)
    grid = ("y", "x") if case == "grid" else ("lat", "lon")
    template = ref.frames.template
    if case == "grid" and not _same_grid(template, fc, grid):
        raise CoordError(
            f"{ref.label}: grid {dict(template.sizes)} differs from run {run_id}'s "
            f"{ {d: fc.sizes[d] for d in grid} } (or its x/y coordinates differ); projected grids are not regridded"
        )
    if case == "latlon" and any(d not in template.dims for d in grid):
        raise CoordError(f"{ref.label}: not a latitude-longitude grid (dims {template.dims}); run {run_id} is")
    regrid = case == "latlon" and not _same_grid(template, fc, grid)
    if regrid:
        notes.append(f"{ref.label} interpolated bilinearly to the run grid")

    def on_run_grid(da: xr.DataArray) -> xr.DataArray:
        if regrid:
            da = regrid_latlon(da, fc["lat"].values, fc["lon"].values)
        # the reference takes the run's grid coordinates, so xarray aligns nothing away
        return da.assign_coords({d: fc[d].values for d in grid if d in fc.coords})

    leads = fc["lead_time"].values
    obs = on_run_grid(ref.frames.stack(frame_times, "lead_time", leads))
    obs_time = _obs_time_array(frame_times, leads, valid)
    fcst = fc.drop_vars([c for c in fc.coords if c not in fc.dims])
    weights = latitude_weights(fcst["lat"]) if case == "latlon" else None
    thresholds = options.thresholds or (DEFAULT_THRESHOLDS if variable == "precip_rate" else ())
    fss_thresholds = options.thresholds or (DEFAULT_FSS_THRESHOLDS if variable == "precip_rate" else ())
    windows = options.windows or DEFAULT_WINDOWS
    needs_thr = [m for m in metrics if METRICS[m].family in ("categorical", "fss")]
    if needs_thr and not thresholds:
        if options.metrics is not None:
            raise VerificationError(f"metrics {', '.join(needs_thr)} need --thresholds for {variable}")
        metrics = [m for m in metrics if m not in needs_thr]
    climatology = None
    if "acc" in metrics:
        climatology, note = _climatology(options.climatology, variable, valid, fcst, data_root)
        if climatology is None:
            if options.metrics is not None:
                raise VerificationError(f"acc: {note}")
            metrics = [m for m in metrics if m != "acc"]
        if note:
            notes.append(note)
    kw: dict[str, Any] = {
        "metrics": metrics,
        "thresholds": thresholds,
        "fss_thresholds": fss_thresholds,
        "windows": windows,
        "climatology": climatology,
        "weights": weights,
    }
    scores = _finish_rows(score_fields(fcst, obs, **kw), run_id, ref.label, variable)

    baseline = None
    if options.persistence:
        init = _init_time(fc, rec)
        (init_frame,) = ref.frames.nearest([init], tolerance)
        if init_frame is not None:
            held = on_run_grid(ref.frames.stack([init_frame] * len(leads), "lead_time", leads))
            baseline = baseline_run_id(run_id)
            kw["metrics"] = [m for m in metrics if METRICS[m].family != "ensemble"]
            base = score_fields(held, obs, **kw)
            scores = pd.concat([scores, _finish_rows(base, baseline, ref.label, variable)], ignore_index=True)
        else:
            notes.append(
                f"no persistence baseline: {ref.label} has no frame{_within(tolerance)} at the init time "
                f"{_fmt_times([init])}"
            )
    if write:
        if baseline is not None:
            _baseline(catalog, rec, ref.label)
        catalog.insert_scores(scores)
    return VerificationResult(run_id, ref.label, variable, case, scores, baseline, None, notes, obs_time)


def _obs_time_array(used: Sequence[Any], leads: np.ndarray, valid: Sequence[np.datetime64]) -> xr.DataArray:
    """The reference times used, on ``lead_time`` with the ``valid_time`` coordinate."""
    return xr.DataArray(
        np.array([np.datetime64("NaT") if u is None else u for u in used], dtype="datetime64[ns]"),
        dims=["lead_time"],
        coords={"lead_time": leads, "valid_time": ("lead_time", np.array(valid, dtype="datetime64[ns]"))},
        name="obs_time",
        attrs={"long_name": "time of the reference used"},
    )


def _verify_stations(
    catalog: Catalog,
    rec: RunRecord,
    fc: xr.DataArray,
    ref: Reference,
    variable: str,
    options: VerifyOptions,
    write: bool,
) -> VerificationResult:
    """Forecasts matched to stations, scored per station and lead time; point forecasts written."""
    st = ref.stations
    assert st is not None
    ensemble = "member" in fc.dims and fc.sizes["member"] > 1
    metrics = _metrics_for("stations", options, ensemble)
    unsupported = [m for m in metrics if m not in ("bias", "mae", "rmse", "crps")]
    if unsupported:
        raise VerificationError(
            f"metrics {', '.join(unsupported)} are not computed at stations (bias, mae, rmse, crps)"
        )
    valid = _valid_times(fc, rec)
    tolerance = options.time_tolerance
    assert isinstance(tolerance, pd.Timedelta)  # VerifyOptions normalises it
    obs_all = st[variable]
    report_times = _station_times(obs_all, ref)
    # the reference must cover every valid time (a report time of any station within the
    # tolerance, as the exact match always required); which report each station uses is decided
    # per station below, among its valid ones
    covered = nearest_time_indices(report_times, valid, tolerance) >= 0
    missing = [t for t, ok in zip(valid, covered, strict=True) if not ok]
    if missing:
        raise VerificationError(
            f"{ref.label}: no observation{_within(tolerance)} at {len(missing)} valid time(s) of run {rec.run_id}: "
            f"{_fmt_times(missing)}{_tolerance_hint(tolerance)}"
        )
    meta = pd.DataFrame(
        {
            "station": st["station"].values.astype(str),
            "lat": st["lat"].values.astype(float),
            "lon": st["lon"].values.astype(float),
        }
    )
    if "elevation" in st.coords:
        meta["elevation"] = st["elevation"].values.astype(float)
    meta = meta[np.isfinite(meta["lat"]) & np.isfinite(meta["lon"])]
    if meta.empty:
        raise VerificationError(f"{ref.label}: no station has coordinates")
    keep = {"lat", "lon", fc.attrs.get("grid_mapping")}
    grid_fc = fc.drop_vars([c for c in fc.coords if c not in fc.dims and c not in keep])
    if "member" in grid_fc.dims and not ensemble:
        grid_fc = grid_fc.isel(member=0, drop=True)
    with warnings.catch_warnings():
        # stations off the grid are expected (a station list covers more than one domain):
        # they come back NaN and are dropped below, counted in the notes instead of warned about
        warnings.filterwarnings("ignore", message="stations outside the grid")
        # matching indexes the lazy store, so only the grid cells around the stations are read
        matched_ds = match_to_stations(grid_fc.to_dataset(name=variable), meta, method=options.station_method)
    matched = matched_ds[variable].load()
    inside = matched.notnull().any([d for d in matched.dims if d != "station"])
    notes = []
    n_out = int((~inside).sum())
    if n_out:
        notes.append(f"{n_out} of {matched.sizes['station']} stations are outside the run grid")
    matched = matched.sel(station=inside)
    if matched.sizes["station"] == 0:
        raise VerificationError(f"{ref.label}: no station lies inside the grid of run {rec.run_id}")
    ids = matched["station"].values
    leads = fc["lead_time"].values
    # each station's nearest valid report within the tolerance (exactly at the valid time by default)
    station_obs = obs_all.sel(station=ids).load()
    observed = match_to_times(station_obs, valid, tolerance=tolerance).rename(time="lead_time")
    observed = observed.assign_coords(lead_time=leads, valid_time=("lead_time", np.array(valid, "datetime64[ns]")))
    observed = observed.drop_vars([c for c in observed.coords if c not in (*observed.dims, "valid_time", "obs_time")])
    observed = observed.transpose("lead_time", "station")
    used = [None if np.isnat(t) else t for t in np.ravel(observed["obs_time"].values)]
    offsets = _offset_note(ref.label, np.repeat(valid, len(ids)), used, "station-lead pairs")
    if offsets:
        notes.append(offsets)
    obs = observed.drop_vars([c for c in observed.coords if c not in observed.dims])
    matched = matched.drop_vars([c for c in matched.coords if c not in matched.dims])
    scores = _finish_rows(_station_scores(matched, obs, metrics, ensemble), rec.run_id, ref.label, variable)

    init = _init_time(fc, rec)
    baseline = None
    has_init = bool(nearest_time_indices(report_times, [init], tolerance)[0] >= 0)
    if options.persistence and has_init:
        # persistence at a station: its observation at the init time (matched as the valid
        # times are), held over every lead time
        held = match_to_times(station_obs, [init], tolerance=tolerance).isel(time=0, drop=True)
        held = held.drop_vars([c for c in held.coords if c != "station"])
        held = held.expand_dims(lead_time=leads).transpose(*obs.dims)
        baseline = baseline_run_id(rec.run_id)
        base = _station_scores(held, obs, [m for m in metrics if m != "crps"], ensemble=False)
        scores = pd.concat([scores, _finish_rows(base, baseline, ref.label, variable)], ignore_index=True)
    elif options.persistence:
        notes.append(
            f"no persistence baseline: {ref.label} has no observation{_within(tolerance)} at the init time "
            f"{_fmt_times([init])}"
        )

    points = matched.to_dataframe(name="value").reset_index()
    points = points.rename(columns={"station": "station_id"})
    points["run_id"], points["variable"], points["init_time"] = rec.run_id, variable, pd.Timestamp(init)
    if "member" not in points:
        points["member"] = None
    points = points[["run_id", "station_id", "init_time", "lead_time", "variable", "value", "member"]]
    if write:
        known = set(catalog.stations()["station_id"].astype(str))
        new = meta[meta["station"].isin(ids) & ~meta["station"].isin(known)].rename(columns={"station": "station_id"})
        if len(new):
            catalog.upsert_stations(new.assign(source=ref.label))
        if baseline is not None:
            _baseline(catalog, rec, ref.label)
        catalog.insert_scores(scores)
        catalog.insert_point_forecasts(points)
    obs_time = observed["obs_time"].drop_vars("obs_time", errors="ignore")
    return VerificationResult(
        rec.run_id, ref.label, variable, "stations", scores, baseline, points, notes, obs_time, observed
    )


def _station_times(obs: xr.DataArray, ref: Reference) -> np.ndarray:
    """The report times of a station reference; an error naming the reference if one repeats."""
    times = np.asarray(obs["time"].values, dtype="datetime64[ns]")
    uniq, counts = np.unique(times, return_counts=True)
    if (counts > 1).any():
        source = ref.stations.attrs.get("source_files") if ref.stations is not None else None
        where = f"{ref.label} ({source})" if source and str(source) not in ref.label else ref.label
        reps = uniq[counts > 1]
        raise VerificationError(
            f"{where}: {len(reps)} report time(s) repeat, e.g. {_fmt_times(list(reps[:3]))}; "
            "keep one report per station and time"
        )
    if np.isnat(times).any():
        raise VerificationError(f"{ref.label}: report times hold NaT; drop those reports")
    return times


def _station_scores(fcst: xr.DataArray, obs: xr.DataArray, metrics: Sequence[str], ensemble: bool) -> pd.DataFrame:
    """Rows per station (``region = station:<id>``) and for all stations together (``region`` None).

    ``fcst`` is on ``(lead_time, [member,] station)``, ``obs`` on ``(lead_time, station)``.
    """
    det = fcst.mean("member") if ensemble else fcst
    name = str(obs.name or "value")
    table = score_table(det.rename(name), obs.rename(name), by=("station", "lead_time"))
    # a station that reported nothing at a lead time has no score there (not a NaN row)
    table = table[table["n"] > 0]
    rows: list[dict[str, Any]] = []
    for m in ("bias", "mae", "rmse"):
        if m in metrics:
            rows.extend(
                {"lead_time": r.lead_time, "metric": m, "region": f"station:{r.station}", "value": getattr(r, m)}
                for r in table.itertuples(index=False)
            )
    if ensemble and "crps" in metrics:
        per_station = crps_ensemble(fcst, obs, preserve_dims=["station", "lead_time"])
        rows.extend(
            {
                "lead_time": pd.Timedelta(lead),
                "metric": "crps",
                "region": f"station:{sid}",
                "value": float(per_station.sel(station=sid, lead_time=lead)),
            }
            for sid in per_station["station"].values
            for lead in per_station["lead_time"].values
            if np.isfinite(per_station.sel(station=sid, lead_time=lead))
        )
    per = pd.DataFrame(rows, columns=["lead_time", "metric", "region", "value"])
    per["threshold"] = np.nan
    per["scale"] = np.nan
    # all stations together: the same metric functions, reduced over the stations
    domain = score_fields(fcst, obs, metrics=list(metrics), thresholds=(), fss_thresholds=(), windows=())
    domain["region"] = None
    out = pd.concat([per, domain], ignore_index=True)
    out["value"] = out["value"].astype(float)
    return out


# --------------------------------------------------------------------------------------------
# Quality analysis
# --------------------------------------------------------------------------------------------


def assess_run(
    catalog: Catalog,
    run_id: str,
    against: str | Sequence[str],
    *,
    data_root: Path | None,
    config: QualityConfig | None = None,
    variable: str = "precip_rate",
    write: bool = True,
    time_tolerance: pd.Timedelta | str | None = None,
) -> QualityResult:
    """RadarQA-style quality reports of a nowcast run: one per frame and one for the sequence.

    The forecast and the observed frames at the same valid times (exactly, or the nearest
    frame within ``time_tolerance``, as in :func:`verify_run`; same grid) go to
    :func:`verification.radar_quality.assess_sequence`. An ensemble is assessed through its
    mean, so its sharpness rating describes the mean's smoothness. Without ``config`` the grid
    spacing is read from the run's ``x`` coordinate (radar defaults otherwise). Every report is
    stored with :meth:`Catalog.insert_quality_report` under the reference label.

    Parameters
    ----------
    catalog : Catalog
        The catalogue holding the run; reports go there.
    run_id : str
        A succeeded nowcast run.
    against : str or sequence of str
        Observed frames: sample dataset, files or another run.
    data_root : Path or None
        The sample data folder.
    config : QualityConfig, optional
        Thresholds, FSS window and spacing.
    variable : str
        The rain-rate variable (mm h-1).
    write : bool
        Store the reports.
    time_tolerance : Timedelta or str, optional
        Largest distance between a valid time and the observed frame used for it (see
        :attr:`VerifyOptions.time_tolerance`); default 0, an exact match.

    Returns
    -------
    QualityResult

    Raises
    ------
    UnknownRunError, VerificationError, CoordError, ReaderError
        As in :func:`verify_run`.
    """
    rec = catalog.get_run(run_id)
    ds = _open_run(rec)
    variable = _pick_variable(ds, variable, run_id)
    fc = _single_init(ds[variable], run_id)
    ref = open_reference(against, variable, catalog=catalog, data_root=data_root)
    if ref.frames is None:
        raise VerificationError(f"{ref.label}: quality analysis needs gridded observations, not stations")
    case = _case_of(fc)
    grid = ("y", "x") if case == "grid" else ("lat", "lon")
    valid = _valid_times(fc, rec)
    frame_times = _require_times(ref.frames, valid, run_id, parse_time_tolerance(time_tolerance))
    if not _same_grid(ref.frames.template, fc, grid):
        raise CoordError(f"{ref.label}: grid {dict(ref.frames.template.sizes)} differs from run {run_id}'s")
    if "member" in fc.dims:
        fc = fc.mean("member") if fc.sizes["member"] > 1 else fc.isel(member=0, drop=True)
    fcst = fc.drop_vars([c for c in fc.coords if c not in fc.dims]).load()
    obs = ref.frames.stack(frame_times, "lead_time", fcst["lead_time"].values)
    obs = obs.assign_coords({d: fcst[d].values for d in grid if d in fcst.coords}).load()
    if config is None:
        spacing = grid_spacing_km(fcst)
        # the sharpness cut-off must exceed the shortest resolved wave (2 cells)
        config = QualityConfig(spacing_km=spacing, sharp_wavelength_km=max(16.0, 4.0 * spacing))
    sequence, frames = assess_sequence(fcst, obs, config=config)
    if write:
        for report in (sequence, *frames):
            catalog.insert_quality_report(run_id, reference=ref.label, **report.to_record())
    return QualityResult(run_id, ref.label, sequence, frames)


def run_grid_spacing_km(catalog: Catalog, run_id: str, variable: str | None = None) -> float:
    """Grid spacing in km of a catalogued run (see :func:`grid_spacing_km`), e.g. for FSS windows in km.

    Raises
    ------
    UnknownRunError, VerificationError, CoordError
        Unknown run, no store or variable, or a grid without usable coordinates.
    """
    rec = catalog.get_run(run_id)
    ds = _open_run(rec)
    return grid_spacing_km(ds[_pick_variable(ds, variable, run_id)])


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Lead time × metric table of tidy scores (one column per metric, threshold and scale).

    Parameters
    ----------
    scores : DataFrame
        Tidy scores of one run (as in :attr:`VerificationResult.scores`).

    Returns
    -------
    DataFrame
        Index: lead time in minutes; columns ``metric``, ``metric@threshold`` or
        ``metric@threshold/scale`` (the FSS window in grid points), in the order of first
        appearance. Only domain scores (``region`` missing) are tabulated; empty when none.
    """
    df = scores[scores["region"].isna()].copy() if "region" in scores else scores.copy()

    def label(r: Mapping[str, Any]) -> str:
        name = str(r["metric"])
        if pd.notna(r["threshold"]):
            name += f"@{r['threshold']:g}"
        if pd.notna(r["scale"]):
            name += f"/{r['scale']:g}"
        return name

    if df.empty:
        return pd.DataFrame()
    df["column"] = [label(r) for r in df.to_dict("records")]
    df["lead_min"] = pd.to_timedelta(df["lead_time"]).dt.total_seconds() / 60.0
    order = list(dict.fromkeys(df["column"]))
    table = df.pivot_table(index="lead_min", columns="column", values="value", aggfunc="first", dropna=False)
    return table.reindex(columns=order)
