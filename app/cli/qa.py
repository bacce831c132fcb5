"""``meteolens qa``: RadarQA-style quality analysis of a nowcast run.

    meteolens qa --run ID --against DATASET|RUN|FILES... [--store DIR] [--json]

Every forecast frame and the whole sequence are compared with the observed frames at the same
valid times (:func:`verification.pipeline.assess_run`, which uses
:mod:`verification.radar_quality`): ten physical attributes are rated 1-5, an overall grade is
the mean of the ratings, and a written assessment quotes the number behind each rating. The
reports are stored in the catalogue's ``quality_reports`` table. The command prints the ratings
card of the sequence, its assessment and one line per frame; ``--json`` prints the reports.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import pandas as pd

from engine.config import Settings
from engine.storage.catalog import Catalog
from verification.pipeline import QualityResult, VerificationError, assess_run
from verification.radar_quality import ATTRIBUTES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``qa`` sub-command."""
    p = subparsers.add_parser(
        "qa",
        help="quality analysis of a radar nowcast: attribute ratings and a written assessment",
        description="Rate a nowcast run frame by frame and as a sequence against observed radar; store the reports.",
    )
    p.add_argument("--run", required=True, metavar="ID", help="the nowcast run to assess")
    p.add_argument(
        "--against",
        required=True,
        nargs="+",
        metavar="DATASET|RUN|FILES",
        help="observed radar: sample dataset name, run id, or files / globs / folders",
    )
    p.add_argument("--store", type=Path, help="store folder (default: METEOLENS_STORE or ./store)")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.set_defaults(func=run)


def ratings_card(ratings: dict, width: int = 5) -> str:
    """The ratings card: one line per attribute with stars, the rating, the badness and what it measures.

    Parameters
    ----------
    ratings : dict
        ``QualityReport.ratings`` (attribute -> ``{"rating": 1-5 or None, "badness": float, ...}``).
    width : int
        Number of star positions (the best rating).

    Returns
    -------
    str
        Lines in :data:`~verification.radar_quality.ATTRIBUTES` order; ``-----`` marks an
        attribute that could not be rated.
    """
    lines = []
    for name, attr in ATTRIBUTES.items():
        entry = ratings.get(name)
        if entry is None:
            continue
        rating = entry.get("rating")
        stars = "-" * width if rating is None else "*" * int(rating) + "." * (width - int(rating))
        badness = entry.get("badness")
        bad = "" if badness is None or badness != badness else f"badness {badness:.3f}"
        lines.append(
            f"  {name:<13} {stars}  {('' if rating is None else f'{rating}/5'):<4} {bad:<16} {attr.description}"
        )
    return "\n".join(lines)


def format_reports(result: QualityResult) -> str:
    """The text report of ``meteolens qa``.

    Parameters
    ----------
    result : QualityResult
        Sequence and frame reports of one run.

    Returns
    -------
    str
        Grade and ratings card of the sequence, its written assessment (wrapped at 100
        columns), then one line per frame with its grade and two weakest attributes.
    """
    seq = result.sequence
    grade = "-" if seq.grade is None else f"{seq.grade:.1f}/5"
    out = [f"{result.run_id} against {result.reference}: overall grade {grade}", "", ratings_card(seq.ratings), ""]
    out.append(textwrap.fill(seq.text, width=100))
    out.append("")
    out.append("frames:")
    for frame in result.frames:
        lead = "-" if frame.lead_time is None else f"+{pd.Timedelta(frame.lead_time).total_seconds() / 60:g} min"
        g = "-" if frame.grade is None else f"{frame.grade:.1f}"
        worst = sorted(
            ((v["rating"], k) for k, v in frame.ratings.items() if v.get("rating") is not None), key=lambda x: x[0]
        )[:2]
        weak = ", ".join(f"{k} {r}/5" for r, k in worst)
        out.append(f"  {lead:>10}  grade {g:>4}  weakest: {weak}")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    """Execute ``meteolens qa``."""
    settings = Settings.from_env(store=args.store)
    if not settings.catalog_path.exists():
        raise VerificationError(f"{settings.catalog_path}: no catalogue here (run a nowcast first, or pass --store)")
    catalog = Catalog(settings.catalog_path, create=False)
    result = assess_run(catalog, args.run, args.against, data_root=settings.data_root)
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=1)
        print()
    else:
        print(format_reports(result))
    return 0
