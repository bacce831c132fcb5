r"""Continuous scores: bias, MAE, MSE, RMSE, Pearson correlation and anomaly correlation.

All functions share one signature: ``fcst, obs`` positional, then keyword-only
``reduce_dims`` / ``preserve_dims`` / ``weights`` / ``skipna``. By default every dim is reduced.
Inputs are broadcast against each other by xarray (aligned on their coordinates); the result
keeps the dims that are not reduced.

Public API: ``bias``, ``mae``, ``mse``, ``rmse``, ``correlation``, ``acc``.

References
----------
Wilks, D. S. (2019): Statistical Methods in the Atmospheric Sciences, 4th ed., Elsevier, ch. 9.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import xarray as xr

from engine.types import Dims, XarrayLike
from verification._dims import resolve_dims, weighted_mean

__all__ = ["acc", "bias", "correlation", "mae", "mse", "rmse"]


def _sqrt(data: XarrayLike) -> XarrayLike:
    """Square root of an xarray object."""
    # np.sqrt dispatches to xarray (__array_ufunc__) and returns the input's type; numpy's stubs say ndarray.
    return cast(XarrayLike, np.sqrt(data))


def bias(
    fcst: XarrayLike,
    obs: XarrayLike,
    *,
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
    skipna: bool = True,
) -> XarrayLike:
    r"""Mean (additive) error, forecast minus observation.

    .. math:: \mathrm{bias} = \frac{\sum_i w_i (f_i - o_i)}{\sum_i w_i}

    Parameters
    ----------
    fcst, obs : xarray.DataArray or xarray.Dataset
        Forecast and observation, any dims (broadcast against each other), same units.
    reduce_dims, preserve_dims : str or sequence of str, optional
        Dims to reduce, or to keep (``"all"`` accepted); at most one of them. Default: all dims.
    weights : xarray.DataArray, optional
        Non-negative weights, e.g. :func:`verification.latitude_weights`.
    skipna : bool
        Ignore points where either input is NaN.

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        Bias in the units of the inputs; positive means the forecast is too high.

    Raises
    ------
    DimensionError
        If both ``reduce_dims`` and ``preserve_dims`` are given, or either names a missing dim.

    References
    ----------
    Wilks (2019), Statistical Methods in the Atmospheric Sciences, eq. 9.33 (mean error).
    """
    dims = resolve_dims(fcst, obs, reduce_dims=reduce_dims, preserve_dims=preserve_dims, weights=weights)
    return weighted_mean(fcst - obs, dims=dims, weights=weights, skipna=skipna)


def mae(
    fcst: XarrayLike,
    obs: XarrayLike,
    *,
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
    skipna: bool = True,
) -> XarrayLike:
    r"""Mean absolute error.

    .. math:: \mathrm{MAE} = \frac{\sum_i w_i |f_i - o_i|}{\sum_i w_i}

    Parameters
    ----------
    fcst, obs : xarray.DataArray or xarray.Dataset
        Forecast and observation, any dims, same units.
    reduce_dims, preserve_dims, weights, skipna
        As in :func:`bias`.

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        MAE (>= 0) in the units of the inputs.

    Raises
    ------
    DimensionError
        If both ``reduce_dims`` and ``preserve_dims`` are given, or either names a missing dim.

    References
    ----------
    Wilks (2019), Statistical Methods in the Atmospheric Sciences, eq. 9.31.
    """
    dims = resolve_dims(fcst, obs, reduce_dims=reduce_dims, preserve_dims=preserve_dims, weights=weights)
    # abs() keeps the xarray type; mypy joins the union DataArray | Dataset to their base class.
    err = cast(XarrayLike, abs(fcst - obs))
    return weighted_mean(err, dims=dims, weights=weights, skipna=skipna)


def mse(
    fcst: XarrayLike,
    obs: XarrayLike,
    *,
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
    skipna: bool = True,
) -> XarrayLike:
    r"""Mean squared error.

    .. math:: \mathrm{MSE} = \frac{\sum_i w_i (f_i - o_i)^2}{\sum_i w_i}

    Parameters
    ----------
    fcst, obs : xarray.DataArray or xarray.Dataset
        Forecast and observation, any dims, same units.
    reduce_dims, preserve_dims, weights, skipna
        As in :func:`bias`.

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        MSE (>= 0) in the squared units of the inputs.

    Raises
    ------
    DimensionError
        If both ``reduce_dims`` and ``preserve_dims`` are given, or either names a missing dim.

    References
    ----------
    Wilks (2019), Statistical Methods in the Atmospheric Sciences, eq. 9.32.
    """
    dims = resolve_dims(fcst, obs, reduce_dims=reduce_dims, preserve_dims=preserve_dims, weights=weights)
    return weighted_mean((fcst - obs) ** 2, dims=dims, weights=weights, skipna=skipna)


def rmse(
    fcst: XarrayLike,
    obs: XarrayLike,
    *,
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
    skipna: bool = True,
) -> XarrayLike:
    r"""Root mean squared error.

    .. math:: \mathrm{RMSE} = \sqrt{\frac{\sum_i w_i (f_i - o_i)^2}{\sum_i w_i}}

    Parameters
    ----------
    fcst, obs : xarray.DataArray or xarray.Dataset
        Forecast and observation, any dims, same units.
    reduce_dims, preserve_dims, weights, skipna
        As in :func:`bias`.

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        RMSE (>= 0) in the units of the inputs.

    Raises
    ------
    DimensionError
        If both ``reduce_dims`` and ``preserve_dims`` are given, or either names a missing dim.

    References
    ----------
    Wilks (2019), Statistical Methods in the Atmospheric Sciences, section 9.3.1.
    """
    return _sqrt(mse(fcst, obs, reduce_dims=reduce_dims, preserve_dims=preserve_dims, weights=weights, skipna=skipna))


def _pair_mask(fcst: XarrayLike, obs: XarrayLike) -> tuple[XarrayLike, XarrayLike]:
    """Set both inputs to NaN wherever either is NaN, so moments use the same sample."""
    valid = fcst.notnull() & obs.notnull()
    return fcst.where(valid), obs.where(valid)


def _correlation_from_anomalies(
    fa: XarrayLike,
    oa: XarrayLike,
    dims: list,
    weights: xr.DataArray | None,
    skipna: bool,
) -> XarrayLike:
    """Weighted cosine similarity sum(w f o) / sqrt(sum(w f^2) sum(w o^2)) of two anomaly fields."""
    num = weighted_mean(fa * oa, dims=dims, weights=weights, skipna=skipna)
    den = _sqrt(
        weighted_mean(fa**2, dims=dims, weights=weights, skipna=skipna)
        * weighted_mean(oa**2, dims=dims, weights=weights, skipna=skipna)
    )
    # A constant field has no defined correlation; return NaN rather than dividing by zero.
    return num / den.where(den > 0)


def correlation(
    fcst: XarrayLike,
    obs: XarrayLike,
    *,
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
    skipna: bool = True,
) -> XarrayLike:
    r"""Pearson product-moment correlation between forecast and observation.

    .. math::

        r = \frac{\sum_i w_i (f_i - \bar f)(o_i - \bar o)}
                 {\sqrt{\sum_i w_i (f_i - \bar f)^2 \; \sum_i w_i (o_i - \bar o)^2}},
        \qquad \bar f = \frac{\sum_i w_i f_i}{\sum_i w_i}

    Pairs where either value is NaN are dropped from every sum (with ``skipna``), so the
    means and the variances use the same sample.

    Parameters
    ----------
    fcst, obs : xarray.DataArray or xarray.Dataset
        Forecast and observation, any dims, same units.
    reduce_dims, preserve_dims, weights, skipna
        As in :func:`bias`.

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        Correlation in [-1, 1] (dimensionless); NaN where either input is constant.

    Raises
    ------
    DimensionError
        If both ``reduce_dims`` and ``preserve_dims`` are given, or either names a missing dim.

    References
    ----------
    Wilks (2019), Statistical Methods in the Atmospheric Sciences, eq. 3.28.
    """
    dims = resolve_dims(fcst, obs, reduce_dims=reduce_dims, preserve_dims=preserve_dims, weights=weights)
    f, o = _pair_mask(fcst, obs) if skipna else (fcst, obs)
    fa = f - weighted_mean(f, dims=dims, weights=weights, skipna=skipna)
    oa = o - weighted_mean(o, dims=dims, weights=weights, skipna=skipna)
    return _correlation_from_anomalies(fa, oa, dims, weights, skipna)


def acc(
    fcst: XarrayLike,
    obs: XarrayLike,
    *,
    climatology: XarrayLike,
    centred: bool = True,
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
    skipna: bool = True,
) -> XarrayLike:
    r"""Anomaly correlation coefficient (ACC) with respect to a climatology.

    With anomalies :math:`f'_i = f_i - c_i` and :math:`o'_i = o_i - c_i`:

    centred (``centred=True``, the default; Wilks 2019 eq. 9.65):

    .. math::

        \mathrm{ACC} = \frac{\sum_i w_i (f'_i - \overline{f'})(o'_i - \overline{o'})}
                            {\sqrt{\sum_i w_i (f'_i - \overline{f'})^2 \sum_i w_i (o'_i - \overline{o'})^2}}

    uncentred (``centred=False``; Wilks 2019 eq. 9.64, the ECMWF/WMO headline score):

    .. math::

        \mathrm{ACC}_u = \frac{\sum_i w_i f'_i o'_i}{\sqrt{\sum_i w_i f'^2_i \sum_i w_i o'^2_i}}

    The centred form removes the mean anomaly over the reduced dims, so it measures the pattern
    agreement only; the uncentred form also rewards getting the domain-mean anomaly right.

    Parameters
    ----------
    fcst, obs : xarray.DataArray or xarray.Dataset
        Forecast and observation, any dims, same units.
    climatology : xarray.DataArray or xarray.Dataset
        Climatological value for each point, broadcastable to ``fcst`` (same units), e.g. a
        day-of-year mean already selected for the valid times.
    centred : bool
        Centred (default) or uncentred ACC, see above.
    reduce_dims, preserve_dims, weights, skipna
        As in :func:`bias`.

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        ACC in [-1, 1] (dimensionless); NaN where an anomaly field is identically zero.

    Raises
    ------
    DimensionError
        If both ``reduce_dims`` and ``preserve_dims`` are given, or either names a missing dim.

    References
    ----------
    Wilks (2019), Statistical Methods in the Atmospheric Sciences, section 9.6.4, eqs. 9.64-9.65.
    """
    dims = resolve_dims(fcst, obs, reduce_dims=reduce_dims, preserve_dims=preserve_dims, weights=weights)
    f, o = _pair_mask(fcst, obs) if skipna else (fcst, obs)
    fa, oa = f - climatology, o - climatology
    if centred:
        fa = fa - weighted_mean(fa, dims=dims, weights=weights, skipna=skipna)
        oa = oa - weighted_mean(oa, dims=dims, weights=weights, skipna=skipna)
    return _correlation_from_anomalies(fa, oa, dims, weights, skipna)
