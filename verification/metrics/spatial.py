r"""Spatial verification of gridded fields: FSS, SAL, power spectra and displacement.

These scores look at whole 2-D fields rather than at points, so each takes ``spatial_dims``
(default ``("y", "x")`` when both exist, else ``("lat", "lon")``): the two grid dims a score
works across. Every other dim (``lead_time``, ``member``, ...) is a batch dim, handled by
``reduce_dims`` / ``preserve_dims`` / ``weights`` as in the point-wise metrics.

Public API: ``fss``, ``sal``, ``power_spectrum``, ``displacement``.

References
----------
Roberts, N. M. and Lean, H. W. (2008): Scale-selective verification of rainfall accumulations
from high-resolution forecasts of convective events. Mon. Wea. Rev., 136, 78-97.
Wernli, H., Paulat, M., Hagen, M. and Frei, C. (2008): SAL - a novel quality measure for the
verification of quantitative precipitation forecasts. Mon. Wea. Rev., 136, 4470-4487.
Wernli, H., Hofmann, C. and Zimmer, M. (2009): Spatial forecast verification methods
intercomparison project: application of the SAL technique. Wea. Forecasting, 24, 1472-1484.
Pulkkinen, S. et al. (2019): Pysteps: an open-source Python library for probabilistic
precipitation nowcasting (v1.0). Geosci. Model Dev., 12, 4185-4219.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, cast

import numpy as np
import xarray as xr
from scipy import ndimage

from engine.errors import CoordError, DimensionError
from engine.types import Dims
from verification._dims import _check_weights, all_dims, resolve_dims, weighted_mean

__all__ = ["displacement", "fss", "power_spectrum", "sal"]


def _spatial_dims(obj: xr.DataArray, spatial_dims: Sequence[Hashable] | None) -> tuple[Hashable, Hashable]:
    """The two grid dims: given, or ``(y, x)``, or ``(lat, lon)``."""
    if spatial_dims is None:
        for cand in (("y", "x"), ("lat", "lon")):
            if all(d in obj.dims for d in cand):
                return cand
        raise DimensionError(
            f"cannot find the spatial dims: neither ('y', 'x') nor ('lat', 'lon') in {obj.dims}; pass spatial_dims="
        )
    dims = tuple(spatial_dims)
    if len(dims) != 2:
        raise DimensionError(f"spatial_dims must name exactly two dims, got {dims}")
    missing = [d for d in dims if d not in obj.dims]
    if missing:
        raise DimensionError(f"spatial_dims {missing} not found in the input dims {obj.dims}")
    return dims[0], dims[1]


def _check_pair(fcst: xr.DataArray, obs: xr.DataArray, sdims: tuple[Hashable, Hashable]) -> None:
    for name, arr in (("fcst", fcst), ("obs", obs)):
        if not isinstance(arr, xr.DataArray):
            raise TypeError(f"{name} must be an xarray.DataArray, got {type(arr).__name__}")
        missing = [d for d in sdims if d not in arr.dims]
        if missing:
            raise DimensionError(f"{name} lacks the spatial dim(s) {missing}; its dims are {arr.dims}")
    for d in sdims:
        if fcst.sizes[d] != obs.sizes[d]:
            raise DimensionError(f"fcst and obs differ in size along {d!r}: {fcst.sizes[d]} vs {obs.sizes[d]}")


def _int_sequence(value: int | Sequence[int], name: str) -> tuple[list[int], bool]:
    """Validate a positive int or a sequence of them; returns (values, was_scalar)."""
    scalar = np.ndim(value) == 0
    # np.ndim tells the two cases apart (numpy scalars and arrays too); mypy cannot follow it.
    values = [cast(int, value)] if scalar else list(cast(Sequence[int], value))
    if not values:
        raise ValueError(f"{name} must not be empty")
    for v in values:
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be positive integers (grid points), got {values}")
    return [int(v) for v in values], scalar


def _non_spatial_reduce(
    fcst: xr.DataArray,
    obs: xr.DataArray | None,
    sdims: tuple[Hashable, Hashable],
    reduce_dims: Dims | None,
    preserve_dims: Dims | None,
    weights: xr.DataArray | None,
    score: str,
) -> list[Hashable]:
    """Batch dims to average a per-field score over; the spatial dims are consumed by the score."""
    if weights is not None and any(d in weights.dims for d in sdims):
        raise DimensionError(
            f"{score} is computed per field, so weights may only span non-spatial dims; got weights dims "
            f"{weights.dims} with spatial dims {sdims}"
        )
    return resolve_dims(fcst, obs, reduce_dims=reduce_dims, preserve_dims=preserve_dims, weights=weights, exclude=sdims)


# --------------------------------------------------------------------------------------------
# Fractions skill score
# --------------------------------------------------------------------------------------------


class _BoxSums:
    r"""Moving-window event counts of binary fields for many windows, from one summed-area table.

    The count at grid point :math:`(i, j)` for an :math:`n \times n` window runs over rows
    :math:`[i - \lfloor n/2 \rfloor, i - \lfloor n/2 \rfloor + n - 1]` (and likewise
    columns), clipped to the domain. Divided by :math:`n^2` that is exactly
    ``scipy.ndimage.uniform_filter(ind, size=n, mode="constant", cval=0)`` (zero padding, and
    scipy's origin convention for even ``n``), the moving average of pysteps' FSS; but every
    window costs four shifted slices of one table instead of a filter pass per window.

    The table holds :math:`S(a, b) = \sum_{i<a, j<b} I_{ij}` (a leading row and column of
    zeros), padded with zeros before it and with its last row and column repeated after it, so
    a window reaching past the domain edge reads the clipped index through a plain slice.
    The table is int32 (int64 for grids of more than :math:`2^{31}` points): integer counts are
    exact, and the slices move half the bytes of float64, which is what the time goes on.

    Parameters
    ----------
    ind : numpy.ndarray of bool
        Binary event fields; the last two axes are the grid (y, x), the leading ones a batch.
    windows : sequence of int
        The window sizes :meth:`counts` will be asked for (they size the padding).
    """

    def __init__(self, ind: np.ndarray, windows: Sequence[int]) -> None:
        ny, nx = ind.shape[-2:]
        self.shape = (ny, nx)
        # Offsets of a window's lower and (exclusive) upper edge from its centre point. An
        # offset beyond the grid size reads the same clipped index as the grid size itself,
        # so capping it bounds the padding (and memory) for windows larger than the domain.
        by, bx = max(min(n // 2, ny) for n in windows), max(min(n // 2, nx) for n in windows)
        ay, ax = max(min(n - n // 2, ny) for n in windows) - 1, max(min(n - n // 2, nx) for n in windows) - 1
        self._before = (by, bx)
        dtype = np.int32 if ny * nx < 2**31 else np.int64
        table = np.zeros((*ind.shape[:-2], by + 1 + ny + ay, bx + 1 + nx + ax), dtype=dtype)
        # Cumulative sums in place inside the table: numpy's cumsum from bool with a dtype
        # argument takes a slow casting path, and fresh large arrays cost page faults.
        core = table[..., by + 1 : by + 1 + ny, bx + 1 : bx + 1 + nx]
        core[...] = ind
        np.cumsum(core, axis=-2, out=core)
        np.cumsum(core, axis=-1, out=core)
        # edge padding: indices past the far edge clip to the last row / column of S
        table[..., by + 1 : by + 1 + ny, bx + 1 + nx :] = core[..., :, -1:]
        table[..., by + 1 + ny :, :] = table[..., by + ny : by + 1 + ny, :]
        self._table = table

    def counts(self, n: int) -> np.ndarray:
        """Event counts in the ``n x n`` window around every point, as float64, shaped as the input."""
        ny, nx = self.shape
        by, bx = self._before
        lo_y, hi_y = by - min(n // 2, ny), by + min(n - n // 2, ny)
        lo_x, hi_x = bx - min(n // 2, nx), bx + min(n - n // 2, nx)
        t = self._table
        rows_lo, rows_hi = slice(lo_y, lo_y + ny), slice(hi_y, hi_y + ny)
        cols_lo, cols_hi = slice(lo_x, lo_x + nx), slice(hi_x, hi_x + nx)
        out = t[..., rows_hi, cols_hi] - t[..., rows_lo, cols_hi]
        out -= t[..., rows_hi, cols_lo]
        out += t[..., rows_lo, cols_lo]
        # float64 for what follows: sums of squared counts overflow integers on large grids
        return out.astype(np.float64)


def _block(arr: xr.DataArray, layout: Sequence[Hashable]) -> np.ndarray:
    """Values of ``arr`` in the dim order ``layout``, with a length-1 axis for each dim it lacks.

    Numpy broadcasting then pairs a forecast with members against an observation without
    them (or grid weights against a batch) without copying anything.
    """
    values = np.asarray(arr.transpose(*[d for d in layout if d in arr.dims]).values)
    return values.reshape([arr.sizes[d] if d in arr.dims else 1 for d in layout])


def fss(
    fcst: xr.DataArray,
    obs: xr.DataArray,
    *,
    threshold: float | Sequence[float],
    window: int | Sequence[int],
    spatial_dims: Sequence[Hashable] | None = None,
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
) -> xr.DataArray:
    r"""Fractions skill score (Roberts and Lean 2008).

    With binary fields :math:`I = [x \ge t]` and their neighbourhood fractions
    :math:`P = \frac{1}{n^2}\sum_{n \times n} I` (a moving average over a square window of
    ``n`` grid points):

    .. math::

        \mathrm{FSS} = 1 - \frac{\sum_i w_i (P^f_i - P^o_i)^2}{\sum_i w_i \left[(P^f_i)^2 + (P^o_i)^2\right]}

    The sums run over the grid and over the reduced batch dims, so aggregating over cases pools
    the numerator and denominator (as pysteps' ``fss_accum``) rather than averaging per-case FSS.

    Boundary treatment and missing data follow pysteps exactly: the moving average is
    ``scipy.ndimage.uniform_filter(I, size=n, mode="constant", cval=0)``, i.e. the domain is
    padded with non-events, so near the edge the fraction is the count of events divided by
    :math:`n^2`; non-finite values (NaN outside the radar range) count as non-events. An even
    ``n`` centres the window half a cell off (scipy's origin convention), as in pysteps.
    The moving sums are read from one summed-area table per field (exact integer counts), so
    all windows cost one cumulative sum plus four slices each, whatever their size; the
    results equal the ``uniform_filter`` ones up to rounding in the last bits.

    Parameters
    ----------
    fcst, obs : xarray.DataArray
        Fields with the two spatial dims and any batch dims, units of ``threshold`` (e.g. mm h-1).
        They pair up on their coordinates as in xarray arithmetic (inner join), and a dim only
        one of them has is broadcast (e.g. members against one observation).
    threshold : float or sequence of float
        Event threshold(s), event = ``value >= threshold``; a sequence adds a dim ``threshold``.
    window : int or sequence of int
        Neighbourhood side length(s) in grid points (1 = grid-point scale); a sequence adds a dim
        ``window``.
    spatial_dims : pair of str, optional
        Grid dims, default ``("y", "x")`` or ``("lat", "lon")``. Always reduced.
    reduce_dims, preserve_dims : str or sequence of str, optional
        Batch dims to pool over, or to keep; at most one. Default: all dims.
    weights : xarray.DataArray, optional
        Non-negative weights on the grid points and/or batch dims (e.g. cell areas).

    Returns
    -------
    xarray.DataArray
        FSS in [0, 1] (dimensionless), NaN when neither field has an event (0/0).

    Raises
    ------
    DimensionError
        If the spatial dims are missing or differ in size, if ``preserve_dims`` keeps a spatial
        dim, or for the usual ``reduce_dims`` / ``preserve_dims`` errors.
    ValueError
        If a window is not a positive integer, a threshold is NaN, or weights are negative or NaN.
    CoordError
        If ``weights`` lie on other coordinates than the fields.

    References
    ----------
    Roberts and Lean (2008), Mon. Wea. Rev., 136, 78-97, eqs. 5-7.
    Pysteps ``pysteps.verification.spatialscores.fss`` (Pulkkinen et al. 2019).
    """
    sdims = _spatial_dims(fcst, spatial_dims)
    _check_pair(fcst, obs, sdims)
    windows, window_scalar = _int_sequence(window, "window")
    thr_scalar = np.ndim(threshold) == 0
    thresholds = np.atleast_1d(np.asarray(threshold, dtype=float))
    if np.isnan(thresholds).any():
        raise ValueError(f"threshold must not be NaN, got {thresholds.tolist()}")
    dims = resolve_dims(fcst, obs, reduce_dims=reduce_dims, preserve_dims=preserve_dims, weights=weights)
    kept_spatial = [d for d in sdims if d not in dims]
    if kept_spatial:
        raise DimensionError(f"fss always reduces the spatial dims; cannot preserve {kept_spatial}")
    if weights is not None:
        _check_weights(weights)
    # fcst and obs pair up by coordinates as in xarray arithmetic (the point-wise metrics'
    # convention); weights must sit on the same coordinates, as in weighted_mean
    fcst, obs = xr.align(fcst, obs, join="inner", copy=False)  # copy=True would copy whole fields
    if weights is not None:
        try:
            xr.align(fcst, obs, weights, join="exact", copy=False)
        except ValueError as err:
            raise CoordError(f"weights coordinates do not match the data's: {err}") from err
    # Everything below is numpy on one layout, batch dims first and the grid last (each field
    # one contiguous block), with the threshold axis just before the grid.
    batch = [d for d in all_dims(fcst, obs, weights) if d not in sdims]
    layout = [*batch, *sdims]
    reduced = tuple(i for i, d in enumerate(batch) if d in dims)
    kept = [d for d in batch if d not in dims]
    thr = thresholds[:, None, None]

    def indicator(field: xr.DataArray) -> np.ndarray:
        values = _block(field, layout)[..., None, :, :]
        # pysteps sets non-finite values to thr - 1, a non-event: NaN >= thr is already False,
        # and the isfinite also makes +inf a non-event
        return np.isfinite(values) & (values >= thr)

    ind_f, ind_o = indicator(fcst), indicator(obs)
    w = None if weights is None else _block(weights, layout)[..., None, :, :].astype(float)
    # the batch x threshold shape every per-field sum is broadcast to before pooling
    full = np.broadcast_shapes(*(a.shape[:-2] for a in (ind_f, ind_o, w) if a is not None))

    def pooled(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Sum of ``w * a * b`` over the grid and the reduced batch dims; shape (*kept, threshold)."""
        # einsum: one pass and no temporary for the common unweighted case
        per_field = np.einsum("...ij,...ij->...", a, b) if w is None else np.sum(w * a * b, axis=(-2, -1))
        return np.broadcast_to(per_field, full).sum(axis=reduced)

    sums_f, sums_o = _BoxSums(ind_f, windows), _BoxSums(ind_o, windows)
    del ind_f, ind_o  # the tables hold all that is needed
    out = []
    for n in windows:
        # Counts, not fractions: the 1/n^2 cancels between numerator and denominator.
        c_f, c_o = sums_f.counts(n), sums_o.counts(n)
        diff = c_f - c_o
        num = pooled(diff, diff)
        den = pooled(c_f, c_f) + pooled(c_o, c_o)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(den > 0, 1.0 - num / np.where(den > 0, den, 1.0), np.nan))
    coords: dict[Hashable, Any] = {"window": windows, "threshold": thresholds}
    for source in (fcst, obs):
        for name, coord in source.coords.items():
            # coords on the kept batch dims survive (e.g. valid_time along lead_time)
            if name not in coords and set(coord.dims) <= set(kept):
                coords[name] = coord.variable
    result = xr.DataArray(np.stack(out), dims=["window", *kept, "threshold"], coords=coords)
    if window_scalar:
        result = result.squeeze("window", drop=True)
    if thr_scalar:
        result = result.squeeze("threshold", drop=True)
    return result.rename("fss")


# --------------------------------------------------------------------------------------------
# SAL
# --------------------------------------------------------------------------------------------


def _sal_objects(field: np.ndarray, thr_factor: float, thr_quantile: float, min_size: int) -> tuple:
    """Label SAL objects: 4-connected regions with ``field >= R*`` of at least ``min_size`` points.

    ``R* = thr_factor * quantile(wet values, thr_quantile)``, with wet = above the field minimum,
    exactly pysteps' ``_sal_detect_objects`` threshold. Returns (labels, indices of kept objects).
    """
    finite = np.isfinite(field)
    if not finite.any():
        return np.zeros(field.shape, dtype=int), np.array([], dtype=int)
    zero_value = np.nanmin(field)
    wet = field[finite & (field > zero_value)]
    if wet.size == 0:  # a field without rain has no objects
        return np.zeros(field.shape, dtype=int), np.array([], dtype=int)
    r_star = thr_factor * np.quantile(wet, thr_quantile)
    mask = finite & (field >= r_star)
    # scipy's default structuring element is the 4-neighbourhood, as pysteps (ndimage.label)
    labels, n = ndimage.label(mask)
    if n == 0:
        return labels, np.array([], dtype=int)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    keep = np.flatnonzero(sizes >= min_size) + 1
    return labels, keep


def _sal_field(
    fcst: np.ndarray, obs: np.ndarray, thr_factor: float, thr_quantile: float, min_size: int
) -> tuple[float, float, float]:
    """S, A, L for one pair of 2-D fields (pysteps' conventions; NaN ignored)."""
    ny, nx = obs.shape
    d_max = np.hypot(ny, nx)  # largest distance across the domain, in grid points

    def amp_mean(x: np.ndarray) -> float:
        return float(np.nanmean(x)) if np.isfinite(x).any() else np.nan

    mf, mo = amp_mean(fcst), amp_mean(obs)
    amplitude = (mf - mo) / (0.5 * (mf + mo)) if (mf + mo) != 0 else np.nan

    f0, o0 = np.nan_to_num(fcst), np.nan_to_num(obs)
    com_f = np.array(ndimage.center_of_mass(f0)) if f0.sum() != 0 else np.full(2, np.nan)
    com_o = np.array(ndimage.center_of_mass(o0)) if o0.sum() != 0 else np.full(2, np.nan)
    l1 = float(np.hypot(*(com_f - com_o))) / d_max

    def volume_and_spread(x: np.ndarray, x0: np.ndarray, com: np.ndarray) -> tuple[float, float]:
        labels, keep = _sal_objects(x, thr_factor, thr_quantile, min_size)
        if keep.size == 0:
            return 0.0, np.nan
        r_n = np.asarray(ndimage.sum(x0, labels, keep), dtype=float)
        r_max = np.asarray(ndimage.maximum(x0, labels, keep), dtype=float)
        total = r_n.sum()
        if total == 0:
            return 0.0, np.nan
        # scaled volume V_n = R_n / R_n^max, weighted by R_n (Wernli et al. 2008, eq. 4)
        volume = float(np.sum(r_n * np.where(r_n == 0, 0.0, r_n / r_max)) / total)
        centres = np.array(ndimage.center_of_mass(x0, labels, keep), dtype=float).reshape(-1, 2)
        dist = np.hypot(centres[:, 0] - com[0], centres[:, 1] - com[1])
        spread = float(np.sum(r_n * dist) / total)  # r in eq. 6
        return volume, spread

    v_f, r_f = volume_and_spread(fcst, f0, com_f)
    v_o, r_o = volume_and_spread(obs, o0, com_o)
    structure = (v_f - v_o) / (0.5 * (v_f + v_o)) if (v_f + v_o) != 0 else np.nan
    l2 = 2.0 * abs(r_o - r_f) / d_max
    return float(structure), float(amplitude), float(l1 + l2)


def sal(
    fcst: xr.DataArray,
    obs: xr.DataArray,
    *,
    thr_factor: float = 0.067,
    thr_quantile: float = 0.95,
    min_size: int = 50,
    spatial_dims: Sequence[Hashable] | None = None,
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
) -> xr.Dataset:
    r"""Structure, amplitude and location components of SAL (Wernli et al. 2008).

    Computed per 2-D field over the domain :math:`D` (NaN ignored), then averaged over the
    reduced batch dims. With domain means :math:`\bar R`, objects :math:`n` of total
    precipitation :math:`R_n`, maximum :math:`R_n^{max}` and centre of mass :math:`x_n`, the
    field's centre of mass :math:`x` and the domain diagonal :math:`d`:

    .. math::

        A = \frac{\bar R_f - \bar R_o}{\tfrac12(\bar R_f + \bar R_o)}, \qquad
        S = \frac{V_f - V_o}{\tfrac12(V_f + V_o)}, \quad
        V = \frac{\sum_n R_n \, R_n / R_n^{max}}{\sum_n R_n},

        L = L_1 + L_2, \quad L_1 = \frac{|x_f - x_o|}{d}, \quad
        L_2 = 2\,\frac{|r_f - r_o|}{d}, \quad r = \frac{\sum_n R_n |x - x_n|}{\sum_n R_n}

    Objects are 4-connected regions where :math:`R \ge R^* = f \, R_{q}`, with :math:`f`
    = ``thr_factor`` (Wernli et al. 2008 use 1/15; 0.067 is pysteps' default) and
    :math:`R_q` the ``thr_quantile`` quantile of the wet values (those above the field minimum),
    the robust replacement for the field maximum recommended by Wernli et al. (2009).
    Objects smaller than ``min_size`` grid points are dropped (pysteps' SAL uses its
    thunderstorm detector with a 50-point minimum). This reproduces
    ``pysteps.verification.salscores.sal`` without scikit-image, with two deliberate
    differences, both side effects of pysteps' storm-cell machinery: pysteps drops an object
    whose first (top-left) grid point lies within 10 points of another object's, and an object
    whose bounding box contains NaN (e.g. touching the radar range) gets a NaN centroid that
    pysteps leaves out of the numerator of :math:`r` but not its denominator. For fields
    without NaN and with objects apart, the results agree to rounding.

    Parameters
    ----------
    fcst, obs : xarray.DataArray
        Precipitation fields (e.g. mm h-1, non-negative) with the two spatial dims.
    thr_factor : float
        :math:`f`, factor of the object threshold.
    thr_quantile : float
        Quantile in (0, 1] of the wet values giving :math:`R_q`.
    min_size : int
        Minimum object size in grid points.
    spatial_dims : pair of str, optional
        Grid dims, default ``("y", "x")`` or ``("lat", "lon")``.
    reduce_dims, preserve_dims : str or sequence of str, optional
        Batch dims to average S, A, L over, or to keep; default all (the mean over cases).
    weights : xarray.DataArray, optional
        Weights over the batch dims for that average.

    Returns
    -------
    xarray.Dataset
        ``structure`` and ``amplitude`` in [-2, 2], ``location`` in [0, 2] (dimensionless; 0 is
        perfect). ``structure`` is NaN if neither field has an object, ``location`` if either
        has none, ``amplitude`` if both are dry.

    Raises
    ------
    DimensionError
        If the spatial dims are missing or differ, or for the usual dim errors (``weights`` must
        not span the spatial dims).
    ValueError
        If a parameter is out of range.

    References
    ----------
    Wernli et al. (2008), Mon. Wea. Rev., 136, 4470-4487, eqs. 1-7.
    Wernli et al. (2009), Wea. Forecasting, 24, 1472-1484, eq. 1.
    """
    if not 0 < thr_quantile <= 1:
        raise ValueError(f"thr_quantile must be in (0, 1], got {thr_quantile}")
    if thr_factor <= 0:
        raise ValueError(f"thr_factor must be positive, got {thr_factor}")
    if int(min_size) != min_size or min_size < 1:
        raise ValueError(f"min_size must be a positive integer, got {min_size}")
    sdims = _spatial_dims(fcst, spatial_dims)
    _check_pair(fcst, obs, sdims)
    dims = _non_spatial_reduce(fcst, obs, sdims, reduce_dims, preserve_dims, weights, "sal")
    s, a, loc = xr.apply_ufunc(
        _sal_field,
        fcst.astype(float),
        obs.astype(float),
        input_core_dims=[list(sdims), list(sdims)],
        output_core_dims=[[], [], []],
        vectorize=True,
        kwargs={"thr_factor": thr_factor, "thr_quantile": thr_quantile, "min_size": int(min_size)},
    )
    out = xr.Dataset({"structure": s, "amplitude": a, "location": loc})
    return weighted_mean(out, dims=dims, weights=weights, skipna=True)


# --------------------------------------------------------------------------------------------
# Radially averaged power spectrum
# --------------------------------------------------------------------------------------------


def _rapsd(fields: np.ndarray) -> np.ndarray:
    """Radially averaged PSD of fields (..., m, n) on rings r = 0 .. L/2 (pysteps' ``rapsd``)."""
    m, n = fields.shape[-2:]
    # centred integer coordinates of the fftshift-ed spectrum: index i <-> i - m // 2
    yc = np.arange(m) - m // 2
    xc = np.arange(n) - n // 2
    ring = np.round(np.hypot(yc[:, None], xc[None, :])).astype(int).ravel()
    length = max(m, n)
    n_rings = length // 2 + 1 if length % 2 == 1 else length // 2
    spec = np.fft.fftshift(np.fft.fft2(fields), axes=(-2, -1))
    psd = (np.abs(spec) ** 2 / (m * n)).reshape(*fields.shape[:-2], m * n)
    order = np.argsort(ring, kind="stable")
    ring_sorted = ring[order]
    keep = ring_sorted < n_rings
    order, ring_sorted = order[keep], ring_sorted[keep]
    starts = np.searchsorted(ring_sorted, np.arange(n_rings))
    counts = np.bincount(ring_sorted, minlength=n_rings)
    if (counts == 0).any():  # only possible for very elongated domains
        raise DimensionError(f"domain {m}x{n} too elongated: some rings of the spectrum hold no wavenumbers")
    sums = np.add.reduceat(psd[..., order], starts, axis=-1)
    return sums / counts


def power_spectrum(
    field: xr.DataArray,
    *,
    spacing: float = 1.0,
    normalize: bool = False,
    spatial_dims: Sequence[Hashable] | None = None,
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
) -> xr.DataArray:
    r"""Radially averaged power spectral density (RAPSD) of 2-D fields.

    .. math::

        P(k) = \frac{1}{N_k} \sum_{|\mathbf{k}'| \in \mathrm{ring}\,k}
               \frac{|\hat{x}(\mathbf{k}')|^2}{m\,n},
        \qquad \hat{x} = \mathrm{DFT}_2(x)

    where ring :math:`k` holds the wavenumbers whose distance from the origin, in index units,
    rounds to :math:`k = 0, 1, \ldots, \lfloor L/2 \rfloor` (:math:`L = \max(m, n)`, last ring
    excluded for even :math:`L`). Ring :math:`k` has frequency ``numpy.fft.fftfreq(L, spacing)[k]``
    = :math:`k / (L \Delta)`. This is pysteps' ``rapsd`` (Pulkkinen et al. 2019) exactly;
    for non-square domains the ring frequencies use the longer side, an approximation along the
    shorter one. Forecasts that are too smooth (e.g. blurred nowcasts) lose power at high
    wavenumbers compared with the observed spectrum.

    Parameters
    ----------
    field : xarray.DataArray
        Field(s) with the two spatial dims, no NaN (fill missing rain with 0 first).
    spacing : float
        Grid spacing :math:`\Delta` in km (or any length unit, then used for the coords).
    normalize : bool
        Divide each spectrum by its sum (as pysteps' ``normalize``).
    spatial_dims : pair of str, optional
        Grid dims, default ``("y", "x")`` or ``("lat", "lon")``.
    reduce_dims, preserve_dims : str or sequence of str, optional
        Batch dims to average the spectra over, or to keep; default all (the mean spectrum).
    weights : xarray.DataArray, optional
        Weights over the batch dims for that average.

    Returns
    -------
    xarray.DataArray
        Power in (units of ``field``)^2 along dim ``wavenumber`` (coordinate in cycles per unit
        of ``spacing``, e.g. km-1), with coordinate ``wavelength`` = 1 / wavenumber (km; inf at 0).

    Raises
    ------
    DimensionError
        If the spatial dims are missing, or for the usual dim errors.
    ValueError
        If ``field`` contains NaN or ``spacing`` is not positive.

    References
    ----------
    Pulkkinen et al. (2019), Geosci. Model Dev., 12, 4185-4219 (``pysteps.utils.spectral.rapsd``).
    Ruzanski, E. and Chandrasekar, V. (2011): Scale filtering for improved nowcasting
    performance in a high-resolution X-band radar network. IEEE TGRS, 49, 2296-2307.
    """
    if not isinstance(field, xr.DataArray):
        raise TypeError(f"field must be an xarray.DataArray, got {type(field).__name__}")
    if not spacing > 0:
        raise ValueError(f"spacing must be positive, got {spacing}")
    sdims = _spatial_dims(field, spatial_dims)
    dims = _non_spatial_reduce(field, None, sdims, reduce_dims, preserve_dims, weights, "power_spectrum")
    if bool(field.isnull().any()):
        raise ValueError("field contains NaN; the spectrum needs a complete field (e.g. field.fillna(0))")
    m, n = field.sizes[sdims[0]], field.sizes[sdims[1]]
    length = max(m, n)
    n_rings = length // 2 + 1 if length % 2 == 1 else length // 2
    freq = np.fft.fftfreq(length, d=spacing)[:n_rings]
    spec = xr.apply_ufunc(
        _rapsd,
        field.astype(float),
        input_core_dims=[list(sdims)],
        output_core_dims=[["wavenumber"]],
        dask_gufunc_kwargs={"output_sizes": {"wavenumber": n_rings}},
    )
    if normalize:
        spec = spec / spec.sum("wavenumber")
    with np.errstate(divide="ignore"):
        wavelength = np.where(freq > 0, 1.0 / np.where(freq > 0, freq, 1.0), np.inf)
    spec = spec.assign_coords(wavenumber=("wavenumber", freq), wavelength=("wavenumber", wavelength))
    return weighted_mean(spec, dims=dims, weights=weights).rename("power_spectrum")


# --------------------------------------------------------------------------------------------
# Displacement by phase correlation
# --------------------------------------------------------------------------------------------


#: Sub-grid refinement: the correlation is re-evaluated on a grid this many times finer.
_UPSAMPLE = 20


def _refine_peak(cross: np.ndarray, dy: float, dx: float, scale: float) -> tuple[float, float, float]:
    """Refine an integer correlation peak by a matrix DFT on a finer grid (Guizar-Sicairos 2008).

    The correlation surface is the inverse DFT of ``cross``; evaluating that inverse DFT at
    fractional shifts within +-1 grid point of the integer peak (``_UPSAMPLE`` samples per
    grid point) interpolates it exactly for band-limited fields, with two small matrix products
    instead of a large zero-padded FFT.
    """
    m, n = cross.shape
    ky = np.fft.fftfreq(m, 1.0 / m)
    kx = np.fft.fftfreq(n, 1.0 / n)
    offsets = np.arange(-_UPSAMPLE, _UPSAMPLE + 1) / _UPSAMPLE
    ey = np.exp(2j * np.pi * np.outer(dy + offsets, ky) / m)
    ex = np.exp(2j * np.pi * np.outer(kx, dx + offsets) / n)
    fine = np.real(ey @ cross @ ex) / (m * n * scale)
    iy, ix = np.unravel_index(int(np.argmax(fine)), fine.shape)
    return dy + offsets[iy], dx + offsets[ix], float(fine[iy, ix])


def _best_shift(
    fcst: np.ndarray, obs: np.ndarray, method: str, max_shift: int, subpixel: bool
) -> tuple[float, float, float]:
    """Shift s maximising the (cross or phase) correlation of f(x) with o(x - s), and its peak."""
    f = np.nan_to_num(np.asarray(fcst, dtype=float))
    o = np.nan_to_num(np.asarray(obs, dtype=float))
    m, n = f.shape
    # zero padding to twice the size: the correlation is linear, not circular, so rain leaving
    # one edge does not wrap around to the other
    shape = (2 * m, 2 * n)
    cross = np.fft.fft2(f, s=shape) * np.conj(np.fft.fft2(o, s=shape))
    if method == "phase":
        mag = np.abs(cross)
        cross = np.where(mag > 0, cross / np.where(mag > 0, mag, 1.0), 0.0)
        scale = 1.0
    else:
        scale = float(np.sqrt(np.sum(f**2) * np.sum(o**2)))
    if scale == 0 or not np.any(cross):
        return np.nan, np.nan, np.nan
    surface = np.real(np.fft.ifft2(cross)) / scale
    lag_y = np.fft.fftfreq(shape[0], 1.0 / shape[0])
    lag_x = np.fft.fftfreq(shape[1], 1.0 / shape[1])
    allowed = (np.abs(lag_y)[:, None] <= max_shift) & (np.abs(lag_x)[None, :] <= max_shift)
    masked = np.where(allowed, surface, -np.inf)
    py, px = np.unravel_index(int(np.argmax(masked)), masked.shape)
    dy, dx, peak = float(lag_y[py]), float(lag_x[px]), float(surface[py, px])
    if subpixel:
        dy, dx, peak = _refine_peak(cross, dy, dx, scale)
    return dy, dx, peak


def displacement(
    fcst: xr.DataArray,
    obs: xr.DataArray,
    *,
    method: str = "cross",
    max_shift: int | None = None,
    spacing: float | tuple[float, float] | None = None,
    subpixel: bool = True,
    spatial_dims: Sequence[Hashable] | None = None,
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
) -> xr.Dataset:
    r"""Displacement of the forecast relative to the observation: the best-matching translation.

    The shift :math:`\mathbf{s}` maximises the correlation of the forecast with the shifted
    observation, computed for all shifts at once with zero-padded FFTs:

    .. math::

        c(\mathbf{s}) = \frac{\sum_{\mathbf{x}} f(\mathbf{x})\, o(\mathbf{x} - \mathbf{s})}
                              {\sqrt{\sum f^2 \sum o^2}}
        = \frac{\mathrm{DFT}^{-1}[\hat f \, \hat o^*](\mathbf{s})}{\sqrt{\sum f^2 \sum o^2}},
        \qquad \hat{\mathbf{s}} = \arg\max_{|s_y|, |s_x| \le s_{max}} c(\mathbf{s})

    ``method="cross"`` (default) is this cross-correlation, the pattern-matching step of the
    contiguous rain area (CRA) method of Ebert and McBride (2000): for rain well inside the
    domain, maximising it minimises the MSE of the shifted forecast, and it follows the bulk of
    the rain even as cells grow and decay. ``method="phase"`` whitens the spectrum first,
    :math:`\hat f \hat o^* / |\hat f \hat o^*|` (phase correlation, Kuglin and Hines 1975): a
    sharp peak and sub-grid precision for a pure translation, but it weights all scales equally
    and is easily captured by small-scale noise on evolving rain fields.

    Sign convention: ``dy``, ``dx`` are the *forecast position minus the observed position*,
    in grid points along the spatial dims in increasing index order, i.e.
    :math:`f(y, x) \approx o(y - d_y, x - d_x)`. Positive ``dx`` means the forecast features
    lie too far towards increasing ``x`` index. Sub-grid precision (1/20 grid point) comes from
    re-evaluating the correlation around the peak by a matrix DFT (Guizar-Sicairos et al.
    2008). NaN (e.g. outside the radar range) is treated as 0 (no rain).

    Parameters
    ----------
    fcst, obs : xarray.DataArray
        Fields (e.g. rain rate, mm h-1) with the two spatial dims.
    method : {"cross", "phase"}
        Cross-correlation or phase correlation, see above.
    max_shift : int, optional
        Largest shift searched along each axis, in grid points; default a quarter of the
        smaller domain side (larger shifts overlap too little to be trusted).
    spacing : float or (float, float), optional
        Grid spacing in km (one value, or (along dim 0, along dim 1)); adds ``dy_km``, ``dx_km``.
    subpixel : bool
        Refine the peak to sub-grid precision.
    spatial_dims : pair of str, optional
        Grid dims, default ``("y", "x")`` or ``("lat", "lon")``.
    reduce_dims, preserve_dims : str or sequence of str, optional
        Batch dims to average the displacement over, or to keep; default all.
    weights : xarray.DataArray, optional
        Weights over the batch dims for that average.

    Returns
    -------
    xarray.Dataset
        ``dy``, ``dx`` (grid points), ``peak`` (height of the correlation peak, dimensionless:
        for ``cross`` the normalised correlation in [0, 1] for non-negative fields, 1 for a
        perfect match), and with ``spacing`` also ``dy_km``, ``dx_km``. NaN for an all-zero field.

    Raises
    ------
    DimensionError
        If the spatial dims are missing or differ, or for the usual dim errors.
    ValueError
        If ``method`` is unknown or ``max_shift`` / ``spacing`` are not positive.

    References
    ----------
    Ebert, E. E. and McBride, J. L. (2000): Verification of precipitation in weather systems:
    determination of systematic errors. J. Hydrol., 239, 179-202.
    Kuglin, C. D. and Hines, D. C. (1975): The phase correlation image alignment method.
    Proc. IEEE Conf. on Cybernetics and Society, 163-165.
    Guizar-Sicairos, M., Thurman, S. T. and Fienup, J. R. (2008): Efficient subpixel image
    registration algorithms. Opt. Lett., 33, 156-158.
    """
    if method not in ("cross", "phase"):
        raise ValueError(f"method must be 'cross' or 'phase', got {method!r}")
    sdims = _spatial_dims(fcst, spatial_dims)
    _check_pair(fcst, obs, sdims)
    dims = _non_spatial_reduce(fcst, obs, sdims, reduce_dims, preserve_dims, weights, "displacement")
    if max_shift is None:
        max_shift = max(1, min(fcst.sizes[sdims[0]], fcst.sizes[sdims[1]]) // 4)
    if int(max_shift) != max_shift or max_shift < 1:
        raise ValueError(f"max_shift must be a positive integer (grid points), got {max_shift}")
    dy, dx, peak = xr.apply_ufunc(
        _best_shift,
        fcst,
        obs,
        input_core_dims=[list(sdims), list(sdims)],
        output_core_dims=[[], [], []],
        vectorize=True,
        kwargs={"method": method, "max_shift": int(max_shift), "subpixel": subpixel},
    )
    out = xr.Dataset({"dy": dy, "dx": dx, "peak": peak})
    out.dy.attrs.update(units="1", long_name=f"forecast minus observed position along {sdims[0]} (grid points)")
    out.dx.attrs.update(units="1", long_name=f"forecast minus observed position along {sdims[1]} (grid points)")
    if spacing is not None:
        # np.ndim tells one value from a pair (tuple, list or array); mypy cannot follow it.
        if np.ndim(spacing) == 0:
            sy = sx = cast(float, spacing)
        else:
            sy, sx = tuple(cast(Sequence[float], spacing))
        if not (sy > 0 and sx > 0):
            raise ValueError(f"spacing must be positive, got {spacing}")
        out["dy_km"] = out.dy * sy
        out["dx_km"] = out.dx * sx
        out.dy_km.attrs["units"] = "km"
        out.dx_km.attrs["units"] = "km"
    return weighted_mean(out, dims=dims, weights=weights, skipna=True)
