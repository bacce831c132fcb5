"""Run stores: exact round trip, provenance, chunking, atomicity, overwrite rules, errors."""

from __future__ import annotations

import json
import os
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from engine.coords import attach_projection
from engine.errors import StorageError
from engine.lexicon import attrs_for
from engine.storage import zarr_store
from engine.storage.zarr_store import (
    PROVENANCE_KEYS,
    open_run_store,
    read_provenance,
    remove_stale_temporaries,
    write_run_store,
)

# ETRS89 Lambert azimuthal equal-area (EPSG:3035), the grid of European radar composites,
# around the Alps and cut down to a few kilometres so the test stays tiny.
LAEA_EUROPE = "EPSG:3035"


def make_forecast(n_lead: int = 3, n_member: int = 2, ny: int = 6, nx: int = 7, seed: int = 0) -> xr.Dataset:
    """A nowcast-like ensemble on a projected grid: every feature a run store must preserve."""
    rng = np.random.default_rng(seed)
    init = pd.to_datetime(["2015-05-15T16:00:00.000000123"])  # nanoseconds: exactness, not just seconds
    lead = pd.to_timedelta(np.arange(n_lead) * 5, unit="min")
    rain = rng.gamma(0.5, 2.0, size=(1, n_lead, n_member, ny, nx)).astype("float32")
    rain[0, 0, 0, 0, 0] = np.nan  # missing radar pixel
    t2m = (280 + rng.normal(size=(1, n_lead, ny, nx))).astype("float32")
    ds = xr.Dataset(
        {
            "precip_rate": (("init_time", "lead_time", "member", "y", "x"), rain, attrs_for("precip_rate")),
            "t2m": (("init_time", "lead_time", "y", "x"), t2m, attrs_for("t2m")),
        },
        coords={"init_time": init, "lead_time": lead, "member": np.arange(n_member, dtype="int32")},
        attrs={
            "title": "test nowcast",
            "method": {"name": "steps", "cascade_levels": np.int64(6), "ar_order": (2,), "scale": np.float32(1.5)},
            "thresholds": [0.1, 1.0, 10.0],
            "missing_fraction": float("nan"),
        },
    )
    ds = ds.assign_coords(valid_time=ds.init_time + ds.lead_time)
    x = 4_300_000.0 + 1000.0 * np.arange(nx)
    y = 2_650_000.0 - 1000.0 * np.arange(ny)
    return attach_projection(ds, LAEA_EUROPE, x=x, y=y)


PROVENANCE = {
    "model": "nowcast/steps",
    "model_version": "1.0",
    "parameters": {"n_steps": 3, "inputs": ("a.gif", "b.gif"), "threshold": np.float64(0.1)},
    "init_time": np.datetime64("2015-05-15T16:00"),
    "inputs": [Path("/data/a.gif"), Path("/data/b.gif")],
    "device": "cpu",
    "compute_seconds": 1.25,
}


@pytest.fixture
def forecast() -> xr.Dataset:
    return make_forecast()


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_round_trip_is_exact(tmp_path: Path, forecast: xr.Dataset) -> None:
    before = forecast.copy(deep=True)
    path = write_run_store(forecast, tmp_path / "runs" / "r1.zarr", provenance=PROVENANCE)
    # The caller's dataset is untouched: same values, attributes (numpy values kept) and no provenance.
    xr.testing.assert_identical(forecast, before)
    assert isinstance(forecast.attrs["method"]["cascade_levels"], np.int64) and "model" not in forecast.attrs
    assert path == (tmp_path / "runs" / "r1.zarr").absolute()
    back = open_run_store(path)
    # Lazy: nothing is read until asked for.
    assert isinstance(back["precip_rate"].data, da.Array)
    back = back.load()
    xr.testing.assert_equal(back.drop_attrs(), forecast.drop_attrs())
    for name in forecast.variables:
        assert back[name].dtype == forecast[name].dtype, name
    # Times to the nanosecond, and valid_time stays a coordinate (not a data variable).
    np.testing.assert_array_equal(back.init_time.values, forecast.init_time.values)
    np.testing.assert_array_equal(back.lead_time.values, forecast.lead_time.values)
    np.testing.assert_array_equal(back.valid_time.values, forecast.valid_time.values)
    assert "valid_time" in back.coords and {"lat", "lon"} <= set(back.coords)
    assert back.lat.dims == ("y", "x")
    # The CF grid mapping survives: variable, WKT, and the pointer on each data variable.
    assert back.crs.attrs["crs_wkt"] == forecast.crs.attrs["crs_wkt"]
    assert back.crs.attrs["grid_mapping_name"] == forecast.crs.attrs["grid_mapping_name"]
    assert back.precip_rate.attrs["grid_mapping"] == "crs"
    assert back.precip_rate.attrs["units"] == "mm h-1"
    assert np.isnan(back.precip_rate.values[0, 0, 0, 0, 0])


