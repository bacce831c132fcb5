"""The rasteriser's handling of grid axis order: descending axes are reversed without a copy."""

from __future__ import annotations

import cartopy.crs as ccrs
import numpy as np
import pytest
import xarray as xr

from app.components import raster


def _field(lat_descending: bool, lon_shuffled: bool = False) -> xr.DataArray:
    """A 60 x 80 lat-lon field whose value encodes its position (so a misplaced pixel shows)."""
    lat = np.linspace(40.0, 49.75, 60)
    lon = np.linspace(0.0, 19.75, 80)
    values = (100.0 * lat[:, None] + lon[None, :]).astype("float32")
    da = xr.DataArray(values, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name="t2m")
    if lat_descending:
        da = da.isel(lat=slice(None, None, -1))
    if lon_shuffled:
        da = da.isel(lon=np.random.default_rng(1).permutation(lon.size))
    return da


def test_descending_axis_is_reversed_as_a_view():
    da = _field(lat_descending=True)
    out = raster._normalised(da)
    assert np.all(np.diff(out["lat"].values) > 0)
    # No copy of the grid: the reversed field shares the original's memory.
    assert np.shares_memory(out.values, da.values)
    np.testing.assert_array_equal(out.values, da.sortby("lat").values)


@pytest.mark.parametrize("projection", ["PlateCarree", "LambertConformal"])
@pytest.mark.parametrize("smooth", [False, True])
def test_axis_order_does_not_change_the_image(projection, smooth):
    """Ascending, descending and unordered (sorted by ``sortby``) grids give the same pixels."""
    view = raster.view_crs(projection, centre=(10.0, 45.0), native=ccrs.PlateCarree())
    extent = raster.view_extent(view, (2.0, 18.0, 41.0, 49.0))
    images = [
        raster.rasterize(
            _field(descending, shuffled), native=ccrs.PlateCarree(), view=view, extent=extent, width=120, smooth=smooth
        )
        for descending, shuffled in ((False, False), (True, False), (True, True))
    ]
    reference = images[0]
    assert np.isfinite(reference.values).mean() > 0.9
    for img in images[1:]:
        np.testing.assert_array_equal(img.values, reference.values)
        np.testing.assert_array_equal(img.covered, reference.covered)
