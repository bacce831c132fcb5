"""Verification metrics: pure functions on xarray objects (numpy, xarray, pandas, scipy only).

Every score takes ``fcst, obs`` positionally and keyword-only ``reduce_dims`` /
``preserve_dims`` / ``weights`` (plus ``skipna`` where meaningful), reducing all dims by default.

Public API
----------
continuous
    ``bias``, ``mae``, ``mse``, ``rmse``, ``correlation``, ``acc``
categorical
    ``contingency_table``, ``ContingencyTable``, ``scores_from_table``, ``pod``, ``far``, ``csi``,
    ``ets``, ``hss``, ``frequency_bias``, ``CATEGORICAL_SCORES``
spatial
    ``fss``, ``sal``, ``power_spectrum``, ``displacement``
probabilistic
    ``crps_ensemble``, ``rank_histogram``, ``spread_skill``, ``brier_score``, ``reliability``
weighting
    ``latitude_weights``
records (:mod:`verification.metrics.registry`, imported on demand)
    ``MetricInfo``, ``METRIC_INFO``, ``metric_info``, ``orientation``, ``metric_units``,
    ``metric_display_factor``, ``default_metrics``, ``station_metrics``
"""

from __future__ import annotations

from verification._dims import latitude_weights
from verification.metrics.categorical import (
    CATEGORICAL_SCORES,
    ContingencyTable,
    contingency_table,
    csi,
    ets,
    far,
    frequency_bias,
    hss,
    pod,
    scores_from_table,
)
from verification.metrics.continuous import acc, bias, correlation, mae, mse, rmse
from verification.metrics.probabilistic import brier_score, crps_ensemble, rank_histogram, reliability, spread_skill
from verification.metrics.spatial import displacement, fss, power_spectrum, sal

__all__ = [
    "CATEGORICAL_SCORES",
    "ContingencyTable",
    "acc",
    "bias",
    "brier_score",
    "contingency_table",
    "correlation",
    "crps_ensemble",
    "csi",
    "displacement",
    "ets",
    "far",
    "frequency_bias",
    "fss",
    "hss",
    "latitude_weights",
    "mae",
    "mse",
    "pod",
    "power_spectrum",
    "rank_histogram",
    "reliability",
    "rmse",
    "sal",
    "scores_from_table",
    "spread_skill",
]
