"""The ``nowcast`` job kind: radar frames → a catalogued nowcast run store.

The nowcast starts at the time of the last input frame and steps forward at the frames' own
time step. The store holds ``precip_rate`` (mm h-1) on ``(lead_time, y, x)`` for deterministic
methods and ``(lead_time, member, y, x)`` for ensembles, the input grid's projection
coordinates, 2-D ``lat``/``lon`` and CF ``crs`` variable, and ``init_time`` / ``valid_time``.
The reported compute time covers motion estimation and extrapolation (the model), not reading
the files or writing the store.

Ensembles are streamed to the store (:attr:`~engine.jobs.runner.JobOutput.blocks`): each chunk of
members the model computes (:meth:`~engine.models.nowcast.Steps.iter_members`) is written into
the run store before the next is computed, so a job holds one chunk of members (sized by the
model's memory budget) and its inputs, however many members are asked for; the store is the
same, value for value, as one written from the whole ensemble. Progress advances per chunk.

Inputs are checked before any model runs (:func:`load_frames`), each with a one-line
:class:`~engine.errors.WxError` naming what is wrong:

* frames may be given in any order: they are sorted by time, and the last is the start time;
* fewer frames than the method needs, or files on different grids, are errors;
* the time step must be constant: a gap (a missing frame) or two files at one time is an error
  naming the times, never resampled silently (the motion is in pixels per step);
* a frame in which every pixel is missing (NaN) is an error naming its time and file: motion
  from it would silently be zero and a forecast from it all NaN. Partly missing frames are
  normal (radar range, a radar down): the forecast is NaN where no upstream data exists;
* frames without rain (all 0) are valid: the motion is zero and the nowcast is 0 mm h-1
  everywhere the input has data, for every method.

Public API: ``NowcastSpec``, ``run_nowcast``, ``load_frames``, ``select_frames``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
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
from engine.storage.zarr_store import Block

#: Methods and their defaults; the method classes are imported lazily (torch) in the job.
METHODS: tuple[str, ...] = ("extrapolation", "steps", "persistence")
#: Frames each method needs (motion needs a pair; AR(2) needs three), without importing torch.
MIN_FRAMES: dict[str, int] = {"extrapolation": 2, "steps": 3, "persistence": 1}
DEFAULT_MEMBERS = 20
#: Dims of ``precip_rate`` in a deterministic and in an ensemble nowcast store.
DIMS: tuple[str, ...] = ("lead_time", "y", "x")
ENSEMBLE_DIMS: tuple[str, ...] = ("lead_time", "member", "y", "x")


@dataclass(frozen=True)
class NowcastSpec(JobSpec):
    """A radar nowcast.

    Attributes
    ----------
    inputs : tuple of str
        Radar files (any format :func:`engine.readers.open_many` reads into ``precip_rate``),
        at a constant time step, in any order; the latest one is the start time.
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


def _fmt_time(t: np.datetime64) -> str:
    """ISO time to the minute (radar frames are on whole minutes), to the second otherwise."""
    seconds = np.asarray(t, dtype="datetime64[s]")
    if seconds == seconds.astype("datetime64[m]"):
        return str(np.datetime_as_string(seconds, unit="m"))
    return str(np.datetime_as_string(seconds, unit="s"))


