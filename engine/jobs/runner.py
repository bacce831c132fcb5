"""The job layer: turn a :class:`~engine.jobs.specs.JobSpec` into a catalogued run store.

A *job kind* is a function ``(spec, progress) -> JobOutput`` registered in :data:`job_kinds`
under the spec's ``kind``. It does the science (read inputs, run a model, build a Dataset) and
nothing else: the executor owns run ids, catalogue rows, status changes, store writing,
provenance and failure handling, so every family behaves the same way::

    @job_kinds.register("nowcast")
    def run_nowcast(spec: NowcastSpec, progress: ProgressCallback) -> JobOutput:
        ...
        progress(0.5, "extrapolating")
        return JobOutput(dataset=ds, compute_seconds=t, inputs=spec.inputs, init_time=t0,
                         device=str(device), model="nowcast/steps")

    result = LocalExecutor(Settings.from_env()).submit(NowcastSpec(...), progress=bar)

Lifecycle of :meth:`LocalExecutor.submit`: register the run ``queued`` → ``running`` → call
the job → write ``runs/<run_id>.zarr`` atomically with provenance → ``succeeded`` with path
and compute time. On any exception, Ctrl-C included, the run becomes ``failed`` with the error
text, no store or temporary directory is left, and the exception propagates (meteolens errors
unchanged, ``KeyboardInterrupt``/``SystemExit`` unchanged, anything else wrapped in
:class:`~engine.errors.JobError` with the original chained).

A forecast too large for memory (a 20-member ensemble on a continental radar grid) is
*streamed*: the job returns a template dataset whose large variables are placeholders, and an
iterable of ``(region, Dataset)`` blocks (``JobOutput.blocks``, typically a generator that
computes a chunk of members per step). The executor writes each block into the temporary store
as it is produced (:func:`~engine.storage.zarr_store.write_run_store`), so memory holds one
block; the job's progress and compute time go on while the blocks are written, and the same
guarantees hold (a failure or Ctrl-C mid-stream leaves no store, and the run ``failed``).

The local executor runs jobs in the calling process. Scale-out (DESIGN.md, "Scale") is a
``DaskExecutor`` with the same ``submit`` that ships the spec to a Dask distributed worker and
runs this same sequence there; specs are frozen dataclasses of plain values precisely so they
pickle and travel.

Public API: ``ProgressCallback``, ``JobOutput``, ``RunResult``, ``job_kinds``, ``new_run_id``,
``LocalExecutor``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import secrets
import shutil
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from engine.config import Settings
from engine.errors import JobError, WxError
from engine.jobs.specs import JobSpec
from engine.registry import Registry
from engine.sources import record_sources
from engine.storage.catalog import Catalog
from engine.storage.zarr_store import Block, write_run_store

#: ``progress(fraction, message)``: fraction in [0, 1], non-decreasing; message one short line.
ProgressCallback = Callable[[float, str], None]


@dataclass(frozen=True)
class JobOutput:
    """What a job kind returns: the forecast and the facts the provenance needs.

    Attributes
    ----------
    dataset : Dataset
        The forecast, following the data contract (canonical names and units, ``valid_time``).
        With ``blocks``, the template of the forecast: its dask-backed data variables are
        placeholders that the blocks fill (see :func:`~engine.storage.zarr_store.write_run_store`).
    compute_seconds : float
        Wall time of the computation proper (model and I/O of inputs), seconds, ≥ 0; with
        ``blocks``, the part done before returning (the executor adds the time spent
        producing the blocks).
    inputs : tuple of str
        Source files or URLs read (Paths are accepted and stored as text).
    init_time : datetime-like or None
        Forecast initial time (UTC).
    device : str
        Device the model ran on (``"cpu"``, ``"cuda:0"``).
    model : str
        Model name, family-qualified (``"nowcast/steps"``, ``"global/swm"``).
    domain : str, optional
        Region name or description.
    extra_attrs : mapping, optional
        Further root attributes of the store (a title, method settings); provenance fields
        win on a name clash.
    model_version : str, optional
        Version of the model or its weights (a checksum for user-supplied weights).
    blocks : iterable of (region, Dataset), optional
        The forecast's large variables, piece by piece, produced while the executor writes
        them (a generator keeps memory to one piece). Iterated once; the job's ``progress``
        callback may still be called from it.

    Raises
    ------
    JobError
        From ``__post_init__``: not a Dataset, negative or non-finite compute time, ``blocks``
        not iterable.
    """

    dataset: xr.Dataset
    compute_seconds: float
    inputs: Sequence[str]
    init_time: Any
    device: str
    model: str
    domain: str | None = None
    extra_attrs: Mapping[str, Any] | None = None
    model_version: str | None = None
    blocks: Iterable[Block] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, xr.Dataset):
            raise JobError(f"JobOutput.dataset: expected an xarray.Dataset, got {type(self.dataset).__name__}")
        if self.blocks is not None and (not isinstance(self.blocks, Iterable) or isinstance(self.blocks, xr.Dataset)):
            raise JobError(
                f"JobOutput.blocks: expected an iterable of (region, Dataset) blocks, got {type(self.blocks).__name__}"
            )
        seconds = float(self.compute_seconds)
        if not math.isfinite(seconds) or seconds < 0:
            raise JobError(f"JobOutput.compute_seconds={self.compute_seconds!r}: expected a finite number ≥ 0")
        if isinstance(self.inputs, str | Path):
            raise JobError("JobOutput.inputs: expected a sequence of file names, got a single name")
        # Normalise in place (frozen): provenance and catalogue want plain text and a float.
        object.__setattr__(self, "compute_seconds", seconds)
        object.__setattr__(self, "inputs", tuple(str(p) for p in self.inputs))


@dataclass(frozen=True)
class RunResult:
    """Outcome of a submitted job.

    Attributes
    ----------
    run_id : str
        Catalogue id of the run.
    path : Path
        The run store.
    compute_seconds : float
        Compute time reported by the job.
    status : str
        ``"succeeded"`` (failures raise instead of returning).
    """

    run_id: str
    path: Path
    compute_seconds: float
    status: str


#: Job kind → ``(spec, progress) -> JobOutput``.
job_kinds: Registry[Callable[[Any, ProgressCallback], JobOutput]] = Registry("job")


def new_run_id(kind: str) -> str:
    """A new run id ``<kind>-YYYYmmddTHHMMSS-<8 hex>``: sorts by creation time within a kind, unique.

    The UTC timestamp makes ids of one kind sort chronologically and readable in file
    listings; 32 random bits make collisions within one second negligible (one in four
    billion per pair). Characters outside ``[a-z0-9]`` in ``kind`` become ``-`` so the id is
    a safe file name.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", str(kind).lower()).strip("-") or "run"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{slug}-{stamp}-{secrets.token_hex(4)}"


