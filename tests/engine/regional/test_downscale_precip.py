"""Orographic precipitation downscaling of datasets: projected radar inputs, steering winds, NaN.

Real data: MeteoSwiss radar (``mch-2015-05-15``) block-averaged 24 x 24 to about 24 km and kept
on its projected Swiss grid (``x``/``y``, 2-D ``lat``/``lon``, CF ``crs`` as the reader gives),
downscaled over EURO-CORDEX HSURF terrain; idealised ridges for the windward/lee physics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from pyproj import Transformer
from regional_helpers import aggregate

from engine.coords import crs_of
from engine.errors import CoordError
from engine.models.regional.downscale import DownscaleError, downscale_dataset
from engine.models.regional.grid import LatLonGrid, ProjectedGrid, containing_cell

#: Inside the radar coverage (the Swiss Plateau and the Alps).
ALPS = (45.8, 47.6, 6.0, 10.2)
#: Straddles the edge of the coverage in the north-west (France): part no-data.
EDGE = (47.6, 49.0, 3.5, 6.5)
#: Straddles the southern edge (Liguria, the Po valley), with rain in the last frames.
SOUTH = (44.0, 45.5, 9.0, 12.0)


def test_radar_24km_to_001deg_conserves_the_coarse_cells(coarse_radar: xr.Dataset, hsurf: xr.Dataset) -> None:
    out = downscale_dataset(coarse_radar, "precip_rate", resolution=0.01, dem=hsurf, domain=ALPS, method="orographic")
    rain = out["precip_rate"]
    assert rain.dims == ("time", "lat", "lon") and rain.shape == (12, 180, 420)
    assert np.isfinite(rain.values).all() and float(rain.min()) >= 0
    # Aggregated back onto the 24 km projected cells the fine field gives the coarse means.
    src = ProjectedGrid.of(coarse_radar)
    means, counts = aggregate(rain.values, src, LatLonGrid.of(out))
    ref = coarse_radar["precip_rate"].values.reshape(12, -1)
    used = counts > 0
    assert used.sum() > 12 * 100
    rel = np.abs(means[used] - ref[used]) / np.maximum(ref[used], 0.1)
    assert rel.max() < 1e-4
    total = np.nansum(means[used] * counts[used]) / np.nansum(ref[used] * counts[used])
    assert abs(total - 1.0) < 1e-5
    # The terrain shapes the sub-grid field: it is not the bilinear interpolation.
    bil = downscale_dataset(coarse_radar, "precip_rate", resolution=0.01, dem=hsurf, domain=ALPS, method="bilinear")
    assert float(np.abs(rain - bil["precip_rate"]).mean()) > 0.05 * float(rain.mean())
    # Steering wind: the mean echo motion of the 12 coarse frames, from the WSW-moving cells of
    # that afternoon (the 1 km radar gives about -9..-12 m/s eastward over the event).
    u, v = out.attrs["steering_wind"]
    assert out.attrs["steering_wind_source"].startswith("echo motion")
    assert -20.0 < u < -3.0 and abs(v) < 6.0
    assert out.attrs["source_projection"] == crs_of(coarse_radar).name  # type: ignore[union-attr]
    assert "orography" in out and out["orography"].dims == ("lat", "lon")


def test_no_data_outside_the_radar_stays_no_data(coarse_radar: xr.Dataset, hsurf: xr.Dataset) -> None:
    out = downscale_dataset(coarse_radar, "precip_rate", resolution=0.01, dem=hsurf, domain=EDGE, method="orographic",
                            options={"steering_wind": (-10.0, 0.0)})
    rain = out["precip_rate"].values
    src = ProjectedGrid.of(coarse_radar)
    cell = containing_cell(*src.positions(LatLonGrid.of(out)), src.shape).ravel()
    own = coarse_radar["precip_rate"].values.reshape(12, -1)[:, np.where(cell < 0, 0, cell)]
    missing = np.isnan(own) | (cell < 0)
    assert 0.05 < missing.mean() < 0.95  # the box really straddles the coverage edge
    np.testing.assert_array_equal(np.isnan(rain.reshape(12, -1)), missing)
    means, counts = aggregate(rain, src, LatLonGrid.of(out))
    ref = coarse_radar["precip_rate"].values.reshape(12, -1)
    used = counts > 0
    np.testing.assert_allclose(means[used], ref[used], rtol=1e-4, atol=1e-5)


def test_other_methods_resample_projected_input_keeping_no_data(radar: xr.Dataset) -> None:
    # Bilinear on the 1 km radar itself: resampled in the Swiss projection onto a lat/lon grid,
    # no-data NaN wherever a source corner is missing, never 0.
    out = downscale_dataset(radar.isel(time=slice(-2, None)), "precip_rate", resolution=0.01, domain=SOUTH,
                            method="bilinear")
    rain = out["precip_rate"].values
    lon2, lat2 = np.meshgrid(out["lon"].values, out["lat"].values)
    x, y = Transformer.from_crs("EPSG:4326", crs_of(radar), always_xy=True).transform(lon2, lat2)
    ix = np.rint((x - radar["x"].values[0]) / (radar["x"].values[1] - radar["x"].values[0])).astype(int)
    iy = np.rint((y - radar["y"].values[0]) / (radar["y"].values[1] - radar["y"].values[0])).astype(int)
    ny, nx = radar.sizes["y"], radar.sizes["x"]
    inside = (iy >= 0) & (iy < ny) & (ix >= 0) & (ix < nx)
    nearest = np.where(inside, radar["precip_rate"].values[-2:, iy.clip(0, ny - 1), ix.clip(0, nx - 1)], np.nan)
    assert np.isnan(nearest).mean() > 0.05
    assert np.isnan(rain[np.isnan(nearest)]).all()
    ok = np.isfinite(rain) & np.isfinite(nearest)
    assert np.corrcoef(rain[ok], nearest[ok])[0, 1] > 0.95
    assert out.attrs["source_grid_deg"] == pytest.approx(1.0 / 111.2, rel=0.02)


def _ridge_dem(crest_lon: float = 10.5, width: float = 0.4) -> xr.Dataset:
    """A north-south ridge 1500 m above a 200 m plain (Gaussian, e-folding ``width`` deg, about 30 km)."""
    lat, lon = np.arange(45.0, 48.01, 0.01), np.arange(8.0, 13.01, 0.01)
    z = 200.0 + 1500.0 * np.exp(-(((lon - crest_lon) / width) ** 2))[None, :] * np.ones((lat.size, 1))
    coords = {"lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon, {"units": "degrees_east"})}
    return xr.Dataset({"orography": (("lat", "lon"), z, {"units": "m"})}, coords=coords)


def _uniform_rain(rate: float = 2.0, **winds: float) -> xr.Dataset:
    """Uniform rain on a 0.25 deg grid over 45-48 N, 8.5-12.5 E, two times; optional uniform winds."""
    lat, lon = np.arange(48.0, 44.99, -0.25), np.arange(8.5, 12.51, 0.25)
    times = np.array(["2020-01-01T00", "2020-01-01T01"], dtype="datetime64[ns]")
    shape = (2, lat.size, lon.size)
    data = {"precip_rate": (("time", "lat", "lon"), np.full(shape, rate, "float32"), {"units": "mm h-1"})}
    for name, value in winds.items():
        ramp = np.array([value, value + 2.0])[:, None, None] * np.ones(shape)
        data[name] = (("time", "lat", "lon"), ramp.astype("float32"), {"units": "m s-1"})
    coords = {"time": times, "lat": ("lat", lat, {"units": "degrees_north"}),
              "lon": ("lon", lon, {"units": "degrees_east"})}
    return xr.Dataset(data, coords=coords)


@pytest.mark.parametrize("u", [10.0, -10.0])
@pytest.mark.parametrize("width", [0.4, 0.12, 0.06])  # about 30, 9 and 5 km: wider and narrower than a coarse cell
def test_more_rain_upwind_of_the_crest_than_downwind(u: float, width: float) -> None:
    # Uniform coarse rain holds no orographic signal: all of it comes from the sub-grid pattern.
    out = downscale_dataset(_uniform_rain(), "precip_rate", resolution=0.01, dem=_ridge_dem(width=width),
                            domain=(46.0, 47.0, 9.0, 12.0), options={"steering_wind": (u, 0.0)})
    assert out.attrs["downscaling_method"] == "orographic"  # the default for precip_rate with a DEM
    assert out.attrs["steering_wind"] == [u, 0.0] and out.attrs["steering_wind_source"] == "--steering-wind"
    rain = out["precip_rate"].isel(time=0)
    west = float(rain.sel(lon=slice(10.5 - 3 * width, 10.5)).mean())
    east = float(rain.sel(lon=slice(10.5, 10.5 + 3 * width)).mean())
    upwind, lee = (west, east) if u > 0 else (east, west)
    # Measured (westerly): 2.10 / 1.90, 2.19 / 1.81 and 2.14 / 1.68 mm/h. Narrow ridges once had
    # a wetter lee, when the cell-mean correction was smoothed after imposing the pattern.
    assert upwind > 1.05 * lee
    # Every 0.25 deg cell keeps its 2 mm/h on average.
    means, counts = aggregate(out["precip_rate"].values, LatLonGrid.of(_uniform_rain()), LatLonGrid.of(out))
    np.testing.assert_allclose(means[counts > 0], 2.0, rtol=1e-5)


def test_steering_wind_from_the_inputs_own_wind_prefers_700_hpa() -> None:
    ds = _uniform_rain(u700=8.0, v700=-3.0, u10=1.0, v10=1.0)
    out = downscale_dataset(ds, "precip_rate", resolution=0.02, dem=_ridge_dem(), domain=(46.0, 47.0, 9.0, 12.0))
    assert out.attrs["steering_wind_source"] == "u700/v700 domain mean"
    # Domain mean per field: the wind of the second time is 2 m/s stronger in each component.
    np.testing.assert_allclose(out.attrs["steering_wind_by_field"], [[8.0, -3.0], [10.0, -1.0]], atol=1e-4)
    np.testing.assert_allclose(out.attrs["steering_wind"], [9.0, -2.0], atol=1e-3)
    ten = downscale_dataset(_uniform_rain(u10=-6.0, v10=1.0), "precip_rate", resolution=0.02, dem=_ridge_dem(),
                            domain=(46.0, 47.0, 9.0, 12.0))
    assert ten.attrs["steering_wind_source"] == "u10/v10 domain mean"
    # Winds are inputs of the method, not outputs.
    assert set(ten.data_vars) == {"precip_rate", "orography"}


def test_accumulated_precipitation_takes_the_same_pattern() -> None:
    # tp (mm) is scaled rain: the orographic pattern is the same, the amounts scale with the input.
    dem, dom = _ridge_dem(), (46.0, 47.0, 9.0, 12.0)
    rate = downscale_dataset(_uniform_rain(2.0), "precip_rate", resolution=0.02, dem=dem, domain=dom,
                             options={"steering_wind": (10.0, 0.0)})
    tp = _uniform_rain(12.0).rename(precip_rate="tp")
    tp["tp"].attrs["units"] = "mm"
    acc = downscale_dataset(tp, "tp", resolution=0.02, dem=dem, domain=dom, options={"steering_wind": (10.0, 0.0)})
    np.testing.assert_allclose(acc["tp"].values, 6.0 * rate["precip_rate"].values, rtol=1e-5)
    assert acc["tp"].attrs["units"] == "mm"


def test_projected_input_without_a_crs_is_refused(coarse_radar: xr.Dataset, hsurf: xr.Dataset) -> None:
    bare = coarse_radar.drop_vars("crs")
    bare["precip_rate"].attrs.pop("grid_mapping")
    with pytest.raises(CoordError, match=r"projected \(y, x\) grid without a CRS"):
        downscale_dataset(bare, "precip_rate", resolution=0.01, dem=hsurf, domain=ALPS)


def test_a_single_frame_without_wind_needs_steering_wind(coarse_radar: xr.Dataset, hsurf: xr.Dataset) -> None:
    with pytest.raises(DownscaleError, match="needs a steering wind: give --steering-wind U V") as err:
        downscale_dataset(coarse_radar.isel(time=[0]), "precip_rate", resolution=0.01, dem=hsurf, domain=ALPS)
    assert "\n" not in str(err.value)


def test_nowcast_run_store_with_lead_time_and_members(coarse_radar: xr.Dataset, hsurf: xr.Dataset,
                                                      tmp_path: Path) -> None:
    # A nowcast-shaped store (lead_time, member, y, x), as the nowcast job writes it.
    from engine.storage.zarr_store import open_run_store, write_run_store

    frames = coarse_radar["precip_rate"].values[-4:]
    members = np.stack([frames, frames * 1.1, frames * 0.9], axis=1)  # (lead, member, y, x)
    lead = (np.arange(1, 5) * np.timedelta64(5, "m")).astype("timedelta64[ns]")
    init = coarse_radar["time"].values[-5]
    ds = xr.Dataset(
        {"precip_rate": (("lead_time", "member", "y", "x"), members, dict(coarse_radar["precip_rate"].attrs)),
         "crs": coarse_radar["crs"]},
        coords={"lead_time": lead, "member": np.arange(3, dtype="int32"), "init_time": init,
                "valid_time": ("lead_time", init + lead),
                **{c: coarse_radar.coords[c] for c in ("y", "x", "lat", "lon")}},
    )
    store = open_run_store(write_run_store(ds, tmp_path / "nowcast.zarr", provenance={"model": "nowcast/test"}))
    out = downscale_dataset(store, "precip_rate", resolution=0.02, dem=hsurf, domain=ALPS)
    assert out["precip_rate"].dims == ("lead_time", "member", "lat", "lon")
    assert out["precip_rate"].shape == (4, 3, 90, 210)
    assert "valid_time" in out.coords and "init_time" in out.coords
    assert out.attrs["steering_wind_source"] == "echo motion (optical flow over 4 lead_time steps)"
    # Members keep their ratio: the downscaling is linear in the coarse field for one wind.
    np.testing.assert_allclose(out["precip_rate"].isel(member=1), 1.1 * out["precip_rate"].isel(member=0),
                               rtol=1e-4, atol=1e-5)
