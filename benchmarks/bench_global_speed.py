"""Speed and memory of the global dynamical core: 10-day forecasts at T42, T85 and T170.

    python benchmarks/bench_global_speed.py [--device cpu|cuda] [--days 10] [--budget 300]
                                            [--truncations 42 85 170] [--batch 10] [--markdown]

Each configuration runs the engine's forecast path (:func:`engine.jobs.global_job.run_dynamical_core`:
initial state from the ERA5 2017-01-01 00Z control analysis with balanced winds, climatological
forcing, semi-implicit leapfrog at the model's default time step, 6-hourly output evaluated on the
3-degree analysis grid) in a fresh subprocess, so that its peak memory is its own:

* model steps per second (integration only: steps, 6-hourly output and its copy to the host) and
  wall time of the forecast (plus the set-up: model, balanced initial state, forcing; file
  reading excluded);
* peak resident memory of the process (``resource.getrusage``; includes the Python interpreter,
  torch and the analysis, about 0.5 GB before any model exists, shown as "baseline RSS");
* on a GPU, ``torch.cuda.max_memory_allocated``.

There is no peer dynamical core installed to compare with. The reference point is the cost of
the spherical transforms themselves, timed on the same grid, dtype, batch and device with
torch-harmonics directly:

* ``SHT pair``: one scalar ``RealSHT`` + ``InverseRealSHT``;
* ``transforms/step``: the transforms one model step performs (2 forward and 1 inverse vector
  transforms, 1 forward and 2 inverse scalar transforms; see ``ShallowWaterModel.explicit_tendency``),
  so ``transforms/step / step`` is the share of a step spent inside torch-harmonics.

When the full forecast would take longer than ``--budget`` seconds (estimated from a short probe),
only as many whole days as fit are run and the 10-day wall time is extrapolated linearly from the
measured steps per second (the cost per step is constant) plus the measured set-up; such rows
say "extrapolated".
Timings on a shared machine are indicative only.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_time  # noqa: E402  (benchmarks/ is not a package)

ERA5 = "cfgrib/tests/sample-data/era5-levels-members.grib"
INIT = "2017-01-01T00"


def _rss_mib() -> float:
    """Peak resident set size of this process so far (MiB); Linux reports ``ru_maxrss`` in KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _transform_times(truncation: int, batch: int, device: str, repeat: int) -> tuple[float, float]:
    """Median seconds of one scalar SHT pair and of one step's set of transforms (torch-harmonics only).

    The fields have the model's shapes: ``batch`` members, float64, on the quadratic Gaussian grid
    of the truncation, with the model's ``lmax = mmax = T + 1``.
    """
    import torch
    import torch_harmonics as th

    from engine.models.global_.spectral import quadratic_grid_size

    nlat, nlon = quadratic_grid_size(truncation)
    kw = {"lmax": truncation + 1, "mmax": truncation + 1, "grid": "legendre-gauss", "csphase": False}
    sht = th.RealSHT(nlat, nlon, **kw).to(device)
    isht = th.InverseRealSHT(nlat, nlon, **kw).to(device)
    vsht = th.RealVectorSHT(nlat, nlon, **kw).to(device)
    ivsht = th.InverseRealVectorSHT(nlat, nlon, **kw).to(device)
    gen = torch.Generator().manual_seed(0)
    field = torch.randn(batch, nlat, nlon, generator=gen, dtype=torch.float64).to(device)
    vec = torch.randn(batch, 2, nlat, nlon, generator=gen, dtype=torch.float64).to(device)
    coeffs = sht(field)
    vcoeffs = vsht(vec)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def pair() -> None:
        isht(sht(field))
        sync()

    def step_set() -> None:
        # Mirrors explicit_tendency: uv (1 inverse vector), vorticity and geopotential to the grid
        # (2 inverse scalar), two flux divergences/curls (2 forward vector), kinetic energy (1 forward scalar).
        ivsht(vcoeffs)
        isht(coeffs)
        isht(coeffs)
        vsht(vec)
        vsht(vec)
        sht(field)
        sync()

    with torch.no_grad():
        return median_time(pair, repeat), median_time(step_set, repeat)


