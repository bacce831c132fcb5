"""Verify the global engine against ERA5 analyses: z500 RMSE and ACC at +12/+24/+36 h.

    python benchmarks/bench_global.py [--truncation 42] [--device auto] [--sensitivity] [--markdown]

Forecasts start from the ERA5 2017-01-01 00Z analysis (the data-assimilation ensemble of
``cfgrib/tests/sample-data/era5-levels-members.grib``, 3 degrees, 10 members) and are verified
against the later analyses in the same file (control member 0) at +12, +24 and +36 h:

* ``swm``: the shallow-water core (T42, H = 8 km, climatological forcing) from the control analysis;
* ``swm, no forcing``: the same without the climatological forcing;
* ``persistence`` and ``climatology`` (ERA-Interim January mean);
* ``EDA ensemble mean``: the core run from each of the 10 analysis members (batched), its mean;
* ``perturbed ensemble mean``: 10 members from seeded balanced perturbations of the control.

Scores: latitude-weighted RMSE (m2 s-2; divide by g = 9.81 for metres) and the uncentred
anomaly correlation against the ERA-Interim January mean z500, both from :mod:`verification`.
Ensemble spread (RMS standard deviation) is printed beside the ensemble-mean error. Nothing here
is tuned to these analyses: the model settings are those documented in
:mod:`engine.jobs.global_job`; ``--sensitivity`` shows how the scores move with the equivalent
depth, for the record only.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import xarray as xr

from engine.config import Settings
from engine.jobs.global_job import forecast_global, read_analysis
from engine.models.global_.baselines import CLIMATOLOGY_FILE, climatology, load_climatology
from verification import acc, latitude_weights, rmse, spread_skill

ERA5 = "cfgrib/tests/sample-data/era5-levels-members.grib"
LEADS = (12, 24, 36)


def _scores(fc: xr.DataArray, truth: xr.Dataset, clim: xr.DataArray) -> list[tuple[float, float]]:
    w = latitude_weights(fc["lat"])
    out = []
    for h in LEADS:
        f = fc.sel(lead_time=np.timedelta64(h, "h")).drop_vars(["lead_time", "valid_time", "init_time"], errors="ignore")
        o = truth.sel(lead=h)
        c = clim.sel(lead=h)
        out.append((float(rmse(f, o, weights=w)), float(acc(f, o, climatology=c, centred=False, weights=w))))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--truncation", type=int, default=42)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sensitivity", action="store_true", help="also run H = 4, 10 km (not used for any choice)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=RuntimeWarning)

    root = Settings.from_env().data_root
    if root is None:
        print("sample data not found (set METEOLENS_DATA)", file=sys.stderr)
        return 1
    ds = read_analysis([root / ERA5])
    z = ds["z500"]
    t0 = np.datetime64("2017-01-01T00", "ns")
    truth = xr.concat([z.sel(time=t0 + np.timedelta64(h, "h"), member=0).drop_vars(["time", "member"], errors="ignore") for h in LEADS], dim="lead")
    truth = truth.assign_coords(lead=list(LEADS))
    valid = [t0 + np.timedelta64(h, "h") for h in LEADS]
    clim_ds = climatology(load_climatology(root / CLIMATOLOGY_FILE), valid, ds["lat"].values, ds["lon"].values, source=str(CLIMATOLOGY_FILE))
    clim = clim_ds["z500"].rename(lead_time="lead").assign_coords(lead=list(LEADS))

    common = {"lead_hours": max(LEADS), "init_time": "2017-01-01T00", "device": args.device, "truncation": args.truncation}
    rows: list[tuple[str, list[tuple[float, float]], str]] = []
    timings = {}

    def run(label: str, **kw: object) -> xr.Dataset:
        t = time.perf_counter()
        fc, dev = forecast_global(ds, **{**common, **kw})  # type: ignore[arg-type]
        timings[label] = (time.perf_counter() - t, dev)
        return fc

    control = run("swm", members="1")
    rows.append((f"swm (T{args.truncation}, H=8 km, forced)", _scores(control["z500"].isel(member=0), truth, clim), ""))
    free = run("swm, no forcing", members="1", forcing="none")
    rows.append(("swm, no forcing", _scores(free["z500"].isel(member=0), truth, clim), ""))
    if args.sensitivity:
        for h in (4000.0, 10000.0):
            fc = run(f"swm H={h / 1000:.0f} km", members="1", mean_depth=h)
            rows.append((f"swm, H={h / 1000:.0f} km (sensitivity)", _scores(fc["z500"].isel(member=0), truth, clim), ""))
    pers = run("persistence", model="persistence", members="1")
    rows.append(("persistence", _scores(pers["z500"].isel(member=0), truth, clim), ""))
    cl = run("climatology", model="climatology")
    rows.append(("climatology (ERA-Interim Jan)", _scores(cl["z500"].isel(member=0), truth, clim), ""))
    for label, kw in (("EDA ensemble mean (10)", {"members": "all"}),
                      ("perturbed ensemble mean (10)", {"members": "10", "perturbations": True, "seed": 0})):
        ens = run(label, **kw)
        w = latitude_weights(ens["lat"])
        spreads = []
        for h in LEADS:
            f = ens["z500"].sel(lead_time=np.timedelta64(h, "h")).drop_vars(["lead_time", "valid_time", "init_time"], errors="ignore")
            ss = spread_skill(f, truth.sel(lead=h), weights=w)
            spreads.append(f"{float(ss['spread']):.0f}")
        rows.append((label, _scores(ens["z500"].mean("member"), truth, clim), "spread " + "/".join(spreads)))

    pers_rmse = dict(zip(LEADS, [r for r, _ in rows[[x[0] for x in rows].index("persistence")][1]], strict=True))
    head = ["model"] + [f"RMSE +{h}h" for h in LEADS] + [f"ACC +{h}h" for h in LEADS] + ["note"]
    lines = []
    for name, sc, note in rows:
        # ACC of climatology itself is undefined (zero forecast anomaly): shown as "-".
        cells = [name] + [f"{r:.0f}" for r, _ in sc] + [f"{a:.3f}" if np.isfinite(a) else "-" for _, a in sc] + [note]
        lines.append(cells)
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for cells in lines:
            print("| " + " | ".join(cells) + " |")
    else:
        width = max(len(c[0]) for c in lines) + 2
        print(f"{head[0]:<{width}}" + "".join(f"{h:>11}" for h in head[1:-1]) + "  note")
        for cells in lines:
            print(f"{cells[0]:<{width}}" + "".join(f"{c:>11}" for c in cells[1:-1]) + "  " + cells[-1])
    sw = rows[0][1]
    print("\nRMSE reduction of swm vs persistence: " + ", ".join(
        f"+{h} h {100 * (1 - sw[i][0] / pers_rmse[h]):.0f}%" for i, h in enumerate(LEADS)))
    print("timings: " + ", ".join(f"{k} {v[0]:.1f} s ({v[1]})" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
