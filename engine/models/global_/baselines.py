"""Reference forecasts every global model must beat: persistence and climatology.

* **Persistence**: the analysis at the initial time, unchanged at every lead time.
* **Climatology**: the long-term monthly mean for the month of each *valid* time (from the
  ERA-Interim monthly means in ``xarray-data/eraint_uvz.nc``, which hold January and July), regridded
  bilinearly to the forecast grid. It is also the reference of the anomaly correlation.

Both take and return canonical datasets (``z500`` in m2 s-2 on ``(lat, lon)``), so that they are
scored exactly like model runs.

Public API: ``persistence``, ``climatology``, ``load_climatology``, ``CLIMATOLOGY_FILE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from engine.errors import CoordError, ReaderError, VariableNotFoundError
from engine.models.global_.initial import datetime64_ns, regrid_bilinear

#: The ERA-Interim monthly means below the sample-data root.
CLIMATOLOGY_FILE = Path("xarray-data") / "eraint_uvz.nc"


def _lead_coords(init_time: np.datetime64 | np.ndarray, lead_hours: Sequence[int]) -> dict[str, object]:
    lead = pd.to_timedelta(np.asarray(lead_hours, dtype="int64"), unit="h").to_numpy()
    t0 = datetime64_ns(init_time)
    return {
        "lead_time": ("lead_time", lead),
        "valid_time": ("lead_time", t0 + lead),
        "init_time": t0,
    }


def persistence(analysis: xr.Dataset, lead_hours: Sequence[int], *, variables: Sequence[str] = ("z500",)) -> xr.Dataset:
    """Persistence forecast: the analysis repeated at every lead time.

    Parameters
    ----------
    analysis : Dataset
        Fields at the initial time, dims ``([member,] lat, lon)``, with a scalar ``time`` coord.
    lead_hours : sequence of int
        Lead times (h).
    variables : sequence of str
        Variables to forecast.

    Returns
    -------
    Dataset
        Dims ``(lead_time, [member,] lat, lon)``, coords ``init_time`` and ``valid_time``.
    """
    missing = [v for v in variables if v not in analysis.data_vars]
    if missing:
        raise VariableNotFoundError(analysis.attrs.get("source_files", "analysis"), f"no variable {', '.join(missing)} for persistence")
    if "time" not in analysis.coords or analysis["time"].ndim != 0:
        raise CoordError("persistence: the analysis needs one scalar 'time' coordinate (the initial time)")
    t0 = analysis["time"].values
    coords = _lead_coords(t0, lead_hours)
    fields = analysis[list(variables)].drop_vars("time")
    out = fields.expand_dims(lead_time=len(lead_hours)).assign_coords(coords)
    out.attrs = {"model": "persistence"}
    return out


def load_climatology(path: str | Path, *, variables: Sequence[str] = ("z500",)) -> xr.Dataset:
    """Open monthly-mean climatology (dims ``(month, lat, lon)``) with canonical names.

    Raises
    ------
    ReaderError
        If the file is missing, has no ``month`` dim, or lacks a variable.
    """
    from engine.readers import open_any

    p = Path(path)
    if not p.exists():
        raise ReaderError(p, "climatology file not found (ERA-Interim monthly means, xarray-data/eraint_uvz.nc)")
    ds = open_any(p, variables=list(variables))
    if "month" not in ds.dims:
        raise ReaderError(p, f"no 'month' dimension: not a monthly climatology (dims {dict(ds.sizes)})")
    return ds


def climatology(
    clim: xr.Dataset,
    valid_times: Sequence[np.datetime64] | np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    variables: Sequence[str] = ("z500",),
    source: str = "climatology",
) -> xr.Dataset:
    """Climatological forecast: the monthly mean of each valid time's month, on a target grid.

    Parameters
    ----------
    clim : Dataset
        Monthly means, dims ``(month, lat, lon)``, ``month`` in 1..12.
    valid_times : array of datetime64
        Valid times, ``(lead_time,)``.
    lat, lon : ndarray
        Target grid (degrees), 1-D.
    variables : sequence of str
        Variables to take.
    source : str
        File name for error messages.

    Returns
    -------
    Dataset
        Dims ``(lead_time, lat, lon)`` (``lead_time`` positional, one per valid time).

    Raises
    ------
    CoordError
        If a valid time falls in a month the climatology does not hold.
    """
    months = pd.DatetimeIndex(np.asarray(valid_times)).month.to_numpy()
    have = set(int(m) for m in clim["month"].values)
    lacking = sorted(set(months.tolist()) - have)
    if lacking:
        raise CoordError(f"{source}: no climatology for month(s) {lacking}; the file holds months {sorted(have)}")
    out = {}
    for name in variables:
        if name not in clim.data_vars:
            raise VariableNotFoundError(source, f"no variable {name} in the climatology")
        per_month = clim[name].transpose("month", "lat", "lon")
        fields = []
        for m in months:
            src = per_month.sel(month=int(m)).values
            fields.append(regrid_bilinear(src, clim["lat"].values, clim["lon"].values, lat, lon, what=source))
        out[name] = (("lead_time", "lat", "lon"), np.stack(fields).astype("float32"), dict(clim[name].attrs))
    return xr.Dataset(out, coords={"lat": ("lat", np.asarray(lat)), "lon": ("lon", np.asarray(lon))}, attrs={"model": "climatology"})
