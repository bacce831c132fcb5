"""Cartography, colour scales, URL state and chart builders, on real sample data where it matters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from app.components import charts, raster
from app.components.scales import G0, PRECIP_LEVELS, precip_classes, scale_for


@pytest.fixture(scope="module")
def mch_frame(data_root):
    from engine import datasets
    from engine.readers import open_any

    meta = datasets.get("mch-2015-05-15")
    return open_any(meta.paths(data_root)[20], format=meta.format)


@pytest.mark.parametrize("projection", ["PlateCarree", "LambertConformal", "Orthographic", "Mercator"])
def test_radar_pixels_land_where_the_reader_says(mch_frame, projection):
    """A rendered pixel holds the value of the radar cell whose (lat, lon) the reader gives for that place."""
    da = mch_frame["precip_rate"].isel(time=0)
    wkt = mch_frame["crs"].attrs["crs_wkt"]
    native = raster.native_crs(da, wkt)
    bounds = raster.lonlat_bounds(da, wkt)
    view = raster.view_crs(projection, centre=(7.5, 46.5), native=native)
    box = (6.0, 10.0, 45.5, 47.8)  # Switzerland: well inside the composite
    img = raster.rasterize(da, native=native, view=view, extent=raster.view_extent(view, box), width=400)
    assert bounds[0] < 3.5 and bounds[1] > 12 and img.covered.mean() > 0.99
    # Check the 30 wettest pixels against the grid cell at the same longitude/latitude.
    order = np.argsort(np.nan_to_num(img.values, nan=-1).ravel())[::-1][:30]
    rows, cols = np.unravel_index(order, img.values.shape)
    import cartopy.crs as ccrs

    ll = ccrs.PlateCarree().transform_points(view, img.x[cols], img.y[rows])
    lat2d, lon2d = da["lat"].values, da["lon"].values
    for (plon, plat), r, c in zip(ll[:, :2], rows, cols, strict=True):
        dist = (lat2d - plat) ** 2 + ((lon2d - plon) * np.cos(np.deg2rad(plat))) ** 2
        j, i = np.unravel_index(np.argmin(dist), dist.shape)
        # Nearest-neighbour lookup on a 1 km grid: the value comes from this cell or a neighbour.
        neighbourhood = da.values[max(j - 1, 0) : j + 2, max(i - 1, 0) : i + 2]
        assert np.any(np.isclose(neighbourhood, img.values[r, c], rtol=1e-5)), (plon, plat)


def test_global_field_in_orthographic_keeps_its_extremes():
    """A warm spot at 10E 50N on a 3-degree global grid appears at 10E 50N on the globe."""
    lat = np.arange(90, -91, -3.0)
    lon = np.arange(0, 360, 3.0)
    values = np.zeros((lat.size, lon.size), "float32")
    values[np.argmin(np.abs(lat - 51)), np.argmin(np.abs(lon - 9))] = 10.0
    da = xr.DataArray(values, coords={"lat": lat, "lon": lon}, dims=("lat", "lon"), name="t2m")
    native = raster.native_crs(da)
    view = raster.view_crs("Orthographic", centre=(0.0, 40.0), native=native)
    img = raster.rasterize(
        da, native=native, view=view, extent=raster.view_extent(view, (-180, 180, -90, 90)), width=300, smooth=False
    )
    r, c = np.unravel_index(np.nanargmax(img.values), img.values.shape)
    import cartopy.crs as ccrs

    lon_hit, lat_hit = ccrs.PlateCarree().transform_point(img.x[c], img.y[r], view)
    assert abs(lon_hit - 9) <= 1.6 and abs(lat_hit - 51) <= 1.6
    # The far side of the globe is not covered (no data there, not "no rain").
    assert 0.6 < img.covered.mean() < 0.85


def test_datashader_aggregation_averages_when_the_grid_is_finer_than_the_screen(mch_frame):
    da = mch_frame["precip_rate"].isel(time=0)
    native = raster.native_crs(da, mch_frame["crs"].attrs["crs_wkt"])
    extent = (float(da.x.min()), float(da.x.max()), float(da.y.min()), float(da.y.max()))
    img = raster.rasterize(da, native=native, view=native, extent=extent, width=142)  # 5 km pixels
    assert img.values.shape[1] == 142
    full = np.nanmean(da.values)
    assert np.nanmean(img.values) == pytest.approx(full, rel=0.05)


def test_precipitation_classes_follow_the_forecaster_scale():
    v = np.array([0.05, 0.1, 0.49, 0.5, 1.0, 4.9, 20.0, 99.0, 100.0, 250.0, np.nan])
    got = precip_classes(v)
    assert np.isnan(got[0]) and np.isnan(got[-1])  # dry and no data are not a colour class
    assert got[1:-1].tolist() == [1, 1, 2, 3, 4, 7, 8, 9, 9]
    assert PRECIP_LEVELS == (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def test_display_units():
    z = scale_for("z500", "m2 s-2")
    assert z.kind == "contour" and z.units == "dam" and z.contour_step == 6
    assert z.convert(np.array([5500 * G0]))[0] == pytest.approx(550.0)
    t = scale_for("t850", "K")
    assert t.units == "°C" and t.zmid == 0 and t.convert(np.array([273.15]))[0] == pytest.approx(0.0)
    assert scale_for("msl", "Pa").convert(np.array([101325.0]))[0] == pytest.approx(1013.25)
    assert scale_for("precip_rate", "mm h-1").kind == "discrete"
    diff = scale_for("t2m", "K", difference=True)
    assert diff.units == "K" and diff.zmid == 0 and diff.offset == 0


def test_wind_rose_sectors_are_centred_on_north():
    wind = pd.DataFrame({"wind_dir": [355.0, 5.0, 90.0, 180.0], "wind_speed": [1.0, 1.0, 3.0, 13.0]})
    fig = charts.wind_rose(wind, "test")
    calm = fig.data[0]  # 0-2 m/s
    assert calm.r[0] == pytest.approx(50.0)  # both northerly observations in the N sector
    assert sum(sum(t.r) for t in fig.data) == pytest.approx(100.0)
    assert fig.data[-1].r[8] == pytest.approx(25.0)  # 13 m/s from the south: strongest class, S sector


def test_scorecard_skill_signs():
    from app.services.verification import scorecard

    df = pd.DataFrame(
        {
            "model": ["a", "base", "a", "base"],
            "variable": "t2m",
            "lead_hours": [6, 6, 12, 12],
            "metric": "rmse",
            "value": [1.0, 2.0, 3.0, 2.0],
        }
    )
    card = scorecard(df, "base").set_index(["model", "lead_hours"])
    assert card.loc[("a", 6), "skill"] == pytest.approx(0.5)
    assert card.loc[("a", 12), "skill"] == pytest.approx(-0.5)
    assert charts.scorecard(card.reset_index(), "rmse", "base", True).data[0].z.shape == (2, 2)


def test_box_parsing():
    from app.state import format_box, parse_box

    assert parse_box("5.5,11,45.5,48") == (5.5, 11.0, 45.5, 48.0)
    assert parse_box("") is None
    assert format_box((5.5, 11, 45.5, 48)) == "5.50,11.00,45.50,48.00"
    for bad in ("1,2,3", "10,5,40,50", "0,10,50,95"):
        with pytest.raises(ValueError):
            parse_box(bad)
