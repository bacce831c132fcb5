"""Station-comparison cases of the regional engine, end to end on the real sample data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app import demo
from app.cases_regional import (
    ASOS_TOLERANCE,
    CASES,
    GRAVITY,
    STANDARD_LAPSE,
    CaseError,
    comparison_table,
    era5_t2m_proxy,
    run_case,
)
from app.cli import main
from engine import datasets
from engine.config import Settings
from engine.storage.catalog import Catalog
from verification.stations import match_to_times

ASOS = "pythia-datasets/data/jan-17-co-asos.txt.xz"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Settings:
    return Settings(data_root=data_root, store_root=tmp_path_factory.mktemp("cases"))


@pytest.fixture(scope="module")
def wipp(settings: Settings):
    return run_case("wipp-valley-2017-01", settings)


@pytest.fixture(scope="module")
def front_range(settings: Settings):
    return run_case("front-range-2017-01", settings)


def test_proxy_formula_on_the_era5_file(data_root: Path) -> None:
    era5 = datasets.open_dataset("era5-ensemble-2017-01", data_root)
    zc = np.full((era5.sizes["lat"], era5.sizes["lon"]), 500.0)
    zc[10, 3] = 1500.0
    proxy = era5_t2m_proxy(era5, zc)
    assert proxy["t2m"].dims == ("init_time", "lead_time", "lat", "lon")
    assert pd.Timestamp(proxy["init_time"].values[0]) == pd.Timestamp("2017-01-01")
    assert list(pd.to_timedelta(proxy["lead_time"].values) / pd.Timedelta(hours=1)) == [0, 12, 24, 36]
    t850 = float(era5["t850"].isel(time=2, lat=10, lon=3).mean())
    h850 = float(era5["z850"].isel(time=2, lat=10, lon=3).mean()) / GRAVITY
    assert 1000 < h850 < 1700  # the 850 hPa level in winter, northern midlatitudes
    expected = t850 + STANDARD_LAPSE * (h850 - 1500.0)
    assert float(proxy["t2m"].isel(init_time=0, lead_time=2, lat=10, lon=3)) == pytest.approx(expected, abs=1e-3)
    assert pd.Timestamp(proxy["valid_time"].values[0, 2]) == pd.Timestamp("2017-01-02")


def test_proxy_bad_inputs(data_root: Path) -> None:
    era5 = datasets.open_dataset("era5-ensemble-2017-01", data_root)
    with pytest.raises(CaseError, match="lacks t850"):
        era5_t2m_proxy(era5.drop_vars("t850"), np.zeros((61, 120)))
    with pytest.raises(CaseError, match=r"shape \(10, 10\)"):
        era5_t2m_proxy(era5, np.zeros((10, 10)))


def test_asos_reports_nearest_the_analysis_times(data_root: Path) -> None:
    # what the front-range case verifies against: VerifyOptions(time_tolerance=ASOS_TOLERANCE)
    # matches each station with verification.stations.match_to_times
    ds = datasets.open_dataset("asos-colorado-2017-01", data_root)
    raw = pd.read_csv(data_root / ASOS, sep="\t", na_values="M", skipinitialspace=True)
    raw.columns = [c.strip() for c in raw.columns]
    target = [np.datetime64("2017-01-01T00:00"), np.datetime64("2017-01-01T12:00")]
    got = match_to_times(ds["t2m"], target, tolerance=ASOS_TOLERANCE)
    # LMO reports at :13, :34, :54 past the hour: 00:00 is represented by the 00:13 report
    lmo = raw[(raw["station"] == "LMO") & (raw["valid"] == "2017-01-01 00:13")]["tmpc"].item()
    assert float(got.sel(station="LMO", time=target[0])) == pytest.approx(lmo + 273.15, abs=1e-4)
    assert got["obs_time"].sel(station="LMO", time=target[0]).item() == pd.Timestamp("2017-01-01 00:13").value
    assert float(got["lat"].sel(station="FNL")) == pytest.approx(40.44969)
    # FNL's 12:00 report is missing ("M"): its valid 11:55 report is used, not the NaN
    assert np.isnan(float(ds["t2m"].sel(station="FNL", time=target[1])))
    assert got["obs_time"].sel(station="FNL", time=target[1]).item() == pd.Timestamp("2017-01-01 11:55").value
    # a tolerance shorter than the gap to the nearest report gives NaN, not a far-off value
    tight = match_to_times(ds["t2m"], target, tolerance="5min")
    assert np.isnan(float(tight.sel(station="LMO", time=target[0])))
    assert np.isfinite(float(tight.sel(station="FNL", time=target[1])))  # 11:55 is 5 min away (inclusive)


def test_wipp_valley_case(wipp, settings: Settings) -> None:
    catalog = Catalog(settings.catalog_path)
    for run_id in wipp.run_ids.values():
        points = catalog.point_forecasts(run_id)
        assert set(points["station_id"]) == {"ellboegen", "sattelberg"}
        assert len(points) == 2 * 3  # two stations, analyses at +0, +12, +24 h
        scores = catalog.scores(run_id)
        per_station = scores[scores["region"].fillna("").str.startswith("station:")]
        assert set(per_station["region"]) == {"station:ellboegen", "station:sattelberg"}
        assert set(per_station["metric"]) == {"bias", "mae", "rmse"}
    table = wipp.table.set_index(["station", "lead_time"])
    means = wipp.table[wipp.table["lead_time"].isna()].set_index("station")
    # measured on this data: the terrain removes most of the 3 deg model's warm bias at both stations
    assert (means["mae_downscaled"] < means["mae_bilinear"]).all()
    assert (means["bias_bilinear"] > 3.0).all()
    assert len(table) == 2 * 3 + 2
    # Foehn: the pair's potential-temperature difference at the three analysis times, no mixture fit
    assert list(wipp.foehn.columns) == ["dtheta_lapse_rate", "dtheta_bilinear", "dtheta_observed"]
    assert len(wipp.foehn) == 3 and np.isfinite(wipp.foehn.to_numpy()).all()
    assert any("mixture model not fitted" in n for n in wipp.notes)


def test_front_range_case(front_range, settings: Settings, data_root: Path) -> None:
    catalog = Catalog(settings.catalog_path)
    assert any("0CO" in n for n in front_range.notes)
    down = catalog.point_forecasts(front_range.run_ids["lapse_rate"])
    assert set(down["station_id"]) == {"FNL", "LMO", "1V6"} and len(down) == 3 * 4
    # the score is the point forecast minus the report nearest the analysis time (FNL: 11:55)
    obs = match_to_times(datasets.open_dataset("asos-colorado-2017-01", data_root)["t2m"],
                         [np.datetime64("2017-01-01T12:00")], tolerance=ASOS_TOLERANCE)
    fnl = down[(down["station_id"] == "FNL") & (pd.to_timedelta(down["lead_time"]) == pd.Timedelta(hours=12))]
    bias = front_range.table.set_index(["station", "lead_time"]).loc[("FNL", pd.Timedelta(hours=12)), "bias_downscaled"]
    assert bias == pytest.approx(fnl["value"].item() - float(obs.sel(station="FNL").item()), abs=1e-3)
    # verified through verify_run: all-station scores, and the persistence baseline of the downscaled run
    scores = catalog.scores(front_range.run_ids["lapse_rate"])
    assert set(scores["reference"]) == {"dataset:asos-colorado-2017-01"}
    assert len(scores[scores["region"].isna()]) == 3 * 4  # bias, mae, rmse at four analysis times
    assert len(catalog.scores(front_range.run_ids["lapse_rate"] + ".persistence"))
    assert any("scored against dataset:asos-colorado-2017-01" in n for n in front_range.notes)
    per = front_range.table.dropna(subset=["lead_time"])
    assert np.allclose(per["mae_downscaled"], per["bias_downscaled"].abs())  # one pair per station and lead
    # the stations' reports of the case's days are in the catalogue beside the point forecasts
    assert len(catalog.observations("FNL", "t2m")) > 100
    assert catalog.stations().set_index("station_id").loc["LMO", "name"].startswith("Vance Brand")


def test_cases_in_demo_and_case_study(front_range, wipp, settings: Settings) -> None:
    plan = demo.load_plan()
    assert [c["name"] for c in plan.cases] == list(CASES)
    again = demo.build(settings, plan=demo.DemoPlan([], [], [], plan.cases))
    assert not again.failed and len(again.skipped) == 2  # both built above: nothing redone
    case_file = Path(demo.DEMO_FILE).parent / "cases" / "front-range-2017-01.toml"
    text = case_file.read_text()
    assert "run:front-range-2017-01-downscaled" in text and 'station = "FNL"' in text


def test_cli_and_bad_input(front_range, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["case", "front-range-2017-01", "--store", str(settings.store_root)]) == 0
    out = capsys.readouterr().out
    assert "FNL" in out and "mean" in out and "0CO" in out
    assert main(["case", "nowhere", "--store", str(settings.store_root)]) == 2
    assert "unknown case 'nowhere'" in capsys.readouterr().err
    with pytest.raises(CaseError, match="available: front-range-2017-01, wipp-valley-2017-01"):
        run_case("nowhere", settings)
    with pytest.raises(CaseError, match="no station scores"):
        comparison_table(Catalog(settings.store_root / "empty.duckdb"), CASES["wipp-valley-2017-01"])
