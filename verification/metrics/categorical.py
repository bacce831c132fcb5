r"""Categorical (yes/no event) scores built on one 2x2 contingency table.

An *event* at a point is ``value >= threshold`` ("at least 0.1 mm/h", so a value exactly
at the threshold counts as an event; the same convention as pysteps' FSS, whereas pysteps'
``det_cat_fct`` uses ``>``). Points where either input is NaN are excluded from every count
(pysteps counts them as non-events, which inflates the correct negatives). The table is a Dataset with the counts

=====================  ==================  =====================
                       observed yes        observed no
forecast yes           ``hits`` (a)        ``false_alarms`` (b)
forecast no            ``misses`` (c)      ``correct_negatives`` (d)
=====================  ==================  =====================

and every score is a function of it (:func:`scores_from_table`). Because counts add, tables
from many cases merge by summation: :class:`ContingencyTable` accumulates them
(``update`` / ``merge`` / ``compute``, after pysteps' ``det_cat_fct_accum/merge/compute``),
which is how scores over a whole season are computed without holding all fields.

Public API: ``contingency_table``, ``ContingencyTable``, ``scores_from_table``, ``pod``,
``far``, ``csi``, ``ets``, ``hss``, ``frequency_bias``, ``CATEGORICAL_SCORES``.

References
----------
Wilks, D. S. (2019): Statistical Methods in the Atmospheric Sciences, 4th ed., section 9.2.
Jolliffe, I. T. and Stephenson, D. B. (2012): Forecast Verification, 2nd ed., ch. 3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from engine.errors import DimensionError
from engine.types import Dims, XarrayLike
from verification._dims import resolve_dims, weighted_sum

__all__ = [
    "CATEGORICAL_SCORES",
    "ContingencyTable",
    "contingency_table",
    "csi",
    "ets",
    "far",
    "frequency_bias",
    "hss",
    "pod",
    "scores_from_table",
]

TABLE_FIELDS = ("hits", "misses", "false_alarms", "correct_negatives")


def _threshold_array(threshold: float | Sequence[float] | xr.DataArray) -> float | xr.DataArray:
    """A scalar threshold stays scalar; a sequence becomes a DataArray along dim ``threshold``."""
    if isinstance(threshold, xr.DataArray):
        if threshold.ndim > 1:
            raise DimensionError(f"threshold must be a scalar or 1-D, got dims {threshold.dims}")
        values = threshold.values
        thr: float | xr.DataArray = threshold
    elif np.ndim(threshold) == 0:
        values = np.asarray(threshold, dtype=float)
        thr = float(values)
    else:
        values = np.asarray(threshold, dtype=float)
        if values.ndim != 1:
            raise DimensionError(f"threshold must be a scalar or 1-D sequence, got shape {values.shape}")
        if len(np.unique(values)) != len(values):
            raise ValueError(f"threshold values must be distinct, got {values.tolist()}")
        thr = xr.DataArray(values, dims=["threshold"], coords={"threshold": values})
    if np.isnan(np.asarray(values, dtype=float)).any():
        raise ValueError(f"threshold must not be NaN, got {np.asarray(values).tolist()}")
    return thr


def _as_dataarray(name: str, arr: XarrayLike) -> xr.DataArray:
    """``arr`` itself; TypeError if it is a Dataset."""
    if not isinstance(arr, xr.DataArray):
        raise TypeError(f"{name} must be an xarray.DataArray, got {type(arr).__name__}")
    return arr


def contingency_table(
    fcst: XarrayLike,
    obs: XarrayLike,
    *,
    threshold: float | Sequence[float] | xr.DataArray,
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
) -> xr.Dataset:
    r"""2x2 contingency table of the event ``value >= threshold``.

    .. math::

        a = \sum_i w_i [f_i \ge t][o_i \ge t], \quad
        b = \sum_i w_i [f_i \ge t][o_i < t], \quad
        c = \sum_i w_i [f_i < t][o_i \ge t], \quad
        d = \sum_i w_i [f_i < t][o_i < t]

    (Iverson brackets; :math:`w_i = 1` without weights, so the entries are counts.)

    Parameters
    ----------
    fcst, obs : xarray.DataArray
        Forecast and observation, any dims, same units as ``threshold`` (e.g. mm h-1).
    threshold : float, sequence of float or 1-D xarray.DataArray
        Event threshold(s). A sequence adds a dim ``threshold`` to the result.
    reduce_dims, preserve_dims : str or sequence of str, optional
        Dims to sum over, or to keep; at most one. Default: all dims.
    weights : xarray.DataArray, optional
        Non-negative weights (e.g. cell areas): the table then holds weighted counts.

    Returns
    -------
    xarray.Dataset
        Variables ``hits``, ``misses``, ``false_alarms``, ``correct_negatives`` (counts, float),
        over the preserved dims (plus ``threshold`` for a sequence of thresholds). Points where
        either input is NaN are in none of the four counts.

    Raises
    ------
    DimensionError
        If both ``reduce_dims`` and ``preserve_dims`` are given, or either names a missing dim.
    TypeError
        If an input is a Dataset (score each variable separately).
    ValueError
        If a threshold is NaN or thresholds repeat.

    References
    ----------
    Wilks (2019), Statistical Methods in the Atmospheric Sciences, section 9.2.1, Fig. 9.1.
    """
    fcst, obs = _as_dataarray("fcst", fcst), _as_dataarray("obs", obs)
    thr = _threshold_array(threshold)
    dims = resolve_dims(fcst, obs, reduce_dims=reduce_dims, preserve_dims=preserve_dims, weights=weights)
    valid = fcst.notnull() & obs.notnull()
    # NaN >= t is False, so mask with `valid` explicitly for the "no" categories.
    f_yes = fcst >= thr
    o_yes = obs >= thr
    f_no = valid & ~f_yes
    o_no = valid & ~o_yes
    f_yes = f_yes & valid
    o_yes = o_yes & valid
    cells = {
        "hits": f_yes & o_yes,
        "misses": f_no & o_yes,
        "false_alarms": f_yes & o_no,
        "correct_negatives": f_no & o_no,
    }
    out = xr.Dataset({k: weighted_sum(v.astype(float), dims=dims, weights=weights) for k, v in cells.items()})
    out.attrs["event"] = "value >= threshold"
    return out


def _safe_div(num: xr.DataArray, den: xr.DataArray) -> xr.DataArray:
    """num / den, NaN where den == 0 (score undefined for that table), without warnings."""
    return num / den.where(den != 0)


def _pod(t: xr.Dataset) -> xr.DataArray:
    return _safe_div(t.hits, t.hits + t.misses)


def _far(t: xr.Dataset) -> xr.DataArray:
    return _safe_div(t.false_alarms, t.hits + t.false_alarms)


def _csi(t: xr.Dataset) -> xr.DataArray:
    return _safe_div(t.hits, t.hits + t.misses + t.false_alarms)


def _frequency_bias(t: xr.Dataset) -> xr.DataArray:
    return _safe_div(t.hits + t.false_alarms, t.hits + t.misses)


def _ets(t: xr.Dataset) -> xr.DataArray:
    n = t.hits + t.misses + t.false_alarms + t.correct_negatives
    hits_random = _safe_div((t.hits + t.misses) * (t.hits + t.false_alarms), n)
    return _safe_div(t.hits - hits_random, t.hits + t.misses + t.false_alarms - hits_random)


def _hss(t: xr.Dataset) -> xr.DataArray:
    a, b, c, d = t.hits, t.false_alarms, t.misses, t.correct_negatives
    return _safe_div(2 * (a * d - b * c), (a + c) * (c + d) + (a + b) * (b + d))


#: Score name -> function of a contingency table, the registry used by ``compute`` and the app.
CATEGORICAL_SCORES: dict[str, Callable[[xr.Dataset], xr.DataArray]] = {
    "pod": _pod,
    "far": _far,
    "csi": _csi,
    "ets": _ets,
    "hss": _hss,
    "frequency_bias": _frequency_bias,
}


def _check_table(table: xr.Dataset) -> None:
    if not isinstance(table, xr.Dataset):
        raise TypeError(f"table must be an xarray.Dataset from contingency_table, got {type(table).__name__}")
    missing = [k for k in TABLE_FIELDS if k not in table]
    if missing:
        raise ValueError(f"table lacks variable(s) {missing}; expected {list(TABLE_FIELDS)}")


def scores_from_table(table: xr.Dataset, scores: Sequence[str] | None = None) -> xr.Dataset:
    r"""Categorical scores from a contingency table (a, b, c, d as in :func:`contingency_table`).

    .. math::

        \mathrm{POD} = \frac{a}{a+c}, \quad
        \mathrm{FAR} = \frac{b}{a+b}, \quad
        \mathrm{CSI} = \frac{a}{a+b+c}, \quad
        \mathrm{B} = \frac{a+b}{a+c},

        \mathrm{ETS} = \frac{a - a_r}{a + b + c - a_r}, \quad a_r = \frac{(a+c)(a+b)}{n}, \quad

        \mathrm{HSS} = \frac{2(ad - bc)}{(a+c)(c+d) + (a+b)(b+d)}

    A score whose denominator is zero (e.g. POD with no observed event) is NaN.

    Parameters
    ----------
    table : xarray.Dataset
        Output of :func:`contingency_table` or :meth:`ContingencyTable.compute`'s table.
    scores : sequence of str, optional
        Names from ``CATEGORICAL_SCORES`` (``pod``, ``far``, ``csi``, ``ets``, ``hss``,
        ``frequency_bias``); default all.

    Returns
    -------
    xarray.Dataset
        One variable per score (dimensionless), over the table's dims.

    Raises
    ------
    ValueError
        If the table lacks a count or a score name is unknown.

    References
    ----------
    Wilks (2019), Statistical Methods in the Atmospheric Sciences, section 9.2.2, eqs. 9.7-9.16.
    """
    _check_table(table)
    names = list(CATEGORICAL_SCORES) if scores is None else [scores] if isinstance(scores, str) else list(scores)
    unknown = [s for s in names if s not in CATEGORICAL_SCORES]
    if unknown:
        raise ValueError(f"unknown categorical score(s) {unknown}; available: {sorted(CATEGORICAL_SCORES)}")
    return xr.Dataset({s: CATEGORICAL_SCORES[s](table) for s in names}, attrs=dict(table.attrs))


class ContingencyTable:
    """Mergeable accumulator of contingency tables over many cases (after pysteps' accum/merge).

    Parameters
    ----------
    threshold : float or sequence of float
        Event threshold(s), event = ``value >= threshold``.
    reduce_dims, preserve_dims : str or sequence of str, optional
        Passed to :func:`contingency_table` on each ``update``; the preserved dims (e.g.
        ``lead_time``) must have the same coordinates in every update.
    weights : xarray.DataArray, optional
        Weights passed to :func:`contingency_table` on each ``update``.

    Examples
    --------
    >>> acc = ContingencyTable(threshold=[0.1, 1.0], preserve_dims="lead_time")  # doctest: +SKIP
    >>> for case in cases:                                                          # doctest: +SKIP
    ...     acc.update(case.fcst, case.obs)
    >>> acc.compute()                                                               # doctest: +SKIP
    """

    def __init__(
        self,
        threshold: float | Sequence[float],
        *,
        reduce_dims: Dims | None = None,
        preserve_dims: Dims | None = None,
        weights: xr.DataArray | None = None,
    ) -> None:
        self.threshold = threshold
        self._thr = _threshold_array(threshold)  # validates once, up front
        if reduce_dims is not None and preserve_dims is not None:
            raise DimensionError("give reduce_dims or preserve_dims, not both")
        self.reduce_dims, self.preserve_dims, self.weights = reduce_dims, preserve_dims, weights
        self.table: xr.Dataset | None = None
        self.n_updates = 0

    def update(self, fcst: xr.DataArray, obs: xr.DataArray) -> ContingencyTable:
        """Add the table of one case (fields as in :func:`contingency_table`); returns ``self``."""
        new = contingency_table(
            fcst,
            obs,
            threshold=self.threshold,
            reduce_dims=self.reduce_dims,
            preserve_dims=self.preserve_dims,
            weights=self.weights,
        )
        self._add(new)
        self.n_updates += 1
        return self

    def _add(self, new: xr.Dataset) -> None:
        if self.table is None:
            self.table = new
            return
        if set(new.dims) != set(self.table.dims):
            raise DimensionError(
                f"cannot accumulate a table with dims {sorted(map(str, new.dims))} into one with dims "
                f"{sorted(map(str, self.table.dims))}"
            )
        # join="exact": summing tables of different lead times or stations would be silently wrong.
        try:
            a, b = xr.align(self.table, new, join="exact")
        except ValueError as err:
            raise DimensionError(f"tables to accumulate have different coordinates: {err}") from err
        summed = a + b
        summed.attrs = dict(self.table.attrs)
        self.table = summed

    def merge(self, other: ContingencyTable) -> ContingencyTable:
        """A new accumulator holding the sum of ``self`` and ``other`` (neither is modified).

        Raises
        ------
        ValueError
            If the thresholds differ.
        DimensionError
            If the tables have different dims or coordinates.
        """
        if not isinstance(other, ContingencyTable):
            raise TypeError(f"can only merge a ContingencyTable, got {type(other).__name__}")
        if not np.array_equal(np.atleast_1d(self.threshold), np.atleast_1d(other.threshold)):
            raise ValueError(f"cannot merge tables with thresholds {self.threshold!r} and {other.threshold!r}")
        out = ContingencyTable(
            self.threshold, reduce_dims=self.reduce_dims, preserve_dims=self.preserve_dims, weights=self.weights
        )
        for part in (self.table, other.table):
            if part is not None:
                out._add(part)
        out.n_updates = self.n_updates + other.n_updates
        return out

    def compute(self, scores: Sequence[str] | None = None) -> xr.Dataset:
        """Scores (see :func:`scores_from_table`) of the accumulated table.

        Raises
        ------
        ValueError
            If nothing has been accumulated yet.
        """
        if self.table is None:
            raise ValueError("ContingencyTable is empty: call update() at least once before compute()")
        return scores_from_table(self.table, scores)

    def __repr__(self) -> str:
        return f"ContingencyTable(threshold={self.threshold!r}, n_updates={self.n_updates})"


def _score(
    name: str,
    fcst: xr.DataArray | None,
    obs: xr.DataArray | None,
    threshold: Any,
    table: xr.Dataset | None,
    reduce_dims: Dims | None,
    preserve_dims: Dims | None,
    weights: xr.DataArray | None,
) -> xr.DataArray:
    if table is not None:
        if fcst is not None or obs is not None or threshold is not None:
            raise ValueError(f"{name}: give either fcst, obs and threshold, or table=, not both")
        _check_table(table)
    else:
        if fcst is None or obs is None or threshold is None:
            raise ValueError(f"{name}: fcst, obs and threshold are required when no table= is given")
        table = contingency_table(
            fcst, obs, threshold=threshold, reduce_dims=reduce_dims, preserve_dims=preserve_dims, weights=weights
        )
    return CATEGORICAL_SCORES[name](table).rename(name)


_SHARED_DOC = """
    Parameters
    ----------
    fcst, obs : xarray.DataArray, optional
        Forecast and observation, any dims, units of ``threshold``. Omit when ``table`` is given.
    threshold : float or sequence of float
        Event threshold(s), event = ``value >= threshold``; a sequence adds a dim ``threshold``.
    table : xarray.Dataset, optional
        A precomputed (possibly accumulated) :func:`contingency_table`, instead of fcst/obs.
    reduce_dims, preserve_dims : str or sequence of str, optional
        Dims to reduce, or to keep; at most one. Default: all dims.
    weights : xarray.DataArray, optional
        Non-negative weights for the counts.

    Returns
    -------
    xarray.DataArray
        The score (dimensionless) over the preserved dims; NaN where undefined.

    Raises
    ------
    DimensionError
        If both ``reduce_dims`` and ``preserve_dims`` are given, or either names a missing dim.
    ValueError
        If both or neither of (fcst, obs, threshold) and ``table`` are given.

    References
    ----------
    Wilks (2019), Statistical Methods in the Atmospheric Sciences, section 9.2.2.
"""


def _make(name: str, summary: str, formula: str) -> Callable[..., xr.DataArray]:
    def score(
        fcst: xr.DataArray | None = None,
        obs: xr.DataArray | None = None,
        *,
        threshold: float | Sequence[float] | None = None,
        table: xr.Dataset | None = None,
        reduce_dims: Dims | None = None,
        preserve_dims: Dims | None = None,
        weights: xr.DataArray | None = None,
    ) -> xr.DataArray:
        return _score(name, fcst, obs, threshold, table, reduce_dims, preserve_dims, weights)

    score.__name__ = score.__qualname__ = name
    score.__doc__ = f"{summary}\n\n    .. math:: {formula}\n\n    With a, b, c, d the hits, false alarms, misses and correct negatives of\n    :func:`contingency_table`.\n{_SHARED_DOC}"
    return score


pod = _make("pod", "Probability of detection (hit rate), range [0, 1], best 1.", r"\mathrm{POD} = \frac{a}{a + c}")
far = _make("far", "False alarm ratio, range [0, 1], best 0.", r"\mathrm{FAR} = \frac{b}{a + b}")
csi = _make(
    "csi", "Critical success index (threat score), range [0, 1], best 1.", r"\mathrm{CSI} = \frac{a}{a + b + c}"
)
frequency_bias = _make(
    "frequency_bias",
    "Frequency bias (forecast yes / observed yes), range [0, inf), best 1.",
    r"\mathrm{B} = \frac{a + b}{a + c}",
)
ets = _make(
    "ets",
    "Equitable threat score (Gilbert skill score), range [-1/3, 1], best 1, 0 = random.",
    r"\mathrm{ETS} = \frac{a - a_r}{a + b + c - a_r}, \quad a_r = \frac{(a + b)(a + c)}{a + b + c + d}",
)
hss = _make(
    "hss",
    "Heidke skill score, range (-inf, 1], best 1, 0 = random.",
    r"\mathrm{HSS} = \frac{2 (a d - b c)}{(a + c)(c + d) + (a + b)(b + d)}",
)
