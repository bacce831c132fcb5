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


# --- Precipitation: the orographic method on radar inputs ---------------------------------


def test_spec_steering_wind() -> None:
    spec = DownscaleSpec(input="r.zarr", variable="precip_rate", resolution=0.02, dem="d.nc", steering_wind=(-8, 2))
    assert spec.model_name() == "regional/orographic"
    assert spec.to_params()["steering_wind"] == [-8, 2]
    with pytest.raises(JobError, match="expected two finite numbers U V"):
        DownscaleSpec(input="r.zarr", variable="precip_rate", resolution=0.02, dem="d.nc",
                      steering_wind=(float("nan"), 2.0))
    with pytest.raises(JobError, match="expected two numbers U V"):
        DownscaleSpec(input="r.zarr", variable="precip_rate", resolution=0.02, dem="d.nc", steering_wind=(1.0,))
    with pytest.raises(JobError, match="only the orographic method"):
        DownscaleSpec(input="r.zarr", variable="precip_rate", resolution=0.02, dem="d.nc", method="bilinear",
                      steering_wind=(1.0, 2.0))
    with pytest.raises(JobError, match="or use method bilinear"):
        DownscaleSpec(input="r.zarr", variable="precip_rate", resolution=0.02)


def _store(ds: xr.Dataset, path: Path) -> Path:
    from engine.storage.zarr_store import write_run_store

    return write_run_store(ds, path, provenance={"model": "test/coarse-radar"})


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    from app.cli import main

    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_downscales_24km_radar_onto_terrain(coarse_radar: xr.Dataset, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from regional_helpers import aggregate

    from engine.models.regional.grid import LatLonGrid, ProjectedGrid

    src = _store(coarse_radar, tmp_path / "coarse-radar.zarr")
    result = _cli(["downscale", "--input", str(src), "--variable", "precip_rate", "--dem", "hsurf-euro-cordex",
                   "--resolution", "0.02", "--domain", "45.8", "47.6", "6", "10.2", "--method", "orographic",
                   "--device", "cpu", "--store", str(tmp_path / "store"), "--json"], capsys)
    out = open_run_store(result["path"])
    assert out["precip_rate"].dims == ("time", "lat", "lon") and out["precip_rate"].shape == (12, 90, 210)
    assert out.attrs["downscaling_method"] == "orographic"
    assert out.attrs["steering_wind_source"].startswith("echo motion")
    means, counts = aggregate(out["precip_rate"].values, ProjectedGrid.of(coarse_radar), LatLonGrid.of(out))
    ref = coarse_radar["precip_rate"].values.reshape(12, -1)
    np.testing.assert_allclose(means[counts > 0], ref[counts > 0], rtol=1e-4, atol=1e-5)


def test_cli_on_the_radar_dataset_itself(radar: xr.Dataset, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    # 1 km radar onto 0.01 deg: a resampling with orographic modulation, steered as told.
    result = _cli(["downscale", "--input", "mch-2015-05-15", "--variable", "precip_rate", "--dem",
                   "hsurf-euro-cordex", "--resolution", "0.01", "--domain", "46.4", "46.8", "7.6", "8.4",
                   "--steering-wind", "-10", "2", "--device", "cpu", "--store", str(tmp_path / "store"), "--json"],
                  capsys)
    out = open_run_store(result["path"])
    assert out["precip_rate"].shape == (40, 40, 80)
    assert out.attrs["steering_wind"] == [-10.0, 2.0] and out.attrs["steering_wind_source"] == "--steering-wind"
    assert out.attrs["option_steering_wind"] == [-10.0, 2.0]
    assert np.isfinite(out["precip_rate"].values).all() and float(out["precip_rate"].min()) >= 0


def test_failed_orographic_run_leaves_no_store(coarse_radar: xr.Dataset, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main
    from engine.storage.catalog import Catalog

    src = _store(coarse_radar.isel(time=[0]), tmp_path / "one-frame.zarr")
    store = tmp_path / "store"
    argv = ["downscale", "--input", str(src), "--variable", "precip_rate", "--dem", "hsurf-euro-cordex",
            "--resolution", "0.02", "--domain", "45.8", "47.6", "6", "10.2", "--device", "cpu", "--store", str(store),
            "--json"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "needs a steering wind: give --steering-wind U V" in err and "\n" not in err
    leftovers = list((store / "runs").glob("*")) if (store / "runs").exists() else []
    assert leftovers == []
    runs = Catalog(store / "catalog.duckdb", create=False).list_runs()
    assert runs["status"].tolist() == ["failed"] and runs["path"].isna().all()


def test_cli_downscales_a_projected_netcdf_file(coarse_radar: xr.Dataset, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # A user's own projected field as CF netCDF (here the 24 km radar): read back with its
    # grid mapping, downscaled like the run store.
    src = tmp_path / "coarse-radar.nc"
    coarse_radar.isel(time=slice(0, 3)).to_netcdf(src)
    result = _cli(["downscale", "--input", str(src), "--variable", "precip_rate", "--dem", "hsurf-euro-cordex",
                   "--resolution", "0.05", "--domain", "45.8", "47.6", "6", "10.2", "--steering-wind", "10", "0",
                   "--device", "cpu", "--store", str(tmp_path / "store"), "--json"], capsys)
    out = open_run_store(result["path"])
    assert out["precip_rate"].dims == ("time", "lat", "lon") and out["precip_rate"].shape == (3, 36, 84)
    assert out.attrs["downscaling_method"] == "orographic"
