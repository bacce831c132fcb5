"""Speed and memory of the regional models: 1 deg -> 0.05 deg downscaling over the Alps, Foehn fit.

1. **Downscaling** a 1 deg field to 0.05 deg over a 20 x 20 deg domain (38-58 N, 0-20 E: 400 x 400
   fine points), DEM ETOPO 20' (``--dem ifs-orography`` for the IFS orography):

   - ``lapse_rate`` on the ERA5 ensemble (EDA) T850, 10 members x 4 times = 40 fields, brought
     from its 3 deg grid to 1 deg by linear interpolation (the sample data hold no 1 deg
     temperature; only the timing matters here, and it does not depend on the values);
   - ``mass_consistent`` on the ERA-Interim January and July mean 850 hPa wind (0.75 deg, 2
     fields) interpolated to 1 deg and used as u10/v10 (a proxy again; the conjugate-gradient
     iterations do depend on the wind, so the time is that of a smooth, realistic field);
   - ``bilinear`` (ours, torch) and the peer, xarray's ``Dataset.interp`` (scipy linear
     interpolation), on the T850 fields: what a user does without meteolens.

2. **Wind solvers** (``--cases wind_solvers``): the elliptic problem of the mass-consistent
   adjustment on the same 400 x 400 grid and winds, stability ``alpha`` 1 and 0.1, solved by our
   multigrid-preconditioned CG, by our CG with the Jacobi preconditioner it replaced, and by the
   peer pyamg (smoothed-aggregation algebraic multigrid accelerating CG, scipy sparse, one
   right-hand side at a time) on the identical sparse matrix and right-hand sides, all to a
   relative residual of 1e-8. Our time includes building the operator and the wind correction;
   pyamg's its hierarchy set-up and the two solves.

3. **Foehn fit**: the foehnix mixture model on Ellboegen/Sattelberg 2006-2018 (about 96 000
   common hours), concomitants rh and ff, sectors 43-223 and 90-270 deg; reading both CSV files
   and the fit are timed separately. The peer, foehnix in R, is timed against ours in the same run
   by ``benchmarks/bench_foehn_peer.py`` (it needs R and a foehnix build).

Each case runs in a fresh Python process (``--case NAME``) so that its peak resident memory
(``ru_maxrss``) is its own; the table gives the peak and the resident memory just before the
timed calls (imports and input data), the difference being what the method itself needs at most.
On a GPU (``--device cuda``) the peak CUDA memory allocated by torch is given as well. Times are
medians of ``--repeat`` calls after a warm-up (:func:`benchmarks.timing.median_time`).

Run::

    python benchmarks/bench_regional_speed.py [--device cpu|cuda] [--repeat 3] [--dem etopo20]
        [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_time  # noqa: E402

DOMAIN = (38.0, 58.0, 0.0, 20.0)
RESOLUTION = 0.05
#: The 1 deg input covers the domain plus a 4 deg margin (the lapse-rate regression window).
INPUT_LAT = np.arange(62.0, 33.9, -1.0)
INPUT_LON = np.arange(-4.0, 24.1, 1.0)
CASES = ("bilinear_xarray", "bilinear", "lapse_rate", "mass_consistent", "wind_solvers", "foehn")


def _rss_mb() -> float:
    """Current resident set size (MB), from /proc (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB; ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _one_deg_t850(root: Path) -> xr.Dataset:
    """The ERA5 ensemble T850 (time, member) on the 1 deg input grid, named t2m for the downscaler."""
    from engine.datasets import open_dataset

    ds = open_dataset("era5-ensemble-2017-01", root)[["t850"]]
    # The 3 deg grid runs 0..357 E; put it in -180..180 so that the box around 0 E is contiguous.
    ds = ds.assign_coords(lon=((ds["lon"] + 180.0) % 360.0) - 180.0).sortby("lon").sortby("lat")
    one = ds.interp(lat=INPUT_LAT, lon=INPUT_LON, method="linear").rename(t850="t2m")
    one["t2m"] = one["t2m"].transpose("time", "member", "lat", "lon").astype("float32")
    return xr.Dataset({"t2m": one["t2m"]}).load()


def _one_deg_wind(root: Path) -> xr.Dataset:
    """ERA-Interim monthly mean 850 hPa winds on the 1 deg input grid, named u10/v10 (a proxy)."""
    from engine.datasets import open_dataset

    ds = open_dataset("era-interim-climatology", root)[["u850", "v850"]].sortby("lat")
    one = ds.interp(lat=INPUT_LAT, lon=INPUT_LON, method="linear").rename(u850="u10", v850="v10")
    return one.astype("float32").load()


def _downscale_case(case: str, root: Path, device: str, dem_name: str, repeat: int) -> dict[str, object]:
    """Time one downscaling case in this process; peak memory is this process's."""
    import torch

    from engine.datasets import open_dataset
    from engine.device import resolve_device
    from engine.models.regional.downscale import downscale_dataset
    from engine.models.regional.grid import dem_to_grid, target_grid

    dev = resolve_device(device)
    dem = open_dataset(dem_name, root).load()
    ds = _one_deg_wind(root) if case == "mass_consistent" else _one_deg_t850(root)
    variable = "u10" if case == "mass_consistent" else "t2m"
    n_fields = int(np.prod([ds.sizes[d] for d in ds[variable].dims if d not in ("lat", "lon")]))
    fine = target_grid(*DOMAIN, RESOLUTION)

    if case == "bilinear_xarray":
        def call() -> object:
            # The peer: scipy linear interpolation through xarray onto the fine cell centres.
            return ds["t2m"].interp(lat=fine.lat, lon=fine.lon, method="linear").values
    else:
        # Bilinear needs no terrain; giving it none keeps the DEM handling out of its time.
        terrain = None if case == "bilinear" else dem

        def call() -> object:
            out = downscale_dataset(ds, variable, resolution=RESOLUTION, dem=terrain, domain=DOMAIN, method=case,
                                    device=dev)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return out

    before = _rss_mb()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = median_time(call, repeat)
    # Part of every terrain-aware call: the DEM averaged (or, where it is coarser than the
    # target, interpolated) onto the fine grid, on the CPU.
    dem_seconds = median_time(lambda: dem_to_grid(dem, fine), 1) if case in ("lapse_rate", "mass_consistent") else 0.0
    out = call()
    shape = tuple(int(s) for s in (out.shape if isinstance(out, np.ndarray) else out[variable].shape))
    row: dict[str, object] = {
        "case": case, "device": str(dev), "n_fields": n_fields, "output_shape": shape, "seconds": seconds,
        "seconds_per_field": seconds / n_fields, "dem_seconds": dem_seconds, "rss_before_mb": before, "peak_rss_mb": _peak_rss_mb(),
    }
    if dev.type == "cuda":
        row["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if not isinstance(out, np.ndarray):
        row.update({k: v for k, v in out.attrs.items() if k.startswith("solver_")})
    return row


def _time_ours(first: object, h: object, geom: object, solver: str, repeat: int, sync: object) -> dict[str, object]:
    """Median time of our adjustment of both wind fields with one preconditioner."""
    from engine.models.regional.wind import adjust_winds

    info: dict[str, float] = {}

    def call() -> None:
        nonlocal info
        _, _, info = adjust_winds(first[0], first[1], h, geom, preconditioner=solver)  # type: ignore[index, arg-type]
        sync()  # type: ignore[operator]

    seconds = median_time(call, repeat, warmup=solver == "multigrid")  # one Jacobi solve takes a minute
    return {"solver": f"ours, {solver}-preconditioned CG", "seconds": seconds, "iterations": info["iterations"]}


def _time_pyamg(matrix: object, rhs: np.ndarray, repeat: int) -> dict[str, object]:
    """Median time of pyamg's hierarchy set-up and one CG-accelerated solve per right-hand side."""
    import pyamg

    counts: list[int] = []

    def call() -> None:
        counts.clear()
        ml = pyamg.smoothed_aggregation_solver(matrix, symmetry="symmetric")
        for b in rhs:
            residuals: list[float] = []
            ml.solve(b.ravel(), tol=1e-8, accel="cg", residuals=residuals)
            counts.append(len(residuals) - 1)

    seconds = median_time(call, repeat)
    return {"solver": f"pyamg {pyamg.__version__} smoothed aggregation + CG (peer)", "seconds": seconds,
            "iterations": float(max(counts))}


def _wind_solver_case(root: Path, device: str, dem_name: str, repeat: int) -> dict[str, object]:
    """Our multigrid and Jacobi CG against pyamg on the adjustment's elliptic problem (400 x 400)."""
    import torch

    from engine.datasets import open_dataset
    from engine.device import resolve_device
    from engine.models.regional.grid import LatLonGrid, dem_to_grid, interp_regular, target_grid
    from engine.models.regional.wind import FivePointOperator, LayerGeometry, layer_depth, layer_rhs

    dev = resolve_device(device)
    fine = target_grid(*DOMAIN, RESOLUTION)
    z = dem_to_grid(open_dataset(dem_name, root).load(), fine)
    ds = _one_deg_wind(root)
    uv = torch.from_numpy(ds[["u10", "v10"]].to_array("variable").transpose("variable", ..., "lat", "lon").values)
    first = interp_regular(uv.double(), LatLonGrid.of(ds), fine)
    geom_cpu = LayerGeometry.of(fine)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    rows: list[dict[str, object]] = []
    for alpha in (1.0, 0.1):
        h = torch.from_numpy(layer_depth(z, alpha))
        for solver, n in (("multigrid", repeat), ("jacobi", 1)):
            row = _time_ours(first.to(dev), h.to(dev), LayerGeometry.of(fine, dev), solver, n, sync)
            rows.append({"alpha": alpha, **row})
        # The peer solves the identical system: our operator as a scipy sparse matrix.
        matrix = FivePointOperator.of_layer(h, geom_cpu).to_scipy()
        rhs = layer_rhs(first[0], first[1], h, geom_cpu).numpy()
        rows.append({"alpha": alpha, **_time_pyamg(matrix, rhs, repeat)})
    return {"case": "wind_solvers", "device": str(dev), "rows": rows, "peak_rss_mb": _peak_rss_mb()}


def _foehn_case(root: Path, repeat: int) -> dict[str, object]:
    """Time reading the two station files and the EM fit, separately."""
    from engine.readers import open_any
    from verification.foehn import fit_foehn, station_frame

    d = root / "rfoehnix" / "data-raw"

    def read() -> tuple[object, object]:
        return (station_frame(open_any(d / "ellboegen.csv"), name="ellboegen.csv"),
                station_frame(open_any(d / "sattelberg.csv"), name="sattelberg.csv"))

    valley, crest = read()

    def fit() -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the standard-atmosphere pressure note
            return fit_foehn(valley, crest, valley_elevation=1080.0, crest_elevation=2107.0,
                             concomitants=("rh", "ff"), valley_sector=(43.0, 223.0), crest_sector=(90.0, 270.0))

    before = _rss_mb()
    read_s = median_time(read, repeat)
    fit_s = median_time(fit, repeat)
    result = fit()
    s = result.summary()
    return {"case": "foehn", "device": "cpu", "read_seconds": read_s, "seconds": fit_s,
            "n_iter": result.n_iter, "hours": result.hours, "foehn_frequency": s["foehn_frequency"],
            "rss_before_mb": before, "peak_rss_mb": _peak_rss_mb()}


def _run_child(case: str, args: argparse.Namespace) -> dict[str, object]:
    """Run one case in a fresh interpreter and return its JSON row."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case", case, "--device", args.device,
           "--repeat", str(args.repeat), "--dem", args.dem]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{proc.stderr[-2000:]}")
    row: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    row["process_seconds"] = time.perf_counter() - t0
    return row


def _table(rows: list[dict[str, object]], dem: str) -> str:
    """The Markdown tables of docs/regional.md from the case rows."""
    peer = next((r for r in rows if r["case"] == "bilinear_xarray"), None)
    names: dict[str, str] = {
        "bilinear_xarray": "bilinear, xarray/scipy `interp` (peer)",
        "bilinear": "bilinear (ours, torch)",
        "lapse_rate": "lapse_rate (ours)",
        "mass_consistent": "mass_consistent winds (ours)",
    }
    lines = [
        f"Downscaling 1 deg -> 0.05 deg, 38-58 N 0-20 E (400 x 400 points), DEM {dem}, device {rows[0]['device']}",
        "",
        "| method | fields | time (s) | of which DEM to fine grid (s) | per field (s) | vs xarray bilinear "
        "| peak RSS (MB) | RSS before (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["case"] in ("foehn", "wind_solvers"):
            continue
        ratio = f"{float(r['seconds_per_field']) / float(peer['seconds_per_field']):.2f}x" if peer else "-"
        extra = f" (peak CUDA {float(r['peak_cuda_mb']):.0f} MB)" if "peak_cuda_mb" in r else ""
        lines.append(
            f"| {names[str(r['case'])]} | {r['n_fields']} | {float(r['seconds']):.2f} | {float(r['dem_seconds']):.2f} | "
            f"{float(r['seconds_per_field']):.3f} | {ratio} | {float(r['peak_rss_mb']):.0f}{extra} | "
            f"{float(r['rss_before_mb']):.0f} |"
        )
    solvers = next((r for r in rows if r["case"] == "wind_solvers"), None)
    if solvers:
        lines += [
            "",
            f"Mass-consistent wind solvers, 400 x 400, 2 wind fields, rtol 1e-8, device {solvers['device']}",
            "",
            "| alpha | solver | time (s) | iterations | time vs pyamg |",
            "|---|---|---|---|---|",
        ]
        for alpha in (1.0, 0.1):
            group = [r for r in solvers["rows"] if r["alpha"] == alpha]  # type: ignore[union-attr]
            peer_s = next(float(r["seconds"]) for r in group if "peer" in str(r["solver"]))
            for r in group:
                lines.append(f"| {alpha:g} | {r['solver']} | {float(r['seconds']):.2f} | {int(r['iterations'])} | "
                             f"{float(r['seconds']) / peer_s:.2f}x |")
    foehn = next((r for r in rows if r["case"] == "foehn"), None)
    if foehn:
        h = foehn["hours"]
        lines += [
            "",
            "Foehn fit, Ellboegen/Sattelberg 2006-2018, rh + ff, sectors 43-223 / 90-270 deg (CPU)",
            "",
            "| step | time (s) | peak RSS (MB) | notes |",
            "|---|---|---|---|",
            f"| read both foehnix CSV files | {float(foehn['read_seconds']):.2f} | | {h['valley']} + {h['crest']} records |",
            f"| EM fit (ours) | {float(foehn['seconds']):.2f} | {float(foehn['peak_rss_mb']):.0f} | "
            f"{h['common']} common hours, {h['fitted']} fitted, {foehn['n_iter']} EM iterations, "
            f"Foehn on {100 * float(foehn['foehn_frequency']):.1f} % of {h['valid']} valid hours |",
            "| foehnix (R, peer) | see `bench_foehn_peer.py` | | timed in the same run as ours there |",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (the downscaling cases)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per case (median)")
    parser.add_argument("--dem", default="etopo20", help="DEM dataset: etopo20 or ifs-orography")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {', '.join(CASES)}")
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # internal: one case in this process
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()

    from engine.config import Settings

    root = Settings.from_env().data_root
    if root is None:
        raise SystemExit("sample data not found: set METEOLENS_DATA")
    if args.case:
        if args.case == "foehn":
            row = _foehn_case(root, args.repeat)
        elif args.case == "wind_solvers":
            row = _wind_solver_case(root, args.device, args.dem, args.repeat)
        else:
            row = _downscale_case(args.case, root, args.device, args.dem, args.repeat)
        print(json.dumps(row, default=str))
        return
    rows = [_run_child(c, args) for c in args.cases.split(",") if c]
    print(_table(rows, args.dem))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
