"""Foehn diagnosis against its peer, the R package foehnix, on the same data in the same run.

Ours: :func:`verification.foehn.fit_foehn` on Ellboegen (valley, 1080 m) / Sattelberg (crest,
2107 m) 2006-2018, concomitants rh and ff, sectors 43-223 deg (valley) and 90-270 deg (crest),
exactly the ``foehn`` case of ``bench_regional_speed.py``. The peer: ``benchmarks/foehnix_peer.R``
runs ``foehnix(diff_t ~ ff + rh, filter = list(dd = c(43, 223), crest_dd = c(90, 270)),
switch = TRUE)`` on the same two files, in three variants:

- **foehnix demo**: foehnix's own set-up, ``diff_t = crest_t + 10.27 - t`` (dry-adiabatic
  correction of the 1027 m height difference) and its default EM controls. This is the timed peer.
- **foehnix, our dtheta**: the same call on our potential temperature difference (standard-
  atmosphere station pressures), so that only the fitting codes differ.
- **foehnix, our dtheta, 100 EM steps**: as before with ``maxit = 100, tol = -Inf`` (foehnix's
  way to make maxit the only stopping rule), i.e. foehnix run to convergence. With its defaults
  foehnix stops at the first EM step whose traced criterion (the expected complete-data
  log-likelihood evaluated at the new posteriors, which EM does not keep monotone) fails to rise
  by 1e-8, on this record after five M-steps, short of the maximum likelihood estimate.

Times are medians of ``--repeat`` calls after one uncounted warm-up, ours from
:func:`benchmarks.timing.median_time` (``fit_foehn`` on the station frames already read), foehnix's
from ``system.time`` around the ``foehnix()`` call in Rscript (data already read and merged). The
two "our dtheta" variants are run once (plus warm-up): they are there for the agreement, not the
time. Agreement is computed hour by hour on the hours where both give a probability.

When ``Rscript`` or the foehnix package is missing (look-up: ``--r-lib``, then ``R_LIBS``), the
script says so and reports ours only. foehnix is not on CRAN; see the docstring of
``foehnix_peer.R`` for what it needs.

Run from the repository root::

    .venv/bin/python benchmarks/bench_foehn_peer.py --repeat 5 --r-lib /tmp/Rlib [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import median_time  # noqa: E402

HERE = Path(__file__).resolve().parent
R_SCRIPT = HERE / "foehnix_peer.R"
VALLEY_ELEVATION = 1080.0
CREST_ELEVATION = 2107.0
#: (key, label, extra arguments of foehnix_peer.R, timed with --repeat or once)
R_VARIANTS: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("demo", "foehnix demo (diff_t)", ("--dt", "foehnix"), True),
    ("theta", "foehnix, our dtheta", ("--dt", "theta"), False),
    ("theta_100", "foehnix, our dtheta, 100 EM steps", ("--dt", "theta", "--em-maxit", "100", "--em-tol", "-Inf"),
     False),
)


def _data_dir(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    from engine.config import Settings

    root = Settings.from_env().data_root
    if root is None:
        raise SystemExit("sample data not found: set METEOLENS_DATA or give --data-dir")
    return root / "rfoehnix" / "data-raw"


def run_ours(data_dir: Path, repeat: int) -> dict[str, object]:
    """The bench_regional_speed ``foehn`` case: read both files, time the fit."""
    from engine.readers import open_any
    from verification.foehn import fit_foehn, station_frame

    valley = station_frame(open_any(data_dir / "ellboegen.csv"), name="ellboegen.csv")
    crest = station_frame(open_any(data_dir / "sattelberg.csv"), name="sattelberg.csv")

    def fit() -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the standard-atmosphere pressure note
            return fit_foehn(valley, crest, valley_elevation=VALLEY_ELEVATION, crest_elevation=CREST_ELEVATION,
                             concomitants=("rh", "ff"), valley_sector=(43.0, 223.0), crest_sector=(90.0, 270.0))

    seconds = median_time(fit, repeat)
    result = fit()
    s = result.summary()
    prob = result.probability
    times = pd.DatetimeIndex(prob.index).as_unit("s").asi8  # seconds since 1970-01-01 UTC
    coef = result.coefficients
    return {
        "label": "ours (meteolens)",
        "seconds": seconds,
        "n_iter": result.n_iter,
        "iter_note": f"{result.n_iter} ({'converged' if result.converged else 'not converged'})",
        "foehn_frequency": s["foehn_frequency"],
        "mean_probability": s["mean_probability"],
        "n_valid": result.hours["valid"],
        "n_fitted": result.hours["fitted"],
        "n_outside": result.hours["outside_sector"],
        "params": {
            "mu_foehn": result.mu["foehn"], "sigma_foehn": result.sigma["foehn"],
            "mu_no_foehn": result.mu["no_foehn"], "sigma_no_foehn": result.sigma["no_foehn"],
            "(Intercept)": coef["(Intercept)"], "rh": coef["rh2m"], "ff": coef["wind_speed"],
        },
        "prob": pd.Series(prob.to_numpy(), index=times),
    }


def _r_env(r_lib: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if r_lib:
        env["R_LIBS"] = os.pathsep.join(p for p in (r_lib, env.get("R_LIBS", "")) if p)
    return env


def r_available(rscript: str | None, r_lib: str | None) -> tuple[bool, str]:
    """Whether Rscript runs and can load foehnix, and why not."""
    if not rscript:
        return False, "Rscript not found on PATH"
    probe = subprocess.run(
        [rscript, "-e", 'quit(status = as.integer(!requireNamespace("foehnix", quietly = TRUE)))'],
        capture_output=True, text=True, env=_r_env(r_lib), check=False,
    )
    if probe.returncode != 0:
        where = r_lib or os.environ.get("R_LIBS") or "the default R library"
        return False, f"R package foehnix not found in {where}"
    version = subprocess.run([rscript, "--version"], capture_output=True, text=True, check=False)
    return True, (version.stdout or version.stderr).splitlines()[0].strip()


def run_r(rscript: str, r_lib: str | None, data_dir: Path, out: Path, key: str, label: str,
          extra: tuple[str, ...], repeat: int) -> dict[str, object]:
    """One foehnix_peer.R run; its summary plus the hourly probabilities."""
    csv = out / f"foehnix_{key}.csv"
    cmd = [rscript, str(R_SCRIPT), "--data-dir", str(data_dir), "--repeat", str(repeat), "--out-csv", str(csv),
           "--valley-elevation", f"{VALLEY_ELEVATION:g}", "--crest-elevation", f"{CREST_ELEVATION:g}", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_r_env(r_lib), check=False)
    if proc.returncode != 0:
        raise SystemExit(f"foehnix_peer.R ({key}) failed:\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    table = pd.read_csv(csv)
    valid = table["flag"].notna()
    prob = pd.Series(np.where(valid, table["prob"], np.nan), index=table["timestamp"].to_numpy(dtype="int64"))
    c = summary["coefficients"]
    iters = int(summary["em_iterations"])
    fixed = "--em-tol" in extra
    return {
        "label": label,
        "seconds": float(summary["fit_seconds"]),
        "n_iter": iters,
        "iter_note": f"{iters} (fixed)" if fixed else f"{iters} (stopped)",
        "foehn_frequency": float(summary["foehn_frequency"]),
        "mean_probability": float(summary["mean_probability"]),
        "n_valid": int(summary["n_used"]) + int(summary["n_outside_filter"]),
        "n_fitted": int(summary["n_used"]),
        "n_outside": int(summary["n_outside_filter"]),
        # switch = TRUE: component 2 (mu2, sigma2) is the Foehn component.
        "params": {
            "mu_foehn": c["mu2"], "sigma_foehn": c["sigma2"], "mu_no_foehn": c["mu1"], "sigma_no_foehn": c["sigma1"],
            "(Intercept)": c["(Intercept)"], "rh": c["rh"], "ff": c["ff"],
        },
        "prob": prob,
        "timed_repeats": repeat,
    }


def agreement(ours: pd.Series, peer: pd.Series) -> dict[str, float]:
    """Hour-by-hour agreement on the hours where both have a probability."""
    both = pd.concat({"a": ours, "b": peer}, axis=1, join="outer")
    a_valid, b_valid = both["a"].notna(), both["b"].notna()
    common = both[a_valid & b_valid]
    a, b = common["a"].to_numpy(), common["b"].to_numpy()
    fitted = (a > 0) | (b > 0)  # hours fitted by at least one (outside-sector hours are 0 in both)
    return {
        "n_common": int(len(common)),
        "only_ours": int((a_valid & ~b_valid).sum()),
        "only_peer": int((~a_valid & b_valid).sum()),
        "same_class": float(np.mean((a >= 0.5) == (b >= 0.5))),
        "n_differ": int(np.sum((a >= 0.5) != (b >= 0.5))),
        "corr": float(np.corrcoef(a, b)[0, 1]),
        "corr_fitted": float(np.corrcoef(a[fitted], b[fitted])[0, 1]),
        "mad": float(np.mean(np.abs(a - b))),
        "mad_fitted": float(np.mean(np.abs(a[fitted] - b[fitted]))),
        "max_abs": float(np.max(np.abs(a - b))),
    }


def table(ours: dict[str, object], peers: list[dict[str, object]], r_note: str, repeat: int) -> str:
    """The Markdown tables."""
    cols = [ours, *peers]
    head = "| | " + " | ".join(str(c["label"]) for c in cols) + " |"
    sep = "|---" * (len(cols) + 1) + "|"

    def row(name: str, cells: list[str]) -> str:
        return f"| {name} | " + " | ".join(cells) + " |"

    demo = peers[0] if peers else None
    lines = [
        "Foehn fit, Ellboegen/Sattelberg 2006-2018, rh + ff, sectors 43-223 / 90-270 deg (CPU); "
        f"peer: {r_note}",
        "",
        head,
        sep,
        row(f"fit time (s){'' if not peers else ', median of ' + str(repeat)}",
            [f"{float(c['seconds']):.3f}" + ("" if c is ours or c.get("timed_repeats") == repeat else " (1 run)")
             for c in cols]),
        row("time vs ours", ["1.00x"] + [f"{float(c['seconds']) / float(ours['seconds']):.1f}x" for c in peers]),
        row("EM iterations", [str(c["iter_note"]) for c in cols]),
        row("Foehn frequency (p >= 0.5, valid hours)",
            [f"{100 * float(c['foehn_frequency']):.2f} % of {c['n_valid']}" for c in cols]),
        row("mean probability (valid hours)", [f"{100 * float(c['mean_probability']):.2f} %" for c in cols]),
        row("hours fitted / outside sectors (p = 0)", [f"{c['n_fitted']} / {c['n_outside']}" for c in cols]),
    ]
    names = {
        "mu_foehn": "mean dtheta, Foehn (K)", "sigma_foehn": "sd dtheta, Foehn (K)",
        "mu_no_foehn": "mean dtheta, no Foehn (K)", "sigma_no_foehn": "sd dtheta, no Foehn (K)",
        "(Intercept)": "logit: (Intercept)", "rh": "logit: rh (per %)", "ff": "logit: ff (per m/s)",
    }
    for key, name in names.items():
        lines.append(row(name, [f"{float(c['params'][key]):.4f}" for c in cols]))  # type: ignore[index]
    if not peers:
        return "\n".join(lines)
    lines += [
        "",
        "Hour-by-hour agreement with ours (hours where both give a probability; 'fitted' = hours "
        "with p > 0 in either)",
        "",
        "| peer variant | common hours | valid only ours / only peer | same class (p >= 0.5) | hours differing "
        "| correlation (all / fitted) | mean abs diff (all / fitted) | max abs diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in peers:
        g = agreement(ours["prob"], c["prob"])  # type: ignore[arg-type]
        lines.append(
            f"| {c['label']} | {g['n_common']} | {g['only_ours']} / {g['only_peer']} | "
            f"{100 * g['same_class']:.2f} % | {g['n_differ']} | {g['corr']:.4f} / {g['corr_fitted']:.4f} | "
            f"{g['mad']:.4f} / {g['mad_fitted']:.4f} | {g['max_abs']:.3f} |"
        )
        c["agreement"] = g
    if demo is not None:
        lines += [
            "",
            f"Frequency difference ours - foehnix demo: "
            f"{100 * (float(ours['foehn_frequency']) - float(demo['foehn_frequency'])):+.2f} percentage points. "
            "'stopped': foehnix ends the EM at the first iteration whose traced criterion (the expected "
            "complete-data log-likelihood at the new posteriors, not monotone under EM) fails to rise by "
            "tol = 1e-8; it reports that count k but returns the parameters of M-step k + 1. "
            "Ours stops when the observed-data log-likelihood gain falls below 1e-8 per fitted hour.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed calls (median), ours and the foehnix demo")
    parser.add_argument("--r-lib", default=None, help="R library holding foehnix (prepended to R_LIBS)")
    parser.add_argument("--rscript", default=shutil.which("Rscript"), help="the Rscript executable")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with ellboegen.csv and sattelberg.csv (default: <data root>/rfoehnix/data-raw)")
    parser.add_argument("--keep", type=Path, default=None, help="keep foehnix's hourly CSV files in this folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    data_dir = _data_dir(args.data_dir)

    ours = run_ours(data_dir, args.repeat)
    ok, note = r_available(args.rscript, args.r_lib)
    peers: list[dict[str, object]] = []
    if ok:
        out = args.keep or Path(tempfile.mkdtemp(prefix="foehnix_peer_"))
        out.mkdir(parents=True, exist_ok=True)
        try:
            for key, label, extra, timed in R_VARIANTS:
                peers.append(run_r(args.rscript, args.r_lib, data_dir, out, key, label, extra,
                                   args.repeat if timed else 1))
        finally:
            if args.keep is None:
                shutil.rmtree(out, ignore_errors=True)
        note = f"foehnix (R) via {note}"
    else:
        note = f"foehnix (R) not measured: {note}"
    print(table(ours, peers, note, args.repeat))
    if args.json:
        rows = [{k: v for k, v in c.items() if k != "prob"} for c in (ours, *peers)]
        args.json.write_text(json.dumps({"peer": note, "rows": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
