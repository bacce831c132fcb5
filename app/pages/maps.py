"""Maps: any run or sample dataset, any variable and step, in a choice of projections."""

from __future__ import annotations

import streamlit as st

from app import state
from app.components.maps import map_figure
from app.components.raster import VIEW_PROJECTIONS
from app.services import fields, maps, store

st.title("Maps")
sources = fields.sources()
if sources.empty:
    st.warning("No runs and no sample data found. Set METEOLENS_DATA or build the demo store (`meteolens demo build`).")
    st.stop()
labels = dict(zip(sources["source"], sources["label"], strict=True))

with st.sidebar:
    state.bind_choice(state.SOURCE, list(labels))
    source = st.selectbox("Run or dataset", list(labels), format_func=labels.__getitem__, key=state.SOURCE)
if source is None:  # selectbox gives None only without options, and sources is not empty
    st.stop()
try:
    info = fields.source_info(source)
except Exception as err:
    st.error(f"Cannot open {source}: {store.error_text(err)}")
    st.stop()

with st.sidebar:
    state.bind_choice(state.VARIABLE, list(info.variables))
    variable = st.selectbox("Variable", info.variables, key=state.VARIABLE)
    state.bind(state.STEP, 0, int)
    if st.session_state[state.STEP] >= len(info.steps):
        st.session_state[state.STEP] = 0
    step = st.select_slider(
        "Time step",
        options=list(range(len(info.steps))),
        format_func=lambda i: info.steps[i],
        key=state.STEP,
        disabled=len(info.steps) < 2,
    )
    member = None
    if info.members:
        state.bind_choice(state.MEMBER, list(info.members))
        member = st.selectbox("Ensemble member", info.members, key=state.MEMBER)
    state.bind_choice(state.PROJECTION, list(VIEW_PROJECTIONS), "PlateCarree" if info.crs_wkt is None else "Data grid")
    projection = st.selectbox(
        "Projection",
        VIEW_PROJECTIONS,
        key=state.PROJECTION,
        help="'Data grid' is the data's own projection (e.g. the radar composite's).",
    )
    others = ["", *[s for s in labels if s != source]]
    state.bind_choice(state.COMPARE, others, "")
    compare = st.selectbox(
        "Difference against",
        others,
        key=state.COMPARE,
        format_func=lambda s: "— none —" if not s else labels[s],
        help="Subtract this source's field at the same valid time (another run, or an analysis).",
    )
    state.bind(state.STATIONS_OVERLAY, True)
    show_stations = st.checkbox("Station overlay", key=state.STATIONS_OVERLAY)
    state.bind(state.ANIMATE, False)
    animate = st.checkbox("Animate the following steps", key=state.ANIMATE, disabled=len(info.steps) < 2)
    st.markdown("**Zoom** (degrees; re-rendered at full detail)")
    state.bind(state.BOX, "")
    box_text = st.text_input(
        "Extent west,east,south,north",
        key=state.BOX,
        placeholder=state.format_box(info.bounds),
        help="Empty for the whole source. Example: 5.5,11,45.5,48 for Switzerland.",
    )
state.to_url(
    [
        state.SOURCE,
        state.VARIABLE,
        state.STEP,
        state.MEMBER,
        state.PROJECTION,
        state.COMPARE,
        state.STATIONS_OVERLAY,
        state.ANIMATE,
        state.BOX,
    ]
)

try:
    box = state.parse_box(box_text)
    request = maps.MapRequest(
        source=source,
        variable=variable,
        step=step,
        member=member,
        projection=projection,
        box=box,
        compare=compare or None,
        stations=show_stations,
        frames=maps.MAX_FRAMES if animate else 1,
    )
    data = maps.map_view(request)
except Exception as err:
    st.error(store.error_text(err))
    st.stop()


def _zoom_to_selection() -> None:
    """Drawn rectangle → the zoom extent (in the URL), so the next run renders that area in full detail."""
    box = st.session_state[MAP_CHART].selection.get("box") or []
    if box:
        try:
            st.session_state[state.BOX] = state.format_box(maps.selection_box(request, box[0]["x"], box[0]["y"]))
        except Exception as err:  # a rectangle off the globe: keep the view, say why
            st.session_state["_zoom_error"] = store.error_text(err)


def _reset_zoom() -> None:
    st.session_state[state.BOX] = ""


MAP_CHART = "map_chart"
st.plotly_chart(
    map_figure(data),
    width="stretch",
    key=MAP_CHART,
    on_select=_zoom_to_selection,
    selection_mode="box",
    config={"scrollZoom": True, "displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}},
)
if "_zoom_error" in st.session_state:
    st.warning(st.session_state.pop("_zoom_error"))
st.button(
    "Reset zoom",
    on_click=_reset_zoom,
    disabled=box is None,
    help="Drag a rectangle on the map to zoom: the area is re-rendered from the full-resolution grid.",
)
st.caption(
    f"{info.label} · grid {info.grid} · footprint {state.format_box(info.bounds)} (W,E,S,N). "
    "The camera icon in the figure's toolbar saves a PNG."
)
with st.expander("Download the data"):
    st.download_button(
        "Field at this step (netCDF, full resolution)",
        data=lambda: fields.field_netcdf(source, variable, step, member),
        on_click="ignore",
        file_name=f"{source.split(':', 1)[1]}_{variable}_step{step}.nc",
        mime="application/x-netcdf",
    )
