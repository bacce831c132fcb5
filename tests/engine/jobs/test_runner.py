"""The job layer: specs, run ids, and the local executor's lifecycle (success, failure, Ctrl-C)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import dask.array
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from engine.config import Settings
from engine.errors import JobError, StorageError, UnknownNameError
from engine.jobs import kinds
from engine.jobs.runner import JobOutput, LocalExecutor, ProgressCallback, RunResult, job_kinds, new_run_id
from engine.jobs.specs import JobSpec
from engine.lexicon import attrs_for
from engine.storage.catalog import Catalog
from engine.storage.zarr_store import open_run_store, read_provenance


@dataclass(frozen=True)
class BlobSpec(JobSpec):
    """A Gaussian rain cell advected eastward: a small real computation with known answer."""

    kind: ClassVar[str] = "test-blob"
    n_lead: int = 4
    size: int = 16
    speed: float = 2.0  # grid cells per step
    init_time: str = "2017-01-01T06:00"
    domain: str = "test-square"
    fail_at: int | None = None  # lead step at which to raise
    error: str = "value"  # what to raise: value | storage | interrupt | bad-output


def blob_field(size: int, centre_x: float) -> np.ndarray:
    """Rain rate (mm h-1) of a Gaussian cell of 10 mm h-1 peak and 2-cell radius at ``centre_x``."""
    y, x = np.mgrid[0:size, 0:size].astype("float64")
    return (10.0 * np.exp(-((x - centre_x) ** 2 + (y - size / 2) ** 2) / (2 * 2.0**2))).astype("float32")


def blob_fails(spec: BlobSpec, step: int) -> None:
    """Raise what ``spec`` asks for at lead step ``step`` (``bad-output`` is the caller's)."""
    if spec.fail_at == step:
        if spec.error == "interrupt":
            raise KeyboardInterrupt
        if spec.error == "storage":
            raise StorageError("/nowhere/input.h5: cannot read input")
        raise ValueError(f"model diverged at step {step}")


def blob_output(spec: BlobSpec, rate: object, blocks: object = None) -> JobOutput:
    """The blob run: ``rate`` (lead, y, x) values, or a placeholder filled by ``blocks``."""
    init = pd.Timestamp(spec.init_time)
    lead = pd.to_timedelta(np.arange(spec.n_lead) * 5, unit="min")
    ds = xr.Dataset(
        {"precip_rate": (("init_time", "lead_time", "y", "x"), rate[None], attrs_for("precip_rate"))},
        coords={"init_time": [init], "lead_time": lead},
    )
    ds = ds.assign_coords(valid_time=ds.init_time + ds.lead_time)
    return JobOutput(
        dataset=ds,
        compute_seconds=0.01,
        inputs=(Path("/data/radar/frame1.gif"), "frame2.gif"),
        init_time=init,
        device="cpu",
        model="test/blob-advection",
        domain=spec.domain,
        extra_attrs={"title": "advected blob"},
        model_version="0.1",
        blocks=blocks,  # type: ignore[arg-type]
    )


@job_kinds.register(BlobSpec.kind)
def run_blob(spec: BlobSpec, progress: ProgressCallback) -> JobOutput:
    frames = []
    for step in range(spec.n_lead):
        if spec.fail_at == step and spec.error == "bad-output":
            return "not a JobOutput"  # type: ignore[return-value]
        blob_fails(spec, step)
        frames.append(blob_field(spec.size, 3.0 + spec.speed * step))
        progress((step + 1) / spec.n_lead, f"step {step + 1}/{spec.n_lead}")
    return blob_output(spec, np.stack(frames))


@dataclass(frozen=True)
class StreamedBlobSpec(BlobSpec):
    """The blob, streamed: each lead step is computed when the executor asks for it, then written."""

    kind: ClassVar[str] = "test-blob-streamed"


@job_kinds.register(StreamedBlobSpec.kind)
def run_blob_streamed(spec: StreamedBlobSpec, progress: ProgressCallback) -> JobOutput:
    def blocks() -> Iterator[tuple[dict, xr.Dataset]]:
        for step in range(spec.n_lead):
            blob_fails(spec, step)
            rate = blob_field(spec.size, 3.0 + spec.speed * step)
            block = xr.Dataset({"precip_rate": (("init_time", "lead_time", "y", "x"), rate[None, None])})
            yield {"lead_time": slice(step, step + 1)}, block
            progress((step + 1) / spec.n_lead, f"wrote step {step + 1}/{spec.n_lead}")

    progress(0.1, "prepared")
    placeholder = dask.array.empty((spec.n_lead, spec.size, spec.size), dtype="float32")
    return blob_output(spec, placeholder, blocks())


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_root=None, store_root=tmp_path / "store")


