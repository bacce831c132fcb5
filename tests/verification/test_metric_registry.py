"""The metric records: one per metric the pipeline computes, consistent with what it computes.

Every check runs the pipeline's own scoring (:func:`verification.pipeline.score_fields`) on tiny
synthetic fields made here, so it needs no sample data and no reference library.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from engine.errors import UnknownNameError
from verification.metrics.registry import (
    METRIC_INFO,
    default_metrics,
    metric_display_factor,
    metric_info,
    metric_units,
    orientation,
    station_metrics,
)
from verification.pipeline import METRICS, VerificationError, VerifyOptions, parse_thresholds, score_fields

THRESHOLDS = (0.5, 2.0)
WINDOWS = (1, 3)


def _fields(scale: float = 1.0, seed: int = 0) -> dict[str, xr.DataArray]:
    """Rain-like obs on (lead_time, y, x), a 3-member ensemble around a shifted copy, a climatology."""
    rng = np.random.default_rng(seed)
    leads = pd.to_timedelta([1, 2], "h")
    obs = np.clip(rng.gamma(0.8, 2.0, size=(2, 12, 14)) - 0.5, 0.0, None)
    fc = np.roll(obs, 2, axis=-1)[:, None] + rng.normal(0.0, 0.7, size=(2, 3, 12, 14))
    coords = {"lead_time": leads, "y": np.arange(12), "x": np.arange(14)}
    return {
        "obs": xr.DataArray(scale * obs, dims=("lead_time", "y", "x"), coords=coords),
        "ens": xr.DataArray(scale * fc, dims=("lead_time", "member", "y", "x"), coords=coords),
        "clim": xr.DataArray(
            np.full((12, 14), scale * 0.9), dims=("y", "x"), coords={"y": coords["y"], "x": coords["x"]}
        ),
    }


def _score(fcst: xr.DataArray, obs: xr.DataArray, clim: xr.DataArray, scale: float = 1.0) -> pd.DataFrame:
    thr = tuple(scale * t for t in THRESHOLDS)
    return score_fields(
        fcst, obs, metrics=list(METRIC_INFO), thresholds=thr, fss_thresholds=thr, windows=WINDOWS, climatology=clim
    )


@pytest.fixture(scope="module")
def scored() -> pd.DataFrame:
    f = _fields()
    return _score(f["ens"], f["obs"], f["clim"])


def test_every_metric_the_pipeline_computes_has_a_record(scored: pd.DataFrame) -> None:
    # asked for every record, the scoring writes every record's metric and nothing else
    assert set(scored["metric"]) == set(METRIC_INFO)
    assert METRICS is METRIC_INFO  # the pipeline's METRICS are the records
    for case in ("grid", "latlon", "stations"):
        for ensemble in (False, True):
            names = default_metrics(case, ensemble=ensemble)
            assert names and set(names) <= set(METRIC_INFO)
            assert ensemble or not any(metric_info(m).needs_ensemble for m in names)
    assert set(default_metrics("stations", ensemble=True)) <= set(station_metrics())


def test_the_defaults_per_case_are_those_the_pipeline_always_had() -> None:
    # the lists the pipeline held before the records chose them (order of the rows it writes)
    assert default_metrics("grid", ensemble=True) == (
        "csi", "pod", "far", "ets", "frequency_bias", "fss", "bias", "mae", "rmse", "crps",
    )  # fmt: skip
    assert set(default_metrics("latlon", ensemble=True)) == {
        "rmse", "bias", "acc", "crps", "spread", "rmse_ensemble_mean", "spread_skill",
    }  # fmt: skip
    assert default_metrics("stations", ensemble=False) == ("bias", "mae", "rmse")
    assert station_metrics() == ("bias", "mae", "rmse", "crps")


def test_needs_match_the_rows_written(scored: pd.DataFrame) -> None:
    for name, info in METRIC_INFO.items():
        rows = scored[scored["metric"] == name]
        assert rows["threshold"].notna().all() == info.needs_threshold, name
        assert rows["scale"].notna().all() == info.needs_window, name
        if info.needs_threshold:
            assert set(rows["threshold"]) == set(THRESHOLDS), name
        if info.needs_window:
            assert set(rows["scale"]) == set(WINDOWS), name
    # a deterministic forecast gets no ensemble metric; a climatology is required for the ACC
    f = _fields()
    det = score_fields(f["ens"].isel(member=0), f["obs"], metrics=list(METRIC_INFO), climatology=f["clim"])
    assert {m for m in det["metric"] if metric_info(m).needs_ensemble} == set()
    with pytest.raises(VerificationError, match="acc needs a climatology"):
        score_fields(f["ens"], f["obs"], metrics=[m for m in METRIC_INFO if metric_info(m).needs_climatology])


def test_perfect_values_and_bounds_agree_with_the_scores(scored: pd.DataFrame) -> None:
    f = _fields()
    perfect_ens = f["obs"].expand_dims(member=3).transpose("lead_time", "member", "y", "x").copy()
    perfect = _score(perfect_ens, f["obs"], f["clim"])
    for name, info in METRIC_INFO.items():
        got = perfect.loc[perfect["metric"] == name, "value"].to_numpy()
        if info.perfect_value is not None and name != "spread_skill":  # 0 / 0 for a perfect ensemble
            np.testing.assert_allclose(got, info.perfect_value, atol=1e-12, err_msg=name)
        lo, hi = info.bounds
        vals = scored.loc[scored["metric"] == name, "value"].dropna().to_numpy()
        assert vals.size and ((vals >= lo) & (vals <= hi)).all(), (name, vals)
    # spread / skill is 0 / 0 for identical members; its target is met by a consistent ensemble:
    # truth and members drawn from one distribution
    rng = np.random.default_rng(1)
    draws = xr.DataArray(rng.normal(size=(1, 21, 200, 200)), dims=("lead_time", "member", "y", "x"))
    ss = score_fields(draws.isel(member=slice(1, None)), draws.isel(member=0), metrics=["spread_skill"])
    assert ss["value"].item() == pytest.approx(metric_info("spread_skill").perfect_value, abs=0.02)


def test_orientation_agrees_with_a_worse_forecast(scored: pd.DataFrame) -> None:
    # the ensemble is a shifted, noisy copy of the truth: every oriented score must be worse
    # than its perfect value in the direction its record says
    f = _fields()
    wetter = _score(f["ens"] + 1.0, f["obs"], f["clim"])
    for name, info in METRIC_INFO.items():
        vals = scored.loc[scored["metric"] == name, "value"].dropna().to_numpy()
        if info.orientation == "lower":
            assert (vals > info.perfect_value).all(), name
        elif info.orientation == "higher":
            assert (vals < info.perfect_value).all(), name
        elif info.orientation == "target":
            # a forecast 1 mm/h too wet everywhere misses every target (bias 0, frequency bias 1)
            off = wetter.loc[wetter["metric"] == name, "value"].dropna().to_numpy()
            assert off.size and (np.abs(off - info.perfect_value) > 0.1).all(), name
        else:
            assert info.perfect_value is None
        assert orientation(name) == info.orientation


def test_units_kind_agrees_with_how_the_scores_scale(scored: pd.DataFrame) -> None:
    # the same fields in other units (x 10, thresholds and climatology too): each score scales
    # by 10 ** units_power (errors x 10, the MSE x 100, skill scores unchanged)
    c = 10.0
    f = _fields(scale=c)
    rescaled = _score(f["ens"], f["obs"], f["clim"], scale=c)
    assert len(rescaled) == len(scored)
    for name, info in METRIC_INFO.items():
        a = scored.loc[scored["metric"] == name, "value"].to_numpy()
        b = rescaled.loc[rescaled["metric"] == name, "value"].to_numpy()
        np.testing.assert_allclose(b, a * c**info.units_power, rtol=1e-10, err_msg=name)
        assert metric_display_factor(name, c) == pytest.approx(c**info.units_power)


def test_display_units() -> None:
    assert metric_units("rmse", "dam") == "dam"
    assert metric_units("CRPS", "K") == "K"
    assert metric_units("spread", "hPa") == "hPa"
    assert metric_units("mse", "K") == "K²"
    assert metric_units("mse", "mm h⁻¹") == "(mm h⁻¹)²"
    assert metric_units("csi", "mm h⁻¹") == ""
    assert metric_units("rmse", "") == ""
    with pytest.raises(UnknownNameError, match="unknown metric 'bias_abs'"):
        metric_units("bias_abs", "K")
    with pytest.raises(UnknownNameError):
        orientation("brier")


def test_options_take_metric_names_from_the_records() -> None:
    assert VerifyOptions(metrics=("CSI", "rmse")).metrics == ("csi", "rmse")
    with pytest.raises(UnknownNameError, match="unknown metric 'nonsense'"):
        VerifyOptions(metrics=("nonsense",))
    info = metric_info("fss")
    assert info.needs_threshold and info.needs_window and not info.needs_ensemble
    with pytest.raises(AttributeError):
        info.orientation = "lower"  # type: ignore[misc]  # frozen


def test_one_threshold_parser() -> None:
    assert parse_thresholds(["1", "5,10"]) == (1.0, 5.0, 10.0)
    assert parse_thresholds("0.1, 1,5") == (0.1, 1.0, 5.0)
    assert parse_thresholds((0.5, 2)) == (0.5, 2.0)
    assert parse_thresholds(3) == (3.0,)
    assert VerifyOptions(thresholds=("0.1,1",)).thresholds == (0.1, 1.0)  # type: ignore[arg-type]
    with pytest.raises(VerificationError, match="--thresholds: 'heavy' is not a number"):
        parse_thresholds(["1", "heavy"], name="--thresholds")
    with pytest.raises(VerificationError, match="is not a finite number"):
        parse_thresholds(["nan"])
    with pytest.raises(VerificationError, match="values repeat"):
        parse_thresholds("1,1.0")
    with pytest.raises(VerificationError, match="not a number"):
        parse_thresholds([True])
    assert math.isinf(metric_info("hss").bounds[0])
