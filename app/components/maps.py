"""Plotly map figures from fields already rasterised on the server (:mod:`app.components.raster`).

The figure is a plain cartesian plot in the view projection's coordinates (equal axis scaling),
which is what lets the server send a screen-sized image of any grid: a heatmap (or labelled
contours) of the field, a grey layer for gaps in the data, coastlines and borders from our
Natural Earth reader, and station markers. An animation adds one frame per time step.

Public API: ``MapLayer``, ``MapData``, ``map_figure``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go

from app.components.raster import GridImage
from app.components.scales import PRECIP_LEVELS, Scale, precip_classes, precip_colorscale


@dataclass(frozen=True)
class MapLayer:
    """One time step of the field.

    Attributes
    ----------
    image : GridImage
        Values in the canonical units of the variable.
    label : str
        The time step, e.g. ``"2015-05-15 16:30 UTC"`` or ``"T+30 min (valid 16:30 UTC)"``.
    """

    image: GridImage
    label: str


@dataclass(frozen=True)
class MapData:
    """Everything a map figure needs, in view coordinates.

    Attributes
    ----------
    layers : list of MapLayer
        One per frame (a single one for a still map).
    scale : Scale
        Colour scale and display units.
    title : str
        Figure title (variable, source).
    extent : (x0, x1, y0, y1)
        View rectangle.
    geographic : bool
        Whether the view coordinates are longitude/latitude degrees (PlateCarree).
    coastlines, borders : (ndarray, ndarray)
        NaN-separated x, y polylines.
    stations : dict
        ``x``, ``y``, ``name`` arrays of station markers (may be empty).
    station_labels : bool
        Write the station names beside the markers (off for continental views, where they clutter).
    """

    layers: list[MapLayer]
    scale: Scale
    title: str
    extent: tuple[float, float, float, float]
    geographic: bool
    coastlines: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))
    borders: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))
    stations: dict[str, np.ndarray] = field(default_factory=dict)
    station_labels: bool = True


def _field_trace(data: MapData, layer: MapLayer) -> go.Heatmap | go.Contour:
    img, scale = layer.image, data.scale
    shown = scale.convert(img.values.astype("float64"))
    units = scale.units
    if scale.kind == "discrete":
        return go.Heatmap(
            x=img.x,
            y=img.y,
            z=precip_classes(shown),
            customdata=shown.astype("float32"),
            zmin=0.5,
            zmax=len(PRECIP_LEVELS) + 0.5,
            colorscale=precip_colorscale(),
            colorbar={
                "title": {"text": units},
                "tickvals": [k + 0.5 for k in range(len(PRECIP_LEVELS))],
                "ticktext": [f"{v:g}" for v in PRECIP_LEVELS],
            },
            hovertemplate=f"%{{customdata:.2f}} {units}<extra></extra>",
            hoverongaps=False,
            name=scale.label,
        )
    if scale.kind == "contour":
        step = scale.contour_step or 1.0
        finite = shown[np.isfinite(shown)]
        lo = float(np.floor(finite.min() / step) * step) if finite.size else 0.0
        hi = float(np.ceil(finite.max() / step) * step) if finite.size else step
        return go.Contour(
            x=img.x,
            y=img.y,
            z=shown,
            contours={
                "coloring": "lines",
                "showlabels": True,
                "start": lo,
                "end": hi,
                "size": step,
                "labelfont": {"size": 10, "color": "#222"},
            },
            colorscale=[[0, "#1a1a1a"], [1, "#1a1a1a"]],
            showscale=False,
            line={"width": 1.4},
            hovertemplate=f"%{{z:.1f}} {units}<extra></extra>",
            name=scale.label,
            connectgaps=False,
        )
    finite = shown[np.isfinite(shown)]
    extra: dict[str, object] = {}
    if scale.zmid is not None and finite.size:
        # Symmetric about the centre so that the centre colour (white) means exactly zmid.
        half = float(np.nanmax(np.abs(finite - scale.zmid))) or 1.0
        extra = {"zmin": scale.zmid - half, "zmax": scale.zmid + half}
    return go.Heatmap(
        x=img.x,
        y=img.y,
        z=shown.astype("float32"),
        colorscale=scale.colorscale,
        colorbar={"title": {"text": units}},
        hovertemplate=f"%{{z:.2f}} {units}<extra></extra>",
        name=scale.label,
        **extra,
    )


def _nodata_trace(layer: MapLayer) -> go.Heatmap:
    img = layer.image
    gap = np.where(img.covered & np.isnan(img.values), 1.0, np.nan).astype("float32")
    return go.Heatmap(
        x=img.x,
        y=img.y,
        z=gap,
        colorscale=[[0, "#c8c8c8"], [1, "#c8c8c8"]],
        showscale=False,
        hovertemplate="no data<extra></extra>",
        hoverongaps=False,
        opacity=0.6,
        name="no data",
    )


def map_figure(data: MapData, *, height: int = 620) -> go.Figure:
    """Build the map: field, data gaps, coastlines, borders, stations, and an animation when several layers.

    Parameters
    ----------
    data : MapData
        Rasterised layers and overlays.
    height : int
        Figure height in pixels.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    first = data.layers[0]
    fig = go.Figure()
    fig.add_trace(_nodata_trace(first))
    fig.add_trace(_field_trace(data, first))
    cx, cy = data.coastlines
    if cx.size:
        fig.add_trace(
            go.Scatter(
                x=cx,
                y=cy,
                mode="lines",
                line={"color": "#333", "width": 0.9},
                hoverinfo="skip",
                name="coastline",
                showlegend=False,
            )
        )
    bx, by = data.borders
    if bx.size:
        fig.add_trace(
            go.Scatter(
                x=bx,
                y=by,
                mode="lines",
                line={"color": "#555", "width": 0.6, "dash": "dot"},
                hoverinfo="skip",
                name="borders",
                showlegend=False,
            )
        )
    if data.stations and len(data.stations.get("x", ())):
        fig.add_trace(
            go.Scatter(
                x=data.stations["x"],
                y=data.stations["y"],
                mode="markers+text" if data.station_labels else "markers",
                text=data.stations["name"],
                textposition="top center",
                marker={"symbol": "triangle-up", "size": 9, "color": "#111", "line": {"color": "white", "width": 1}},
                hovertemplate="%{text}<extra>station</extra>",
                name="stations",
                showlegend=False,
            )
        )
    x0, x1, y0, y1 = data.extent
    axis = {"showgrid": False, "zeroline": False}
    if data.geographic:
        xaxis = {**axis, "title": {"text": "Longitude (°E)"}, "ticksuffix": "°"}
        yaxis = {**axis, "title": {"text": "Latitude (°N)"}, "ticksuffix": "°"}
    else:
        xaxis = {**axis, "showticklabels": False}
        yaxis = {**axis, "showticklabels": False}
    title = data.title
    if data.scale.kind == "contour":
        title += f" — contours every {data.scale.contour_step:g} {data.scale.units}"
    fig.update_layout(
        title={"text": f"{title}<br><sup>{first.label}</sup>"},
        xaxis={**xaxis, "range": [x0, x1], "constrain": "domain"},
        yaxis={**yaxis, "range": [y0, y1], "scaleanchor": "x", "scaleratio": 1, "constrain": "domain"},
        height=height,
        margin={"l": 10, "r": 10, "t": 70, "b": 10},
        plot_bgcolor="white",
        # Dragging draws a rectangle: the page turns it into a new extent rendered on the server
        # at full detail (client-side zoom would only enlarge the screen-sized image).
        dragmode="select",
    )
    if len(data.layers) > 1:
        _add_animation(fig, data)
    return fig


