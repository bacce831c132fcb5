r"""The fractions skill score (Roberts and Lean 2008): neighbourhood fractions by box sums."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from engine.errors import CoordError, DimensionError
from engine.types import Dims
from verification._dims import _check_weights, all_dims, resolve_dims
from verification.metrics.spatial._common import _check_pair, _int_sequence, _spatial_dims

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
