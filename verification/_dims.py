"""Dimension handling and weighting shared by every metric.

Every metric in :mod:`verification.metrics` resolves which dimensions it reduces with
:func:`resolve_dims` and averages with :func:`weighted_mean` (or sums with :func:`weighted_sum`
for counts), so the ``reduce_dims`` / ``preserve_dims`` / ``weights`` keywords mean the same
thing everywhere, following the convention of the ``scores`` package (Leeuwenburg et al. 2024).

Public API: ``resolve_dims``, ``weighted_mean``, ``weighted_sum``, ``latitude_weights``,
``all_dims``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import overload

import numpy as np
import xarray as xr

from engine.errors import CoordError, DimensionError
from engine.types import Dims, XarrayLike

#: Sentinel accepted by ``reduce_dims`` and ``preserve_dims``: every dimension of the inputs.
ALL = "all"


def _as_dim_list(dims: Dims, argname: str) -> list[Hashable]:
    """Turn a single dim name or a sequence of names into a list, rejecting duplicates."""
    out: list[Hashable] = [dims] if isinstance(dims, str) else list(dims)
    dupes = sorted({str(d) for d in out if out.count(d) > 1})
    if dupes:
        raise DimensionError(f"{argname} names dimension(s) {dupes} more than once: {out}")
    return out


def all_dims(*objs: XarrayLike | None) -> list[Hashable]:
    """Union of the dimensions of ``objs`` in order of first appearance (``None`` entries skipped)."""
    out: list[Hashable] = []
    for obj in objs:
        if obj is None:
            continue
        out.extend(d for d in obj.dims if d not in out)
    return out


def resolve_dims(
    fcst: XarrayLike,
    obs: XarrayLike | None = None,
    *,
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
    exclude: Iterable[Hashable] = (),
) -> list[Hashable]:
    """Dimensions a metric reduces over, from ``reduce_dims`` or ``preserve_dims``.

    The candidate dimensions are the union of the dimensions of ``fcst``, ``obs`` and
    ``weights`` (weights broadcast against the error, so their dims take part in the
    reduction), minus ``exclude`` (dims a metric consumes itself, e.g. the ensemble member
    dim of CRPS).

    Parameters
    ----------
    fcst, obs : xarray.DataArray or xarray.Dataset
        Forecast and observation (``obs`` may be ``None`` for one-input helpers).
    reduce_dims : str or sequence of str, optional
        Dims to reduce; ``"all"`` reduces every dim. Mutually exclusive with ``preserve_dims``.
    preserve_dims : str or sequence of str, optional
        Dims to keep, every other dim is reduced; ``"all"`` keeps every dim (point-wise score).
    weights : xarray.DataArray, optional
        Weights that will be applied; only their dims are used here.
    exclude : iterable of str
        Dims that are never reduced here (handled by the metric itself).

    Returns
    -------
    list of hashable
        Dims to reduce, in the order they appear in the inputs. Empty: reduce nothing.

    Raises
    ------
    DimensionError
        If both ``reduce_dims`` and ``preserve_dims`` are given, if either names a dim that is
        in none of the inputs (the message names it and lists the available dims), or if a
        name is repeated.
    """
    if reduce_dims is not None and preserve_dims is not None:
        raise DimensionError(
            f"give reduce_dims or preserve_dims, not both (got reduce_dims={reduce_dims!r}, "
            f"preserve_dims={preserve_dims!r})"
        )
    excluded = set(exclude)
    available = [d for d in all_dims(fcst, obs, weights) if d not in excluded]

    def _check(dims: list[Hashable], argname: str) -> None:
        missing = [d for d in dims if d not in available]
        if missing:
            raise DimensionError(
                f"{argname} names dimension(s) {missing} not found in the inputs; available: {available}"
            )

    if preserve_dims is not None:
        if isinstance(preserve_dims, str) and preserve_dims == ALL:
            return []
        keep = _as_dim_list(preserve_dims, "preserve_dims")
        _check(keep, "preserve_dims")
        return [d for d in available if d not in keep]
    if reduce_dims is None or (isinstance(reduce_dims, str) and reduce_dims == ALL):
        return available
    red = _as_dim_list(reduce_dims, "reduce_dims")
    _check(red, "reduce_dims")
    return [d for d in available if d in red]


def _check_weights(weights: xr.DataArray) -> None:
    if not isinstance(weights, xr.DataArray):
        raise TypeError(f"weights must be an xarray.DataArray, got {type(weights).__name__}")
    values = np.asarray(weights.values)
    if np.isnan(values).any():
        raise ValueError("weights contain NaN; use 0 to exclude points")
    if (values < 0).any():
        raise ValueError(f"weights must be non-negative; minimum is {values.min()}")


@overload
def weighted_mean(
    data: xr.DataArray, *, dims: Sequence[Hashable], weights: xr.DataArray | None = None, skipna: bool = True
) -> xr.DataArray: ...
@overload
def weighted_mean(
    data: xr.Dataset, *, dims: Sequence[Hashable], weights: xr.DataArray | None = None, skipna: bool = True
) -> xr.Dataset: ...
def weighted_mean(
    data: XarrayLike,
    *,
    dims: Sequence[Hashable],
    weights: xr.DataArray | None = None,
    skipna: bool = True,
) -> XarrayLike:
    r"""Weighted mean of ``data`` over ``dims``.

    .. math:: \bar{x} = \frac{\sum_i w_i x_i}{\sum_i w_i}

    With ``skipna`` the sums run over the points where ``x_i`` is finite (the weights of
    missing points are dropped from the denominator, xarray's ``weighted`` semantics), so an
    area-weighted mean over a field with gaps stays an area mean over the valid part.

    Parameters
    ----------
    data : xarray.DataArray or xarray.Dataset
        Values to average (any units; the result has the same units).
    dims : sequence of hashable
        Dims to reduce; empty returns ``data`` unchanged (a point-wise mean is the value).
    weights : xarray.DataArray, optional
        Non-negative weights, broadcast against ``data`` (e.g. :func:`latitude_weights`).
        ``None`` is an unweighted mean.
    skipna : bool
        Skip NaN in ``data``; otherwise any NaN makes the mean NaN.

    Returns
    -------
    Same type as ``data``, without ``dims``.

    Raises
    ------
    ValueError
        If ``weights`` contain NaN or negative values.
    CoordError
        If ``weights`` have other coordinate values than ``data`` along a shared dim.
    """
    dims = list(dims)
    if weights is None:
        return data.mean(dim=dims, skipna=skipna) if dims else data
    _check_weights(weights)
    if not dims:
        return data
    # Weights on other coordinates than the data (e.g. latitudes vs row numbers) would be
    # outer-joined into NaN by broadcasting; refuse them instead of guessing.
    try:
        xr.align(data, weights, join="exact")
    except ValueError as err:
        raise CoordError(f"weights coordinates do not match the data's: {err}") from err
    # Broadcast first so weights with dims absent from data are handled explicitly rather than
    # by xarray's weighted (which rejects reducing over a dim the weights do not have).
    data_b, weights_b = xr.broadcast(data, weights)
    return data_b.weighted(weights_b).mean(dim=dims, skipna=skipna)


@overload
def weighted_sum(
    data: xr.DataArray, *, dims: Sequence[Hashable], weights: xr.DataArray | None = None, skipna: bool = True
) -> xr.DataArray: ...
@overload
def weighted_sum(
    data: xr.Dataset, *, dims: Sequence[Hashable], weights: xr.DataArray | None = None, skipna: bool = True
) -> xr.Dataset: ...
def weighted_sum(
    data: XarrayLike,
    *,
    dims: Sequence[Hashable],
    weights: xr.DataArray | None = None,
    skipna: bool = True,
) -> XarrayLike:
    r"""Weighted sum :math:`\sum_i w_i x_i` of ``data`` over ``dims`` (for counts).

    Contingency tables and histograms are counts, not means; with weights (e.g. grid-cell
    areas) they become weighted counts. Same conventions and errors as :func:`weighted_mean`.
    """
    dims = list(dims)
    if weights is not None:
        _check_weights(weights)
        data = data * weights
    return data.sum(dim=dims, skipna=skipna) if dims else data


def latitude_weights(lat: xr.DataArray | np.ndarray | Sequence[float], *, dim: str = "lat") -> xr.DataArray:
    r"""Area weights of a regular latitude-longitude grid, normalised to mean 1.

    .. math:: w_j = \frac{\cos\varphi_j}{\frac{1}{N}\sum_{k=1}^{N}\cos\varphi_k}

    The area of a cell of a regular grid is proportional to :math:`\cos\varphi` (Rasp et al.
    2020, WeatherBench, eq. 1). Normalising to mean 1 keeps weighted means on the same scale as
    unweighted ones.

    Parameters
    ----------
    lat : xarray.DataArray or array-like
        Latitudes in degrees north, 1-D (any order).
    dim : str
        Name of the dimension when ``lat`` is not a DataArray.

    Returns
    -------
    xarray.DataArray
        Weights (dimensionless) along the latitude dim, with the latitudes as coordinate.

    Raises
    ------
    DimensionError
        If ``lat`` is not 1-D.
    ValueError
        If a latitude lies outside [-90, 90].

    References
    ----------
    Rasp, S. et al. (2020): WeatherBench: a benchmark data set for data-driven weather
    forecasting. J. Adv. Model. Earth Syst., 12, e2020MS002203.
    """
    if isinstance(lat, xr.DataArray):
        if lat.ndim != 1:
            raise DimensionError(f"lat must be 1-D, got dims {lat.dims}")
        lat_da = lat
    else:
        values = np.asarray(lat, dtype=float)
        if values.ndim != 1:
            raise DimensionError(f"lat must be 1-D, got shape {values.shape}")
        lat_da = xr.DataArray(values, dims=[dim], coords={dim: values})
    values = np.asarray(lat_da.values, dtype=float)
    if np.any(np.abs(values) > 90):
        raise ValueError(f"lat must lie in [-90, 90] degrees; got range [{values.min()}, {values.max()}]")
    # cos(90 deg) is 6e-17 in floating point; a pole row has zero area, so give it exactly 0
    w = np.where(np.abs(values) == 90.0, 0.0, np.cos(np.deg2rad(values)))
    return xr.DataArray(w / w.mean(), dims=lat_da.dims, coords=lat_da.coords, name="latitude_weights")
