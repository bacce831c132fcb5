"""The demo store: stations, runs and scores built from the sample data, declared in ``assets/demo.toml``.

:func:`build` reads the plan and, for each entry in order, does what is missing and skips what
exists, so a second build is quick and an interrupted one resumes:

* ``[[stations]]``: a station dataset becomes a row of the ``stations`` table (name, position and
  height from the reader's attributes) and its observations (long format);
* ``[[runs]]``: a job through the job layer (:class:`engine.jobs.runner.LocalExecutor`) with a
  fixed run id. Only job kinds registered in this installation are built; the others are
  reported as skipped with the reason (a family not installed or not written yet). A run that
  failed before is deleted and built again;
* ``[[scores]]``: CSI and FSS of a nowcast run against the radar dataset it was made from
  (``observed``), or latitude-weighted RMSE and ensemble spread of a global run against an
  analysis dataset (``analysis``), per lead time (verification metrics), written to the
  ``scores`` table.

No Streamlit here: the same code serves ``meteolens demo build`` and the app's first start.

Public API: ``DEMO_FILE``, ``DemoPlan``, ``DemoReport``, ``load_plan``, ``build``, ``spec_classes``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from engine import datasets
from engine.config import REPO_ROOT, Settings
from engine.errors import StorageError, WxError
from engine.storage.catalog import Catalog

#: The declarative plan of the demo store.
DEMO_FILE = REPO_ROOT / "assets" / "demo.toml"

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class DemoPlan:
    """The parsed ``demo.toml``: lists of station, run and score entries (plain dicts)."""

    stations: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    scores: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.stations) + len(self.runs) + len(self.scores)


@dataclass
class DemoReport:
    """What a build did: entries built, skipped (with why) and failed (with the error)."""

    built: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: counts of built, skipped and failed entries."""
        return f"{len(self.built)} built, {len(self.skipped)} skipped, {len(self.failed)} failed"


def load_plan(path: Path = DEMO_FILE) -> DemoPlan:
    """Parse the demo plan.

    Raises
    ------
    StorageError
        The file is missing or invalid, or an entry lacks its required keys.
    """
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise StorageError(f"{path}: cannot read the demo plan: {err}") from err
    plan = DemoPlan(raw.get("stations", []), raw.get("runs", []), raw.get("scores", []))
    required = {"stations": ("dataset", "station_id"), "runs": ("id", "kind"), "scores": ("run",)}
    for section, keys in required.items():
        for i, entry in enumerate(getattr(plan, section)):
            missing = [k for k in keys if k not in entry]
            if missing:
                raise StorageError(f"{path}: [[{section}]] entry {i + 1} lacks {', '.join(missing)}")
    for i, entry in enumerate(plan.scores):
        if ("observed" in entry) == ("analysis" in entry):
            raise StorageError(
                f"{path}: [[scores]] entry {i + 1} needs exactly one of `observed` (radar) or `analysis`"
            )
    return plan


