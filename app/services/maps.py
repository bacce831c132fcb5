"""Maps: a rendered map (one frame or an animation) at screen resolution, in any projection.

Public API: ``MapRequest``, ``map_view``, ``selection_box``, ``boundaries``, ``MAX_FRAMES``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st
import xarray as xr

from app.components.maps import MapData, MapLayer
from app.components.raster import GridImage, native_crs, project_lines, project_points, rasterize, view_crs, view_extent
from app.components.scales import scale_for
from app.services.fields import SourceInfo, field, source_info
from app.services.stations import stations
from app.services.store import settings
from engine import datasets
from engine.errors import CoordError, StorageError

#: Most frames an animation holds (each is a screen-sized image sent to the browser).
MAX_FRAMES = 24


@st.cache_resource(show_spinner=False)
def boundaries(resolution: str) -> dict[str, np.ndarray]:
    """Coastlines and country borders (Natural Earth, from our TopoJSON reader), lon/lat degrees.

    Parameters
    ----------
    resolution : {"110m", "50m"}

    Returns
    -------
    dict
        ``coastlines`` and ``borders``: ``(n, 2)`` NaN-separated polylines.
    """
    from engine.readers.boundaries import to_lines

    ds = datasets.open_dataset(f"countries-{resolution}", settings().data_root)
    lines = to_lines(ds)
    layer_of_part = ds["layer"].values[ds["part_feature"].values]
    out: dict[str, np.ndarray] = {}
    for key, layer in (("coastlines", "land"), ("borders", "countries")):
        picked = [ln for ln, lay in zip(lines, layer_of_part, strict=True) if lay == layer]
        gap = np.full((1, 2), np.nan)
        out[key] = np.concatenate([p for ln in picked for p in (ln, gap)]) if picked else np.zeros((0, 2))
    return out


@dataclass(frozen=True)
class MapRequest:
    """A map view, as the page's widgets (and the URL) describe it.

    ``box`` is ``(west, east, south, north)`` in degrees, or ``None`` for the whole source.
    ``compare`` names a second source whose field at the same valid time is subtracted.
    ``frames`` > 1 asks for an animation of that many steps starting at ``step``.
    """

    source: str
    variable: str
    step: int = 0
    member: int | None = None
    projection: str = "PlateCarree"
    box: tuple[float, float, float, float] | None = None
    compare: str | None = None
    stations: bool = True
    frames: int = 1
    width: int = 640


def _matching_step(info: SourceInfo, valid_time: str, fallback: int) -> int:
    if valid_time and valid_time in info.valid_times:
        return info.valid_times.index(valid_time)
    if not valid_time or not any(info.valid_times):
        return min(fallback, len(info.steps) - 1)
    raise CoordError(
        f"{info.source} has no field valid at {valid_time}; its steps run "
        f"{info.valid_times[0] or '?'} to {info.valid_times[-1] or '?'}"
    )


def _view(req: MapRequest) -> tuple[SourceInfo, xr.DataArray, str | None, Any, Any]:
    """Source info, first field, its grid mapping, the grid's CRS and the view CRS of a request.

    The projection is centred on the zoomed area when there is one, else on the data.
    """
    info = source_info(req.source)
    if req.variable not in info.variables:
        raise StorageError(f"{req.source}: no variable {req.variable!r} (has {', '.join(info.variables)})")
    first_da, wkt = field(req.source, req.variable, req.step, req.member)
    native = native_crs(first_da, wkt)
    cw, ce, cs, cn = req.box if req.box is not None else info.bounds
    view = view_crs(req.projection, centre=((cw + ce) / 2, (cs + cn) / 2), native=native)
    return info, first_da, wkt, native, view


def selection_box(req: MapRequest, xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float, float]:
    """The lon/lat box ``(west, east, south, north)`` of a rectangle drawn on the map of ``req``.

    Parameters
    ----------
    req : MapRequest
        The request whose map the rectangle was drawn on (its view projection).
    xs, ys : pair of float
        The rectangle's corners in view coordinates (plotly's box selection).

    Raises
    ------
    CoordError
        The rectangle lies entirely off the globe.
    """
    import cartopy.crs as ccrs

    _, _, _, _, view = _view(req)
    x = np.linspace(min(xs), max(xs), 32)
    y = np.linspace(min(ys), max(ys), 32)
    gx, gy = np.meshgrid(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ll = ccrs.PlateCarree().transform_points(view, gx.ravel(), gy.ravel())
    ok = np.isfinite(ll[:, 0]) & np.isfinite(ll[:, 1])
    if not ok.any():
        raise CoordError("the selected rectangle lies off the globe")
    lon, lat = ll[ok, 0], ll[ok, 1]
    return float(lon.min()), float(lon.max()), float(max(lat.min(), -90.0)), float(min(lat.max(), 90.0))


@st.cache_data(max_entries=48, show_spinner="Rendering the map…")
def map_view(req: MapRequest) -> MapData:
    """Render a map (one frame or an animation) at screen resolution in the chosen projection.

    Raises
    ------
    WxError
        Unknown source or variable, a step out of range, a view that misses the data, or a
        comparison source without a field at the same valid time.
    """
    info, first_da, wkt, native, view = _view(req)
    west, east, south, north = info.bounds
    if req.box is not None:
        extent = view_extent(view, req.box)
    elif req.projection == "Data grid" and first_da.dims[-1] == "x":
        xs, ys = first_da["x"].values, first_da["y"].values
        extent = (float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max()))
    else:
        extent = view_extent(view, info.bounds)
    units = str(first_da.attrs.get("units", ""))
    scale = scale_for(req.variable, units, difference=req.compare is not None)
    # Contour lines need far fewer points than a shaded field, and the browser draws them slowly.
    width = min(req.width, 400) if scale.kind == "contour" else req.width
    smooth = req.variable not in ("precip_rate", "reflectivity")
    other = source_info(req.compare) if req.compare else None
    if other is not None and req.variable not in other.variables:
        raise StorageError(f"{req.compare} has no variable {req.variable!r} to compare with")

    last = min(len(info.steps), req.step + max(1, min(req.frames, MAX_FRAMES)))
    layers = []
    for step in range(req.step, last):
        da, _ = field(req.source, req.variable, step, req.member)
        img = rasterize(da, native=native, view=view, extent=extent, width=width, smooth=smooth)
        label = info.steps[step]
        if other is not None and req.compare is not None:
            ostep = _matching_step(other, info.valid_times[step], step)
            oda, owkt = field(req.compare, req.variable, ostep, req.member)
            oimg = rasterize(oda, native=native_crs(oda, owkt), view=view, extent=extent, width=width, smooth=smooth)
            img = GridImage(img.x, img.y, img.values - oimg.values, img.covered & oimg.covered)
            label += f" minus {other.label.split(' — ')[0]} {other.steps[ostep]}"
        layers.append(MapLayer(img, label))

    width_deg = (req.box[1] - req.box[0]) if req.box else east - west
    res = "50m" if width_deg < 60 else "110m"  # 50m coastlines only where they can be seen
    lines = boundaries(res)
    coast = project_lines(view, lines["coastlines"], extent)
    borders = project_lines(view, lines["borders"], extent)
    stations_xy: dict[str, np.ndarray] = {}
    if req.stations:
        st_df = stations()
        if len(st_df):
            sx, sy = project_points(view, st_df["lon"].to_numpy(), st_df["lat"].to_numpy())
            x0, x1, y0, y1 = extent
            inside = (sx >= x0) & (sx <= x1) & (sy >= y0) & (sy <= y1)
            stations_xy = {
                "x": sx[inside],
                "y": sy[inside],
                "name": st_df["name"].fillna(st_df["station_id"]).to_numpy()[inside],
            }
    title = f"{scale.label} ({scale.units}) — {info.label.split(' — ')[0]}"
    if req.member is not None and info.members:
        title += f", member {req.member}"
    return MapData(
        layers=layers,
        scale=scale,
        title=title,
        extent=tuple(float(v) for v in extent),  # type: ignore[arg-type]
        geographic=req.projection == "PlateCarree",
        coastlines=coast,
        borders=borders,
        stations=stations_xy,
        station_labels=width_deg < 30,
    )
