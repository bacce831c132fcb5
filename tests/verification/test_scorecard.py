"""Scorecards: skill against a baseline per variable, lead time, metric and threshold; hand-computed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.errors import UnknownNameError
from verification.scorecard import score_levels, scorecard, skill, skill_definition


def _row(
    model: str, metric: str, value: float, lead: float = 1.0, threshold: float | None = None, **kw: object
) -> dict:
    return {
        "model": model,
        "variable": kw.get("variable", "precip_rate"),
        "lead_hours": lead,
        "metric": metric,
        "threshold": np.nan if threshold is None else threshold,
        "scale": kw.get("scale", np.nan),
        "region": kw.get("region"),
        "value": value,
    }


@pytest.fixture()
def scores() -> pd.DataFrame:
    return pd.DataFrame(
        [
            # two runs of "nowcast" (averaged), one of "persistence", CSI at two thresholds
            _row("nowcast", "csi", 0.6, threshold=0.1),
            _row("nowcast", "csi", 0.8, threshold=0.1),
            _row("nowcast", "csi", 0.3, threshold=5.0),
            _row("persistence", "csi", 0.5, threshold=0.1),
            _row("persistence", "csi", 0.1, threshold=5.0),
            _row("nowcast", "rmse", 1.0),
            _row("persistence", "rmse", 4.0),
            _row("nowcast", "rmse", 9.0, region="station:A"),  # a station score: not the domain's
            _row("persistence", "rmse", 3.0, region="station:A"),
            _row("nowcast", "bias", -0.5),
            _row("persistence", "bias", 2.0),
            _row("nowcast", "frequency_bias", 1.2, threshold=1.0),
            _row("persistence", "frequency_bias", 0.6, threshold=1.0),
            _row("nowcast", "spread", 1.0),
            _row("persistence", "spread", 2.0),
            _row("nowcast", "rmse", 2.0, lead=2.0),  # no baseline at this lead time
        ]
    )


def _cell(card: pd.DataFrame, model: str, metric: str, **sel: object) -> pd.Series:
    rows = card[(card["model"] == model) & (card["metric"] == metric)]
    for k, v in sel.items():
        rows = rows[rows[k].isna()] if v is None else rows[rows[k] == v]
    assert len(rows) == 1, (model, metric, sel, rows)
    return rows.iloc[0]


def test_skill_per_threshold_not_averaged(scores: pd.DataFrame) -> None:
    card = scorecard(scores, "persistence", lead="lead_hours")
    low = _cell(card, "nowcast", "csi", threshold=0.1)
    high = _cell(card, "nowcast", "csi", threshold=5.0)
    # higher is better: score - baseline, threshold by threshold; the runs are averaged first
    assert (low["value"], low["n"], low["baseline"]) == (pytest.approx(0.7), 2, 0.5)
    assert low["skill"] == pytest.approx(0.2)
    assert high["skill"] == pytest.approx(0.2)
    # (averaging over the thresholds, as the page did, gives 0.6 - 0.3 = 0.3 instead)


def test_skill_follows_the_orientation(scores: pd.DataFrame) -> None:
    card = scorecard(scores, "persistence", lead="lead_hours")
    # lower is better: 1 - 1 / 4
    assert _cell(card, "nowcast", "rmse", region=None, lead_hours=1.0)["skill"] == pytest.approx(0.75)
    # per region: 1 - 9 / 3
    assert _cell(card, "nowcast", "rmse", region="station:A")["skill"] == pytest.approx(-2.0)
    # target 0: 1 - |-0.5| / |2|
    assert _cell(card, "nowcast", "bias")["skill"] == pytest.approx(0.75)
    # target 1: 1 - |1.2 - 1| / |0.6 - 1|
    assert _cell(card, "nowcast", "frequency_bias")["skill"] == pytest.approx(0.5)
    # a diagnostic has no skill; a score without baseline has none either
    assert np.isnan(_cell(card, "nowcast", "spread")["skill"])
    missing = _cell(card, "nowcast", "rmse", lead_hours=2.0)
    assert np.isnan(missing["baseline"]) and np.isnan(missing["skill"])
    # the baseline against itself: no better, no worse
    assert _cell(card, "persistence", "rmse", region=None)["skill"] == pytest.approx(0.0)


def test_none_and_nan_are_one_group_and_unknown_metrics_fail(scores: pd.DataFrame) -> None:
    mixed = scores.copy()
    mixed["threshold"] = mixed["threshold"].astype(object)
    mixed.loc[mixed["metric"] == "rmse", "threshold"] = None
    card = scorecard(mixed, "persistence", lead="lead_hours")
    assert _cell(card, "nowcast", "rmse", region=None, lead_hours=1.0)["skill"] == pytest.approx(0.75)
    with pytest.raises(UnknownNameError, match="unknown metric 'bias_abs'"):
        scorecard(
            pd.concat([scores, pd.DataFrame([_row("nowcast", "bias_abs", 1.0)])]), "persistence", lead="lead_hours"
        )
    with pytest.raises(KeyError, match="lead_time"):
        scorecard(scores, "persistence")


def test_skill_function_and_definitions() -> None:
    np.testing.assert_allclose(skill("mae", [1.0, 2.0, 1.0], [2.0, 2.0, 0.0]), [0.5, 0.0, np.nan])
    np.testing.assert_allclose(skill("fss", 0.9, 0.5), 0.4)
    np.testing.assert_allclose(skill("spread_skill", [0.9, 1.0], [0.5, 1.0]), [0.8, np.nan])
    assert skill_definition("rmse") == "1 − score / baseline"
    assert skill_definition("csi") == "score − baseline"
    assert skill_definition("frequency_bias") == "1 − |score − 1| / |baseline − 1|"


def test_score_levels_for_a_threshold_selector(scores: pd.DataFrame) -> None:
    levels = score_levels(scores, "csi")
    assert levels["metric"].tolist() == ["csi", "csi"] and levels["threshold"].tolist() == [0.1, 5.0]
    assert levels["scale"].isna().all()
    fss = pd.DataFrame(
        [_row("m", "fss", 0.5, threshold=t, scale=s) for t in (5.0, 1.0) for s in (11.0, 1.0)]
        + [_row("m", "fss", 0.4, threshold=1.0, scale=1.0)]
    )
    got = score_levels(fss)
    assert list(zip(got["threshold"], got["scale"], strict=True)) == [(1.0, 1.0), (1.0, 11.0), (5.0, 1.0), (5.0, 11.0)]
    assert score_levels(scores, "nothing").empty
