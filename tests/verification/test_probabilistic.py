"""Ensemble and probability scores against xskillscore, scores, and a perfect-model ensemble."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from verification_factories import make_ensemble

from engine.errors import DimensionError
from verification import brier_score, crps_ensemble, latitude_weights, rank_histogram, reliability, spread_skill

RTOL = 1e-6


@pytest.fixture(scope="module")
def xs() -> Any:
    """``xskillscore``, the reference implementation; only the tests comparing with it skip without it."""
    return pytest.importorskip("xskillscore")


@pytest.fixture(scope="module")
def scores_prob() -> Any:
    """``scores.probability``, the reference implementation; only the tests comparing with it skip without it."""
    return pytest.importorskip("scores.probability")


# ---------------------------------------------------------------- CRPS


def test_crps_matches_xskillscore_and_scores(xs: Any, scores_prob: Any):
    fcst, obs = make_ensemble(seed=1)
    np.testing.assert_allclose(
        crps_ensemble(fcst, obs, preserve_dims="station").values,
        xs.crps_ensemble(obs, fcst, dim="time").values,
        rtol=RTOL,
    )
    np.testing.assert_allclose(
        float(crps_ensemble(fcst, obs)),
        float(scores_prob.crps_for_ensemble(fcst, obs, "member", method="ecdf")),
        rtol=RTOL,
    )
    np.testing.assert_allclose(
        crps_ensemble(fcst, obs, fair=True, preserve_dims="time").values,
        scores_prob.crps_for_ensemble(fcst, obs, "member", method="fair", preserve_dims=["time"]).values,
        rtol=RTOL,
    )


def test_crps_hand_example():
    # members {0, 2}, observation 1: mean |x - y| = 1; sum_ij |xi - xj| = 4.
    # unfair: 1 - 4 / (2 * 2^2) = 0.5; fair: 1 - 4 / (2 * 2 * 1) = 0 (Ferro 2014, eq. 4)
    fcst = xr.DataArray([[0.0, 2.0]], dims=["case", "member"])
    obs = xr.DataArray([1.0], dims=["case"])
    assert float(crps_ensemble(fcst, obs)) == pytest.approx(0.5)
    assert float(crps_ensemble(fcst, obs, fair=True)) == pytest.approx(0.0)
    # a one-member ensemble reduces to the absolute error
    assert float(crps_ensemble(fcst.isel(member=[1]), obs)) == pytest.approx(1.0)


def test_crps_real_ensemble_weighted(era5_ensemble, xs: Any, scores_prob: Any):
    fcst, obs = era5_ensemble
    w = latitude_weights(fcst.lat)
    ours = crps_ensemble(fcst, obs, reduce_dims=["lat", "lon"], weights=w)
    ref = xs.crps_ensemble(obs, fcst, dim=["lat", "lon"], weights=w.broadcast_like(obs.isel(time=0, drop=True)))
    np.testing.assert_allclose(ours.values, ref.values, rtol=RTOL)
    np.testing.assert_allclose(
        float(crps_ensemble(fcst, obs, fair=True)),
        float(scores_prob.crps_for_ensemble(fcst, obs, "member", method="fair")),
        rtol=RTOL,
    )


def test_crps_nan_members_ignored():
    fcst, obs = make_ensemble(seed=2, n_member=5)
    with_nan = fcst.copy()
    with_nan[4, 0, 0] = np.nan
    point = crps_ensemble(with_nan, obs, preserve_dims="all")
    expected = crps_ensemble(fcst.isel(member=slice(0, 4)), obs, preserve_dims="all")
    np.testing.assert_allclose(float(point[0, 0]), float(expected[0, 0]), rtol=1e-12)


def test_crps_member_dim_errors():
    fcst, obs = make_ensemble()
    with pytest.raises(DimensionError, match="no member dim 'ens'"):
        crps_ensemble(fcst, obs, member_dim="ens")
    with pytest.raises(DimensionError, match="obs must not have"):
        crps_ensemble(fcst, fcst)
    with pytest.raises(DimensionError, match="at least 2 members"):
        crps_ensemble(fcst.isel(member=[0]), obs, fair=True)
    with pytest.raises(DimensionError, match="'member'"):
        crps_ensemble(fcst, obs, preserve_dims="member")  # the member dim is consumed by the score
    with pytest.raises(DimensionError, match="not both"):
        crps_ensemble(fcst, obs, reduce_dims="time", preserve_dims="station")


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 8))
def test_crps_nonnegative_and_zero_for_perfect(seed, m):
    rng = np.random.default_rng(seed)
    obs = xr.DataArray(rng.normal(size=6), dims=["case"])
    fcst = xr.DataArray(rng.normal(size=(6, m)), dims=["case", "member"])
    assert float(crps_ensemble(fcst, obs)) >= 0
    perfect = obs.expand_dims(member=m).transpose("case", "member")
    assert float(crps_ensemble(perfect, obs)) == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------- rank histogram


def test_rank_histogram_matches_xskillscore(xs: Any):
    fcst, obs = make_ensemble(seed=3)  # continuous values: no ties, so no randomness
    ours = rank_histogram(fcst, obs)
    ref = xs.rank_histogram(obs, fcst, dim=["time", "station"])
    np.testing.assert_array_equal(ours.values, ref.values)
    assert ours["rank"].values.tolist() == list(range(1, fcst.sizes["member"] + 2))
    per_station = rank_histogram(fcst, obs, preserve_dims="station")
    np.testing.assert_array_equal(per_station.values, xs.rank_histogram(obs, fcst, dim="time").values)


def test_rank_histogram_real_ensemble(era5_ensemble, xs: Any):
    fcst, obs = era5_ensemble
    # GRIB packing makes a few values tie with the truth; ties are broken at random by both
    # implementations (with different generators), so compare exactly where there are none
    f = fcst.stack(point=["time", "lat", "lon"])
    o = obs.stack(point=["time", "lat", "lon"])
    no_tie = ~(f == o).any("member")
    f, o = f.isel(point=np.flatnonzero(no_tie.values)), o.isel(point=np.flatnonzero(no_tie.values))
    np.testing.assert_array_equal(rank_histogram(f, o).values, xs.rank_histogram(o, f, dim="point").values)
    hist = rank_histogram(fcst, obs)
    assert float(hist.sum()) == obs.size


def test_rank_histogram_ties_are_spread():
    # all members and the observation are 0 (dry): ranks spread uniformly over 1..m+1
    fcst = xr.DataArray(np.zeros((4000, 4)), dims=["case", "member"])
    obs = xr.DataArray(np.zeros(4000), dims=["case"])
    hist = rank_histogram(fcst, obs, random_state=1)
    assert float(hist.sum()) == 4000
    assert np.all(np.abs(hist.values / 4000 - 0.2) < 0.03)


# ---------------------------------------------------------------- spread-skill


def test_spread_skill_formula_and_perfect_ensemble():
    fcst, obs = make_ensemble(seed=4, n_member=5)
    out = spread_skill(fcst, obs, preserve_dims="station")
    np.testing.assert_allclose(out.spread.values, np.sqrt(fcst.var("member", ddof=1).mean("time")).values, rtol=1e-12)
    rmse = np.sqrt(((fcst.mean("member") - obs) ** 2).mean("time"))
    np.testing.assert_allclose(out.rmse.values, rmse.values, rtol=RTOL)
    np.testing.assert_allclose(out.ratio.values, np.sqrt(6 / 5) * out.spread.values / out.rmse.values, rtol=1e-12)
    # statistically consistent ensemble: truth and 3 members drawn from the same N(mu, 1)
    rng = np.random.default_rng(5)
    mu = rng.normal(size=20_000)
    members = xr.DataArray(mu[:, None] + rng.normal(size=(20_000, 3)), dims=["case", "member"])
    truth = xr.DataArray(mu + rng.normal(size=20_000), dims=["case"])
    assert float(spread_skill(members, truth).ratio) == pytest.approx(1.0, abs=0.02)  # (m+1)/m corrected


def test_spread_skill_real_ensemble(era5_ensemble):
    fcst, obs = era5_ensemble
    out = spread_skill(fcst, obs, weights=latitude_weights(fcst.lat))
    assert 0.5 < float(out.ratio) < 2.0  # analysis ensemble: spread of the order of the error


# ---------------------------------------------------------------- Brier score, reliability


def test_brier_matches_xskillscore_and_scores(xs: Any, scores_prob: Any):
    fcst, obs = make_ensemble(seed=6)
    thr = 0.5
    ours = brier_score(fcst, obs, threshold=thr, member_dim="member", preserve_dims="station")
    ref = xs.brier_score(obs >= thr, (fcst >= thr).mean("member"), dim="time")
    np.testing.assert_allclose(ours.values, ref.values, rtol=RTOL)
    prob = (fcst >= thr).mean("member")
    event = (obs >= thr).astype(float)
    np.testing.assert_allclose(float(brier_score(prob, event)), float(scores_prob.brier_score(prob, event)), rtol=RTOL)


def test_brier_real_ensemble(era5_ensemble, xs: Any):
    fcst, obs = era5_ensemble
    thr = 273.15  # freezing at 850 hPa
    ours = brier_score(fcst, obs, threshold=thr, member_dim="member", preserve_dims="time")
    ref = xs.brier_score(obs >= thr, (fcst >= thr).mean("member"), dim=["lat", "lon"])
    np.testing.assert_allclose(ours.values, ref.values, rtol=RTOL)


def test_reliability_matches_xskillscore(era5_ensemble, xs: Any):
    fcst, obs = era5_ensemble
    thr = 273.15
    prob = (fcst >= thr).mean("member")
    event = obs >= thr
    edges = np.linspace(0, 1, 6)
    ours = reliability(prob, event.astype(float), bins=edges)
    ref = xs.reliability(event, prob, dim=["time", "lat", "lon"], probability_bin_edges=edges)
    np.testing.assert_allclose(ours.observed_frequency.values, ref.values, rtol=RTOL)
    np.testing.assert_array_equal(ours["count"].values, ref["samples"].values)
    np.testing.assert_allclose(ours.bin.values, ref.forecast_probability.values)
    assert float(ours["count"].sum()) == prob.size  # p = 1 lands in the last (closed) bin
    # the same through the ensemble interface
    xr.testing.assert_allclose(ours, reliability(fcst, obs, bins=edges, threshold=thr, member_dim="member"))


def test_reliability_hand_example():
    p = xr.DataArray([0.05, 0.15, 0.15, 0.95, 1.0], dims=["case"])
    o = xr.DataArray([0.0, 1.0, 0.0, 1.0, 1.0], dims=["case"])
    out = reliability(p, o, bins=[0.0, 0.1, 0.5, 1.0])
    np.testing.assert_allclose(out["count"].values, [1, 2, 2])
    np.testing.assert_allclose(out.observed_frequency.values, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(out.mean_probability.values, [0.05, 0.15, 0.975])


def test_probability_input_errors():
    p = xr.DataArray([0.2, 1.5], dims=["case"])
    o = xr.DataArray([0.0, 1.0], dims=["case"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        brier_score(p, o)
    with pytest.raises(ValueError, match="0/1"):
        brier_score(p.clip(0, 1), o + 0.5)
    with pytest.raises(ValueError, match="threshold is required"):
        brier_score(p, o, member_dim="member")
    with pytest.raises(ValueError, match="increasing"):
        reliability(p.clip(0, 1), o, bins=[0.0, 0.6, 0.5, 1.0])