class _Progress:
    """Wrap a user callback: optional, monotonic, clamped, throttled, and never fatal.

    Jobs may report progress per tile or per step (thousands of calls); UIs redraw slowly.
    A call is passed on when the fraction moved by at least 1 % or ``min_interval`` seconds
    passed since the last one passed on (so at most about a hundred calls plus ten a second),
    and always for the first and the final call and for the executor's own stage messages
    (``force``). A callback that raises is disabled with one warning: a broken progress bar
    must not kill a long forecast. ``KeyboardInterrupt`` still propagates.
    """

    def __init__(self, callback: ProgressCallback | None, *, min_interval: float = 0.1, min_step: float = 0.01) -> None:
        self._callback = callback
        self._min_interval = min_interval
        self._min_step = min_step
        self._fraction = 0.0
        self._delivered: float | None = None
        self._last_call = 0.0

    def __call__(self, fraction: float, message: str = "", *, force: bool = False) -> None:
        if self._callback is None:
            return
        try:
            value = float(fraction)
        except (TypeError, ValueError):
            return
        if math.isnan(value):
            return
        # Fractions never go backwards, whatever the job reports: bars must not jump back.
        value = min(max(value, self._fraction), 1.0)
        self._fraction = value
        now = time.monotonic()
        due = (
            force
            or self._delivered is None
            or value >= 1.0
            or value - self._delivered >= self._min_step
            or now - self._last_call >= self._min_interval
        )
        if not due:
            return
        self._delivered, self._last_call = value, now
        try:
            self._callback(value, str(message))
        except Exception as err:
            warnings.warn(f"progress callback failed and is disabled: {err!r}", RuntimeWarning, stacklevel=2)
            self._callback = None

    def scaled(self, start: float, stop: float) -> ProgressCallback:
        """A callback mapping a job's [0, 1] onto [start, stop] of the whole run."""

        def report(fraction: float, message: str = "") -> None:
            try:
                f = min(max(float(fraction), 0.0), 1.0)
            except (TypeError, ValueError):
                return
            self(start + (stop - start) * f, message)

        return report


class _TimedBlocks:
    """Iterate a job's blocks, adding up the time spent producing them (the job's compute, not the writes)."""

    def __init__(self, blocks: Iterable[Block]) -> None:
        self._blocks = iter(blocks)
        self.seconds = 0.0

    def __iter__(self) -> Iterator[Block]:
        return self

    def __next__(self) -> Block:
        started = time.perf_counter()
        try:
            return next(self._blocks)
        finally:
            self.seconds += time.perf_counter() - started


def _maybe_time(value: Any) -> Any:
    """``value`` if it reads as one timestamp, else ``None`` (specs may hold a list of times)."""
    if value is None or isinstance(value, list | tuple):
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    return None if ts is pd.NaT else ts


def _describe(err: BaseException) -> str:
    """One-paragraph error text for the catalogue."""
    if isinstance(err, KeyboardInterrupt):
        return "interrupted (KeyboardInterrupt)"
    text = f"{type(err).__name__}: {err}"
    return text if len(text) <= 4000 else text[:4000] + " [truncated]"


