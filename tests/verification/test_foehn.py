"""Tests of the Foehn diagnosis (verification.foehn) and the ``meteolens foehn`` CLI."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.special import expit

from engine.config import Settings
from engine.errors import WxError
from verification.foehn import (
    FoehnError,
    fit_foehn,
    foehn_events,
    foehn_statistics,
    potential_temperature,
    prepare_pair,
    standard_atmosphere_pressure,
)

VALLEY_Z, CREST_Z = 1080.0, 2107.0  # Ellboegen, Sattelberg (data README)


def _data_dir() -> Path:
    root = Settings.from_env().data_root
    d = root / "rfoehnix" / "data-raw" if root else None
    if d is None or not (d / "ellboegen.csv").is_file():
        pytest.skip("sample data rfoehnix/data-raw not available")
    return d


def _read_foehnix_csv(path: Path, start: str, end: str) -> pd.DataFrame:
    # Read directly (not through engine.readers) so these tests check the model, not the reader.
    df = pd.read_csv(path, sep=";", skipinitialspace=True)
    df.index = pd.to_datetime(df.pop("timestamp"), unit="s").rename("time")
    df = df.rename(columns={"dd": "wind_dir", "ff": "wind_speed", "rh": "rh2m", "t": "t2m"})
    df["t2m"] = df["t2m"] + 273.15
    return df.loc[start:end]


@pytest.fixture(scope="module")
def real_pair() -> tuple[pd.DataFrame, pd.DataFrame]:
    d = _data_dir()
    # Two years keep the fit well under a second while covering every season twice.
    return (_read_foehnix_csv(d / "ellboegen.csv", "2017-01-01", "2018-12-31"),
            _read_foehnix_csv(d / "sattelberg.csv", "2017-01-01", "2018-12-31"))


def _fit(valley: pd.DataFrame, crest: pd.DataFrame, **kw: object):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the standard-atmosphere note
        return fit_foehn(valley, crest, valley_elevation=VALLEY_Z, crest_elevation=CREST_Z, **kw)


# ------------------------------------------------------------------ thermodynamics


def test_standard_atmosphere_matches_icao_table() -> None:
    # ICAO Doc 7488 table values: 1000 m → 898.76 hPa, 2000 m → 794.95 hPa, 0 m → 1013.25 hPa.
    assert standard_atmosphere_pressure(0.0) == pytest.approx(101_325.0)
    assert standard_atmosphere_pressure(1000.0) == pytest.approx(89_876.0, rel=2e-4)
    assert standard_atmosphere_pressure(2000.0) == pytest.approx(79_495.0, rel=2e-4)
    with pytest.raises(FoehnError, match="standard atmosphere"):
        standard_atmosphere_pressure(20_000.0)


def test_potential_temperature_dry_adiabat_is_constant() -> None:
    # A dry adiabat through 300 K at 1000 hPa: T = 300 (p/p0)^kappa has theta = 300 K everywhere.
    p = np.array([100_000.0, 85_000.0, 70_000.0])
    t = 300.0 * (p / 100_000.0) ** (287.05 / 1004.6)
    np.testing.assert_allclose(potential_temperature(t, p), 300.0, rtol=1e-12)


def test_prepare_pair_warns_and_uses_station_pressure_when_given() -> None:
    times = pd.date_range("2020-01-01", periods=5, freq="h")
    v = pd.DataFrame({"t2m": 280.0, "sp": 90_000.0}, index=times)
    c = pd.DataFrame({"t2m": 275.0, "sp": 80_000.0}, index=times)
    pair = prepare_pair(v, c, valley_elevation=1000, crest_elevation=2000)
    expected = potential_temperature(275.0, 80_000.0) - potential_temperature(280.0, 90_000.0)
    np.testing.assert_allclose(pair["dtheta"], expected)
    with pytest.warns(UserWarning, match="standard-atmosphere"):
        prepare_pair(v.drop(columns="sp"), c, valley_elevation=1000, crest_elevation=2000)


# ------------------------------------------------------------------ synthetic recovery


def _synthetic(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Δθ from a known mixture with a known logistic dependence on valley rh."""
    rng = np.random.default_rng(seed)
    truth = {"b0": 4.0, "b_rh": -0.08, "mu_f": 1.0, "sd_f": 0.8, "mu_n": 6.0, "sd_n": 2.5}
    rh = rng.uniform(20.0, 100.0, n)
    foehn = rng.random(n) < expit(truth["b0"] + truth["b_rh"] * rh)
    dtheta = np.where(foehn, rng.normal(truth["mu_f"], truth["sd_f"], n), rng.normal(truth["mu_n"], truth["sd_n"], n))
    times = pd.date_range("2015-01-01", periods=n, freq="h", name="time")
    p_v, p_c = standard_atmosphere_pressure(VALLEY_Z), standard_atmosphere_pressure(CREST_Z)
    t_valley = rng.normal(275.0, 5.0, n)
    # Invert theta_crest - theta_valley = dtheta for the crest temperature.
    theta_crest = potential_temperature(t_valley, p_v) + dtheta
    t_crest = theta_crest / (100_000.0 / p_c) ** (287.05 / 1004.6)
    dd = np.where(foehn, 150.0, rng.uniform(0.0, 360.0, n))
    ff = np.where(foehn, rng.gamma(4.0, 2.0, n), rng.gamma(2.0, 1.0, n))
    valley = pd.DataFrame({"t2m": t_valley, "rh2m": rh, "wind_dir": dd, "wind_speed": ff}, index=times)
    crest = pd.DataFrame({"t2m": t_crest, "rh2m": 80.0, "wind_dir": 180.0, "wind_speed": 10.0}, index=times)
    return valley, crest, truth | {"foehn_frac": float(foehn.mean())}


