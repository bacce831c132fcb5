"""Streamed ensemble nowcast jobs: the run store is the whole ensemble, written member chunk by member chunk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from nowcast_helpers import mch_files

from engine.config import Settings
from engine.errors import JobError
from engine.jobs import nowcast_job
from engine.jobs.nowcast_job import NowcastSpec
from engine.jobs.runner import LocalExecutor
from engine.models.nowcast import Steps, StepsParams
from engine.storage.zarr_store import open_run_store, write_run_store

#: The rainy 256 x 256 window of the MeteoSwiss frames (as ``mch_crop``): fast, with real rain and no-data.
CROP = {"y": slice(200, 456), "x": slice(250, 506)}


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs on the cropped frames, with STEPS computing 2 members at a time (several chunks per job)."""
    real_load = nowcast_job.load_frames
    monkeypatch.setattr(nowcast_job, "load_frames", lambda *args: real_load(*args).isel(CROP))
    monkeypatch.setattr(
        nowcast_job,
        "_build_method",
        lambda spec: Steps(n_members=spec.n_members, seed=spec.seed, params=StepsParams(member_chunk=2)),
    )


def test_streamed_store_is_the_collected_ensemble_bit_for_bit(
    data_root: Path, tmp_path: Path, small_chunks: None
) -> None:
    spec = NowcastSpec(
        inputs=tuple(str(p) for p in mch_files(data_root, 20, 3)),
        method="steps",
        members=5,
        seed=4,
        lead_steps=3,
        device="cpu",
    )
    calls: list[tuple[float, str]] = []
    result = LocalExecutor(Settings(data_root=None, store_root=tmp_path / "store")).submit(
        spec, progress=lambda f, m: calls.append((f, m))
    )
    store = open_run_store(result.path).load()

    # The way it was: the whole ensemble from the model's forward, then one dataset, one write.
    frames = nowcast_job.load_frames(spec.inputs, 3, "steps")
    batch = torch.from_numpy(np.ascontiguousarray(frames["precip_rate"].values, dtype=np.float32))[None]
    with torch.inference_mode():
        whole = nowcast_job._build_method(spec)(batch, spec.lead_steps)
    collected = np.moveaxis(whole[0].numpy(), 0, 1)  # (lead, member, y, x)
    assert store["precip_rate"].dims == ("lead_time", "member", "y", "x")
    assert store["precip_rate"].values.view(np.uint32).tobytes() == collected.view(np.uint32).tobytes()
    assert np.isnan(collected).any() and np.nanmax(collected) > 1.0  # real rain and no-data, not a trivial case
    old = nowcast_job._forecast_dataset(collected, frames, store["lead_time"].values, ensemble=True)
    old_store = open_run_store(write_run_store(old, tmp_path / "old.zarr", provenance={})).load()
    xr.testing.assert_identical(store.drop_attrs(deep=False), old_store.drop_attrs(deep=False))
    assert store["precip_rate"].encoding["chunks"] == old_store["precip_rate"].encoding["chunks"]
    assert store.attrs["members"] == 5 and store.attrs["compute_seconds"] == result.compute_seconds > 0

    # Progress moves once per chunk of members written, never backwards.
    messages = [m for _, m in calls]
    assert [m for m in messages if "members written" in m] == [f"{n}/5 members written" for n in (2, 4, 5)]
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_streamed_job_failure_leaves_no_store(
    data_root: Path, tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_iter = Steps.iter_members

    def fail_after_first_chunk(self: Steps, *args: object, **kwargs: object) -> Iterator[tuple[slice, torch.Tensor]]:
        chunks = real_iter(self, *args, **kwargs)
        yield next(chunks)
        raise RuntimeError("out of memory in chunk 2")

    monkeypatch.setattr(Steps, "iter_members", fail_after_first_chunk)
    settings = Settings(data_root=None, store_root=tmp_path / "store")
    executor = LocalExecutor(settings)
    inputs = tuple(str(p) for p in mch_files(data_root, 20, 3))
    spec = NowcastSpec(inputs=inputs, method="steps", members=4, lead_steps=1)
    with pytest.raises(JobError, match="RuntimeError: out of memory in chunk 2"):
        executor.submit(spec)
    (row,) = executor.catalog.list_runs().itertuples()
    assert row.status == "failed" and "out of memory in chunk 2" in row.error
    assert list(settings.runs_dir.iterdir()) == []
