"""Case studies: curated events that open the right page with the right settings."""

from __future__ import annotations

import streamlit as st

from app.services import cases, store

PAGES = {
    "maps": "pages/maps.py",
    "stations": "pages/stations.py",
    "nowcast": "pages/nowcast.py",
    "verification": "pages/verification.py",
    "run": "pages/run.py",
}

st.title("Case studies")
try:
    case_list = cases.cases()
except Exception as err:
    st.error(store.error_text(err))
    st.stop()
if not case_list:
    st.info("No case studies defined (assets/cases/*.toml).")
for case in case_list:
    with st.container(border=True):
        st.subheader(f"{case.title}")
        st.caption(case.date)
        st.markdown(case.summary)
        if case.story:
            with st.expander("The story"):
                st.markdown(case.story)
        missing = cases.missing_requirements(case.requires)
        if missing:
            st.warning("Needs " + ", ".join(missing) + " (sample data or demo store: `meteolens demo build`).")
        if case.page not in PAGES:
            st.error(f"{case.case_id}: unknown page {case.page!r}; expected one of {', '.join(PAGES)}")
            continue
        st.page_link(
            PAGES[case.page],
            label=f"Open on the {case.page} page",
            icon=":material/arrow_forward:",
            query_params=case.params,
        )
        for link in case.also:
            if link["page"] in PAGES:
                st.page_link(
                    PAGES[link["page"]],
                    label=link["label"],
                    icon=":material/arrow_forward:",
                    query_params=link["params"],
                )