def run_one(truncation: int, batch: int, days: float, device: str, budget: float, repeat: int) -> dict[str, object]:
    """One configuration in this process: the forecast, memory, and the transform reference."""
    import torch

    from engine.config import Settings
    from engine.device import resolve_device
    from engine.jobs.global_job import STEP_HOURS, _pick_time, read_analysis, run_dynamical_core
    from engine.models.global_.baselines import CLIMATOLOGY_FILE, load_climatology
    from engine.models.global_.shallow_water import default_time_step

    warnings.filterwarnings("ignore", category=RuntimeWarning)
    root = Settings.from_env().data_root
    if root is None:
        raise SystemExit("sample data not found (set METEOLENS_DATA)")
    dev = str(resolve_device(device))
    analysis = _pick_time(read_analysis([root / ERA5]), INIT, ERA5)
    members = analysis.isel(member=slice(0, batch))
    clim = load_climatology(root / CLIMATOLOGY_FILE, variables=("z500", "u500", "v500"))
    forcing = clim.sel(month=1).drop_vars("month")
    baseline_rss = _rss_mib()
    dt = default_time_step(truncation)
    steps_per_day = round(86400 / dt)

    def forecast(n_days: float) -> tuple[float, float]:
        """Set-up and integration seconds of one forecast of ``n_days``."""
        lead = int(round(n_days * 24 / STEP_HOURS)) * STEP_HOURS
        marks: list[float] = []

        def progress(fraction: float, message: str = "") -> None:
            # run_dynamical_core reports once after building the model, the balanced initial
            # state and the forcing, then after every output step: the first call splits set-up
            # (paid once per forecast) from integration (paid per step).
            if not marks:
                if dev.startswith("cuda"):
                    torch.cuda.synchronize()
                marks.append(time.perf_counter())

        t = time.perf_counter()
        run_dynamical_core(members, lead, device=dev, truncation=truncation, forcing=forcing, progress=progress, source=ERA5)
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        end = time.perf_counter()
        return marks[0] - t, end - marks[0]

    # Probe: a quarter day (also the warm-up: first-call allocations, torch-harmonics set-up).
    probe_setup, probe_run = forecast(0.25)
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    estimate = probe_setup + probe_run * days / 0.25
    run_days = days if estimate <= budget else max(1.0, math.floor((budget - probe_setup) / (probe_run / 0.25)))
    setup, integration = forecast(run_days)
    steps = steps_per_day * run_days
    rate = steps / integration
    gpu_peak = torch.cuda.max_memory_allocated() / 1024**2 if dev.startswith("cuda") else None
    pair, step_set = _transform_times(truncation, batch, dev, repeat)
    return {
        "truncation": truncation, "batch": batch, "device": dev, "threads": torch.get_num_threads(),
        "dt_s": dt, "days_run": run_days, "steps_run": steps, "wall_run_s": setup + integration, "setup_s": setup,
        "steps_per_s": rate, "wall_days_s": setup + steps_per_day * days / rate, "extrapolated": run_days < days,
        "peak_rss_mib": _rss_mib(), "baseline_rss_mib": baseline_rss, "gpu_peak_mib": gpu_peak,
        "sht_pair_ms": 1e3 * pair, "transforms_step_ms": 1e3 * step_set,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--days", type=float, default=10.0, help="forecast length in days (default 10)")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds a single forecast may take before extrapolating (default 300)")
    parser.add_argument("--truncations", type=int, nargs="+", default=[42, 85, 170])
    parser.add_argument("--batch", type=int, default=10, help="ensemble size of the batched run at T85 (default 10)")
    parser.add_argument("--repeat", type=int, default=7, help="repeats of the transform timings (median)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--one", nargs=2, type=int, metavar=("T", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        result = run_one(args.one[0], args.one[1], args.days, args.device, args.budget, args.repeat)
        print(json.dumps(result))
        return 0

    configs = [(t, 1) for t in args.truncations]
    if args.batch > 1:
        configs.append((85, args.batch))
    rows = []
    for t, b in configs:
        # A fresh interpreter per configuration: ru_maxrss and the CUDA peak are per process.
        cmd = [sys.executable, __file__, "--one", str(t), str(b), "--device", args.device, "--days", str(args.days),
               "--budget", str(args.budget), "--repeat", str(args.repeat)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            print(f"T{t} x{b} failed:\n{done.stderr.strip()}", file=sys.stderr)
            return 1
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"T{t} x{b}: {r['steps_per_s']:.1f} steps/s, {r['wall_days_s']:.0f} s for {args.days:g} d", file=sys.stderr)

    head = ["config", "grid", "dt (s)", "steps/s", f"wall {args.days:g} d (s)", "peak RSS (MiB)", "GPU peak (MiB)",
            "step (ms)", "SHT pair (ms)", "transforms/step (ms)", "transforms share", "note"]
    lines = []
    for r in rows:
        from engine.models.global_.spectral import quadratic_grid_size

        nlat, nlon = quadratic_grid_size(int(r["truncation"]))
        step_ms = 1e3 / float(r["steps_per_s"])
        note = f"extrapolated from {r['days_run']:g} d ({r['wall_run_s']:.0f} s)" if r["extrapolated"] else ""
        lines.append([
            f"T{r['truncation']}, {r['batch']} member{'s' if r['batch'] > 1 else ''}", f"{nlat} x {nlon}", f"{r['dt_s']:.0f}",
            f"{r['steps_per_s']:.1f}", f"{r['wall_days_s']:.0f}", f"{r['peak_rss_mib']:.0f} (baseline {r['baseline_rss_mib']:.0f})",
            "-" if r["gpu_peak_mib"] is None else f"{r['gpu_peak_mib']:.0f}", f"{step_ms:.1f}", f"{r['sht_pair_ms']:.2f}",
            f"{r['transforms_step_ms']:.1f}", f"{r['transforms_step_ms'] / step_ms:.0%}", note,
        ])
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for cells in lines:
            print("| " + " | ".join(cells) + " |")
    else:
        widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
        print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
        for cells in lines:
            print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    dev = rows[0]["device"]
    print(f"\ndevice {dev}, {rows[0]['threads']} torch threads; no peer dynamical core installed: the "
          "torch-harmonics transform timings are the reference.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
