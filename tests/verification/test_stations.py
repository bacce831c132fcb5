"""Station matching, station score tables and wind errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.coords import attach_projection
from engine.errors import CoordError, DimensionError
from verification import (
    STANDARD_LAPSE_RATE,
    match_to_stations,
    score_table,
    vector_wind_error,
    wind_direction_error,
)

# Ellboegen (valley) and Sattelberg (crest), Wipp valley: coordinates from shared/data/README.md
WIPP = pd.DataFrame(
    {
        "station": ["ellboegen", "sattelberg"],
        "lat": [47.18694, 47.01083],
        "lon": [11.42889, 11.47889],
        "elevation": [1080.0, 2107.0],
    }
)


def _latlon_field(lat: np.ndarray, lon: np.ndarray, func) -> xr.Dataset:
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    return xr.Dataset({"t2m": (("lat", "lon"), func(la, lo), {"units": "K"})}, coords={"lat": lat, "lon": lon})


def test_bilinear_is_exact_for_linear_field_on_latlon_grid():
    lat = np.arange(50.0, 40.0, -0.5)  # descending, as in ERA5
    lon = np.arange(5.0, 16.0, 0.25)
    ds = _latlon_field(lat, lon, lambda la, lo: 280 + 0.7 * la - 0.3 * lo)
    out = match_to_stations(ds, WIPP, method="bilinear")
    np.testing.assert_allclose(out.t2m.values, 280 + 0.7 * WIPP.lat.values - 0.3 * WIPP.lon.values, rtol=1e-12)
    assert out.t2m.dims == ("station",) and list(out.station.values) == ["ellboegen", "sattelberg"]
    # independent reference: xarray's linear interpolation
    ref = ds.t2m.interp(lat=xr.DataArray(WIPP.lat, dims="s"), lon=xr.DataArray(WIPP.lon, dims="s"))
    np.testing.assert_allclose(out.t2m.values, ref.values, rtol=1e-12)


def test_nearest_picks_the_right_cell():
    lat = np.arange(40.0, 50.0, 1.0)
    lon = np.arange(0.0, 20.0, 1.0)
    ds = _latlon_field(lat, lon, lambda la, lo: 100 * la + lo)  # value encodes the cell
    st_ = pd.DataFrame({"station": ["a", "b"], "lat": [47.3, 42.6], "lon": [11.45, 3.51]})
    out = match_to_stations(ds, st_, method="nearest")
    # nearest cell centres: (47, 11) and (43, 4); 3.51 is nearer 4 than 3
    np.testing.assert_array_equal(out.t2m.values, [4711.0, 4304.0])
    assert out.grid_lat.values.tolist() == [47.0, 43.0]
    assert (out.distance_km < 60).all()


def test_bilinear_wraps_longitude_on_global_grid(era5_ensemble):
    _, truth = era5_ensemble
    field = truth.isel(time=0, drop=True).rename("t850")  # 0..357 E, 3-degree
    st_ = pd.DataFrame({"station": ["greenwich", "wipp"], "lat": [51.48, 47.18694], "lon": [-0.0015, 11.42889]})
    out = match_to_stations(field, st_)
    # Greenwich lies between 357 E and 360 = 0 E; do the wrapped interpolation by hand
    ext = xr.concat([field, field.isel(lon=[0]).assign_coords(lon=[360.0])], dim="lon")
    ref = ext.interp(lat=xr.DataArray(st_.lat, dims="s"), lon=xr.DataArray(np.mod(st_.lon, 360), dims="s"))
    np.testing.assert_allclose(out.t850.values, ref.values, rtol=1e-6)


def _swiss_grid(func) -> xr.Dataset:
    x = np.arange(2_760_000.0, 3_000_000.0, 2000.0)  # CH1903+ / LV95, 2 km, to Tyrol
    y = np.arange(1_100_000.0, 1_250_000.0, 2000.0)
    xx, yy = np.meshgrid(x, y)
    ds = xr.Dataset({"t2m": (("y", "x"), func(xx, yy), {"units": "K"})})
    return attach_projection(ds, "EPSG:2056", x=x, y=y)


@pytest.mark.filterwarnings("ignore:angle from rectified:UserWarning")  # pyproj, in attach_projection
def test_bilinear_is_exact_for_linear_field_on_projected_grid():
    pyproj = pytest.importorskip("pyproj")
    ds = _swiss_grid(lambda x, y: 270 + 1e-5 * x - 2e-5 * y)
    out = match_to_stations(ds, WIPP)
    sx, sy = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:2056", always_xy=True).transform(WIPP.lon, WIPP.lat)
    np.testing.assert_allclose(out.t2m.values, 270 + 1e-5 * np.asarray(sx) - 2e-5 * np.asarray(sy), rtol=1e-12)
    # without the grid mapping, the inverse-bilinear search on the 2-D lat/lon gets close
    bare = ds.drop_vars("crs")
    bare["t2m"].attrs.pop("grid_mapping")
    approx = match_to_stations(bare, WIPP)
    np.testing.assert_allclose(approx.t2m.values, out.t2m.values, atol=2e-3)  # K, i.e. < 100 m


@pytest.mark.filterwarnings("ignore:angle from rectified:UserWarning")  # pyproj, in attach_projection
def test_nearest_on_projected_grid_matches_brute_force():
    ds = _swiss_grid(lambda x, y: x + 1e-7 * y)
    out = match_to_stations(ds, WIPP, method="nearest")
    lat, lon = ds.lat.values.astype(float), ds.lon.values.astype(float)
    for k, row in WIPP.reset_index(drop=True).iterrows():
        d = np.hypot((lat - row.lat), (lon - row.lon) * np.cos(np.deg2rad(row.lat)))
        iy, ix = np.unravel_index(np.argmin(d), d.shape)
        assert float(out.t2m[k]) == pytest.approx(float(ds.t2m[iy, ix]))


def test_real_rotated_pole_orography(data_root):
    path = data_root / "geocat-datafiles/netcdf_files/HSURF_regional_model_0.11deg.nc"
    if not path.is_file():
        pytest.skip("HSURF sample file missing")
    ds = xr.open_dataset(path).isel(time=0, drop=True).rename(rlat="y", rlon="x")
    ds = ds.set_coords("rotated_pole")[["HSURF"]]
    with_crs = match_to_stations(ds, WIPP)
    # interpolating the grid's own latitude/longitude fields gives back the station position
    geo = xr.Dataset({"glat": ds.lat.astype(float), "glon": ds.lon.astype(float)}).drop_vars(["lat", "lon"])
    geo = geo.assign_coords(lat=ds.lat, lon=ds.lon)
    back = match_to_stations(geo, WIPP)
    np.testing.assert_allclose(back.glat.values, WIPP.lat.values, atol=1e-3)
    np.testing.assert_allclose(back.glon.values, WIPP.lon.values, atol=1e-3)
    # the same without the grid mapping (inverse bilinear on the 2-D lat/lon) agrees closely
    bare = ds.drop_vars("rotated_pole")
    bare["HSURF"].attrs.pop("grid_mapping", None)
    np.testing.assert_allclose(match_to_stations(bare, WIPP).HSURF.values, with_crs.HSURF.values, rtol=1e-3)
    # the 12 km model orography lies between the valley floor and the crest
    assert 1080 < float(with_crs.HSURF.sel(station="ellboegen")) < 2500
    assert with_crs.attrs["station_matching"] == "bilinear"


def test_height_correction_sign_and_size():
    lat = np.arange(46.0, 48.5, 0.5)
    lon = np.arange(10.0, 13.0, 0.5)
    ds = _latlon_field(lat, lon, lambda la, lo: np.full_like(la, 280.0))
    ds["orography"] = (("lat", "lon"), np.full((lat.size, lon.size), 1500.0))
    out = match_to_stations(ds, WIPP, orography="orography", height_correction=True)
    # Ellboegen 420 m below the model surface: warmer by 6.5 K/km * 0.42 km = 2.73 K;
    # Sattelberg 607 m above it: colder by 3.9455 K
    np.testing.assert_allclose(out.t2m.values, [280 + 2.73, 280 - 3.9455], rtol=1e-12)
    assert STANDARD_LAPSE_RATE == 6.5
    custom = match_to_stations(ds, WIPP, orography=ds.orography, height_correction=["t2m"], lapse_rate=10.0)
    np.testing.assert_allclose(custom.t2m.values, [280 + 4.2, 280 - 6.07], rtol=1e-12)
    with pytest.raises(ValueError, match="orography"):
        match_to_stations(ds, WIPP, height_correction=True)
    with pytest.raises(ValueError, match="elevation"):
        match_to_stations(ds, WIPP.drop(columns="elevation"), orography="orography", height_correction=True)


def test_bad_station_inputs():
    ds = _latlon_field(np.arange(40.0, 50.0), np.arange(0.0, 20.0), lambda la, lo: la + lo)
    with pytest.raises(CoordError, match="lat"):
        match_to_stations(ds, pd.DataFrame({"station": ["a"], "latitude": [45.0], "lon": [5.0]}))
    with pytest.raises(ValueError, match="method"):
        match_to_stations(ds, WIPP, method="cubic")
    with pytest.raises(DimensionError, match="grid dims"):
        match_to_stations(ds.rename(lat="a", lon="b"), WIPP)
    with pytest.warns(UserWarning, match="outside the grid"):
        out = match_to_stations(ds, pd.DataFrame({"station": ["far"], "lat": [10.0], "lon": [5.0]}))
    assert np.isnan(out.t2m.values).all()


def test_lead_time_dims_are_kept():
    lat, lon = np.arange(45.0, 49.0), np.arange(9.0, 14.0)
    base = _latlon_field(lat, lon, lambda la, lo: la * 0 + 1.0).t2m
    field = xr.concat([base * k for k in (1.0, 2.0, 3.0)], dim="lead_time").assign_coords(lead_time=[0, 6, 12])
    out = match_to_stations(field.to_dataset(), WIPP)
    assert out.t2m.dims == ("lead_time", "station")
    np.testing.assert_allclose(out.t2m.values, [[1, 1], [2, 2], [3, 3]])


# ---------------------------------------------------------------- score table


def test_score_table_per_station_and_lead_time():
    rng = np.random.default_rng(0)
    dims = ("init_time", "lead_time", "station")
    shape = (30, 3, 2)
    coords = {"init_time": np.arange(30), "lead_time": [6, 12, 24], "station": ["ellboegen", "sattelberg"]}
    obs = xr.Dataset({"t2m": (dims, rng.normal(280, 3, shape))}, coords=coords)
    err = rng.normal(0.5, 1.0, shape)
    fc = obs + err
    fc["t2m"][0, 0, 0] = np.nan  # one missing forecast
    table = score_table(fc, obs)
    assert list(table.columns) == ["lead_time", "station", "variable", "n", "bias", "mae", "rmse"] or list(
        table.columns
    ) == ["station", "lead_time", "variable", "n", "bias", "mae", "rmse"]
    assert len(table) == 6
    row = table[(table.station == "ellboegen") & (table.lead_time == 6)].iloc[0]
    e = err[1:, 0, 0]
    assert row.n == 29
    assert row.bias == pytest.approx(e.mean())
    assert row.mae == pytest.approx(np.abs(e).mean())
    assert row.rmse == pytest.approx(np.sqrt((e**2).mean()))
    with pytest.raises(DimensionError, match="group dims"):
        score_table(fc, obs, by=["region"])


# ---------------------------------------------------------------- wind


def test_wind_direction_error_wraps():
    f = xr.DataArray([350.0, 10.0, 180.0, 90.0, 0.0, 359.0], dims=["t"])
    o = xr.DataArray([10.0, 350.0, 0.0, 90.0, 180.0, 1.0], dims=["t"])
    np.testing.assert_allclose(wind_direction_error(f, o).values, [-20.0, 20.0, -180.0, 0.0, -180.0, -2.0])


@settings(max_examples=50, deadline=None)
@given(st.floats(-720, 720), st.floats(-720, 720))
def test_wind_direction_error_range_and_equivalence(a, b):
    err = float(wind_direction_error(xr.DataArray(a), xr.DataArray(b)))
    assert -180.0 <= err < 180.0
    # adding the error to the observed direction gives the forecast direction (mod 360)
    assert np.isclose(np.mod(b + err - a + 180, 360) - 180, 0.0, atol=1e-6)


def test_vector_wind_error():
    fc = xr.Dataset({"u10": ("t", [1.0, 0.0]), "v10": ("t", [0.0, 2.0])})
    ob = xr.Dataset({"u10": ("t", [0.0, 0.0]), "v10": ("t", [0.0, -1.0])})
    # squared vector differences 1 and 9: sqrt(mean) = sqrt(5)
    assert float(vector_wind_error(fc, ob)) == pytest.approx(np.sqrt(5.0))
    assert float(vector_wind_error((fc.u10, fc.v10), (ob.u10, ob.v10))) == pytest.approx(np.sqrt(5.0))
    np.testing.assert_allclose(vector_wind_error(fc, ob, preserve_dims="t").values, [1.0, 3.0])
    with pytest.raises(ValueError, match="u10"):
        vector_wind_error(fc.drop_vars("u10"), ob)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vector_wind_error(fc, ob)