def _fmt_step(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def _files_at(paths: Sequence[str | Path], when: np.datetime64) -> str:
    """Names of the input files whose frame is at ``when`` (re-reads them: error path only).

    :func:`engine.readers.open_many` sorts the frames by time and keeps no per-frame file name,
    so the files behind a bad frame are found again by their times for the message.
    """
    from engine.readers import open_any

    names = [Path(str(p)).name for p in paths if when in open_any(p, variables=["precip_rate"])["time"].values]
    return ", ".join(names) or "?"


#: Frames :func:`select_frames` decoded and kept, by path, with the file's (size, mtime) when
#: read: :func:`load_frames` takes them from here instead of decoding the files a second time.
#: Refilled by each selection and emptied by the load that follows it; a job run in another
#: process (a distributed executor) finds it empty and reads its files once there.
_SELECTED: dict[Path, tuple[tuple[int, int], xr.Dataset]] = {}
_FRAME_VARIABLES = ["precip_rate"]


def _stat_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def select_frames(
    paths: Sequence[str | Path], *, init: np.datetime64 | str | None = None, last: int | None = None
) -> list[Path]:
    """The input files of a nowcast started at ``init``, oldest first.

    Reads each file's frame time, sorts the files by it, drops those after ``init`` and keeps
    the ``last`` ones. This is what lets a user start a nowcast inside a sample event
    (``--input mch-2015-05-15 --init 2015-05-15T16:30``) and verify it against the later frames.
    Each file is decoded once: the frames kept are handed to the :func:`load_frames` that
    follows in this process (see ``_SELECTED``); at most the frames kept (and, with ``last``,
    one more) are held in memory at a time, so a long MRMS sequence stays cheap.

    Raises
    ------
    JobError
        ``init`` is not a time, or no frame is at or before it.
    """
    from engine.sources import resolve

    t0: np.datetime64 | None = None
    if init is not None:
        try:
            t0 = np.datetime64(str(init), "ns")
        except ValueError as err:
            raise JobError(f"--init {init!r}: not a time (expected e.g. 2015-05-15T16:30)") from err
    _SELECTED.clear()
    first: np.datetime64 | None = None
    kept: list[tuple[np.datetime64, Path, tuple[int, int], xr.Dataset]] = []
    for path in resolve([str(p) for p in paths], None, lambda run_id: None).paths:
        key = _stat_key(path)
        frame = resolve(str(path), None, lambda run_id: None).open(variables=_FRAME_VARIABLES)
        t = frame["time"].values.max()
        first = t if first is None or t < first else first
        if t0 is not None and t > t0:
            continue  # after the start time: dropped at once
        kept.append((t, path, key, frame))
        if last is not None and len(kept) > last:
            kept.sort(key=lambda item: (item[0], item[1]))
            del kept[0]  # the oldest frame kept is one too many
    if t0 is not None and not kept:
        raise JobError(f"--init {init}: no input frame at or before it (the first is at {_fmt_time(first) if first is not None else '?'})")
    kept.sort(key=lambda item: (item[0], item[1]))
    for _, path, key, frame in kept:
        _SELECTED[path] = (key, frame)
    return [path for _, path, _, _ in kept]


def _check_time_steps(paths: Sequence[str | Path], times: np.ndarray) -> None:
    """Raise a :class:`JobError` naming the first duplicate time or irregular step."""
    steps = np.diff(times).astype("timedelta64[s]").astype(np.int64)
    same = np.flatnonzero(steps == 0)
    if same.size:
        t = times[same[0]]
        raise JobError(f"--input: two frames at {_fmt_time(t)} ({_files_at(paths, t)}); give each time once")
    values, counts = np.unique(steps, return_counts=True)
    if values.size == 1:
        return
    # The usual step is the most frequent one (the smallest on a tie): a missing frame shows up
    # as one longer step between otherwise regular frames, and that gap is what to name.
    usual = int(values[np.argmax(counts)])
    odd = np.flatnonzero(steps != usual)
    i = int(odd[0])
    more = f" (and {odd.size - 1} more irregular step{'s' if odd.size > 2 else ''})" if odd.size > 1 else ""
    raise JobError(
        f"--input: frames must be at one time step: {_fmt_time(times[i])} -> {_fmt_time(times[i + 1])} is "
        f"{_fmt_step(int(steps[i]))} where the other steps are {_fmt_step(usual)}{more}; "
        "a frame is missing or extra (frames are not resampled)"
    )


def load_frames(paths: Sequence[str | Path], min_frames: int, method: str) -> xr.Dataset:
    """Read radar frames into one ``precip_rate (time, y, x)`` dataset and check them.

    Parameters
    ----------
    paths : sequence of str or Path
        Radar files, one or more frames each, in any order (the frames are sorted by time).
    min_frames : int
        Frames the method needs.
    method : str
        Method name, for the messages.

    Returns
    -------
    xarray.Dataset
        ``precip_rate`` on ``(time, y, x)``, oldest first, at one constant time step.

    Raises
    ------
    ReaderError
        No files, files on different grids, no ``precip_rate`` (from the readers).
    JobError
        Fewer frames than ``method`` needs; two frames at one time or an irregular time step
        (naming the times); a frame in which every pixel is missing (naming its time and file).
    """
    from engine.sources import resolve

    source = resolve([str(p) for p in paths], None, lambda run_id: None)
    # Frames select_frames already decoded (same file, unchanged) are not read again.
    selected = {p: _SELECTED.pop(p) for p in source.paths if p in _SELECTED}
    _SELECTED.clear()
    opened = {p: frame for p, (key, frame) in selected.items() if _stat_key(p) == key}
    ds = source.open(variables=_FRAME_VARIABLES, opened=opened)
    if len(source.paths) == 1 and "time" in ds.dims:
        ds = ds.sortby("time")  # as open_many sorts the frames of several files
    rate = ds["precip_rate"]
    if "time" not in rate.dims or rate.ndim != 3:
        raise ReaderError(Path(str(paths[0])), f"expected precip_rate on (time, y, x), got dims {rate.dims}")
    n = rate.sizes["time"]
    if n < min_frames:
        raise JobError(f"--input: method {method} needs at least {min_frames} frames, got {n}")
    times = ds["time"].values
    if n >= 2:
        _check_time_steps(paths, times)
    # A frame with no valid pixel at all would give zero motion or an all-NaN nowcast without
    # complaint (the models reject it too, but only the job knows the file to name).
    has_data = np.isfinite(rate.transpose("time", ...).values).reshape(n, -1).any(axis=1)
    if not has_data.all():
        t = times[int(np.argmin(has_data))]
        raise JobError(
            f"--input: frame at {_fmt_time(t)} ({_files_at(paths, t)}) has no data: every pixel is missing; "
            "remove it (the other frames must still be at one time step)"
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


def _forecast_dataset(forecast: Any, frames: xr.Dataset, lead: np.ndarray, ensemble: bool) -> xr.Dataset:
    """The run's dataset around ``forecast`` (numpy, or a dask placeholder for a streamed ensemble)."""
    t0 = np.datetime64(frames["time"].values[-1], "ns")
    dims = ENSEMBLE_DIMS if ensemble else DIMS
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
    out = xr.Dataset({"precip_rate": (dims, forecast.astype(np.float32, copy=False), attrs)}, coords=coords)
    if "crs" in frames:
        out["crs"] = frames["crs"]
    return out


def _member_blocks(chunks: Iterator[Any], n_members: int, progress: ProgressCallback) -> Iterator[Block]:
    """The ensemble as run-store blocks: ``precip_rate (lead_time, member, y, x)`` per chunk of members.

    ``chunks`` is the model's :meth:`~engine.models.nowcast.Steps.iter_members` on a batch of
    one. Each chunk is computed (in inference mode, entered around the model's step only, never
    across a ``yield``) when the executor asks for the next block, that is once the previous
    block is written and dropped, and progress is reported per chunk written.
    """
    import torch

    while True:
        with torch.inference_mode():
            chunk = next(chunks, None)
        if chunk is None:
            return
        members, rate = chunk
        # (1, chunk, lead, y, x) -> (lead, chunk, y, x), a view: the block is the chunk's only reference.
        block = xr.Dataset({"precip_rate": (ENSEMBLE_DIMS, np.moveaxis(rate[0].cpu().numpy(), 0, 1))})
        del chunk, rate
        yield {"member": members}, block
        del block
        progress(0.2 + 0.8 * members.stop / n_members, f"{members.stop}/{n_members} members written")


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
        ``compute_seconds`` = motion + extrapolation time on the device (synchronised). For the
        ensemble (``steps``), the motion time; the members are computed while the executor
        writes them (``blocks``), which adds their time.
    """
    import torch

    from engine.models.nowcast import nowcast_methods

    method = _build_method(spec)
    cls = nowcast_methods.get(spec.method)
    progress(0.0, f"reading {len(spec.inputs)} frames")
    frames = load_frames(spec.inputs, cls.min_frames, spec.method)
    dt = _time_step(frames)
    lead = (np.arange(1, spec.lead_steps + 1) * dt).astype("timedelta64[ns]")
    device = resolve_device(spec.device)
    data = torch.from_numpy(np.ascontiguousarray(frames["precip_rate"].values, dtype=np.float32)).to(device)
    batch = data.unsqueeze(0)
    progress(0.2, f"{spec.method} on {device} ({data.shape[-2]}x{data.shape[-1]}, {spec.lead_steps} steps)")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    with torch.inference_mode():
        if cls.ensemble:
            # Checks and motion now; the members chunk by chunk while the executor writes them.
            chunks = method.iter_members(batch, spec.lead_steps)
        else:
            out = method(batch, spec.lead_steps)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    blocks = None
    if cls.ensemble:
        import dask.array

        shape = (spec.lead_steps, spec.n_members, *data.shape[-2:])
        placeholder = dask.array.empty(shape, dtype=np.float32, chunks=(-1, 1, -1, -1))
        ds = _forecast_dataset(placeholder, frames, lead, ensemble=True)
        blocks = _member_blocks(chunks, spec.n_members, progress)
    else:
        progress(0.8, "building the run")
        ds = _forecast_dataset(out[0].cpu().numpy(), frames, lead, ensemble=False)  # (lead, y, x)
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
        blocks=blocks,
    )
