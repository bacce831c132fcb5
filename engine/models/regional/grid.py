"""Regular latitude-longitude grids for regional downscaling: target grids, interpolation, DEMs.

Everything here works on *regular* grids (1-D ``lat`` and ``lon``, either order), which is what
the downscaler produces; curvilinear DEMs (``y, x`` with 2-D ``lat``/``lon``) are first averaged
onto a regular grid by :func:`dem_to_grid`.

Public API: ``LatLonGrid``, ``target_grid``, ``linear_weights``, ``interp_regular``,
``block_mean``, ``dem_to_grid``, ``normalise_longitudes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from engine.errors import CoordError

#: Mean Earth radius (m), used for grid spacings in metres.
EARTH_RADIUS = 6_371_000.0


@dataclass(frozen=True)
class LatLonGrid:
    """A regular latitude-longitude grid of cell centres.

    Attributes
    ----------
    lat : ndarray
        Cell-centre latitudes (degrees north), shape ``(ny,)``, strictly monotonic.
    lon : ndarray
        Cell-centre longitudes (degrees east), shape ``(nx,)``, strictly increasing.
    """

    lat: np.ndarray
    lon: np.ndarray

    def __post_init__(self) -> None:
        for name, c in (("lat", self.lat), ("lon", self.lon)):
            c = np.asarray(c)
            if c.ndim != 1 or c.size < 2:
                raise CoordError(f"grid {name} must be 1-D with at least 2 points, got shape {c.shape}")
            d = np.diff(c)
            if not (np.all(d > 0) or (name == "lat" and np.all(d < 0))):
                raise CoordError(f"grid {name} must be strictly monotonic (lon increasing)")

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.lat), len(self.lon))

    @property
    def dlat(self) -> float:
        """Latitude spacing (degrees, positive)."""
        return float(abs(self.lat[1] - self.lat[0]))

    @property
    def dlon(self) -> float:
        """Longitude spacing (degrees)."""
        return float(self.lon[1] - self.lon[0])

    def spacing_m(self) -> tuple[np.ndarray, float]:
        """Grid spacing in metres: ``dx`` per row (shape ``(ny,)``, shrinking with cos lat) and ``dy``."""
        dy = EARTH_RADIUS * math.radians(self.dlat)
        dx = EARTH_RADIUS * np.radians(self.dlon) * np.cos(np.radians(self.lat))
        return dx, dy

    @classmethod
    def of(cls, obj: xr.Dataset | xr.DataArray) -> LatLonGrid:
        """The grid of an xarray object with 1-D ``lat``/``lon`` coordinates."""
        for c in ("lat", "lon"):
            if c not in obj.coords or obj[c].ndim != 1:
                raise CoordError(f"expected 1-D '{c}' coordinate on a regular lat/lon grid; coords: {list(obj.coords)}")
        return cls(np.asarray(obj["lat"].values, dtype="float64"), np.asarray(obj["lon"].values, dtype="float64"))


def target_grid(lat0: float, lat1: float, lon0: float, lon1: float, resolution: float) -> LatLonGrid:
    """Cell centres of a regular grid covering ``[lat0, lat1] x [lon0, lon1]`` at ``resolution`` degrees.

    Latitudes run north to south (descending), as in ERA5. The first and last centres lie half
    a cell inside the box edges.

    Raises
    ------
    CoordError
        If the box is empty, inverted, outside the globe, or ``resolution`` is not positive.
    """
    if not (resolution > 0 and math.isfinite(resolution)):
        raise CoordError(f"resolution {resolution}: must be a positive number of degrees")
    if not (-90 <= lat0 < lat1 <= 90):
        raise CoordError(f"domain latitudes {lat0}..{lat1}: need -90 <= LAT0 < LAT1 <= 90")
    if not (lon0 < lon1 and lon1 - lon0 <= 360):
        raise CoordError(f"domain longitudes {lon0}..{lon1}: need LON0 < LON1 spanning at most 360 degrees")
    ny = max(int(round((lat1 - lat0) / resolution)), 2)
    nx = max(int(round((lon1 - lon0) / resolution)), 2)
    lat = lat1 - resolution * (np.arange(ny) + 0.5)
    lon = lon0 + resolution * (np.arange(nx) + 0.5)
    return LatLonGrid(lat, lon)


def normalise_longitudes(lon: np.ndarray, centre: float) -> np.ndarray:
    """Wrap longitudes into ``[centre - 180, centre + 180)`` (degrees)."""
    west = centre - 180.0
    return (np.asarray(lon, dtype="float64") - west) % 360.0 + west


def linear_weights(src: np.ndarray, dst: np.ndarray, *, extrapolate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Indices and weights of 1-D linear interpolation from ``src`` to ``dst`` coordinates.

    Parameters
    ----------
    src : ndarray
        Source coordinates, strictly monotonic (ascending or descending), shape ``(n,)``.
    dst : ndarray
        Target coordinates, shape ``(m,)``.
    extrapolate : bool
        Beyond the outermost source points, extend the end intervals linearly (up to one
        source interval), instead of repeating the edge value. Linear extrapolation keeps a
        linear field exact near the domain edge, where targets lie up to half a coarse cell
        outside the coarse cell centres.

    Returns
    -------
    (ndarray, ndarray)
        ``i0`` (int, shape ``(m,)``): left source index; ``w`` (float, shape ``(m,)``): weight of
        ``i0 + 1`` (``1 - w`` goes to ``i0``).
    """
    src = np.asarray(src, dtype="float64")
    dst = np.asarray(dst, dtype="float64")
    if src[0] > src[-1]:
        src, dst = -src, -dst
    pos = np.interp(dst, src, np.arange(len(src), dtype="float64"))
    if extrapolate:
        lo = dst < src[0]
        hi = dst > src[-1]
        pos[lo] = (dst[lo] - src[0]) / (src[1] - src[0])
        pos[hi] = len(src) - 1 + (dst[hi] - src[-1]) / (src[-1] - src[-2])
        pos = np.clip(pos, -1.0, len(src))
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, len(src) - 2)
    return i0, pos - i0


