"""The verification pipeline on real sample data: radar nowcasts, a global z500 run, a station.

The nowcast runs are built here from four MeteoSwiss frames of 2015-05-15 (16:30 to 16:45 UTC):
an "extrapolation-like" run (the observed frames at the valid times, shifted 3 km east), and a
three-member ensemble (shifts of -2, 0, +2 km). Every score the pipeline writes must equal a
direct call of the metric function on the same fields, exactly: the pipeline only chooses what
to compare. The reference is given as files (four frames) to keep the tests fast; the CLI tests
use the dataset name.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj
import pytest
import xarray as xr
from verification_factories import make_rain

from engine import datasets
from engine.config import Settings
from engine.errors import CoordError, UnknownNameError
from engine.readers import open_any
from engine.storage.catalog import Catalog, UnknownRunError
from engine.storage.zarr_store import write_run_store
from verification.metrics import (
    acc,
    bias,
    crps_ensemble,
    csi,
    ets,
    far,
    frequency_bias,
    fss,
    latitude_weights,
    mae,
    pod,
    rmse,
    spread_skill,
)
from verification.pipeline import (
    VerificationError,
    VerifyOptions,
    baseline_run_id,
    regrid_latlon,
    score_fields,
    summary_table,
    verify_run,
    windows_from_km,
)

INIT = pd.Timestamp("2015-05-15T16:30")
LEADS = pd.to_timedelta([5, 10, 15], unit="min")


def _value(scores: pd.DataFrame, run_id: str, metric: str, lead: pd.Timedelta, threshold=None, scale=None) -> float:
    sel = (scores["run_id"] == run_id) & (scores["metric"] == metric) & (scores["lead_time"] == lead)
    sel &= scores["threshold"].isna() if threshold is None else scores["threshold"] == threshold
    sel &= scores["scale"].isna() if scale is None else scores["scale"] == scale
    sel &= scores["region"].isna()
    rows = scores[sel]
    assert len(rows) == 1, (run_id, metric, lead, threshold, scale, len(rows))
    return float(rows["value"].iloc[0])


def write_nowcast(settings: Settings, run_id: str, fields: list[xr.DataArray], template: xr.Dataset) -> None:
    """Store ``fields`` (one per lead, each (y, x) or (member, y, x)) as a catalogued nowcast run."""
    lead_fields = xr.concat(fields, dim=xr.DataArray(LEADS.values, dims=["lead_time"], name="lead_time"))
    if "member" in lead_fields.dims:
        lead_fields = lead_fields.transpose("lead_time", "member", "y", "x")
    ds = lead_fields.to_dataset(name="precip_rate")
    ds = ds.assign_coords(init_time=INIT.to_datetime64(), valid_time=("lead_time", (INIT + LEADS).values))
    ds["crs"] = template["crs"]
    ds["precip_rate"].attrs = {**template["precip_rate"].attrs, "grid_mapping": "crs"}
    path = settings.runs_dir / f"{run_id}.zarr"
    write_run_store(ds, path, provenance={"model": "test", "init_time": INIT})
    Catalog(settings.catalog_path).register_run(run_id, "test-shift", "nowcast", "mch", INIT, {}, "succeeded", path)


def _synthetic_frames(folder: Path) -> list[Path]:
    """Four tiny CF netCDF radar frames (16:30 to 16:45): rain cells moving 2 km east per 5 min."""
    folder.mkdir(parents=True, exist_ok=True)
    rain = make_rain(ny=48, nx=64, seed=3, n_cells=7)
    crs = pyproj.CRS("EPSG:3035").to_cf()
    y = 2_600_000.0 + 1000.0 * np.arange(48)[::-1]
    x = 4_100_000.0 + 1000.0 * np.arange(64)
    paths = []
    for k in range(4):
        frame = np.roll(rain, 2 * k, axis=-1)[None].astype("float32")
        ds = xr.Dataset(
            {
                "precip_rate": (("time", "y", "x"), frame, {"units": "mm h-1", "grid_mapping": "crs"}),
                "crs": ((), np.int32(0), crs),
            },
            coords={"time": [(INIT + pd.Timedelta(minutes=5 * k)).to_datetime64()], "y": y, "x": x},
        )
        paths.append(folder / f"rain_{k}.nc")
        ds.to_netcdf(paths[-1])
    return paths


@pytest.fixture(scope="module", params=["synthetic", "mch"])
def radar(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A store with the nowcast runs, the observed frames and the four reference files.

    ``synthetic``: tiny netCDF frames made here (always runs); ``mch``: four MeteoSwiss frames
    of the sample data (skipped without it).
    """
    if request.param == "mch":
        data_root = request.getfixturevalue("data_root")
        meta = datasets.get("mch-2015-05-15")
        paths, fmt = meta.paths(data_root)[9:13], meta.format  # 16:30, 16:35, 16:40, 16:45
        crop, chunks = {"y": slice(100, 300), "x": slice(200, 400)}, {"y": 160, "x": 200}
    else:
        data_root = None
        paths, fmt = _synthetic_frames(tmp_path_factory.mktemp("frames")), None
        crop, chunks = {"y": slice(5, 30), "x": slice(10, 50)}, {"y": 12, "x": 20}
    opened = [open_any(p, format=fmt) for p in paths]
    assert pd.Timestamp(opened[0]["time"].values[0]) == INIT
    obs = [ds["precip_rate"].isel(time=0, drop=True).drop_vars(["lat", "lon"]) for ds in opened]
    settings = Settings(data_root=data_root, store_root=tmp_path_factory.mktemp("verify-store"))

    def shifted(da: xr.DataArray, px: int) -> xr.DataArray:
        return da.copy(data=np.roll(da.values, px, axis=-1))

    write_nowcast(settings, "shifted", [shifted(o, 3) for o in obs[1:]], opened[0])
    members = [xr.concat([shifted(o, s) for s in (-2, 0, 2)], dim="member") for o in obs[1:]]
    members = [m.assign_coords(member=[0, 1, 2]) for m in members]
    write_nowcast(settings, "ensemble", members, opened[0])
    return {
        "settings": settings,
        "catalog": Catalog(settings.catalog_path),
        "files": [str(p) for p in paths],
        "obs": obs,
        "fcst": [shifted(o, 3) for o in obs[1:]],
        "members": members,
        "template": opened[0],
        "crop": crop,
        "chunks": chunks,
    }