def spec_classes() -> dict[str, type]:
    """Job spec classes by kind: every (indirect) subclass of :class:`engine.jobs.specs.JobSpec`."""
    from engine.jobs.specs import JobSpec

    out: dict[str, type] = {}
    todo = list(JobSpec.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if getattr(cls, "kind", ""):
            out[cls.kind] = cls
    return out


def _resolve(value: Any, data_root: Path) -> Any:
    """TOML arrays → tuples (specs are frozen and hashable); ``"data:<glob>"`` → the matching files."""
    if isinstance(value, list):
        out: list[Any] = []
        for v in value:
            r = _resolve(v, data_root)
            out.extend(r) if isinstance(v, str) and v.startswith("data:") else out.append(r)
        return tuple(out)
    if isinstance(value, str) and value.startswith("data:"):
        return tuple(str(p) for p in datasets.resolve_inputs(str(data_root / value[5:]), data_root))
    return value


def build(settings: Settings, *, progress: Progress | None = None, plan: DemoPlan | None = None) -> DemoReport:
    """Build (or complete) the demo store in ``settings.store_root``.

    Parameters
    ----------
    settings : Settings
        Where the sample data are and where the store goes.
    progress : callable, optional
        ``progress(fraction, message)``.
    plan : DemoPlan, optional
        The plan; :func:`load_plan` of :data:`DEMO_FILE` by default.

    Returns
    -------
    DemoReport

    Raises
    ------
    WxError
        The sample data folder is missing (nothing can be built from nothing).
    """
    from engine.jobs.kinds import load_job_kinds, unavailable_job_modules
    from engine.jobs.runner import LocalExecutor

    if settings.data_root is None or not settings.data_root.is_dir():
        raise WxError(
            "the demo store is built from the sample data, and no sample data folder was found: "
            "set METEOLENS_DATA or run `meteolens data fetch`"
        )
    plan = plan or load_plan()
    report = DemoReport()
    say = progress or (lambda f, m: None)
    catalog = Catalog(settings.catalog_path)
    total = max(len(plan), 1)
    done = 0

    def step(name: str, fn: Callable[[], str | None]) -> None:
        nonlocal done
        say(done / total, name)
        try:
            skipped = fn()
        except WxError as err:
            report.failed[name] = str(err)
        else:
            if skipped:
                report.skipped[name] = skipped
            else:
                report.built.append(name)
        done += 1

    for entry in plan.stations:
        step(f"stations {entry['station_id']}", lambda e=entry: _ingest_station(catalog, e, settings.data_root))

    kinds = set(load_job_kinds())
    executor = LocalExecutor(settings, catalog)
    for entry in plan.runs:

        def run(e: dict[str, Any] = entry) -> str | None:
            if e["kind"] not in kinds:
                why = unavailable_job_modules()
                return f"job kind {e['kind']!r} is not registered" + (f" ({'; '.join(why.values())})" if why else "")
            return _run_job(
                executor,
                catalog,
                e,
                settings.data_root,  # type: ignore[arg-type]
                lambda f, m: say((done + f) / total, f"{e['id']}: {m}"),
            )

        step(f"run {entry['id']}", run)

    for entry in plan.scores:
        scorer = _score_nowcast if "observed" in entry else _score_against_analysis
        step(f"scores {entry['run']}", lambda e=entry, f=scorer: f(catalog, e, settings.data_root))
    say(1.0, f"demo store: {report.summary()}")
    return report


def _ingest_station(catalog: Catalog, entry: dict[str, Any], data_root: Path) -> str | None:
    """A station dataset → a ``stations`` row and its observations; skipped when already there."""
    sid = entry["station_id"]
    have = catalog.query("SELECT count(*) AS n FROM observations WHERE station_id = ?", [sid])["n"].iloc[0]
    if have:
        return f"station {sid} already has {have} observations"
    ds = datasets.open_dataset(entry["dataset"], data_root)
    if "station" in ds.dims:
        raise StorageError(
            f"{entry['dataset']}: multi-station datasets are not ingested by the demo (one station per entry)"
        )
    ds = ds.sel(time=slice(entry.get("start"), entry.get("end")))
    lat, lon = ds.attrs.get("station_lat"), ds.attrs.get("station_lon")
    if lat is None or lon is None:
        raise StorageError(f"{entry['dataset']}: the reader gives no station coordinates")
    catalog.upsert_stations(
        pd.DataFrame(
            [
                {
                    "station_id": sid,
                    "name": ds.attrs.get("station_name", sid),
                    "lat": float(lat),
                    "lon": float(lon),
                    "elevation": float(ds.attrs["station_elevation"]) if "station_elevation" in ds.attrs else None,
                    "source": entry["dataset"],
                }
            ]
        )
    )
    long = ds.to_dataframe().reset_index().melt(id_vars="time", var_name="variable", value_name="value").dropna()
    long["station_id"] = sid
    catalog.insert_observations(long[["station_id", "time", "variable", "value"]])
    return None


def _run_job(executor: Any, catalog: Catalog, entry: dict[str, Any], data_root: Path, progress: Progress) -> str | None:
    """Submit one run of the plan with its fixed id (skipped when it already succeeded)."""
    from engine.errors import JobError

    run_id = entry["id"]
    if catalog.has_run(run_id):
        rec = catalog.get_run(run_id)
        if rec.status == "succeeded":
            return f"run {run_id} already built"
        catalog.delete_run(run_id)  # failed or interrupted earlier: build it again
    cls = spec_classes().get(entry["kind"])
    if cls is None:
        return f"job kind {entry['kind']!r} has no spec class"
    params = {k: _resolve(v, data_root) for k, v in entry.get("params", {}).items()}
    try:
        spec = cls(**params, device=entry.get("device", "auto"))
    except TypeError as err:
        raise JobError(f"demo run {run_id}: the parameters do not fit {cls.__name__}: {err}") from err
    executor.submit(spec, run_id=run_id, progress=progress)
    return None


def _observed_frames(name: str, data_root: Path, times: list[pd.Timestamp]) -> xr.DataArray:
    """Observed precipitation rate (mm h-1) at ``times`` from a radar sample dataset, ``(lead_time, y, x)``."""
    from engine.readers import open_any

    meta = datasets.get(name)
    paths = meta.paths(data_root)
    start = pd.Timestamp(meta.time_range[0])
    step = pd.Timedelta(minutes=int(meta.time_step_minutes or 5))
    frames = []
    for t in times:
        i = int(round((t - start) / step))
        if not 0 <= i < len(paths):
            raise StorageError(
                f"{name}: no observation at {t} (the dataset covers {meta.time_range[0]} to {meta.time_range[-1]})"
            )
        frame = open_any(paths[i], format=meta.format)["precip_rate"].isel(time=0, drop=True)
        frame_time = pd.Timestamp(open_any(paths[i], format=meta.format)["time"].values[0])
        if frame_time != t:
            raise StorageError(f"{paths[i]}: expected the frame of {t}, found {frame_time} (gap in the sequence)")
        frames.append(frame.drop_vars([c for c in frame.coords if c not in frame.dims]))
    return xr.concat(frames, dim="lead_time")


def _score_nowcast(catalog: Catalog, entry: dict[str, Any], data_root: Path) -> str | None:
    """CSI and FSS per lead time of a nowcast run against observed radar; skipped when scored already."""
    from engine.storage.zarr_store import open_run_store
    from verification.metrics import csi, fss

    run_id = entry["run"]
    if not catalog.has_run(run_id) or catalog.get_run(run_id).status != "succeeded":
        return f"run {run_id} is not in the store"
    if len(catalog.scores(run_id)):
        return f"run {run_id} already scored"
    ds = open_run_store(catalog.get_run(run_id).path)  # type: ignore[arg-type]
    fc = ds["precip_rate"]
    if "init_time" in fc.dims:
        fc = fc.isel(init_time=0)
    if "member" in fc.dims:
        fc = fc.median("member")  # the ensemble median as the deterministic forecast
    init = pd.Timestamp(ds["init_time"].values.ravel()[0])
    leads = pd.to_timedelta(ds["lead_time"].values)
    obs = _observed_frames(entry["observed"], data_root, [init + lead for lead in leads])
    fc = fc.load().drop_vars([c for c in fc.coords if c not in fc.dims])
    obs = obs.assign_coords(lead_time=fc["lead_time"].values)
    if fc.shape != obs.shape:
        raise StorageError(f"run {run_id}: grid {fc.shape} differs from the observed radar {obs.shape}")
    obs = obs.transpose(*fc.dims)
    thresholds = [float(t) for t in entry.get("thresholds", [1.0])]
    scales = [int(s) for s in entry.get("scales", [5])]
    rows = []
    c = csi(fc, obs, threshold=thresholds, preserve_dims=["lead_time"])
    f = fss(fc, obs, threshold=thresholds, window=scales, preserve_dims=["lead_time"])
    for i, lead in enumerate(leads):
        for j, thr in enumerate(thresholds):
            value = c.isel(lead_time=i, threshold=j) if "threshold" in c.dims else c.isel(lead_time=i)
            rows.append({"lead_time": lead, "metric": "csi", "threshold": thr, "scale": None, "value": float(value)})
            for k, win in enumerate(scales):
                sel = {"lead_time": i}
                if "threshold" in f.dims:
                    sel["threshold"] = j
                if "window" in f.dims:
                    sel["window"] = k
                rows.append(
                    {
                        "lead_time": lead,
                        "metric": "fss",
                        "threshold": thr,
                        "scale": float(win),
                        "value": float(f.isel(sel)),
                    }
                )
    df = pd.DataFrame(rows)
    df["run_id"], df["variable"], df["reference"] = run_id, "precip_rate", f"dataset:{entry['observed']}"
    df["value"] = df["value"].astype("float64").replace([np.inf, -np.inf], np.nan)
    catalog.insert_scores(df)
    return None


def _score_against_analysis(catalog: Catalog, entry: dict[str, Any], data_root: Path) -> str | None:
    """Latitude-weighted RMSE (ensemble mean) and spread of a global run against an analysis, per lead.

    The verifying analysis is the mean of the analysis ensemble where it has members (ERA5's
    ensemble of data assimilations); leads whose valid time the analysis does not hold are left out.
    """
    from engine.storage.zarr_store import open_run_store
    from verification.metrics import latitude_weights, rmse, spread_skill

    run_id = entry["run"]
    if not catalog.has_run(run_id) or catalog.get_run(run_id).status != "succeeded":
        return f"run {run_id} is not in the store"
    if len(catalog.scores(run_id)):
        return f"run {run_id} already scored"
    ds = open_run_store(catalog.get_run(run_id).path)  # type: ignore[arg-type]
    analysis = datasets.open_dataset(entry["analysis"], data_root)
    init = pd.Timestamp(ds["init_time"].values.ravel()[0])
    rows = []
    for variable in entry.get("variables", [v for v in ds.data_vars if v in analysis.data_vars]):
        truth_all = analysis[variable]
        if "member" in truth_all.dims:
            truth_all = truth_all.mean("member")
        weights = latitude_weights(ds["lat"].values)
        weights = xr.DataArray(weights.values, coords={"lat": ds["lat"].values}, dims="lat")
        for lead in pd.to_timedelta(ds["lead_time"].values):
            valid = (init + lead).to_datetime64()
            if valid not in truth_all["time"].values:
                continue
            fc = ds[variable].sel(lead_time=lead).squeeze(drop=True).load()
            truth = truth_all.sel(time=valid).interp(lat=fc["lat"], lon=fc["lon"])
            fc = fc.drop_vars([c for c in fc.coords if c not in fc.dims])
            truth = truth.drop_vars([c for c in truth.coords if c not in truth.dims])
            mean = fc.mean("member") if "member" in fc.dims else fc
            rows.append(
                {
                    "variable": variable,
                    "lead_time": lead,
                    "metric": "rmse",
                    "value": float(rmse(mean, truth, weights=weights)),
                }
            )
            if "member" in fc.dims and fc.sizes["member"] > 1:
                ss = spread_skill(fc, truth, weights=weights)
                rows.append({"variable": variable, "lead_time": lead, "metric": "spread", "value": float(ss["spread"])})
    if not rows:
        return f"run {run_id}: no lead time is valid at a time of {entry['analysis']}"
    df = pd.DataFrame(rows)
    df["run_id"], df["reference"] = run_id, f"dataset:{entry['analysis']}"
    catalog.insert_scores(df)
    return None
