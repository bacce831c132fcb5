"""The demo store: stations, runs and scores built from the sample data, declared in ``assets/demo.toml``.

:func:`build` reads the plan and, for each entry in order, does what is missing and skips what
exists, so a second build is quick and an interrupted one resumes:

* ``[[stations]]``: a station dataset becomes a row of the ``stations`` table (name, position and
  height from the reader's attributes) and its observations (long format);
* ``[[runs]]``: a job through the job layer (:class:`engine.jobs.runner.LocalExecutor`) with a
  fixed run id. Only job kinds registered in this installation are built; the others are
  reported as skipped with the reason (a family not installed or not written yet). A run that
  failed before is deleted and built again;
* ``[[scores]]``: the run verified against a reference dataset (``against``: the radar dataset a
  nowcast was made from, or an analysis) by :func:`verification.pipeline.verify_run`, the same
  code as ``meteolens verify``, with its persistence baseline; ``quality = true`` adds the
  RadarQA-style frame and sequence reports (:func:`verification.pipeline.assess_run`, as
  ``meteolens qa``). Optional ``thresholds`` (mm/h) and ``windows`` (grid points) override the
  pipeline's defaults;
* ``[[cases]]``: a station-comparison case of the regional engine
  (:func:`app.cases_regional.run_case`, as ``meteolens case NAME``): its downscaled and bilinear
  runs, point forecasts and station scores; a complete case is not rebuilt.

No Streamlit here: the same code serves ``meteolens demo build`` and the app's first start.

Public API: ``DEMO_FILE``, ``DemoPlan``, ``DemoReport``, ``load_plan``, ``build``, ``spec_classes``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from engine import datasets
from engine.config import REPO_ROOT, Settings
from engine.errors import StorageError, WxError
from engine.storage.catalog import Catalog

#: The declarative plan of the demo store.
DEMO_FILE = REPO_ROOT / "assets" / "demo.toml"

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class DemoPlan:
    """The parsed ``demo.toml``: lists of station, run, score and case entries (plain dicts)."""

    stations: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    scores: list[dict[str, Any]]
    cases: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.stations) + len(self.runs) + len(self.scores) + len(self.cases)


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
    plan = DemoPlan(raw.get("stations", []), raw.get("runs", []), raw.get("scores", []), raw.get("cases", []))
    required = {
        "stations": ("dataset", "station_id"),
        "runs": ("id", "kind"),
        "scores": ("run", "against"),
        "cases": ("name",),
    }
    for section, keys in required.items():
        for i, entry in enumerate(getattr(plan, section)):
            missing = [k for k in keys if k not in entry]
            if missing:
                raise StorageError(f"{path}: [[{section}]] entry {i + 1} lacks {', '.join(missing)}")
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

    data_root = settings.data_root
    if data_root is None or not data_root.is_dir():
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
        step(f"stations {entry['station_id']}", partial(_ingest_station, catalog, entry, data_root))

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
                data_root,
                lambda f, m: say((done + f) / total, f"{e['id']}: {m}"),
            )

        step(f"run {entry['id']}", run)

    for entry in plan.scores:
        step(f"scores {entry['run']}", partial(_verify, catalog, entry, data_root))

    for entry in plan.cases:
        step(f"case {entry['name']}", partial(_build_case, settings, catalog, entry))
    say(1.0, f"demo store: {report.summary()}")
    return report


def _ingest_station(catalog: Catalog, entry: dict[str, Any], data_root: Path) -> str | None:
    """A station dataset → a ``stations`` row and its observations; skipped when already there."""
    sid = entry["station_id"]
    have = catalog.observation_count(sid)
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


def _verify(catalog: Catalog, entry: dict[str, Any], data_root: Path | None) -> str | None:
    """Verify a demo run with the verification pipeline; skipped when absent or scored already."""
    from verification.pipeline import VerifyOptions, assess_run, verify_run

    run_id = entry["run"]
    if not catalog.has_run(run_id) or catalog.get_run(run_id).status != "succeeded":
        return f"run {run_id} is not in the store"
    if len(catalog.scores(run_id)):
        return f"run {run_id} already scored"
    options = VerifyOptions(
        thresholds=tuple(float(t) for t in entry["thresholds"]) if "thresholds" in entry else None,
        windows=tuple(int(w) for w in entry["windows"]) if "windows" in entry else None,
    )
    verify_run(catalog, run_id, entry["against"], data_root=data_root, options=options)
    if entry.get("quality"):
        assess_run(catalog, run_id, entry["against"], data_root=data_root)
    return None


def _build_case(settings: Settings, catalog: Catalog, entry: dict[str, Any]) -> str | None:
    """A station-comparison case of the regional engine; skipped when its runs are already scored."""
    from app.cases_regional import CASES, CaseError, run_case

    case = CASES.get(entry["name"])
    if case is None:
        raise CaseError(f"demo case {entry['name']!r}: unknown; available: {', '.join(sorted(CASES))}")
    if all(catalog.has_run(r) and len(catalog.scores(r)) for r in case.run_ids.values()):
        return f"case {case.name} already built"
    run_case(case.name, settings, catalog=catalog)
    return None
