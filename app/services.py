"""Cached services: the only place the app touches ``engine`` and ``verification``.

Pages call these functions and draw what they return. Handles (the catalogue, opened run stores
and sample files) are ``st.cache_resource``: opened once per server and shared, never copied.
Small results (a rendered map at screen resolution, a score table, a Foehn time series) are
``st.cache_data``: pickled per call, so nothing here returns a multi-GB Dataset.

A *source* of gridded fields is named by a string: ``"dataset:<sample dataset>"`` (a file set of
``assets/datasets.toml``) or ``"run:<run id>"`` (a catalogued run store).

Public API (by page): settings, catalog, store_status; sources, source_info, map_view,
boundaries; stations, station_series, point_series, wind_observations, foehn_pairs,
foehn_timeline, station_scores; runs_table, scores_table, score_leads, quality_reports;
job_forms, parse_form, submit_job; cases.

Files are read only from the sample-data folder and the store: a path typed into the Run form
that resolves elsewhere is refused (``confined_path``, ``readable_roots``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
import xarray as xr

from app.components.maps import MapData, MapLayer
from app.components.raster import (
    GridImage,
    lonlat_bounds,
    native_crs,
    project_lines,
    project_points,
    rasterize,
    view_crs,
    view_extent,
)
from app.components.scales import scale_for
from engine import datasets
from engine.config import REPO_ROOT, Settings
from engine.errors import CoordError, StorageError, WxError
from engine.storage.catalog import Catalog
from engine.storage.zarr_store import open_run_store

#: Sample-dataset kinds that hold gridded fields the map can draw.
GRIDDED_KINDS: tuple[str, ...] = ("radar", "analysis", "climatology", "terrain")
#: Folder of the curated case studies.
CASES_DIR = REPO_ROOT / "assets" / "cases"
#: Most frames an animation holds (each is a screen-sized image sent to the browser).
MAX_FRAMES = 24


# ------------------------------------------------------------------------------- handles


@st.cache_resource
def settings() -> Settings:
    """Settings from the environment (``METEOLENS_STORE`` is set by ``meteolens app --store``)."""
    return Settings.from_env()


@st.cache_resource
def catalog() -> Catalog:
    """The run catalogue of the store (created empty if missing)."""
    return Catalog(settings().catalog_path)


def store_status() -> dict[str, Any]:
    """Where the store is and how many runs it has (not cached: cheap, and must be current)."""
    s = settings()
    runs = catalog().list_runs()
    return {
        "store": str(s.store_root),
        "data_root": str(s.data_root) if s.data_root else None,
        "n_runs": len(runs),
        "n_succeeded": int((runs["status"] == "succeeded").sum()) if len(runs) else 0,
    }


# ------------------------------------------------------------------------------- sources


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
    field = da.isel({d: 0 for d in da.dims[:-2]})
    bounds = lonlat_bounds(field, wkt)
    members = tuple(int(m) for m in ds["member"].values) if "member" in ds.dims else ()
    grid = f"{da.sizes[da.dims[-2]]} x {da.sizes[da.dims[-1]]} ({da.dims[-2]}, {da.dims[-1]})"
    return SourceInfo(source, label, tuple(variables), steps[0], steps[1], members, bounds, wkt, grid)


def _field(source: str, variable: str, step: int, member: int | None) -> tuple[xr.DataArray, str | None]:
    """The 2-D field of one variable at one step (and member) of a source, lazily indexed."""
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


@st.cache_resource(show_spinner=False)
def boundaries(resolution: str) -> dict[str, np.ndarray]:
    """Coastlines and country borders (Natural Earth, from our TopoJSON reader), lon/lat degrees.

    Parameters
    ----------
    resolution : {"110m", "50m"}

    Returns
    -------
    dict
        ``coastlines`` and ``borders``: ``(n, 2)`` NaN-separated polylines.
    """
    from engine.readers.boundaries import to_lines

    ds = datasets.open_dataset(f"countries-{resolution}", settings().data_root)
    lines = to_lines(ds)
    layer_of_part = ds["layer"].values[ds["part_feature"].values]
    out: dict[str, np.ndarray] = {}
    for key, layer in (("coastlines", "land"), ("borders", "countries")):
        picked = [ln for ln, lay in zip(lines, layer_of_part, strict=True) if lay == layer]
        gap = np.full((1, 2), np.nan)
        out[key] = np.concatenate([p for ln in picked for p in (ln, gap)]) if picked else np.zeros((0, 2))
    return out


@dataclass(frozen=True)
class MapRequest:
    """A map view, as the page's widgets (and the URL) describe it.

    ``box`` is ``(west, east, south, north)`` in degrees, or ``None`` for the whole source.
    ``compare`` names a second source whose field at the same valid time is subtracted.
    ``frames`` > 1 asks for an animation of that many steps starting at ``step``.
    """

    source: str
    variable: str
    step: int = 0
    member: int | None = None
    projection: str = "PlateCarree"
    box: tuple[float, float, float, float] | None = None
    compare: str | None = None
    stations: bool = True
    frames: int = 1
    width: int = 640


def _matching_step(info: SourceInfo, valid_time: str, fallback: int) -> int:
    if valid_time and valid_time in info.valid_times:
        return info.valid_times.index(valid_time)
    if not valid_time or not any(info.valid_times):
        return min(fallback, len(info.steps) - 1)
    raise CoordError(
        f"{info.source} has no field valid at {valid_time}; its steps run "
        f"{info.valid_times[0] or '?'} to {info.valid_times[-1] or '?'}"
    )


def _view(req: MapRequest) -> tuple[SourceInfo, xr.DataArray, str | None, Any, Any]:
    """Source info, first field, its grid mapping, the grid's CRS and the view CRS of a request.

    The projection is centred on the zoomed area when there is one, else on the data.
    """
    info = source_info(req.source)
    if req.variable not in info.variables:
        raise StorageError(f"{req.source}: no variable {req.variable!r} (has {', '.join(info.variables)})")
    first_da, wkt = _field(req.source, req.variable, req.step, req.member)
    native = native_crs(first_da, wkt)
    cw, ce, cs, cn = req.box if req.box is not None else info.bounds
    view = view_crs(req.projection, centre=((cw + ce) / 2, (cs + cn) / 2), native=native)
    return info, first_da, wkt, native, view


def selection_box(req: MapRequest, xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float, float]:
    """The lon/lat box ``(west, east, south, north)`` of a rectangle drawn on the map of ``req``.

    Parameters
    ----------
    req : MapRequest
        The request whose map the rectangle was drawn on (its view projection).
    xs, ys : pair of float
        The rectangle's corners in view coordinates (plotly's box selection).

    Raises
    ------
    CoordError
        The rectangle lies entirely off the globe.
    """
    import cartopy.crs as ccrs

    _, _, _, _, view = _view(req)
    x = np.linspace(min(xs), max(xs), 32)
    y = np.linspace(min(ys), max(ys), 32)
    gx, gy = np.meshgrid(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ll = ccrs.PlateCarree().transform_points(view, gx.ravel(), gy.ravel())
    ok = np.isfinite(ll[:, 0]) & np.isfinite(ll[:, 1])
    if not ok.any():
        raise CoordError("the selected rectangle lies off the globe")
    lon, lat = ll[ok, 0], ll[ok, 1]
    return float(lon.min()), float(lon.max()), float(max(lat.min(), -90.0)), float(min(lat.max(), 90.0))


@st.cache_data(max_entries=48, show_spinner="Rendering the map…")
def map_view(req: MapRequest) -> MapData:
    """Render a map (one frame or an animation) at screen resolution in the chosen projection.

    Raises
    ------
    WxError
        Unknown source or variable, a step out of range, a view that misses the data, or a
        comparison source without a field at the same valid time.
    """
    info, first_da, wkt, native, view = _view(req)
    west, east, south, north = info.bounds
    if req.box is not None:
        extent = view_extent(view, req.box)
    elif req.projection == "Data grid" and first_da.dims[-1] == "x":
        xs, ys = first_da["x"].values, first_da["y"].values
        extent = (float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max()))
    else:
        extent = view_extent(view, info.bounds)
    units = str(first_da.attrs.get("units", ""))
    scale = scale_for(req.variable, units, difference=req.compare is not None)
    # Contour lines need far fewer points than a shaded field, and the browser draws them slowly.
    width = min(req.width, 400) if scale.kind == "contour" else req.width
    smooth = req.variable not in ("precip_rate", "reflectivity")
    other = source_info(req.compare) if req.compare else None
    if other is not None and req.variable not in other.variables:
        raise StorageError(f"{req.compare} has no variable {req.variable!r} to compare with")

    last = min(len(info.steps), req.step + max(1, min(req.frames, MAX_FRAMES)))
    layers = []
    for step in range(req.step, last):
        da, _ = _field(req.source, req.variable, step, req.member)
        img = rasterize(da, native=native, view=view, extent=extent, width=width, smooth=smooth)
        label = info.steps[step]
        if other is not None and req.compare is not None:
            ostep = _matching_step(other, info.valid_times[step], step)
            oda, owkt = _field(req.compare, req.variable, ostep, req.member)
            oimg = rasterize(oda, native=native_crs(oda, owkt), view=view, extent=extent, width=width, smooth=smooth)
            img = GridImage(img.x, img.y, img.values - oimg.values, img.covered & oimg.covered)
            label += f" minus {other.label.split(' — ')[0]} {other.steps[ostep]}"
        layers.append(MapLayer(img, label))

    width_deg = (req.box[1] - req.box[0]) if req.box else east - west
    res = "50m" if width_deg < 60 else "110m"  # 50m coastlines only where they can be seen
    lines = boundaries(res)
    coast = project_lines(view, lines["coastlines"], extent)
    borders = project_lines(view, lines["borders"], extent)
    stations_xy: dict[str, np.ndarray] = {}
    if req.stations:
        st_df = stations()
        if len(st_df):
            sx, sy = project_points(view, st_df["lon"].to_numpy(), st_df["lat"].to_numpy())
            x0, x1, y0, y1 = extent
            inside = (sx >= x0) & (sx <= x1) & (sy >= y0) & (sy <= y1)
            stations_xy = {
                "x": sx[inside],
                "y": sy[inside],
                "name": st_df["name"].fillna(st_df["station_id"]).to_numpy()[inside],
            }
    title = f"{scale.label} ({scale.units}) — {info.label.split(' — ')[0]}"
    if req.member is not None and info.members:
        title += f", member {req.member}"
    return MapData(
        layers=layers,
        scale=scale,
        title=title,
        extent=tuple(float(v) for v in extent),  # type: ignore[arg-type]
        geographic=req.projection == "PlateCarree",
        coastlines=coast,
        borders=borders,
        stations=stations_xy,
        station_labels=width_deg < 30,
    )


@st.cache_data(max_entries=16, show_spinner="Preparing data for download…")
def field_netcdf(source: str, variable: str, step: int, member: int | None) -> bytes:
    """The full-resolution field of one step as netCDF bytes (for the download button)."""
    da, wkt = _field(source, variable, step, member)
    out = da.load().to_dataset(name=variable)
    if wkt:
        out["crs"] = xr.DataArray(np.int32(0), attrs={"crs_wkt": wkt})
        out[variable].attrs["grid_mapping"] = "crs"
    out.attrs["source"] = source
    return bytes(out.to_netcdf())


def radar_datasets() -> list[str]:
    """Names of the radar sample datasets."""
    return [m.name for m in datasets.load_catalogue().values() if m.kind == "radar"]


@st.cache_data(ttl="10m", show_spinner=False)
def observed_for(run_id: str) -> str | None:
    """The radar sample dataset (``"dataset:<name>"``) a nowcast run was made from, if it can be told.

    The run's parameters name its inputs (a dataset name, files or globs); the dataset whose
    files or name they match is the observation to show beside the forecast.
    """
    import json
    from fnmatch import fnmatch

    params = json.loads(catalog().list_runs().set_index("run_id").loc[run_id, "parameters"] or "{}")
    inputs = params.get("inputs") or params.get("input") or []
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    root = settings().data_root
    for name in radar_datasets():
        meta = datasets.get(name)
        for item in inputs:
            if str(item).lower() == name or (
                root is not None
                and any(
                    fnmatch(str(item), str(root / pat)) or fnmatch(str(root / pat), str(item)) for pat in meta.files
                )
            ):
                return f"dataset:{name}"
    return None


def observed_step(observed: str, run_id: str) -> int:
    """Step of the observed radar valid at the nowcast's first lead time (0 when not found)."""
    info = source_info(observed)
    run = source_info(f"run:{run_id}")
    first_valid = next((v for v in run.valid_times if v), "")
    return info.valid_times.index(first_valid) if first_valid in info.valid_times else 0


