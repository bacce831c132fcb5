"""``meteolens data``: list, describe and fetch the sample datasets, and list the file formats.

    meteolens data list [--json]
    meteolens data show NAME_OR_PATH [--format F] [--json]
    meteolens data fetch [NAME ...] [--to DIR] [--mirror URL] [--json]
    meteolens data formats
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import xarray as xr

from engine import datasets
from engine.config import Settings
from engine.errors import ReaderError
from engine.readers import open_any, readers


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list, describe and fetch sample datasets")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    ls = dsub.add_parser("list", help="list every sample dataset")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=cmd_list)

    show = dsub.add_parser("show", help="open a dataset or any supported file and describe it")
    show.add_argument("target", metavar="NAME_OR_PATH")
    show.add_argument("--format", help="reader to use (default: detected); see `meteolens data formats`")
    show.add_argument("--variables", type=lambda s: [v for v in s.split(",") if v],
                      help="comma-separated canonical variables to open (default: all)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=cmd_show)

    fetch = dsub.add_parser("fetch", help="download sample datasets from their public sources")
    fetch.add_argument("names", nargs="*", metavar="NAME", help="datasets (default: all)")
    fetch.add_argument("--to", type=Path, help="data root to fill (default: METEOLENS_DATA or ../shared/data)")
    fetch.add_argument("--mirror", help="base URL of a mirror with the data root's layout")
    fetch.add_argument("--json", action="store_true", help="print JSON")
    fetch.set_defaults(func=cmd_fetch)

    fmts = dsub.add_parser("formats", help="list the supported file formats")
    fmts.set_defaults(func=cmd_formats)


def cmd_list(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    catalogue = list(datasets.load_catalogue().values())
    available = [bool(settings.data_root and ds.paths(settings.data_root)) for ds in catalogue]
    rows = [{**ds.describe(), "available": here} for ds, here in zip(catalogue, available, strict=True)]
    if args.json:
        json.dump({"data_root": str(settings.data_root) if settings.data_root else None, "datasets": rows},
                  sys.stdout, indent=1)
        print()
        return 0
    print(f"data root: {settings.data_root or '(none: set METEOLENS_DATA or run `meteolens data fetch`)'}")
    width = max(len(ds.name) for ds in catalogue)
    for ds, here in zip(catalogue, available, strict=True):
        mark = " " if here else "-"
        variables = ",".join(ds.variables) or "-"
        print(f"{mark} {ds.name:<{width}}  {ds.kind:<11} {variables:<32} {ds.grid}")
    return 0


def _open_for_show(
    target: str, fmt: str | None, variables: list[str] | None, settings: Settings
) -> tuple[dict[str, object], xr.Dataset]:
    path = Path(target).expanduser()
    if path.exists() or target.lower() not in datasets.load_catalogue():
        ds = open_any(path, format=fmt, variables=variables)
        return {"path": str(path), "format": ds.attrs.get("reader", fmt)}, ds
    meta = datasets.get(target)
    files = meta.paths(settings.data_root) if settings.data_root else []
    if not files:
        raise ReaderError(Path(target), f"dataset {target!r} has no files here; run `meteolens data fetch {target}`")
    header: dict[str, object] = {**meta.describe(), "n_files": len(files)}
    if meta.combine == "time" and len(files) > 1:
        # A long radar sequence is many GB in memory: describe the first frame, and the time span
        # from the first and last files.
        ds = open_any(files[0], format=meta.format, variables=variables)
        last = open_any(files[-1], format=meta.format, variables=variables)
        if "time" in ds.coords and "time" in last.coords:
            header["time_span"] = [str(ds["time"].values.min()), str(last["time"].values.max())]
        header["described_file"] = str(files[0])
    else:
        ds = datasets.open_dataset(target, settings.data_root, variables=variables)
    return header, ds


def cmd_show(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    header, ds = _open_for_show(args.target, args.format, args.variables, settings)
    described = datasets.summarize(ds)
    summary = {**header, **described}
    if args.json:
        json.dump(summary, sys.stdout, indent=1, default=str)
        print()
        return 0
    for key in ("name", "path", "format", "description", "n_files", "time_span", "licence", "grid_mapping"):
        if summary.get(key) is not None:
            print(f"{key}: {summary[key]}")
    print("dims: " + ", ".join(f"{k}={v}" for k, v in described["dims"].items()))
    print("coords:")
    for name, info in described["coords"].items():
        rng = f"{info.get('min', info.get('first', ''))} .. {info.get('max', '')}"
        print(f"  {name:<14} {','.join(info['dims']):<16} {info['units']:<14} {rng}")
    print("variables:")
    for name, var in described["variables"].items():
        stats = ""
        if "min" in var:
            stats = f"min {var['min']:.4g} max {var['max']:.4g} mean {var['mean']:.4g}"
        missing = f" missing {100 * var['missing_fraction']:.1f}%" if "missing_fraction" in var else ""
        print(f"  {name:<14} {','.join(var['dims']):<24} {var['units']:<10} {stats}{missing}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from app.cli.progress import TextProgress

    settings = Settings.from_env()
    root = args.to or settings.data_root or Path("../shared/data")
    bar = TextProgress()
    try:
        report = datasets.fetch(args.names or None, root.expanduser().resolve(), mirror=args.mirror, progress=bar)
    finally:
        bar.close()
    if args.json:
        json.dump({"data_root": str(root), "downloaded": report.downloaded, "present": report.present}, sys.stdout)
        print()
    else:
        print(f"{len(report.downloaded)} files downloaded, {len(report.present)} already present, into {root}")
    return 0


def cmd_formats(args: argparse.Namespace) -> int:
    for name, cls in readers.items():
        print(f"{name:<16} {' '.join(cls.suffixes):<24} {cls.description}")
    return 0
