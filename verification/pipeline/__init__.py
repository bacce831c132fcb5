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

Modules: :mod:`~verification.pipeline.options` (defaults, parsers, :class:`VerifyOptions`),
:mod:`~verification.pipeline.references` (reference indexing), :mod:`~verification.pipeline.grids`
(regridding, grid spacing), :mod:`~verification.pipeline.runs` (opening a run),
:mod:`~verification.pipeline.times` (matching in time), :mod:`~verification.pipeline.scoring`,
:mod:`~verification.pipeline.persistence`, :mod:`~verification.pipeline.verify` (gridded cases),
:mod:`~verification.pipeline.stations`, :mod:`~verification.pipeline.quality`,
:mod:`~verification.pipeline.results`. Which metrics run where, with which thresholds, windows
and members, comes from the metric records of :mod:`verification.metrics.registry`.

Public API: ``VerifyOptions``, ``VerificationResult``, ``QualityResult``, ``VerificationError``,
``Reference``, ``FrameIndex``, ``parse_time_tolerance``, ``parse_thresholds``,
``METRICS``, ``DEFAULT_THRESHOLDS``, ``DEFAULT_FSS_THRESHOLDS``, ``DEFAULT_WINDOWS``,
``verify_run``, ``assess_run``, ``score_fields``, ``open_reference``, ``regrid_latlon``,
``grid_spacing_km``, ``run_grid_spacing_km``, ``windows_from_km``, ``baseline_run_id``,
``summary_table``.
"""

from __future__ import annotations

from verification.metrics.registry import METRIC_INFO as METRICS
from verification.metrics.registry import MetricInfo
from verification.pipeline.grids import grid_spacing_km, regrid_latlon, windows_from_km
from verification.pipeline.options import (
    DEFAULT_CLIMATOLOGY,
    DEFAULT_FSS_THRESHOLDS,
    DEFAULT_THRESHOLDS,
    DEFAULT_WINDOWS,
    VerificationError,
    VerifyOptions,
    parse_thresholds,
    parse_time_tolerance,
)
from verification.pipeline.persistence import PERSISTENCE_SUFFIX, baseline_run_id
from verification.pipeline.quality import assess_run
from verification.pipeline.references import FrameIndex, Reference, open_reference
from verification.pipeline.results import QualityResult, VerificationResult, summary_table
from verification.pipeline.runs import run_grid_spacing_km
from verification.pipeline.scoring import score_fields
from verification.pipeline.verify import verify_run

__all__ = [
    "DEFAULT_CLIMATOLOGY",
    "DEFAULT_FSS_THRESHOLDS",
    "DEFAULT_THRESHOLDS",
    "DEFAULT_WINDOWS",
    "METRICS",
    "PERSISTENCE_SUFFIX",
    "FrameIndex",
    "MetricInfo",
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
