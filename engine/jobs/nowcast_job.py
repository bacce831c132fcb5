"""The ``nowcast`` job kind: radar frames → a catalogued nowcast run store.

The nowcast starts at the time of the last input frame and steps forward at the frames' own
time step. The store holds ``precip_rate`` (mm h-1) on ``(lead_time, y, x)`` for deterministic
methods and ``(lead_time, member, y, x)`` for ensembles, the input grid's projection
coordinates, 2-D ``lat``/``lon`` and CF ``crs`` variable, and ``init_time`` / ``valid_time``.
The reported compute time covers motion estimation and extrapolation (the model), not reading
the files or writing the store.

Public API: ``NowcastSpec``, ``run_nowcast``, ``load_frames``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from engine.device import resolve_device
from engine.errors import JobError, ReaderError
from engine.jobs.runner import JobOutput, ProgressCallback, job_kinds
from engine.jobs.specs import JobSpec
from engine.lexicon import attrs_for

#: Methods and their defaults; the method classes are imported lazily (torch) in the job.
METHODS: tuple[str, ...] = ("extrapolation", "steps", "persistence")
#: Frames each method needs (motion needs a pair; AR(2) needs three), without importing torch.
MIN_FRAMES: dict[str, int] = {"extrapolation": 2, "steps": 3, "persistence": 1}
DEFAULT_MEMBERS = 20


@dataclass(frozen=True)
class NowcastSpec(JobSpec):
    """A radar nowcast.

    Attributes
    ----------
    inputs : tuple of str
        Radar files (any format :func:`engine.readers.open_many` reads into ``precip_rate``),
        at a constant time step; the last one is the start time.
    method : str
        ``"extrapolation"``, ``"steps"`` or ``"persistence"``.
    lead_steps : int
        Number of lead steps (at the input time step), at least 1.
    members : int or None
        Ensemble size for ``steps`` (default 20); must be unset or 1 for the other methods.
    seed : int
        Seed of the ``steps`` ensemble.
    domain : str, optional
        Region name for the catalogue.
    """

    kind: ClassVar[str] = "nowcast"
    inputs: tuple[str, ...] = ()
    method: str = "extrapolation"
    lead_steps: int = 12
    members: int | None = None
    seed: int = 0
    domain: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.inputs:
            raise JobError("inputs: no input files given")
        if self.method not in METHODS:
            raise JobError(f"method={self.method!r}: expected one of {', '.join(METHODS)}")
        if not isinstance(self.lead_steps, int) or self.lead_steps < 1:
            raise JobError(f"lead_steps={self.lead_steps!r}: expected a positive number of steps")
        if self.members is not None:
            if not isinstance(self.members, int) or self.members < 1:
                raise JobError(f"members={self.members!r}: expected at least 1 member")
            if self.method != "steps" and self.members != 1:
                raise JobError(
                    f"members={self.members}: only the steps method makes ensembles (method={self.method!r})"
                )

    def model_name(self) -> str:
        return f"nowcast/{self.method}"

    @property
    def n_members(self) -> int:
        """Ensemble size actually run (1 for deterministic methods)."""
        if self.method != "steps":
            return 1
        return self.members if self.members is not None else DEFAULT_MEMBERS


def load_frames(paths: Sequence[str | Path], min_frames: int, method: str) -> xr.Dataset:
    """Read radar frames into one ``precip_rate (time, y, x)`` dataset and check them.

    Raises
    ------
    ReaderError
        No files, files on different grids, no ``precip_rate`` (from the readers).
    JobError
        Fewer frames than ``method`` needs, or an irregular time step.
    """
    from engine.readers import open_many

    ds = open_many(list(paths), variables=["precip_rate"])
    rate = ds["precip_rate"]
    if "time" not in rate.dims or rate.ndim != 3:
        raise ReaderError(Path(str(paths[0])), f"expected precip_rate on (time, y, x), got dims {rate.dims}")
    n = rate.sizes["time"]
    if n < min_frames:
        raise JobError(f"--input: method {method} needs at least {min_frames} frames, got {n}")
    if n >= 2:
        steps = np.diff(ds["time"].values).astype("timedelta64[s]").astype(np.int64)
        if np.any(steps <= 0) or np.any(steps != steps[-1]):
            raise JobError(
                f"--input: frames must have one constant time step, got steps of {sorted(set(steps.tolist()))} s"
            )
    return ds


def _time_step(ds: xr.Dataset) -> np.timedelta64:
    times = ds["time"].values
    if times.size >= 2:
        return (times[-1] - times[-2]).astype("timedelta64[ns]")
    accum = ds.attrs.get("accutime")  # minutes, set by radar readers for accumulation products
    if accum:
        return np.timedelta64(int(round(float(accum) * 60)), "s").astype("timedelta64[ns]")
    raise JobError("--input: one frame gives no time step (and the file states no accumulation time)")


def _build_method(spec: NowcastSpec) -> Any:
    from engine.models.nowcast import Extrapolation, Persistence, Steps

    if spec.method == "steps":
        return Steps(n_members=spec.n_members, seed=spec.seed)
    if spec.method == "extrapolation":
        return Extrapolation()
    return Persistence()


def _forecast_dataset(forecast: np.ndarray, frames: xr.Dataset, lead: np.ndarray, ensemble: bool) -> xr.Dataset:
    t0 = np.datetime64(frames["time"].values[-1], "ns")
    dims = ("lead_time", "member", "y", "x") if ensemble else ("lead_time", "y", "x")
    attrs = dict(attrs_for("precip_rate"))
    if "grid_mapping" in frames["precip_rate"].attrs:
        attrs["grid_mapping"] = frames["precip_rate"].attrs["grid_mapping"]
    coords: dict[str, Any] = {
        "lead_time": ("lead_time", lead),
        "init_time": t0,
        "valid_time": ("lead_time", t0 + lead),
    }
    for name in ("y", "x", "lat", "lon"):
        if name in frames.coords:
            coords[name] = frames.coords[name]
    if ensemble:
        coords["member"] = ("member", np.arange(forecast.shape[1], dtype=np.int32))
    out = xr.Dataset({"precip_rate": (dims, forecast.astype(np.float32), attrs)}, coords=coords)
    if "crs" in frames:
        out["crs"] = frames["crs"]
    return out


@job_kinds.register("nowcast")
def run_nowcast(spec: NowcastSpec, progress: ProgressCallback) -> JobOutput:
    """Run a nowcast job (registered as job kind ``nowcast``).

    Parameters
    ----------
    spec : NowcastSpec
    progress : callable
        ``progress(fraction, message)``.

    Returns
    -------
    JobOutput
        ``compute_seconds`` = motion + extrapolation/ensemble time on the device (synchronised).
    """
    import torch

    from engine.models.nowcast import nowcast_methods

    method = _build_method(spec)
    cls = nowcast_methods.get(spec.method)
    progress(0.0, f"reading {len(spec.inputs)} frames")
    frames = load_frames(spec.inputs, cls.min_frames, spec.method)
    dt = _time_step(frames)
    device = resolve_device(spec.device)
    data = torch.from_numpy(np.ascontiguousarray(frames["precip_rate"].values, dtype=np.float32)).to(device)
    batch = data.unsqueeze(0)
    progress(0.2, f"{spec.method} on {device} ({data.shape[-2]}x{data.shape[-1]}, {spec.lead_steps} steps)")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    with torch.inference_mode():
        out = method(batch, spec.lead_steps)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    progress(0.8, "building the run")
    result = out[0].cpu().numpy()  # (lead, y, x) or (member, lead, y, x)
    if cls.ensemble:
        result = np.moveaxis(result, 0, 1)  # -> (lead, member, y, x), the DESIGN dim order
    lead = (np.arange(1, spec.lead_steps + 1) * dt).astype("timedelta64[ns]")
    ds = _forecast_dataset(result, frames, lead, cls.ensemble)
    return JobOutput(
        dataset=ds,
        compute_seconds=seconds,
        inputs=spec.inputs,
        init_time=ds["init_time"].values,
        device=str(device),
        model=f"nowcast/{spec.method}",
        domain=spec.domain or frames.attrs.get("institution"),
        extra_attrs={
            "title": f"{spec.method} radar nowcast",
            "nowcast_method": spec.method,
            "time_step_seconds": int(dt / np.timedelta64(1, "s")),
            "members": spec.n_members,
            "seed": spec.seed,
        },
    )