def test_dict_and_list_attributes_are_strict_json(tmp_path: Path, forecast: xr.Dataset) -> None:
    path = write_run_store(forecast, tmp_path / "r.zarr", provenance=PROVENANCE)
    attrs = open_run_store(path).attrs
    assert attrs["method"] == {"name": "steps", "cascade_levels": 6, "ar_order": [2], "scale": 1.5}
    assert attrs["thresholds"] == [0.1, 1.0, 10.0]
    assert attrs["missing_fraction"] == "NaN"
    # The metadata file itself parses as strict JSON (no bare NaN tokens).
    text = (path / "zarr.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_provenance(tmp_path: Path, forecast: xr.Dataset) -> None:
    path = write_run_store(forecast, tmp_path / "r.zarr", provenance={**PROVENANCE, "run_id": "r"})
    prov = read_provenance(path)
    assert set(PROVENANCE_KEYS) <= set(prov)
    assert prov["run_id"] == "r"
    assert prov["model"] == "nowcast/steps"
    assert prov["parameters"] == {"n_steps": 3, "inputs": ["a.gif", "b.gif"], "threshold": 0.1}
    assert prov["inputs"] == ["/data/a.gif", "/data/b.gif"]
    assert pd.Timestamp(prov["init_time"]) == pd.Timestamp("2015-05-15T16:00")
    assert prov["compute_seconds"] == 1.25
    assert {"meteolens", "python", "numpy", "xarray", "zarr"} <= set(prov["software"])
    created = pd.Timestamp(prov["created"])
    assert abs(pd.Timestamp.now(tz="UTC") - created) < pd.Timedelta("5min")
    # Provenance is also visible as plain attributes of the opened dataset.
    assert open_run_store(path).attrs["model"] == "nowcast/steps"


def test_chunks_hold_one_lead_time_tiled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Shrink the thresholds instead of building a 2048² grid: the rule is what is tested.
    monkeypatch.setattr(zarr_store, "MAX_TILE", 4)
    monkeypatch.setattr(zarr_store, "_SMALL", 100)
    ds = make_forecast(n_lead=3, n_member=2, ny=6, nx=10)
    path = write_run_store(ds, tmp_path / "r.zarr", provenance=PROVENANCE)
    back = open_run_store(path)
    assert back.precip_rate.encoding["chunks"] == (1, 1, 1, 4, 4)
    assert back.t2m.encoding["chunks"] == (1, 1, 4, 4)
    # 2-D latitude has 60 points, under the "small" threshold: one chunk, not 6 tiny files.
    assert back.lat.encoding["chunks"] == (6, 10)


def test_dask_input_with_other_chunks(tmp_path: Path, forecast: xr.Dataset) -> None:
    lazy = forecast.chunk({"y": 4, "x": 3, "lead_time": 2})
    path = write_run_store(lazy, tmp_path / "r.zarr", provenance=PROVENANCE)
    xr.testing.assert_equal(open_run_store(path).load().drop_attrs(), forecast.drop_attrs())


def test_existing_store_is_not_overwritten(tmp_path: Path, forecast: xr.Dataset) -> None:
    path = write_run_store(forecast, tmp_path / "r.zarr", provenance=PROVENANCE)
    with pytest.raises(StorageError, match=r"r\.zarr: a run store already exists"):
        write_run_store(forecast * 2, path, provenance=PROVENANCE)
    xr.testing.assert_equal(open_run_store(path).load().drop_attrs(), forecast.drop_attrs())
    assert hidden_leftovers(tmp_path) == []


def test_overwrite_replaces_atomically(tmp_path: Path, forecast: xr.Dataset) -> None:
    path = write_run_store(forecast, tmp_path / "r.zarr", provenance=PROVENANCE)
    doubled = forecast.copy()
    doubled["t2m"] = forecast.t2m * 2
    write_run_store(doubled, path, provenance={**PROVENANCE, "model_version": "2.0"}, overwrite=True)
    back = open_run_store(path).load()
    np.testing.assert_array_equal(back.t2m.values, doubled.t2m.values)
    assert read_provenance(path)["model_version"] == "2.0"
    assert hidden_leftovers(tmp_path) == []
    # ... but only run stores are replaced, never a folder given by mistake.
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "todo.txt").write_text("keep me")
    with pytest.raises(StorageError, match="notes: exists and is not a zarr run store"):
        write_run_store(forecast, precious, provenance=PROVENANCE, overwrite=True)
    assert (precious / "todo.txt").read_text() == "keep me"