def interp_regular(
    field: torch.Tensor, src: LatLonGrid, dst: LatLonGrid, *, extrapolate: bool = True
) -> torch.Tensor:
    """Bilinear interpolation between regular lat/lon grids (the baseline and a building block).

    Parameters
    ----------
    field : Tensor
        Values on ``src``, shape ``(..., ny_src, nx_src)``; any leading dims (time, member).
    src, dst : LatLonGrid
        Source and target grids. Longitudes of ``dst`` must be in the same frame as ``src``
        (see :func:`normalise_longitudes`).
    extrapolate : bool
        See :func:`linear_weights`.

    Returns
    -------
    Tensor
        Shape ``(..., ny_dst, nx_dst)``, same dtype and device as ``field``.
    """
    if field.shape[-2:] != src.shape:
        raise CoordError(f"field has grid shape {tuple(field.shape[-2:])}, source grid is {src.shape}")
    iy, wy = linear_weights(src.lat, dst.lat, extrapolate=extrapolate)
    ix, wx = linear_weights(src.lon, dst.lon, extrapolate=extrapolate)
    dev, dt = field.device, field.dtype
    iy_t, ix_t = torch.as_tensor(iy, device=dev), torch.as_tensor(ix, device=dev)
    wy_t = torch.as_tensor(wy, device=dev, dtype=dt)[:, None]
    wx_t = torch.as_tensor(wx, device=dev, dtype=dt)[None, :]
    rows0 = field.index_select(-2, iy_t)
    rows1 = field.index_select(-2, iy_t + 1)
    rows = rows0 * (1 - wy_t) + rows1 * wy_t
    return rows.index_select(-1, ix_t) * (1 - wx_t) + rows.index_select(-1, ix_t + 1) * wx_t


def block_mean(field: torch.Tensor, factor: int) -> torch.Tensor:
    """Average non-overlapping ``factor x factor`` blocks of the last two dims (trailing rows/cols dropped)."""
    if factor < 1:
        raise CoordError(f"block factor must be a positive integer, got {factor}")
    ny, nx = field.shape[-2] // factor, field.shape[-1] // factor
    if ny == 0 or nx == 0:
        raise CoordError(f"grid {tuple(field.shape[-2:])} is smaller than one {factor}x{factor} block")
    f = field[..., : ny * factor, : nx * factor]
    return f.reshape(*f.shape[:-2], ny, factor, nx, factor).mean(dim=(-3, -1))


