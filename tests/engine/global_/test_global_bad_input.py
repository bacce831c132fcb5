"""Bad input to the global engine: corrupted weights, unknown models, missing variables, bad lead times.

Every case must end in one ``WxError`` line that names the offending file or value, through the
Python API and through ``meteolens forecast global`` (exit status 2, one line on stderr).
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from engine.errors import JobError, VariableNotFoundError
from engine.jobs.global_job import GlobalForecastSpec, forecast_global
from engine.models.global_.adapters import PretrainedAdapter

CHANNELS = ["z500", "t850", "u10"]
NLAT, NLON = 9, 16


def _spec(tmp_path: Path, fmt: str, weights: str, *, step: int = 6) -> Path:
    """A two-state spec (FengWu's contract) for three channels on a 9 x 16 grid."""
    spec = {"name": "tiny", "format": fmt, "weights": weights, "time_step_hours": step, "input_states": 2,
            "channels": CHANNELS, "mean": [5.4e4, 270.0, 1.0], "std": [3.0e3, 15.0, 5.0],
            "grid": {"nlat": NLAT, "nlon": NLON, "lat_order": "descending"}}
    path = tmp_path / f"tiny-{fmt}-{Path(weights).stem}.json"
    path.write_text(json.dumps(spec))
    return path


def _onnx(path: Path, channels: int, *, dynamic: bool = False) -> Path:
    net = nn.Conv2d(channels, channels, 3, padding=1).eval()
    axes = {"input": {1: "channel", 2: "lat", 3: "lon"}} if dynamic else None
    with warnings.catch_warnings():  # torch's legacy exporter is deprecated; the dynamo one needs onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, channels, NLAT, NLON),), path, dynamo=False,
                          input_names=["input"], output_names=["output"], dynamic_axes=axes)
    return path


def _torchscript(path: Path, channels: int) -> Path:
    with warnings.catch_warnings():  # TorchScript is deprecated in torch >= 2.10; users still ship it
        warnings.simplefilter("ignore")
        torch.jit.script(nn.Conv2d(channels, channels, 3, padding=1).eval()).save(str(path))
    return path


def _analysis(variables: list[str] = CHANNELS) -> xr.Dataset:
    """Two 6-hourly analyses on a 15-degree grid, the input the two-state contract needs."""
    lat = np.linspace(90, -90, 13)
    lon = np.arange(24) * 15.0
    t = np.array(["2017-01-01T00", "2017-01-01T06"], dtype="datetime64[ns]")
    base = {"z500": 5.4e4, "t850": 270.0, "u10": 1.0}
    return xr.Dataset({v: (("time", "lat", "lon"), np.full((2, 13, 24), base[v], dtype="float32")) for v in variables},
                      coords={"time": t, "lat": lat, "lon": lon})


def _write_era5_style(path: Path, *, with_u10: bool = True) -> Path:
    """The analysis as an ERA5-style netCDF (``z``, ``t`` on a ``level`` dim) that ``open_any`` reads.

    The netCDF reader maps native names to canonical ones (``z`` at 500 hPa -> ``z500``).
    """
    ds = _analysis()
    level = xr.DataArray([500, 850], dims="level", name="level")
    out = xr.Dataset({
        "z": xr.concat([ds["z500"]] * 2, dim=level).transpose("time", "level", "lat", "lon").assign_attrs(units="m**2 s**-2"),
        "t": xr.concat([ds["t850"]] * 2, dim=level).transpose("time", "level", "lat", "lon").assign_attrs(units="K"),
    })
    if with_u10:
        out["u10"] = ds["u10"].assign_attrs(units="m s**-1")
    out.to_netcdf(path)
    return path


def _one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text, text
    return text


