"""The ``global`` job kind and ``meteolens forecast global``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from engine.errors import JobError, UnknownNameError
from engine.jobs.global_job import GlobalForecastSpec, forecast_global

ERA5 = Path("cfgrib/tests/sample-data/era5-levels-members.grib")


def _analysis() -> xr.Dataset:
    lat = np.linspace(90, -90, 37)
    lon = np.arange(72) * 5.0
    la, lo = np.meshgrid(np.radians(lat), np.radians(lon), indexing="ij")
    z = 5.5e4 - 4e3 * np.sin(la) ** 2 + 600 * np.cos(la) ** 6 * np.sin(la) ** 2 * np.cos(4 * lo)
    return xr.Dataset({"z500": (("time", "lat", "lon"), z[None].astype("float32"))},
                      coords={"time": [np.datetime64("2017-01-01T00", "ns")], "lat": lat, "lon": lon})


def test_spec_rejects_bad_lead_hours_and_unknown_model() -> None:
    with pytest.raises(JobError, match=r"lead_hours=10: must be a positive multiple of the model step \(6 h\)"):
        GlobalForecastSpec(init=("a.grib",), lead_hours=10)
    with pytest.raises(UnknownNameError, match="unknown global model 'fengwu'; available: .*persistence, swm"):
        GlobalForecastSpec(init=("a.grib",), model="fengwu", lead_hours=6)
    with pytest.raises(JobError, match="members='x'"):
        GlobalForecastSpec(init=("a.grib",), members="x")
    with pytest.raises(JobError, match="adapter spec nowhere.toml does not exist"):
        GlobalForecastSpec(init=("a.grib",), model="nowhere.toml")


def test_dynamical_core_forecast_dataset_contract() -> None:
    fc, device = forecast_global(_analysis(), model="swm", lead_hours=12, truncation=21, forcing="none", device="cpu")
    assert device == "cpu"
    assert fc["z500"].dims == ("lead_time", "member", "lat", "lon")
    assert fc.sizes["lead_time"] == 3 and fc.sizes["lat"] == 37 and fc.sizes["lon"] == 72
    assert fc["valid_time"].values[-1] == np.datetime64("2017-01-01T12", "ns")
    assert fc["z500"].attrs["units"] == "m2 s-2"
    z = fc["z500"].values
    assert np.all(np.isfinite(z))
    # +0 h reproduces the analysis up to bilinear regridding (5 deg -> T21 Gaussian grid) and
    # T21 truncation: within 20 m2 s-2 (2 gpm) of a field spanning 4000 m2 s-2
    assert np.abs(z[0, 0] - _analysis()["z500"].values[0]).max() < 20.0
    # the wave-4 pattern moves: the forecast differs from persistence
    assert np.abs(z[-1, 0] - z[0, 0]).max() > 10.0


def test_perturbed_ensemble_and_persistence() -> None:
    ens, _ = forecast_global(_analysis(), lead_hours=6, truncation=21, forcing="none", members="3", perturbations=True, seed=1, device="cpu")
    assert ens.sizes["member"] == 3
    spread = ens["z500"].isel(lead_time=-1).std("member")
    assert float(spread.max()) > 1.0
    pers, _ = forecast_global(_analysis(), model="persistence", lead_hours=12)
    np.testing.assert_array_equal(pers["z500"].isel(lead_time=2, member=0).values, _analysis()["z500"].values[0])


def test_cli_forecast_global_json(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main
    from engine.storage.zarr_store import open_run_store

    # --init by sample dataset name (engine.datasets.resolve_inputs)
    status = main(["forecast", "global", "--init", "era5-ensemble-2017-01", "--members", "2", "--lead-hours", "12",
                   "--truncation", "21", "--no-forcing", "--device", "cpu", "--store", str(tmp_path), "--json"])
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"run_id", "path", "compute_seconds"}
    ds = open_run_store(out["path"])
    assert ds["z500"].dims == ("lead_time", "member", "lat", "lon")
    assert ds.sizes["member"] == 2 and ds.sizes["lat"] == 61 and ds.sizes["lon"] == 120
    assert str(ds["init_time"].values)[:13] == "2017-01-01T00"
    assert ds["z500"].attrs["units"] == "m2 s-2" and ds.attrs["model"] == "global/swm"


def test_cli_missing_variable_is_one_line(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    path = data_root / "xarray-data" / "era5-2mt-2019-03-uk.grib"
    status = main(["forecast", "global", "--init", str(path), "--lead-hours", "6", "--store", str(tmp_path)])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("meteolens: error")]
    assert status == 2
    assert len(errors) == 1 and str(path) in errors[0] and "no variable z500" in errors[0]


def test_cli_unknown_model(tmp_path: Path, capsys: pytest.CaptureFixture[str], data_root: Path) -> None:
    from app.cli import main

    status = main(["forecast", "global", "--init", str(data_root / ERA5), "--model", "graphcast", "--lead-hours", "6", "--store", str(tmp_path)])
    assert status == 2
    assert "unknown global model 'graphcast'" in capsys.readouterr().err
