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


# --- Precipitation (orographic method) ------------------------------------------------------


def _rain(values: float | np.ndarray = 2.0, variable: str = "precip_rate", units: str = "mm h-1") -> xr.Dataset:
    """A 0.5 deg precipitation field over 45-48.5 N, 9-13 E, two times (``values`` broadcast)."""
    lat, lon = np.arange(48.5, 44.9, -0.5), np.arange(9.0, 13.01, 0.5)
    field = np.broadcast_to(np.asarray(values, dtype="float32"), (2, lat.size, lon.size)).copy()
    times = np.array(["2020-01-01T00", "2020-01-01T01"], dtype="datetime64[ns]")
    coords = {"time": times, "lat": ("lat", lat, {"units": "degrees_north"}),
              "lon": ("lon", lon, {"units": "degrees_east"})}
    return xr.Dataset({variable: (("time", "lat", "lon"), field, {"units": units})}, coords=coords)


WIND = {"steering_wind": (10.0, 0.0)}


def test_negative_precipitation_is_refused() -> None:
    values = np.full((8, 9), 2.0)
    values[3, 4] = -1.0
    with pytest.raises(DownscaleError, match=r"precip_rate has negative values \(down to -1 mm h-1\); precipitation "
                                             r"cannot be negative") as err:
        downscale_dataset(_rain(values), "precip_rate", resolution=0.05, dem=_dem(), domain=DOMAIN, options=WIND)
    assert "\n" not in str(err.value)
    # Packing noise of accumulations (a few micrometres below 0) is taken as 0.
    values[3, 4] = -1e-5
    out = downscale_dataset(_rain(values), "precip_rate", resolution=0.05, dem=_dem(), domain=DOMAIN, options=WIND)
    assert float(out["precip_rate"].min()) >= 0


@pytest.mark.parametrize(("scale", "what"), [(1e-3, "m h-1"), (1 / 3600.0, "kg m-2 s-1")])
def test_precipitation_in_metres_or_kg_per_second_is_refused(scale: float, what: str) -> None:
    # Heavy rain of 20 mm/h given in m h-1 (0.02) or kg m-2 s-1 (0.0056).
    values = np.full((8, 9), 20.0 * scale)
    with pytest.raises(DownscaleError, match=r"peaks at .* below any measurable precipitation \(0\.1 mm h-1\): this "
                                             r"looks like m h-1 \(multiply by 1000\) or kg m-2 s-1 \(multiply by 3600\)"):
        downscale_dataset(_rain(values), "precip_rate", resolution=0.05, dem=_dem(), domain=DOMAIN, options=WIND)
    with pytest.raises(DownscaleError, match=r"tp peaks at .* this looks like m \(multiply by 1000\); expected mm"):
        downscale_dataset(_rain(values, "tp", "mm"), "tp", resolution=0.05, dem=_dem(), domain=DOMAIN, options=WIND)
    # A dry field (all 0) is fine: it stays dry.
    dry = downscale_dataset(_rain(0.0), "precip_rate", resolution=0.05, dem=_dem(), domain=DOMAIN, options=WIND)
    assert float(np.abs(dry["precip_rate"]).max()) == 0.0


def test_precipitation_beyond_any_radar_rate_is_refused() -> None:
    with pytest.raises(DownscaleError, match=r"outside the plausible 0\.\.1000 mm h-1; expected mm h-1"):
        downscale_dataset(_rain(3600.0), "precip_rate", resolution=0.05, dem=_dem(), domain=DOMAIN, options=WIND)


@pytest.mark.parametrize(("wind", "message"), [
    ((5.0, float("nan")), r"--steering-wind 5 nan: expected two finite numbers U V \(m s-1\)"),
    ((5.0,), r"--steering-wind \(5\.0,\): expected two numbers U V"),
    ("west", r"--steering-wind 'west': expected two numbers U V"),
    ((300.0, 0.0), r"--steering-wind 300 0: 300 m s-1 is no low-level flow"),
])
def test_steering_wind_must_be_two_finite_numbers(wind: object, message: str) -> None:
    with pytest.raises(DownscaleError, match=message):
        downscale_dataset(_rain(), "precip_rate", resolution=0.05, dem=_dem(), domain=DOMAIN,
                          options={"steering_wind": wind})


def test_orographic_dem_that_misses_the_domain_is_refused() -> None:
    with pytest.raises(CoordError, match=r"--dem does not cover the requested domain: DEM covers lat 45\.00\.\.48\.00"):
        downscale_dataset(_rain(), "precip_rate", resolution=0.05, dem=_dem(), domain=(46.0, 47.0, 10.0, 12.8),
                          options=WIND)
    with pytest.raises(DownscaleError, match="needs a DEM"):
        downscale_dataset(_rain(), "precip_rate", resolution=0.05, domain=DOMAIN, options=WIND)


def _main_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    from app.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("meteolens: error: ") and "\n" not in err
    return err


def test_cli_precipitation_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Accumulated precipitation (tp, mm) in netCDF files, which the netCDF reader opens.
    dem = tmp_path / "dem.nc"
    geo = _dem()
    xr.Dataset({"z": (("lat", "lon"), 9.80665 * geo["orography"].values, {"units": "m**2 s**-2"})},
               coords=geo.coords).to_netcdf(dem)
    values = np.full((8, 9), 2.0)
    values[0, 0] = -3.0
    negative, metres, good, one = (tmp_path / f"{n}.nc" for n in ("negative", "metres", "good", "one"))
    _rain(values, "tp", "mm").to_netcdf(negative)
    _rain(0.002, "tp", "mm").to_netcdf(metres)  # metres of rain in a file that says mm
    _rain(2.0, "tp", "mm").to_netcdf(good)
    _rain(2.0, "tp", "mm").isel(time=[0]).to_netcdf(one)
    base = ["downscale", "--variable", "tp", "--dem", str(dem), "--resolution", "0.05", "--domain", "46",
            "47", "10", "11", "--device", "cpu", "--store", str(tmp_path / "store"), "--json"]
    wind = ["--steering-wind", "10", "0"]
    assert "tp has negative values" in _main_error(capsys, [*base, "--input", str(negative), *wind])
    assert "this looks like m (multiply by 1000)" in _main_error(capsys, [*base, "--input", str(metres), *wind])
    assert "expected two finite numbers" in _main_error(capsys, [*base, "--input", str(good),
                                                                 "--steering-wind", "10", "inf"])
    assert "only the orographic method" in _main_error(capsys, [*base, "--input", str(good), "--method", "bilinear",
                                                                *wind])
    # No wind in the file and a single time: nothing to steer the model with.
    assert "give --steering-wind U V" in _main_error(capsys, [*base, "--input", str(one)])
    outside = [*base[:8], "46", "47", "10", "12.8", *base[12:]]
    assert "--dem does not cover the requested domain" in _main_error(capsys, [*outside, "--input", str(good), *wind])
    # The good file works, and nothing of the failed runs was left in the store.
    from app.cli import main

    assert main([*base, "--input", str(good), *wind]) == 0
    assert len(list((tmp_path / "store" / "runs").glob("*.zarr"))) == 1