# ---------------------------------------------------------------------------------- corrupted weights
def test_truncated_onnx_names_the_file_in_one_line(tmp_path: Path) -> None:
    good = _onnx(tmp_path / "tiny.onnx", 2 * len(CHANNELS)).read_bytes()
    (tmp_path / "cut.onnx").write_bytes(good[: len(good) // 2])
    with pytest.raises(JobError) as info:
        PretrainedAdapter.from_spec_file(_spec(tmp_path, "onnx", "cut.onnx"), device="cpu")
    msg = _one_line(info.value)
    assert msg.startswith(f"{tmp_path / 'cut.onnx'}: cannot load ONNX model ({len(good) // 2} bytes; corrupted, truncated")
    # onnxruntime's "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF :" prefix is not passed on
    assert "ONNXRuntimeError" not in msg and "Protobuf parsing failed" in msg


@pytest.mark.parametrize("content", ["random", "state_dict"])
def test_bad_torchscript_file_names_the_file_in_one_line(tmp_path: Path, content: str) -> None:
    path = tmp_path / "model.pt"
    if content == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    else:  # the usual mistake: torch.save of a state dict instead of torch.jit.save of the module
        torch.save(nn.Conv2d(6, 6, 3).state_dict(), path)
    with pytest.raises(JobError) as info:
        PretrainedAdapter.from_spec_file(_spec(tmp_path, "torchscript", "model.pt"), device="cpu")
    msg = _one_line(info.value)
    assert msg.startswith(f"{path}: cannot load TorchScript model (")
    assert "not saved with torch.jit.save" in msg
    # torch's paragraph of generic advice is dropped; its specific reason is kept
    assert "internal miniz error" not in msg and "PytorchStreamReader failed" in msg


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_network_that_contradicts_the_spec_fails_at_the_first_step(tmp_path: Path, fmt: str) -> None:
    # 4 channels instead of 2 states x 3 channels; TorchScript and an ONNX model with dynamic
    # axes declare no shape, so only running them finds the mismatch.
    weights = _onnx(tmp_path / "w.onnx", 4, dynamic=True) if fmt == "onnx" else _torchscript(tmp_path / "w.pt", 4)
    adapter = PretrainedAdapter.from_spec_file(_spec(tmp_path, fmt, weights.name), device="cpu")
    with pytest.raises(JobError) as info:
        adapter.forecast(_analysis(), 6)
    msg = _one_line(info.value)
    assert msg.startswith(f"{weights}: the {'ONNX' if fmt == 'onnx' else 'TorchScript'} model failed on an input of shape (1, 6, 9, 16): ")
    assert "channels" in msg


# ---------------------------------------------------------------------------------- lead time, variables (API)
def test_lead_time_must_be_a_multiple_of_the_adapter_step(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "torchscript", _torchscript(tmp_path / "w.pt", 6).name, step=24)
    with pytest.raises(JobError, match=r"lead_hours=12: must be a positive multiple of the model step \(24 h\)"):
        GlobalForecastSpec(init=("a.nc",), model=str(spec), lead_hours=12)
    with pytest.raises(JobError, match=r"lead_hours=9: must be a positive multiple of the model step \(6 h\)"):
        forecast_global(_analysis(), model="persistence", lead_hours=9)
    with pytest.raises(JobError, match=r"lead_hours=0: must be a positive multiple"):
        forecast_global(_analysis(), model="swm", lead_hours=0)


def test_adapter_reports_every_missing_variable(tmp_path: Path) -> None:
    adapter = PretrainedAdapter.from_spec_file(_spec(tmp_path, "torchscript", _torchscript(tmp_path / "w.pt", 6).name), device="cpu")
    with pytest.raises(VariableNotFoundError, match=r"^ana\.nc: tiny needs variable\(s\) t850, u10; the file has z500$"):
        adapter.forecast(_analysis(["z500"]), 6, source="ana.nc")


# ---------------------------------------------------------------------------------- the CLI
def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    from app.cli import main

    status = main(argv)
    return status, capsys.readouterr().err.strip().splitlines()


def test_cli_unknown_model_lists_the_available_ones(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = _cli(["forecast", "global", "--init", "era5-ensemble-2017-01", "--model", "nope", "--lead-hours", "6",
                        "--store", str(tmp_path), "--json"], capsys)
    assert status == 2
    assert err == ["meteolens: error: unknown global model 'nope'; available: <spec.json>, <spec.toml>, climatology, persistence, swm"]


def test_cli_lead_time_not_a_multiple_of_the_step(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = _cli(["forecast", "global", "--init", "era5-ensemble-2017-01", "--lead-hours", "9",
                        "--store", str(tmp_path), "--json"], capsys)
    assert status == 2
    assert err == ["meteolens: error: lead_hours=9: must be a positive multiple of the model step (6 h)"]


@pytest.mark.parametrize("problem", ["truncated weights", "missing variable"])
def test_cli_adapter_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str) -> None:
    good = _onnx(tmp_path / "tiny.onnx", 2 * len(CHANNELS))
    if problem == "truncated weights":
        good.write_bytes(good.read_bytes()[:100])
    analysis = _write_era5_style(tmp_path / "ana.nc", with_u10=problem == "truncated weights")
    status, err = _cli(["forecast", "global", "--init", str(analysis), "--model", str(_spec(tmp_path, "onnx", "tiny.onnx")),
                        "--lead-hours", "6", "--device", "cpu", "--store", str(tmp_path / "store"), "--json"], capsys)
    assert status == 2
    assert len(err) == 1 and err[0].startswith("meteolens: error: "), err
    if problem == "truncated weights":
        assert re.search(rf"{re.escape(str(good))}: cannot load ONNX model \(100 bytes; corrupted", err[0])
    else:
        assert f"{analysis}: tiny needs variable(s) u10" in err[0]
