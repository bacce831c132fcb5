"""What the spatial scores share: the two grid dims, pair checks, batch-dim reduction."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import cast

import numpy as np
import xarray as xr

from engine.errors import DimensionError
from engine.types import Dims
from verification._dims import resolve_dims


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
