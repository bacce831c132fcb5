"""Pretrained-model adapters on tiny models with FengWu's two-state contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from engine.errors import CoordError, JobError, VariableNotFoundError
from engine.models.global_.adapters import PretrainedAdapter, load_model_spec

CHANNELS = ["z500", "t850", "u10"]
MEAN = [5.4e4, 270.0, 1.0]
STD = [3.0e3, 15.0, 5.0]
NLAT, NLON = 9, 16


class TwoStateNet(nn.Module):
    """FengWu-shaped: (1, 2C, lat, lon) -> (1, 2C, lat, lon); channels [:C] are the next state."""

    def __init__(self, c: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(2 * c, 2 * c, kernel_size=3, padding=1)
        self.c = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # residual on the latest state (channels c:2c), as a forecast network would be
        return self.conv(x) * 0.1 + torch.cat([x[:, self.c :], x[:, : self.c]], dim=1)


def _write_spec(tmp_path: Path, fmt: str, weights: str, *, channels: list[str] = CHANNELS, mean: list[float] = MEAN, suffix: str = ".toml") -> Path:
    spec = {
        "name": f"tiny-{fmt}", "format": fmt, "weights": weights, "time_step_hours": 6, "input_states": 2,
        "channels": channels, "mean": mean, "std": STD, "grid": {"nlat": NLAT, "nlon": NLON, "lat_order": "descending"},
    }
    p = tmp_path / f"tiny-{fmt}{suffix}"
    if suffix == ".json":
        p.write_text(json.dumps(spec))
    else:
        lines = [f'name = "{spec["name"]}"', f'format = "{fmt}"', f'weights = "{weights}"', "time_step_hours = 6", "input_states = 2",
                 f"channels = {json.dumps(channels)}", f"mean = {json.dumps(mean)}", f"std = {json.dumps(STD)}",
                 "[grid]", f"nlat = {NLAT}", f"nlon = {NLON}", 'lat_order = "descending"']
        p.write_text("\n".join(lines) + "\n")
    return p


@pytest.fixture(scope="module")
def net() -> TwoStateNet:
    return TwoStateNet(len(CHANNELS)).eval()


@pytest.fixture()
def onnx_spec(tmp_path: Path, net: TwoStateNet) -> Path:
    x = torch.randn(1, 2 * len(CHANNELS), NLAT, NLON)
    with pytest.warns(DeprecationWarning):  # torch's legacy exporter; the dynamo one needs onnxscript
        torch.onnx.export(net, (x,), tmp_path / "tiny.onnx", dynamo=False, input_names=["input"], output_names=["output"])
    return _write_spec(tmp_path, "onnx", "tiny.onnx")


@pytest.fixture(params=["script", "trace"])
def torchscript_spec(request: pytest.FixtureRequest, tmp_path: Path, net: TwoStateNet) -> Path:
    x = torch.randn(1, 2 * len(CHANNELS), NLAT, NLON)
    # torch 2.13 deprecates scripting and tracing; users still ship TorchScript weights.
    with pytest.warns(DeprecationWarning):
        module = torch.jit.script(net) if request.param == "script" else torch.jit.trace(net, (x,))
    module.save(str(tmp_path / "tiny.pt"))
    return _write_spec(tmp_path, "torchscript", "tiny.pt", suffix=".json")


def _analysis(times: int = 3) -> xr.Dataset:
    lat = np.linspace(90, -90, 13)
    lon = np.arange(24) * 15.0
    rng = np.random.default_rng(3)
    t = np.array(["2017-01-01T00", "2017-01-01T06", "2017-01-01T12"][:times], dtype="datetime64[ns]")
    data = {name: (("time", "member", "lat", "lon"), (m + s * rng.normal(size=(times, 2, 13, 24))).astype("float32"))
            for name, m, s in zip(CHANNELS, MEAN, STD, strict=True)}
    return xr.Dataset(data, coords={"time": t, "member": [0, 1], "lat": lat, "lon": lon})


def _reference_rollout(net: nn.Module, spec_path: Path, ds: xr.Dataset, n: int) -> np.ndarray:
    """Roll the torch module by hand: normalise, stack [t-6h, t], take [:C], denormalise."""
    from engine.models.global_.initial import regrid_bilinear

    spec = load_model_spec(spec_path)
    mean, std = np.array(MEAN)[:, None, None], np.array(STD)[:, None, None]
    member = ds.isel(member=0)
    states = [np.stack([regrid_bilinear(member[c].isel(time=k).values, ds.lat.values, ds.lon.values, np.array(spec.lat), np.array(spec.lon)) for c in CHANNELS]) for k in (0, 1)]
    out = []
    for _ in range(n):
        x = np.concatenate([(s - mean) / std for s in states])[None].astype("float32")
        with torch.no_grad():
            y = net(torch.from_numpy(x)).numpy()[0, : len(CHANNELS)] * std + mean
        out.append(y)
        states = [states[1], y]
    return np.stack(out)


def test_onnx_adapter_matches_torch_module(onnx_spec: Path, net: TwoStateNet) -> None:
    adapter = PretrainedAdapter.from_spec_file(onnx_spec, device="cpu")
    ds = _analysis()
    fc = adapter.forecast(ds, 18, source="ana.nc")
    assert fc.sizes == {"lead_time": 4, "member": 2, "lat": NLAT, "lon": NLON}
    assert fc["init_time"].values == np.datetime64("2017-01-01T06", "ns")  # first time with a predecessor
    ref = _reference_rollout(net, onnx_spec, ds, 3)
    got = np.stack([fc[c].isel(member=0).values[1:] for c in CHANNELS], axis=1)
    scaled = (got - ref) / np.array(STD)[None, :, None, None]
    assert np.abs(scaled).max() < 1e-5
    assert fc["z500"].attrs["units"] == "m2 s-2"


def test_torchscript_adapter_matches_torch_module(torchscript_spec: Path, net: TwoStateNet) -> None:
    adapter = PretrainedAdapter.from_spec_file(torchscript_spec, device="cpu")
    ds = _analysis()
    fc = adapter.forecast(ds, 12, init_time="2017-01-01T06")
    ref = _reference_rollout(net, torchscript_spec, ds, 2)
    got = np.stack([fc[c].isel(member=0).values[1:] for c in CHANNELS], axis=1)
    assert np.abs((got - ref) / np.array(STD)[None, :, None, None]).max() < 1e-5


def test_two_state_contract_needs_the_previous_analysis(torchscript_spec: Path) -> None:
    adapter = PretrainedAdapter.from_spec_file(torchscript_spec, device="cpu")
    # starting at 00Z needs the 18Z analysis of the day before, which the file lacks
    with pytest.raises(CoordError, match="needs analyses at 2016-12-31T18"):
        adapter.forecast(_analysis(), 6, init_time="2017-01-01T00")
    with pytest.raises(CoordError, match="no time with 1 predecessor"):
        adapter.forecast(_analysis(times=3).isel(time=[0, 2]), 6)


def test_adapter_errors_name_the_problem(tmp_path: Path, torchscript_spec: Path) -> None:
    # wrong channel count in the spec
    bad = _write_spec(tmp_path, "torchscript", "tiny.pt", mean=MEAN[:2])
    with pytest.raises(JobError, match=r"tiny-torchscript\.toml: channel count mismatch: 3 channels but 2 means"):
        load_model_spec(bad)
    # missing variable in the analysis
    adapter = PretrainedAdapter.from_spec_file(torchscript_spec, device="cpu")
    with pytest.raises(VariableNotFoundError, match=r"ana\.nc: tiny-torchscript needs variable\(s\) u10"):
        adapter.forecast(_analysis().drop_vars("u10"), 6, source="ana.nc")
    # lead time not a multiple of the step
    with pytest.raises(JobError, match="multiple of tiny-torchscript's step"):
        adapter.forecast(_analysis(), 9)


def test_onnx_channel_count_checked_against_model(tmp_path: Path, onnx_spec: Path) -> None:
    spec = _write_spec(tmp_path, "onnx", "tiny.onnx", channels=["z500", "t850"], mean=MEAN[:2])
    spec.write_text(spec.read_text().replace(f"std = {json.dumps(STD)}", f"std = {json.dumps(STD[:2])}"))
    with pytest.raises(JobError, match="has 6 along channel, the spec implies 4"):
        PretrainedAdapter.from_spec_file(spec, device="cpu")
