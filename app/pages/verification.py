"""Verification: scorecards across models and lead times, metric curves, ensemble spread-skill."""

from __future__ import annotations

import streamlit as st

from app import state
from app.components import charts
from app.services import verification
from verification.metrics.registry import metric_info
from verification.scorecard import score_levels, skill_definition

st.title("Verification")
available = verification.score_catalogue()
if available.empty:
    st.info("The catalogue holds no scores yet. `meteolens demo build` computes scores for the demo runs.")
    st.stop()

with st.sidebar:
    kinds = sorted(available["kind"].unique())
    state.bind_choice(state.SCORE_KIND, kinds)
    kind = st.selectbox("Run kind", kinds, key=state.SCORE_KIND)
    here = available[available["kind"] == kind]
    variables = sorted(here["variable"].unique())
    state.bind_choice(state.SCORE_VAR, variables)
    variable = st.selectbox("Variable", variables, key=state.SCORE_VAR)
    metrics = sorted(here.loc[here["variable"] == variable, "metric"].unique())
    state.bind_choice(state.SCORE_METRIC, metrics)
    metric = st.selectbox("Metric", metrics, key=state.SCORE_METRIC)
state.to_url([state.SCORE_KIND, state.SCORE_VAR, state.SCORE_METRIC])

scores = verification.scores_table(metric=metric)
scores = scores[scores["kind"] == kind]
models = sorted(scores["model"].dropna().unique())
with st.sidebar:
    default_base = next((m for m in models if "persistence" in m or "climatology" in m), models[0] if models else None)
    state.bind_choice(state.BASELINE, models, default_base)
    baseline = st.selectbox("Baseline", models, key=state.BASELINE) if models else None
state.to_url([state.BASELINE])

# One threshold and one window at a time: a CSI at 0.5 mm/h and one at 10 mm/h are different
# scores, and averaging them (as the card once did) describes neither.
info = metric_info(metric)
levels = score_levels(scores[scores["variable"] == variable], metric)
card_scores = scores[scores["region"].isna()] if "region" in scores else scores
with st.sidebar:
    for column, needed, label in (("threshold", info.needs_threshold, "Threshold"), ("scale", info.needs_window, "Window")):
        choices = sorted(levels[column].dropna().unique().tolist()) if needed else []
        if choices:
            unit = verification.units_of(variable) if column == "threshold" else "px"

            def with_unit(value: float, unit: str = unit) -> str:
                return f"{value:g} {unit}".strip()

            chosen = st.selectbox(label, choices, format_func=with_unit, key=f"verification_{column}")
            card_scores = card_scores[card_scores[column] == chosen]
lower = info.orientation in ("lower", "target")
st.subheader("Scorecard")
card = verification.scorecard(card_scores, baseline) if baseline else None
if baseline is None or card is None or card.empty:
    st.info("No scores to compare for this selection.")
else:
    card = card[card["variable"] == variable] if "variable" in card else card
    st.plotly_chart(charts.scorecard(card, metric, baseline, lower, what=skill_definition(metric)), width="stretch")
st.subheader(f"{metric.upper()} of {variable} by lead time")
st.plotly_chart(
    charts.skill_by_lead(
        scores[scores["variable"] == variable],
        metric,
        units=verification.metric_units(metric, variable),
        threshold_units=verification.units_of(variable),
    ),
    width="stretch",
)
st.download_button("Scores (CSV)", scores.to_csv(index=False), file_name=f"scores_{kind}_{metric}.csv", mime="text/csv")

spread = verification.spread_skill_table(kind, variable)
if not spread.empty:
    st.subheader("Ensemble spread and skill")
    st.plotly_chart(charts.spread_skill(spread, verification.metric_units("rmse", variable)), width="stretch")
