"""Sources of gridded fields, opened once and indexed lazily: what the Maps and Nowcast pages draw.

A *source* is named by a string: ``"dataset:<sample dataset>"`` (a file set of
``assets/datasets.toml``) or ``"run:<run id>"`` (a catalogued run store). Opened datasets,
run stores and radar frames are ``st.cache_resource`` handles, shared and never copied.

Public API: ``SourceInfo``, ``sources``, ``source_info``, ``field``, ``field_netcdf``,
``GRIDDED_KINDS``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st
import xarray as xr

from app.components.raster import lonlat_bounds
from app.services.store import catalog, settings
from engine import datasets
from engine.errors import StorageError
from engine.storage.zarr_store import open_run_store

#: Sample-dataset kinds that hold gridded fields the map can draw.
GRIDDED_KINDS: tuple[str, ...] = ("radar", "analysis", "climatology", "terrain")


@dataclass(frozen=True)
class SourceInfo:
    """What a source of gridded fields offers.

    Attributes
    ----------
    source : str
        ``"dataset:<name>"`` or ``"run:<id>"``.
    label : str
        Text for menus.
    variables : tuple of str
        Canonical variables on a grid.
    steps : tuple of str
        Labels of the time axis (valid times, or lead times with valid times); ``("—",)`` for a
        field without time.
    valid_times : tuple of str
        ISO valid time of each step ("" when unknown), used to match two sources in differences.
    members : tuple of int
        Ensemble members (empty for deterministic sources).
    bounds : (west, east, south, north)
        Footprint in degrees.
    crs_wkt : str or None
        The grid mapping of a projected grid.
    grid : str
        Grid description, e.g. ``"640 x 710 (y, x)"``.
    """

    source: str
    label: str
    variables: tuple[str, ...]
    steps: tuple[str, ...]
    valid_times: tuple[str, ...]
    members: tuple[int, ...]
    bounds: tuple[float, float, float, float]
    crs_wkt: str | None
    grid: str


@st.cache_data(ttl="30s", show_spinner=False)
def sources() -> pd.DataFrame:
    """Gridded sources: succeeded runs, then the sample datasets present in the data folder.

    Returns
    -------
    DataFrame
        Columns ``source, label, group`` (``"Runs"`` or ``"Sample data"``).
    """
    rows: list[dict[str, str]] = []
    runs = catalog().list_runs(status="succeeded")
    for r in runs.itertuples():
        init = "" if pd.isna(r.init_time) else f" {pd.Timestamp(r.init_time):%Y-%m-%d %H:%M}"
        rows.append({"source": f"run:{r.run_id}", "label": f"{r.model}{init} · {r.run_id}", "group": "Runs"})
    root = settings().data_root
    rows.extend(
        {"source": f"dataset:{meta.name}", "label": f"{meta.name} — {meta.description}", "group": "Sample data"}
        for meta in datasets.load_catalogue().values()
        if meta.kind in GRIDDED_KINDS and root is not None and meta.paths(root)
    )
    return pd.DataFrame(rows, columns=["source", "label", "group"])


def _split(source: str) -> tuple[str, str]:
    kind, _, name = source.partition(":")
    if kind not in ("run", "dataset") or not name:
        raise StorageError(f"source {source!r}: expected 'run:<run id>' or 'dataset:<sample dataset>'")
    return kind, name


def _is_file_sequence(name: str) -> bool:
    """A sample dataset stored as one file per time step (radar): opened one frame at a time."""
    meta = datasets.get(name)
    root = settings().data_root
    return meta.combine == "time" and root is not None and len(meta.paths(root)) > 1


@st.cache_resource(max_entries=8, show_spinner=False)
def _open_run(run_id: str) -> xr.Dataset:
    rec = catalog().get_run(run_id)
    if rec.status != "succeeded" or rec.path is None:
        raise StorageError(f"run {run_id} has status {rec.status!r}; only succeeded runs can be shown")
    return open_run_store(rec.path)


@st.cache_resource(max_entries=8, show_spinner=False)
def _open_sample(name: str) -> xr.Dataset:
    return datasets.open_dataset(name, settings().data_root)


@st.cache_resource(max_entries=12, show_spinner=False)
def _open_frame(name: str, index: int) -> xr.Dataset:
    """One file of a file-sequence dataset (an MRMS frame is 100 MB: at most 12 are kept)."""
    from engine.readers import open_any

    meta = datasets.get(name)
    paths = meta.paths(settings().data_root)  # type: ignore[arg-type]
    if not 0 <= index < len(paths):
        raise StorageError(f"dataset {name!r} has {len(paths)} time steps; step {index + 1} does not exist")
    return open_any(paths[index], format=meta.format)


def _gridded(ds: xr.Dataset) -> list[str]:
    return [
        str(n) for n, v in ds.data_vars.items() if v.ndim >= 2 and tuple(v.dims[-2:]) in (("lat", "lon"), ("y", "x"))
    ]


def _crs_wkt(ds: xr.Dataset, var: str | None = None) -> str | None:
    name = ds[var].attrs.get("grid_mapping") if var else None
    for cand in (name, "crs", "spatial_ref"):
        if cand and cand in ds.variables and ds[cand].attrs.get("crs_wkt"):
            return str(ds[cand].attrs["crs_wkt"])
    return None


def _time_steps(ds: xr.Dataset) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    """Step labels, valid times and the name of the time dim of an opened dataset."""
    if "lead_time" in ds.dims:
        leads = pd.to_timedelta(ds["lead_time"].values)
        init = pd.Timestamp(ds["init_time"].values.ravel()[0]) if "init_time" in ds.coords else None
        labels, valid = [], []
        for lead in leads:
            minutes = int(lead.total_seconds() // 60)
            text = f"T+{minutes // 60} h" if minutes % 60 == 0 else f"T+{minutes} min"
            if init is not None:
                vt = init + lead
                labels.append(f"{text} (valid {vt:%Y-%m-%d %H:%M} UTC)")
                valid.append(vt.isoformat())
            else:
                labels.append(text)
                valid.append("")
        return tuple(labels), tuple(valid), "lead_time"
    if "time" in ds.dims:
        times = pd.to_datetime(ds["time"].values)
        return tuple(f"{t:%Y-%m-%d %H:%M} UTC" for t in times), tuple(t.isoformat() for t in times), "time"
    return ("—",), ("",), None


@st.cache_data(ttl="10m", show_spinner="Reading the source…")
def source_info(source: str) -> SourceInfo:
    """Describe a source (variables, time steps, members, footprint).

    Raises
    ------
    WxError
        Unknown source, unreadable store or files.
    """
    kind, name = _split(source)
    if kind == "dataset" and _is_file_sequence(name):
        meta = datasets.get(name)
        n = len(meta.paths(settings().data_root))  # type: ignore[arg-type]
        first = _open_frame(name, 0)
        if meta.time_range and meta.time_step_minutes:
            start = pd.Timestamp(meta.time_range[0])
            times = [start + pd.Timedelta(minutes=meta.time_step_minutes * i) for i in range(n)]
            end = pd.Timestamp(meta.time_range[-1])
            if times[-1] != end:  # gaps in the sequence: read the time of every file
                times = [pd.Timestamp(_open_frame(name, i)["time"].values.ravel()[0]) for i in range(n)]
        else:
            times = [pd.Timestamp(_open_frame(name, i)["time"].values.ravel()[0]) for i in range(n)]
        ds, steps = first, (tuple(f"{t:%Y-%m-%d %H:%M} UTC" for t in times), tuple(t.isoformat() for t in times))
        label = f"{name} — {meta.description}"
    else:
        ds = _open_run(name) if kind == "run" else _open_sample(name)
        labels, valid, _ = _time_steps(ds)
        steps = (labels, valid)
        label = name if kind == "dataset" else f"{ds.attrs.get('model', 'run')} · {name}"
    variables = _gridded(ds)
    if not variables:
        raise StorageError(f"{source}: no gridded variable to draw (variables: {', '.join(map(str, ds.data_vars))})")
    var0 = variables[0]
    wkt = _crs_wkt(ds, var0)
    da = ds[var0]
    plane = da.isel({d: 0 for d in da.dims[:-2]})
    bounds = lonlat_bounds(plane, wkt)
    members = tuple(int(m) for m in ds["member"].values) if "member" in ds.dims else ()
    grid = f"{da.sizes[da.dims[-2]]} x {da.sizes[da.dims[-1]]} ({da.dims[-2]}, {da.dims[-1]})"
    return SourceInfo(source, label, tuple(variables), steps[0], steps[1], members, bounds, wkt, grid)


def field(source: str, variable: str, step: int, member: int | None) -> tuple[xr.DataArray, str | None]:
    """The 2-D field of one variable at one step (and member) of a source, lazily indexed.

    Returns
    -------
    DataArray
        The field (dims ``y, x`` or ``lat, lon``), not loaded.
    str or None
        The WKT of its grid mapping, for projected grids.

    Raises
    ------
    StorageError
        Unknown source or variable, or a step out of range.
    """
    kind, name = _split(source)
    if kind == "dataset" and _is_file_sequence(name):
        ds = _open_frame(name, step)
        step = 0
    else:
        ds = _open_run(name) if kind == "run" else _open_sample(name)
    if variable not in ds.data_vars:
        raise StorageError(f"{source}: no variable {variable!r} (has {', '.join(_gridded(ds))})")
    da = ds[variable]
    sel: dict[str, int] = {}
    for dim in da.dims[:-2]:
        if dim in ("lead_time", "time"):
            if not 0 <= step < da.sizes[dim]:
                raise StorageError(f"{source}: step {step + 1} out of range (1-{da.sizes[dim]})")
            sel[str(dim)] = step
        elif dim == "member":
            members = [int(m) for m in ds["member"].values]
            sel["member"] = members.index(member) if member in members else 0
        else:
            sel[str(dim)] = 0  # init_time (one per run), levels...
    return da.isel(sel), _crs_wkt(ds, variable)


@st.cache_data(max_entries=16, show_spinner="Preparing data for download…")
def field_netcdf(source: str, variable: str, step: int, member: int | None) -> bytes:
    """The full-resolution field of one step as netCDF bytes (for the download button)."""
    da, wkt = field(source, variable, step, member)
    out = da.load().to_dataset(name=variable)
    if wkt:
        out["crs"] = xr.DataArray(np.int32(0), attrs={"crs_wkt": wkt})
        out[variable].attrs["grid_mapping"] = "crs"
    out.attrs["source"] = source
    return bytes(out.to_netcdf())