def _failing(ds: xr.Dataset, exc: BaseException) -> xr.Dataset:
    """A dask-backed copy whose last lead time raises ``exc`` when computed, i.e. mid-write."""
    n_lead = ds.sizes["lead_time"]

    def block(x: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        start = block_info[0]["array-location"][1][0] if block_info else 0
        if start == n_lead - 1:
            raise exc
        return x

    lazy = ds.chunk({"lead_time": 1})
    lazy["t2m"] = lazy.t2m.copy(data=lazy.t2m.data.map_blocks(block, dtype="float32"))
    return lazy


def test_failure_midway_leaves_nothing(tmp_path: Path, forecast: xr.Dataset) -> None:
    target = tmp_path / "runs" / "r.zarr"
    with pytest.raises(StorageError, match=r"r\.zarr: writing the run store failed: OSError: disk full") as info:
        write_run_store(_failing(forecast, OSError("disk full")), target, provenance=PROVENANCE)
    assert isinstance(info.value.__cause__, OSError)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_interrupt_midway_leaves_nothing(tmp_path: Path, forecast: xr.Dataset) -> None:
    target = tmp_path / "r.zarr"
    with pytest.raises(KeyboardInterrupt):
        write_run_store(_failing(forecast, KeyboardInterrupt()), target, provenance=PROVENANCE)
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_old_store(tmp_path: Path, forecast: xr.Dataset) -> None:
    path = write_run_store(forecast, tmp_path / "r.zarr", provenance=PROVENANCE)
    with pytest.raises(StorageError):
        write_run_store(_failing(forecast, OSError("disk full")), path, provenance=PROVENANCE, overwrite=True)
    xr.testing.assert_equal(open_run_store(path).load().drop_attrs(), forecast.drop_attrs())
    assert hidden_leftovers(tmp_path) == []


def test_failure_while_swapping_restores_old_store(
    tmp_path: Path, forecast: xr.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_run_store(forecast, tmp_path / "r.zarr", provenance=PROVENANCE)
    real_rename = os.rename

    def rename(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        if Path(dst) == path and ".tmp-" in Path(src).name:
            raise OSError("simulated crash during swap")
        real_rename(src, dst)

    monkeypatch.setattr(zarr_store.os, "rename", rename)
    with pytest.raises(StorageError, match="simulated crash"):
        write_run_store(forecast * 3, path, provenance=PROVENANCE, overwrite=True)
    xr.testing.assert_equal(open_run_store(path).load().drop_attrs(), forecast.drop_attrs())
    assert hidden_leftovers(tmp_path) == []


def test_bad_inputs_are_storage_errors(tmp_path: Path, forecast: xr.Dataset) -> None:
    with pytest.raises(StorageError, match="expected an xarray.Dataset"):
        write_run_store(forecast.t2m, tmp_path / "a.zarr", provenance=PROVENANCE)  # type: ignore[arg-type]
    with pytest.raises(StorageError, match=r"a\.zarr: an attribute cannot be stored as JSON.*object"):
        write_run_store(forecast.assign_attrs(handle=object()), tmp_path / "a.zarr", provenance=PROVENANCE)
    assert list(tmp_path.iterdir()) == []


def test_open_missing_or_corrupt_store(tmp_path: Path, forecast: xr.Dataset) -> None:
    with pytest.raises(StorageError, match=r"nope\.zarr: no run store here"):
        open_run_store(tmp_path / "nope.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(StorageError, match=r"empty\.zarr: not a zarr v3 run store"):
        open_run_store(tmp_path / "empty.zarr")
    path = write_run_store(forecast, tmp_path / "r.zarr", provenance=PROVENANCE)
    (path / "zarr.json").write_text("{ truncated")
    with pytest.raises(StorageError, match=r"r\.zarr: cannot open run store"):
        open_run_store(path)
    with pytest.raises(StorageError, match=r"r\.zarr: cannot read run store metadata"):
        read_provenance(path)


def test_plain_zarr_has_no_provenance(tmp_path: Path, forecast: xr.Dataset) -> None:
    forecast.drop_attrs().to_zarr(tmp_path / "plain.zarr", zarr_format=3, consolidated=False)
    with pytest.raises(StorageError, match="without meteolens provenance"):
        read_provenance(tmp_path / "plain.zarr")


def test_remove_stale_temporaries(tmp_path: Path, forecast: xr.Dataset) -> None:
    keep = write_run_store(forecast, tmp_path / "r.zarr", provenance=PROVENANCE)
    stale = tmp_path / ".x.zarr.tmp-0123abcd"
    fresh = tmp_path / ".y.zarr.tmp-4567cdef"
    busy = tmp_path / ".z.zarr.tmp-89abcdef"  # old folder, but a chunk was written just now
    for folder in (stale, fresh, busy):
        (folder / "t2m").mkdir(parents=True)
        (folder / "t2m" / "c0").write_bytes(b"chunk")
    two_hours_ago = time.time() - 7200
    for p in (stale, stale / "t2m", stale / "t2m" / "c0", busy, busy / "t2m"):
        os.utime(p, (two_hours_ago, two_hours_ago))
    assert remove_stale_temporaries(tmp_path, min_age_s=3600) == [stale]
    assert fresh.exists() and busy.exists() and keep.exists() and not stale.exists()


@pytest.mark.filterwarnings("error")
def test_station_series_with_string_ids(tmp_path: Path) -> None:
    """Point forecasts keyed by station id strings round-trip, without zarr's string-dtype warning."""
    ds = xr.Dataset(
        {"t2m": (("lead_time", "station"), np.array([[271.5, 268.0], [272.0, 267.5]], "float32"), attrs_for("t2m"))},
        coords={
            "lead_time": pd.to_timedelta([0, 6], unit="h"),
            "station": np.array(["ellboegen", "sattelberg"], dtype=object),
            "elevation": ("station", np.array([1080.0, 2107.0])),
        },
    )
    path = write_run_store(ds, tmp_path / "points.zarr", provenance=PROVENANCE)
    back = open_run_store(path).load()
    assert back.station.values.tolist() == ["ellboegen", "sattelberg"]
    xr.testing.assert_equal(back.drop_attrs(), ds)


# -- streamed writes (blocks) ---------------------------------------------------------------------


def streamed(ds: xr.Dataset, dim: str = "member", step: int = 1) -> tuple[xr.Dataset, list[tuple[dict, xr.Dataset]]]:
    """``ds`` as a template (``precip_rate`` a never-computed placeholder) and its blocks along ``dim``."""
    rate = ds["precip_rate"]
    template = ds.assign(precip_rate=rate.copy(data=da.empty(rate.shape, dtype=rate.dtype, chunks=-1)))
    blocks = [
        ({dim: slice(i, i + step)}, xr.Dataset({"precip_rate": rate.isel({dim: slice(i, i + step)}).variable}))
        for i in range(0, ds.sizes[dim], step)
    ]
    return template, blocks


@pytest.mark.parametrize(("dim", "step"), [("member", 1), ("lead_time", 2), ("x", 3)])
def test_streamed_write_equals_whole_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dim: str, step: int
) -> None:
    monkeypatch.setattr(zarr_store, "_SMALL", 100)  # several chunks, as on a real grid
    ds = make_forecast(n_lead=3, n_member=3, ny=6, nx=10)
    prov = {**PROVENANCE, "created": "2020-01-01T00:00:00Z"}
    whole = write_run_store(ds, tmp_path / "whole.zarr", provenance=prov)
    template, blocks = streamed(ds, dim, step)
    path = write_run_store(template, tmp_path / "streamed.zarr", provenance=prov, blocks=iter(blocks))
    xr.testing.assert_identical(open_run_store(path).load(), open_run_store(whole).load())
    # The same store, metadata file for metadata file (not just the same values).
    for meta in sorted(p.relative_to(whole) for p in whole.rglob("zarr.json")):
        assert json.loads((path / meta).read_text()) == json.loads((whole / meta).read_text()), meta
    assert hidden_leftovers(tmp_path) == []


def test_streamed_provenance_is_taken_after_the_last_block(tmp_path: Path, forecast: xr.Dataset) -> None:
    events: list[str] = []
    template, blocks = streamed(forecast)

    def produce() -> Iterator[tuple[dict, xr.Dataset]]:
        for block in blocks:
            events.append("block")
            yield block

    def provenance() -> dict:
        events.append("provenance")
        return {**PROVENANCE, "compute_seconds": 7.5}

    path = write_run_store(template, tmp_path / "r.zarr", provenance=provenance, blocks=produce())
    assert events == ["block", "block", "provenance"]
    assert read_provenance(path)["compute_seconds"] == 7.5
    assert open_run_store(path).attrs["title"] == "test nowcast"


def test_streamed_write_holds_one_block(tmp_path: Path) -> None:
    # The writer drops each block before asking for the next: memory is one block, whatever the
    # number of blocks (checked with weak references, not by measuring memory).
    ds = make_forecast(n_lead=2, n_member=4)
    template, blocks = streamed(ds)
    alive: list[int] = []

    def produce() -> Iterator[tuple[dict, xr.Dataset]]:
        previous = None
        for region, block in reversed(blocks):  # any order: the regions say where blocks go
            alive.append(previous is not None and previous() is not None)
            values = block["precip_rate"].values.copy()  # fresh memory, referenced by this block only
            previous = weakref.ref(values)
            yield region, xr.Dataset({"precip_rate": (block["precip_rate"].dims, values)})
            del values

    path = write_run_store(template, tmp_path / "r.zarr", provenance=PROVENANCE, blocks=produce())
    assert alive == [False] * 4
    xr.testing.assert_equal(open_run_store(path).load().drop_attrs(), ds.drop_attrs())


@pytest.mark.parametrize("exc", [ValueError("model diverged"), KeyboardInterrupt()])
def test_streamed_failure_of_the_producer_passes_unchanged_and_leaves_nothing(
    tmp_path: Path, forecast: xr.Dataset, exc: BaseException
) -> None:
    template, blocks = streamed(forecast)

    def produce() -> Iterator[tuple[dict, xr.Dataset]]:
        yield blocks[0]
        raise exc

    with pytest.raises(type(exc)) as info:
        write_run_store(template, tmp_path / "r.zarr", provenance=PROVENANCE, blocks=produce())
    assert info.value is exc  # the job's own error, not a StorageError around it
    assert list(tmp_path.iterdir()) == []


def test_streamed_failure_keeps_the_old_store(tmp_path: Path, forecast: xr.Dataset) -> None:
    path = write_run_store(forecast, tmp_path / "r.zarr", provenance=PROVENANCE)
    template, blocks = streamed(forecast * 2)
    with pytest.raises(StorageError, match="did not fill every value"):
        write_run_store(template, path, provenance=PROVENANCE, blocks=blocks[:1], overwrite=True)
    xr.testing.assert_equal(open_run_store(path).load().drop_attrs(), forecast.drop_attrs())
    assert hidden_leftovers(tmp_path) == []


def test_streamed_bad_blocks_are_storage_errors(tmp_path: Path, forecast: xr.Dataset) -> None:
    template, blocks = streamed(forecast)
    target = tmp_path / "r.zarr"
    with pytest.raises(StorageError, match=r"r\.zarr: the blocks did not fill every value \(precip_rate: 126 of 252 "):
        write_run_store(template, target, provenance=PROVENANCE, blocks=blocks[:1])
    with pytest.raises(StorageError, match=r"r\.zarr: a block writes t2m: not a placeholder variable"):
        other = xr.Dataset({"t2m": forecast["t2m"].variable})
        write_run_store(template, target, provenance=PROVENANCE, blocks=[({}, other)])
    with pytest.raises(StorageError, match=r"r\.zarr: writing the run store failed: ValueError: .*no_such_dim"):
        write_run_store(template, target, provenance=PROVENANCE, blocks=[({"no_such_dim": slice(0, 1)}, blocks[0][1])])
    with pytest.raises(StorageError, match=r"r\.zarr: blocks given but the dataset has no placeholder"):
        write_run_store(forecast, target, provenance=PROVENANCE, blocks=blocks)
    assert list(tmp_path.iterdir()) == []
