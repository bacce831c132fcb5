"""meteolens verification: pure metrics on xarray, station matching, Foehn diagnosis, radar quality.

The metrics (:mod:`verification.metrics`) need only numpy, xarray, pandas and scipy. Every
score takes ``fcst, obs`` positionally and the keyword-only ``reduce_dims`` /
``preserve_dims`` / ``weights`` (plus ``skipna`` where meaningful); by default all dims are
reduced. Dim handling lives in :mod:`verification._dims`.

Public API
----------
Continuous
    ``bias``, ``mae``, ``mse``, ``rmse``, ``correlation``, ``acc`` (anomaly correlation,
    centred or uncentred), ``latitude_weights``
Categorical (event = value >= threshold)
    ``contingency_table``, ``ContingencyTable`` (``update`` / ``merge`` / ``compute``),
    ``scores_from_table``, ``pod``, ``far``, ``csi``, ``ets``, ``hss``, ``frequency_bias``,
    ``CATEGORICAL_SCORES``
Spatial
    ``fss`` (fractions skill score), ``sal`` (structure, amplitude, location),
    ``power_spectrum`` (radially averaged), ``displacement`` (phase correlation)
Ensemble and probability
    ``crps_ensemble``, ``rank_histogram``, ``spread_skill``, ``brier_score``, ``reliability``
Stations (:mod:`verification.stations`)
    ``match_to_stations``, ``match_to_times`` (nearest valid report within a time tolerance),
    ``nearest_time_indices``, ``score_table``, ``wind_direction_error``, ``vector_wind_error``,
    ``STANDARD_LAPSE_RATE``
Radar quality (:mod:`verification.radar_quality`, imported on demand)
    ``assess_frame``, ``assess_sequence``, ``QualityConfig``, ``QualityReport``, ``ATTRIBUTES``
Metric records (:mod:`verification.metrics.registry`, imported on demand)
    ``MetricInfo``, ``METRIC_INFO``, ``metric_info``, ``orientation``, ``metric_units``,
    ``metric_display_factor``, ``default_metrics``: one record per metric the pipeline computes
Scorecards (:mod:`verification.scorecard`, imported on demand)
    ``scorecard``, ``skill``, ``skill_definition``, ``score_levels``
"""

from __future__ import annotations

# The metric API is re-exported whole: one list of names, in verification.metrics.__all__.
from verification.metrics import *  # noqa: F403
from verification.metrics import __all__ as _metric_names
from verification.stations import (
    STANDARD_LAPSE_RATE,
    match_to_stations,
    match_to_times,
    nearest_time_indices,
    score_table,
    vector_wind_error,
    wind_direction_error,
)

__all__ = [
    *_metric_names,
    "STANDARD_LAPSE_RATE",
    "match_to_stations",
    "match_to_times",
    "nearest_time_indices",
    "score_table",
    "vector_wind_error",
    "wind_direction_error",
]
