"""The ``downscale`` job kind and the ``meteolens downscale`` CLI, end to end on tiny files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from engine.errors import JobError, WxError
from engine.jobs.downscale_job import DownscaleSpec
from engine.storage.zarr_store import open_run_store


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    lat = np.array([46.75, 46.25, 45.75])
    lon = np.array([10.25, 10.75, 11.25, 11.75])
    t = 280.0 + np.arange(2)[:, None, None] + np.zeros((2, 3, 4))
    ds = xr.Dataset(
        {"t2m": (("time", "lat", "lon"), t.astype("float32"), {"units": "K"})},
        coords={"time": np.array(["2020-01-01T00", "2020-01-01T01"], dtype="datetime64[ns]"),
                "lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon, {"units": "degrees_east"})},
    )
    flat = np.linspace(45.0, 48.0, 61), np.linspace(9.5, 12.5, 61)
    y, x = np.meshgrid(*flat, indexing="ij")
    height = 500 + 800 * np.exp(-((x - 11) ** 2 + (y - 46.3) ** 2) / 0.1)
    # Surface geopotential in the ERA5 layout: the netCDF reader turns it into orography (m).
    dem = xr.Dataset(
        {"z": (("lat", "lon"), (9.80665 * height).astype("float32"), {"units": "m**2 s**-2"})},
        coords={"lat": ("lat", flat[0], {"units": "degrees_north"}), "lon": ("lon", flat[1], {"units": "degrees_east"})},
    )
    src, dem_path = tmp_path / "t2m.nc", tmp_path / "dem.nc"
    ds.to_netcdf(src)
    dem.to_netcdf(dem_path)
    return src, dem_path


def test_spec_validation_names_the_field() -> None:
    with pytest.raises(JobError, match="resolution"):
        DownscaleSpec(input="x.nc", variable="t2m", resolution=-1, dem="d.nc")
    with pytest.raises(JobError, match="domain"):
        DownscaleSpec(input="x.nc", variable="t2m", resolution=0.05, dem="d.nc", domain=(47, 46, 10, 11))
    with pytest.raises(JobError, match="dem"):
        DownscaleSpec(input="x.nc", variable="t2m", resolution=0.05)
    with pytest.raises(JobError, match="method"):
        DownscaleSpec(input="x.nc", variable="t2m", resolution=0.05, dem="d.nc", method="magic")
    with pytest.raises(JobError, match="device"):
        DownscaleSpec(input="x.nc", variable="t2m", resolution=0.05, dem="d.nc", device="tpu")
    spec = DownscaleSpec(input="x.nc", variable="t2m", resolution=0.05, dem="d.nc", domain=(46, 47, 10, 11))
    assert spec.to_params()["domain"] == [46, 47, 10, 11]
    assert spec.model_name() == "regional/lapse_rate"


def test_cli_writes_a_run_store(files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import downscale as cli

    src, dem = files
    parser = argparse.ArgumentParser(prog="meteolens")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["downscale", "--input", str(src), "--variable", "t2m", "--dem", str(dem),
                              "--resolution", "0.1", "--domain", "45.6", "46.8", "10.2", "11.8",
                              "--store", str(tmp_path / "store"), "--device", "cpu", "--json"])
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"run_id", "path", "compute_seconds"}
    out = open_run_store(result["path"])
    assert out["t2m"].dims == ("time", "lat", "lon")
    assert out["t2m"].shape == (2, 12, 16)
    # Constant coarse field over a hill: the downscaled field is colder on the hill.
    t0 = out["t2m"].isel(time=0)
    hill = t0.sel(lat=46.3, lon=11.0, method="nearest")
    plain = t0.sel(lat=45.7, lon=10.3, method="nearest")
    assert float(hill) < float(plain)
    bad = parser.parse_args(["downscale", "--input", str(tmp_path / "missing.nc"), "--variable", "t2m", "--dem",
                             str(dem), "--resolution", "0.1", "--store", str(tmp_path / "store"), "--json"])
    with pytest.raises(WxError, match="missing.nc"):
        bad.func(bad)
