"""One record of metadata per metric the verification pipeline computes.

Each :class:`MetricInfo` says what a metric needs (a threshold, a window, an ensemble, a
climatology: all from its ``family``), which way is better (``orientation`` and
``perfect_value``), in which units its values are (``units_kind``: those of the variable,
their square, or none), where the pipeline computes it by default (``default_in``) and whether
it can be computed at stations. The pipeline chooses and validates its metrics from these
records (:mod:`verification.pipeline`), and the app reads them for scorecards and display
units (:func:`metric_units`, :func:`metric_display_factor`, :func:`orientation`,
:mod:`verification.scorecard`), so the facts about a metric live here once.

The records are a fixed, read-only mapping rather than an :class:`engine.registry.Registry`
with plugin entry points: a record only means something together with the pipeline code that
computes its metric, so a plugin could add a record but never a score.

Public API: ``MetricInfo``, ``METRIC_INFO``, ``metric_info``, ``orientation``,
``metric_units``, ``metric_display_factor``, ``default_metrics``, ``station_metrics``,
``Orientation``, ``UnitsKind``, ``Family``, ``Case``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from engine.errors import UnknownNameError

#: Which way is better: lower (errors), higher (skill scores), a target value (bias 0,
#: frequency bias 1, spread / skill 1), or none (a diagnostic such as the ensemble spread).
Orientation = Literal["lower", "higher", "target", "none"]
#: Units of a metric's values: the verified variable's, their square (MSE), or none.
UnitsKind = Literal["variable", "variable_squared", "dimensionless"]
#: How the pipeline computes a metric (what it needs): from a contingency table at each
#: threshold, the FSS at each threshold and window, a continuous score, the ACC against a
#: climatology, or from the ensemble members.
Family = Literal["categorical", "fss", "continuous", "acc", "ensemble"]
#: The pipeline's cases (:mod:`verification.pipeline`): projected grids, lat-lon grids, stations.
Case = Literal["grid", "latlon", "stations"]

_INF = math.inf


@dataclass(frozen=True)
class MetricInfo:
    """What the pipeline, the scorecard and the app need to know about one metric.

    Attributes
    ----------
    name : str
        The name written to the ``metric`` column of the scores.
    family : {"categorical", "fss", "continuous", "acc", "ensemble"}
        How it is computed, hence what it needs (see the ``needs_*`` properties).
    description : str
        One line, for help texts.
    orientation : {"lower", "higher", "target", "none"}
        Which way is better.
    units_kind : {"variable", "variable_squared", "dimensionless"}
        Units of the values relative to the variable's.
    perfect_value : float or None
        The value of a perfect forecast (the target for ``orientation="target"``); ``None``
        for diagnostics without one.
    bounds : tuple of float
        The range of possible values (``-inf`` / ``inf`` where unbounded).
    default_in : frozenset of {"grid", "latlon", "stations"}
        The cases where the pipeline computes the metric when no metrics are named.
    at_stations : bool
        Whether the pipeline can compute it at stations.
    """

    name: str
    family: Family
    description: str
    orientation: Orientation
    units_kind: UnitsKind
    perfect_value: float | None
    bounds: tuple[float, float]
    default_in: frozenset[Case] = frozenset()
    at_stations: bool = False

    def __post_init__(self) -> None:
        if (self.perfect_value is None) != (self.orientation == "none"):
            raise ValueError(f"metric {self.name}: a perfect value goes with an orientation other than 'none'")
        lo, hi = self.bounds
        if self.perfect_value is not None and not lo <= self.perfect_value <= hi:
            raise ValueError(f"metric {self.name}: perfect value {self.perfect_value} outside {self.bounds}")
        if "stations" in self.default_in and not self.at_stations:
            raise ValueError(f"metric {self.name}: a station default must be computable at stations")

    @property
    def needs_threshold(self) -> bool:
        """An event threshold (in the variable's units) is needed: categorical scores and the FSS."""
        return self.family in ("categorical", "fss")

    @property
    def needs_window(self) -> bool:
        """A neighbourhood window (grid points) is needed: the FSS."""
        return self.family == "fss"

    @property
    def needs_ensemble(self) -> bool:
        """Several members are needed; deterministic runs skip the metric."""
        return self.family == "ensemble"

    @property
    def needs_climatology(self) -> bool:
        """A climatology is needed: the anomaly correlation."""
        return self.family == "acc"

    @property
    def units_power(self) -> int:
        """The power of the variable's units in the metric's: 0, 1 or 2."""
        return {"dimensionless": 0, "variable": 1, "variable_squared": 2}[self.units_kind]


_GRID: frozenset[Case] = frozenset({"grid"})
_LATLON: frozenset[Case] = frozenset({"latlon"})
_ALL: frozenset[Case] = frozenset({"grid", "latlon", "stations"})

# The order is that of the rows the pipeline writes (categorical scores first, CSI leading).
_RECORDS = (
    MetricInfo("csi", "categorical", "critical success index at each threshold", "higher", "dimensionless", 1.0,
               (0.0, 1.0), _GRID),
    MetricInfo("pod", "categorical", "probability of detection at each threshold", "higher", "dimensionless", 1.0,
               (0.0, 1.0), _GRID),
    MetricInfo("far", "categorical", "false alarm ratio at each threshold", "lower", "dimensionless", 0.0,
               (0.0, 1.0), _GRID),
    MetricInfo("ets", "categorical", "equitable threat score at each threshold", "higher", "dimensionless", 1.0,
               (-1.0 / 3.0, 1.0), _GRID),
    MetricInfo("hss", "categorical", "Heidke skill score at each threshold", "higher", "dimensionless", 1.0,
               (-_INF, 1.0)),
    MetricInfo("frequency_bias", "categorical", "frequency bias at each threshold", "target", "dimensionless", 1.0,
               (0.0, _INF), _GRID),
    MetricInfo("fss", "fss", "fractions skill score at each FSS threshold and window", "higher", "dimensionless",
               1.0, (0.0, 1.0), _GRID),
    MetricInfo("bias", "continuous", "mean error, forecast minus reference", "target", "variable", 0.0,
               (-_INF, _INF), _ALL, at_stations=True),
    MetricInfo("mae", "continuous", "mean absolute error", "lower", "variable", 0.0, (0.0, _INF),
               frozenset({"grid", "stations"}), at_stations=True),
    MetricInfo("mse", "continuous", "mean squared error", "lower", "variable_squared", 0.0, (0.0, _INF)),
    MetricInfo("rmse", "continuous", "root mean squared error", "lower", "variable", 0.0, (0.0, _INF), _ALL,
               at_stations=True),
    MetricInfo("acc", "acc", "uncentred anomaly correlation against a climatology", "higher", "dimensionless", 1.0,
               (-1.0, 1.0), _LATLON),
    MetricInfo("crps", "ensemble", "continuous ranked probability score of the ensemble", "lower", "variable", 0.0,
               (0.0, _INF), _ALL, at_stations=True),
    MetricInfo("spread", "ensemble", "ensemble spread (root mean member variance)", "none", "variable", None,
               (0.0, _INF), _LATLON),
    MetricInfo("rmse_ensemble_mean", "ensemble", "RMSE of the ensemble mean (the spread's partner)", "lower",
               "variable", 0.0, (0.0, _INF), _LATLON),
    MetricInfo("spread_skill", "ensemble", "spread / skill ratio, 1 for a consistent ensemble", "target",
               "dimensionless", 1.0, (0.0, _INF), _LATLON),
)  # fmt: skip

#: Metric name -> record, in the order of the rows the pipeline writes; read-only.
METRIC_INFO: Mapping[str, MetricInfo] = MappingProxyType({m.name: m for m in _RECORDS})


def metric_info(name: str) -> MetricInfo:
    """The record of a metric (case-insensitive).

    Raises
    ------
    UnknownNameError
        If no metric has that name; the message lists the known ones.
    """
    try:
        return METRIC_INFO[str(name).lower()]
    except KeyError:
        raise UnknownNameError("metric", str(name), METRIC_INFO) from None


def orientation(name: str) -> Orientation:
    """Which way is better for a metric: ``"lower"``, ``"higher"``, ``"target"`` or ``"none"``."""
    return metric_info(name).orientation


def metric_units(name: str, variable_units: str) -> str:
    """Units of a metric's values given those of the verified variable.

    Parameters
    ----------
    name : str
        A metric name.
    variable_units : str
        The variable's units as they will be shown (e.g. ``"dam"``, ``"mm h⁻¹"``).

    Returns
    -------
    str
        ``variable_units`` for errors, biases, CRPS and spreads; their square for the MSE
        (``"K²"``, ``"(mm h⁻¹)²"``); ``""`` for dimensionless scores or when the variable has
        no units.
    """
    power = metric_info(name).units_power
    units = variable_units.strip()
    if power == 0 or not units:
        return ""
    if power == 1:
        return units
    return f"({units})²" if " " in units or any(c in units for c in "⁻¹²³/-0123456789") else f"{units}²"


def metric_display_factor(name: str, factor: float) -> float:
    """The factor turning a metric's values into display units, given the variable's.

    Metric values are differences of the variable (or their squares), so only the factor of
    the variable's display conversion applies, never an offset: ``factor`` for errors and
    spreads, ``factor**2`` for the MSE, 1 for dimensionless scores.

    Parameters
    ----------
    name : str
        A metric name.
    factor : float
        The variable's display factor (e.g. 0.1 / 9.80665 from m² s⁻² of geopotential to dam).
    """
    return float(factor) ** metric_info(name).units_power


def default_metrics(case: Case, *, ensemble: bool) -> tuple[str, ...]:
    """The metrics the pipeline computes in ``case`` when none are named (ensemble ones only for ensembles)."""
    return tuple(m.name for m in METRIC_INFO.values() if case in m.default_in and (ensemble or not m.needs_ensemble))


def station_metrics() -> tuple[str, ...]:
    """The metrics the pipeline can compute at stations."""
    return tuple(m.name for m in METRIC_INFO.values() if m.at_stations)
