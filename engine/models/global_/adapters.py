"""Run pretrained global models (ONNX or TorchScript) from user-supplied weights.

A model is declared by a small spec file (TOML or JSON) parsed once into a frozen
:class:`ModelSpec`: the weights file and its format, the channels with canonical names (levels in
the name, ``z500``, ``t2m``; :mod:`engine.lexicon`), the per-channel normalisation
``(x - mean) / std``, the grid, the time step and the input contract (how many consecutive states
are stacked along the channel axis). FengWu (Chen et al. 2023) is the model case: input
``(1, 138, 721, 1440)`` = the states at ``t - 6 h`` and ``t`` of 69 normalised channels, output of
the same shape whose channels ``[:69]`` are the state at ``t + 6 h``; rolled out
autoregressively by sliding the two-state window. ``docs/global_models.md`` gives its spec.

Example spec (TOML)::

    name = "fengwu-v2"
    format = "onnx"                     # or "torchscript"
    weights = "fengwu_v2.onnx"          # relative to the spec file
    time_step_hours = 6
    input_states = 2
    channels = ["z50", "z100", ..., "u10", "v10", "t2m", "msl"]
    mean = "data_mean.npy"              # a list of numbers, or a .npy / .txt file
    std = "data_std.npy"
    [grid]
    nlat = 721
    nlon = 1440
    lat_order = "descending"            # 90 .. -90
    lon_start = 0.0                     # first longitude, degrees east

The adapter regrids the analysis bilinearly to the model grid (longitude wrap, either latitude
order), normalises, rolls out, denormalises and returns a canonical Dataset on the model grid.
ONNX runs on onnxruntime with the CUDA execution provider when there is one (and the device is
not ``cpu``), else on the CPU provider.

Public API: ``Channel``, ``ModelSpec``, ``load_model_spec``, ``PretrainedAdapter``.
"""

from __future__ import annotations

import json
import re
import tomllib
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from engine.datasets import file_sha256
from engine.errors import CoordError, JobError, MissingDependencyError, UnknownNameError, VariableNotFoundError
from engine.lexicon import attrs_for, lookup
from engine.models.base import models
from engine.models.global_.initial import regrid_bilinear

_FORMATS = ("onnx", "torchscript")
#: onnxruntime prefixes its messages with "[ONNXRuntimeError] : <code> : <STATUS> : ".
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*")
#: torch appends a generic paragraph to every archive error ("This is an internal miniz error...").
_TORCH_BOILERPLATE = re.compile(r"\s*This is an internal miniz error.*$", re.DOTALL)


def _reason(err: BaseException) -> str:
    """One short line from a back end's exception: status prefix and boilerplate removed.

    onnxruntime and torch raise multi-line messages (TorchScript tracebacks, a paragraph of
    advice); the CLI's contract is one line per error, so keep the first meaningful line only.
    """
    text = _TORCH_BOILERPLATE.sub("", _ORT_PREFIX.sub("", str(err).strip()))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return type(err).__name__
    # TorchScript interpreter errors start with a banner and end with the actual error line.
    if lines[0].startswith("The following operation failed in the TorchScript interpreter"):
        return lines[-1]
    return lines[0]


def _size(path: Path) -> str:
    """File size for error messages: a truncated download shows up as an unexpectedly small file."""
    try:
        n = path.stat().st_size
    except OSError:
        return "unreadable"
    return f"{n} bytes" if n < 1024**2 else f"{n / 1024**2:.1f} MiB"


@dataclass(frozen=True)
class Channel:
    """One model channel: canonical name and its normalisation (``(x - mean) / std``, native units)."""

    name: str
    mean: float
    std: float


