"""``meteolens forecast global``: a global forecast from an analysis, as a catalogued run.

    meteolens forecast global --init FILE|DATASET [--model NAME|SPEC] [--members all|N]
                              --lead-hours H [--init-time ISO] [--truncation T]
                              [--perturb --seed S] [--device auto|cpu|cuda] [--store DIR] [--json]

``--init`` is an analysis file (anything :func:`engine.readers.open_any` reads, with ``z500``) or a
sample dataset name such as ``era5-ensemble-2017-01``. ``--model`` is ``swm`` (the spectral
shallow-water core, default), ``persistence``, ``climatology`` or the path of a pretrained-model
spec (``.toml``/``.json``; see ``docs/global_models.md``). The run store holds ``z500`` (m2 s-2)
on ``(lead_time, member, lat, lon)`` with ``init_time`` and ``valid_time``; ``--json`` prints
``run_id``, ``path`` and ``compute_seconds``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.cli.progress import TextProgress
from engine.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``forecast`` sub-command with its ``global`` family."""
    p = subparsers.add_parser("forecast", help="run a forecast (global)", description="Run a forecast and store it as a catalogued run.")
    fam = p.add_subparsers(dest="family", metavar="FAMILY", required=True)
    g = fam.add_parser(
        "global",
        help="global 500 hPa forecast: dynamical core, baselines or a pretrained model",
        description="Global forecast from an analysis; writes a catalogued run store.",
    )
    g.add_argument("--init", required=True, metavar="FILE|DATASET", help="analysis file or sample dataset name")
    g.add_argument("--model", default="swm", metavar="NAME|SPEC", help="swm (default), persistence, climatology, or a model spec file")
    g.add_argument("--members", default="all", metavar="all|N", help="analysis members to run (default all); ensemble size with --perturb")
    g.add_argument("--lead-hours", required=True, type=int, metavar="H", help="forecast length in hours (multiple of the model step)")
    g.add_argument("--init-time", metavar="ISO", help="analysis time to start from (default: the first in the file)")
    g.add_argument("--truncation", type=int, default=42, metavar="T", help="spectral truncation of the dynamical core (default 42)")
    g.add_argument("--mean-depth", type=float, default=8000.0, metavar="M", help="equivalent depth in metres (default 8000)")
    g.add_argument("--no-forcing", action="store_true", help="switch off the climatological forcing of the dynamical core")
    g.add_argument("--perturb", action="store_true", help="ensemble from seeded balanced perturbations of the first member")
    g.add_argument("--seed", type=int, default=0, help="perturbation seed (default 0)")
    g.add_argument("--climatology", metavar="FILE", help="monthly-mean climatology (default: ERA-Interim sample file)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--store", type=Path, help="store folder (default: METEOLENS_STORE or ./store)")
    g.add_argument("--json", action="store_true", help="print run_id, path and compute_seconds as JSON")
    g.set_defaults(func=run_global)


def run_global(args: argparse.Namespace) -> int:
    """Execute ``meteolens forecast global``."""
    from engine.datasets import resolve_inputs
    from engine.jobs.global_job import GlobalForecastSpec
    from engine.jobs.runner import LocalExecutor

    settings = Settings.from_env(store=args.store)
    inputs = tuple(str(p) for p in resolve_inputs(args.init, settings.data_root))
    spec = GlobalForecastSpec(
        init=inputs,
        model=args.model,
        members=str(args.members),
        lead_hours=args.lead_hours,
        init_time=args.init_time,
        truncation=args.truncation,
        mean_depth=args.mean_depth,
        forcing="none" if args.no_forcing else "climatology",
        perturbations=args.perturb,
        seed=args.seed,
        climatology=args.climatology,
        device=args.device,
    )
    result = LocalExecutor(settings).submit(spec, progress=None if args.json else TextProgress())
    if args.json:
        print(json.dumps({"run_id": result.run_id, "path": str(result.path), "compute_seconds": result.compute_seconds}))
    else:
        print(f"{result.run_id}: {result.path} ({result.compute_seconds:.1f} s)")
    return 0