def _add_animation(fig: go.Figure, data: MapData) -> None:
    """One plotly frame per layer (the no-data and field traces change), with play/pause and a slider."""
    frames = []
    for i, layer in enumerate(data.layers):
        frames.append(
            go.Frame(
                data=[_nodata_trace(layer), _field_trace(data, layer)],
                traces=[0, 1],
                name=str(i),
                layout={"title": {"text": f"{data.title}<br><sup>{layer.label}</sup>"}},
            )
        )
    fig.frames = frames
    play = {"frame": {"duration": 500, "redraw": True}, "fromcurrent": True, "transition": {"duration": 0}}
    fig.update_layout(
        updatemenus=[
            {
                "type": "buttons",
                "direction": "left",
                "x": 0.0,
                "y": -0.02,
                "xanchor": "left",
                "yanchor": "top",
                "buttons": [
                    {"label": "▶ Play", "method": "animate", "args": [None, play]},
                    {
                        "label": "⏸ Pause",
                        "method": "animate",
                        "args": [[None], {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}],
                    },
                ],
            }
        ],
        sliders=[
            {
                "active": 0,
                "x": 0.18,
                "len": 0.8,
                "y": -0.02,
                "yanchor": "top",
                "currentvalue": {"visible": False},
                "steps": [
                    {
                        "label": layer.label,
                        "method": "animate",
                        "args": [[str(i)], {"frame": {"duration": 0, "redraw": True}, "mode": "immediate"}],
                    }
                    for i, layer in enumerate(data.layers)
                ],
            }
        ],
        margin={"l": 10, "r": 10, "t": 70, "b": 80},
    )