def test_recovers_known_mixture_and_logistic_coefficients() -> None:
    valley, crest, truth = _synthetic(20_000, seed=1)
    fit = _fit(valley, crest, concomitants=["rh"])
    assert fit.converged
    assert fit.mu["foehn"] == pytest.approx(truth["mu_f"], abs=0.1)
    assert fit.sigma["foehn"] == pytest.approx(truth["sd_f"], abs=0.1)
    assert fit.mu["no_foehn"] == pytest.approx(truth["mu_n"], abs=0.15)
    assert fit.sigma["no_foehn"] == pytest.approx(truth["sd_n"], abs=0.15)
    assert fit.coefficients["(Intercept)"] == pytest.approx(truth["b0"], abs=0.5)
    assert fit.coefficients["rh2m"] == pytest.approx(truth["b_rh"], abs=0.01)
    assert (fit.probability >= 0.5).mean() == pytest.approx(truth["foehn_frac"], abs=0.03)
    assert np.all(np.diff(fit.loglik_path) >= -1e-9 * abs(fit.loglik_path[-1]))


def test_component_labels_do_not_depend_on_initial_order() -> None:
    # Same data, negated concomitant: the fit must still call the small-dtheta component Foehn,
    # with the coefficient's sign flipped.
    valley, crest, _ = _synthetic(5_000, seed=2)
    a = _fit(valley, crest, concomitants=["rh"])
    b = _fit(valley.assign(rh2m=-valley["rh2m"]), crest, concomitants=["rh"])
    assert a.mu["foehn"] < a.mu["no_foehn"]
    assert b.coefficients["rh2m"] == pytest.approx(-a.coefficients["rh2m"], rel=1e-4)
    np.testing.assert_allclose(a.probability, b.probability, atol=1e-5)


def test_sector_filter_gives_zero_probability_outside() -> None:
    valley, crest, _ = _synthetic(5_000, seed=3)
    fit = _fit(valley, crest, valley_sector=(100, 200), crest_sector=(90, 270))
    outside = ~valley["wind_dir"].between(100, 200)
    assert (fit.probability[outside] == 0).all()
    assert fit.n_obs == int((~outside).sum())
    # Sectors wrap clockwise through north: (300, 60) keeps 350° and 10°, drops 180°.
    wrap = _fit(valley, crest, valley_sector=(300, 60))
    dd = valley["wind_dir"]
    assert (wrap.probability[dd.between(61, 299)] == 0).all()
    assert wrap.hourly["in_sector"][(dd > 300) | (dd < 60)].all()


