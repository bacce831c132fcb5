"""Plot builders for the station, nowcast and verification pages: data in, plotly figure out.

Public API: ``station_map``, ``time_series``, ``wind_rose``, ``foehn_timeline``,
``skill_by_lead``, ``scorecard``, ``spread_skill``, ``ratings_card``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.components.scales import scale_for

#: Wind speed classes of the wind rose (m s-1) and their colours (calm → strong).
WIND_CLASSES: tuple[float, ...] = (0.0, 2.0, 4.0, 6.0, 8.0, 12.0)
_WIND_COLOURS = ("#c6dbef", "#6baed6", "#2171b5", "#fdae6b", "#e6550d", "#a50f15")


def station_map(stations: pd.DataFrame, lines: dict[str, np.ndarray], selected: str | None = None) -> go.Figure:
    """Stations on a longitude-latitude map with our Natural Earth coastlines and borders.

    Parameters
    ----------
    stations : DataFrame
        ``station_id, name, lat, lon, elevation`` (degrees, m).
    lines : dict
        ``coastlines`` and ``borders``: NaN-separated ``(n, 2)`` lon/lat polylines.
    selected : str, optional
        Station drawn in red.
    """
    lon, lat = stations["lon"].to_numpy(dtype="float64"), stations["lat"].to_numpy(dtype="float64")
    pad = max(1.0, 0.15 * max(np.ptp(lon), np.ptp(lat)))
    x0, x1, y0, y1 = lon.min() - pad, lon.max() + pad, lat.min() - pad, lat.max() + pad
    fig = go.Figure()
    for key, colour, dash in (("coastlines", "#333", "solid"), ("borders", "#777", "dot")):
        xy = lines.get(key, np.zeros((0, 2)))
        keep = np.isnan(xy[:, 0]) | (
            (xy[:, 0] > x0 - 5) & (xy[:, 0] < x1 + 5) & (xy[:, 1] > y0 - 5) & (xy[:, 1] < y1 + 5)
        )
        xy = np.where(keep[:, None], xy, np.nan)
        fig.add_trace(
            go.Scatter(
                x=xy[:, 0],
                y=xy[:, 1],
                mode="lines",
                line={"color": colour, "width": 0.8, "dash": dash},
                hoverinfo="skip",
                showlegend=False,
            )
        )
    colours = ["#d62728" if s == selected else "#1f77b4" for s in stations["station_id"]]
    text = [
        f"{n or s} ({e:.0f} m)" if pd.notna(e) else str(n or s)
        for s, n, e in zip(stations["station_id"], stations["name"], stations["elevation"], strict=True)
    ]
    fig.add_trace(
        go.Scatter(
            x=lon,
            y=lat,
            text=text,
            mode="markers+text",
            textposition="top center",
            marker={"size": 10, "color": colours, "symbol": "triangle-up", "line": {"color": "white", "width": 1}},
            hovertemplate="%{text}<br>%{y:.3f}°N %{x:.3f}°E<extra></extra>",
            showlegend=False,
        )
    )
    # Equal distances on the ground: one degree of longitude is cos(latitude) of one of latitude.
    ratio = 1.0 / max(np.cos(np.deg2rad(0.5 * (y0 + y1))), 0.1)
    fig.update_layout(
        xaxis={"range": [x0, x1], "title": {"text": "Longitude (°E)"}, "ticksuffix": "°", "showgrid": False},
        yaxis={
            "range": [y0, y1],
            "title": {"text": "Latitude (°N)"},
            "ticksuffix": "°",
            "showgrid": False,
            "scaleanchor": "x",
            "scaleratio": ratio,
        },
        height=360,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        plot_bgcolor="white",
    )
    return fig


def time_series(obs: pd.DataFrame, fc: pd.DataFrame, variable: str, units: str, station: str) -> go.Figure:
    """Observed series (black) and each run's forecast at a station, in display units.

    Parameters
    ----------
    obs : DataFrame
        ``time, value`` in canonical units.
    fc : DataFrame
        ``run_id, valid_time, member, value`` in canonical units (may be empty).
    """
    scale = scale_for(variable, units)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=obs["time"],
            y=scale.convert(obs["value"].to_numpy(dtype="float64")),
            mode="lines",
            name="observed",
            line={"color": "black", "width": 1.5},
        )
    )
    for (run, member), grp in fc.groupby(["run_id", fc["member"].fillna(-1)], sort=False):
        name = run if member < 0 else f"{run} m{int(member)}"
        fig.add_trace(
            go.Scatter(
                x=grp["valid_time"],
                y=scale.convert(grp["value"].to_numpy(dtype="float64")),
                mode="lines+markers",
                name=name,
                line={"width": 1},
                marker={"size": 4},
                opacity=0.6 if member >= 0 else 1.0,
            )
        )
    fig.update_layout(
        title=f"{scale.label} at {station}",
        yaxis_title=f"{scale.label} ({scale.units})",
        xaxis_title="Time (UTC)",
        height=360,
        margin={"t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def wind_rose(wind: pd.DataFrame, station: str, sectors: int = 16) -> go.Figure:
    """Wind rose: frequency (%) of wind from each direction sector, stacked by speed class.

    Parameters
    ----------
    wind : DataFrame
        ``wind_dir`` (degree, direction the wind blows *from*) and ``wind_speed`` (m s-1).
    sectors : int
        Number of direction sectors (16: 22.5 deg each, centred on N, NNE...).
    """
    width = 360.0 / sectors
    # Sector k is centred on k * width: shift by half a sector so north spans [-w/2, w/2).
    sector = np.floor(((wind["wind_dir"].to_numpy() + width / 2) % 360.0) / width).astype(int)
    speed = wind["wind_speed"].to_numpy()
    total = max(len(wind), 1)
    fig = go.Figure()
    edges = [*WIND_CLASSES, np.inf]
    for i in range(len(WIND_CLASSES)):
        lo, hi = edges[i], edges[i + 1]
        in_class = (speed >= lo) & (speed < hi)
        counts = np.bincount(sector[in_class], minlength=sectors)[:sectors]
        label = f"≥ {lo:g} m s⁻¹" if np.isinf(hi) else f"{lo:g}–{hi:g} m s⁻¹"
        fig.add_trace(
            go.Barpolar(
                r=100.0 * counts / total,
                theta=np.arange(sectors) * width,
                width=width * 0.95,
                name=label,
                marker_color=_WIND_COLOURS[i],
                hovertemplate="%{theta}°: %{r:.1f} %<extra>" + label + "</extra>",
            )
        )
    fig.update_layout(
        title=f"Wind rose at {station} ({len(wind)} observations)",
        polar={
            "angularaxis": {
                "rotation": 90,
                "direction": "clockwise",
                "tickvals": [0, 90, 180, 270],
                "ticktext": ["N", "E", "S", "W"],
            },
            "radialaxis": {"ticksuffix": " %"},
        },
        legend={"title": {"text": "Wind speed"}},
        height=420,
        margin={"t": 60},
    )
    return fig


def foehn_timeline(hourly: pd.DataFrame, title: str) -> go.Figure:
    """Foehn probability, Δθ, valley wind speed and direction, and humidity on a shared time axis.

    Parameters
    ----------
    hourly : DataFrame
        Indexed by time: ``probability`` (0-1), ``dtheta`` (K), and the valley's ``wind_speed``
        (m s-1), ``wind_dir`` (degree, from) and ``rh2m`` (%) where present.
    title : str
        Figure title.
    """
    fig = make_subplots(
        rows=5,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.035,
        subplot_titles=(
            "Foehn probability",
            "Δθ crest − valley (K)",
            "Valley wind speed (m s⁻¹)",
            "Valley wind direction (from)",
            "Valley relative humidity (%)",
        ),
    )
    t = hourly.index
    fig.add_trace(
        go.Scatter(
            x=t, y=hourly["probability"], fill="tozeroy", line={"color": "#d62728", "width": 1}, name="P(Foehn)"
        ),
        row=1,
        col=1,
    )
    fig.add_trace(go.Scatter(x=t, y=hourly["dtheta"], line={"color": "#444", "width": 1}, name="Δθ (K)"), row=2, col=1)
    if "wind_speed" in hourly:
        fig.add_trace(
            go.Scatter(x=t, y=hourly["wind_speed"], line={"color": "#1f77b4", "width": 1}, name="wind speed (m s⁻¹)"),
            row=3,
            col=1,
        )
    if "wind_dir" in hourly:
        fig.add_trace(
            go.Scatter(
                x=t,
                y=hourly["wind_dir"],
                mode="markers",
                marker={"size": 3, "color": "#555"},
                name="wind direction (°)",
            ),
            row=4,
            col=1,
        )
    if "rh2m" in hourly:
        fig.add_trace(
            go.Scatter(x=t, y=hourly["rh2m"], line={"color": "#2ca02c", "width": 1}, name="RH (%)"), row=5, col=1
        )
    fig.update_yaxes(range=[0, 1], row=1, col=1)
    fig.update_yaxes(range=[0, 360], tickvals=[0, 90, 180, 270, 360], ticktext=["N", "E", "S", "W", "N"], row=4, col=1)
    fig.update_yaxes(range=[0, 100], row=5, col=1)
    fig.update_xaxes(title_text="Time (UTC)", row=5, col=1)
    fig.update_layout(title=title, height=860, showlegend=False, margin={"t": 80})
    return fig


def lead_label(hours: float) -> str:
    """A lead time for labels: minutes below one hour (``"30 min"``), else hours (``"6 h"``)."""
    return f"{hours * 60:.0f} min" if 0 < hours < 1 else f"{hours:g} h"


def skill_by_lead(df: pd.DataFrame, metric: str, units: str = "", threshold_units: str = "") -> go.Figure:
    """A metric against lead time, one line per model (and threshold/scale when present).

    Parameters
    ----------
    df : DataFrame
        Scores with ``model, lead_hours, value`` and optional ``threshold, scale``.
    metric : str
        Metric name for the axis.
    units : str
        Units of the metric ("" for dimensionless scores).
    threshold_units : str
        Units of the thresholds (those of the variable), for the legend.
    """
    fig = go.Figure()
    group_cols = [c for c in ("model", "threshold", "scale") if c in df and df[c].notna().any()]
    for key, grp in df.groupby(group_cols, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        parts = [str(key[0])]
        for col, val in zip(group_cols[1:], key[1:], strict=True):
            if pd.notna(val):
                parts.append(f"≥ {val:g} {threshold_units}".rstrip() if col == "threshold" else f"{val:g}-point window")
        mean = grp.groupby("lead_hours")["value"].mean()
        fig.add_trace(
            go.Scatter(
                x=mean.index * 60.0 if mean.index.max() <= 6 else mean.index,
                y=mean.values,
                mode="lines+markers",
                name=", ".join(parts),
            )
        )
    short = bool(len(df)) and df["lead_hours"].max() <= 6
    fig.update_layout(
        xaxis_title="Lead time (min)" if short else "Lead time (h)",
        yaxis_title=f"{metric.upper()} ({units})" if units else metric.upper(),
        height=380,
        margin={"t": 30},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def scorecard(card: pd.DataFrame, metric: str, baseline: str, lower_is_better: bool, *, what: str | None = None) -> go.Figure:
    """Model × (variable, lead time) heatmap of skill relative to the baseline (green better, red worse).

    ``lower_is_better`` caps the colour scale at ±1 (skills of the form ``1 - score / baseline``
    are at most 1); ``what`` is the skill's definition for the title.
    """
    card = card.copy()
    card["column"] = card["variable"] + " T+" + card["lead_hours"].map(lead_label)
    order = card.sort_values(["variable", "lead_hours"])["column"].drop_duplicates().tolist()
    pivot = card.pivot_table(index="model", columns="column", values="skill").reindex(columns=order)
    raw = card.pivot_table(index="model", columns="column", values="value").reindex(columns=order)
    finite = np.abs(pivot.to_numpy()[np.isfinite(pivot.to_numpy())])
    lim = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    if lower_is_better:
        # 1 - score/baseline is at most 1 (a perfect forecast); values below -1 (twice the
        # baseline's error, e.g. at lead 0 against a persistence that is the analysis itself)
        # would wash out the colours of every other cell, so the scale stops at ±1.
        lim = min(lim, 1.0)
    what = what or ("1 − score / baseline" if lower_is_better else "score − baseline")
    fig = go.Figure(
        go.Heatmap(
            z=pivot.to_numpy(),
            x=order,
            y=pivot.index.tolist(),
            text=np.round(raw.to_numpy(), 3),
            colorscale="RdYlGn",
            zmid=0.0,
            zmin=-lim,
            zmax=lim,
            colorbar={"title": {"text": "skill"}},
            texttemplate="%{text}",
            hovertemplate="%{y} %{x}<br>" + metric + " %{text}<br>skill %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title={"text": f"{metric.upper()} scorecard: skill vs {baseline} ({what}); cells show the {metric}", "y": 0.98},
        height=220 + 50 * len(pivot),
        margin={"t": 110},
        xaxis={"side": "top"},
    )
    return fig


def spread_skill(df: pd.DataFrame, units: str = "") -> go.Figure:
    """Ensemble spread (dotted) and RMSE of the ensemble mean (solid) against lead time.

    For a statistically consistent ensemble the two curves coincide (up to the factor
    sqrt((m+1)/m) for m members); spread below the error means an under-dispersive ensemble.
    """
    fig = go.Figure()
    for (model, metric), grp in df.groupby(["model", "metric"]):
        mean = grp.groupby("lead_hours")["value"].mean()
        fig.add_trace(
            go.Scatter(
                x=mean.index,
                y=mean.values,
                mode="lines+markers",
                name=f"{model} {metric}",
                line={"dash": "dot" if metric == "spread" else "solid"},
            )
        )
    fig.update_layout(
        xaxis_title="Lead time (h)",
        yaxis_title=f"spread, RMSE ({units})" if units else "spread, RMSE",
        height=360,
        margin={"t": 40},
        title="Spread (dotted) and ensemble-mean RMSE (solid)",
    )
    return fig


def ratings_card(ratings: dict[str, object]) -> go.Figure:
    """Horizontal bars of the 1-5 ratings of a quality report (5 best)."""
    names, values = [], []
    for name, val in ratings.items():
        score = val.get("rating") if isinstance(val, dict) else val
        if isinstance(score, int | float) and not isinstance(score, bool):
            names.append(name.replace("_", " "))
            values.append(float(score))
    colours = ["#d73027", "#fc8d59", "#fee08b", "#91cf60", "#1a9850"]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=names,
            orientation="h",
            text=[f"{v:g}" for v in values],
            marker_color=[colours[int(np.clip(round(v), 1, 5)) - 1] for v in values],
        )
    )
    fig.update_layout(
        xaxis={"range": [0, 5], "title": {"text": "rating (1 poor – 5 excellent)"}},
        height=60 + 32 * len(names),
        margin={"t": 10, "b": 40, "l": 10},
        yaxis={"autorange": "reversed"},
    )
    return fig
