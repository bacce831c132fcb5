"""Nowcast & quality: observed and forecast radar loops, CSI/FSS by lead time, quality reports."""

from __future__ import annotations

import streamlit as st

from app import state
from app.components import charts
from app.components.maps import map_figure
from app.services import fields, maps, nowcast, store, verification

st.title("Nowcast & quality")
runs = store.runs_table()
nowcasts = runs[(runs["kind"] == "nowcast") & (runs["status"] == "succeeded")]
radar = [
    s for s in fields.sources()["source"] if s.startswith("dataset:") and s.split(":", 1)[1] in nowcast.radar_datasets()
]

with st.sidebar:
    run_ids = nowcasts["run_id"].tolist()
    state.bind_choice(state.NOWCAST_RUN, ["", *run_ids], run_ids[0] if run_ids else "")
    run_id = st.selectbox("Nowcast run", ["", *run_ids], key=state.NOWCAST_RUN, format_func=lambda r: r or "— none —")
    state.bind_choice(state.OBSERVED, radar, nowcast.observed_for(run_id) if run_id else None)
    observed = st.selectbox("Observed radar", radar, key=state.OBSERVED) if radar else None
    state.bind(state.ANIMATE, False)
    animate = st.checkbox("Animate the loops", key=state.ANIMATE)
state.to_url([state.NOWCAST_RUN, state.OBSERVED, state.ANIMATE])

frames = 1
if animate:
    # Both loops cover the forecast's lead times, frame for frame.
    frames = len(fields.source_info(f"run:{run_id}").steps) if run_id else maps.MAX_FRAMES
left, right = st.columns(2)
with left:
    st.subheader("Observed")
    if observed is None:
        st.info("No radar sample data found (set METEOLENS_DATA).")
    else:
        try:
            obs_step = nowcast.observed_step(observed, run_id) if run_id else 0
            data = maps.map_view(
                maps.MapRequest(
                    observed, "precip_rate", step=obs_step, projection="Data grid", frames=frames, width=480
                )
            )
            st.plotly_chart(map_figure(data, height=520), width="stretch", key="observed_loop")
        except Exception as err:
            st.error(store.error_text(err))
with right:
    st.subheader("Forecast")
    if not run_id:
        st.info("No nowcast run in the store. Launch one on the Run page, or build the demo store.")
    else:
        try:
            data = maps.map_view(
                maps.MapRequest(f"run:{run_id}", "precip_rate", projection="Data grid", frames=frames, width=480)
            )
            st.plotly_chart(map_figure(data, height=520), width="stretch", key="forecast_loop")
        except Exception as err:
            st.error(store.error_text(err))

if run_id:
    st.subheader("Skill by lead time")
    scores = verification.scores_table(variable="precip_rate")
    init = nowcasts.loc[nowcasts["run_id"] == run_id, "init_time"].iloc[0]
    same_case = scores[(scores["init_time"] == init) | (scores["run_id"] == run_id)]
    cols = st.columns(2)
    for col, metric in zip(cols, ("csi", "fss"), strict=True):
        part = same_case[same_case["metric"] == metric]
        with col:
            if part.empty:
                st.info(f"No {metric.upper()} scores for this case (persistence is the baseline when present).")
            else:
                st.plotly_chart(charts.skill_by_lead(part, metric, threshold_units="mm h⁻¹"), width="stretch")
    st.subheader("Quality assessment")
    reports = nowcast.quality_reports(run_id)
    if reports.empty:
        st.info("No quality report for this run in the catalogue.")
    else:
        seq = reports[reports["scope"] == "sequence"]
        report = seq.iloc[0] if len(seq) else reports.iloc[0]
        c1, c2 = st.columns([1, 2])
        c1.metric("Overall grade (1–5)", f"{report['grade']:.1f}" if report["grade"] == report["grade"] else "—")
        c1.plotly_chart(charts.ratings_card(report["ratings"]), width="stretch")
        c2.markdown(report["text"])
        frames_df = reports[reports["scope"] == "frame"]
        if len(frames_df):
            with st.expander("Per-frame reports"):
                st.dataframe(frames_df[["lead_hours", "grade", "text"]], hide_index=True)