class LocalExecutor:
    """Run jobs in this process, one at a time, cataloguing each run.

    Parameters
    ----------
    settings : Settings
        Where run stores go (``settings.runs_dir``).
    catalog : Catalog, optional
        The catalogue to record runs in; by default the one at ``settings.catalog_path``.
    """

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog if catalog is not None else Catalog(settings.catalog_path)

    def __repr__(self) -> str:
        return f"LocalExecutor(runs_dir={str(self.settings.runs_dir)!r}, catalog={self.catalog!r})"

    def submit(
        self, spec: JobSpec, *, progress: ProgressCallback | None = None, run_id: str | None = None
    ) -> RunResult:
        """Run ``spec`` to completion and return where its store is.

        Parameters
        ----------
        spec : JobSpec
            What to run; ``spec.kind`` selects the job function in :data:`job_kinds`.
        progress : callable, optional
            ``progress(fraction, message)``; called with non-decreasing fractions ending at 1.
        run_id : str, optional
            Use this id instead of :func:`new_run_id` (e.g. one the app reserved).

        Returns
        -------
        RunResult

        Raises
        ------
        UnknownNameError
            No job kind ``spec.kind`` (nothing is catalogued then).
        WxError
            From the job or storage, unchanged, after the run is marked failed.
        JobError
            Any other exception of the job, chained, after the run is marked failed.
        KeyboardInterrupt
            Re-raised after the run is marked failed.
        """
        if not isinstance(spec, JobSpec):
            raise JobError(f"submit: expected a JobSpec, got {type(spec).__name__}")
        job = self._job_function(spec.kind)
        catalog = self.catalog
        run_id = run_id or new_run_id(spec.kind)
        domain = getattr(spec, "domain", None)
        catalog.register_run(
            run_id,
            spec.model_name(),
            spec.kind,
            domain if isinstance(domain, str) else None,
            _maybe_time(getattr(spec, "init_time", None)),
            spec.to_params(),
            device=spec.device,
        )
        report = _Progress(progress)
        store = self.settings.runs_dir / f"{run_id}.zarr"
        written = False
        started = time.perf_counter()
        try:
            catalog.set_status(run_id, "running")
            report(0.0, f"{run_id}: started", force=True)
            # The job's own progress fills 0-95 %; writing the store is the last stretch.
            with record_sources() as read:  # the sources the job opens, for provenance
                output = job(spec, report.scaled(0.0, 0.95))
            sources = [source.provenance() for source in read]
            if not isinstance(output, JobOutput):
                raise JobError(f"job kind {spec.kind!r} returned {type(output).__name__}, expected JobOutput")
            catalog.annotate_run(
                run_id,
                model=output.model,
                domain=output.domain,
                init_time=_maybe_time(output.init_time),
                device=output.device,
                sources=sources or None,
            )
            # A streamed job reports its own progress while its blocks are written: the bar stays
            # where the job left it (fractions never go back) instead of jumping to 95 %.
            blocks = None if output.blocks is None else _TimedBlocks(output.blocks)
            report(0.95 if blocks is None else 0.0, "writing run store", force=True)
            dataset = output.dataset
            if output.extra_attrs:
                dataset = dataset.assign_attrs(dict(output.extra_attrs))

            def compute_seconds() -> float:
                return output.compute_seconds + (blocks.seconds if blocks is not None else 0.0)

            def provenance() -> dict[str, Any]:  # called once the data is written (the blocks timed)
                return {
                    "run_id": run_id,
                    "kind": spec.kind,
                    "model": output.model,
                    "model_version": output.model_version,
                    "parameters": spec.to_params(),
                    "sources": sources,
                    "init_time": output.init_time,
                    "inputs": list(output.inputs),
                    "device": output.device,
                    "domain": output.domain,
                    "compute_seconds": compute_seconds(),
                    "wall_seconds": round(time.perf_counter() - started, 3),
                }

            write_run_store(dataset, store, provenance=provenance, blocks=blocks)
            written = True
            catalog.set_status(
                run_id, "succeeded", path=store, compute_seconds=compute_seconds(), device=output.device
            )
        except BaseException as err:
            if written:
                # The store exists but the catalogue could not say so: remove it rather than
                # leave a store no catalogue row describes.
                shutil.rmtree(store, ignore_errors=True)
            try:
                catalog.set_status(run_id, "failed", error=_describe(err))
            except Exception as cat_err:
                err.add_note(f"the failure could not be recorded in the catalogue: {cat_err}")
            if isinstance(err, WxError) or not isinstance(err, Exception):
                raise
            raise JobError(f"job {run_id} ({spec.kind}) failed: {type(err).__name__}: {err}") from err
        report(1.0, f"{run_id}: done", force=True)
        return RunResult(run_id=run_id, path=store, compute_seconds=compute_seconds(), status="succeeded")

    @staticmethod
    def _job_function(kind: str) -> Callable[[Any, ProgressCallback], JobOutput]:
        if kind not in job_kinds:
            # Imported here: kinds.py imports the families' job modules, which import this module.
            from engine.jobs.kinds import load_job_kinds, unavailable_job_modules

            load_job_kinds()
            if kind not in job_kinds and unavailable_job_modules():
                missing = "; ".join(f"{m}: {why}" for m, why in unavailable_job_modules().items())
                raise JobError(f"job kind {kind!r} is not available ({missing})")
        return job_kinds.get(kind)
