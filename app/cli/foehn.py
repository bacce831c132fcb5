"""``meteolens foehn``: objective Foehn diagnosis from a valley/crest station pair.

Reads two station files (any format :func:`engine.readers.open_any` knows, e.g. the foehnix CSV
layout ``timestamp;dd;ff;rh;t``), fits the foehnix mixture model
(:func:`verification.foehn.fit_foehn`) and writes the hourly Foehn probability as CSV (columns
``time``, ``probability`` and diagnostics), atomically. ``--events`` also writes the event list.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path

import pandas as pd

from engine.errors import WxError
from engine.readers import open_any
from verification.foehn import FoehnError, fit_foehn, foehn_events, foehn_statistics, station_frame

#: Columns written to the output CSV, in this order (those present).
OUTPUT_COLUMNS: tuple[str, ...] = (
    "probability", "prior", "in_sector", "dtheta", "theta_valley", "theta_crest",
    "t2m", "wind_dir", "wind_speed", "rh2m",
    "crest_t2m", "crest_wind_dir", "crest_wind_speed", "crest_rh2m",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``foehn`` sub-command."""
    p = subparsers.add_parser(
        "foehn",
        help="diagnose Foehn from a valley and a crest station (foehnix mixture model)",
        description=(
            "Fit a two-component Gaussian mixture to the crest-valley potential temperature difference, "
            "with a logistic concomitant model and wind-direction sectors (Plavcan et al. 2014; foehnix)."
        ),
    )
    p.add_argument("--valley", required=True, type=Path, help="valley station file (e.g. ellboegen.csv)")
    p.add_argument("--crest", required=True, type=Path, help="crest station file (e.g. sattelberg.csv)")
    p.add_argument("--valley-elevation", required=True, type=float, metavar="M", help="valley station height (m)")
    p.add_argument("--crest-elevation", required=True, type=float, metavar="M", help="crest station height (m)")
    p.add_argument(
        "--concomitants", default="", metavar="LIST",
        help="comma-separated concomitants of the logistic model, e.g. rh,ff (valley) or crest_ff",
    )
    p.add_argument("--valley-sector", nargs=2, type=float, metavar=("FROM", "TO"),
                   help="valley wind sector in degrees, clockwise (e.g. 43 223)")
    p.add_argument("--crest-sector", nargs=2, type=float, metavar=("FROM", "TO"),
                   help="crest wind sector in degrees, clockwise (e.g. 90 270)")
    p.add_argument("--start", help="first time to use (ISO date), optional")
    p.add_argument("--end", help="last time to use (ISO date), optional")
    p.add_argument("--out", required=True, type=Path, help="output CSV of hourly probabilities")
    p.add_argument("--events", type=Path, help="also write the Foehn event list to this CSV")
    p.add_argument("--json", action="store_true", help="print the fit summary as JSON")
    p.set_defaults(func=run)


def _load(path: Path, start: str | None, end: str | None) -> pd.DataFrame:
    frame = station_frame(open_any(path), name=str(path))
    if start or end:
        frame = frame.loc[start:end]
        if frame.empty:
            raise FoehnError(f"{path}: no data between {start or 'the start'} and {end or 'the end'}")
    return frame


def write_csv_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` through a temporary file in the same folder and a rename.

    A reader never sees a half-written file, and an interrupted run leaves the old file intact.
    """
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise WxError(f"--out {path}: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            frame.to_csv(f, index=False, date_format="%Y-%m-%dT%H:%M:%SZ", float_format="%.6g")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def event_summary(events: pd.DataFrame) -> dict[str, float | int | str | None]:
    """Headline numbers of a Foehn event list (:func:`verification.foehn.foehn_events`).

    Returns
    -------
    dict
        ``count``; ``median_duration_h``, ``mean_duration_h``, ``events_6h_or_longer``;
        ``longest_start`` (ISO time) and ``longest_duration_h``; ``median_temperature_rise_K``
        (valley warming at onset, over events whose preceding hour is known). ``None`` where
        there are no events.
    """
    if events.empty:
        return {"count": 0, "median_duration_h": None, "mean_duration_h": None, "events_6h_or_longer": 0,
                "longest_start": None, "longest_duration_h": None, "median_temperature_rise_K": None}
    longest = events.loc[events["duration_h"].idxmax()]
    rise = events["temperature_rise"].dropna()
    return {
        "count": len(events),
        "median_duration_h": float(events["duration_h"].median()),
        "mean_duration_h": float(events["duration_h"].mean()),
        "events_6h_or_longer": int((events["duration_h"] >= 6).sum()),
        "longest_start": pd.Timestamp(longest["start"]).isoformat(),
        "longest_duration_h": float(longest["duration_h"]),
        "median_temperature_rise_K": float(rise.median()) if len(rise) else None,
    }


def run(args: argparse.Namespace) -> int:
    """Execute ``meteolens foehn``."""
    concomitants = [c for c in args.concomitants.split(",") if c.strip()]
    valley = _load(args.valley, args.start, args.end)
    crest = _load(args.crest, args.start, args.end)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        fit = fit_foehn(
            valley, crest,
            valley_elevation=args.valley_elevation, crest_elevation=args.crest_elevation,
            concomitants=concomitants,
            valley_sector=tuple(args.valley_sector) if args.valley_sector else None,
            crest_sector=tuple(args.crest_sector) if args.crest_sector else None,
            names=(str(args.valley), str(args.crest)),
        )
    notes = [str(w.message) for w in caught]
    for note in notes:
        print(f"meteolens: note: {note}", file=sys.stderr)

    hourly = fit.hourly
    table = hourly[[c for c in OUTPUT_COLUMNS if c in hourly.columns]].reset_index()
    write_csv_atomic(table, args.out)
    events = foehn_events(fit)
    if args.events:
        write_csv_atomic(events, args.events)

    summary = fit.summary()
    summary.update(
        out=str(args.out),
        events_file=str(args.events) if args.events else None,
        n_events=len(events),
        events=event_summary(events),
        notes=notes,
        monthly_frequency={int(k): float(v) for k, v in foehn_statistics(fit)["month"]["frequency"].items()},
    )
    if args.json:
        print(json.dumps(_jsonable(summary), indent=2, default=str))
    else:
        print(
            f"Foehn fit {'converged' if fit.converged else 'did NOT converge'} after {fit.n_iter} iterations "
            f"on {fit.n_obs} hours: Foehn dtheta {fit.mu['foehn']:.2f} ± {fit.sigma['foehn']:.2f} K, "
            f"no Foehn {fit.mu['no_foehn']:.2f} ± {fit.sigma['no_foehn']:.2f} K; "
            f"{summary['foehn_hours']} Foehn hours in {len(events)} events → {args.out}"
        )
        h = fit.hours
        print(
            f"hours: {h['valley']} valley and {h['crest']} crest records, {h['common']} in common, "
            f"{h['incomplete']} with missing values, {h['outside_sector']} outside the wind sectors (p = 0); "
            f"Foehn on {100 * fit.foehn_frequency:.1f} % of the {h['valid']} valid hours "
            f"(mean probability {100 * fit.mean_probability:.1f} %)"
        )
    return 0