@pytest.fixture(scope="module")
def shifted_result(radar: dict):
    return verify_run(radar["catalog"], "shifted", radar["files"], data_root=radar["settings"].data_root)


def test_nowcast_scores_equal_direct_metric_calls(radar: dict, shifted_result) -> None:
    scores = shifted_result.scores
    assert shifted_result.case == "grid" and shifted_result.variable == "precip_rate"
    assert shifted_result.reference.startswith("files:")
    for k, lead in enumerate(LEADS):
        f, o = radar["fcst"][k], radar["obs"][k + 1]
        for thr in (0.1, 1.0, 5.0):
            for name, func in (
                ("csi", csi),
                ("pod", pod),
                ("far", far),
                ("ets", ets),
                ("frequency_bias", frequency_bias),
            ):
                assert _value(scores, "shifted", name, lead, thr) == float(func(f, o, threshold=thr))
        for thr in (1.0, 5.0):
            for win in (1, 5, 11, 21):
                assert _value(scores, "shifted", "fss", lead, thr, win) == float(fss(f, o, threshold=thr, window=win))
        for name, func in (("rmse", rmse), ("mae", mae), ("bias", bias)):
            assert _value(scores, "shifted", name, lead) == float(func(f, o))
    # the FSS grows with the window and CSI falls with the threshold, as a 3 km shift must give
    lead = LEADS[0]
    assert _value(scores, "shifted", "fss", lead, 1.0, 1) < _value(scores, "shifted", "fss", lead, 1.0, 21)
    assert _value(scores, "shifted", "csi", lead, 0.1) > _value(scores, "shifted", "csi", lead, 5.0)
    # no ensemble metric for a deterministic run, no FSS at 0.1 mm/h by default
    assert "crps" not in set(scores["metric"])
    assert not ((scores["metric"] == "fss") & (scores["threshold"] == 0.1)).any()


def test_scores_are_in_the_catalogue(radar: dict, shifted_result) -> None:
    stored = radar["catalog"].scores("shifted")
    mine = shifted_result.scores[shifted_result.scores["run_id"] == "shifted"]
    assert len(stored) == len(mine) == 3 * (5 * 3 + 2 * 4 + 3)
    assert set(stored["reference"]) == {shifted_result.reference}
    merged = stored.merge(mine, on=["metric", "lead_time", "threshold", "scale"], suffixes=("_db", ""))
    assert len(merged) == len(mine)
    np.testing.assert_array_equal(merged["value_db"].to_numpy(), merged["value"].to_numpy())