@dataclass(frozen=True)
class ModelSpec:
    """A pretrained model's declaration (see the module docstring for the file format).

    Attributes
    ----------
    name : str
        Model name (recorded in the run).
    format : {"onnx", "torchscript"}
    weights : Path
        Weights file (absolute).
    channels : tuple of Channel
        The state's channels, in the model's order.
    lat, lon : tuple of float
        Model grid latitudes and longitudes (degrees), in the model's order.
    time_step_hours : int
        Hours between consecutive states.
    input_states : int
        Number of consecutive states stacked along the channel axis (FengWu: 2).
    input_name, output_name : str, optional
        ONNX tensor names; the first input/output when empty.
    source : Path
        The spec file (for error messages).
    """

    name: str
    format: str
    weights: Path
    channels: tuple[Channel, ...]
    lat: tuple[float, ...]
    lon: tuple[float, ...]
    time_step_hours: int
    input_states: int = 1
    input_name: str = ""
    output_name: str = ""
    source: Path = Path("spec")

    def __post_init__(self) -> None:
        where = str(self.source)
        if self.format not in _FORMATS:
            raise JobError(f"{where}: format {self.format!r}: expected one of {', '.join(_FORMATS)}")
        if not self.channels:
            raise JobError(f"{where}: channels: empty channel list")
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise JobError(f"{where}: channels: duplicate names {sorted({n for n in names if names.count(n) > 1})}")
        for c in self.channels:
            try:
                lookup(c.name)
            except UnknownNameError as err:
                raise JobError(f"{where}: channel {c.name!r} is not a canonical variable name ({err})") from None
            if not np.isfinite(c.mean) or not (np.isfinite(c.std) and c.std > 0):
                raise JobError(f"{where}: channel {c.name}: mean must be finite and std > 0 (got {c.mean}, {c.std})")
        if self.time_step_hours <= 0:
            raise JobError(f"{where}: time_step_hours must be > 0, got {self.time_step_hours}")
        if self.input_states < 1:
            raise JobError(f"{where}: input_states must be >= 1, got {self.input_states}")
        if len(self.lat) < 2 or len(self.lon) < 4:
            raise JobError(f"{where}: grid: need at least 2 latitudes and 4 longitudes")

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def mean(self) -> np.ndarray:
        return np.array([c.mean for c in self.channels], dtype="float32")

    @property
    def std(self) -> np.ndarray:
        return np.array([c.std for c in self.channels], dtype="float32")


def _numbers(value: Any, base: Path, what: str, where: Path) -> np.ndarray:
    """A list of numbers given inline or as a ``.npy``/text file relative to the spec."""
    if isinstance(value, str):
        p = (base / value).expanduser()
        if not p.is_file():
            raise JobError(f"{where}: {what}: file {p} not found")
        arr = np.load(p) if p.suffix == ".npy" else np.loadtxt(p)
    elif isinstance(value, list):
        arr = np.asarray(value, dtype="float64")
    else:
        raise JobError(f"{where}: {what}: expected a list of numbers or a file name, got {type(value).__name__}")
    return np.asarray(arr, dtype="float64").reshape(-1)