@pytest.fixture
def executor(settings: Settings) -> LocalExecutor:
    return LocalExecutor(settings, Catalog(settings.catalog_path))


def leftovers(settings: Settings) -> list[str]:
    """Everything in the runs folder (stores and hidden temporaries)."""
    return sorted(p.name for p in settings.runs_dir.iterdir()) if settings.runs_dir.exists() else []


# -- specs -----------------------------------------------------------------------------------


def test_spec_params_and_validation() -> None:
    @dataclass(frozen=True)
    class NeedsInputs(JobSpec):
        kind: ClassVar[str] = "needs-inputs"
        inputs: tuple[Path, ...]  # no default, after the base's keyword-only ``device``

    spec = NeedsInputs((Path("/a.gif"), Path("b.gif")), device="cuda:1")
    assert spec.to_params() == {"device": "cuda:1", "inputs": ["/a.gif", "b.gif"]}
    assert json.loads(json.dumps(spec.to_params())) == spec.to_params()
    assert spec.model_name() == "needs-inputs"
    assert BlobSpec().device == "auto"
    for bad in ("gpu", "cuda:x", "", "CPU"):
        with pytest.raises(JobError, match="device="):
            BlobSpec(device=bad)
    with pytest.raises(JobError, match="sets no `kind`"):
        JobSpec()


def test_job_output_validation() -> None:
    ds = xr.Dataset()
    with pytest.raises(JobError, match="compute_seconds=-1"):
        JobOutput(ds, -1, (), None, "cpu", "m")
    with pytest.raises(JobError, match="expected an xarray.Dataset"):
        JobOutput(np.zeros(3), 1.0, (), None, "cpu", "m")  # type: ignore[arg-type]
    with pytest.raises(JobError, match="single name"):
        JobOutput(ds, 1.0, "one.gif", None, "cpu", "m")
    assert JobOutput(ds, 2, [Path("/a")], None, "cpu", "m").inputs == ("/a",)


