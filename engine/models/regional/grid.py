"""Regular latitude-longitude grids for regional downscaling: target grids, interpolation, DEMs.

The downscaler produces *regular* grids (1-D ``lat`` and ``lon``, either order). Inputs may also
be on a regular grid of a map projection (radar composites, nowcasts: ``y, x`` in projection
metres with a CF grid mapping), described by :class:`ProjectedGrid`; both kinds of source grid
give the fractional indices of target points (``positions``), from which :func:`interp_at`
interpolates bilinearly and :func:`resample_to_latlon` puts a projected Dataset onto a lat/lon
grid. Curvilinear DEMs (``y, x`` with 2-D ``lat``/``lon``) are averaged onto a regular grid by
:func:`dem_to_grid`.

Public API: ``LatLonGrid``, ``ProjectedGrid``, ``target_grid``, ``fractional_index``,
``linear_weights``, ``interp_regular``, ``containing_cell``, ``interp_at``, ``resample_to_latlon``, ``block_mean``,
``dem_to_grid``, ``normalise_longitudes``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from engine.coords import crs_of
from engine.errors import CoordError

#: Mean Earth radius (m), used for grid spacings in metres.
EARTH_RADIUS = 6_371_000.0
#: Metres per degree of latitude (or of longitude at the equator) on that sphere.
M_PER_DEG = EARTH_RADIUS * math.pi / 180.0


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

    def positions(self, grid: LatLonGrid, *, halo: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (row, column) indices on this grid of the cell centres of ``grid``.

        Both of shape ``grid.shape``; NaN beyond ``halo`` cells outside this grid (see
        :func:`fractional_index`). Longitudes of ``grid`` must be in this grid's frame.
        """
        py = fractional_index(self.lat, grid.lat, halo=halo)
        px = fractional_index(self.lon, grid.lon, halo=halo)
        return np.broadcast_to(py[:, None], grid.shape).copy(), np.broadcast_to(px[None, :], grid.shape).copy()

    def centre_lat_lon(self) -> tuple[float, float]:
        """Latitude and longitude (degrees) of the grid's middle."""
        return float(np.mean(self.lat[[0, -1]])), float(np.mean(self.lon[[0, -1]]))

    def displacement_m(self, rows: float, cols: float) -> tuple[float, float]:
        """Eastward and northward distance (m) of a shift by ``rows`` and ``cols`` cells at the grid's middle."""
        lat, _ = self.centre_lat_lon()
        north = rows * float(self.lat[1] - self.lat[0]) * M_PER_DEG
        east = cols * self.dlon * M_PER_DEG * math.cos(math.radians(lat))
        return east, north


@functools.lru_cache(maxsize=16)
def _transformer(crs_wkt: str, inverse: bool) -> Transformer:
    crs = CRS.from_wkt(crs_wkt)
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True) if inverse else \
        Transformer.from_crs("EPSG:4326", crs, always_xy=True)


