"""Speed of the verification library: FSS against pysteps and scores, and a whole ensemble verification.

Two measurements, printed as markdown tables (the figures in ``docs/verification.md``):

1. FSS on a real 700 x 700 radar field pair: KNMI 2010-08-26 04:30 as "forecast" and 04:35 as
   "observation" (the 765 x 700 composite cropped to its last 700 rows, where the rain is),
   thresholds 1 and 5 mm/h, windows 3, 9, 27, 81 and 243 grid points (km). Three contenders
   compute the same ten scores: ``verification.fss`` (all thresholds and windows in one call,
   its intended use), ``pysteps.verification.spatialscores.fss`` (one call per threshold and
   window, as its API takes them) and ``scores.spatial.fss_2d`` (one call per threshold and
   window; ``zero_padding=True`` and ``threshold_operator=np.greater_equal`` give the same
   definition as the other two: zero padding and events ``value >= threshold``). The table
   gives the median time of ``--repeat`` calls after a warm-up, each contender's ratio to
   ours, and the largest absolute difference of its ten values from ours.
2. Verification of a 20-member, 12-step STEPS nowcast end to end: the run is made through the
   job layer (:class:`~engine.jobs.runner.LocalExecutor` with a
   :class:`~engine.jobs.nowcast_job.NowcastSpec`, MeteoSwiss 2015-05-15 frames up to 16:30)
   into a temporary store, then :func:`verification.pipeline.verify_run` scores it against the
   ``mch-2015-05-15`` dataset with the default metrics (categorical scores, FSS, MAE / RMSE /
   bias of the ensemble mean, CRPS of the ensemble, and the persistence baseline) and writes
   the scores to the catalogue. Printed: the seconds of ``verify_run`` (one call, reading
   included) and the number of score rows written.

Usage::

    python benchmarks/bench_verification.py [--repeat 7] [--skip-fss] [--skip-pipeline]

Timings on a shared machine are indicative only: the ratios, measured in the same run, are the
figures to compare.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyproj  # noqa: F401  (before ecCodes; see engine/__init__.py)
import xarray as xr
from timing import median_time

from engine.config import Settings
from engine.datasets import get
from engine.readers import open_many

WINDOWS = (3, 9, 27, 81, 243)
THRESHOLDS = (1.0, 5.0)
#: KNMI frames 04:30 and 04:35 (positions in the sorted 5-minute files from 00:00).
KNMI_PAIR = (54, 55)
#: MeteoSwiss frames 16:15 to 16:30: the STEPS nowcast's history (positions from 15:45).
MCH_INPUTS = slice(6, 10)


def radar_pair(data_root: Path) -> tuple[xr.DataArray, xr.DataArray]:
    """The 700 x 700 KNMI forecast / observation pair (rain rate, mm/h, NaN outside the radar range)."""
    paths = get("knmi-2010-08-26").paths(data_root)
    ds = open_many([paths[k] for k in KNMI_PAIR], variables=["precip_rate"])
    rate = ds["precip_rate"].astype(np.float64).load()
    ny = rate.sizes["y"]
    crop = rate.isel(y=slice(ny - 700, ny), x=slice(0, 700))
    crop = crop.drop_vars([c for c in crop.coords if c not in crop.dims])
    return crop.isel(time=0, drop=True), crop.isel(time=1, drop=True)


def bench_fss(data_root: Path, repeat: int) -> None:
    """Table 1: ours vs pysteps vs scores on the same fields, thresholds and windows."""
    from pysteps.verification.spatialscores import fss as pysteps_fss
    from scores.spatial import fss_2d

    from verification import fss

    fcst, obs = radar_pair(data_root)
    f_np, o_np = fcst.values, obs.values
    pairs = [(t, w) for t in THRESHOLDS for w in WINDOWS]

    def ours() -> np.ndarray:
        out = fss(fcst, obs, threshold=list(THRESHOLDS), window=list(WINDOWS))
        return np.array([float(out.sel(threshold=t, window=w)) for t, w in pairs])

    def pysteps() -> np.ndarray:
        return np.array([pysteps_fss(f_np, o_np, t, w) for t, w in pairs])

    def scores() -> np.ndarray:
        return np.array(
            [
                float(
                    fss_2d(
                        fcst,
                        obs,
                        event_threshold=t,
                        window_size=(w, w),
                        spatial_dims=("y", "x"),
                        zero_padding=True,
                        threshold_operator=np.greater_equal,
                    )
                )
                for t, w in pairs
            ]
        )

    reference = ours()
    wet = {t: float(np.mean(np.nan_to_num(o_np) >= t)) for t in THRESHOLDS}
    print(
        f"FSS: KNMI 2010-08-26 04:30 vs 04:35, {f_np.shape[0]} x {f_np.shape[1]}, "
        f"observed event fraction {', '.join(f'{wet[t]:.4f} at {t:g} mm/h' for t in THRESHOLDS)}; "
        f"{len(pairs)} scores (thresholds {list(THRESHOLDS)} x windows {list(WINDOWS)}), median of {repeat}\n"
    )
    print("| threshold (mm/h) | " + " | ".join(f"window {w}" for w in WINDOWS) + " |")
    print("|---|" + "---|" * len(WINDOWS))
    for t in THRESHOLDS:
        vals = [reference[pairs.index((t, w))] for w in WINDOWS]
        print(f"| {t:g} | " + " | ".join(f"{v:.4f}" for v in vals) + " |")
    print()
    rows = []
    for name, fn in (("meteolens `verification.fss`", ours), ("pysteps `fss`", pysteps), ("scores `fss_2d`", scores)):
        seconds = median_time(fn, repeat)
        rows.append((name, seconds, float(np.max(np.abs(fn() - reference)))))
    base = rows[0][1]
    print("| implementation | time (ms) | time / ours | max abs difference from ours |")
    print("|---|---|---|---|")
    for name, seconds, diff in rows:
        print(f"| {name} | {seconds * 1e3:.1f} | {seconds / base:.2f} | {diff:.1e} |")
    print()


def bench_pipeline(data_root: Path) -> None:
    """Table 2: a 20-member, 12-step STEPS run made by the job layer, then verify_run timed."""
    from engine.jobs.nowcast_job import NowcastSpec
    from engine.jobs.runner import LocalExecutor
    from engine.storage.catalog import Catalog
    from verification.pipeline import verify_run

    inputs = tuple(str(p) for p in get("mch-2015-05-15").paths(data_root)[MCH_INPUTS])
    with tempfile.TemporaryDirectory(prefix="meteolens-bench-") as tmp:
        settings = Settings(data_root=data_root, store_root=Path(tmp))
        catalog = Catalog(settings.catalog_path)
        spec = NowcastSpec(inputs=inputs, method="steps", members=20, lead_steps=12, seed=1, device="cpu")
        t0 = time.perf_counter()
        run = LocalExecutor(settings, catalog).submit(spec)
        t_run = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = verify_run(catalog, run.run_id, "mch-2015-05-15", data_root=data_root)
        t_verify = time.perf_counter() - t0
        scores = result.scores
        written = catalog.scores(run_id=run.run_id)
        baseline = catalog.scores(run_id=result.baseline_run_id) if result.baseline_run_id else scores.iloc[:0]
        ds = xr.open_zarr(run.path)
        shape = " x ".join(f"{ds.sizes[d]} {d}" for d in ds["precip_rate"].dims)
    metrics = ", ".join(dict.fromkeys(scores["metric"]))
    print(f"Verification: STEPS nowcast from MeteoSwiss 2015-05-15 16:30, precip_rate {shape}\n")
    print("| step | seconds | scores written |")
    print("|---|---|---|")
    print(f"| nowcast run (job layer, CPU; not part of verification) | {t_run:.1f} | - |")
    print(
        f"| `verify_run` against mch-2015-05-15 (forecast + persistence baseline) | {t_verify:.1f} | "
        f"{len(written)} + {len(baseline)} |"
    )
    print(f"\nmetrics: {metrics}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed FSS calls per contender (median)")
    parser.add_argument("--skip-fss", action="store_true")
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args()
    data_root = Settings.from_env().data_root
    if data_root is None:
        raise SystemExit("sample data not found: set METEOLENS_DATA")
    if not args.skip_fss:
        bench_fss(data_root, args.repeat)
    if not args.skip_pipeline:
        bench_pipeline(data_root)


if __name__ == "__main__":
    main()