def load_model_spec(path: str | Path) -> ModelSpec:
    """Parse a TOML or JSON model spec into a :class:`ModelSpec`.

    Raises
    ------
    JobError
        Naming the spec file and the field: missing fields, wrong channel count of ``mean``/``std``,
        unknown channel names, a bad grid.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise JobError(f"{p}: model spec not found")
    try:
        raw = tomllib.loads(p.read_text()) if p.suffix.lower() == ".toml" else json.loads(p.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise JobError(f"{p}: cannot parse model spec: {err}") from err
    base = p.parent
    for key in ("format", "weights", "channels", "mean", "std", "grid", "time_step_hours"):
        if key not in raw:
            raise JobError(f"{p}: missing field {key!r}")
    names = raw["channels"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise JobError(f"{p}: channels: expected a list of canonical names")
    mean = _numbers(raw["mean"], base, "mean", p)
    std = _numbers(raw["std"], base, "std", p)
    if mean.size != len(names) or std.size != len(names):
        raise JobError(f"{p}: channel count mismatch: {len(names)} channels but {mean.size} means and {std.size} stds")
    grid = raw["grid"]
    if "lat" in grid and "lon" in grid:
        lat, lon = [float(x) for x in grid["lat"]], [float(x) for x in grid["lon"]]
    else:
        try:
            nlat, nlon = int(grid["nlat"]), int(grid["nlon"])
        except (KeyError, TypeError, ValueError) as err:
            raise JobError(f"{p}: grid: give lat/lon arrays or nlat/nlon") from err
        order = grid.get("lat_order", "descending")
        if order not in ("descending", "ascending"):
            raise JobError(f"{p}: grid.lat_order: expected 'descending' or 'ascending', got {order!r}")
        lat_arr = np.linspace(90.0, -90.0, nlat) if order == "descending" else np.linspace(-90.0, 90.0, nlat)
        lat = lat_arr.tolist()
        lon = (float(grid.get("lon_start", 0.0)) + np.arange(nlon) * 360.0 / nlon).tolist()
    weights = (base / str(raw["weights"])).expanduser()
    return ModelSpec(
        name=str(raw.get("name", p.stem)),
        format=str(raw["format"]).lower(),
        weights=weights,
        channels=tuple(Channel(n, float(m), float(s)) for n, m, s in zip(names, mean, std, strict=True)),
        lat=tuple(lat),
        lon=tuple(lon),
        time_step_hours=int(raw["time_step_hours"]),
        input_states=int(raw.get("input_states", 1)),
        input_name=str(raw.get("input_name", "")),
        output_name=str(raw.get("output_name", "")),
        source=p,
    )


@models.register("global/adapter")
class PretrainedAdapter:
    """A pretrained network behind the :class:`~engine.models.base.ForecastModel` protocol.

    Parameters
    ----------
    spec : ModelSpec
        The declaration.
    device : str
        ``auto``, ``cpu``, ``cuda``.

    Raises
    ------
    JobError
        If the weights are missing, cannot be loaded (truncated, corrupted, not in the declared
        format: one line naming the file, its size and the back end's reason) or their declared
        input/output shapes contradict the spec. A network without declared shapes (TorchScript,
        ONNX with dynamic axes) that contradicts the spec fails at its first step, also with a
        ``JobError`` naming the weights file.
    MissingDependencyError
        If onnxruntime (ONNX) or torch (TorchScript) is not installed.
    """

    def __init__(self, spec: ModelSpec, *, device: str = "auto") -> None:
        self.spec = spec
        if not spec.weights.is_file():
            raise JobError(f"{spec.source}: weights file {spec.weights} not found")
        self._run: Callable[[np.ndarray], np.ndarray]
        if spec.format == "onnx":
            self._run, self.device_name = self._load_onnx(device)
        else:
            self._run, self.device_name = self._load_torchscript(device)

    @classmethod
    def from_spec_file(cls, path: str | Path, *, device: str = "auto") -> PretrainedAdapter:
        """Load the spec file and the weights it names."""
        return cls(load_model_spec(path), device=device)

    # ------------------------------------------------------------------ back ends
    def _load_onnx(self, device: str) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise MissingDependencyError("onnxruntime", "models", "ONNX models") from err
        if device.startswith("cuda") and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise JobError(f"device={device}: onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu or use cpu)")
        providers = ["CPUExecutionProvider"]
        if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        # Fatal only: onnxruntime would otherwise print its own copy of every error to stderr
        # before raising it; the error reaches the user once, as a JobError naming the file.
        options.log_severity_level = 4
        try:
            session = ort.InferenceSession(str(self.spec.weights), sess_options=options, providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail...)
            raise JobError(
                f"{self.spec.weights}: cannot load ONNX model ({_size(self.spec.weights)}; corrupted, truncated "
                f"or not an ONNX file): {_reason(err)}"
            ) from err
        inp = session.get_inputs()[0] if not self.spec.input_name else next(
            (i for i in session.get_inputs() if i.name == self.spec.input_name), None)
        if inp is None:
            raise JobError(f"{self.spec.source}: input_name {self.spec.input_name!r} not in the model's inputs {[i.name for i in session.get_inputs()]}")
        self._check_shape(list(inp.shape), "input", self.spec.input_states * self.spec.n_channels)
        out_name = self.spec.output_name or session.get_outputs()[0].name
        in_name = inp.name

        def run(x: np.ndarray) -> np.ndarray:
            try:
                return np.asarray(session.run([out_name], {in_name: x.astype("float32")})[0])
            except Exception as err:  # a model with dynamic axes may only fail here, on a real input
                raise JobError(f"{self.spec.weights}: the ONNX model failed on an input of shape {x.shape}: {_reason(err)}") from err

        used = session.get_providers()[0]
        return run, "cuda" if used == "CUDAExecutionProvider" else "cpu"

    def _load_torchscript(self, device: str) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
        try:
            import torch
        except ImportError as err:
            raise MissingDependencyError("torch", "models", "TorchScript models") from err
        from engine.device import resolve_device

        dev = resolve_device(device)
        try:
            with warnings.catch_warnings():
                # torch >= 2.10 deprecates TorchScript, but it is the format users ship weights in.
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(self.spec.weights), map_location=dev)
        except Exception as err:  # RuntimeError for bad archives, but also OSError, pickle errors...
            raise JobError(
                f"{self.spec.weights}: cannot load TorchScript model ({_size(self.spec.weights)}; corrupted, "
                f"truncated or not saved with torch.jit.save): {_reason(err)}"
            ) from err
        module.eval()

        def run(x: np.ndarray) -> np.ndarray:
            # TorchScript has no declared input shape, so a spec that contradicts the network is
            # only found here; the interpreter's multi-line traceback is reduced to its last line.
            try:
                with torch.no_grad():
                    y = module(torch.as_tensor(x, dtype=torch.float32, device=dev))
            except RuntimeError as err:
                raise JobError(f"{self.spec.weights}: the TorchScript model failed on an input of shape {x.shape}: {_reason(err)}") from err
            if not isinstance(y, torch.Tensor):
                raise JobError(f"{self.spec.weights}: the TorchScript model returned {type(y).__name__}; expected one tensor (batch, channel, lat, lon)")
            return y.detach().cpu().numpy()

        return run, str(dev)

    def _check_shape(self, shape: list[Any], what: str, channels: int) -> None:
        ny, nx = len(self.spec.lat), len(self.spec.lon)
        if len(shape) != 4:
            raise JobError(f"{self.spec.weights}: {what} has rank {len(shape)}; expected (batch, channel, lat, lon)")
        expected = [None, channels, ny, nx]
        for got, want, dim in zip(shape[1:], expected[1:], ("channel", "lat", "lon"), strict=True):
            if isinstance(got, int) and got != want:
                raise JobError(
                    f"{self.spec.source}: the model's {what} has {got} along {dim}, the spec implies {want} "
                    f"({self.spec.input_states} state(s) x {self.spec.n_channels} channels on {ny} x {nx})"
                )

    # ------------------------------------------------------------------ ForecastModel protocol
    def input_coords(self) -> OrderedDict[str, np.ndarray]:
        """``state`` (input states, oldest first), ``variable``, ``lat``, ``lon``."""
        return OrderedDict(
            state=np.arange(-(self.spec.input_states - 1), 1) * self.spec.time_step_hours,
            variable=np.array([c.name for c in self.spec.channels]),
            lat=np.asarray(self.spec.lat), lon=np.asarray(self.spec.lon),
        )

    def output_coords(self, input_coords: OrderedDict[str, np.ndarray]) -> OrderedDict[str, np.ndarray]:
        """One state ``time_step_hours`` later; raises ``CoordError`` if the input does not fit."""
        want = self.input_coords()
        for k, v in want.items():
            if k not in input_coords or np.shape(input_coords[k]) != np.shape(v) or not np.array_equal(input_coords[k], v):
                raise CoordError(f"{self.spec.name}: input coordinate {k!r} does not match the model's")
        out = OrderedDict(want)
        out["state"] = np.array([self.spec.time_step_hours])
        return out

    def __call__(self, x: np.ndarray, coords: OrderedDict[str, np.ndarray]) -> tuple[np.ndarray, OrderedDict[str, np.ndarray]]:
        """One step on *physical* states ``(batch, state, variable, lat, lon)`` → next ``(batch, 1, variable, lat, lon)``."""
        out_coords = self.output_coords(coords)
        return self.step(x)[:, None], out_coords

    def to(self, device: Any) -> PretrainedAdapter:
        """Re-load on another device."""
        return PretrainedAdapter(self.spec, device=str(device))

    def step(self, states: np.ndarray) -> np.ndarray:
        """Advance physical states ``(batch, input_states, C, lat, lon)`` by one step → ``(batch, C, lat, lon)``.

        Normalises with the spec's mean/std, stacks the states along channels (oldest first, the
        FengWu order), runs the network one sample at a time (FengWu's ONNX has batch 1), keeps
        output channels ``[:C]`` and denormalises.

        Raises
        ------
        JobError
            If the network fails on the input or returns fewer than ``C`` channels; the message
            names the weights file.
        """
        s = self.spec
        c = s.n_channels
        mean, std = s.mean[:, None, None], s.std[:, None, None]
        outs = []
        for sample in states:
            x = ((sample - mean) / std).reshape(1, s.input_states * c, len(s.lat), len(s.lon))
            y = self._run(x.astype("float32"))
            if y.ndim != 4 or y.shape[1] < c:
                raise JobError(f"{s.weights}: output shape {y.shape}; expected (1, >= {c}, lat, lon)")
            outs.append(y[0, :c] * std + mean)
        return np.stack(outs).astype("float32")

    # ------------------------------------------------------------------ rollout
    def forecast(
        self,
        analysis: xr.Dataset,
        lead_hours: int,
        *,
        init_time: str | None = None,
        members: str = "all",
        progress: Callable[[float, str], None] | None = None,
        source: str = "input",
    ) -> xr.Dataset:
        """Roll the model out from an analysis.

        Parameters
        ----------
        analysis : Dataset
            Canonical variables for every channel on a regular global grid, dims
            ``(time, [member,] lat, lon)``; with ``input_states = k`` the ``k`` analyses at
            ``t0 - (k-1) dt, ..., t0`` must be present.
        lead_hours : int
            Multiple of ``time_step_hours``.
        init_time : str, optional
            ``t0``; the earliest time that has its predecessors when omitted.
        members : str
            ``"all"`` or ``"N"``.
        progress : callable, optional
        source : str
            Input name for error messages.

        Returns
        -------
        Dataset
            Every channel on the model grid, dims ``(lead_time, member, lat, lon)``.

        Raises
        ------
        VariableNotFoundError
            If a channel is missing from the analysis.
        CoordError
            If the analyses needed by the input contract are missing.
        JobError
            If ``lead_hours`` is not a multiple of the step.
        """
        s = self.spec
        dt = s.time_step_hours
        if lead_hours <= 0 or lead_hours % dt:
            raise JobError(f"lead_hours={lead_hours}: must be a positive multiple of {s.name}'s step ({dt} h)")
        missing = [c.name for c in s.channels if c.name not in analysis.data_vars]
        if missing:
            raise VariableNotFoundError(source, f"{s.name} needs variable(s) {', '.join(missing)}; the file has {', '.join(map(str, analysis.data_vars))}")
        if "time" not in analysis.dims:
            if s.input_states > 1:
                raise CoordError(f"{source}: {s.name} needs {s.input_states} consecutive analyses {dt} h apart; the file holds one time")
            analysis = analysis.expand_dims(time=[analysis["time"].values] if "time" in analysis.coords else [np.datetime64("NaT", "ns")])
        times = analysis["time"].values.astype("datetime64[ns]")
        step = np.timedelta64(dt, "h")
        if init_time is None:
            candidates = [t for t in times if all((t - k * step) in times for k in range(s.input_states))]
            if not candidates:
                raise CoordError(f"{source}: no time with {s.input_states - 1} predecessor(s) {dt} h apart, as {s.name} needs")
            t0 = candidates[0]
        else:
            t0 = np.datetime64(init_time, "ns")
        needed = [t0 - k * step for k in range(s.input_states - 1, -1, -1)]
        absent = [str(t)[:16] for t in needed if t not in times]
        if absent:
            raise CoordError(f"{source}: {s.name} needs analyses at {', '.join(absent)} (input_states={s.input_states}, step {dt} h)")
        ds = analysis[[c.name for c in s.channels]].sel(time=needed)
        if "member" not in ds.dims:
            ds = ds.expand_dims(member=[0])
        if members != "all":
            ds = ds.isel(member=slice(0, int(members)))
        lat_m, lon_m = np.asarray(s.lat), np.asarray(s.lon)
        # (member, state, channel, lat, lon) on the model grid
        fields = np.stack(
            [regrid_bilinear(ds[c.name].transpose("member", "time", "lat", "lon").values, ds["lat"].values, ds["lon"].values, lat_m, lon_m, what=source)
             for c in s.channels],
            axis=2,
        ).astype("float32")
        n_steps = lead_hours // dt
        window = fields
        frames = [fields[:, -1]]
        for k in range(n_steps):
            nxt = self.step(window)
            frames.append(nxt)
            window = np.concatenate([window[:, 1:], nxt[:, None]], axis=1)
            if progress:
                progress((k + 1) / n_steps, f"+{(k + 1) * dt} h")
        data = np.stack(frames)  # (lead, member, channel, lat, lon)
        lead = pd.to_timedelta(np.arange(n_steps + 1) * dt, unit="h").to_numpy()
        out = xr.Dataset(
            {c.name: (("lead_time", "member", "lat", "lon"), data[:, :, i], attrs_for(c.name)) for i, c in enumerate(s.channels)},
            coords={
                "lead_time": ("lead_time", lead),
                "member": ("member", ds["member"].values),
                "lat": ("lat", lat_m, {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": ("lon", lon_m, {"units": "degrees_east", "standard_name": "longitude"}),
                "init_time": t0,
                "valid_time": ("lead_time", t0 + lead),
            },
            attrs={"model": f"global/{s.name}", "weights": str(s.weights), "weights_sha256": file_sha256(s.weights),
                   "input_states": s.input_states, "lat_order": "descending" if lat_m[0] > lat_m[-1] else "ascending"},
        )
        return out


def channel_names(spec: ModelSpec) -> Sequence[str]:
    """The canonical names of a spec's channels, in order."""
    return [c.name for c in spec.channels]
