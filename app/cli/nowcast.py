"""``meteolens nowcast``: a radar nowcast from the last frames, as a catalogued run.

    meteolens nowcast --input FILES|GLOB|DIR|DATASET --method extrapolation|steps|persistence
                      --lead-steps N [--members M] [--seed S] [--device auto|cpu|cuda]
                      [--last K] [--store DIR] [--json]

``--input`` takes files, glob patterns, a folder or a sample dataset name (``mch-2015-05-15``);
the nowcast starts at the last frame, and ``--last K`` keeps only the last K frames (a dataset
holds a whole event). The store holds ``precip_rate`` (mm h-1) on ``(lead_time, y, x)``
(``(lead_time, member, y, x)`` for ``steps``); ``--json`` prints ``run_id``, ``path`` and
``compute_seconds`` (motion and extrapolation only).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.cli.progress import TextProgress
from engine.config import Settings
from engine.errors import JobError

METHODS = ("extrapolation", "steps", "persistence")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``nowcast`` sub-command."""
    p = subparsers.add_parser(
        "nowcast",
        help="radar nowcast: optical flow + extrapolation, STEPS ensemble or persistence",
        description="Nowcast rain from the last radar frames; writes a catalogued run store.",
    )
    p.add_argument(
        "--input", required=True, nargs="+", metavar="FILES|GLOB|DIR|DATASET", help="radar frames (any order)"
    )
    p.add_argument("--method", default="extrapolation", choices=METHODS, help="nowcast method (default extrapolation)")
    p.add_argument("--lead-steps", required=True, type=int, metavar="N", help="lead steps at the input time step")
    p.add_argument("--members", type=int, metavar="M", help="ensemble size for steps (default 20)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the steps ensemble (default 0)")
    p.add_argument("--init", metavar="TIME", help="start time: use only frames at or before it (e.g. 2015-05-15T16:30)")
    p.add_argument("--last", type=int, metavar="K", help="use only the last K input frames (default: all)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--store", type=Path, help="store folder (default: METEOLENS_STORE or ./store)")
    p.add_argument("--json", action="store_true", help="print run_id, path and compute_seconds as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``meteolens nowcast``."""
    from engine.datasets import resolve_inputs
    from engine.jobs.nowcast_job import MIN_FRAMES, NowcastSpec, select_frames
    from engine.jobs.runner import LocalExecutor

    if args.lead_steps < 1:
        raise JobError(f"--lead-steps {args.lead_steps}: expected a positive number of steps")
    if args.members is not None and args.members < 1:
        raise JobError(f"--members {args.members}: expected at least 1 member")
    if args.members is not None and args.members != 1 and args.method != "steps":
        raise JobError(f"--members {args.members}: only --method steps makes ensembles")
    if args.last is not None and args.last < 1:
        raise JobError(f"--last {args.last}: expected at least 1 frame")
    settings = Settings.from_env(store=args.store)
    inputs = resolve_inputs(args.input, settings.data_root)
    if args.init is not None or args.last is not None:
        # by frame time, not by the order the files were given in
        inputs = select_frames(inputs, init=args.init, last=args.last)
    # Radar files hold one frame each; the job checks the frame count again after reading.
    if len(inputs) < MIN_FRAMES[args.method]:
        raise JobError(
            f"--input: method {args.method} needs at least {MIN_FRAMES[args.method]} frames, got {len(inputs)} file(s)"
        )
    spec = NowcastSpec(
        inputs=tuple(str(p) for p in inputs),
        method=args.method,
        lead_steps=args.lead_steps,
        members=args.members,
        seed=args.seed,
        device=args.device,
    )
    result = LocalExecutor(settings).submit(spec, progress=None if args.json else TextProgress())
    if args.json:
        print(
            json.dumps({"run_id": result.run_id, "path": str(result.path), "compute_seconds": result.compute_seconds})
        )
    else:
        print(f"{result.run_id}: {result.path} ({result.compute_seconds:.2f} s compute)")
    return 0
