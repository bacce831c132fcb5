"""Peak memory of a STEPS nowcast job: members streamed to the run store vs the whole ensemble in memory.

Each case is one STEPS nowcast job run by :class:`~engine.jobs.runner.LocalExecutor` in a fresh
Python process; the process reports its peak resident memory (``getrusage`` ``ru_maxrss``) once
the run store is written. Two peers:

``stream``
    The job as it is: each chunk of members the model computes
    (:meth:`~engine.models.nowcast.Steps.iter_members`) is written into the run store before
    the next is computed.
``collect``
    The same job handed the whole ensemble at once (every member chunk computed, then joined
    into one tensor, the model's forward) and writing it as one block: what the job did before
    it streamed. The job before streaming also made one more full copy (``astype``), so its peak
    was higher still than this peer's.

Inputs are three consecutive frames of a sample radar event (``--grid``), cropped once by this
script to the rainiest ``--crop`` x ``--crop`` window of the last frame and cached in a small
zarr file that the jobs read instead of the radar files: decoding the full MRMS GRIB files
alone peaks at about 1.7 GiB, which would hide what is measured. A full-size MRMS ensemble
(7000 x 3500) on a 2-core CPU takes about 15 s per member and lead step; with ``--crop 2048`` it
takes about 2.4 s. The member chunk is the model's (sized by its 4 GiB working-memory budget)
unless ``--member-chunk`` is given; on the full MRMS grid that budget gives one member per
chunk for 3 lead steps or more, which ``--member-chunk 1`` reproduces on a crop.

Usage::

    python benchmarks/bench_nowcast_memory.py [--grid mrms|mch] [--crop 2048] [--members 4 16]
        [--steps 12] [--member-chunk 1] [--peers collect stream] [--threads 2]

The printed peak is of the whole process (Python, torch, the inputs and the job). Memory on a
shared machine is steadier than time, but the numbers are indicative only.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

GRIDS = {"mch": ("mch-2015-05-15", 20), "mrms": ("mrms-2019-06-10", 10)}
PEERS = ("collect", "stream")


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, GiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def cache_frames(grid: str, crop: int | None, path: Path) -> None:
    """Read three frames of ``grid``, crop them to the rainiest ``crop``-square window, cache them as zarr."""
    from engine.config import Settings
    from engine.datasets import get
    from engine.jobs.nowcast_job import load_frames

    data_root = Settings.from_env().data_root
    if data_root is None:
        raise SystemExit("sample data not found: set METEOLENS_DATA")
    name, start = GRIDS[grid]
    frames = load_frames(get(name).paths(data_root)[start : start + 3], 3, "steps")
    ny, nx = frames.sizes["y"], frames.sizes["x"]
    if crop and crop < max(ny, nx):
        size_y, size_x = min(crop, ny), min(crop, nx)
        wet = np.nan_to_num(frames["precip_rate"].values[-1]) >= 0.1
        stride = max(1, crop // 4)
        y0, x0 = max(
            ((y, x) for y in range(0, ny - size_y + 1, stride) for x in range(0, nx - size_x + 1, stride)),
            key=lambda yx: wet[yx[0] : yx[0] + size_y, yx[1] : yx[1] + size_x].sum(),
        )
        frames = frames.isel(y=slice(y0, y0 + size_y), x=slice(x0, x0 + size_x))
    frames.drop_encoding().to_zarr(path, mode="w", zarr_format=3, consolidated=False)
    print(json.dumps({"ny": frames.sizes["y"], "nx": frames.sizes["x"]}))


def child(args: argparse.Namespace) -> None:
    """Run one job in this (fresh) process and print its numbers as one JSON line."""
    import torch
    import xarray as xr

    from engine.config import Settings
    from engine.jobs import nowcast_job
    from engine.jobs.nowcast_job import NowcastSpec
    from engine.jobs.runner import LocalExecutor
    from engine.models.nowcast import Steps, StepsParams
    from engine.models.nowcast.steps import concat_members

    torch.set_num_threads(args.threads)
    frames = xr.open_zarr(args.frames, consolidated=False).load()
    nowcast_job.load_frames = lambda paths, min_frames, method: frames  # the cached crop, not the radar files
    params = StepsParams(member_chunk=args.member_chunk)
    nowcast_job._build_method = lambda spec: Steps(n_members=spec.n_members, seed=spec.seed, params=params)
    if args.child == "collect":
        streamed = Steps.iter_members

        def whole_ensemble(self: Steps, frames: torch.Tensor, n_steps: int, **kwargs: object) -> Iterator[Any]:
            return iter([(slice(0, self.n_members), concat_members(streamed(self, frames, n_steps, **kwargs)))])

        Steps.iter_members = whole_ensemble  # type: ignore[method-assign]
    baseline = peak_rss_gib()
    spec = NowcastSpec(
        inputs=(str(args.frames),), method="steps", members=args.members[0], lead_steps=args.steps, seed=1, device="cpu"
    )
    started = time.perf_counter()
    result = LocalExecutor(Settings(data_root=None, store_root=Path(args.store))).submit(spec)
    print(
        json.dumps(
            {
                "peak_gib": peak_rss_gib(),
                "baseline_gib": baseline,
                "wall_s": time.perf_counter() - started,
                "compute_s": result.compute_seconds,
            }
        )
    )


def in_child(*argv: str) -> dict[str, float]:
    """Run this script with ``argv`` in a fresh process and return the JSON line it prints last.

    Everything that needs memory runs in children: a child's peak RSS counts the pages of the
    parent it was forked from, so the parent must stay small (it never reads the radar files).
    """
    out = subprocess.run([sys.executable, __file__, *argv], check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=sorted(GRIDS), default="mrms")
    parser.add_argument("--crop", type=int, default=2048, help="side of the square window (0: the whole grid)")
    parser.add_argument("--members", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--member-chunk", type=int, default=None)
    parser.add_argument("--peers", choices=PEERS, nargs="+", default=list(PEERS))
    parser.add_argument("--threads", type=int, default=2)
    # Internal: the steps run in fresh processes.
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=PEERS, help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        cache_frames(args.grid, args.crop, args.frames)
        return
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-nowcast-memory-") as tmp:
        frames = Path(tmp) / "frames.zarr"
        grid = in_child("--prepare", "--grid", args.grid, "--crop", str(args.crop), "--frames", str(frames))
        ny, nx = int(grid["ny"]), int(grid["nx"])
        chunk = args.member_chunk or "model default (4 GiB budget)"
        print(f"grid {args.grid} {ny} x {nx}, {args.steps} lead steps, member chunk {chunk}, {args.threads} threads")
        print(f"{'peer':8} {'members':>7} {'ensemble GiB':>12} {'peak RSS GiB':>12} {'before job':>10} {'wall s':>7}")
        options = ["--steps", str(args.steps), "--threads", str(args.threads), "--frames", str(frames)]
        if args.member_chunk:
            options += ["--member-chunk", str(args.member_chunk)]
        for members in args.members:
            for peer in args.peers:
                store = Path(tmp) / f"store-{peer}-{members}"
                r = in_child("--child", peer, "--members", str(members), "--store", str(store), *options)
                size = members * args.steps * ny * nx * 4 / 2**30
                print(
                    f"{peer:8} {members:7d} {size:12.2f} {r['peak_gib']:12.2f} {r['baseline_gib']:10.2f} {r['wall_s']:7.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
