"""Contingency table and categorical scores, against pysteps, scores and Wilks' Finley example."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from verification_factories import make_field, make_pair

from engine.errors import DimensionError
from verification import (
    ContingencyTable,
    contingency_table,
    csi,
    ets,
    far,
    frequency_bias,
    hss,
    pod,
    scores_from_table,
)

RTOL = 1e-6


@pytest.fixture(scope="module")
def pysteps_cat() -> Any:
    """``pysteps.verification.detcatscores``, the reference implementation; only the tests comparing with it skip without it."""
    return pytest.importorskip("pysteps.verification.detcatscores")


@pytest.fixture(scope="module")
def scores_cat() -> Any:
    """``scores.categorical``, the reference implementation; only the tests comparing with it skip without it."""
    return pytest.importorskip("scores.categorical")


PYSTEPS_NAMES = {"pod": "POD", "far": "FAR", "csi": "CSI", "frequency_bias": "BIAS", "ets": "ETS", "hss": "HSS"}
SCORES_METHODS = {
    "pod": "probability_of_detection",
    "far": "false_alarm_ratio",
    "csi": "critical_success_index",
    "frequency_bias": "frequency_bias",
    "ets": "equitable_threat_score",
    "hss": "heidke_skill_score",
}


def _table(a: float, b: float, c: float, d: float) -> xr.Dataset:
    return xr.Dataset({"hits": a, "false_alarms": b, "misses": c, "correct_negatives": d}).astype(float)


def test_finley_tornado_example_wilks():
    # Finley (1884) tornado forecasts, Wilks (2019) Table 9.2 / Example 9.1-9.2 (section 9.2.2):
    # a = 28 hits, b = 72 false alarms, c = 23 misses, d = 2680 correct negatives.
    # Wilks quotes TS = 0.228, B = 1.96, FAR = 0.720, H = 0.549, HSS = 0.355, GSS (ETS) = 0.216.
    s = scores_from_table(_table(28, 72, 23, 2680))
    expected = {"csi": 0.228, "frequency_bias": 1.96, "far": 0.720, "pod": 0.549, "hss": 0.355, "ets": 0.216}
    for name, value in expected.items():
        decimals = len(repr(value).split(".")[1])  # agree to the precision Wilks prints
        assert float(s[name]) == pytest.approx(value, abs=0.5 * 10**-decimals), name


def _check_against_pysteps(pysteps_cat: Any, fcst: np.ndarray, obs: np.ndarray, thr: float, ours: xr.Dataset) -> None:
    # pysteps uses value > thr; our event is value >= thr: identical when no value equals thr
    assert not np.isin(thr, fcst) and not np.isin(thr, obs)
    ref = pysteps_cat.det_cat_fct(fcst, obs, thr, scores=list(PYSTEPS_NAMES.values()))
    for name, ps_name in PYSTEPS_NAMES.items():
        np.testing.assert_allclose(float(ours[name]), ref[ps_name], rtol=RTOL, err_msg=name)


def test_scores_match_pysteps_random(pysteps_cat: Any):
    fcst, obs = make_pair(seed=11, n_lead=4, ny=20, nx=20)
    for thr in (-0.5, 0.3, 1.2):
        _check_against_pysteps(
            pysteps_cat, fcst.values, obs.values, thr, scores_from_table(contingency_table(fcst, obs, threshold=thr))
        )


def test_scores_match_pysteps_on_real_radar(radar_pair, pysteps_cat: Any):
    fcst, obs = radar_pair
    valid = np.isfinite(fcst.values) & np.isfinite(obs.values)
    # pysteps counts NaN (outside the radar range) as non-events; we exclude them, so give pysteps
    # only the valid pixels
    for thr in (0.15, 1.05, 5.05):
        ours = scores_from_table(contingency_table(fcst, obs, threshold=thr))
        _check_against_pysteps(pysteps_cat, fcst.values[valid], obs.values[valid], thr, ours)


def test_scores_match_scores_package_with_preserved_dims(scores_cat: Any):
    fcst, obs = make_pair(seed=12, n_lead=3, ny=15, nx=15)
    thr = 0.4
    manager = scores_cat.BinaryContingencyManager(fcst >= thr, obs >= thr).transform(preserve_dims=["lead_time"])
    table = contingency_table(fcst, obs, threshold=thr, preserve_dims="lead_time")
    for name, method in SCORES_METHODS.items():
        np.testing.assert_allclose(
            scores_from_table(table)[name].values, getattr(manager, method)().values, rtol=RTOL, err_msg=name
        )


def test_table_counts_hand_example_with_nan():
    fcst = xr.DataArray([0.0, 1.0, 2.0, 1.0, np.nan, 3.0], dims=["x"])
    obs = xr.DataArray([0.0, 1.0, 0.5, 2.0, 5.0, np.nan], dims=["x"])
    t = contingency_table(fcst, obs, threshold=1.0)
    # event = value >= 1: pairs (0,0) cn, (1,1) hit (threshold counts), (2,.5) fa, (1,2) hit; NaN pairs excluded
    assert (float(t.hits), float(t.false_alarms), float(t.misses), float(t.correct_negatives)) == (2, 1, 0, 1)


def test_threshold_sequence_adds_dim_and_functions_agree():
    fcst, obs = make_pair(seed=13)
    thr = [-0.5, 0.0, 0.7]
    table = contingency_table(fcst, obs, threshold=thr, preserve_dims="lead_time")
    assert table.hits.dims == ("lead_time", "threshold") or set(table.hits.dims) == {"lead_time", "threshold"}
    np.testing.assert_array_equal(table.threshold.values, thr)
    for func, name in [
        (pod, "pod"),
        (far, "far"),
        (csi, "csi"),
        (ets, "ets"),
        (hss, "hss"),
        (frequency_bias, "frequency_bias"),
    ]:
        direct = func(fcst, obs, threshold=thr, preserve_dims="lead_time")
        from_table = func(table=table)
        xr.testing.assert_allclose(direct, from_table)
        xr.testing.assert_allclose(direct, scores_from_table(table)[name].rename(name))
        # each threshold equals the scalar-threshold result
        single = func(fcst, obs, threshold=0.7, preserve_dims="lead_time")
        np.testing.assert_allclose(direct.sel(threshold=0.7).values, single.values, rtol=1e-12)


def test_weighted_table_is_weighted_count():
    fcst, obs = make_pair(seed=14)
    w = xr.DataArray(np.full(fcst.sizes["x"], 2.0), dims=["x"])
    np.testing.assert_allclose(
        contingency_table(fcst, obs, threshold=0.2, weights=w).hits,
        2 * contingency_table(fcst, obs, threshold=0.2).hits,
    )


def test_accumulator_merge_equals_union():
    fcst, obs = make_pair(seed=15, n_lead=6)
    thr = [0.0, 0.5]
    a = ContingencyTable(thr)
    b = ContingencyTable(thr)
    a.update(fcst.isel(lead_time=slice(0, 2)), obs.isel(lead_time=slice(0, 2)))
    a.update(fcst.isel(lead_time=slice(2, 3)), obs.isel(lead_time=slice(2, 3)))
    b.update(fcst.isel(lead_time=slice(3, 6)), obs.isel(lead_time=slice(3, 6)))
    merged = a.merge(b)
    whole = contingency_table(fcst, obs, threshold=thr)
    xr.testing.assert_allclose(merged.table, whole)
    xr.testing.assert_allclose(merged.compute(), scores_from_table(whole))
    assert merged.n_updates == 3
    with pytest.raises(ValueError, match="thresholds"):
        a.merge(ContingencyTable(1.0))
    with pytest.raises(ValueError, match="empty"):
        ContingencyTable(1.0).compute()


def test_accumulator_refuses_mismatched_coords():
    fcst, obs = make_pair(seed=16, n_lead=4)
    acc = ContingencyTable(0.0, preserve_dims="lead_time")
    acc.update(fcst.isel(lead_time=[0, 1]), obs.isel(lead_time=[0, 1]))
    with pytest.raises(DimensionError, match="different coordinates"):
        acc.update(fcst.isel(lead_time=[2, 3]), obs.isel(lead_time=[2, 3]))


def test_bad_inputs():
    fcst, obs = make_pair()
    with pytest.raises(DimensionError, match="not both"):
        pod(fcst, obs, threshold=0.0, reduce_dims="x", preserve_dims="y")
    with pytest.raises(DimensionError, match="'station'"):
        csi(fcst, obs, threshold=0.0, reduce_dims="station")
    with pytest.raises(ValueError, match="NaN"):
        contingency_table(fcst, obs, threshold=np.nan)
    with pytest.raises(ValueError, match="not both"):
        pod(fcst, obs, threshold=0.0, table=contingency_table(fcst, obs, threshold=0.0))
    with pytest.raises(ValueError, match="required"):
        pod(fcst, obs)
    with pytest.raises(ValueError, match="lacks"):
        scores_from_table(xr.Dataset({"hits": 1.0}))
    with pytest.raises(ValueError, match="unknown categorical"):
        scores_from_table(_table(1, 2, 3, 4), ["pod", "accuracy"])


def test_undefined_scores_are_nan_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = scores_from_table(_table(0, 0, 0, 10))  # no events at all
    assert np.isnan(float(s.pod)) and np.isnan(float(s.far)) and np.isnan(float(s.csi))


# ---------------------------------------------------------------- properties

values = st.floats(0, 10, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(st.data(), st.integers(1, 30), st.floats(0, 10))
def test_scores_within_ranges(data, n, thr):
    f = xr.DataArray(data.draw(arrays(np.float64, n, elements=values)), dims=["x"])
    o = xr.DataArray(data.draw(arrays(np.float64, n, elements=values)), dims=["x"])
    s = scores_from_table(contingency_table(f, o, threshold=thr))
    for name in ("pod", "far", "csi"):
        v = float(s[name])
        assert np.isnan(v) or 0.0 <= v <= 1.0, name
    e = float(s.ets)
    assert np.isnan(e) or -1 / 3 - 1e-12 <= e <= 1 + 1e-12
    h = float(s.hss)
    assert np.isnan(h) or h <= 1 + 1e-12
    b = float(s.frequency_bias)
    assert np.isnan(b) or b >= 0
    t = contingency_table(f, o, threshold=thr)
    assert float(t.hits + t.misses + t.false_alarms + t.correct_negatives) == n


@settings(max_examples=25, deadline=None)
@given(st.data(), st.integers(2, 20), st.integers(1, 19))
def test_merging_equals_union(data, n, split):
    split = min(split, n - 1)
    f = xr.DataArray(data.draw(arrays(np.float64, n, elements=values)), dims=["case"])
    o = xr.DataArray(data.draw(arrays(np.float64, n, elements=values)), dims=["case"])
    a = ContingencyTable(2.5).update(f[:split], o[:split])
    b = ContingencyTable(2.5).update(f[split:], o[split:])
    xr.testing.assert_equal(a.merge(b).table, contingency_table(f, o, threshold=2.5))


def test_permutation_invariance():
    fcst = make_field(seed=17)
    obs = make_field(seed=18)
    rng = np.random.default_rng(0)
    py, px = rng.permutation(fcst.sizes["y"]), rng.permutation(fcst.sizes["x"])
    a = contingency_table(fcst, obs, threshold=0.1, preserve_dims="lead_time")
    b = contingency_table(fcst.isel(y=py, x=px), obs.isel(y=py, x=px), threshold=0.1, preserve_dims="lead_time")
    xr.testing.assert_equal(a, b)