def test_persistence_baseline(radar: dict, shifted_result) -> None:
    cat = radar["catalog"]
    bid = baseline_run_id("shifted")
    assert shifted_result.baseline_run_id == bid == "shifted.persistence"
    rec = cat.get_run(bid)
    assert (rec.model, rec.kind, rec.status, rec.path) == ("persistence", "nowcast", "succeeded", None)
    assert rec.parameters["baseline_of"] == "shifted" and rec.init_time == INIT
    base = cat.scores(bid)
    assert set(base["reference"]) == {shifted_result.reference}
    held = radar["obs"][0]  # the 16:30 frame, held over every lead time
    for k, lead in enumerate(LEADS):
        o = radar["obs"][k + 1]
        assert _value(base, bid, "csi", lead, 1.0) == float(csi(held, o, threshold=1.0))
        assert _value(base, bid, "fss", lead, 5.0, 11) == float(fss(held, o, threshold=5.0, window=11))
        assert _value(base, bid, "rmse", lead) == float(rmse(held, o))
    # persistence loses skill with lead time
    assert _value(base, bid, "csi", LEADS[0], 1.0) > _value(base, bid, "csi", LEADS[-1], 1.0)


def test_ensemble_scores_use_members_and_mean(radar: dict) -> None:
    result = verify_run(
        radar["catalog"],
        "ensemble",
        radar["files"],
        data_root=radar["settings"].data_root,
        options=VerifyOptions(metrics=("csi", "rmse", "crps", "spread_skill"), thresholds=(1.0,), persistence=False),
    )
    assert result.baseline_run_id is None
    for k, lead in enumerate(LEADS):
        ens, o = radar["members"][k], radar["obs"][k + 1]
        mean = ens.mean("member")
        assert _value(result.scores, "ensemble", "crps", lead) == float(crps_ensemble(ens, o))
        assert _value(result.scores, "ensemble", "csi", lead, 1.0) == float(csi(mean, o, threshold=1.0))
        assert _value(result.scores, "ensemble", "rmse", lead) == float(rmse(mean, o))
        assert _value(result.scores, "ensemble", "spread_skill", lead) == float(spread_skill(ens, o)["ratio"])
    assert set(result.scores["metric"]) == {"csi", "rmse", "crps", "spread_skill"}


def test_dask_chunked_input_gives_the_same_scores(radar: dict) -> None:
    fcst = xr.concat(radar["members"], dim=xr.DataArray(LEADS.values, dims=["lead_time"], name="lead_time"))
    obs = xr.concat(radar["obs"][1:], dim=xr.DataArray(LEADS.values, dims=["lead_time"], name="lead_time"))
    kw = {"metrics": ["csi", "far", "fss", "rmse", "bias", "crps"], "thresholds": (0.1, 5.0), "windows": (3, 9)}
    in_memory = score_fields(fcst, obs, **kw)
    chunked = score_fields(
        fcst.chunk({"lead_time": 1, "member": 1, "y": radar["chunks"]["y"]}),
        obs.chunk({"lead_time": 1, "x": radar["chunks"]["x"]}),
        **kw,
    )
    assert fcst.chunk({"lead_time": 1}).chunks is not None
    pd.testing.assert_frame_equal(in_memory, chunked, check_exact=True)
    assert len(in_memory) == 3 * (2 * 2 + 2 * 2 + 3)


def test_reference_must_hold_every_valid_time(radar: dict) -> None:
    with pytest.raises(VerificationError, match=r"no frame at 1 valid time.*2015-05-15 16:45"):
        verify_run(radar["catalog"], "shifted", radar["files"][:3], data_root=None, write=False)


