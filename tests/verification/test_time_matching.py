"""Matching forecast valid times to observations within a tolerance (``VerifyOptions.time_tolerance``).

Station reports come at their own minutes (METAR at hh:53, ASOS every 20 min, gaps). The functions
(``nearest_time_indices``, ``match_to_times``) are checked against a brute-force search and against
``pandas.merge_asof``; the pipeline against a synthetic ASOS text file whose every report time is
known, and against the real ASOS Colorado file; its scores against xskillscore and scores on the
same matched pairs. Gridded references with a missing frame are tested in ``test_pipeline.py``
(on its radar runs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from engine.config import Settings
from engine.errors import CoordError
from engine.storage.catalog import Catalog
from engine.storage.zarr_store import write_run_store
from verification.pipeline import VerificationError, VerifyOptions, parse_time_tolerance, verify_run
from verification.stations import match_to_times, nearest_time_indices

T = np.datetime64
INIT = pd.Timestamp("2017-01-01T00:00")
HOURS = pd.to_timedelta(range(5), unit="h")
ASOS_FILE = "pythia-datasets/data/jan-17-co-asos.txt.xz"


# ---------------------------------------------------------------------------- the functions


def _brute_force(times: np.ndarray, valid: np.ndarray, targets: np.ndarray, tol: pd.Timedelta) -> np.ndarray:
    """Nearest counted report within tol by exhaustive search; ties to the earlier report."""
    out = np.full(valid.shape[:-1] + (targets.size,), -1)
    for row in np.ndindex(valid.shape[:-1]):
        for j, t in enumerate(targets):
            best = None
            for k in np.flatnonzero(valid[row]):
                d = abs(times[k] - t)
                if d <= tol and (best is None or d < best[0] or (d == best[0] and times[k] < times[best[1]])):
                    best = (d, k)
            out[row + (j,)] = -1 if best is None else best[1]
    return out


def test_hh53_reports_matched_to_hourly_valid_times() -> None:
    reports = pd.date_range("2016-12-31T23:53", periods=6, freq="h").values
    targets = (INIT + HOURS).values
    pos = nearest_time_indices(reports, targets, "30min")
    # each hour gets the report 7 minutes before it
    np.testing.assert_array_equal(reports[pos], targets - np.timedelta64(7, "m"))
    # a tolerance below 7 minutes finds nothing: -1, never a farther report
    assert (nearest_time_indices(reports, targets, "6min") == -1).all()
    assert (nearest_time_indices(reports, targets, "7min") >= 0).all()  # the tolerance is inclusive
    assert (nearest_time_indices(reports, targets, pd.Timedelta(0)) == -1).all()


def test_ties_go_to_the_earlier_report_and_exact_times_win() -> None:
    reports = np.array(["2017-01-01T00:30", "2017-01-01T01:30", "2017-01-01T02:00"], dtype="datetime64[ns]")
    targets = np.array(["2017-01-01T01:00", "2017-01-01T02:00"], dtype="datetime64[ns]")
    assert list(nearest_time_indices(reports, targets, "30min")) == [0, 2]
    # unsorted report times give positions into the array as given
    shuffled = reports[[2, 0, 1]]
    assert list(nearest_time_indices(shuffled, targets, "30min")) == [1, 0]


def test_missing_reports_are_never_chosen_over_valid_ones() -> None:
    times = pd.date_range("2017-01-01T00:00", periods=7, freq="10min").values  # 00:00 .. 01:00
    obs = xr.DataArray(
        [[1.0, 2.0, np.nan, np.nan, np.nan, 6.0, np.nan], [np.nan] * 6 + [7.0]],
        dims=("station", "time"),
        coords={"station": ["A", "B"], "time": times, "lat": ("station", [40.0, 41.0])},
        attrs={"units": "K"},
    )
    target = np.array(["2017-01-01T00:30", "2017-01-01T00:00"], dtype="datetime64[ns]")
    got = match_to_times(obs, target, tolerance="20min")
    # A at 00:30: 00:30 and 00:20 are missing, 00:40 too; 00:10 and 00:50 are 20 min away: the earlier
    assert got.sel(station="A").values.tolist() == [2.0, 1.0]
    np.testing.assert_array_equal(got["obs_time"].sel(station="A").values, times[[1, 0]])
    # B reports only at 01:00: 30 and 60 min away, beyond 20 min -> NaN and NaT, not 7
    assert np.isnan(got.sel(station="B").values).all() and np.isnat(got["obs_time"].sel(station="B").values).all()
    assert got.dims == ("station", "time") and got.attrs["units"] == "K" and "lat" in got.coords
    # a tolerance of 0 is an exact match, the same as .sel
    exact = match_to_times(obs, times[[0, 5]])
    xr.testing.assert_equal(exact.drop_vars("obs_time"), obs.isel(time=[0, 5]).astype(float))


def test_matching_equals_brute_force_and_merge_asof() -> None:
    rng = np.random.default_rng(3)
    minutes = np.sort(rng.choice(24 * 60, size=300, replace=False))
    times = (np.datetime64("2017-01-01T00:00", "ns") + minutes.astype("timedelta64[m]")).astype("datetime64[ns]")
    values = rng.normal(size=(4, times.size))
    values[rng.random(values.shape) < 0.6] = np.nan  # stations with gaps of their own
    targets = pd.date_range("2017-01-01", periods=48, freq="30min").values.astype("datetime64[ns]")
    tol = pd.Timedelta("12min")
    pos = nearest_time_indices(times, targets, tol, valid=np.isfinite(values))
    np.testing.assert_array_equal(pos, _brute_force(times, np.isfinite(values), targets, tol))
    obs = xr.DataArray(values, dims=("station", "time"), coords={"station": list("ABCD"), "time": times})
    got = match_to_times(obs, targets, tolerance=tol)
    for sid in "ABCD":
        reports = obs.sel(station=sid).to_series().dropna().rename("value").reset_index()
        reports["obs_time"] = reports["time"]
        ref = pd.merge_asof(pd.DataFrame({"time": targets}), reports, on="time", direction="nearest", tolerance=tol)
        np.testing.assert_array_equal(got.sel(station=sid).values, ref["value"].to_numpy())
        np.testing.assert_array_equal(got["obs_time"].sel(station=sid).values, ref["obs_time"].to_numpy())


def test_repeated_report_times_and_bad_tolerances() -> None:
    times = np.array(["2017-01-01T00:53", "2017-01-01T00:53"], dtype="datetime64[ns]")
    with pytest.raises(CoordError, match=r"report times repeat \(2017-01-01 00:53:00\)"):
        nearest_time_indices(times, times[:1], "30min")
    for bad, message in [
        ("soon", "time_tolerance: 'soon' is not a duration; give a duration such as 30min"),
        ("30", "time_tolerance: '30' has no unit"),
        (30, "time_tolerance: 30 has no unit"),
        ("-5min", "time_tolerance: '-5min' is negative"),
        ("NaT", "time_tolerance: 'NaT' is not a duration"),
        ([30], "is not a duration"),
    ]:
        with pytest.raises(VerificationError, match=message):
            VerifyOptions(time_tolerance=bad)
    assert VerifyOptions().time_tolerance == pd.Timedelta(0) == parse_time_tolerance("0")
    assert VerifyOptions(time_tolerance="PT30M").time_tolerance == pd.Timedelta(minutes=30)
    assert parse_time_tolerance(np.timedelta64(90, "s")) == pd.Timedelta(seconds=90)


# ---------------------------------------------------------------------------- synthetic ASOS reports

#: Report times (minutes after 2016-12-31 00:00 are encoded in the temperature) of a synthetic
#: ASOS file: FNL at hh:53 (routine METAR) and hh:23, with a missing special at 02:00; LMO at
#: hh:13 / hh:34 with a missing 01:13 report and a gap from 01:34 to 03:34; 1V6 at hh:30 only
#: (every hour a tie). ``None`` = reported "M".
REPORTS: dict[str, list[tuple[str, bool]]] = {
    "FNL": [(f"2016-12-31 23:{m}", True) for m in ("23", "53")]
    + [(f"2017-01-01 0{h}:{m}", True) for h in range(5) for m in ("23", "53")]
    + [("2017-01-01 02:00", False)],
    "LMO": [
        ("2017-01-01 00:13", True),
        ("2017-01-01 00:34", True),
        ("2017-01-01 01:13", False),
        ("2017-01-01 01:34", True),
        ("2017-01-01 03:34", True),
        ("2017-01-01 04:13", True),
    ],
    "1V6": [("2016-12-31 23:30", True)] + [(f"2017-01-01 0{h}:30", True) for h in range(5)],
}
#: The report each station's valid time must use with a 30 min tolerance (None: none within it).
EXPECTED: dict[str, list[str | None]] = {
    "FNL": ["2016-12-31 23:53", "2017-01-01 00:53", "2017-01-01 01:53", "2017-01-01 02:53", "2017-01-01 03:53"],
    "LMO": ["2017-01-01 00:13", "2017-01-01 00:34", "2017-01-01 01:34", None, "2017-01-01 04:13"],
    "1V6": ["2016-12-31 23:30", "2017-01-01 00:30", "2017-01-01 01:30", "2017-01-01 02:30", "2017-01-01 03:30"],
}


def _celsius(stamp: str) -> float:
    """The temperature a synthetic report carries: its minutes after 2016-12-31 00:00, / 100."""
    return (pd.Timestamp(stamp) - pd.Timestamp("2016-12-31")).total_seconds() / 6000.0


def _write_asos(path: Path, reports: dict[str, list[tuple[str, bool]]]) -> Path:
    lines = ["station\tvalid\t tmpc \t  dwpc \t  mslp"]
    for sid, rows in reports.items():
        for stamp, ok in rows:
            lines.append(f"{sid}\t{stamp}\t{_celsius(stamp):.2f}\t-10.00\tM" if ok else f"{sid}\t{stamp}\tM\tM\tM")
    path.write_text("\n".join(lines) + "\n")
    return path


def _store_colorado_run(settings: Settings, run_id: str, leads: pd.TimedeltaIndex) -> np.ndarray:
    """A t2m run on a 0.25 deg box over the stations, uniform in space: 280 K + lead in hours."""
    lat, lon = np.arange(38.0, 41.01, 0.25), np.arange(-106.0, -103.99, 0.25)
    values = 280.0 + leads / pd.Timedelta(hours=1)
    t2m = values.to_numpy()[:, None, None] * np.ones((len(leads), lat.size, lon.size))
    ds = xr.Dataset(
        {"t2m": (("lead_time", "lat", "lon"), t2m.astype("float32"), {"units": "K"})},
        coords={"lead_time": leads.values, "lat": lat, "lon": lon, "init_time": INIT.to_datetime64()},
    )
    path = write_run_store(ds, settings.runs_dir / f"{run_id}.zarr", provenance={"model": "uniform"})
    Catalog(settings.catalog_path).register_run(run_id, "uniform", "regional", "colorado", INIT, {}, "succeeded", path)
    return values.to_numpy()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("time-matching")
    settings = Settings(data_root=None, store_root=root / "store")
    fcst = _store_colorado_run(settings, "hourly", HOURS)
    asos = _write_asos(root / "synthetic-asos.txt", REPORTS)
    catalog = Catalog(settings.catalog_path)
    options = VerifyOptions(variable="t2m", time_tolerance="30min")
    result = verify_run(catalog, "hourly", [str(asos)], data_root=None, options=options)
    return {"settings": settings, "catalog": catalog, "asos": asos, "fcst": fcst, "result": result, "root": root}


def _expected_obs() -> xr.DataArray:
    """EXPECTED as (lead_time, station) temperatures in K (float32 like the reader), NaN where none."""
    data = [
        [np.nan if EXPECTED[s][k] is None else float(np.float32(_celsius(EXPECTED[s][k]) + 273.15)) for s in EXPECTED]
        for k in range(len(HOURS))
    ]
    return xr.DataArray(
        data, dims=("lead_time", "station"), coords={"lead_time": HOURS.values, "station": list(EXPECTED)}
    )


def test_each_forecast_hour_gets_the_right_report(synthetic: dict) -> None:
    result = synthetic["result"]
    assert result.case == "stations"
    used = result.obs_time.transpose("lead_time", "station")
    for sid, stamps in EXPECTED.items():
        want = [np.datetime64("NaT") if s is None else np.datetime64(pd.Timestamp(s)) for s in stamps]
        np.testing.assert_array_equal(used.sel(station=sid).values, np.array(want, dtype="datetime64[ns]"), sid)
    np.testing.assert_array_equal(used["valid_time"].values, (INIT + HOURS).values)
    expected = _expected_obs()
    observed = result.observations.sel(station=list(EXPECTED))
    np.testing.assert_allclose(observed.values, expected.values, atol=1e-4)
    np.testing.assert_array_equal(result.observations["obs_time"].values, result.obs_time.values)
    assert any("scored against files:" in n and "largest offset 30 min" in n for n in result.notes), result.notes


def test_beyond_the_tolerance_is_excluded_not_matched(synthetic: dict) -> None:
    stored = synthetic["catalog"].scores("hourly")
    lmo = stored[(stored["region"] == "station:LMO") & (stored["metric"] == "bias")]
    # LMO has no report within 30 min of 03:00: no score at +3 h, four others
    assert sorted(pd.to_timedelta(lmo["lead_time"])) == [HOURS[i] for i in (0, 1, 2, 4)]
    # and the all-station scores at +3 h use FNL and 1V6 only
    xs = pytest.importorskip("xskillscore")  # the oracle of the all-station scores (the checks above always run)
    expected, fcst = _expected_obs(), synthetic["fcst"]
    f = xr.zeros_like(expected) + xr.DataArray(fcst, dims="lead_time", coords={"lead_time": HOURS.values})
    domain = stored[stored["region"].isna()].set_index(["metric", "lead_time"])["value"]
    for k, lead in enumerate(HOURS):
        f_k, o_k = f.isel(lead_time=k), expected.isel(lead_time=k)
        assert domain[("rmse", lead)] == pytest.approx(float(xs.rmse(f_k, o_k, dim="station", skipna=True)), abs=1e-4)
        assert domain[("mae", lead)] == pytest.approx(float(xs.mae(f_k, o_k, dim="station", skipna=True)), abs=1e-4)
        assert domain[("bias", lead)] == pytest.approx(float(xs.me(f_k, o_k, dim="station", skipna=True)), abs=1e-4)
    # the point forecasts and per-station scores agree with the reports used
    fnl = stored[(stored["region"] == "station:FNL") & (stored["metric"] == "bias")].sort_values("lead_time")
    np.testing.assert_allclose(fnl["value"], fcst - expected.sel(station="FNL").values, atol=1e-4)


def test_persistence_uses_the_reports_nearest_the_init_time(synthetic: dict) -> None:
    base = synthetic["catalog"].scores("hourly.persistence", metric="bias", region="station:1V6")
    o = _expected_obs().sel(station="1V6").values
    # 1V6's report nearest 00:00 is the 23:30 one (a tie with 00:30, the earlier wins), held over all leads
    np.testing.assert_allclose(base.sort_values("lead_time")["value"].to_numpy(), o[0] - o, atol=1e-4)


def test_exact_match_stays_the_default(synthetic: dict) -> None:
    catalog, asos = synthetic["catalog"], synthetic["asos"]
    # only FNL's missing 02:00 special lies at a valid time: the other four have no reference time
    with pytest.raises(VerificationError, match=r"no observation at 4 valid time\(s\) of run hourly.*--time-tolerance"):
        verify_run(catalog, "hourly", [str(asos)], data_root=None, options=VerifyOptions(variable="t2m"), write=False)
    # the hh:53 reports are 7 min from the hours: beyond 5 min, an error, not a match
    with pytest.raises(VerificationError, match=r"no observation within 5 min at 4 valid time\(s\).*00:00"):
        opts = VerifyOptions(variable="t2m", time_tolerance="5min")
        verify_run(catalog, "hourly", [str(asos)], data_root=None, options=opts, write=False)


def test_repeated_station_report_times_are_refused(synthetic: dict) -> None:
    # a foehnix record with one timestamp twice: which report stands for 12 UTC is ambiguous
    path = synthetic["root"] / "ellboegen.csv"
    t0 = int(pd.Timestamp("2017-01-01T00:00").timestamp())
    rows = [f"{t0 + 3600 * h};180;1.0;80;-2.0" for h in range(5)] + [f"{t0 + 3600 * 2};180;1.0;80;-3.0"]
    path.write_text("timestamp;dd;ff;rh;t\n" + "\n".join(rows) + "\n")
    with pytest.raises(VerificationError, match=r"ellboegen.csv: 1 report time\(s\) repeat, e.g. 2017-01-01 02:00"):
        verify_run(
            synthetic["catalog"],
            "hourly",
            [str(path)],
            data_root=None,
            options=VerifyOptions(variable="t2m", time_tolerance="30min"),
            write=False,
        )


# ---------------------------------------------------------------------------- the real ASOS file


def test_real_asos_colorado_file_through_the_pipeline(data_root: Path, tmp_path: Path) -> None:
    sc = pytest.importorskip("scores.continuous")  # the oracle of the all-station scores
    settings = Settings(data_root=data_root, store_root=tmp_path)
    leads = pd.to_timedelta(range(0, 24 * 3, 3), unit="h")
    fcst = _store_colorado_run(settings, "colorado", leads)
    catalog = Catalog(settings.catalog_path)
    options = VerifyOptions(variable="t2m", time_tolerance="30min")
    result = verify_run(catalog, "colorado", "asos-colorado-2017-01", data_root=data_root, options=options)
    assert result.reference == "dataset:asos-colorado-2017-01"
    assert set(result.observations["station"].values) == {"FNL", "LMO", "1V6"}  # 0CO has no position

    # reference: the raw file read with pandas, matched per station by merge_asof
    raw = pd.read_csv(data_root / ASOS_FILE, sep="\t", na_values="M", skipinitialspace=True)
    raw.columns = [c.strip() for c in raw.columns]
    raw["valid"] = pd.to_datetime(raw["valid"]).astype("datetime64[ns]")
    targets = pd.DataFrame({"valid": (INIT + leads).values.astype("datetime64[ns]")})
    for sid in ("FNL", "LMO", "1V6"):
        reports = raw[(raw["station"] == sid) & raw["tmpc"].notna()][["valid", "tmpc"]].sort_values("valid")
        reports = reports.assign(obs_time=reports["valid"])
        ref = pd.merge_asof(targets, reports, on="valid", direction="nearest", tolerance=pd.Timedelta("30min"))
        got = result.observations.sel(station=sid)
        np.testing.assert_array_equal(got["obs_time"].values, ref["obs_time"].to_numpy(), sid)
        np.testing.assert_allclose(got.values, ref["tmpc"].to_numpy() + 273.15, atol=1e-4)
        # FNL reports every 5 minutes, mostly "M": the valid report nearest each hour is used
        assert np.isfinite(got.values).all()
    # FNL's hh:55 report stands for the hour (its valid reports come at hh:15, hh:35, hh:55), except
    # at the first hour of the file, which has nothing before: the 00:15 report
    offset = pd.TimedeltaIndex(result.obs_time.sel(station="FNL").values - (INIT + leads).values)
    assert offset[0] == pd.Timedelta("15min") and (offset[1:] == pd.Timedelta("-5min")).all()

    # the scores equal scores' (the package) metrics on the same matched pairs
    obs = result.observations.drop_vars(["obs_time", "valid_time"])
    f = xr.DataArray(fcst, dims="lead_time", coords={"lead_time": leads.values}).broadcast_like(obs)
    domain = result.scores[(result.scores["run_id"] == "colorado") & result.scores["region"].isna()]
    domain = domain.set_index(["metric", "lead_time"])["value"]
    for lead in leads:
        f_k, o_k = f.sel(lead_time=lead), obs.sel(lead_time=lead)
        assert domain[("rmse", lead)] == pytest.approx(float(sc.rmse(f_k, o_k)), abs=1e-4)
        assert domain[("mae", lead)] == pytest.approx(float(sc.mae(f_k, o_k)), abs=1e-4)
        assert domain[("bias", lead)] == pytest.approx(float(sc.additive_bias(f_k, o_k)), abs=1e-4)
