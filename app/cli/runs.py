"""``meteolens runs``: list, inspect and delete catalogued runs.

    meteolens runs list [--status S] [--kind K] [--limit N] [--json] [--store DIR]
    meteolens runs show RUN_ID [--json] [--store DIR]
    meteolens runs delete RUN_ID [--yes] [--keep-store] [--store DIR]
    meteolens runs cleanup [--min-age SECONDS] [--store DIR]

``--store`` is the folder holding ``catalog.duckdb`` and ``runs/`` (default: ``METEOLENS_STORE``
or ``./store``). Read-only commands never create a catalogue. Unknown run ids are user errors
(one line on stderr, exit status 2).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from engine.config import Settings
from engine.errors import StorageError
from engine.storage.catalog import STATUSES, Catalog, RunRecord
from engine.storage.jsonable import jsonable
from engine.storage.zarr_store import open_run_store, read_provenance, remove_stale_temporaries


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``runs`` command and its actions to the top-level sub-parsers."""
    p = sub.add_parser("runs", help="list, inspect and delete forecast runs")
    rsub = p.add_subparsers(dest="runs_command", metavar="ACTION", required=True)

    # --store is accepted after the action (``runs list --store X``), where users type it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", type=Path, help="store folder with catalog.duckdb (default: METEOLENS_STORE)")

    ls = rsub.add_parser("list", parents=[common], help="list runs, newest first")
    ls.add_argument("--status", choices=STATUSES, help="only runs with this status")
    ls.add_argument("--kind", help="only runs of this job kind")
    ls.add_argument("--limit", type=int, help="at most this many runs")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=cmd_list)

    show = rsub.add_parser("show", parents=[common], help="catalogue row, provenance and contents of one run")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=cmd_show)

    delete = rsub.add_parser("delete", parents=[common], help="delete a run, its store and its scores")
    delete.add_argument("run_id", metavar="RUN_ID")
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    delete.add_argument("--keep-store", action="store_true", help="remove the catalogue entry but keep the zarr store")
    delete.set_defaults(func=cmd_delete)

    clean = rsub.add_parser(
        "cleanup", parents=[common], help="fail runs abandoned by killed jobs; remove stale temporary stores"
    )
    clean.add_argument(
        "--min-age",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="only remove temporary stores untouched for this long (default: 3600)",
    )
    clean.set_defaults(func=cmd_cleanup)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(store=args.store)


def _open_catalog(settings: Settings) -> Catalog:
    """The existing catalogue (never created by a read-only command)."""
    return Catalog(settings.catalog_path, create=False)