def test_a_missing_frame_uses_the_nearest_within_the_time_tolerance(radar: dict) -> None:
    files, obs, fcst = radar["files"][:3], radar["obs"], radar["fcst"]  # no 16:45 frame
    with pytest.raises(VerificationError, match=r"no frame at 1 valid time.*16:45.*--time-tolerance"):
        verify_run(radar["catalog"], "shifted", files, data_root=None, write=False)
    options = VerifyOptions(metrics=("rmse", "csi"), thresholds=(1.0,), time_tolerance="5min")
    result = verify_run(radar["catalog"], "shifted", files, data_root=None, options=options, write=False)
    assert list(pd.DatetimeIndex(result.obs_time.values)) == [pd.Timestamp(f"2015-05-15 16:{m}") for m in (35, 40, 40)]
    np.testing.assert_array_equal(result.obs_time["valid_time"].values, (INIT + LEADS).values)
    assert any("1 of 3 lead time(s) scored against" in n and "largest offset 5 min" in n for n in result.notes)
    # +15 min is scored against the 16:40 frame, the others against their own
    for k, frame in enumerate((1, 2, 2)):
        assert _value(result.scores, "shifted", "rmse", LEADS[k]) == float(rmse(fcst[k], obs[frame]))
        assert _value(result.scores, "shifted", "csi", LEADS[k], 1.0) == float(csi(fcst[k], obs[frame], threshold=1.0))
    with pytest.raises(VerificationError, match=r"no frame within 4 min at 1 valid time"):
        options = VerifyOptions(metrics=("rmse",), time_tolerance="4min")
        verify_run(radar["catalog"], "shifted", files, data_root=None, options=options, write=False)


def test_time_tolerance_changes_nothing_where_every_frame_exists(radar: dict, shifted_result) -> None:
    loose = verify_run(
        radar["catalog"],
        "shifted",
        radar["files"],
        data_root=None,
        options=VerifyOptions(time_tolerance="1h"),
        write=False,
    )
    pd.testing.assert_frame_equal(shifted_result.scores, loose.scores)
    np.testing.assert_array_equal(shifted_result.obs_time.values, (INIT + LEADS).values)
    np.testing.assert_array_equal(loose.obs_time.values, (INIT + LEADS).values)
    assert not any("scored against" in n for n in shifted_result.notes + loose.notes)


def test_repeated_frame_times_keep_the_first_file(radar: dict, tmp_path: Path) -> None:
    copy = tmp_path / Path(radar["files"][1]).name  # the 16:35 frame a second time, from another folder
    shutil.copy(radar["files"][1], copy)
    options = VerifyOptions(metrics=("rmse",), persistence=False)
    result = verify_run(
        radar["catalog"], "shifted", [*radar["files"], str(copy)], data_root=None, options=options, write=False
    )
    assert any("1 time(s) repeated" in n and "2015-05-15 16:35" in n for n in result.notes), result.notes
    assert _value(result.scores, "shifted", "rmse", LEADS[0]) == float(rmse(radar["fcst"][0], radar["obs"][1]))


def test_mismatched_grid_is_refused(radar: dict) -> None:
    settings = radar["settings"]
    cropped = [f.isel(radar["crop"]) for f in radar["fcst"]]
    write_nowcast(settings, "cropped", cropped, radar["template"].isel(radar["crop"]))
    ny, nx = radar["obs"][0].sizes["y"], radar["obs"][0].sizes["x"]  # 640 x 710 for the MeteoSwiss frames
    with pytest.raises(CoordError, match=rf"grid \{{'y': {ny}, 'x': {nx}\}} differs from run cropped's"):
        verify_run(radar["catalog"], "cropped", radar["files"], data_root=None, write=False)


def test_bad_options_and_unknown_run(radar: dict) -> None:
    with pytest.raises(UnknownNameError, match="unknown metric 'csii'"):
        VerifyOptions(metrics=("csi", "csii"))
    with pytest.raises(VerificationError, match="thresholds: 'heavy' is not a number"):
        VerifyOptions(thresholds=("1", "heavy"))
    with pytest.raises(VerificationError, match="windows: 2.5 is not a positive whole number"):
        VerifyOptions(windows=(2.5,))
    with pytest.raises(UnknownRunError, match="unknown run 'nope'"):
        verify_run(radar["catalog"], "nope", radar["files"], data_root=None)
    with pytest.raises(VerificationError, match="need an ensemble"):
        verify_run(
            radar["catalog"], "shifted", radar["files"], data_root=None, options=VerifyOptions(metrics=("crps",))
        )


def test_windows_from_km_and_summary_table(shifted_result) -> None:
    assert windows_from_km([1, 5, 10, 20], 1.0) == (1, 5, 11, 21)
    assert windows_from_km([10], 2.0) == (5,)
    table = summary_table(shifted_result.scores[shifted_result.scores["run_id"] == "shifted"])
    assert list(table.index) == [5.0, 10.0, 15.0]
    assert "csi@1" in table.columns and "fss@5/11" in table.columns and "rmse" in table.columns


