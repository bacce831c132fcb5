"""Verification: scorecards across models and lead times, metric curves, ensemble spread-skill."""

from __future__ import annotations

import streamlit as st

from app import state
from app.components import charts
from app.services import verification

#: Metrics where a lower value is better (errors); the others (CSI, FSS, ACC...) are better higher.
LOWER_IS_BETTER = {"rmse", "mae", "mse", "bias_abs", "crps", "brier", "far"}

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

lower = metric.lower() in LOWER_IS_BETTER
st.subheader("Scorecard")
card = verification.scorecard(scores, baseline, lower) if baseline else None
if baseline is None or card is None or card.empty:
    st.info("No scores to compare for this selection.")
else:
    st.plotly_chart(charts.scorecard(card, metric, baseline, lower), width="stretch")
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