def test_events_and_statistics_on_a_hand_made_series() -> None:
    times = pd.date_range("2020-03-01 00:00", periods=10, freq="h")
    hourly = pd.DataFrame(
        {
            "probability": [0.1, 0.6, 0.9, 0.7, 0.2, np.nan, 0.8, 0.8, 0.1, 0.0],
            "t2m": [270, 272, 276, 275, 271, 270, 273, 274, 270, 270.0],
            "wind_speed": [1, 5, 9, 7, 2, 1, 6, 8, 1, 1.0],
        },
        index=times,
    )
    ev = foehn_events(hourly)
    assert list(ev["start"]) == [times[1], times[6]]
    assert list(ev["end"]) == [times[3], times[7]]
    assert list(ev["duration_h"]) == [3.0, 2.0]
    assert list(ev["max_probability"]) == [0.9, 0.8]
    assert ev["mean_wind_speed"].tolist() == pytest.approx([7.0, 7.0])
    # rise: max valley t2m during the event minus the hour before onset (270 → 276, 270 → 274).
    assert ev["temperature_rise"].tolist() == pytest.approx([6.0, 4.0])
    stats = foehn_statistics(hourly)
    assert stats["month"].loc[3, "n_hours"] == 9
    assert stats["month"].loc[3, "foehn_hours"] == 5
    assert stats["hour"].loc[2, "frequency"] == 1.0


# ------------------------------------------------------------------ real data