# ---------------------------------------------------------------------------- global z500


@pytest.fixture(scope="module")
def era5(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A persistence-style ensemble z500 run built from the ERA5 analyses themselves."""
    analysis = datasets.open_dataset("era5-ensemble-2017-01", data_root)["z500"].load()
    t0 = analysis["time"].values[0]
    leads = pd.to_timedelta([0, 12, 24, 36], unit="h")
    start = analysis.isel(time=0, drop=True).transpose("member", "lat", "lon")
    z = np.stack([start.values] * len(leads))
    ds = xr.Dataset(
        {"z500": (("lead_time", "member", "lat", "lon"), z, analysis.attrs)},
        coords={
            "lead_time": leads.values,
            "member": start["member"].values,
            "lat": start["lat"].values,
            "lon": start["lon"].values,
            "init_time": t0,
            "valid_time": ("lead_time", t0 + leads.values),
        },
    )
    settings = Settings(data_root=data_root, store_root=tmp_path_factory.mktemp("z500-store"))
    cat = Catalog(settings.catalog_path)
    path = write_run_store(ds, settings.runs_dir / "z500.zarr", provenance={"model": "persistence-test"})
    cat.register_run("z500", "persistence-test", "global", "global", t0, {}, "succeeded", path)
    coarse = ds.isel(lat=slice(0, None, 2), lon=slice(0, None, 2))  # 6 deg, nodes shared with the 3 deg analysis
    path = write_run_store(coarse, settings.runs_dir / "z500-coarse.zarr", provenance={"model": "coarse-test"})
    cat.register_run("z500-coarse", "coarse-test", "global", "global", t0, {}, "succeeded", path)
    return {"catalog": cat, "settings": settings, "analysis": analysis, "leads": leads}


def test_gridded_z500_against_era5(era5: dict) -> None:
    result = verify_run(era5["catalog"], "z500", "era5-ensemble-2017-01", data_root=era5["settings"].data_root)
    scores, leads = result.scores, era5["leads"]
    assert result.case == "latlon" and result.reference == "dataset:era5-ensemble-2017-01"
    assert set(scores["metric"]) >= {"rmse", "bias", "acc", "crps", "spread", "rmse_ensemble_mean", "spread_skill"}
    # lead 0 is the analysis itself: no error, perfect anomaly correlation
    assert _value(scores, "z500", "rmse", leads[0]) == 0.0
    assert _value(scores, "z500", "bias", leads[0]) == 0.0
    assert _value(scores, "z500", "acc", leads[0]) == pytest.approx(1.0, abs=1e-12)
    truth = era5["analysis"].mean("member")
    w = latitude_weights(truth["lat"])
    fc = era5["analysis"].isel(time=0, drop=True).mean("member")
    for k, lead in enumerate(leads):
        o = truth.isel(time=k, drop=True)
        assert _value(scores, "z500", "rmse", lead) == pytest.approx(float(rmse(fc, o, weights=w)), rel=1e-6)
    # persistence error grows over 36 h (hundreds of m2 s-2 of z500), the baseline equals the run
    errors = [_value(scores, "z500", "rmse", lead) for lead in leads]
    assert errors[1] > 100.0 and errors[3] > errors[1]
    assert _value(scores, "z500.persistence", "rmse", leads[2]) == _value(scores, "z500", "rmse", leads[2])
    clim = datasets.open_dataset("era-interim-climatology", era5["settings"].data_root)["z500"].sel(month=1)
    clim = regrid_latlon(clim, truth["lat"].values, truth["lon"].values)
    o = truth.isel(time=2, drop=True)
    expected = float(acc(fc, o, climatology=clim.values, centred=False, weights=w))
    assert _value(scores, "z500", "acc", leads[2]) == pytest.approx(expected, rel=1e-6)


def test_analysis_is_regridded_to_a_coarser_run(era5: dict) -> None:
    result = verify_run(
        era5["catalog"],
        "z500-coarse",
        "era5-ensemble-2017-01",
        data_root=era5["settings"].data_root,
        options=VerifyOptions(metrics=("rmse", "bias"), persistence=False),
        write=False,
    )
    assert any("interpolated bilinearly" in n for n in result.notes)
    # the 6 deg nodes are 3 deg nodes: interpolation returns the analysis there
    assert _value(result.scores, "z500-coarse", "rmse", era5["leads"][0]) == pytest.approx(0.0, abs=1e-6)


def test_regrid_latlon_wraps_the_date_line() -> None:
    lon = np.arange(0.0, 360.0, 3.0)
    lat = np.array([-3.0, 0.0, 3.0])
    field = xr.DataArray(np.tile(lon, (3, 1)), dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    out = regrid_latlon(field, [0.0, 1.5], [-1.5, 1.5, 358.5 - 360.0 + 0.0])
    # -1.5 deg lies between 357 (value 357) and 360 = 0 (value 0): the mean, not NaN
    np.testing.assert_allclose(out.values[:, 0], [178.5, 178.5])
    np.testing.assert_allclose(out.values[:, 1], [1.5, 1.5])


# ---------------------------------------------------------------------------- stations


def test_station_verification_and_point_forecasts(data_root: Path, tmp_path: Path) -> None:
    station = datasets.open_dataset("foehn-ellboegen", data_root)
    t0 = pd.Timestamp("2016-04-10T12:00")
    leads = pd.to_timedelta([0, 1, 2], unit="h")
    obs = station["t2m"].sel(time=t0 + leads).values.astype(float)
    assert np.isfinite(obs).all()
    lat, lon = np.arange(46.5, 48.01, 0.25), np.arange(10.5, 12.51, 0.25)
    # a uniform field 1 K warmer than the observation: bias +1 K and RMSE 1 K at the station
    t2m = (obs + 1.0)[:, None, None] * np.ones((3, lat.size, lon.size))
    ds = xr.Dataset(
        {"t2m": (("lead_time", "lat", "lon"), t2m.astype("float32"), {"units": "K"})},
        coords={"lead_time": leads.values, "lat": lat, "lon": lon, "init_time": t0.to_datetime64()},
    )
    settings = Settings(data_root=data_root, store_root=tmp_path)
    cat = Catalog(settings.catalog_path)
    path = write_run_store(ds, settings.runs_dir / "t2m.zarr", provenance={"model": "warm"})
    cat.register_run("t2m", "warm", "regional", "tyrol", t0, {}, "succeeded", path)
    result = verify_run(cat, "t2m", "foehn-ellboegen", data_root=data_root)
    assert result.case == "stations" and result.reference == "dataset:foehn-ellboegen"
    stored = cat.scores("t2m")
    per_station = stored[stored["region"] == "station:ellboegen"]
    assert len(per_station) == 3 * 3
    for lead in leads:
        rows = per_station[per_station["lead_time"] == lead].set_index("metric")["value"]
        assert rows["bias"] == pytest.approx(1.0, abs=1e-4)
        assert rows["mae"] == pytest.approx(1.0, abs=1e-4)
        assert rows["rmse"] == pytest.approx(1.0, abs=1e-4)
    assert len(stored[stored["region"].isna()]) == 3 * 3  # all stations together
    points = cat.point_forecasts("t2m")
    assert list(points["station_id"].unique()) == ["ellboegen"]
    np.testing.assert_allclose(points.sort_values("lead_time")["value"].to_numpy(), obs + 1.0, atol=1e-4)
    assert cat.stations()["station_id"].tolist() == ["ellboegen"]
    # persistence at the station: the 12 UTC observation held; its bias is obs(t0) - obs(t0 + lead)
    assert result.baseline_run_id == "t2m.persistence"
    base = cat.scores("t2m.persistence", metric="bias", region="station:ellboegen").sort_values("lead_time")
    np.testing.assert_allclose(base["value"].to_numpy(), obs[0] - obs, atol=1e-4)
    # the station's hourly series has no 5-minute valid times
    with pytest.raises(VerificationError, match="no observation at"):
        ds2 = ds.assign_coords(lead_time=pd.to_timedelta([0, 5, 10], unit="min").values)
        path2 = write_run_store(ds2, settings.runs_dir / "t2m-5min.zarr", provenance={"model": "warm"})
        cat.register_run("t2m-5min", "warm", "regional", "tyrol", t0, {}, "succeeded", path2)
        verify_run(cat, "t2m-5min", "foehn-ellboegen", data_root=data_root, write=False)
