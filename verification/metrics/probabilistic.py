r"""Ensemble and probability scores: CRPS, rank histogram, spread-skill, Brier score, reliability.

Ensemble forecasts carry a member dim (``member_dim``, default ``"member"``) that the
observation lacks; the scores consume it and then reduce the remaining dims with the usual
``reduce_dims`` / ``preserve_dims`` / ``weights`` keywords.

Public API: ``crps_ensemble``, ``rank_histogram``, ``spread_skill``, ``brier_score``,
``reliability``.

References
----------
Wilks, D. S. (2019): Statistical Methods in the Atmospheric Sciences, 4th ed., ch. 9.
Gneiting, T. and Raftery, A. E. (2007): Strictly proper scoring rules, prediction, and
estimation. J. Amer. Stat. Assoc., 102, 359-378.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import cast

import numpy as np
import xarray as xr

from engine.errors import DimensionError
from engine.types import Dims
from verification._dims import resolve_dims, weighted_mean, weighted_sum

__all__ = ["brier_score", "crps_ensemble", "rank_histogram", "reliability", "spread_skill"]


def _check_ensemble(fcst: xr.DataArray, obs: xr.DataArray, member_dim: Hashable, min_members: int = 1) -> int:
    """Validate the member dim: on ``fcst``, not on ``obs``; returns the ensemble size."""
    for name, arr in (("fcst", fcst), ("obs", obs)):
        if not isinstance(arr, xr.DataArray):
            raise TypeError(f"{name} must be an xarray.DataArray, got {type(arr).__name__}")
    if member_dim not in fcst.dims:
        raise DimensionError(f"fcst has no member dim {member_dim!r}; its dims are {fcst.dims} (pass member_dim=)")
    if member_dim in obs.dims:
        raise DimensionError(f"obs must not have the member dim {member_dim!r}; its dims are {obs.dims}")
    m = fcst.sizes[member_dim]
    if m < min_members:
        raise DimensionError(f"need at least {min_members} members along {member_dim!r}, got {m}")
    return m


def _crps_kernel(ens: np.ndarray, y: np.ndarray, fair: bool) -> np.ndarray:
    """CRPS of ensembles ``ens`` (..., m) against ``y`` (...), NaN members ignored.

    Uses the sorted-ensemble identity sum_{i,j} |x_i - x_j| = 2 sum_i (2i - m - 1) x_(i)
    (i = 1..m over the sorted members), O(m log m) instead of O(m^2).
    """
    xs = np.sort(ens, axis=-1)  # NaN sort last
    valid = ~np.isnan(xs)
    m = valid.sum(axis=-1)
    i = np.arange(1, xs.shape[-1] + 1)
    coef = 2 * i - m[..., None] - 1
    pair_sum = 2.0 * np.sum(np.where(valid, coef * np.where(valid, xs, 0.0), 0.0), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        abs_err = np.nansum(np.abs(xs - y[..., None]), axis=-1) / m
        spread_term = pair_sum / (2.0 * m * (m - 1)) if fair else pair_sum / (2.0 * m**2)
        crps = abs_err - spread_term
    ok = np.isfinite(y) & (m >= (2 if fair else 1))
    return np.where(ok, crps, np.nan)


def crps_ensemble(
    fcst: xr.DataArray,
    obs: xr.DataArray,
    *,
    member_dim: Hashable = "member",
    fair: bool = False,
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
    skipna: bool = True,
) -> xr.DataArray:
    r"""Continuous ranked probability score of an ensemble (empirical CDF).

    .. math::

        \mathrm{CRPS} = \frac{1}{m}\sum_{i=1}^{m} |x_i - y|
            - \frac{1}{2 m^2} \sum_{i=1}^{m}\sum_{j=1}^{m} |x_i - x_j|

    With ``fair=True`` the second term is divided by :math:`2m(m-1)` instead of
    :math:`2m^2`, the unbiased estimate of the CRPS of the distribution the members are drawn
    from (Ferro 2014), which does not penalise small ensembles. The unfair form equals
    ``properscoring.crps_ensemble`` and ``xskillscore.crps_ensemble``. The per-point scores are
    then averaged over the reduced dims. NaN members are ignored (``m`` counts the valid ones);
    a NaN observation gives NaN.

    Parameters
    ----------
    fcst : xarray.DataArray
        Ensemble forecast with dim ``member_dim``, same units as ``obs``.
    obs : xarray.DataArray
        Observation, without ``member_dim``.
    member_dim : str
        Name of the ensemble member dim.
    fair : bool
        Fair (unbiased for finite ensembles) instead of empirical-CDF CRPS.
    reduce_dims, preserve_dims : str or sequence of str, optional
        Dims to average over, or to keep (never ``member_dim``); default all.
    weights : xarray.DataArray, optional
        Non-negative weights for the average.
    skipna : bool
        Skip points with NaN CRPS in the average.

    Returns
    -------
    xarray.DataArray
        CRPS (>= 0 for the unfair form), in the units of the inputs.

    Raises
    ------
    DimensionError
        If ``fcst`` lacks ``member_dim``, ``obs`` has it, or for the usual dim errors.

    References
    ----------
    Hersbach, H. (2000): Decomposition of the continuous ranked probability score for ensemble
    prediction systems. Wea. Forecasting, 15, 559-570.
    Ferro, C. A. T. (2014): Fair scores for ensemble forecasts. Q. J. R. Meteorol. Soc., 140,
    1917-1923, eq. 4.
    """
    _check_ensemble(fcst, obs, member_dim, min_members=2 if fair else 1)
    dims = resolve_dims(
        fcst, obs, reduce_dims=reduce_dims, preserve_dims=preserve_dims, weights=weights, exclude=[member_dim]
    )
    point = xr.apply_ufunc(
        _crps_kernel,
        fcst.astype(float),
        obs.astype(float),
        input_core_dims=[[member_dim], []],
        kwargs={"fair": fair},
    )
    return weighted_mean(point, dims=dims, weights=weights, skipna=skipna).rename("crps")


def rank_histogram(
    fcst: xr.DataArray,
    obs: xr.DataArray,
    *,
    member_dim: Hashable = "member",
    random_state: int | np.random.Generator | None = 0,
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
) -> xr.DataArray:
    r"""Rank (Talagrand) histogram: counts of the observation's rank among the members.

    .. math::

        \mathrm{rank}_i = 1 + \#\{j : x_{ij} < y_i\}, \qquad
        h_k = \sum_i w_i [\mathrm{rank}_i = k], \quad k = 1, \ldots, m + 1

    Ties between the observation and members (e.g. zero rain) are broken at random among the
    tied ranks (Hamill 2001), with a seeded generator so results are reproducible. Points with
    a NaN observation or any NaN member are not counted.

    Parameters
    ----------
    fcst : xarray.DataArray
        Ensemble forecast with dim ``member_dim``.
    obs : xarray.DataArray
        Observation, without ``member_dim``.
    member_dim : str
        Name of the ensemble member dim.
    random_state : int, numpy.random.Generator or None
        Seed or generator for tie-breaking.
    reduce_dims, preserve_dims : str or sequence of str, optional
        Dims to count over, or to keep; default all.
    weights : xarray.DataArray, optional
        Non-negative weights: weighted counts.

    Returns
    -------
    xarray.DataArray
        Counts along a new dim ``rank`` (coordinate 1 .. m + 1). A flat histogram indicates a
        reliable ensemble, U-shape under-dispersion, dome shape over-dispersion.

    Raises
    ------
    DimensionError
        If ``fcst`` lacks ``member_dim``, ``obs`` has it, or for the usual dim errors.

    References
    ----------
    Hamill, T. M. (2001): Interpretation of rank histograms for verifying ensemble forecasts.
    Mon. Wea. Rev., 129, 550-560.
    Wilks (2019), Statistical Methods in the Atmospheric Sciences, section 9.7.1.
    """
    m = _check_ensemble(fcst, obs, member_dim)
    dims = resolve_dims(
        fcst, obs, reduce_dims=reduce_dims, preserve_dims=preserve_dims, weights=weights, exclude=[member_dim]
    )
    rng = np.random.default_rng(random_state)

    def ranks(ens: np.ndarray, y: np.ndarray) -> np.ndarray:
        below = np.sum(ens < y[..., None], axis=-1)
        ties = np.sum(ens == y[..., None], axis=-1)
        # uniform choice among the tied ranks below+1 .. below+ties+1
        r = 1 + below + np.floor(rng.random(y.shape) * (ties + 1)).astype(int)
        ok = np.isfinite(y) & np.isfinite(ens).all(axis=-1)
        return np.where(ok, r, 0)

    rk = xr.apply_ufunc(ranks, fcst, obs, input_core_dims=[[member_dim], []])
    levels = np.arange(1, m + 2)
    onehot = (rk == xr.DataArray(levels, dims=["rank"], coords={"rank": levels})).astype(float)
    return weighted_sum(onehot, dims=dims, weights=weights).rename("rank_histogram")


def spread_skill(
    fcst: xr.DataArray,
    obs: xr.DataArray,
    *,
    member_dim: Hashable = "member",
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
    skipna: bool = True,
) -> xr.Dataset:
    r"""Ensemble spread against the RMSE of the ensemble mean.

    .. math::

        \mathrm{spread} = \sqrt{\overline{s^2}}, \quad
        s^2_i = \frac{1}{m-1}\sum_{j=1}^{m}(x_{ij} - \bar x_i)^2, \qquad
        \mathrm{RMSE} = \sqrt{\overline{(\bar x_i - y_i)^2}}, \qquad
        \mathrm{ratio} = \sqrt{\frac{m+1}{m}}\;\frac{\mathrm{spread}}{\mathrm{RMSE}}

    (overbars: weighted means over the reduced dims). For a statistically consistent ensemble,
    the observation is one more draw from the members' distribution, so the expected squared
    error of the ensemble mean is :math:`(1 + 1/m)\sigma^2`: the :math:`(m+1)/m` factor makes
    ``ratio`` 1 for a perfect ensemble of any size (Fortin et al. 2014); < 1 means
    under-dispersion.

    Parameters
    ----------
    fcst : xarray.DataArray
        Ensemble forecast with dim ``member_dim`` (at least two members).
    obs : xarray.DataArray
        Observation, without ``member_dim``, same units.
    member_dim : str
        Name of the ensemble member dim.
    reduce_dims, preserve_dims, weights, skipna
        As in :func:`crps_ensemble`.

    Returns
    -------
    xarray.Dataset
        ``spread`` and ``rmse`` (units of the inputs) and ``ratio`` (dimensionless, with the
        :math:`\sqrt{(m+1)/m}` correction).

    Raises
    ------
    DimensionError
        If ``fcst`` lacks ``member_dim`` or has fewer than two members, ``obs`` has it, or for
        the usual dim errors.

    References
    ----------
    Fortin, V., Abaza, M., Anctil, F. and Turcotte, R. (2014): Why should ensemble spread match
    the RMSE of the ensemble mean? J. Hydrometeor., 15, 1708-1713, eq. 9.
    """
    m = _check_ensemble(fcst, obs, member_dim, min_members=2)
    dims = resolve_dims(
        fcst, obs, reduce_dims=reduce_dims, preserve_dims=preserve_dims, weights=weights, exclude=[member_dim]
    )
    # Reduce over a one-dim list: xarray's stubs take a str, not any Hashable, as a single dim.
    members = [member_dim]
    valid = obs.notnull() & fcst.notnull().all(members)
    variance = fcst.var(members, ddof=1).where(valid)
    sq_err = ((fcst.mean(members) - obs) ** 2).where(valid)
    # np.sqrt dispatches to xarray (__array_ufunc__) and returns a DataArray; numpy's stubs say ndarray.
    spread = cast(xr.DataArray, np.sqrt(weighted_mean(variance, dims=dims, weights=weights, skipna=skipna)))
    rmse_mean = cast(xr.DataArray, np.sqrt(weighted_mean(sq_err, dims=dims, weights=weights, skipna=skipna)))
    ratio = np.sqrt((m + 1) / m) * spread / rmse_mean.where(rmse_mean > 0)
    return xr.Dataset({"spread": spread, "rmse": rmse_mean, "ratio": ratio}, attrs={"n_members": m})


def _event_probability(
    fcst: xr.DataArray, obs: xr.DataArray, threshold: float | None, member_dim: Hashable | None
) -> tuple[xr.DataArray, xr.DataArray]:
    """Forecast probability and binary outcome, from probabilities or from an ensemble."""
    for name, arr in (("fcst", fcst), ("obs", obs)):
        if not isinstance(arr, xr.DataArray):
            raise TypeError(f"{name} must be an xarray.DataArray, got {type(arr).__name__}")
    if member_dim is not None:
        if threshold is None:
            raise ValueError("threshold is required with member_dim (event = value >= threshold)")
        _check_ensemble(fcst, obs, member_dim)
        valid_ens = fcst.notnull().all([member_dim])  # a one-dim list, as in spread_skill
        prob = (fcst >= threshold).mean([member_dim]).where(valid_ens)
        outcome = (obs >= threshold).astype(float).where(obs.notnull())
        return prob, outcome
    if threshold is not None:
        outcome = (obs >= threshold).astype(float).where(obs.notnull())
    else:
        outcome = obs.astype(float)
        vals = outcome.values[np.isfinite(outcome.values)]
        if not np.isin(vals, (0.0, 1.0)).all():
            raise ValueError("obs must be 0/1 (event outcome) when no threshold is given")
    prob = fcst.astype(float)
    p = prob.values[np.isfinite(prob.values)]
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(f"fcst probabilities must lie in [0, 1], got range [{p.min()}, {p.max()}]")
    return prob, outcome


def brier_score(
    fcst: xr.DataArray,
    obs: xr.DataArray,
    *,
    threshold: float | None = None,
    member_dim: Hashable | None = None,
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
    skipna: bool = True,
) -> xr.DataArray:
    r"""Brier score of probability forecasts of a binary event.

    .. math:: \mathrm{BS} = \frac{\sum_i w_i (p_i - o_i)^2}{\sum_i w_i}, \quad o_i \in \{0, 1\}

    Either ``fcst`` holds probabilities in [0, 1] and ``obs`` the 0/1 outcomes (or raw values
    with ``threshold``), or ``fcst`` is an ensemble (``member_dim`` given) and :math:`p_i` is
    the fraction of members with ``value >= threshold``.

    Parameters
    ----------
    fcst : xarray.DataArray
        Probabilities (dimensionless), or an ensemble with ``member_dim``.
    obs : xarray.DataArray
        Outcomes 0/1, or values compared with ``threshold``.
    threshold : float, optional
        Event threshold, event = ``value >= threshold`` (units of the values).
    member_dim : str, optional
        Ensemble member dim of ``fcst``; requires ``threshold``.
    reduce_dims, preserve_dims, weights, skipna
        As in :func:`crps_ensemble`.

    Returns
    -------
    xarray.DataArray
        Brier score in [0, 1] (dimensionless; 0 is perfect).

    Raises
    ------
    ValueError
        If probabilities lie outside [0, 1] or outcomes are not 0/1.
    DimensionError
        For member-dim errors or the usual dim errors.

    References
    ----------
    Brier, G. W. (1950): Verification of forecasts expressed in terms of probability.
    Mon. Wea. Rev., 78, 1-3. Wilks (2019), eq. 9.40.
    """
    prob, outcome = _event_probability(fcst, obs, threshold, member_dim)
    dims = resolve_dims(prob, outcome, reduce_dims=reduce_dims, preserve_dims=preserve_dims, weights=weights)
    return weighted_mean((prob - outcome) ** 2, dims=dims, weights=weights, skipna=skipna).rename("brier_score")


def reliability(
    fcst: xr.DataArray,
    obs: xr.DataArray,
    *,
    bins: int | Sequence[float] = 10,
    threshold: float | None = None,
    member_dim: Hashable | None = None,
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
) -> xr.Dataset:
    r"""Reliability diagram table: observed frequency per forecast-probability bin.

    .. math::

        \bar o_k = \frac{\sum_{i: p_i \in B_k} w_i o_i}{\sum_{i: p_i \in B_k} w_i}, \qquad
        \bar p_k = \frac{\sum_{i: p_i \in B_k} w_i p_i}{\sum_{i: p_i \in B_k} w_i}, \qquad
        N_k = \sum_{i: p_i \in B_k} w_i

    Bins :math:`B_k = [e_k, e_{k+1})` are half-open except the last, which includes 1 (the
    xhistogram / xskillscore convention). A reliable forecast has :math:`\bar o_k \approx \bar p_k`.

    Parameters
    ----------
    fcst, obs, threshold, member_dim
        As in :func:`brier_score`.
    bins : int or sequence of float
        Number of equal-width bins on [0, 1], or the bin edges (increasing, from 0 to 1).
    reduce_dims, preserve_dims : str or sequence of str, optional
        Dims to pool, or to keep; default all.
    weights : xarray.DataArray, optional
        Non-negative weights (weighted counts).

    Returns
    -------
    xarray.Dataset
        Along dim ``bin`` (coordinate: bin centre, with ``bin_lower`` / ``bin_upper``):
        ``observed_frequency`` and ``mean_probability`` (dimensionless, NaN for empty bins)
        and ``count`` (number or weight of forecasts in the bin).

    Raises
    ------
    ValueError
        If the edges are not increasing within [0, 1], or inputs are out of range.
    DimensionError
        For member-dim errors or the usual dim errors.

    References
    ----------
    Wilks (2019), Statistical Methods in the Atmospheric Sciences, section 9.4.4.
    Bröcker, J. and Smith, L. A. (2007): Increasing the reliability of reliability diagrams.
    Wea. Forecasting, 22, 651-661.
    """
    if np.ndim(bins) == 0:
        n_bins = int(bins)  # type: ignore[arg-type]
        if n_bins < 1:
            raise ValueError(f"bins must be a positive number of bins, got {bins}")
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] < 0 or edges[-1] > 1:
            raise ValueError(f"bin edges must be strictly increasing within [0, 1], got {edges.tolist()}")
    prob, outcome = _event_probability(fcst, obs, threshold, member_dim)
    dims = resolve_dims(prob, outcome, reduce_dims=reduce_dims, preserve_dims=preserve_dims, weights=weights)
    valid = prob.notnull() & outcome.notnull()
    centres = 0.5 * (edges[:-1] + edges[1:])
    lower = xr.DataArray(edges[:-1], dims=["bin"], coords={"bin": centres})
    upper = xr.DataArray(edges[1:], dims=["bin"], coords={"bin": centres})
    # last bin closed on the right, so p = 1 is counted (as xhistogram does with its epsilon)
    is_last = xr.DataArray(np.arange(len(centres)) == len(centres) - 1, dims=["bin"], coords={"bin": centres})
    in_bin = valid & (prob >= lower) & ((prob < upper) | (is_last & (prob <= upper)))
    in_bin_f = in_bin.astype(float)
    count = weighted_sum(in_bin_f, dims=dims, weights=weights)
    hits = weighted_sum(in_bin_f * outcome.fillna(0.0), dims=dims, weights=weights)
    psum = weighted_sum(in_bin_f * prob.fillna(0.0), dims=dims, weights=weights)
    nonempty = count.where(count > 0)
    out = xr.Dataset({"observed_frequency": hits / nonempty, "mean_probability": psum / nonempty, "count": count})
    return out.assign_coords(bin_lower=("bin", edges[:-1]), bin_upper=("bin", edges[1:]))
