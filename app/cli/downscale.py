"""``meteolens downscale``: a coarse field onto a fine grid over fine terrain, as a catalogued run.

    meteolens downscale --input RUN|FILE|DATASET --variable NAME [--dem FILE|DATASET]
                        --resolution DEG [--domain LAT0 LAT1 LON0 LON1] [--method M]
                        [--alpha A] [--steering-wind U V] [--device auto|cpu|cuda]
                        [--store DIR] [--json]

``--input`` is a run id from the catalogue, a run store, a file or a sample dataset name, on a
regular lat/lon grid or a projected one (radar composites, nowcasts). The result is a run store
with the variable on a ``(lat, lon)`` grid (plus the input's time dims); ``--json`` prints
``run_id``, ``path`` and ``compute_seconds``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.cli.progress import TextProgress
from engine.config import Settings
from engine.errors import WxError
from engine.storage.catalog import Catalog

METHOD_CHOICES = ("bilinear", "lapse_rate", "fixed_lapse", "mass_consistent", "neural_field", "orographic")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``downscale`` sub-command."""
    p = subparsers.add_parser(
        "downscale",
        help="downscale a run, file or dataset onto fine terrain (lapse rate, mass-consistent winds, orographic rain)",
        description="Terrain-aware downscaling to a regular lat/lon grid; writes a catalogued run store.",
    )
    p.add_argument("--input", required=True, metavar="RUN|FILE|DATASET", help="run id, run store, file or dataset name")
    p.add_argument("--variable", required=True, metavar="NAME", help="canonical variable, e.g. t2m, u10")
    p.add_argument("--dem", metavar="FILE|DATASET", help="terrain (orography, m), e.g. ifs-orography")
    p.add_argument("--resolution", required=True, type=float, metavar="DEG", help="target grid spacing in degrees")
    p.add_argument("--domain", nargs=4, type=float, metavar=("LAT0", "LAT1", "LON0", "LON1"), help="target box")
    p.add_argument("--method", choices=METHOD_CHOICES,
                   help="default: lapse_rate for t2m, mass_consistent for u10/v10, orographic for precip_rate/tp")
    p.add_argument("--alpha", type=float, default=1.0, help="stability parameter of the wind adjustment (default 1)")
    p.add_argument("--radius", type=int, default=2, help="lapse-rate neighbourhood half-width in coarse cells")
    p.add_argument("--steering-wind", nargs=2, type=float, metavar=("U", "V"),
                   help="orographic method: steering wind in m s-1, eastward and northward (default: the input's "
                        "700/850 hPa or 10 m wind, else the radar echo motion)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--store", type=Path, help="store folder (default: METEOLENS_STORE or ./store)")
    p.add_argument("--json", action="store_true", help="print run_id, path and compute_seconds as JSON")
    p.set_defaults(func=run)


def _resolve_input(text: str, settings: Settings) -> str:
    """A catalogued run id becomes its store path; anything else is passed on unchanged."""
    if Path(text).expanduser().exists() or not settings.catalog_path.exists():
        return text
    catalog = Catalog(settings.catalog_path, create=False)
    if catalog.has_run(text):
        record = catalog.get_run(text)
        if record.path is None:
            raise WxError(f"--input {text}: run has no store (status {record.status})")
        return str(record.path)
    return text


def run(args: argparse.Namespace) -> int:
    """Execute ``meteolens downscale``."""
    from engine.jobs.downscale_job import DownscaleSpec
    from engine.jobs.runner import LocalExecutor

    settings = Settings.from_env(store=args.store)
    spec = DownscaleSpec(
        input=_resolve_input(args.input, settings),
        variable=args.variable,
        resolution=args.resolution,
        dem=args.dem,
        domain=tuple(args.domain) if args.domain else None,
        method=args.method,
        alpha=args.alpha,
        radius=args.radius,
        steering_wind=tuple(args.steering_wind) if args.steering_wind else None,
        device=args.device,
    )
    result = LocalExecutor(settings).submit(spec, progress=None if args.json else TextProgress())
    if args.json:
        print(json.dumps({"run_id": result.run_id, "path": str(result.path),
                          "compute_seconds": result.compute_seconds}))
    else:
        print(f"{result.run_id}: {result.path} ({result.compute_seconds:.1f} s)")
    return 0