def _cell(value: Any) -> Any:
    """A DataFrame cell as JSON: missing values (NaN, NaT, None) become null."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    return jsonable(value)


def _when(value: Any) -> str:
    """Short UTC time for tables."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def cmd_list(args: argparse.Namespace) -> int:
    """``runs list``: a table (or JSON) of catalogued runs, newest first; empty if no catalogue."""
    settings = _settings(args)
    if not settings.catalog_path.exists():
        runs = pd.DataFrame(columns=["run_id"])
    else:
        runs = _open_catalog(settings).list_runs(status=args.status, kind=args.kind, limit=args.limit)
    if args.json:
        rows = []
        for rec in runs.to_dict("records"):
            row = {k: _cell(v) for k, v in rec.items()}
            if isinstance(row.get("parameters"), str):
                row["parameters"] = json.loads(row["parameters"])
            rows.append(row)
        json.dump({"catalog": str(settings.catalog_path), "runs": rows}, sys.stdout, indent=1)
        print()
        return 0
    if runs.empty:
        print(f"no runs in {settings.catalog_path}")
        return 0
    header = ("RUN_ID", "STATUS", "KIND", "MODEL", "INIT_TIME", "CREATED", "SECONDS")
    table = [
        (
            str(r.run_id),
            str(r.status),
            str(r.kind),
            str(r.model),
            _when(r.init_time),
            _when(r.created),
            "-" if pd.isna(r.compute_seconds) else f"{r.compute_seconds:.1f}",
        )
        for r in runs.itertuples()
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
    for line in (header, *table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return 0


def _store_summary(record: RunRecord) -> dict[str, Any]:
    """Provenance and contents (dims, variables) of a run's store, or why they are unavailable."""
    if record.path is None:
        return {"path": None, "note": f"no store (run is {record.status})"}
    summary: dict[str, Any] = {"path": str(record.path)}
    try:
        summary["provenance"] = read_provenance(record.path)
        ds = open_run_store(record.path)
    except StorageError as err:
        summary["error"] = str(err)
        return summary
    summary["dims"] = {str(d): int(n) for d, n in ds.sizes.items()}
    summary["coords"] = {str(c): list(map(str, ds[c].dims)) for c in ds.coords}
    summary["variables"] = {
        str(name): {
            "dims": list(map(str, var.dims)),
            "shape": list(var.shape),
            "dtype": str(var.dtype),
            "units": var.attrs.get("units"),
        }
        for name, var in ds.data_vars.items()
    }
    return summary


def cmd_show(args: argparse.Namespace) -> int:
    """``runs show``: the catalogue row, the store's provenance, dims and variables."""
    settings = _settings(args)
    record = _open_catalog(settings).get_run(args.run_id)
    store = _store_summary(record)
    if args.json:
        json.dump({"run": record.to_dict(), "store": store}, sys.stdout, indent=1)
        print()
        return 0
    row = record.to_dict()
    params = row.pop("parameters")
    width = max(len(k) for k in row)
    for key, value in row.items():
        print(f"{key:<{width}}  {'-' if value is None else value}")
    print(f"{'parameters':<{width}}  {json.dumps(params)}")
    print()
    if store.get("path") is None or "error" in store:
        print(f"store: {store.get('error') or store.get('note')}")
        return 0
    print(f"store: {store['path']}")
    print("  provenance:")
    for key, value in store["provenance"].items():
        shown = json.dumps(value) if isinstance(value, dict | list) else ("-" if value is None else value)
        print(f"    {key}: {shown}")
    print("  dims: " + ", ".join(f"{d}={n}" for d, n in store["dims"].items()))
    print("  variables:")
    for name, var in store["variables"].items():
        units = f" [{var['units']}]" if var.get("units") else ""
        print(f"    {name} ({', '.join(var['dims'])}) {var['dtype']}{units}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """``runs delete``: remove a run after confirmation (``--yes`` where stdin is not a terminal).

    Returns 0 when deleted, 1 when the user declined, 2 when confirmation was impossible.
    """
    settings = _settings(args)
    catalog = _open_catalog(settings)
    record = catalog.get_run(args.run_id)  # unknown ids fail here, before any question is asked
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                f"meteolens: error: refusing to delete run {record.run_id} without --yes (stdin is not a terminal)",
                file=sys.stderr,
            )
            return 2
        answer = input(f"Delete run {record.run_id} ({record.status}) and its store and scores? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted")
            return 1
    catalog.delete_run(record.run_id, delete_store=not args.keep_store)
    kept = " (store kept)" if args.keep_store and record.path else ""
    print(f"deleted run {record.run_id}{kept}")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    """``runs cleanup``: mark runs of dead processes failed and delete stale temporary stores.

    Both are left behind only by processes killed outright (SIGKILL, out of memory); runs of
    live processes and temporary stores still being written are never touched.
    """
    settings = _settings(args)
    abandoned = _open_catalog(settings).fail_abandoned_runs() if settings.catalog_path.exists() else []
    removed = remove_stale_temporaries(settings.runs_dir, min_age_s=args.min_age)
    for run_id in abandoned:
        print(f"marked failed (process gone): {run_id}")
    for path in removed:
        print(f"removed stale temporary store: {path}")
    if not abandoned and not removed:
        print("nothing to clean up")
    return 0