def _cell_edges(centres: np.ndarray) -> np.ndarray:
    c = np.asarray(centres, dtype="float64")
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def dem_to_grid(dem: xr.Dataset | xr.DataArray, grid: LatLonGrid, *, name: str = "dem") -> np.ndarray:
    """Terrain height on ``grid`` (m), area-averaged from a DEM.

    Each target cell gets the mean of the DEM points whose centres fall inside it (the
    grid-box mean orography a model on that grid would see); target cells that contain no DEM
    point (DEM coarser than the target) get the DEM bilinearly interpolated at their centre.
    Ocean depths (negative heights, as in ETOPO) are set to 0: the surface there is the sea.

    Parameters
    ----------
    dem : Dataset or DataArray
        ``orography`` (m) on ``(lat, lon)`` with 1-D coordinates, or on ``(y, x)`` with 2-D
        ``lat``/``lon`` coordinates (degrees).
    grid : LatLonGrid
        Target grid.
    name : str
        Label for error messages (the DEM's file name).

    Returns
    -------
    ndarray
        Shape ``grid.shape``, float64, metres.

    Raises
    ------
    CoordError
        If the DEM has no usable coordinates or does not cover the grid.
    """
    da = dem["orography"] if isinstance(dem, xr.Dataset) else dem
    if isinstance(dem, xr.Dataset) and "orography" not in dem:
        raise CoordError(f"{name}: no 'orography' variable; has {list(dem.data_vars)}")
    da = da.squeeze(drop=True)
    if "lat" not in da.coords or "lon" not in da.coords:
        raise CoordError(f"{name}: orography needs 'lat' and 'lon' coordinates; has {list(da.coords)}")
    centre = float(np.mean(grid.lon))
    if da["lat"].ndim == 1 and da["lon"].ndim == 1:
        lat2, lon2 = np.meshgrid(da["lat"].values, da["lon"].values, indexing="ij")
        values = da.transpose(da["lat"].dims[0], da["lon"].dims[0]).values
    else:
        lat2, lon2, values = da["lat"].values, da["lon"].values, da.values
    lat2 = np.asarray(lat2, dtype="float64").ravel()
    lon2 = normalise_longitudes(np.asarray(lon2, dtype="float64").ravel(), centre)
    values = np.maximum(np.asarray(values, dtype="float64").ravel(), 0.0)
    ok = np.isfinite(values)
    lat2, lon2, values = lat2[ok], lon2[ok], values[ok]

    ye, xe = _cell_edges(grid.lat), _cell_edges(grid.lon)
    asc = ye[0] < ye[-1]
    ye_sorted = ye if asc else ye[::-1]
    if lat2.min() > ye_sorted[0] + grid.dlat or lat2.max() < ye_sorted[-1] - grid.dlat or \
            lon2.min() > xe[0] + grid.dlon or lon2.max() < xe[-1] - grid.dlon:
        raise CoordError(
            f"{name}: DEM covers lat {lat2.min():.2f}..{lat2.max():.2f}, lon {lon2.min():.2f}..{lon2.max():.2f}; "
            f"the grid needs lat {ye_sorted[0]:.2f}..{ye_sorted[-1]:.2f}, lon {xe[0]:.2f}..{xe[-1]:.2f}"
        )
    iy = np.searchsorted(ye_sorted, lat2) - 1
    if not asc:
        iy = len(grid.lat) - 1 - iy
    ix = np.searchsorted(xe, lon2) - 1
    inside = (iy >= 0) & (iy < len(grid.lat)) & (ix >= 0) & (ix < len(grid.lon))
    flat = iy[inside] * len(grid.lon) + ix[inside]
    n = np.bincount(flat, minlength=grid.shape[0] * grid.shape[1])
    s = np.bincount(flat, weights=values[inside], minlength=n.size)
    out = np.where(n > 0, s / np.maximum(n, 1), np.nan).reshape(grid.shape)
    if np.isnan(out).any():
        from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator

        # The DEM is coarser than the target somewhere: interpolate from DEM points near the grid.
        pad = 3 * max(grid.dlat, grid.dlon) + 2.0
        near = (lat2 > ye_sorted[0] - pad) & (lat2 < ye_sorted[-1] + pad) & (lon2 > xe[0] - pad) & (lon2 < xe[-1] + pad)
        pts = np.column_stack([lat2[near], lon2[near]])
        gy, gx = np.meshgrid(grid.lat, grid.lon, indexing="ij")
        miss = np.isnan(out)
        filled = LinearNDInterpolator(pts, values[near])(gy[miss], gx[miss])
        bad = np.isnan(filled)
        if bad.any():
            filled[bad] = NearestNDInterpolator(pts, values[near])(gy[miss][bad], gx[miss][bad])
        out[miss] = filled
    return out
