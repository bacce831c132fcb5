r"""Scorecards: the skill of runs relative to a reference (a baseline model), metric by metric.

The skill of a score :math:`S` against the reference's :math:`S_\mathrm{ref}` follows the
metric's orientation (:mod:`verification.metrics.registry`):

* lower is better (errors, perfect 0): :math:`1 - S / S_\mathrm{ref}`, the usual skill score
  :math:`(S - S_\mathrm{ref}) / (S_\mathrm{perf} - S_\mathrm{ref})` with :math:`S_\mathrm{perf} = 0`
  (1 perfect, 0 no better than the reference, negative worse; NaN where :math:`S_\mathrm{ref} = 0`);
* higher is better (CSI, FSS, ACC): :math:`S - S_\mathrm{ref}`, the difference (these scores
  are already bounded and comparable across cases);
* a target value :math:`t` (bias 0, frequency bias 1, spread / skill 1):
  :math:`1 - |S - t| / |S_\mathrm{ref} - t|`, how much of the reference's distance from the
  target is removed (NaN where the reference hits the target);
* no orientation (the ensemble spread, a diagnostic): NaN.

Scores are averaged over the runs of each model first, separately for each variable, lead
time, metric, **threshold**, window (``scale``) and region, so a categorical score is compared
threshold by threshold and a station score never mixes with the domain score.

Public API: ``scorecard``, ``skill``, ``skill_definition``, ``score_levels``.

References
----------
Wilks, D. S. (2019): Statistical Methods in the Atmospheric Sciences, 4th ed., section 9.1.6
(skill scores).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from verification.metrics.registry import metric_info

__all__ = ["score_levels", "scorecard", "skill", "skill_definition"]

#: Columns that tell one score apart, besides the model and the lead time (those present are used).
SCORE_KEYS: tuple[str, ...] = ("variable", "metric", "threshold", "scale", "region")


def skill(metric: str, value: np.ndarray | pd.Series | float, reference: np.ndarray | pd.Series | float) -> np.ndarray:
    """Skill of ``value`` relative to ``reference`` for ``metric`` (module docstring).

    Parameters
    ----------
    metric : str
        A metric name (its record gives the orientation and the target).
    value, reference : array-like or float
        Scores of the forecast and of the reference, same shape (broadcastable).

    Returns
    -------
    ndarray of float
        The skill; NaN where it is undefined.

    Raises
    ------
    UnknownNameError
        If the metric has no record.
    """
    info = metric_info(metric)
    s = np.asarray(value, dtype=float)
    ref = np.asarray(reference, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if info.orientation == "lower":
            out = 1.0 - s / np.where(ref != 0, ref, np.nan)
        elif info.orientation == "higher":
            out = s - ref
        elif info.orientation == "target":
            target = float(info.perfect_value)  # type: ignore[arg-type]  # a target always has one
            dist = np.abs(ref - target)
            out = 1.0 - np.abs(s - target) / np.where(dist != 0, dist, np.nan)
        else:
            out = np.full(np.broadcast(s, ref).shape, np.nan)
    return np.asarray(out, dtype=float)


def skill_definition(metric: str) -> str:
    """The skill formula of ``metric`` in words, for titles: ``"1 − score / baseline"`` and so on."""
    info = metric_info(metric)
    if info.orientation == "lower":
        return "1 − score / baseline"
    if info.orientation == "higher":
        return "score − baseline"
    if info.orientation == "target":
        return f"1 − |score − {info.perfect_value:g}| / |baseline − {info.perfect_value:g}|"
    return "no skill (a diagnostic)"


def scorecard(scores: pd.DataFrame, baseline: str, *, by: str = "model", lead: str = "lead_time") -> pd.DataFrame:
    """Skill of every model (or run) relative to ``baseline``, per variable, lead time, metric and threshold.

    Parameters
    ----------
    scores : DataFrame
        Tidy scores with the columns ``by``, ``lead``, ``metric``, ``value`` and any of
        ``variable``, ``threshold``, ``scale``, ``region`` (the catalogue's scores joined with
        the runs' models, as the app reads them). Missing thresholds / scales / regions (NaN,
        None) are a value of their own.
    baseline : str
        The value of ``by`` to compare with (e.g. ``"persistence"``).
    by : str
        The column naming what is compared (``"model"``, ``"run_id"``).
    lead : str
        The lead-time column (``"lead_time"``, ``"lead_hours"``).

    Returns
    -------
    DataFrame
        One row per ``by`` and score key: the key columns, ``value`` (mean over the runs),
        ``n`` (runs averaged), ``baseline`` (the baseline's mean; NaN where it has no such
        score) and ``skill`` (module docstring). Sorted by the keys; the baseline's own rows are
        kept (skill 0, or NaN where undefined).

    Raises
    ------
    KeyError
        If a required column is missing.
    UnknownNameError
        If a metric has no record.
    """
    missing = [c for c in (by, lead, "metric", "value") if c not in scores.columns]
    if missing:
        raise KeyError(f"scorecard: scores lack the column(s) {missing} (have {list(scores.columns)})")
    keys = [c for c in SCORE_KEYS if c in scores.columns]
    keys.insert(1 if "variable" in keys else 0, lead)
    df = scores[[by, *keys, "value"]].copy()
    # None and NaN are one "no threshold" / "whole domain" group, whatever the column's dtype
    for c in ("threshold", "scale"):
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    if "region" in df:
        df["region"] = df["region"].astype(object).where(df["region"].notna(), "")
    grouped = df.groupby([by, *keys], dropna=False, sort=True)["value"]
    mean = grouped.mean().rename("value").to_frame().join(grouped.count().rename("n")).reset_index()
    base = mean[mean[by] == baseline].drop(columns=[by, "n"]).rename(columns={"value": "baseline"})
    out = mean.merge(base, on=keys, how="left")
    out["skill"] = np.nan
    for metric, rows in out.groupby("metric").groups.items():
        out.loc[rows, "skill"] = skill(str(metric), out.loc[rows, "value"], out.loc[rows, "baseline"])
    if "region" in out:
        out["region"] = out["region"].where(out["region"] != "", None)
    return out.sort_values([by, *keys], kind="stable").reset_index(drop=True)


def score_levels(scores: pd.DataFrame, metric: str | Sequence[str] | None = None) -> pd.DataFrame:
    """The thresholds and windows present in ``scores``, per metric: the choices of a threshold selector.

    Parameters
    ----------
    scores : DataFrame
        Tidy scores with ``metric`` and optionally ``threshold`` / ``scale``.
    metric : str or sequence of str, optional
        Only these metrics.

    Returns
    -------
    DataFrame
        Columns ``metric, threshold, scale`` (NaN where the metric has none), one row per
        distinct combination, sorted; empty when no scores match.
    """
    df = scores
    if metric is not None:
        names = [metric] if isinstance(metric, str) else list(metric)
        df = df[df["metric"].isin(names)]
    cols = {c: pd.to_numeric(df[c], errors="coerce") if c in df else np.nan for c in ("threshold", "scale")}
    levels = pd.DataFrame({"metric": df["metric"].to_numpy(), **cols}, index=df.index)
    levels = levels.drop_duplicates().sort_values(["metric", "threshold", "scale"], na_position="first")
    return levels.reset_index(drop=True)
