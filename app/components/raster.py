"""Server-side rasterisation of gridded fields onto a map projection, at screen resolution.

A field is drawn in two steps, so that the work depends on the size of the *screen*, not of the
grid (the MRMS frame is 7000 x 3500 points, 0.05 deg regional domains are thousands wide):

1. **aggregate in the grid's own coordinates** with datashader: the part of the grid that the
   view can see is averaged onto a canvas of at most about twice the screen resolution
   (``Canvas.quadmesh`` with a ``mean`` reduction, i.e. an area average of the cells that fall
   into each canvas pixel). Where the grid is coarser than the screen the canvas keeps the
   grid's own resolution, so a 3 deg analysis is shown as its 3 deg cells;
2. **map onto the view projection**: when the view is the grid's own projection (``PlateCarree``
   for a latitude-longitude grid, the CF grid mapping for a radar composite) the aggregate *is*
   the image; otherwise each screen pixel centre is transformed back to the grid's coordinates
   with cartopy (``CRS.transform_points``; pure PROJ arithmetic, nothing is downloaded) and looked
   up in the aggregate: nearest neighbour for precipitation and reflectivity (their values are
   not to be smoothed), bilinear for smooth fields (geopotential, temperature).

Zooming is a new call with a smaller extent: step 1 then sees fewer grid cells per pixel and
returns the detail.

Public API: ``GridImage``, ``native_crs``, ``view_crs``, ``VIEW_PROJECTIONS``, ``lonlat_bounds``,
``view_extent``, ``rasterize``, ``project_lines``, ``project_points``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import cartopy.crs as ccrs
import datashader as dsh
import numpy as np
import pyproj
import xarray as xr
from scipy import ndimage

from engine.errors import CoordError

#: Projections offered in the map view, in menu order. ``"Data grid"`` is the grid's own one.
VIEW_PROJECTIONS: tuple[str, ...] = (
    "PlateCarree",
    "Data grid",
    "LambertConformal",
    "Orthographic",
    "Robinson",
    "Mercator",
)


@dataclass(frozen=True)
class GridImage:
    """A field resampled onto a regular pixel grid of the view projection.

    Attributes
    ----------
    x, y : ndarray
        Pixel-centre coordinates in the view projection (metres, or degrees for PlateCarree),
        both ascending; shapes ``(nx,)`` and ``(ny,)``.
    values : ndarray
        ``(ny, nx)`` float32 values in the field's units; NaN where there is no data.
    covered : ndarray
        ``(ny, nx)`` bool: the pixel lies inside the grid's footprint (so a NaN there is a gap in
        the data, "no data", rather than somewhere the grid does not reach).
    """

    x: np.ndarray
    y: np.ndarray
    values: np.ndarray
    covered: np.ndarray


def _spatial_dims(da: xr.DataArray) -> tuple[str, str]:
    """Names of the (y, x) dims of a 2-D field: ``("lat", "lon")`` or ``("y", "x")``."""
    dims = tuple(str(d) for d in da.dims)
    if dims[-2:] in (("lat", "lon"), ("y", "x")):
        return dims[-2], dims[-1]
    raise CoordError(f"field {da.name!r} has dims {dims}; expected (..., lat, lon) or (..., y, x)")


def native_crs(da: xr.DataArray, crs_wkt: str | None = None) -> ccrs.CRS:
    """The coordinate reference system of a field's grid.

    Parameters
    ----------
    da : DataArray
        A field with ``lat, lon`` dims (regular latitude-longitude) or ``y, x`` dims.
    crs_wkt : str, optional
        The CF grid mapping's ``crs_wkt`` (required for ``y, x`` grids).

    Returns
    -------
    cartopy.crs.CRS
        ``PlateCarree()`` for latitude-longitude grids, else the projection of the WKT (the
        source CRS of a PROJ "bound" CRS, whose datum shift only matters at the metre level).

    Raises
    ------
    CoordError
        A projected grid without a usable ``crs_wkt``.
    """
    ydim, _ = _spatial_dims(da)
    if ydim == "lat":
        return ccrs.PlateCarree()
    if not crs_wkt:
        raise CoordError(f"field {da.name!r} is on a projected (y, x) grid but has no CF grid mapping (crs_wkt)")
    try:
        crs = pyproj.CRS.from_wkt(crs_wkt)
    except pyproj.exceptions.CRSError as err:
        raise CoordError(f"field {da.name!r}: cannot parse its grid mapping: {err}") from err
    if crs.is_bound and crs.source_crs is not None:
        crs = crs.source_crs
    return ccrs.Projection(crs)


def view_crs(name: str, *, centre: tuple[float, float], native: ccrs.CRS) -> ccrs.CRS:
    """The cartopy CRS of a view projection, centred on ``centre`` (lon, lat in degrees).

    ``LambertConformal`` uses standard parallels 10 deg either side of the centre latitude
    (the usual choice for mid-latitude domains); ``Orthographic`` looks down on the centre.

    Raises
    ------
    CoordError
        An unknown projection name.
    """
    lon0, lat0 = centre
    if name == "PlateCarree":
        return ccrs.PlateCarree()
    if name == "Data grid":
        return native
    if name == "LambertConformal":
        lat0 = float(np.clip(lat0, -80, 80))
        if abs(lat0) < 12:
            # Near the equator a conic projection degenerates; Mercator is the conformal choice there.
            return ccrs.Mercator(central_longitude=lon0)
        return ccrs.LambertConformal(
            central_longitude=lon0, central_latitude=lat0, standard_parallels=(lat0 - 10, lat0 + 10)
        )
    if name == "Orthographic":
        return ccrs.Orthographic(central_longitude=lon0, central_latitude=lat0)
    if name == "Robinson":
        return ccrs.Robinson(central_longitude=lon0)
    if name == "Mercator":
        return ccrs.Mercator(central_longitude=lon0)
    raise CoordError(f"unknown projection {name!r}; available: {', '.join(VIEW_PROJECTIONS)}")


def _normalised(da: xr.DataArray) -> xr.DataArray:
    """Longitudes in [-180, 180) and both spatial coordinates ascending."""
    ydim, xdim = _spatial_dims(da)
    if xdim == "lon" and float(da["lon"].max()) > 180.0:
        da = da.assign_coords(lon=((da["lon"] + 180.0) % 360.0) - 180.0)
    for dim in (ydim, xdim):
        vals = da[dim].values
        if vals.size < 2:
            continue
        steps = np.diff(vals)
        if np.all(steps > 0):
            continue
        # A descending axis (latitudes north to south, as most analyses and the MRMS mosaic store
        # them) is reversed with a strided view: ``sortby`` would copy the whole grid (2.7 s for
        # the 7000 x 3500 MRMS frame) where only the visible part is read later.
        da = da.isel({dim: slice(None, None, -1)}) if np.all(steps < 0) else da.sortby(dim)
    return da


def lonlat_bounds(da: xr.DataArray, crs_wkt: str | None = None) -> tuple[float, float, float, float]:
    """``(west, east, south, north)`` in degrees of a field's footprint.

    Global latitude-longitude grids return ``(-180, 180, -90, 90)``.
    """
    ydim, xdim = _spatial_dims(da)
    if ydim == "lat":
        lon = ((np.asarray(da["lon"].values, dtype="float64") + 180.0) % 360.0) - 180.0
        lat = np.asarray(da["lat"].values, dtype="float64")
        span = float(np.ptp(da["lon"].values))
        west, east = (-180.0, 180.0) if span >= 350 else (float(lon.min()), float(lon.max()))
        return west, east, float(lat.min()), float(lat.max())
    native = native_crs(da, crs_wkt)
    xs, ys = da[xdim].values, da[ydim].values
    edge_x = np.concatenate([xs, np.full(ys.size, xs[-1]), xs[::-1], np.full(ys.size, xs[0])])
    edge_y = np.concatenate([np.full(xs.size, ys[0]), ys, np.full(xs.size, ys[-1]), ys[::-1]])
    ll = ccrs.PlateCarree().transform_points(native, edge_x, edge_y)
    return float(ll[:, 0].min()), float(ll[:, 0].max()), float(ll[:, 1].min()), float(ll[:, 1].max())


def _finite_box(points: np.ndarray) -> tuple[float, float, float, float] | None:
    ok = np.isfinite(points[:, 0]) & np.isfinite(points[:, 1])
    if not ok.any():
        return None
    p = points[ok]
    return float(p[:, 0].min()), float(p[:, 0].max()), float(p[:, 1].min()), float(p[:, 1].max())


def view_extent(view: ccrs.CRS, box: Sequence[float]) -> tuple[float, float, float, float]:
    """Rectangle ``(x0, x1, y0, y1)`` in view coordinates that holds the lon/lat ``box``.

    Parameters
    ----------
    view : cartopy.crs.CRS
        The view projection.
    box : (west, east, south, north)
        Degrees.

    Raises
    ------
    CoordError
        If no part of the box is visible in the projection (e.g. the far side of an orthographic globe).
    """
    west, east, south, north = (float(v) for v in box)
    if isinstance(view, ccrs.PlateCarree):
        return west, east, south, north
    n = 64
    lons = np.linspace(west, east, n)
    lats = np.linspace(south, north, n)
    grid_lon, grid_lat = np.meshgrid(lons, lats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pts = view.transform_points(ccrs.PlateCarree(), grid_lon.ravel(), grid_lat.ravel())
    found = _finite_box(pts)
    if found is None:
        raise CoordError(f"the area {box} is not visible in this projection")
    return found


def _canvas_shape(extent: Sequence[float], width: int) -> tuple[int, int]:
    """Pixels ``(nx, ny)`` for a view extent, keeping its aspect ratio (height at most ``width``)."""
    x0, x1, y0, y1 = extent
    aspect = (y1 - y0) / max(x1 - x0, 1e-12)
    nx = int(width)
    ny = int(np.clip(round(width * aspect), 16, width))
    if ny == width and aspect > 1:
        nx = int(max(16, round(width / aspect)))
    return nx, ny


def _aggregate(da: xr.DataArray, box: Sequence[float], max_pixels: tuple[int, int]) -> xr.DataArray | None:
    """Area-average the part of ``da`` inside the native-coordinate ``box`` with datashader.

    The canvas has at most ``max_pixels`` and never more cells than the grid has in the box.
    A grid no finer than the canvas is returned as it is (its cells, not resampled). Returns
    ``None`` if the box misses the grid.
    """
    ydim, xdim = _spatial_dims(da)
    x0, x1, y0, y1 = box
    xs, ys = da[xdim].values, da[ydim].values
    dx = float(np.median(np.diff(xs))) if xs.size > 1 else 1.0
    dy = float(np.median(np.diff(ys))) if ys.size > 1 else 1.0
    x0, x1 = max(x0, xs[0] - dx / 2), min(x1, xs[-1] + dx / 2)
    y0, y1 = max(y0, ys[0] - dy / 2), min(y1, ys[-1] + dy / 2)
    if x1 <= x0 or y1 <= y0:
        return None
    sub = da.sel({xdim: slice(x0 - dx, x1 + dx), ydim: slice(y0 - dy, y1 + dy)})
    if sub.sizes[xdim] < 2 or sub.sizes[ydim] < 2:
        return None
    # Read only the visible part; a float32 grid already in memory is used as it is (``astype``
    # would copy it: 0.3 s for the whole MRMS frame), nothing below writes into it.
    sub = sub.load()
    if sub.dtype != np.float32:
        sub = sub.astype("float32")
    if sub.sizes[xdim] <= max_pixels[0] and sub.sizes[ydim] <= max_pixels[1]:
        # The grid is no finer than the screen: show its own cells, exactly, without resampling.
        return sub.rename({ydim: "y", xdim: "x"})
    nx = int(min(max_pixels[0], max(2, round((x1 - x0) / dx))))
    ny = int(min(max_pixels[1], max(2, round((y1 - y0) / dy))))
    name = str(sub.name or "value")
    canvas = dsh.Canvas(plot_width=nx, plot_height=ny, x_range=(x0, x1), y_range=(y0, y1))
    agg = canvas.quadmesh(sub.rename(name).to_dataset(), x=xdim, y=ydim, agg=dsh.reductions.mean(name))
    return agg.rename({agg.dims[0]: "y", agg.dims[1]: "x"}) if agg.dims != ("y", "x") else agg


def rasterize(
    da: xr.DataArray,
    *,
    native: ccrs.CRS,
    view: ccrs.CRS,
    extent: Sequence[float],
    width: int = 640,
    smooth: bool = False,
) -> GridImage:
    """Resample a 2-D field onto ``width`` pixels of the view projection over ``extent``.

    Parameters
    ----------
    da : DataArray
        ``(lat, lon)`` or ``(y, x)`` field with 1-D coordinates on those dims (units as stored).
    native : cartopy.crs.CRS
        The grid's CRS (:func:`native_crs`).
    view : cartopy.crs.CRS
        The view projection (:func:`view_crs`).
    extent : (x0, x1, y0, y1)
        View rectangle in view coordinates (:func:`view_extent`).
    width : int
        Image width in pixels; the height follows the extent's aspect ratio.
    smooth : bool
        Bilinear interpolation when reprojecting (smooth fields); nearest neighbour otherwise.

    Returns
    -------
    GridImage

    Raises
    ------
    CoordError
        ``da`` is not a 2-D field on known dims.
    """
    if da.ndim != 2:
        raise CoordError(f"rasterize needs a 2-D field, got dims {da.dims}")
    da = _normalised(da)
    nx, ny = _canvas_shape(extent, width)
    x0, x1, y0, y1 = (float(v) for v in extent)
    same = view == native or (isinstance(view, ccrs.PlateCarree) and isinstance(native, ccrs.PlateCarree))
    if same:
        agg = _aggregate(da, (x0, x1, y0, y1), (nx, ny))
        if agg is None:
            return _empty(x0, x1, y0, y1, nx, ny)
        values = np.asarray(agg.values, dtype="float32")
        return GridImage(x=agg["x"].values, y=agg["y"].values, values=values, covered=np.ones(values.shape, bool))

    # Screen pixel centres → grid coordinates.
    px = x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx
    py = y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny
    gx, gy = np.meshgrid(px, py)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        src = native.transform_points(view, gx.ravel(), gy.ravel())[:, :2]
    box = _finite_box(src)
    if box is None:
        return _empty(x0, x1, y0, y1, nx, ny)
    # The native canvas: about twice the screen resolution, so the lookup does not alias.
    agg = _aggregate(da, box, (2 * nx, 2 * ny))
    if agg is None:
        return _empty(x0, x1, y0, y1, nx, ny)
    ax = np.asarray(agg["x"].values, dtype="float64")
    ay = np.asarray(agg["y"].values, dtype="float64")
    finite = np.isfinite(src[:, 0]) & np.isfinite(src[:, 1])
    sx = np.where(finite, src[:, 0], ax[0])
    sy = np.where(finite, src[:, 1], ay[0])
    # Fractional indices by interpolation on the coordinates: exact on irregular axes too
    # (Gaussian latitudes). Half a cell beyond the outer centres is still inside the grid.
    half_x, half_y = 0.5 * (ax[-1] - ax[0]) / max(ax.size - 1, 1), 0.5 * (ay[-1] - ay[0]) / max(ay.size - 1, 1)
    covered = (
        finite & (sx >= ax[0] - half_x) & (sx <= ax[-1] + half_x) & (sy >= ay[0] - half_y) & (sy <= ay[-1] + half_y)
    )
    col = np.interp(sx, ax, np.arange(ax.size, dtype="float64"))
    row = np.interp(sy, ay, np.arange(ay.size, dtype="float64"))
    grid = np.asarray(agg.values, dtype="float32")
    if smooth:
        values = ndimage.map_coordinates(grid, [row, col], order=1, mode="nearest", cval=np.nan)
    else:
        values = ndimage.map_coordinates(grid, [np.rint(row), np.rint(col)], order=0, mode="nearest", cval=np.nan)
    values = np.where(covered, values, np.nan).astype("float32")
    return GridImage(x=px, y=py, values=values.reshape(ny, nx), covered=covered.reshape(ny, nx))


def _empty(x0: float, x1: float, y0: float, y1: float, nx: int, ny: int) -> GridImage:
    px = x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx
    py = y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny
    return GridImage(x=px, y=py, values=np.full((ny, nx), np.nan, "float32"), covered=np.zeros((ny, nx), bool))


def project_points(view: ccrs.CRS, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes/latitudes (degrees) → view coordinates; invisible points become NaN."""
    lon = np.asarray(lon, dtype="float64")
    lat = np.asarray(lat, dtype="float64")
    if lon.size == 0:
        return lon, lat
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pts = view.transform_points(ccrs.PlateCarree(), lon, lat)
    x, y = pts[:, 0], pts[:, 1]
    bad = ~(np.isfinite(x) & np.isfinite(y)) | np.isnan(lon)
    x = np.where(bad, np.nan, x)
    y = np.where(bad, np.nan, y)
    return x, y