def test_real_ellboegen_sattelberg_fit(real_pair: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    valley, crest = real_pair
    fit = _fit(valley, crest, concomitants=["rh"], valley_sector=(43, 223), crest_sector=(90, 270))
    assert fit.converged
    # Foehn: well-mixed air, small dtheta; the no-Foehn component is warmer aloft and broader.
    assert fit.mu["foehn"] < fit.mu["no_foehn"]
    assert fit.sigma["foehn"] < fit.sigma["no_foehn"]
    # Generalised EM: the log-likelihood never decreases (to rounding).
    assert np.all(np.diff(fit.loglik_path) >= -1e-9 * abs(fit.loglik_path[-1]))
    # Dry valley air favours Foehn (foehnix finds the same sign for rh at Ellboegen).
    assert fit.coefficients["rh2m"] < 0
    p = fit.probability.dropna()
    assert 0.05 < (p >= 0.5).mean() < 0.5


def test_real_foehn_hours_are_southerly_and_in_the_cold_season(real_pair: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    valley, crest = real_pair
    # No wind sectors here, so the wind direction is free to tell us whether the fit found Foehn.
    fit = _fit(valley, crest, concomitants=["rh", "crest_ff"])
    h = fit.hourly.dropna(subset=["probability"])
    foehn = h[h["probability"] >= 0.5]
    rad = np.deg2rad(foehn["wind_dir"])
    mean_dir = np.rad2deg(np.arctan2(np.sin(rad).mean(), np.cos(rad).mean())) % 360
    # Ellboegen lies where the Wipp valley runs SE-NW: south Foehn blows down-valley from SE-S.
    assert 110 < mean_dir < 190
    in_s = foehn["wind_dir"].between(90, 180).mean()
    assert in_s > 0.6
    assert in_s > h["wind_dir"].between(90, 180).mean() + 0.1
    assert foehn["wind_speed"].mean() > 2 * h.loc[h["probability"] < 0.5, "wind_speed"].mean()
    month = foehn_statistics(fit)["month"]
    cold = month.loc[month.index.isin([10, 11, 12, 1, 2, 3, 4, 5])]
    warm = month.loc[month.index.isin([6, 7, 8])]
    assert cold["foehn_hours"].sum() / cold["n_hours"].sum() > warm["foehn_hours"].sum() / warm["n_hours"].sum()


@pytest.fixture(scope="module")
def full_fit():
    """The issue's foehnix configuration on the whole 2006-2018 record (under a second)."""
    d = _data_dir()
    valley = _read_foehnix_csv(d / "ellboegen.csv", "2006-01-01", "2018-12-31 23:00")
    crest = _read_foehnix_csv(d / "sattelberg.csv", "2006-01-01", "2018-12-31 23:00")
    return _fit(valley, crest, concomitants=["rh", "ff"], valley_sector=(43, 223), crest_sector=(90, 270))


def test_full_record_foehn_frequency_is_near_foehnix(full_fit) -> None:
    fit = full_fit
    assert fit.converged
    h = fit.hours
    # Every hour is accounted for: valid = fitted + outside the sectors; the rest lack a value.
    assert h["valid"] == h["fitted"] + h["outside_sector"] == int(fit.probability.notna().sum())
    assert h["common"] == h["valid"] + h["incomplete"]
    assert h["fitted"] == fit.n_obs
    freq = fit.summary()["foehn_frequency"]
    # foehnix (R) classifies about 18 % of the valid hours as Foehn with this configuration.
    # Our Δθ is a potential-temperature difference, foehnix's the crest temperature plus the
    # dry-adiabatic 10.27 K minus the valley one (a factor about 1.04 and an offset near 1 K
    # apart), and "about 18 %" is itself rounded: ±2 percentage points allow for both (we get
    # 18.0 %). The band still catches real mistakes: without the crest sector the frequency is
    # 24 %, with the Foehn label on the wrong component over 80 %; dropping the concomitants
    # (16.2 %) sits at its edge, which is why their signs are checked on their own below.
    assert 0.16 <= freq <= 0.20
    # The mean probability tells the same story (foehnix reports both).
    assert abs(fit.summary()["mean_probability"] - freq) < 0.02
    assert fit.coefficients["rh2m"] < 0 < fit.coefficients["wind_speed"]


def test_full_record_probability_is_high_in_dry_strong_southerly_wind(full_fit) -> None:
    hv = full_fit.hourly.dropna(subset=["probability"])
    south_dry_strong = hv["wind_dir"].between(150, 210) & (hv["wind_speed"] > 5) & (hv["rh2m"] < 50)
    assert south_dry_strong.sum() > 50  # enough hours for the mean to mean something
    p_in = hv.loc[south_dry_strong, "probability"].mean()
    p_out = hv.loc[~south_dry_strong, "probability"].mean()
    assert p_in > 0.8
    assert p_in > 3 * p_out
    # The seasonal cycle of the Alpine south Foehn: spring and late autumn peaks, summer minimum.
    month = foehn_statistics(full_fit)["month"]["frequency"]
    assert month.loc[[4, 5, 11]].min() > month.loc[[6, 7, 8]].max()


# ------------------------------------------------------------------ model output (Dataset) input


def test_accepts_datasets_of_model_output() -> None:
    valley, crest, _ = _synthetic(3_000, seed=4)
    as_ds = [xr.Dataset.from_dataframe(f).expand_dims(station=["s"]) for f in (valley, crest)]
    a = _fit(valley, crest, concomitants=["rh"])
    b = _fit(*as_ds, concomitants=["rh"])
    np.testing.assert_allclose(a.probability.to_numpy(), b.probability.to_numpy())


# ------------------------------------------------------------------ bad input


def test_bad_inputs_raise_clear_errors() -> None:
    valley, crest, _ = _synthetic(2_000, seed=5)
    with pytest.raises(FoehnError, match="must be above"):
        fit_foehn(valley, crest, valley_elevation=2000, crest_elevation=1000)
    with pytest.raises(FoehnError, match="'t2m'"):
        _fit(valley.drop(columns="t2m"), crest)
    with pytest.raises(FoehnError, match="concomitant 'rh'"):
        _fit(valley.drop(columns="rh2m"), crest, concomitants=["rh"])
    with pytest.raises(FoehnError, match="unknown"):
        _fit(valley, crest, concomitants=["humidity"])
    with pytest.raises(FoehnError, match="sector"):
        _fit(valley, crest, valley_sector=(10, 400))
    with pytest.raises(FoehnError, match="degC"):
        _fit(valley.assign(t2m=valley["t2m"] - 273.15), crest)
    later = crest.set_axis(crest.index + pd.Timedelta("1000D"))
    with pytest.raises(FoehnError, match="do not overlap"):
        _fit(valley, later)
    assert issubclass(FoehnError, WxError)


def test_station_records_with_gaps_use_the_common_valid_hours() -> None:
    valley, crest, _ = _synthetic(3_000, seed=7)
    # The valley misses a block of 200 hours, the crest every 10th hour, and 50 crest values are NaN.
    valley_gappy = valley.drop(valley.index[1_000:1_200])
    crest_gappy = crest.drop(crest.index[::10]).copy()
    crest_gappy.iloc[500:550, crest_gappy.columns.get_loc("t2m")] = np.nan
    fit = _fit(valley_gappy, crest_gappy, concomitants=["rh"])
    common = valley_gappy.index.intersection(crest_gappy.index)
    assert fit.hours["valley"] == 2_800 and fit.hours["crest"] == 2_700
    assert fit.hours["common"] == len(common) == len(fit.hourly)
    assert fit.hours["incomplete"] == int(crest_gappy.loc[common, "t2m"].isna().sum()) > 0
    assert fit.n_obs == fit.hours["valid"] == len(common) - fit.hours["incomplete"]
    assert fit.probability.isna().sum() == fit.hours["incomplete"]
    assert fit.summary()["hours"]["fitted"] == fit.n_obs


def test_duplicate_time_stamps() -> None:
    valley, crest, _ = _synthetic(2_000, seed=8)
    # The same record twice is harmless and kept once: the fit is the one without the repeat.
    repeated = pd.concat([valley, valley.iloc[[10, 11]]])
    a = _fit(valley, crest, concomitants=["rh"])
    b = _fit(repeated, crest, concomitants=["rh"])
    np.testing.assert_allclose(a.probability.to_numpy(), b.probability.to_numpy())
    # Two different records for one hour: an error naming the input and the first such time.
    clash = valley.iloc[[30, 20]].assign(t2m=lambda f: f["t2m"] + 1.0)
    with pytest.raises(FoehnError, match=r"ellboegen\.csv: 2 time stamp\(s\) with different records, first at "
                                         + f"{valley.index[20]:%Y-%m-%d %H:%M}"):
        _fit(pd.concat([valley, clash]), crest, names=("ellboegen.csv", "sattelberg.csv"))


# ------------------------------------------------------------------ CLI


def _cli(argv: list[str]) -> int:
    from app.cli import foehn as cli

    parser = argparse.ArgumentParser(prog="meteolens")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["foehn", *argv])
    return args.func(args)


def _write_foehnix_csv(path: Path, frame: pd.DataFrame) -> Path:
    out = pd.DataFrame(
        {
            "timestamp": (frame.index - pd.Timestamp("1970-01-01")) // pd.Timedelta("1s"),
            "dd": frame["wind_dir"].round().astype(int),
            "ff": frame["wind_speed"].round(1),
            "rh": frame["rh2m"].round().astype(int),
            "t": (frame["t2m"] - 273.15).round(1),
        }
    )
    out.to_csv(path, sep=";", index=False)
    return path


@pytest.fixture()
def station_files(tmp_path: Path) -> tuple[Path, Path]:
    valley, crest, _ = _synthetic(3_000, seed=6)
    return (_write_foehnix_csv(tmp_path / "valley.csv", valley), _write_foehnix_csv(tmp_path / "crest.csv", crest))


def _base_args(v: Path, c: Path, out: Path) -> list[str]:
    return ["--valley", str(v), "--crest", str(c), "--valley-elevation", "1080", "--crest-elevation", "2107",
            "--out", str(out)]


def test_cli_writes_csv_and_json(station_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    v, c = station_files
    out, events = tmp_path / "foehn.csv", tmp_path / "events.csv"
    rc = _cli([*_base_args(v, c, out), "--concomitants", "rh,ff", "--valley-sector", "43", "223",
               "--crest-sector", "90", "270", "--events", str(events), "--json"])
    assert rc == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["converged"] is True
    assert summary["mu"]["foehn"] < summary["mu"]["no_foehn"]
    assert "standard-atmosphere" in captured.err
    table = pd.read_csv(out, parse_dates=["time"])
    assert list(table.columns[:2]) == ["time", "probability"]
    assert len(table) == 3_000
    assert table["probability"].between(0, 1).all()
    assert len(pd.read_csv(events)) == summary["n_events"]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary file


def test_cli_text_output_reports_the_hours_of_gappy_files(
    station_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v, c = station_files
    gappy = tmp_path / "gappy.csv"
    pd.read_csv(c, sep=";").drop(index=range(100, 400)).to_csv(gappy, sep=";", index=False)
    assert _cli([*_base_args(v, gappy, tmp_path / "foehn.csv"), "--concomitants", "rh"]) == 0
    out = capsys.readouterr().out
    assert "hours: 3000 valley and 2700 crest records, 2700 in common, 0 with missing values" in out
    assert "of the 2700 valid hours" in out


def test_cli_fails_cleanly(station_files: tuple[Path, Path], tmp_path: Path) -> None:
    v, c = station_files
    out = tmp_path / "foehn.csv"
    no_rh = tmp_path / "no_rh.csv"
    pd.read_csv(v, sep=";").drop(columns="rh").to_csv(no_rh, sep=";", index=False)
    with pytest.raises(WxError, match="rh"):
        _cli([*_base_args(no_rh, c, out), "--concomitants", "rh"])
    with pytest.raises(WxError, match="sector"):
        _cli([*_base_args(v, c, out), "--valley-sector", "-10", "200"])
    shifted = tmp_path / "shifted.csv"
    frame = pd.read_csv(c, sep=";")
    frame["timestamp"] += 10_000 * 3600
    frame.to_csv(shifted, sep=";", index=False)
    with pytest.raises(WxError, match="overlap"):
        _cli([*_base_args(v, shifted, out)])
    assert not out.exists()
