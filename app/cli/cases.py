"""``meteolens case``: build a station-comparison case of the regional engine and print its scores.

    meteolens case NAME [--store DIR] [--json]
    meteolens case --list

NAME is a case of :data:`app.cases_regional.CASES` (``wipp-valley-2017-01``,
``front-range-2017-01``). The case's downscaled and bilinear runs, their point forecasts and
station scores go into the store's catalogue (an existing build is completed, not repeated); the
table printed is MAE and bias (K) per station and lead time, downscaled against bilinear.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.cli.progress import TextProgress
from engine.config import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``case`` sub-command."""
    p = subparsers.add_parser(
        "case",
        help="build a station-comparison case of the regional engine (downscaled vs bilinear at stations)",
        description="Downscale the ERA5 sample analyses over a station domain and score them at the stations.",
    )
    p.add_argument("name", nargs="?", help="case name (see --list)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--store", type=Path, help="store folder (default: METEOLENS_STORE or ./store)")
    p.add_argument("--json", action="store_true", help="print the scores and notes as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``meteolens case``."""
    from app.cases_regional import CASES, CaseError, run_case

    if args.list:
        for name, case in CASES.items():
            print(f"{name}: {case.title}")
        return 0
    if not args.name:
        raise CaseError(f"give a case name; available: {', '.join(sorted(CASES))}")
    settings = Settings.from_env(store=args.store)
    result = run_case(args.name, settings, progress=None if args.json else TextProgress())
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    table = result.table.assign(lead_time=result.table["lead_time"].map(_lead_label))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if result.foehn is not None:
        print("\ncrest-valley potential temperature difference (K):")
        print(result.foehn.to_string(float_format=lambda v: f"{v:.2f}"))
    for note in result.notes:
        print(f"note: {note}")
    return 0


def _lead_label(lead: object) -> str:
    """``+12 h`` for a lead time, ``mean`` for the per-station mean row (NaT)."""
    import pandas as pd

    if pd.isna(lead):
        return "mean"
    return f"+{pd.Timedelta(lead) / pd.Timedelta(hours=1):g} h"
