"""Opening a catalogued run for verification: its store, its single init time, valid times and variable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from engine.errors import CoordError, DimensionError
from engine.storage.catalog import Catalog, RunRecord
from engine.storage.zarr_store import open_run_store
from verification.pipeline.grids import grid_spacing_km
from verification.pipeline.options import VerificationError
from verification.pipeline.times import _time_key

# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


def _open_run(rec: RunRecord) -> xr.Dataset:
    if rec.status != "succeeded":
        raise VerificationError(f"run {rec.run_id} is {rec.status}, not succeeded: nothing to verify")
    if rec.path is None:
        raise VerificationError(f"run {rec.run_id} has no run store (a baseline run or an import without data)")
    return open_run_store(rec.path)


def _single_init(da: xr.DataArray, run_id: str) -> xr.DataArray:
    if "init_time" in da.dims:
        if da.sizes["init_time"] != 1:
            raise DimensionError(f"run {run_id}: {da.sizes['init_time']} init times; verify runs with one init time")
        da = da.isel(init_time=0)
    if "lead_time" not in da.dims:
        raise DimensionError(f"run {run_id}: {da.name} has no lead_time dim (dims {da.dims})")
    return da


def _init_time(da: xr.DataArray, rec: RunRecord) -> np.datetime64:
    if "init_time" in da.coords:
        return _time_key(np.ravel(da["init_time"].values)[0])
    if rec.init_time is not None:
        return _time_key(rec.init_time)
    raise CoordError(f"run {rec.run_id}: no init time in the store or the catalogue")


def _valid_times(da: xr.DataArray, rec: RunRecord) -> list[np.datetime64]:
    if "valid_time" in da.coords and da["valid_time"].dims == ("lead_time",):
        return [_time_key(t) for t in da["valid_time"].values]
    init = _init_time(da, rec)
    return [init + np.timedelta64(pd.Timedelta(lead).to_timedelta64(), "ns") for lead in da["lead_time"].values]


def _pick_variable(ds: xr.Dataset, wanted: str | None, run_id: str) -> str:
    candidates = [str(v) for v in ds.data_vars if "lead_time" in ds[v].dims]
    if wanted is not None:
        if wanted not in candidates:
            raise VerificationError(f"run {run_id}: no forecast variable {wanted!r} (has {', '.join(candidates)})")
        return wanted
    if not candidates:
        raise VerificationError(f"run {run_id}: the store holds no variable with a lead_time dim")
    return candidates[0]


def run_grid_spacing_km(catalog: Catalog, run_id: str, variable: str | None = None) -> float:
    """Grid spacing in km of a catalogued run (see :func:`grid_spacing_km`), e.g. for FSS windows in km.

    Raises
    ------
    UnknownRunError, VerificationError, CoordError
        Unknown run, no store or variable, or a grid without usable coordinates.
    """
    rec = catalog.get_run(run_id)
    ds = _open_run(rec)
    return grid_spacing_km(ds[_pick_variable(ds, variable, run_id)])