# ------------------------------------------------------------------------------- stations


@st.cache_data(ttl="1m", show_spinner=False)
def stations() -> pd.DataFrame:
    """Catalogued stations: ``station_id, name, lat, lon, elevation, source``."""
    return catalog().stations()


@st.cache_data(ttl="1m", show_spinner=False)
def station_variables(station_id: str) -> list[str]:
    """Variables observed at a station."""
    df = catalog().query(
        "SELECT DISTINCT variable FROM observations WHERE station_id = ? ORDER BY variable", [station_id]
    )
    return df["variable"].tolist()


@st.cache_data(ttl="1m", show_spinner=False)
def station_period(station_id: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """First and last observation time of a station (``None`` when it has none)."""
    df = catalog().query("SELECT min(time) AS t0, max(time) AS t1 FROM observations WHERE station_id = ?", [station_id])
    if df.empty or pd.isna(df["t0"].iloc[0]):
        return None
    return pd.Timestamp(df["t0"].iloc[0]), pd.Timestamp(df["t1"].iloc[0])


@st.cache_data(ttl="1m", show_spinner=False)
def station_series(station_id: str, variable: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Observations of one variable at a station: ``time, value`` (canonical units)."""
    return catalog().observations(station_id, variable, start, end)[["time", "value"]]


@st.cache_data(ttl="1m", show_spinner=False)
def point_series(station_id: str, variable: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Forecasts of every run at a station in a period: ``run_id, valid_time, lead_time, member, value``."""
    return catalog().query(
        "SELECT run_id, valid_time, lead_time, member, value FROM point_forecasts"
        " WHERE station_id = ? AND variable = ? AND valid_time BETWEEN ? AND ? ORDER BY run_id, member, valid_time",
        [station_id, variable, start.to_pydatetime(), end.to_pydatetime()],
    )


@st.cache_data(ttl="1m", show_spinner=False)
def wind_observations(station_id: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Wind direction (degree, from) and speed (m s-1) at a station, paired by time."""
    df = catalog().query(
        "SELECT time, variable, value FROM observations WHERE station_id = ? AND variable IN ('wind_dir', 'wind_speed')"
        " AND time BETWEEN ? AND ?",
        [station_id, start.to_pydatetime(), end.to_pydatetime()],
    )
    if df.empty:
        return pd.DataFrame(columns=["time", "wind_dir", "wind_speed"])
    return df.pivot_table(index="time", columns="variable", values="value").reset_index().dropna()


#: Valley/crest station pairs for the Foehn diagnosis, with the wind sectors of foehnix's
#: Ellboegen example (Stauffer et al. 2018): valley 43-223 deg, crest 90-270 deg (southerly flow).
FOEHN_PAIRS: dict[str, dict[str, Any]] = {
    "Wipp valley (Ellboegen / Sattelberg)": {
        "valley": "ellboegen",
        "crest": "sattelberg",
        "valley_sector": (43.0, 223.0),
        "crest_sector": (90.0, 270.0),
    },
}


def foehn_pairs() -> list[str]:
    """Foehn station pairs whose two stations are both catalogued."""
    ids = set(stations()["station_id"])
    return [name for name, p in FOEHN_PAIRS.items() if p["valley"] in ids and p["crest"] in ids]


@st.cache_data(max_entries=16, show_spinner="Fitting the Foehn mixture model…")
def foehn_timeline(pair: str, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, list[str]]:
    """Hourly Foehn diagnosis (foehnix mixture model) of a station pair over a period.

    Returns
    -------
    DataFrame
        Indexed by time: ``probability`` (0-1), ``dtheta`` (K), valley ``wind_speed`` (m s-1),
        ``wind_dir`` (degree) and ``rh2m`` (%).
    list of str
        Notes the diagnosis raised as warnings (approximations it made).

    Raises
    ------
    WxError
        Unknown pair, too little data in the period, or the fit fails.
    """
    from verification.foehn import fit_foehn

    if pair not in FOEHN_PAIRS:
        raise StorageError(f"unknown Foehn pair {pair!r}; known: {', '.join(FOEHN_PAIRS)}")
    spec = FOEHN_PAIRS[pair]
    st_df = stations().set_index("station_id")
    frames = []
    for sid in (spec["valley"], spec["crest"]):
        df = catalog().query(
            "SELECT time, variable, value FROM observations WHERE station_id = ? AND time BETWEEN ? AND ?",
            [sid, start.to_pydatetime(), end.to_pydatetime()],
        )
        if df.empty:
            raise StorageError(f"station {sid} has no observations between {start:%Y-%m-%d} and {end:%Y-%m-%d}")
        frames.append(df.pivot_table(index="time", columns="variable", values="value"))
    # The diagnosis warns about approximations it makes (e.g. standard-atmosphere pressure when
    # the stations report none); they are shown on the page as notes, not lost in a log.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_foehn(
            frames[0],
            frames[1],
            valley_elevation=float(st_df.loc[spec["valley"], "elevation"]),
            crest_elevation=float(st_df.loc[spec["crest"], "elevation"]),
            concomitants=("rh", "ff"),
            valley_sector=spec["valley_sector"],
            crest_sector=spec["crest_sector"],
            names=(spec["valley"], spec["crest"]),
        )
    cols = [c for c in ("probability", "dtheta", "wind_speed", "wind_dir", "rh2m") if c in fit.hourly]
    return fit.hourly[cols], list(dict.fromkeys(str(w.message) for w in caught))


@st.cache_data(ttl="1m", show_spinner=False)
def station_scores(station_id: str | None = None) -> pd.DataFrame:
    """Station scores from the catalogue (region ``station:<id>``), one row per run, variable, metric, lead."""
    df = catalog().scores()
    df = df[df["region"].fillna("").str.startswith("station:")]
    if station_id is not None:
        df = df[df["region"] == f"station:{station_id}"]
    return _with_lead_hours(df)


# ------------------------------------------------------------------------------- runs & scores


@st.cache_data(ttl="5s", show_spinner=False)
def runs_table() -> pd.DataFrame:
    """The runs table, newest first (parameters left out)."""
    df = catalog().list_runs()
    return df.drop(columns=["parameters"])


def _with_lead_hours(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["lead_hours"] = pd.to_timedelta(df["lead_time"]).dt.total_seconds() / 3600.0
    return df


@st.cache_data(ttl="30s", show_spinner=False)
def scores_table(run_ids: tuple[str, ...] = (), variable: str | None = None, metric: str | None = None) -> pd.DataFrame:
    """Scores joined with each run's model and kind, with ``lead_hours``.

    Parameters
    ----------
    run_ids : tuple of str
        Only these runs (all when empty).
    variable, metric : str, optional
        Filters.
    """
    filters: dict[str, Any] = {}
    if variable:
        filters["variable"] = variable
    if metric:
        filters["metric"] = metric
    df = catalog().scores(list(run_ids) if run_ids else None, **filters)
    runs = catalog().list_runs()[["run_id", "model", "kind", "init_time"]]
    df = _with_lead_hours(df.merge(runs, on="run_id", how="left"))
    # Errors and spreads in the units forecasters read (geopotential in dam, pressure in hPa);
    # these are differences, so only the factor of the display conversion applies.
    for variable in df["variable"].unique():
        factor = _error_scale(variable)[0]
        rows = (df["variable"] == variable) & df["metric"].str.lower().isin(METRICS_IN_VARIABLE_UNITS)
        df.loc[rows, "value"] = df.loc[rows, "value"] * factor
    return df


@st.cache_data(ttl="30s", show_spinner=False)
def score_catalogue() -> pd.DataFrame:
    """Which (kind, variable, metric) combinations have scores, with counts."""
    return catalog().query(
        "SELECT r.kind, s.variable, s.metric, count(*) AS n FROM scores s JOIN runs r USING (run_id)"
        " GROUP BY ALL ORDER BY r.kind, s.variable, s.metric"
    )


def scorecard(df: pd.DataFrame, baseline: str, lower_is_better: bool) -> pd.DataFrame:
    """Skill of each model relative to a baseline model, per variable and lead time.

    ``skill = 1 - score / score_baseline`` for errors (lower is better), ``score - baseline``
    for scores where higher is better (CSI, ACC, FSS). Averaged over runs, thresholds and scales.

    Returns
    -------
    DataFrame
        Columns ``model, variable, lead_hours, value, baseline, skill``.
    """
    keys = ["model", "variable", "lead_hours"]
    mean = df.groupby(keys, dropna=False)["value"].mean().reset_index()
    base = mean[mean["model"] == baseline].rename(columns={"value": "baseline"}).drop(columns="model")
    out = mean.merge(base, on=["variable", "lead_hours"], how="left")
    if lower_is_better:
        out["skill"] = 1.0 - out["value"] / out["baseline"].where(out["baseline"] != 0)
    else:
        out["skill"] = out["value"] - out["baseline"]
    return out


@st.cache_data(ttl="30s", show_spinner=False)
def quality_reports(run_id: str) -> pd.DataFrame:
    """RadarQA-style quality reports of a run (sequence first, then frames by lead time)."""
    return _with_lead_hours(catalog().quality_reports(run_id))


@st.cache_data(ttl="30s", show_spinner=False)
def runs_with_scores(kind: str | None = None) -> pd.DataFrame:
    """Succeeded runs (of one kind) that have scores or quality reports."""
    sql = (
        "SELECT DISTINCT r.run_id, r.model, r.kind, r.init_time FROM runs r"
        " WHERE r.status = 'succeeded' AND (r.run_id IN (SELECT run_id FROM scores)"
        " OR r.run_id IN (SELECT run_id FROM quality_reports))"
    )
    params: list[Any] = []
    if kind:
        sql += " AND r.kind = ?"
        params.append(kind)
    return catalog().query(sql + " ORDER BY r.init_time DESC NULLS LAST, r.run_id", params)


# ------------------------------------------------------------------------------- jobs


def _spec_classes() -> dict[str, type]:
    from app.demo import spec_classes

    return spec_classes()


@dataclass(frozen=True)
class FormField:
    """One input of a job form, derived from a field of the job's spec dataclass.

    ``kind`` is ``"text"``, ``"int"``, ``"float"``, ``"bool"`` or ``"list"`` (typed by ``item``:
    ``"text"``, ``"int"`` or ``"float"``); ``optional`` fields may be left empty (``None``).
    """

    name: str
    kind: str
    default: Any
    required: bool
    optional: bool = False
    item: str = "text"


_SCALARS: dict[Any, str] = {bool: "bool", int: "int", float: "float", str: "text"}


def _field_kind(tp: Any) -> tuple[str, str, bool]:
    """``(kind, item kind, optional)`` of a spec field's type annotation."""
    args = typing.get_args(tp)
    optional = type(None) in args
    if optional:
        rest = [a for a in args if a is not type(None)]
        tp = rest[0] if len(rest) == 1 else str
        args = typing.get_args(tp)
    if tp in _SCALARS:
        return _SCALARS[tp], "text", optional
    origin = typing.get_origin(tp)
    if origin in (tuple, list) or tp in (tuple, list):
        items = [a for a in args if a is not Ellipsis]
        return "list", _SCALARS.get(items[0], "text") if items else "text", optional
    return "text", "text", optional


@st.cache_resource(show_spinner="Loading the job kinds…")
def job_forms() -> dict[str, list[FormField]]:
    """Registered job kinds and the form fields of their specs (kinds without a spec class are left out)."""
    from engine.jobs.kinds import load_job_kinds

    kinds = load_job_kinds()
    classes = _spec_classes()
    forms: dict[str, list[FormField]] = {}
    for kind in kinds:
        cls = classes.get(kind)
        if cls is None:
            continue
        hints = typing.get_type_hints(cls)
        fields = []
        for f in dataclasses.fields(cls):
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            default = (
                f.default
                if f.default is not dataclasses.MISSING
                else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            )
            field_kind, item, optional = _field_kind(hints.get(f.name, str))
            fields.append(FormField(f.name, field_kind, default, not has_default, optional, item))
        forms[kind] = fields
    return forms


def unavailable_job_modules() -> dict[str, str]:
    """Job families that could not load, with the reason (a missing optional dependency)."""
    from engine.jobs.kinds import unavailable_job_modules as _unavailable

    return _unavailable()


#: Spec fields that name input files: resolved from globs and sample dataset names.
INPUT_FIELDS: frozenset[str] = frozenset({"inputs", "init"})
#: Spec fields holding one file or folder (or a sample dataset name, or a built-in model name):
#: the downscaling input and DEM, the global climatology, the global model (an adapter spec file).
PATH_FIELDS: frozenset[str] = frozenset({"input", "dem", "climatology", "model"})
#: Numeric fields the app bounds, ``(kind, field) → (lowest, highest)``. Jobs launched from the
#: page run inside the server process while the user waits, so their size is capped at what a CPU
#: finishes in a few minutes; the CLI (``meteolens nowcast``...) has no such cap.
FORM_LIMITS: dict[tuple[str, str], tuple[int, int]] = {
    ("nowcast", "lead_steps"): (1, 72),  # 6 h of 5-minute radar frames
    ("nowcast", "members"): (1, 50),
    ("global", "lead_hours"): (1, 240),  # 10 days
}


def device_choices() -> list[str]:
    """Device names a job spec accepts (``auto``, ``cpu``, ``cuda``...)."""
    from engine.device import DEVICE_CHOICES

    return list(DEVICE_CHOICES)


def readable_roots() -> tuple[Path, ...]:
    """The folders the app may read files from: the sample-data folder and the store (symlinks resolved)."""
    s = settings()
    return tuple(Path(os.path.realpath(p)) for p in (s.data_root, s.store_root) if p is not None)


def confined_path(text: str, what: str) -> Path:
    """A path typed into a form, made absolute and checked to lie inside :func:`readable_roots`.

    Relative paths are taken relative to the sample-data folder (the server's working directory
    means nothing to a user in a browser). The check resolves ``..`` and symbolic links, also in
    the fixed part of a glob pattern, so neither can reach outside the allowed folders.

    Parameters
    ----------
    text : str
        What the user typed: a file, a folder or a glob pattern.
    what : str
        The form field, for the message.

    Returns
    -------
    Path
        The absolute path (or pattern), unresolved so that glob characters survive.

    Raises
    ------
    JobError
        The path lies outside the data and store folders, or is relative without a data folder.
    """
    from engine.errors import JobError

    roots = readable_roots()
    path = Path(text).expanduser()
    if not path.is_absolute():
        data_root = settings().data_root
        if data_root is None:
            raise JobError(f"{what}: relative path {text!r} needs a sample-data folder (set METEOLENS_DATA)")
        path = data_root / path
    # realpath works on patterns too: a wildcard component is a name that does not exist, and a
    # '..' after it removes it, which is what the glob would do.
    real = Path(os.path.realpath(path))
    if not any(real.is_relative_to(root) for root in roots):
        raise JobError(
            f"{what}: {text!r} is outside the folders this app reads "
            f"({' and '.join(str(r) for r in roots)}); give a sample dataset name or a path inside them"
        )
    return path


def _check_limits(kind: str, name: str, value: Any) -> None:
    """Refuse a number outside :data:`FORM_LIMITS` with a message that gives the allowed range."""
    from engine.errors import JobError

    bounds = FORM_LIMITS.get((kind, name))
    if bounds is None or value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return
    low, high = bounds
    if not low <= value <= high:
        raise JobError(
            f"{kind}: {name.replace('_', ' ')} = {value:g} is out of range: {low} to {high} for a job run from "
            f"the app (the `meteolens {kind}` command has no such limit)"
        )


def _typed_path(kind: str, name: str, item: str) -> str:
    """A value of a path field: sample dataset and built-in model names pass, paths are confined."""
    from engine.errors import JobError

    if item.lower() in datasets.load_catalogue():
        return item
    if kind == "global" and name == "model":
        from engine.jobs.global_job import GLOBAL_MODELS

        if item in GLOBAL_MODELS:
            return item
    path = confined_path(item, name)
    if not any(ch in item for ch in "*?[") and not path.exists():
        raise JobError(
            f"{kind}: {name}: no such file, folder or sample dataset {item!r} "
            f"(relative paths are read from the data folder {settings().data_root})"
        )
    return str(path)


def parse_form(kind: str, raw: dict[str, Any]) -> Any:
    """Build the job spec of ``kind`` from form values (text lists split on commas).

    File names are confined to the data and store folders (:func:`confined_path`), numbers to
    :data:`FORM_LIMITS`, before the spec validates the rest.

    Raises
    ------
    JobError
        A path outside the allowed folders, a file that does not exist, a number out of range, or
        a value the spec rejects (its message says which and why).
    ReaderError
        An input pattern that matches no file.
    """
    from engine.errors import JobError

    cls = _spec_classes()[kind]
    fields = {f.name: f for f in job_forms()[kind]}
    casts: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "text": str}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        f = fields[name]
        empty = value is None or (isinstance(value, str) and not value.strip())
        if empty and f.kind in ("text", "list"):
            if f.required:
                raise JobError(f"{kind}: {name.replace('_', ' ')} is required")
            values[name] = None if f.optional else f.default
        elif f.kind == "list":
            items = [v.strip() for v in str(value).replace("\n", ",").split(",") if v.strip()]
            if name in INPUT_FIELDS:
                # Files, globs, folders or sample dataset names → the files (as the CLI does), each
                # confined to the allowed folders before and after globbing (a match may be a link).
                typed = [_typed_path(kind, name, item) for item in items]
                files = datasets.resolve_inputs(typed, settings().data_root)
                values[name] = tuple(str(confined_path(str(p), name)) for p in files)
                continue
            try:
                values[name] = tuple(casts[f.item](v) for v in items)
            except ValueError as err:
                raise JobError(f"{kind}: {name.replace('_', ' ')}: expected {f.item} values, got {value!r}") from err
        elif name in PATH_FIELDS and isinstance(value, str):
            values[name] = _typed_path(kind, name, value.strip())
        else:
            _check_limits(kind, name, value)
            values[name] = value
    try:
        return cls(**values)
    except TypeError as err:
        raise JobError(f"{kind}: {err}") from err


def submit_job(spec: Any, progress: Callable[[float, str], None]) -> Any:
    """Run a job to completion in this process with the local executor; returns its ``RunResult``.

    Raises
    ------
    WxError
        The job failed (the run is catalogued as failed with the same message).
    """
    from engine.jobs.runner import LocalExecutor

    try:
        return LocalExecutor(settings(), catalog()).submit(spec, progress=progress)
    finally:
        # A new run, succeeded or failed (catalogued with its error): every listing must see it.
        st.cache_data.clear()


# ------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """A curated case study (``assets/cases/<id>.toml``).

    Attributes
    ----------
    case_id, title, date, summary, story : str
        Identity and the text shown on the Cases page.
    page : str
        URL path of the page that opens the case (``maps``, ``stations``, ``nowcast``...).
    params : dict of str
        Query parameters of that page (its whole state, see :mod:`app.state`).
    requires : tuple of str
        Sample datasets or run ids the case needs; missing ones are named on the page.
    also : tuple of dict
        Further links: ``page``, ``label``, ``params`` (e.g. the demo nowcast of a radar case).
    """

    case_id: str
    title: str
    date: str
    summary: str
    story: str
    page: str
    params: dict[str, str]
    requires: tuple[str, ...]
    also: tuple[dict[str, Any], ...] = ()


@st.cache_data(ttl="1m", show_spinner=False)
def cases(folder: str | None = None) -> list[Case]:
    """All case studies, sorted by date.

    Raises
    ------
    StorageError
        A case file is not valid TOML or lacks a field (the message names the file).
    """
    out = []
    for path in sorted(Path(folder or CASES_DIR).glob("*.toml")):
        try:
            raw = tomllib.loads(path.read_text())
            out.append(
                Case(
                    case_id=path.stem,
                    title=raw["title"],
                    date=str(raw["date"]),
                    summary=raw["summary"],
                    story=raw.get("story", ""),
                    page=raw["open"]["page"],
                    params={k: str(v) for k, v in raw["open"].get("params", {}).items()},
                    requires=tuple(raw.get("requires", ())),
                    also=tuple(
                        {
                            "page": a["page"],
                            "label": a["label"],
                            "params": {k: str(v) for k, v in a.get("params", {}).items()},
                        }
                        for a in raw.get("also", ())
                    ),
                )
            )
        except (OSError, tomllib.TOMLDecodeError, KeyError) as err:
            raise StorageError(f"{path}: invalid case study: {type(err).__name__}: {err}") from err
    return sorted(out, key=lambda c: c.date)


def missing_requirements(requires: Sequence[str]) -> list[str]:
    """Which of a case's required datasets (``dataset:``) or runs (``run:``) are absent."""
    missing = []
    root = settings().data_root
    for item in requires:
        kind, _, name = item.partition(":")
        if kind == "dataset":
            ok = root is not None and name in datasets.load_catalogue() and bool(datasets.get(name).paths(root))
        elif kind == "run":
            ok = catalog().has_run(name)
        elif kind == "station":
            ok = name in set(stations()["station_id"])
        else:
            ok = False
        if not ok:
            missing.append(item)
    return missing


def pretty_units(units: str) -> str:
    """UDUNITS spelling → typographic (``m2 s-2`` → ``m² s⁻²``, ``mm h-1`` → ``mm h⁻¹``)."""
    return units.replace("m2", "m²").replace("-1", "⁻¹").replace("-2", "⁻²")


def units_of(variable: str) -> str:
    """Canonical units of a variable, typeset (as in score thresholds)."""
    from engine.errors import UnknownNameError
    from engine.lexicon import lookup

    try:
        return pretty_units(lookup(variable).units)
    except UnknownNameError:
        return ""


def _error_scale(variable: str) -> tuple[float, str]:
    """Factor and units that turn an error of ``variable`` (canonical units) into display units."""
    from engine.errors import UnknownNameError
    from engine.lexicon import lookup

    try:
        units = lookup(variable).units
    except UnknownNameError:
        return 1.0, ""
    scale = scale_for(variable, units, difference=True)
    return scale.factor, pretty_units(scale.units)


#: Metrics in the units of the verified variable (the others are dimensionless).
METRICS_IN_VARIABLE_UNITS: frozenset[str] = frozenset({"rmse", "mae", "bias", "spread"})


def metric_units(metric: str, variable: str) -> str:
    """Display units of a metric's values (those of :func:`scores_table`): the variable's display
    units for errors and spread (dam for geopotential, hPa for pressure, K for temperature), ""
    for dimensionless skill scores."""
    return _error_scale(variable)[1] if metric.lower() in METRICS_IN_VARIABLE_UNITS else ""


@st.cache_data(ttl="30s", show_spinner=False)
def spread_skill_table(kind: str, variable: str) -> pd.DataFrame:
    """Spread and RMSE (of the ensemble mean) by lead time of the ensemble runs of one kind."""
    df = scores_table(variable=variable)
    df = df[(df["kind"] == kind) & df["metric"].isin(["spread", "rmse"])]
    ensembles = df.loc[df["metric"] == "spread", "run_id"].unique()
    return df[df["run_id"].isin(ensembles)]


def error_text(err: BaseException) -> str:
    """One line for the page from a user error."""
    return str(err) if isinstance(err, WxError) else f"{type(err).__name__}: {err}"


def demo_store_wanted() -> bool:
    """Whether the app was started to build the demo store on first start (``meteolens app``)."""
    return os.environ.get("METEOLENS_APP_BUILD_DEMO") == "1"


def build_demo_store(progress: Callable[[float, str], None]) -> Any:
    """Build the demo store into the app's store (plan: ``METEOLENS_DEMO_PLAN`` or ``assets/demo.toml``).

    Returns
    -------
    app.demo.DemoReport
    """
    from app import demo

    plan_file = os.environ.get("METEOLENS_DEMO_PLAN")
    plan = demo.load_plan(Path(plan_file)) if plan_file else demo.load_plan()
    report = demo.build(settings(), progress=progress, plan=plan)
    st.cache_data.clear()
    return report