def project_lines(view: ccrs.CRS, lines: np.ndarray, extent: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """NaN-separated lon/lat polylines → NaN-separated view-coordinate polylines.

    Segments that jump across the view (a ring crossing the antimeridian of the projection, or
    the limb of an orthographic globe) are broken, so no line is drawn across the map.

    Parameters
    ----------
    view : cartopy.crs.CRS
        The view projection.
    lines : ndarray
        ``(n, 2)`` lon, lat in degrees, rings separated by NaN rows.
    extent : (x0, x1, y0, y1)
        The view rectangle; used to define what counts as a jump.
    """
    x, y = project_points(view, lines[:, 0], lines[:, 1])
    x0, x1, y0, y1 = extent
    span = max(x1 - x0, y1 - y0)
    jump = np.zeros(x.size, bool)
    jump[1:] = np.hypot(np.diff(x), np.diff(y)) > 0.5 * span
    x = np.where(jump, np.nan, x)
    y = np.where(jump, np.nan, y)
    # Drop points far outside the view (keeping the NaN separators) to lighten the figure.
    pad = 0.25 * span
    outside = (x < x0 - pad) | (x > x1 + pad) | (y < y0 - pad) | (y > y1 + pad)
    x = np.where(outside, np.nan, x)
    y = np.where(outside, np.nan, y)
    # Collapse runs of NaN separators.
    sep = np.isnan(x)
    dup = np.zeros(x.size, bool)
    dup[1:] = sep[1:] & sep[:-1]
    return x[~dup], y[~dup]
