"""Skill of the torch extrapolation nowcast against pysteps and persistence on the sample radar events.

For every sample event a nowcast starts every ~20 minutes (every start time with three frames
of history and an observation 60 minutes later). Three nowcasts are scored against the
observed frames at +30 and +60 minutes:

- ``meteolens``: :class:`engine.models.nowcast.Extrapolation` (CLG optical flow on the last 3
  frames + semi-Lagrangian extrapolation), all start times of an event batched together;
- ``pysteps``: ``pysteps.motion.lucaskanade.dense_lucaskanade`` on the same 3 frames +
  ``pysteps.extrapolation.semilagrangian.extrapolate`` (defaults, as in the pysteps examples);
- ``persistence``: the last frame.

All three read the same frames (meteolens readers, mm/h, NaN = no data) and are scored on the
same pixels (those where every forecast and the observation are finite) with pysteps'
verification functions: CSI at 1 and 5 mm/h (``det_cat_fct``) and FSS at 1 mm/h over 20 km
(``fss``). Scores are averaged over the start times of each event (starts where a score is
undefined, i.e. no rain in forecast or observation, are skipped for it).

Usage::

    python benchmarks/bench_nowcast_skill.py [--events mch-2015-05-15 ...] [--every-minutes 20] [--json OUT]

Timings printed are indicative only (shared machine).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from engine.config import Settings
from engine.datasets import get
from engine.models.nowcast import Extrapolation
from engine.readers import open_many

EVENTS = (
    "mch-2015-05-15",
    "mch-2016-07-11",
    "knmi-2010-08-26",
    "bom-brisbane-2020-10-31",
    "bom-melbourne-2018-06-16",
    "fmi-2016-09-28",
)
METHODS = ("meteolens", "pysteps", "persistence")
SCORES = ("CSI1_30", "CSI1_60", "CSI5_30", "CSI5_60", "FSS_30", "FSS_60")


def load_event(name: str, data_root: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Frames ``(time, y, x)`` mm/h, their times, and the pixel size in km."""
    ds = open_many(get(name).paths(data_root), variables=["precip_rate"])
    rate = ds["precip_rate"].values.astype(np.float32)
    dx = float(abs(ds["x"].values[1] - ds["x"].values[0]))
    units = str(ds["x"].attrs.get("units", "m"))
    km = dx / 1000.0 if units in ("m", "metre", "meter") else dx * 111.0
    return rate, ds["time"].values, km


def score(fcst: np.ndarray, obs: np.ndarray, scale_px: int) -> dict[str, float]:
    from pysteps.verification.detcatscores import det_cat_fct
    from pysteps.verification.spatialscores import fss

    return {
        "CSI1": float(det_cat_fct(fcst, obs, 1.0, ["CSI"])["CSI"]),
        "CSI5": float(det_cat_fct(fcst, obs, 5.0, ["CSI"])["CSI"]),
        "FSS": float(fss(fcst, obs, 1.0, scale_px)),
    }


def run_event(name: str, data_root: Path, every_minutes: int, batch: int) -> dict[str, object]:
    from pysteps.extrapolation.semilagrangian import extrapolate as ps_extrapolate
    from pysteps.motion.lucaskanade import dense_lucaskanade

    rate, times, km = load_event(name, data_root)
    dt_min = float((times[1] - times[0]) / np.timedelta64(1, "m"))
    l30, l60 = round(30 / dt_min), round(60 / dt_min)
    stride = max(1, round(every_minutes / dt_min))
    scale_px = max(1, round(20.0 / km))
    starts = list(range(2, rate.shape[0] - l60, stride))
    ours = Extrapolation()
    results: dict[str, dict[str, list[float]]] = {m: {s: [] for s in SCORES} for m in METHODS}
    seconds = dict.fromkeys(METHODS, 0.0)
    for b0 in range(0, len(starts), batch):
        group = starts[b0 : b0 + batch]
        frames = torch.from_numpy(np.stack([rate[i - 2 : i + 1] for i in group]))
        t = time.perf_counter()
        with torch.inference_mode():
            out = ours(frames, l60).numpy()
        seconds["meteolens"] += time.perf_counter() - t
        for j, i in enumerate(group):
            t = time.perf_counter()
            v = dense_lucaskanade(rate[i - 2 : i + 1], verbose=False)
            ps = ps_extrapolate(rate[i], v, l60, allow_nonfinite_values=True)
            seconds["pysteps"] += time.perf_counter() - t
            for lead, tag in ((l30, "30"), (l60, "60")):
                obs = rate[i + lead]
                fc = {"meteolens": out[j, lead - 1], "pysteps": ps[lead - 1], "persistence": rate[i]}
                common = np.isfinite(obs) & np.all([np.isfinite(f) for f in fc.values()], axis=0)
                o = np.where(common, obs, np.nan)
                for m, f in fc.items():
                    s = score(np.where(common, f, np.nan), o, scale_px)
                    results[m][f"CSI1_{tag}"].append(s["CSI1"])
                    results[m][f"CSI5_{tag}"].append(s["CSI5"])
                    results[m][f"FSS_{tag}"].append(s["FSS"])
    summary = {
        m: {
            s: (float(np.nanmean(v)) if np.isfinite(v).any() else float("nan"))
            for s, v in ((s, np.array(results[m][s])) for s in SCORES)
        }
        for m in METHODS
    }
    return {
        "event": name,
        "time_step_min": dt_min,
        "n_starts": len(starts),
        "fss_scale_px": scale_px,
        "scores": summary,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", nargs="+", default=list(EVENTS))
    parser.add_argument("--every-minutes", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8, help="start times per meteolens batch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data_root = Settings.from_env().data_root
    if data_root is None:
        raise SystemExit("sample data not found: set METEOLENS_DATA")
    rows = []
    for name in args.events:
        res = run_event(name, data_root, args.every_minutes, args.batch)
        rows.append(res)
        print(
            f"\n{name}: {res['n_starts']} starts, dt {res['time_step_min']:g} min, FSS scale {res['fss_scale_px']} px"
        )
        print(f"| method | {' | '.join(SCORES)} | seconds |")
        print("|---" * (len(SCORES) + 2) + "|")
        for m in METHODS:
            vals = " | ".join(f"{res['scores'][m][s]:.3f}" for s in SCORES)
            print(f"| {m} | {vals} | {res['seconds'][m]:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
