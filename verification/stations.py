r"""Gridded forecasts at station points, and station scores.

:func:`match_to_stations` samples a gridded field at station locations (nearest grid point or
bilinear interpolation) on regular latitude-longitude grids (1-D ``lat``/``lon`` dims) and on
projected grids (``y``/``x`` dims with 2-D ``lat``/``lon`` coordinates and, ideally, a CF
``grid_mapping``), optionally correcting temperature for the difference between the model
orography and the station elevation with a lapse rate. :func:`match_to_times` does the same in
time: observations reported at their own minutes (METAR at hh:53, a station with gaps) sampled at
forecast valid times, each from the nearest valid report within a tolerance
(:func:`nearest_time_indices` is its index-level core, also used for gridded reference frames).
:func:`score_table` turns matched forecasts and observations into a tidy per-station,
per-lead-time table of bias, MAE and RMSE.
:func:`wind_direction_error` and :func:`vector_wind_error` handle wind, whose direction is
circular.

Public API: ``match_to_stations``, ``match_to_times``, ``nearest_time_indices``, ``score_table``,
``wind_direction_error``, ``vector_wind_error``, ``STANDARD_LAPSE_RATE``.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
import xarray as xr
from scipy.spatial import cKDTree

from engine.coords import crs_of
from engine.errors import CoordError, DimensionError
from engine.types import Dims
from verification._dims import resolve_dims, weighted_mean
from verification.metrics.continuous import bias, mae, rmse

__all__ = [
    "STANDARD_LAPSE_RATE",
    "match_to_stations",
    "match_to_times",
    "nearest_time_indices",
    "score_table",
    "vector_wind_error",
    "wind_direction_error",
]

#: ICAO standard-atmosphere tropospheric lapse rate, K per km (ICAO Doc 7488, 1993).
STANDARD_LAPSE_RATE = 6.5

EARTH_RADIUS_KM = 6371.0


def _unit_xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points on the unit sphere, so Euclidean nearest neighbours are great-circle nearest."""
    la, lo = np.deg2rad(lat), np.deg2rad(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


def _great_circle_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Haversine distance in km."""
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dlat, dlon = p2 - p1, np.deg2rad(lon2 - lon1)
    h = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0, 1)))


def _stations_frame(stations: pd.DataFrame | xr.Dataset) -> pd.DataFrame:
    """Normalise station metadata to a DataFrame indexed by station id with lat, lon[, elevation]."""
    if isinstance(stations, xr.Dataset):
        if "station" not in stations.dims:
            raise DimensionError(f"stations Dataset needs a 'station' dim; got dims {tuple(stations.dims)}")
        df = stations.reset_coords().to_dataframe()
    elif isinstance(stations, pd.DataFrame):
        df = stations.set_index("station") if "station" in stations.columns else stations.copy()
    else:
        raise TypeError(f"stations must be a pandas DataFrame or xarray Dataset, got {type(stations).__name__}")
    missing = [c for c in ("lat", "lon") if c not in df.columns]
    if missing:
        raise CoordError(
            f"stations lack column(s) {missing}; expected 'lat', 'lon' (degrees) and optionally 'elevation' (m)"
        )
    df.index.name = "station"
    lat = df["lat"].to_numpy(dtype=float)
    if np.any(~np.isfinite(lat)) or np.any(np.abs(lat) > 90):
        raise CoordError("station latitudes must be finite and within [-90, 90] degrees")
    return df


def _frac_index(coord: np.ndarray, values: np.ndarray, periodic: bool) -> tuple[np.ndarray, np.ndarray]:
    """Fractional index of ``values`` along a monotonic 1-D coordinate; (position, inside)."""
    n = coord.size
    ascending = coord[-1] > coord[0]
    c = coord if ascending else coord[::-1]
    idx = np.arange(n, dtype=float)
    if periodic:  # one more node: the first one again, 360 degrees on
        c = np.append(c, c[0] + 360.0)
        idx = np.append(idx, float(n))
    pos = np.interp(values, c, idx)
    inside = (values >= c[0]) & (values <= c[-1])
    if not ascending:
        pos = (n - 1) - pos if not periodic else np.mod(n - 1 - pos, n)
    return pos, inside


def _geo_mod(lon: np.ndarray, grid_lon: np.ndarray) -> np.ndarray:
    """Station longitudes in the convention of the grid (0..360 or -180..180)."""
    return np.mod(lon, 360.0) if np.nanmax(grid_lon) > 180 else np.mod(lon + 180.0, 360.0) - 180.0


def _stencil(
    field: xr.Dataset | xr.DataArray,
    st: pd.DataFrame,
    method: str,
) -> tuple[tuple[Hashable, Hashable], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid dims, corner indices (station, corner) along each dim, weights, inside flag, grid lat/lon."""
    slat = st["lat"].to_numpy(dtype=float)
    slon = st["lon"].to_numpy(dtype=float)
    if "lat" in field.dims and "lon" in field.dims:
        ydim, xdim = "lat", "lon"
        projected = False
        glat1, glon1 = field["lat"].values.astype(float), field["lon"].values.astype(float)
        glat, glon = np.meshgrid(glat1, glon1, indexing="ij")
        slon_g = _geo_mod(slon, glon1)
        spacing = np.abs(np.diff(glon1)).mean() if glon1.size > 1 else 360.0
        periodic = glon1.size > 1 and abs(glon1.size * spacing - 360.0) < 1e-6 * 360
        pos_y, in_y = _frac_index(glat1, slat, periodic=False)
        pos_x, in_x = _frac_index(glon1, slon_g, periodic=periodic)
        inside = in_y & in_x
    elif "y" in field.dims and "x" in field.dims:
        ydim, xdim = "y", "x"
        if "lat" not in field.coords or "lon" not in field.coords or field["lat"].ndim != 2:
            raise CoordError("a projected (y, x) field needs 2-D 'lat' and 'lon' coordinates for station matching")
        glat = field["lat"].transpose("y", "x").values.astype(float)
        glon = field["lon"].transpose("y", "x").values.astype(float)
        crs = crs_of(field)
        projected = crs is not None and "x" in field.coords and "y" in field.coords
        if projected:
            from pyproj import Transformer

            # station coordinates are WGS84 (GPS, WMO station lists), whatever the grid's datum
            to_xy = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
            sx, sy = to_xy.transform(slon, slat)
            pos_y, in_y = _frac_index(field["y"].values.astype(float), np.asarray(sy), periodic=False)
            pos_x, in_x = _frac_index(field["x"].values.astype(float), np.asarray(sx), periodic=False)
            inside = in_y & in_x
        else:
            pos_y, pos_x, inside = _inverse_bilinear(glat, glon, slat, slon)
        periodic = False
    else:
        raise DimensionError(f"cannot find grid dims ('lat', 'lon') or ('y', 'x') in {tuple(field.dims)}")
    ny, nx = field.sizes[ydim], field.sizes[xdim]
    if method == "nearest":
        if projected:
            # the projection is known: nearest grid point in the projected plane
            iy = np.clip(np.rint(pos_y), 0, ny - 1).astype(int)
            ix = np.clip(np.rint(pos_x), 0, nx - 1).astype(int)
        else:
            # great-circle nearest grid point, via a KD-tree on unit-sphere coordinates
            tree = cKDTree(_unit_xyz(glat.ravel(), glon.ravel()))
            _, flat = tree.query(_unit_xyz(slat, slon))
            iy, ix = np.unravel_index(flat, (ny, nx))
        iy_c, ix_c = np.asarray(iy)[:, None], np.asarray(ix)[:, None]
        w = np.ones((len(st), 1))
    elif method == "bilinear":
        y0 = np.clip(np.floor(pos_y), 0, max(ny - 2, 0)).astype(int)
        x0 = np.floor(pos_x).astype(int)
        x0 = np.mod(x0, nx) if periodic else np.clip(x0, 0, max(nx - 2, 0))
        ty = np.clip(pos_y - y0, 0, 1)
        tx = np.clip(pos_x - np.floor(pos_x) if periodic else pos_x - x0, 0, 1)
        y1 = np.minimum(y0 + 1, ny - 1)
        x1 = np.mod(x0 + 1, nx) if periodic else np.minimum(x0 + 1, nx - 1)
        iy_c = np.stack([y0, y0, y1, y1], axis=1)
        ix_c = np.stack([x0, x1, x0, x1], axis=1)
        w = np.stack([(1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx], axis=1)
    else:
        raise ValueError(f"method must be 'nearest' or 'bilinear', got {method!r}")
    return (ydim, xdim), iy_c, ix_c, w, inside, np.stack([glat, glon])


def _inverse_bilinear(
    glat: np.ndarray, glon: np.ndarray, slat: np.ndarray, slon: np.ndarray, iterations: int = 20
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fractional (y, x) indices of stations on a curvilinear grid without a known projection.

    Starting from the great-circle nearest grid point, Newton iterations invert the bilinear map
    from index space to a local tangent plane (east, north in km) around each station.
    """
    ny, nx = glat.shape
    tree = cKDTree(_unit_xyz(glat.ravel(), glon.ravel()))
    _, flat = tree.query(_unit_xyz(slat, slon))
    iy, ix = np.unravel_index(flat, (ny, nx))
    py, px = iy.astype(float), ix.astype(float)

    def plane(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dlon = np.mod(lon - slon + 180.0, 360.0) - 180.0
        return (
            np.deg2rad(dlon) * np.cos(np.deg2rad(slat)) * EARTH_RADIUS_KM,
            np.deg2rad(lat - slat) * EARTH_RADIUS_KM,
        )

    def corners(py: np.ndarray, px: np.ndarray):  # noqa: ANN202 - local helper
        y0 = np.clip(np.floor(py), 0, ny - 2).astype(int)
        x0 = np.clip(np.floor(px), 0, nx - 2).astype(int)
        out = []
        for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
            out.append(plane(glat[y0 + dy, x0 + dx], glon[y0 + dy, x0 + dx]))
        return y0, x0, out

    for _ in range(iterations):
        y0, x0, c = corners(py, px)
        ty, tx = py - y0, px - x0
        (e00, n00), (e01, n01), (e10, n10), (e11, n11) = c
        e = (1 - ty) * (1 - tx) * e00 + (1 - ty) * tx * e01 + ty * (1 - tx) * e10 + ty * tx * e11
        n = (1 - ty) * (1 - tx) * n00 + (1 - ty) * tx * n01 + ty * (1 - tx) * n10 + ty * tx * n11
        de_dy = (1 - tx) * (e10 - e00) + tx * (e11 - e01)
        de_dx = (1 - ty) * (e01 - e00) + ty * (e11 - e10)
        dn_dy = (1 - tx) * (n10 - n00) + tx * (n11 - n01)
        dn_dx = (1 - ty) * (n01 - n00) + ty * (n11 - n10)
        det = de_dy * dn_dx - de_dx * dn_dy
        det = np.where(det == 0, np.nan, det)
        # Newton step solving (e, n)(py, px) = (0, 0): the station is the origin of its plane
        step_y = (-e * dn_dx + n * de_dx) / det
        step_x = (-n * de_dy + e * dn_dy) / det
        py = np.clip(py + np.nan_to_num(step_y), -1.0, ny)
        px = np.clip(px + np.nan_to_num(step_x), -1.0, nx)
    inside = (py >= 0) & (py <= ny - 1) & (px >= 0) & (px <= nx - 1)
    return py, px, inside


def match_to_stations(
    field: xr.Dataset | xr.DataArray,
    stations: pd.DataFrame | xr.Dataset,
    *,
    method: Literal["nearest", "bilinear"] = "bilinear",
    orography: xr.DataArray | str | None = None,
    height_correction: bool | Sequence[str] = False,
    lapse_rate: float = STANDARD_LAPSE_RATE,
) -> xr.Dataset:
    r"""Sample a gridded forecast at station locations.

    Bilinear interpolation with fractional grid indices :math:`(i + t_y, j + t_x)`:

    .. math::

        f_s = (1-t_y)(1-t_x) f_{i,j} + (1-t_y) t_x f_{i,j+1} + t_y (1-t_x) f_{i+1,j} + t_y t_x f_{i+1,j+1}

    On regular latitude-longitude grids the fractional indices come from the 1-D coordinates
    (longitudes wrap on global grids); on projected grids from the CF grid mapping via pyproj
    (exact), or, without one, by inverting the bilinear map of the 2-D lat/lon in a local
    tangent plane (Newton iterations). ``nearest`` picks the grid point nearest in
    great-circle distance (KD-tree on unit-sphere coordinates), or the nearest projected grid
    point when the projection is known. Stations outside the grid get NaN with a warning.

    Height correction (temperature only) moves the model value from the model orography
    :math:`z_m` (interpolated the same way) to the station elevation :math:`z_s` along a fixed
    lapse rate :math:`\Gamma`:

    .. math:: T_s = T_m + \Gamma \, (z_m - z_s) / 1000

    so a station below the model surface gets a warmer value. The default
    :math:`\Gamma = 6.5` K km-1 is the ICAO standard atmosphere; it is a crude model near the
    ground (inversions, Foehn), but removes the first-order orographic bias in the Alps.

    Parameters
    ----------
    field : xarray.Dataset or xarray.DataArray
        Gridded forecast with dims ``(..., lat, lon)`` or ``(..., y, x)`` (plus 2-D ``lat``/``lon``
        coords and optionally a CF ``grid_mapping``).
    stations : pandas.DataFrame or xarray.Dataset
        Station ids (column or index ``station``, or the ``station`` dim), ``lat``, ``lon``
        (degrees) and, for height correction, ``elevation`` (m).
    method : {"nearest", "bilinear"}
        Interpolation method.
    orography : xarray.DataArray or str, optional
        Model surface height (m) on the same grid, or the name of a variable in ``field``.
    height_correction : bool or sequence of str
        ``True``: correct every variable in K (e.g. ``t2m``); or the names of the variables.
    lapse_rate : float
        :math:`\Gamma` in K km-1 (positive: temperature falls with height).

    Returns
    -------
    xarray.Dataset
        The variables along a dim ``station`` (other dims kept), with coordinates
        ``station_lat``, ``station_lon``, ``station_elevation`` (if known), ``grid_lat``,
        ``grid_lon`` and ``distance_km`` of the nearest grid point, and ``model_orography``
        (m) when orography is given. Corrected variables get the attribute
        ``height_correction``.

    Raises
    ------
    DimensionError
        If the field has no recognised grid dims.
    CoordError
        If station coordinates are missing or invalid, or a projected grid lacks 2-D lat/lon.
    ValueError
        If height correction is asked for without orography or station elevations.

    References
    ----------
    ICAO (1993): Manual of the ICAO Standard Atmosphere, Doc 7488, 3rd ed.
    Accadia, C. et al. (2003): Sensitivity of precipitation forecast skill scores to bilinear
    interpolation and a simple nearest-neighbor average method on high-resolution verification
    grids. Wea. Forecasting, 18, 918-932.
    """
    ds = field.to_dataset(name=field.name or "value") if isinstance(field, xr.DataArray) else field
    st = _stations_frame(stations)
    orog: xr.DataArray | None
    if isinstance(orography, str):
        if orography not in ds:
            raise ValueError(f"orography variable {orography!r} not in field; variables: {list(ds.data_vars)}")
        orog = ds[orography]
    else:
        orog = orography
    (ydim, xdim), iy, ix, w, inside, glatlon = _stencil(ds, st, method)
    if not inside.all():
        outside = list(st.index[~inside])
        warnings.warn(f"stations outside the grid get NaN: {outside}", UserWarning, stacklevel=2)
    sel_y = xr.DataArray(iy, dims=["station", "corner"])
    sel_x = xr.DataArray(ix, dims=["station", "corner"])
    weights = xr.DataArray(np.where(inside[:, None], w, np.nan), dims=["station", "corner"])

    def sample(da: xr.DataArray) -> xr.DataArray:
        if ydim not in da.dims or xdim not in da.dims:
            return da
        # drop the 2-D lat/lon coords before isel so they do not become (station, corner) coords
        da = da.drop_vars([c for c in da.coords if c not in da.dims])
        picked = da.isel({ydim: sel_y, xdim: sel_x})
        return (picked * weights).sum("corner", skipna=False).assign_attrs(da.attrs)

    grid_vars = [v for v in ds.data_vars if ydim in ds[v].dims and xdim in ds[v].dims]
    out = xr.Dataset({v: sample(ds[v]) for v in grid_vars})
    # metadata of the grid point with the largest weight (the nearest one), for the record
    best = np.argmax(w, axis=1)
    ny_idx, nx_idx = iy[np.arange(len(st)), best], ix[np.arange(len(st)), best]
    glat, glon = glatlon[0][ny_idx, nx_idx], glatlon[1][ny_idx, nx_idx]
    coords: dict[str, tuple[str, np.ndarray]] = {
        "station_lat": ("station", st["lat"].to_numpy(dtype=float)),
        "station_lon": ("station", st["lon"].to_numpy(dtype=float)),
        "grid_lat": ("station", glat),
        "grid_lon": ("station", glon),
        "distance_km": ("station", _great_circle_km(st["lat"].to_numpy(float), st["lon"].to_numpy(float), glat, glon)),
    }
    if "elevation" in st.columns:
        coords["station_elevation"] = ("station", st["elevation"].to_numpy(dtype=float))
    out = out.assign_coords({"station": st.index.to_numpy(), **coords})

    to_correct: list[Hashable]
    if height_correction is True:
        to_correct = [v for v in grid_vars if ds[v].attrs.get("units") == "K" or v in ("t2m",)]
        if not to_correct:
            raise ValueError("height_correction=True but no variable has units 'K'; name the variables instead")
    elif height_correction is False:
        to_correct = []
    else:
        to_correct = [height_correction] if isinstance(height_correction, str) else list(height_correction)
        missing = [v for v in to_correct if v not in out]
        if missing:
            raise ValueError(f"height_correction names variable(s) {missing} not in field: {grid_vars}")
    if orog is not None:
        model_z = sample(orog)
        out = out.assign_coords(model_orography=model_z)
    if to_correct:
        if orog is None:
            raise ValueError("height_correction needs orography= (model surface height, m)")
        if "elevation" not in st.columns:
            raise ValueError("height_correction needs a station 'elevation' column (m)")
        dz_km = (out["model_orography"] - out["station_elevation"]) / 1000.0
        for v in to_correct:
            out[v] = (out[v] + lapse_rate * dz_km).assign_attrs(
                {**ds[v].attrs, "height_correction": f"lapse rate {lapse_rate} K/km from model orography"}
            )
    out.attrs.update(ds.attrs)
    out.attrs["station_matching"] = method
    return out


# --------------------------------------------------------------------------------------------
# Matching in time
# --------------------------------------------------------------------------------------------


def _tolerance_ns(tolerance: pd.Timedelta | np.timedelta64 | str) -> int:
    tol = pd.Timedelta(tolerance)
    if pd.isna(tol) or tol < pd.Timedelta(0):
        raise ValueError(f"tolerance: {tolerance!r} is not a duration >= 0")
    return int(tol.value)


def nearest_time_indices(
    times: np.ndarray | Sequence[np.datetime64],
    targets: np.ndarray | Sequence[np.datetime64],
    tolerance: pd.Timedelta | np.timedelta64 | str,
    *,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    r"""Position of the report nearest each target time, within a tolerance; -1 where there is none.

    For each target :math:`t` the chosen report time :math:`s` minimises :math:`|s - t|` among the
    reports that count (``valid``), and is kept only if :math:`|s - t| \le` ``tolerance``
    (inclusive). A tie (one report as far before as another is after) goes to the *earlier*
    report: the routine report before the hour (METAR at hh:53) is the one that stands for the
    hour, and the choice is deterministic. A tolerance of 0 is an exact match.

    Parameters
    ----------
    times : array of datetime64
        Report times, 1-D, in any order, without repeats or NaT.
    targets : array of datetime64
        The times wanted (e.g. forecast valid times), 1-D; a NaT target gets -1.
    tolerance : Timedelta, timedelta64 or str
        Largest allowed distance, >= 0.
    valid : array of bool, optional
        Shape ``(..., len(times))``: which reports count, per series (e.g. the finite
        observations of each station). Default: every report counts.

    Returns
    -------
    numpy.ndarray of int
        Shape ``valid.shape[:-1] + (len(targets),)`` (``(len(targets),)`` without ``valid``):
        positions into ``times``, -1 where no counted report lies within the tolerance.

    Raises
    ------
    CoordError
        If ``times`` repeats a time or holds NaT, or ``valid`` does not end in ``len(times)``.
    ValueError
        If ``tolerance`` is negative or not a duration.
    """
    tol = _tolerance_ns(tolerance)
    t = np.asarray(times, dtype="datetime64[ns]").ravel()
    tg = np.asarray(targets, dtype="datetime64[ns]").ravel()
    n_t = t.size
    if valid is None:
        lead_shape: tuple[int, ...] = ()
        ok = np.ones((1, n_t), dtype=bool)
    else:
        ok = np.asarray(valid, dtype=bool)
        if ok.ndim == 0 or ok.shape[-1] != n_t:
            raise CoordError(f"valid has shape {ok.shape}; its last axis must have the {n_t} report times")
        lead_shape = ok.shape[:-1]
        ok = ok.reshape(-1, n_t)
    out = np.full((ok.shape[0], tg.size), -1, dtype=np.int64)
    if n_t == 0 or tg.size == 0:
        return out.reshape(*lead_shape, tg.size)
    if np.isnat(t).any():
        raise CoordError("report times hold NaT; drop those reports first")
    order = np.argsort(t, kind="stable")
    ts = t[order]
    repeated = ts[1:][ts[1:] == ts[:-1]]
    if repeated.size:
        shown = ", ".join(str(pd.Timestamp(x)) for x in np.unique(repeated)[:5])
        raise CoordError(f"report times repeat ({shown}); keep one report per time")
    ok = ok[:, order]
    idx = np.arange(n_t)
    # per series: the last counted report at or before position i, and the first at or after it
    last = np.maximum.accumulate(np.where(ok, idx, -1), axis=1)
    first = np.minimum.accumulate(np.where(ok, idx, n_t)[:, ::-1], axis=1)[:, ::-1]
    i_le = np.searchsorted(ts, tg, side="right") - 1  # the last report time <= target
    i_ge = np.searchsorted(ts, tg, side="left")  # the first report time >= target
    before = np.where(i_le >= 0, last[:, np.clip(i_le, 0, n_t - 1)], -1)
    after = np.where(i_ge < n_t, first[:, np.clip(i_ge, 0, n_t - 1)], n_t)
    ts_i, tg_i = ts.view("i8"), tg.view("i8")
    far = np.iinfo(np.int64).max
    d_before = np.where(before >= 0, tg_i - ts_i[np.clip(before, 0, n_t - 1)], far)
    d_after = np.where(after < n_t, ts_i[np.clip(after, 0, n_t - 1)] - tg_i, far)
    pick = np.where(d_before <= d_after, before, after)  # a tie goes to the earlier report
    hit = (np.minimum(d_before, d_after) <= tol) & ~np.isnat(tg)
    out[hit] = order[pick[hit]]
    return out.reshape(*lead_shape, tg.size)


def match_to_times(
    obs: xr.DataArray,
    times: np.ndarray | Sequence[np.datetime64],
    *,
    tolerance: pd.Timedelta | np.timedelta64 | str = "0s",
    dim: Hashable = "time",
) -> xr.DataArray:
    """Observations at given times: for each series, the nearest *valid* report within ``tolerance``.

    Each series along ``dim`` (e.g. each station) is matched on its own, so one station's
    nearest report may be at another minute than its neighbour's, and a missing (NaN) report is
    never chosen while a valid one lies within the tolerance. Ties go to the earlier report and
    the tolerance is inclusive (:func:`nearest_time_indices`). A report may stand for several
    target times (targets closer together than the report spacing).

    Parameters
    ----------
    obs : xarray.DataArray
        Observations with a ``dim`` coordinate of report times (any order, no repeats), e.g. on
        ``(station, time)``; NaN where a station did not report.
    times : array of datetime64
        Target times (e.g. forecast valid times).
    tolerance : Timedelta, timedelta64 or str
        Largest allowed distance between a report and a target time (>= 0); default 0, an
        exact match.
    dim : str
        The time dim of ``obs``.

    Returns
    -------
    xarray.DataArray
        ``obs`` with ``dim`` replaced by ``times`` (same dim order and float precision, float64
        for other dtypes, units kept): NaN where no valid report lies within the tolerance.
        Coordinate ``obs_time`` (same dims) holds the time of the report used, NaT where none;
        coordinates along ``dim`` are dropped, the others kept.

    Raises
    ------
    DimensionError
        If ``obs`` has no ``dim``.
    CoordError
        If the report times repeat or hold NaT.
    ValueError
        If ``tolerance`` is negative or not a duration.
    """
    if dim not in obs.dims:
        raise DimensionError(f"obs has no {dim!r} dim (dims {obs.dims})")
    target = np.asarray(times, dtype="datetime64[ns]").ravel()
    moved = obs.transpose(..., dim)
    values = np.asarray(moved.values)
    report_times = np.asarray(obs[dim].values, dtype="datetime64[ns]")
    pos = nearest_time_indices(report_times, target, tolerance, valid=pd.notna(values))
    found = pos >= 0
    safe = np.where(found, pos, 0)
    picked = np.where(found, np.take_along_axis(values, safe, axis=-1) if values.size else np.nan, np.nan)
    used = np.where(found, report_times[safe] if report_times.size else np.datetime64("NaT"), np.datetime64("NaT"))
    coords: dict[Hashable, Any] = {name: c for name, c in moved.coords.items() if dim not in c.dims and name != dim}
    coords[dim] = (dim, target, obs[dim].attrs)
    coords["obs_time"] = (moved.dims, used.astype("datetime64[ns]"), {"long_name": "time of the report used"})
    # floating observations keep their precision (float32 readers), others become float64 for NaN
    dtype = values.dtype if np.issubdtype(values.dtype, np.floating) else np.float64
    out = xr.DataArray(picked.astype(dtype), dims=moved.dims, coords=coords, name=obs.name, attrs=obs.attrs)
    return out.transpose(*obs.dims)


def score_table(
    fc: xr.Dataset | xr.DataArray,
    obs: xr.Dataset | xr.DataArray,
    *,
    by: Sequence[Hashable] = ("station", "lead_time"),
) -> pd.DataFrame:
    r"""Bias, MAE and RMSE per station and lead time, as a tidy table.

    .. math::

        \mathrm{bias} = \overline{f - o}, \quad \mathrm{MAE} = \overline{|f - o|}, \quad
        \mathrm{RMSE} = \sqrt{\overline{(f - o)^2}}

    with the means over every dim not in ``by`` (e.g. ``init_time``), pairs with a NaN skipped.

    Parameters
    ----------
    fc, obs : xarray.Dataset or xarray.DataArray
        Matched forecasts (e.g. from :func:`match_to_stations`) and observations on the same
        dims/coords (``station``, ``lead_time``, ...); same variables and units.
    by : sequence of str
        Dims to keep; those absent from the inputs are ignored.

    Returns
    -------
    pandas.DataFrame
        Columns ``by`` (present ones), ``variable``, ``n`` (number of valid pairs), ``bias``,
        ``mae``, ``rmse`` (units of the variable), one row per group and variable.

    Raises
    ------
    DimensionError
        If no dim of ``by`` is in the inputs.
    """
    if isinstance(fc, xr.DataArray):
        name = fc.name or "value"
        fc = fc.to_dataset(name=name)
        obs = obs.to_dataset(name=name) if isinstance(obs, xr.DataArray) else obs
    if isinstance(obs, xr.DataArray):
        raise TypeError("obs must be a Dataset when fc is a Dataset")
    common = [v for v in fc.data_vars if v in obs.data_vars]
    if not common:
        raise ValueError(f"fc and obs share no variable: {list(fc.data_vars)} vs {list(obs.data_vars)}")
    keep = [d for d in by if d in fc.dims or d in obs.dims]
    if not keep:
        raise DimensionError(f"none of the group dims {list(by)} is in the inputs (dims {tuple(fc.dims)})")
    frames = []
    for v in common:
        f, o = fc[v], obs[v]
        valid = (f.notnull() & o.notnull()).astype(int)
        red = resolve_dims(f, o, preserve_dims=keep)
        table = xr.Dataset(
            {
                "n": valid.sum(red) if red else valid,
                "bias": bias(f, o, preserve_dims=keep),
                "mae": mae(f, o, preserve_dims=keep),
                "rmse": rmse(f, o, preserve_dims=keep),
            }
        )
        df = table.to_dataframe().reset_index()
        df.insert(len(keep), "variable", str(v))
        frames.append(df[[*keep, "variable", "n", "bias", "mae", "rmse"]])
    return pd.concat(frames, ignore_index=True)


def wind_direction_error(fcst: xr.DataArray, obs: xr.DataArray) -> xr.DataArray:
    r"""Circular difference of wind directions, forecast minus observed, in [-180, 180) degrees.

    .. math:: \Delta\theta = \left((\theta_f - \theta_o + 180) \bmod 360\right) - 180

    A plain difference of 350 and 10 degrees would be 340; the circular one is -20 (the
    forecast is backed 20 degrees). Reduce afterwards as needed, e.g. the mean absolute
    direction error ``abs(err).mean()``. Directions of calm wind are meaningless: mask them
    first.

    Parameters
    ----------
    fcst, obs : xarray.DataArray
        Wind directions in degrees (meteorological convention, direction the wind comes from).

    Returns
    -------
    xarray.DataArray
        Direction error in degrees, in [-180, 180); positive = forecast veered (clockwise).

    References
    ----------
    Jammalamadaka, S. R. and SenGupta, A. (2001): Topics in Circular Statistics, World
    Scientific, section 1.3.
    """
    err = np.mod(fcst - obs + 180.0, 360.0) - 180.0
    # floating mod can return 360 - 180 = 180 for tiny negatives; fold it to the half-open range
    err = xr.where(err >= 180.0, err - 360.0, err)
    return err.assign_attrs(units="degree", long_name="wind direction error (forecast - observed)")


def vector_wind_error(
    fcst: xr.Dataset | tuple[xr.DataArray, xr.DataArray],
    obs: xr.Dataset | tuple[xr.DataArray, xr.DataArray],
    *,
    u: str = "u10",
    v: str = "v10",
    reduce_dims: Dims | None = None,
    preserve_dims: Dims | None = None,
    weights: xr.DataArray | None = None,
    skipna: bool = True,
) -> xr.DataArray:
    r"""Root-mean-square vector wind error.

    .. math:: \mathrm{RMSVE} = \sqrt{\frac{\sum_i w_i \left[(u^f_i - u^o_i)^2 + (v^f_i - v^o_i)^2\right]}{\sum_i w_i}}

    Unlike separate speed and direction errors, it penalises both at once and is not
    ill-defined for calm winds.

    Parameters
    ----------
    fcst, obs : xarray.Dataset or (u, v) tuple of xarray.DataArray
        Wind components in m s-1; Datasets use the variables named by ``u`` and ``v``.
    u, v : str
        Component variable names in Datasets.
    reduce_dims, preserve_dims, weights, skipna
        As in :func:`verification.rmse`.

    Returns
    -------
    xarray.DataArray
        Vector wind error (>= 0) in m s-1.

    Raises
    ------
    DimensionError
        For the usual ``reduce_dims`` / ``preserve_dims`` errors.

    References
    ----------
    WMO (2019): Manual on the Global Data-processing and Forecasting System, WMO-No. 485,
    Appendix 2.2.34 (root mean square vector wind error).
    """

    def parts(x: xr.Dataset | tuple[xr.DataArray, xr.DataArray], name: str) -> tuple[xr.DataArray, xr.DataArray]:
        if isinstance(x, xr.Dataset):
            missing = [c for c in (u, v) if c not in x]
            if missing:
                raise ValueError(f"{name} lacks wind component(s) {missing}; variables: {list(x.data_vars)}")
            return x[u], x[v]
        if isinstance(x, tuple) and len(x) == 2:
            return x
        raise TypeError(f"{name} must be a Dataset or a (u, v) tuple of DataArrays")

    uf, vf = parts(fcst, "fcst")
    uo, vo = parts(obs, "obs")
    sq = (uf - uo) ** 2 + (vf - vo) ** 2
    dims = resolve_dims(uf, uo, reduce_dims=reduce_dims, preserve_dims=preserve_dims, weights=weights)
    # np.sqrt dispatches to xarray (__array_ufunc__) and returns a DataArray; numpy's stubs say ndarray.
    rms = cast(xr.DataArray, np.sqrt(weighted_mean(sq, dims=dims, weights=weights, skipna=skipna)))
    return rms.rename("vector_wind_error")