def test_new_run_id() -> None:
    ids = [new_run_id("Nowcast/STEPS") for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(re.fullmatch(r"nowcast-steps-\d{8}T\d{6}-[0-9a-f]{8}", i) for i in ids)


# -- executor --------------------------------------------------------------------------------


def test_successful_run(executor: LocalExecutor, settings: Settings) -> None:
    spec = BlobSpec(n_lead=4, device="cpu")
    result = executor.submit(spec)
    assert isinstance(result, RunResult) and result.status == "succeeded"
    assert result.path == settings.runs_dir / f"{result.run_id}.zarr" and result.path.is_dir()
    assert result.run_id.startswith("test-blob-")

    rec = executor.catalog.get_run(result.run_id)
    assert rec.status == "succeeded" and rec.error is None
    assert rec.path == result.path and rec.compute_seconds == pytest.approx(0.01)
    assert rec.model == "test/blob-advection" and rec.domain == "test-square" and rec.device == "cpu"
    assert rec.init_time == pd.Timestamp("2017-01-01T06:00") and rec.parameters == spec.to_params()
    assert rec.started <= rec.finished

    ds = open_run_store(result.path).load()
    np.testing.assert_array_equal(ds.precip_rate.values[0, 2], blob_field(16, 3.0 + spec.speed * 2))
    # The cell moved east by speed × steps: its maximum is where it should be.
    assert int(ds.precip_rate.isel(init_time=0, lead_time=3).argmax("x").isel(y=8)) == 3 + 2 * 3
    prov = read_provenance(result.path)
    assert prov["run_id"] == result.run_id and prov["kind"] == "test-blob"
    assert prov["parameters"] == spec.to_params() and prov["model_version"] == "0.1"
    assert prov["inputs"] == ["/data/radar/frame1.gif", "frame2.gif"]
    assert ds.attrs["title"] == "advected blob"
    assert leftovers(settings) == [f"{result.run_id}.zarr"]


def test_default_catalog_comes_from_settings(settings: Settings) -> None:
    result = LocalExecutor(settings).submit(BlobSpec(n_lead=1))
    assert Catalog(settings.catalog_path, create=False).get_run(result.run_id).status == "succeeded"


def test_failing_job(executor: LocalExecutor, settings: Settings) -> None:
    with pytest.raises(JobError, match=r"job test-blob-\S+ \(test-blob\) failed: ValueError: model diverged") as info:
        executor.submit(BlobSpec(fail_at=2))
    assert isinstance(info.value.__cause__, ValueError)
    (row,) = executor.catalog.list_runs().itertuples()
    assert row.status == "failed" and row.error == "ValueError: model diverged at step 2"
    assert pd.isna(row.path)
    assert leftovers(settings) == []


def test_meteolens_errors_pass_unchanged(executor: LocalExecutor) -> None:
    with pytest.raises(StorageError, match="input.h5: cannot read input"):
        executor.submit(BlobSpec(fail_at=0, error="storage"))
    assert executor.catalog.list_runs()["error"].tolist() == ["StorageError: /nowhere/input.h5: cannot read input"]


def test_job_returning_garbage(executor: LocalExecutor) -> None:
    with pytest.raises(JobError, match="returned str, expected JobOutput"):
        executor.submit(BlobSpec(fail_at=1, error="bad-output"))
    assert executor.catalog.list_runs()["status"].tolist() == ["failed"]


def test_keyboard_interrupt_mid_job(executor: LocalExecutor, settings: Settings) -> None:
    with pytest.raises(KeyboardInterrupt):
        executor.submit(BlobSpec(fail_at=2, error="interrupt"))
    (row,) = executor.catalog.list_runs().itertuples()
    assert row.status == "failed" and "interrupted" in row.error
    assert leftovers(settings) == []


@pytest.mark.parametrize("spec_type", [BlobSpec, StreamedBlobSpec])
def test_keyboard_interrupt_while_writing_store(
    executor: LocalExecutor, settings: Settings, monkeypatch: pytest.MonkeyPatch, spec_type: type[BlobSpec]
) -> None:
    real_to_zarr = xr.Dataset.to_zarr

    def write_then_interrupt(self: xr.Dataset, *args: object, **kwargs: object) -> None:
        real_to_zarr(self, *args, **kwargs)  # the temporary store is complete on disk...
        raise KeyboardInterrupt  # ...when Ctrl-C arrives, before the rename

    monkeypatch.setattr(xr.Dataset, "to_zarr", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        executor.submit(spec_type())
    assert executor.catalog.list_runs()["status"].tolist() == ["failed"]
    assert leftovers(settings) == []


@pytest.mark.parametrize("spec_type", [BlobSpec, StreamedBlobSpec])
def test_catalogue_failure_after_write_removes_store(
    executor: LocalExecutor, settings: Settings, monkeypatch: pytest.MonkeyPatch, spec_type: type[BlobSpec]
) -> None:
    real_set_status = Catalog.set_status

    def flaky(self: Catalog, run_id: str, status: str, **kw: object) -> object:
        if status == "succeeded":
            raise StorageError(f"{self.path}: catalogue busy")
        return real_set_status(self, run_id, status, **kw)

    monkeypatch.setattr(Catalog, "set_status", flaky)
    with pytest.raises(StorageError, match="catalogue busy"):
        executor.submit(spec_type())
    # No store without a row that says it succeeded.
    assert leftovers(settings) == []
    assert executor.catalog.list_runs()["status"].tolist() == ["failed"]


def test_progress(executor: LocalExecutor) -> None:
    calls: list[tuple[float, str]] = []
    executor.submit(BlobSpec(n_lead=6), progress=lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    # Start, one call per lead step (each moves the bar by more than 1 %), store writing, done.
    assert len(calls) == 6 + 3
    assert [m for _, m in calls[1:7]] == [f"step {i}/6" for i in range(1, 7)]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(b >= a for a, b in zip(fractions, fractions[1:], strict=False))
    assert fractions[1:7] == pytest.approx([0.95 * i / 6 for i in range(1, 7)])  # the job's share: 0-95 %
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert any("writing run store" in m for _, m in calls)


def test_progress_is_throttled_monotonic_and_clamped() -> None:
    from engine.jobs.runner import _Progress

    calls: list[float] = []
    report = _Progress(lambda f, m: calls.append(f), min_interval=3600)
    for i in range(10_000):  # a job reporting per tile
        report(i / 10_000)
    report(0.5)  # going backwards
    report(float("nan"))
    report(7.0)  # beyond the end
    assert len(calls) <= 102 and calls == sorted(calls) and calls[-1] == 1.0
    assert _Progress(None)(0.5) is None  # no callback: a no-op


def test_broken_progress_callback_does_not_kill_the_job(executor: LocalExecutor) -> None:
    def broken(fraction: float, message: str) -> None:
        raise OSError("terminal went away")

    with pytest.warns(RuntimeWarning, match="progress callback failed and is disabled"):
        result = executor.submit(BlobSpec(), progress=broken)
    assert executor.catalog.get_run(result.run_id).status == "succeeded"


def test_unknown_kind_catalogues_nothing(executor: LocalExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    # Isolate from the families' job modules: the lookup path is what is tested here.
    monkeypatch.setattr(kinds, "JOB_MODULES", ())
    monkeypatch.setattr(kinds, "_loaded", False)

    @dataclass(frozen=True)
    class Nowhere(JobSpec):
        kind: ClassVar[str] = "no-such-kind"

    with pytest.raises(UnknownNameError, match="unknown job 'no-such-kind'"):
        executor.submit(Nowhere())
    assert executor.catalog.list_runs().empty


def test_load_job_kinds_skips_missing_optional_dependencies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kinds, "_loaded", False)
    monkeypatch.setattr(kinds, "_unavailable", {})
    monkeypatch.setattr(kinds, "JOB_MODULES", ("definitely_not_installed_pkg.jobs",))
    assert BlobSpec.kind in kinds.load_job_kinds()
    assert kinds.unavailable_job_modules() == {
        "definitely_not_installed_pkg.jobs": "definitely_not_installed_pkg is not installed"
    }

    monkeypatch.setattr(kinds, "_loaded", False)
    monkeypatch.setattr(kinds, "JOB_MODULES", ("engine.models.no_such_family_jobs",))
    with pytest.raises(ModuleNotFoundError):  # a typo in meteolens' own list is a bug, not optional
        kinds.load_job_kinds()


# -- streamed jobs (JobOutput.blocks) ------------------------------------------------------------


def test_streamed_run_equals_whole_run(executor: LocalExecutor, settings: Settings) -> None:
    whole = executor.submit(BlobSpec(n_lead=4))
    result = executor.submit(StreamedBlobSpec(n_lead=4))
    streamed, expected = (open_run_store(r.path).load().drop_attrs() for r in (result, whole))
    xr.testing.assert_identical(streamed, expected)
    rec = executor.catalog.get_run(result.run_id)
    assert rec.status == "succeeded" and rec.path == result.path
    # The time spent producing the blocks is part of the compute time, the same everywhere.
    assert result.compute_seconds >= 0.01
    assert rec.compute_seconds == pytest.approx(result.compute_seconds)
    assert read_provenance(result.path)["compute_seconds"] == pytest.approx(result.compute_seconds)
    assert sorted(leftovers(settings)) == sorted([f"{whole.run_id}.zarr", f"{result.run_id}.zarr"])


@pytest.mark.parametrize(
    ("error", "raised", "message"),
    [
        ("value", JobError, "ValueError: model diverged at step 2"),
        ("storage", StorageError, "StorageError: /nowhere/input.h5: cannot read input"),
        ("interrupt", KeyboardInterrupt, "interrupted (KeyboardInterrupt)"),
    ],
)
def test_streamed_failure_midway_leaves_no_store(
    executor: LocalExecutor, settings: Settings, error: str, raised: type[BaseException], message: str
) -> None:
    # Blocks 0 and 1 are already in the temporary store when block 2 fails.
    with pytest.raises(raised):
        executor.submit(StreamedBlobSpec(n_lead=4, fail_at=2, error=error))
    (row,) = executor.catalog.list_runs().itertuples()
    assert row.status == "failed" and row.error == message and pd.isna(row.path)
    assert leftovers(settings) == []


def test_streamed_progress_advances_per_block_written(executor: LocalExecutor) -> None:
    calls: list[tuple[float, str]] = []
    executor.submit(StreamedBlobSpec(n_lead=5), progress=lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    assert all(b >= a for a, b in zip(fractions, fractions[1:], strict=False))
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    messages = [m for _, m in calls]
    # The store is opened where the job left the bar, and the bar moves as blocks are written.
    writing = messages.index("writing run store")
    assert fractions[writing] == pytest.approx(0.95 * 0.1)
    assert messages[writing + 1 : writing + 6] == [f"wrote step {i}/5" for i in range(1, 6)]
    assert fractions[writing + 1 : writing + 6] == pytest.approx([0.95 * i / 5 for i in range(1, 6)])


def test_job_output_blocks_validation() -> None:
    with pytest.raises(JobError, match=r"JobOutput.blocks: expected an iterable of \(region, Dataset\) .*got int"):
        JobOutput(xr.Dataset(), 1.0, (), None, "cpu", "m", blocks=3)  # type: ignore[arg-type]
    with pytest.raises(JobError, match="got Dataset"):
        JobOutput(xr.Dataset(), 1.0, (), None, "cpu", "m", blocks=xr.Dataset())  # type: ignore[arg-type]
