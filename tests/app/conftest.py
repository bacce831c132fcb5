"""Fixtures of the app tests: a small real store, and Streamlit caches reset between tests.

The store is built once per session through the storage and job APIs from real sample data:

* two stations of the Wipp-valley Foehn pair with 20 days of hourly observations (April 2016);
* two "nowcasts" of the MeteoSwiss 2015-05-15 event from 16:30 UTC, 15 minutes at 5-minute leads,
  made from the real radar frames: Eulerian persistence (the 16:30 frame repeated) and the same
  frame shifted 3 km east (a crude advection), written with ``write_run_store`` and catalogued;
* their scores against the observed frames through the verification pipeline (as the demo does),
  with RadarQA-style reports for the shifted run, and a hand-written report for persistence;
* a regional run of the blizzard sea-level pressure through the real ``downscale`` job kind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.config import Settings


def _nowcast_store(settings: Settings, run_id: str, model: str, shift_px: int) -> None:
    from engine import datasets
    from engine.readers import open_any
    from engine.storage.catalog import Catalog
    from engine.storage.zarr_store import write_run_store

    meta = datasets.get("mch-2015-05-15")
    # 16:30 UTC is the 10th frame after 15:45 (5-minute steps).
    frame = open_any(meta.paths(settings.data_root)[9], format=meta.format)
    init = pd.Timestamp(frame["time"].values[0])
    assert init == pd.Timestamp("2015-05-15T16:30")
    field = frame["precip_rate"].isel(time=0)
    if shift_px:
        field = field.copy(data=np.roll(field.values, shift_px, axis=-1))
    leads = pd.to_timedelta([5, 10, 15], unit="min")
    data = np.stack([field.values] * len(leads))[None]
    ds = (
        field.expand_dims(init_time=[init.to_datetime64()], lead_time=leads.values)
        .copy(data=data)
        .to_dataset(name="precip_rate")
    )
    ds = ds.assign_coords(valid_time=(("init_time", "lead_time"), (init + leads).values[None]))
    ds["crs"] = frame["crs"]
    ds["precip_rate"].attrs = {**frame["precip_rate"].attrs, "grid_mapping": "crs"}
    path = settings.runs_dir / f"{run_id}.zarr"
    write_run_store(
        ds,
        path,
        provenance={
            "model": model,
            "init_time": init,
            "inputs": ["mch-2015-05-15"],
            "parameters": {"inputs": ["mch-2015-05-15"]},
            "device": "cpu",
            "compute_seconds": 0.0,
            "model_version": "test",
        },
    )
    Catalog(settings.catalog_path).register_run(
        run_id, model, "nowcast", "mch", init, {"inputs": ["mch-2015-05-15"]}, status="succeeded", path=path
    )


def build_test_store(store: Path, data_root: Path) -> Settings:
    """Build the small store described in the module docstring under ``store``."""
    from app import demo
    from engine.jobs.downscale_job import DownscaleSpec
    from engine.jobs.runner import LocalExecutor
    from engine.storage.catalog import Catalog

    settings = Settings(data_root=data_root, store_root=store)
    plan = demo.DemoPlan(
        stations=[
            {"dataset": "foehn-ellboegen", "station_id": "ellboegen", "start": "2016-04-01", "end": "2016-04-20"},
            {"dataset": "foehn-sattelberg", "station_id": "sattelberg", "start": "2016-04-01", "end": "2016-04-20"},
        ],
        runs=[],
        scores=[
            {"run": "test-persistence", "against": "mch-2015-05-15", "thresholds": [1.0], "windows": [5]},
            {"run": "test-shifted", "against": "mch-2015-05-15", "thresholds": [1.0], "windows": [5], "quality": True},
        ],
    )
    _nowcast_store(settings, "test-persistence", "nowcast/persistence", 0)
    _nowcast_store(settings, "test-shifted", "nowcast/shifted", 3)
    report = demo.build(settings, plan=plan)
    assert not report.failed, report.failed
    catalog = Catalog(settings.catalog_path)
    catalog.insert_quality_report(
        "test-persistence",
        scope="sequence",
        reference="dataset:mch-2015-05-15",
        grade=3.0,
        ratings={"coverage": {"rating": 4}, "location": {"rating": 3}, "intensity": {"rating": 2}},
        text="Persistence keeps the rain area (coverage 4/5) but the cells move on (location 3/5).",
    )
    LocalExecutor(settings, catalog).submit(
        DownscaleSpec(
            input="blizzard-1996",
            variable="msl",
            resolution=0.5,
            domain=(30.0, 45.0, -110.0, -95.0),
            method="bilinear",
            device="cpu",
        ),
        run_id="test-regional-msl",
    )
    return settings


@pytest.fixture(scope="session")
def app_store(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Settings:
    """The small real store, built once per session."""
    return build_test_store(tmp_path_factory.mktemp("store"), data_root)


@pytest.fixture()
def app_env(app_store: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Point the app at the test store and start every test with empty Streamlit caches."""
    import streamlit as st

    monkeypatch.setenv("METEOLENS_STORE", str(app_store.store_root))
    monkeypatch.setenv("METEOLENS_DATA", str(app_store.data_root))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield app_store
    st.cache_data.clear()
    st.cache_resource.clear()
