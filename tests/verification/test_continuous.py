"""Continuous scores and the shared dim/weight handling, against scores, xskillscore and scipy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from verification_factories import make_field, make_pair

from engine.errors import CoordError, DimensionError
from verification import acc, bias, correlation, latitude_weights, mae, mse, rmse
from verification._dims import resolve_dims, weighted_mean

RTOL = 1e-6


@pytest.fixture(scope="module")
def scores_cont() -> Any:
    """``scores.continuous``, the reference implementation; only the tests comparing with it skip without it."""
    return pytest.importorskip("scores.continuous")


@pytest.fixture(scope="module")
def xs() -> Any:
    """``xskillscore``, the reference implementation; only the tests comparing with it skip without it."""
    return pytest.importorskip("xskillscore")


# ---------------------------------------------------------------- oracles: scores / xskillscore


@pytest.mark.parametrize("preserve", [None, "lead_time", ["y", "x"]])
def test_rmse_mae_bias_match_scores(preserve, scores_cont: Any):
    fcst, obs = make_pair(seed=1)
    pairs = [
        (rmse, scores_cont.rmse),
        (mae, scores_cont.mae),
        (mse, scores_cont.mse),
        (bias, scores_cont.additive_bias),
    ]
    for ours, ref in pairs:
        np.testing.assert_allclose(
            ours(fcst, obs, preserve_dims=preserve).values, ref(fcst, obs, preserve_dims=preserve).values, rtol=RTOL
        )


def test_weighted_rmse_matches_xskillscore_with_nan(xs: Any):
    fcst, obs = make_pair(seed=2, nan_fraction=0.1)
    w = xr.DataArray(np.linspace(0.5, 2.0, fcst.sizes["y"]), dims=["y"])
    w3 = w.broadcast_like(fcst.isel(lead_time=0, drop=True))  # xskillscore wants weights on the reduced dims
    ours = rmse(fcst, obs, reduce_dims=["y", "x"], weights=w)
    ref = xs.rmse(fcst, obs, dim=["y", "x"], weights=w3, skipna=True)
    np.testing.assert_allclose(ours.values, ref.values, rtol=RTOL)
    np.testing.assert_allclose(
        mae(fcst, obs, reduce_dims=["y", "x"], weights=w).values,
        xs.mae(fcst, obs, dim=["y", "x"], weights=w3, skipna=True).values,
        rtol=RTOL,
    )


def test_correlation_matches_xskillscore_and_scipy(xs: Any):
    from scipy.stats import pearsonr

    fcst, obs = make_pair(seed=3, nan_fraction=0.05)
    ours = correlation(fcst, obs, preserve_dims="lead_time")
    ref = xs.pearson_r(fcst, obs, dim=["y", "x"], skipna=True)
    np.testing.assert_allclose(ours.values, ref.values, rtol=RTOL)
    f, o = fcst.values.ravel(), obs.values.ravel()
    ok = np.isfinite(f) & np.isfinite(o)
    np.testing.assert_allclose(float(correlation(fcst, obs)), pearsonr(f[ok], o[ok]).statistic, rtol=RTOL)


def test_weighted_correlation_matches_xskillscore(xs: Any):
    fcst, obs = make_pair(seed=4)
    w = xr.DataArray(np.linspace(0.1, 1.0, fcst.sizes["x"]), dims=["x"])
    ours = correlation(fcst, obs, reduce_dims=["y", "x"], weights=w)
    ref = xs.pearson_r(fcst, obs, dim=["y", "x"], weights=w.broadcast_like(fcst.isel(lead_time=0, drop=True)))
    np.testing.assert_allclose(ours.values, ref.values, rtol=RTOL)


def test_acc_centred_and_uncentred_against_scipy():
    from scipy.spatial.distance import cosine
    from scipy.stats import pearsonr

    fcst, obs = make_pair(seed=5)
    clim = 0.3 + 0.1 * make_field(n_lead=1, seed=9).isel(lead_time=0, drop=True)
    fa, oa = (fcst - clim).values.ravel(), (obs - clim).values.ravel()
    # uncentred ACC is the cosine similarity of the anomaly vectors (Wilks 2019 eq. 9.64)
    np.testing.assert_allclose(float(acc(fcst, obs, climatology=clim, centred=False)), 1 - cosine(fa, oa), rtol=RTOL)
    # centred ACC is the Pearson correlation of the anomalies (Wilks 2019 eq. 9.65)
    np.testing.assert_allclose(float(acc(fcst, obs, climatology=clim)), pearsonr(fa, oa).statistic, rtol=RTOL)
    lat = xr.DataArray(np.linspace(-60, 60, fcst.sizes["y"]), dims=["y"], coords={"y": fcst.y})
    w = latitude_weights(lat)
    wfull = np.broadcast_to(w.values[None, :, None], fcst.shape).ravel()
    np.testing.assert_allclose(
        float(acc(fcst, obs, climatology=clim, centred=False, weights=w)), 1 - cosine(fa, oa, w=wfull), rtol=RTOL
    )


def test_continuous_on_real_radar(radar_pair, scores_cont: Any, xs: Any):
    fcst, obs = radar_pair
    fcst, obs = fcst[200:400, 250:450], obs[200:400, 250:450]  # a small slice, keeps it fast
    for ours, ref in [(rmse, scores_cont.rmse), (mae, scores_cont.mae), (bias, scores_cont.additive_bias)]:
        np.testing.assert_allclose(float(ours(fcst, obs)), float(ref(fcst, obs)), rtol=RTOL)
    np.testing.assert_allclose(
        float(correlation(fcst, obs)), float(xs.pearson_r(fcst, obs, dim=["y", "x"], skipna=True)), rtol=RTOL
    )


def test_latitude_weights():
    lat = np.array([90.0, 45.0, 0.0, -45.0, -90.0])
    w = latitude_weights(lat)
    # cos(lat) = [0, 1/sqrt(2), 1, 1/sqrt(2), 0], mean (1 + sqrt(2)) / 5
    cos = np.array([0.0, 2**-0.5, 1.0, 2**-0.5, 0.0])
    np.testing.assert_allclose(w.values, cos / ((1 + np.sqrt(2)) / 5), rtol=1e-12)
    assert w.values[0] == 0.0 and w.dims == ("lat",)
    assert float(w.mean()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="lat must lie in"):
        latitude_weights([91.0])
    with pytest.raises(DimensionError, match="1-D"):
        latitude_weights(np.zeros((2, 2)))


def test_weighted_mean_ignores_nan_points_in_denominator():
    data = xr.DataArray([1.0, np.nan, 3.0], dims=["x"])
    w = xr.DataArray([1.0, 5.0, 3.0], dims=["x"])
    # (1*1 + 3*3) / (1 + 3): the NaN point's weight is dropped
    assert float(weighted_mean(data, dims=["x"], weights=w)) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="NaN"):
        weighted_mean(data, dims=["x"], weights=xr.DataArray([1.0, np.nan, 1.0], dims=["x"]))
    with pytest.raises(ValueError, match="non-negative"):
        weighted_mean(data, dims=["x"], weights=xr.DataArray([1.0, -1.0, 1.0], dims=["x"]))
    with pytest.raises(CoordError, match="weights coordinates"):
        weighted_mean(
            data.assign_coords(x=[0, 1, 2]), dims=["x"], weights=xr.DataArray([1.0, 1, 1], coords={"x": [5, 6, 7]})
        )


# ---------------------------------------------------------------- dims and errors


def test_both_reduce_and_preserve_raise():
    fcst, obs = make_pair()
    with pytest.raises(DimensionError, match="not both"):
        rmse(fcst, obs, reduce_dims="x", preserve_dims="y")


def test_unknown_dim_is_named():
    fcst, obs = make_pair()
    with pytest.raises(DimensionError, match="'member'"):
        rmse(fcst, obs, reduce_dims=["x", "member"])
    with pytest.raises(DimensionError, match="'station'"):
        bias(fcst, obs, preserve_dims="station")
    with pytest.raises(DimensionError, match="more than once"):
        resolve_dims(fcst, obs, reduce_dims=["x", "x"])


def test_resolve_dims_variants():
    fcst, obs = make_pair()
    assert resolve_dims(fcst, obs) == ["lead_time", "y", "x"]
    assert resolve_dims(fcst, obs, reduce_dims="all") == ["lead_time", "y", "x"]
    assert resolve_dims(fcst, obs, preserve_dims="all") == []
    assert resolve_dims(fcst, obs, preserve_dims="lead_time") == ["y", "x"]
    assert resolve_dims(fcst, obs, reduce_dims=["x", "y"]) == ["y", "x"]
    assert resolve_dims(fcst, obs, exclude=["lead_time"]) == ["y", "x"]


def test_dataset_inputs_work_per_variable():
    fcst, obs = make_pair()
    ds_f, ds_o = xr.Dataset({"a": fcst, "b": 2 * fcst}), xr.Dataset({"a": obs, "b": 2 * obs})
    out = rmse(ds_f, ds_o, preserve_dims="lead_time")
    np.testing.assert_allclose(out["b"].values, 2 * out["a"].values, rtol=RTOL)


# ---------------------------------------------------------------- properties (hypothesis)

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
shapes = st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 5))


def _da(values: np.ndarray) -> xr.DataArray:
    return xr.DataArray(values, dims=["t", "y", "x"])


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, shapes, elements=finite))
def test_rmse_of_identical_fields_is_zero(values):
    x = _da(values)
    assert float(rmse(x, x)) == 0.0
    assert float(mae(x, x)) == 0.0


@settings(max_examples=30, deadline=None)
@given(st.data(), shapes)
def test_scores_nonnegative_and_shape_preserving(data, shape):
    f = _da(data.draw(arrays(np.float64, shape, elements=finite)))
    o = _da(data.draw(arrays(np.float64, shape, elements=finite)))
    assert float(rmse(f, o)) >= 0.0
    assert float(mae(f, o)) >= 0.0
    assert float(rmse(f, o)) >= float(mae(f, o)) - 1e-9 * (1 + float(mae(f, o)))  # power-mean inequality
    point = rmse(f, o, preserve_dims="all")
    assert point.shape == f.shape and point.dims == f.dims
    # atol: squaring a difference below 1e-154 underflows to 0, which is fine
    np.testing.assert_allclose(point.values, np.abs(f.values - o.values), rtol=1e-12, atol=1e-100)


@settings(max_examples=25, deadline=None)
@given(st.data(), shapes)
def test_invariant_under_permutation_of_reduced_dims(data, shape):
    f = _da(data.draw(arrays(np.float64, shape, elements=finite)))
    o = _da(data.draw(arrays(np.float64, shape, elements=finite)))
    perm_y = data.draw(st.permutations(range(shape[1])))
    perm_x = data.draw(st.permutations(range(shape[2])))
    fp, op = f.isel(y=list(perm_y), x=list(perm_x)), o.isel(y=list(perm_y), x=list(perm_x))
    for metric in (rmse, mae, bias):
        np.testing.assert_allclose(
            metric(f, o, preserve_dims="t").values, metric(fp, op, preserve_dims="t").values, rtol=1e-9, atol=1e-9
        )
    # transposing the array does not change anything either
    np.testing.assert_allclose(float(rmse(f, o)), float(rmse(f.transpose("x", "t", "y"), o)), rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_correlation_in_unit_interval(data):
    shape = (1, 4, 6)
    f = _da(data.draw(arrays(np.float64, shape, elements=st.floats(-10, 10))))
    o = _da(data.draw(arrays(np.float64, shape, elements=st.floats(-10, 10))))
    r = float(correlation(f, o))
    assert np.isnan(r) or -1 - 1e-12 <= r <= 1 + 1e-12


def test_metrics_import_with_core_dependencies_only():
    import subprocess
    import sys

    # poison the optional packages: importing any of them would raise ImportError
    blocked = ("torch", "pysteps", "scores", "xskillscore", "skimage", "cv2", "duckdb", "zarr", "properscoring")
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "import verification, verification.metrics\n"
        "print(len(verification.__all__))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
