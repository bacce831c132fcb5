"""Bad inputs to the downscaler: DEM coverage and implausible units, each a clear one-line error."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from engine.errors import CoordError, WxError
from engine.models.regional.downscale import DownscaleError, downscale_dataset

DOMAIN = (46.0, 47.0, 10.0, 11.0)


def _mountain(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Terrain height (m): a 1500 m Gaussian mountain at 46.5 N 10.5 E on a 500 m plateau."""
    y, x = np.meshgrid(lat, lon, indexing="ij")
    return 500.0 + 1500.0 * np.exp(-((x - 10.5) ** 2 + (y - 46.5) ** 2) / 0.3)


def _coarse(variable: str = "t2m", base: float = 275.0) -> xr.Dataset:
    """A 0.5 deg field over 45-48.5 N, 9-13 E (two time steps), cooling 6.5 K/km over the mountain."""
    lat, lon = np.arange(48.5, 44.9, -0.5), np.arange(9.0, 13.01, 0.5)
    values = base - 0.0065 * (_mountain(lat, lon) - 500.0) + np.array([0.0, 1.0])[:, None, None]
    times = np.array(["2020-01-01T00", "2020-01-01T01"], dtype="datetime64[ns]")
    coords = {"time": times, "lat": ("lat", lat, {"units": "degrees_north"}),
              "lon": ("lon", lon, {"units": "degrees_east"})}
    return xr.Dataset({variable: (("time", "lat", "lon"), values.astype("float32"), {"units": "K"})}, coords=coords)


def _dem(lat0: float = 45.0, lat1: float = 48.0, lon0: float = 9.5, lon1: float = 12.5, step: float = 0.02,
         scale: float = 1.0, units: str | None = None) -> xr.Dataset:
    """A Gaussian mountain (500-2000 m) on a regular grid; ``scale`` fakes other units."""
    lat, lon = np.arange(lat0, lat1 + 1e-9, step), np.arange(lon0, lon1 + 1e-9, step)
    attrs = {"units": units} if units else {}
    coords = {"lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon, {"units": "degrees_east"})}
    return xr.Dataset({"orography": (("lat", "lon"), _mountain(lat, lon) * scale, attrs)}, coords=coords)


def test_dem_that_misses_the_domain_is_refused() -> None:
    with pytest.raises(CoordError, match=r"--dem does not cover the requested domain: DEM covers lat 45\.00\.\.48\.00, "
                                         r"lon 9\.50\.\.12\.50; domain lat 46\.00\.\.47\.00, lon 10\.00\.\.12\.80"):
        downscale_dataset(_coarse(), "t2m", resolution=0.05, dem=_dem(), domain=(46.0, 47.0, 10.0, 12.8))
    with pytest.raises(CoordError, match="does not cover"):
        downscale_dataset(_coarse("u10", 3.0).assign(v10=lambda d: d["u10"] * 0 + 2.0), "u10", resolution=0.05,
                          dem=_dem(), domain=(44.0, 47.0, 10.0, 11.0))


def test_dem_covering_just_the_domain_is_enough() -> None:
    # The lapse-rate regression looks at coarse cells around the domain; where the DEM stops it
    # uses the coarse cells the DEM covers instead of failing on the margin.
    tight = _dem(*DOMAIN)
    out = downscale_dataset(_coarse(), "t2m", resolution=0.05, dem=tight, domain=DOMAIN)
    assert out["t2m"].shape == (2, 20, 20)
    assert np.isfinite(out["t2m"].values).all()
    # The coarse field cools 6.5 K/km over the mountain; the fine field must follow the fine
    # terrain. Not exactly: the coarse field samples the mountain at cell centres while the
    # coarse orography is a cell mean (and only of the covered part at the DEM's edge), which
    # costs about a kelvin on average here.
    z = out["orography"].values
    t = out["t2m"].values[0]
    assert abs(float(np.mean(t - (275.0 - 0.0065 * (z - 500.0))))) < 1.0
    assert np.corrcoef(z.ravel(), t.ravel())[0, 1] < -0.9


def test_temperature_in_degc_is_refused() -> None:
    with pytest.raises(DownscaleError, match=r"t2m ranges .* which looks like degC; expected kelvin \(K\)"):
        downscale_dataset(_coarse(base=2.0), "t2m", resolution=0.05, dem=_dem(), domain=DOMAIN)


def test_wind_in_km_per_hour_is_refused() -> None:
    ds = _coarse("u10", 150.0).assign(v10=lambda d: d["u10"] * 0 + 20.0)
    with pytest.raises(DownscaleError, match=r"u10 ranges .* outside the plausible -120\.\.120 m s-1"):
        downscale_dataset(ds, "u10", resolution=0.05, dem=_dem(), domain=DOMAIN)


def test_dem_in_kilometres_or_feet() -> None:
    ds = _coarse()
    with pytest.raises(DownscaleError, match="looks like kilometres; the DEM must be in metres"):
        downscale_dataset(ds, "t2m", resolution=0.05, dem=_dem(scale=1e-3), domain=DOMAIN)
    with pytest.raises(DownscaleError, match="higher than any mountain on Earth"):
        downscale_dataset(ds, "t2m", resolution=0.05, dem=_dem(scale=3.28084 * 3), domain=DOMAIN)
    # A DEM that says it is in km is converted: same result as the one in metres.
    metres = downscale_dataset(ds, "t2m", resolution=0.05, dem=_dem(), domain=DOMAIN)
    km = downscale_dataset(ds, "t2m", resolution=0.05, dem=_dem(scale=1e-3, units="km"), domain=DOMAIN)
    np.testing.assert_allclose(km["t2m"].values, metres["t2m"].values, atol=1e-3)
    np.testing.assert_allclose(km["orography"].values, metres["orography"].values, rtol=1e-5)


def test_cli_reports_a_dem_that_misses_the_domain(tmp_path: Path) -> None:
    from app.cli import downscale as cli

    src, dem = tmp_path / "t2m.nc", tmp_path / "dem.nc"
    _coarse().to_netcdf(src)
    # Surface geopotential in the ERA5 layout, which the netCDF reader turns into orography (m).
    geo = _dem()
    xr.Dataset({"z": (("lat", "lon"), 9.80665 * geo["orography"].values, {"units": "m**2 s**-2"})},
               coords=geo.coords).to_netcdf(dem)
    parser = argparse.ArgumentParser(prog="meteolens")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["downscale", "--input", str(src), "--variable", "t2m", "--dem", str(dem),
                              "--resolution", "0.05", "--domain", "46", "47", "10", "12.8", "--device", "cpu",
                              "--store", str(tmp_path / "store"), "--json"])
    with pytest.raises(WxError, match="--dem does not cover the requested domain") as err:
        args.func(args)
    assert "\n" not in str(err.value)
