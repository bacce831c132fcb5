"""``meteolens verify``: score a catalogued run against observations, analyses or another run.

    meteolens verify --run ID --against DATASET|RUN|FILES... [--variable NAME]
                     [--metrics NAME ...] [--thresholds T ...] [--windows N|Xkm ...]
                     [--climatology DATASET|FILE] [--time-tolerance DURATION] [--no-persistence]
                     [--store DIR] [--json]

The work is :func:`verification.pipeline.verify_run`: frames are matched by valid time, scores
go to the catalogue's ``scores`` table, and the persistence baseline is stored as the run
``<ID>.persistence`` (see that module). The scores are printed as one table per run (rows:
metric, threshold and FSS window; columns: lead time); ``--json`` prints an object with
``run_id``, ``reference`` and the scores as records instead.

``--windows`` takes FSS windows in grid points (``5``) or in km (``5km``); km are converted with
the run's grid spacing to the nearest odd number of points. ``--thresholds`` and ``--windows``
also accept comma-separated lists. ``--time-tolerance`` (``30min``, ``1h``, ``PT30M``; default 0,
an exact match) lets each valid time use the nearest reference time within it, per station for
station references (e.g. ``30min`` for METAR / ASOS reports at hh:53); see
:attr:`verification.pipeline.VerifyOptions.time_tolerance`. Bad values are user errors: one
line, exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from engine.config import Settings
from engine.storage.catalog import Catalog
from verification.pipeline import (
    METRICS,
    VerificationError,
    VerificationResult,
    VerifyOptions,
    parse_thresholds,
    parse_time_tolerance,
    run_grid_spacing_km,
    summary_table,
    verify_run,
    windows_from_km,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``verify`` sub-command."""
    p = subparsers.add_parser(
        "verify",
        help="score a run against observations, an analysis or another run",
        description="Verify a catalogued run; scores are written to the catalogue and printed.",
    )
    p.add_argument("--run", required=True, metavar="ID", help="the run to verify")
    p.add_argument(
        "--against",
        required=True,
        nargs="+",
        metavar="DATASET|RUN|FILES",
        help="sample dataset name, run id, or files / globs / folders of the reference",
    )
    p.add_argument("--variable", metavar="NAME", help="variable to verify (default: the run's first forecast variable)")
    p.add_argument("--metrics", nargs="+", metavar="NAME", help=f"metrics (default per case): {', '.join(METRICS)}")
    p.add_argument("--thresholds", nargs="+", metavar="T", help="event thresholds in the variable's units")
    p.add_argument(
        "--windows", nargs="+", metavar="N|Xkm", help="FSS windows in grid points, or in km with a 'km' suffix"
    )
    p.add_argument(
        "--climatology", metavar="DATASET|FILE", help="climatology of the ACC (default: era-interim-climatology)"
    )
    p.add_argument(
        "--time-tolerance",
        metavar="DURATION",
        help="use the reference time nearest each valid time within DURATION (e.g. 30min, 1h; "
        "per station for station references); default 0: exact match",
    )
    p.add_argument("--no-persistence", action="store_true", help="do not score the persistence baseline")
    p.add_argument("--store", type=Path, help="store folder (default: METEOLENS_STORE or ./store)")
    p.add_argument("--json", action="store_true", help="print run_id, reference and the scores as JSON")
    p.set_defaults(func=run)


def _split(values: list[str] | None) -> list[str] | None:
    """``["1", "5,10"]`` -> ``["1", "5", "10"]``; ``None`` stays ``None``."""
    if values is None:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def parse_windows(values: list[str], spacing_km: Any) -> tuple[int, ...]:
    """Windows as typed (``"5"`` grid points, ``"5km"`` kilometres) to grid points.

    Parameters
    ----------
    values : list of str
        As typed after ``--windows``.
    spacing_km : callable
        Returns the run's grid spacing in km; called only when a value is in km.

    Raises
    ------
    VerificationError
        A value is neither a whole number of points nor a number of km.
    """
    out: list[int] = []
    for text in values:
        if text.lower().endswith("km"):
            try:
                km = float(text[:-2])
            except ValueError:
                raise VerificationError(f"--windows: {text!r} is not a size in km (e.g. 10km)") from None
            out.extend(windows_from_km([km], spacing_km()))
            continue
        try:
            n = float(text)
        except ValueError:
            raise VerificationError(f"--windows: {text!r} is not a number of grid points or a size in km") from None
        if not n.is_integer() or n < 1:
            raise VerificationError(f"--windows: {text!r} is not a positive whole number of grid points")
        out.append(int(n))
    return tuple(dict.fromkeys(out))


def _lead_label(minutes: float) -> str:
    return f"+{minutes:g} min" if minutes < 120 else f"+{minutes / 60:g} h"


def format_scores(result: VerificationResult) -> str:
    """The scores as text, for the terminal.

    Parameters
    ----------
    result : VerificationResult
        What :func:`~verification.pipeline.verify_run` returned.

    Returns
    -------
    str
        A title line, then one table per run (the forecast, then its persistence baseline):
        rows ``metric[@threshold[/window]]``, columns lead times; then the number of stations
        scored and the pipeline's notes.
    """
    blocks = [f"{result.run_id} against {result.reference} ({result.variable}, {result.case})"]
    runs = [result.run_id] + ([result.baseline_run_id] if result.baseline_run_id else [])
    for rid in runs:
        part = result.scores[result.scores["run_id"] == rid]
        table = summary_table(part)
        if table.empty:
            continue
        shown = table.T
        shown.columns = [_lead_label(m) for m in shown.columns]
        shown.index.name = None
        title = "persistence baseline" if rid != result.run_id else "forecast"
        blocks.append(f"\n{title} ({rid}):\n" + shown.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-"))
    stations = result.scores[result.scores["region"].notna()]
    if len(stations):
        blocks.append(f"\n{stations['region'].nunique()} stations scored (region station:<id>)")
    blocks.extend(f"note: {n}" for n in result.notes)
    return "\n".join(blocks)


def run(args: argparse.Namespace) -> int:
    """Execute ``meteolens verify``."""
    settings = Settings.from_env(store=args.store)
    # Validate everything typed before touching data, so a typo costs nothing.
    options = VerifyOptions(
        metrics=tuple(_split(args.metrics) or ()) or None,
        thresholds=parse_thresholds(args.thresholds, name="--thresholds") if args.thresholds else None,
        variable=args.variable,
        climatology=args.climatology,
        persistence=not args.no_persistence,
        time_tolerance=parse_time_tolerance(args.time_tolerance, name="--time-tolerance"),
    )
    if not settings.catalog_path.exists():
        raise VerificationError(f"{settings.catalog_path}: no catalogue here (run a forecast first, or pass --store)")
    catalog = Catalog(settings.catalog_path, create=False)
    windows = _split(args.windows)
    if windows:
        spacing = lambda: run_grid_spacing_km(catalog, args.run, args.variable)  # noqa: E731 - deferred: km only
        options = dataclasses.replace(options, windows=parse_windows(windows, spacing))
    result = verify_run(catalog, args.run, args.against, data_root=settings.data_root, options=options)
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=1)
        print()
    else:
        with pd.option_context("display.width", 200, "display.max_columns", 50, "display.max_rows", 500):
            print(format_scores(result))
    return 0
