"""Run: launch a nowcast, global or regional job from the registered job kinds; the runs table."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import state
from app.services import jobs, store

st.title("Run a forecast")
forms = jobs.job_forms()
if not forms:
    missing = jobs.unavailable_job_modules()
    st.warning(
        "No job kinds are registered in this installation"
        + (": " + "; ".join(f"{m} ({why})" for m, why in missing.items()) if missing else ".")
    )
else:
    kinds = sorted(forms)
    state.bind_choice(state.JOB_KIND, kinds)
    kind = st.selectbox("Job kind", kinds, key=state.JOB_KIND)
    state.to_url([state.JOB_KIND])
    with st.form(f"job-{kind}"):
        values: dict[str, Any] = {}
        for f in forms[kind]:
            label = f.name.replace("_", " ") + (" *" if f.required else "")
            if f.name == "device":
                choices = jobs.device_choices()
                values[f.name] = st.selectbox(
                    label, choices, index=choices.index(f.default) if f.default in choices else 0
                )
            elif f.kind == "bool":
                values[f.name] = st.checkbox(label, value=bool(f.default))
            elif f.kind == "int":
                values[f.name] = st.number_input(
                    label, value=f.default, step=1, placeholder="optional" if f.optional else None
                )
            elif f.kind == "float":
                values[f.name] = st.number_input(
                    label, value=f.default, step=None, placeholder="optional" if f.optional else None
                )
            elif f.kind == "list":
                values[f.name] = st.text_input(
                    label,
                    value=", ".join(map(str, f.default or ())),
                    help="comma-separated values; for inputs: files, globs or a sample dataset name",
                )
            else:
                values[f.name] = st.text_input(label, value="" if f.default is None else str(f.default))
        submitted = st.form_submit_button("Run", type="primary")
    if submitted:
        log: list[str] = []
        bar = st.progress(0.0, text="starting")
        box = st.empty()

        def progress(fraction: float, message: str) -> None:
            log.append(f"{100 * fraction:5.1f} %  {message}")
            bar.progress(min(max(fraction, 0.0), 1.0), text=message)
            box.code("\n".join(log[-12:]))

        try:
            spec = jobs.parse_form(kind, values)
        except Exception as err:
            # refused before anything ran: say what to correct, not that a job failed
            st.error(f"The {kind} job was not started: {store.error_text(err)}")
            spec = None
        try:
            result = jobs.submit_job(spec, progress) if spec is not None else None
        except Exception as err:
            st.error(f"The {kind} job failed: {store.error_text(err)}")
            result = None
        if result is not None:
            st.success(f"Run {result.run_id} succeeded in {result.compute_seconds:.1f} s.")
            st.page_link(
                "pages/maps.py",
                label="Open it on the map",
                icon=":material/map:",
                query_params={state.SOURCE: f"run:{result.run_id}"},
            )
        st.session_state[state.LAST_JOB_LOG] = log

st.subheader("Runs")
runs = store.runs_table()
if runs.empty:
    st.info("No runs yet.")
else:
    status = st.multiselect(
        "Status", ["queued", "running", "succeeded", "failed"], default=["queued", "running", "succeeded", "failed"]
    )
    shown = runs[runs["status"].isin(status)]
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        column_config={"error": st.column_config.TextColumn("error", width="large")},
    )
    st.download_button("Runs (CSV)", shown.to_csv(index=False), file_name="runs.csv", mime="text/csv")