@dataclass(frozen=True)
class ProjectedGrid:
    """A regular grid of a map projection, as radar composites and nowcasts come.

    Attributes
    ----------
    x, y : ndarray
        1-D cell-centre coordinates in the CRS's units (metres for projections), strictly
        monotonic; ``y`` usually decreasing (north-up rows).
    crs : pyproj.CRS
        The projection. Latitudes and longitudes are WGS 84, as :func:`engine.coords.lat_lon_grid`
        gives them to the readers' 2-D ``lat``/``lon``.
    """

    x: np.ndarray
    y: np.ndarray
    crs: CRS

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.y), len(self.x))

    @classmethod
    def of(cls, obj: xr.Dataset | xr.DataArray, *, name: str = "input") -> ProjectedGrid:
        """The grid of a ``(y, x)`` object with 1-D ``x``/``y`` coordinates and a CF grid mapping.

        Raises
        ------
        CoordError
            If ``x``/``y`` are missing or not 1-D and monotonic, or no usable CRS is attached.
        """
        for c in ("x", "y"):
            if c not in obj.coords or obj[c].ndim != 1 or obj[c].size < 2:
                raise CoordError(f"{name}: a projected (y, x) grid needs 1-D '{c}' coordinates; coords: {list(obj.coords)}")
            d = np.diff(np.asarray(obj[c].values, dtype="float64"))
            if not (np.all(d > 0) or np.all(d < 0)):
                raise CoordError(f"{name}: projection coordinate '{c}' is not strictly monotonic")
        try:
            crs = crs_of(obj)
        except CRSError as err:
            raise CoordError(f"{name}: the grid mapping of the projected (y, x) grid is not a usable CRS: {err}") from err
        if crs is None:
            raise CoordError(
                f"{name}: projected (y, x) grid without a CRS (no CF grid mapping variable with crs_wkt or"
                " grid_mapping_name); add one, or regrid to a regular lat/lon grid first"
            )
        return cls(np.asarray(obj["x"].values, dtype="float64"), np.asarray(obj["y"].values, dtype="float64"), crs)

    def to_xy(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Projection coordinates of WGS 84 points (``always_xy``: longitude first)."""
        x, y = _transformer(self.crs.to_wkt(), False).transform(np.asarray(lon, "float64"), np.asarray(lat, "float64"))
        return np.asarray(x), np.asarray(y)

    def to_lon_lat(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """WGS 84 longitude and latitude of projection coordinates."""
        lon, lat = _transformer(self.crs.to_wkt(), True).transform(np.asarray(x, "float64"), np.asarray(y, "float64"))
        return np.asarray(lon), np.asarray(lat)

    def positions(self, grid: LatLonGrid, *, halo: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (row, column) indices on this grid of the cell centres of ``grid``.

        The target points are transformed into the source CRS (pyproj), then located along
        ``y`` and ``x``; NaN beyond ``halo`` cells outside this grid.
        """
        lon2, lat2 = np.meshgrid(grid.lon, grid.lat)
        x, y = self.to_xy(lon2, lat2)
        return fractional_index(self.y, y, halo=halo), fractional_index(self.x, x, halo=halo)

    def centre_lat_lon(self) -> tuple[float, float]:
        """Latitude and longitude (degrees) of the grid's middle."""
        lon, lat = self.to_lon_lat(np.mean(self.x[[0, -1]]), np.mean(self.y[[0, -1]]))
        return float(lat), float(lon)

    def displacement_m(self, rows: float, cols: float) -> tuple[float, float]:
        """Eastward and northward distance (m) of a shift by ``rows`` and ``cols`` cells at the grid's middle.

        Measured on the sphere between the shifted and unshifted points, so the projection's
        rotation against north (meridian convergence) and its scale factor are accounted for.
        """
        xc, yc = float(np.mean(self.x[[0, -1]])), float(np.mean(self.y[[0, -1]]))
        lon, lat = self.to_lon_lat(np.array([xc, xc + cols * (self.x[1] - self.x[0])]),
                                   np.array([yc, yc + rows * (self.y[1] - self.y[0])]))
        north = float(lat[1] - lat[0]) * M_PER_DEG
        east = float(lon[1] - lon[0]) * M_PER_DEG * math.cos(math.radians(float(lat.mean())))
        return east, north

    def spacing_m(self) -> float:
        """The larger of the two grid spacings (m) at the grid's middle."""
        return max(math.hypot(*self.displacement_m(1.0, 0.0)), math.hypot(*self.displacement_m(0.0, 1.0)))

    def window(self, lat0: float, lat1: float, lon0: float, lon1: float, *, pad: int = 2) -> tuple[slice, slice]:
        """Row and column slices of the cells covering a lat/lon box, plus ``pad`` cells.

        Raises
        ------
        CoordError
            If the box's footprint covers fewer than 2x2 cells of the grid.
        """
        t = np.linspace(0.0, 1.0, 65)
        lon = np.concatenate([lon0 + (lon1 - lon0) * t, np.full_like(t, lon1), lon1 - (lon1 - lon0) * t,
                              np.full_like(t, lon0)])
        lat = np.concatenate([np.full_like(t, lat0), lat0 + (lat1 - lat0) * t, np.full_like(t, lat1),
                              lat1 - (lat1 - lat0) * t])
        x, y = self.to_xy(lon, lat)
        slices = []
        for coord, c in ((self.y, y), (self.x, x)):
            pos = fractional_index(coord, c[np.isfinite(c)], halo=np.inf)
            lo = max(int(np.floor(np.nanmin(pos))) - pad, 0) if pos.size else 0
            hi = min(int(np.ceil(np.nanmax(pos))) + pad + 1, len(coord)) if pos.size else 0
            slices.append(slice(lo, max(hi, lo)))
        if slices[0].stop - slices[0].start < 2 or slices[1].stop - slices[1].start < 2:
            raise CoordError(
                f"the input's projected grid does not overlap the domain (with its margin) lat {lat0:.2f}..{lat1:.2f},"
                f" lon {lon0:.2f}..{lon1:.2f}; choose --domain inside the input"
            )
        return slices[0], slices[1]


#: A source grid of the downscaler: regular in latitude-longitude or in a map projection.
SourceGrid = LatLonGrid | ProjectedGrid


def target_grid(
    lat0: float, lat1: float, lon0: float, lon1: float, resolution: float, *, lon_resolution: float | None = None
) -> LatLonGrid:
    """Cell centres of a regular grid covering ``[lat0, lat1] x [lon0, lon1]`` at ``resolution`` degrees.

    Latitudes run north to south (descending), as in ERA5. The first and last centres lie half
    a cell inside the box edges. ``lon_resolution`` (degrees) gives longitudes their own spacing.

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
    dlon = resolution if lon_resolution is None else lon_resolution
    if not (dlon > 0 and math.isfinite(dlon)):
        raise CoordError(f"longitude resolution {dlon}: must be a positive number of degrees")
    ny = max(int(round((lat1 - lat0) / resolution)), 2)
    nx = max(int(round((lon1 - lon0) / dlon)), 2)
    lat = lat1 - resolution * (np.arange(ny) + 0.5)
    lon = lon0 + dlon * (np.arange(nx) + 0.5)
    return LatLonGrid(lat, lon)


def normalise_longitudes(lon: np.ndarray, centre: float) -> np.ndarray:
    """Wrap longitudes into ``[centre - 180, centre + 180)`` (degrees)."""
    west = centre - 180.0
    return (np.asarray(lon, dtype="float64") - west) % 360.0 + west


def fractional_index(src: np.ndarray, dst: np.ndarray, *, halo: float = 0.5) -> np.ndarray:
    """Fractional index of each ``dst`` coordinate along the monotonic source coordinates ``src``.

    Between source points the index is linear in the coordinate; beyond the ends the end
    intervals are extended linearly up to ``halo`` source cells (0.5: the outer half of the end
    cells, which the source grid's cells still cover), and NaN beyond that (or for non-finite
    ``dst``). ``dst`` may have any shape.
    """
    src = np.asarray(src, dtype="float64")
    dst = np.array(dst, dtype="float64", ndmin=1)
    if src[0] > src[-1]:
        src, dst = -src, -dst
    n = len(src)
    pos = np.interp(dst, src, np.arange(n, dtype="float64"))
    lo = dst < src[0]
    hi = dst > src[-1]
    pos[lo] = (dst[lo] - src[0]) / (src[1] - src[0])
    pos[hi] = n - 1 + (dst[hi] - src[-1]) / (src[-1] - src[-2])
    pos[~np.isfinite(dst) | (pos < -halo) | (pos > n - 1 + halo)] = np.nan
    return pos


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
    n = len(src)
    pos = fractional_index(src, dst, halo=np.inf)
    pos = np.clip(pos, -1.0, n) if extrapolate else np.clip(pos, 0.0, n - 1)
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, n - 2)
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


def containing_cell(py: np.ndarray, px: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Flat index (row-major) of the source cell containing each fractional position; -1 outside.

    A cell's edges lie half-way between centres, so the containing cell is the nearest centre.
    """
    ny, nx = shape
    inside = np.isfinite(py) & np.isfinite(px)
    iy = np.clip(np.floor(np.nan_to_num(py) + 0.5).astype(np.int64), 0, ny - 1)
    ix = np.clip(np.floor(np.nan_to_num(px) + 0.5).astype(np.int64), 0, nx - 1)
    return np.where(inside, iy * nx + ix, -1)


def interp_at(field: torch.Tensor, py: np.ndarray, px: np.ndarray, *, skip_nan: bool = False) -> torch.Tensor:
    """Bilinear interpolation of a gridded field at fractional (row, column) positions.

    Parameters
    ----------
    field : Tensor
        ``(..., ny, nx)`` on the source grid (any leading dims), ``ny, nx >= 2``.
    py, px : ndarray
        Fractional indices of the targets (same shape, e.g. from ``positions``); NaN = outside
        the source grid. Positions in the half cell beyond the outermost centres take the edge
        values (no extrapolation).
    skip_nan : bool
        False (resampling): a target is NaN when any of its four source corners is NaN, so
        no-data stays no-data and never becomes a smeared number. True (the precipitation first
        guess): the weights are renormalised over the finite corners, and a target is NaN only
        when the source cell containing it is.

    Returns
    -------
    Tensor
        ``(..., *py.shape)``, the dtype and device of ``field``.
    """
    ny, nx = field.shape[-2:]
    if ny < 2 or nx < 2:
        raise CoordError(f"interpolation needs a source grid of at least 2x2 points, got {ny}x{nx}")
    inside = np.isfinite(py) & np.isfinite(px)
    qy = np.clip(np.nan_to_num(py), 0.0, ny - 1).ravel()
    qx = np.clip(np.nan_to_num(px), 0.0, nx - 1).ravel()
    iy = np.clip(np.floor(qy).astype(np.int64), 0, ny - 2)
    ix = np.clip(np.floor(qx).astype(np.int64), 0, nx - 2)
    dev, dt = field.device, field.dtype
    wy = torch.as_tensor(qy - iy, device=dev, dtype=dt)
    wx = torch.as_tensor(qx - ix, device=dev, dtype=dt)
    flat = field.reshape(*field.shape[:-2], ny * nx)
    corners = [(iy, ix, (1 - wy) * (1 - wx)), (iy, ix + 1, (1 - wy) * wx), (iy + 1, ix, wy * (1 - wx)),
               (iy + 1, ix + 1, wy * wx)]
    if not skip_nan:
        out = sum((flat[..., torch.as_tensor(r * nx + c, device=dev)] * w for r, c, w in corners),
                  torch.zeros((), dtype=dt, device=dev))
    else:
        num = torch.zeros((*field.shape[:-2], qy.size), dtype=dt, device=dev)
        den = torch.zeros_like(num)
        for r, c, w in corners:
            v = flat[..., torch.as_tensor(r * nx + c, device=dev)]
            ok = torch.isfinite(v)
            num = num + torch.where(ok, v, torch.zeros((), dtype=dt, device=dev)) * w
            den = den + ok.to(dt) * w
        own = flat[..., torch.as_tensor(containing_cell(qy, qx, (ny, nx)), device=dev)]
        # The containing cell is the nearest corner, whose weight is at least 1/4: den > 0 where it is finite.
        out = torch.where(torch.isfinite(own), num / den.clamp_min(1e-12), torch.full_like(num, math.nan))
    out = torch.where(torch.as_tensor(inside.ravel(), device=dev), out, torch.full_like(out, math.nan))
    return out.reshape(*field.shape[:-2], *np.shape(py))


def resample_to_latlon(
    ds: xr.Dataset, src: ProjectedGrid, grid: LatLonGrid, variables: Sequence[str], *, chunk: int = 16
) -> xr.Dataset:
    """Bilinear resampling of projected ``(..., y, x)`` variables onto a regular lat/lon grid.

    Interpolation is in the native projection coordinates (the target points transformed into
    the source CRS, then fractional indices); targets outside the source grid, or with a NaN
    among their four source corners (radar no-data), are NaN.

    Returns
    -------
    Dataset
        ``variables`` on ``(..., lat, lon)`` (float32, attributes kept except ``grid_mapping``),
        with the input's coordinates that do not depend on ``y``/``x`` (time, lead_time...).
    """
    py, px = src.positions(grid)
    out = xr.Dataset(coords={
        "lat": ("lat", grid.lat, {"units": "degrees_north", "standard_name": "latitude"}),
        "lon": ("lon", grid.lon, {"units": "degrees_east", "standard_name": "longitude"}),
    })
    for v in variables:
        da = ds[v].transpose(..., "y", "x")
        lead = da.dims[:-2]
        values = np.ascontiguousarray(da.values, dtype="float32").reshape(-1, *src.shape)
        res = np.empty((values.shape[0], *grid.shape), dtype="float32")
        for i in range(0, values.shape[0], chunk):
            res[i:i + chunk] = interp_at(torch.from_numpy(values[i:i + chunk]), py, px).numpy()
        attrs = {k: a for k, a in da.attrs.items() if k != "grid_mapping"}
        out[v] = ((*lead, "lat", "lon"), res.reshape(*da.shape[:-2], *grid.shape), attrs)
    keep = {k: c for k, c in ds.coords.items() if not ({"y", "x"} & set(c.dims)) and k not in ("lat", "lon")}
    return out.assign_coords(keep).assign_attrs(ds.attrs)


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
    lat2: np.ndarray
    lon2: np.ndarray
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
