"""Perfect-prognosis benchmarks of the regional downscaler on real data.

1. **ERA5 UK 2 m temperature** (March 2019, 0.25 deg, 744 hours): block-average 4x4 to 1 deg,
   downscale back to 0.25 deg with each method, and compare with the original field (MAE, RMSE,
   bias over all points and hours; MAE over land). DEM: the IFS orography of speedyweather
   (``ifs-orography``, about 0.18 deg), area-averaged onto both grids; ``--dem etopo20`` swaps
   in ETOPO 20'.
2. **MeteoSwiss radar precipitation** (1 km, 2015-05-15 and 2016-07-11): block-average 24x24
   (about 24 km), downscale back to 1 km with bilinear interpolation, RainFARM (pysteps,
   Rebora et al. 2006; an ensemble of 4 members) and the Smith-Barstad orographic method, and
   compare with the radar: fractions skill score over thresholds and scales, and radially
   averaged power spectra (ratio of downscaled to observed power per wavelength band). The
   steering wind of the orographic model is the mean radar echo motion (pysteps Lucas-Kanade),
   the DEM the EURO-CORDEX 0.11 deg model orography (``hsurf-euro-cordex``) interpolated to
   the radar grid.

Run::

    python benchmarks/bench_downscale.py [--device auto] [--json results.json] [--skip-radar]
        [--skip-era5] [--neural-steps 200]

Results are printed as Markdown tables (the ones in docs/regional.md come from this script).
"""

from __future__ import annotations

import argparse
import glob
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from engine.config import Settings
from engine.datasets import open_dataset
from engine.device import resolve_device
from engine.models.regional.grid import LatLonGrid, block_mean, dem_to_grid, interp_regular
from engine.models.regional.precip import OrographicPrecipDownscaler
from engine.models.regional.temperature import STANDARD_LAPSE, LapseRateDownscaler
from engine.readers import open_any

FACTOR_T = 4
FACTOR_P = 24


def era5_uk(data_root: Path, device: torch.device, dem_name: str, neural_steps: int = 0) -> list[dict[str, object]]:
    """Perfect-prog MAE of each temperature method on ERA5 UK t2m (all 744 hours)."""
    ds = open_any(data_root / "xarray-data" / "era5-2mt-2019-03-uk.grib")
    ny = ds.sizes["lat"] // FACTOR_T * FACTOR_T
    nx = ds.sizes["lon"] // FACTOR_T * FACTOR_T
    t = torch.from_numpy(ds["t2m"].values[:, :ny, :nx].astype("float64")).to(device)
    fine = LatLonGrid(ds["lat"].values[:ny], ds["lon"].values[:nx])
    coarse = LatLonGrid(fine.lat.reshape(-1, FACTOR_T).mean(1), fine.lon.reshape(-1, FACTOR_T).mean(1))
    dem = open_dataset(dem_name, data_root)
    z_f = dem_to_grid(dem, fine, name=dem_name)
    z_c = dem_to_grid(dem, coarse, name=dem_name)
    land = torch.from_numpy(z_f > 1.0).to(device)
    t_c = block_mean(t, FACTOR_T)
    cc, fc = {"lat": coarse.lat, "lon": coarse.lon}, {"lat": fine.lat, "lon": fine.lon}
    methods = {
        "bilinear": lambda x: interp_regular(x, coarse, fine),
        "fixed lapse -6.5 K/km": LapseRateDownscaler(z_f, z_c, fixed_lapse=STANDARD_LAPSE).to(device).double(),
        "local lapse rate (ours)": LapseRateDownscaler(z_f, z_c).to(device).double(),
    }
    if neural_steps:
        from engine.models.regional.neural_field import NeuralFieldDownscaler

        methods["neural field (ours)"] = NeuralFieldDownscaler(z_f, z_c, steps=neural_steps)

    rows = []
    for name, fn in methods.items():
        start = time.perf_counter()
        with torch.no_grad():
            out = fn(t_c) if name == "bilinear" else fn(t_c, cc, fc)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        err = out - t
        rows.append({
            "method": name,
            "mae_K": float(err.abs().mean()),
            "rmse_K": float(err.pow(2).mean().sqrt()),
            "bias_K": float(err.mean()),
            "mae_land_K": float(err.abs()[:, land].mean()),
            "seconds": seconds,
        })
    base = rows[0]["mae_K"]
    for r in rows:
        r["mae_vs_bilinear_pct"] = 100.0 * (r["mae_K"] - base) / base  # type: ignore[operator]
    return rows


def _valid_window(valid: np.ndarray, f: int) -> tuple[slice, slice]:
    """The largest all-valid window whose sides are multiples of ``f`` (integral-image search)."""
    ny, nx = valid.shape
    bad = np.zeros((ny + 1, nx + 1))
    bad[1:, 1:] = np.cumsum(np.cumsum(~valid, 0), 1)
    sizes = sorted(((h, w) for h in range(1, ny // f + 1) for w in range(1, nx // f + 1)), key=lambda s: -s[0] * s[1])
    for h, w in sizes:
        hh, ww = h * f, w * f
        r0 = np.arange(0, ny - hh + 1, f // 2)[:, None]
        c0 = np.arange(0, nx - ww + 1, f // 2)[None, :]
        count = bad[r0 + hh, c0 + ww] - bad[r0, c0 + ww] - bad[r0 + hh, c0] + bad[r0, c0]
        hit = np.argwhere(count == 0)
        if len(hit):
            i, j = hit[0]
            return slice(int(r0[i, 0]), int(r0[i, 0]) + hh), slice(int(c0[0, j]), int(c0[0, j]) + ww)
    raise ValueError("no all-valid window in the radar domain")


def _rapsd(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from pysteps.utils.spectral import rapsd

    return rapsd(field, fft_method=np.fft, return_freq=True)  # type: ignore[no-any-return]


def radar(data_root: Path, device: torch.device, n_members: int = 4) -> dict[str, object]:
    """FSS and spectra of bilinear, RainFARM and orographic downscaling of 24 km radar rain."""
    from pysteps.downscaling import rainfarm
    from pysteps.motion import lucaskanade
    from pysteps.verification.spatialscores import fss
    from scipy.interpolate import LinearNDInterpolator

    frames, times = [], []
    for day in ("20150515", "20160711"):
        files = sorted(glob.glob(str(data_root / "pysteps-data" / "radar" / "mch" / day / "*.gif")))
        ds = [open_any(f) for f in files]
        frames.append(np.concatenate([d["precip_rate"].values for d in ds]))
        times.append(day)
    sample = ds[0]
    valid = np.all([np.isfinite(f).all(0) for f in frames], axis=0)
    rs, cs = _valid_window(valid, FACTOR_P)

    hs = open_dataset("hsurf-euro-cordex", data_root)["orography"]
    pts = np.column_stack([hs["lat"].values.ravel(), hs["lon"].values.ravel()])
    interp = LinearNDInterpolator(pts, np.maximum(hs.values.ravel(), 0.0))
    z = interp(sample["lat"].values[rs, cs], sample["lon"].values[rs, cs])
    dx = float(abs(sample["x"].values[1] - sample["x"].values[0]))
    thresholds, scales_km = (0.5, 2.0, 5.0), (8, 24, 48)
    results: dict[str, dict[str, list[float]]] = {}
    spectra: dict[str, list[np.ndarray]] = {}
    rng_seed = 0
    winds: dict[str, list[float]] = {}
    for day, seq in zip(times, frames, strict=True):
        seq = np.nan_to_num(seq[:, rs, cs], nan=0.0)
        # Steering wind: mean echo motion (pixels per 5 min -> m s-1), x east, y rows southward.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            motion = lucaskanade.dense_lucaskanade(np.log10(np.maximum(seq[-6:], 0.01)))
        u = float(np.nanmean(motion[0])) * dx / 300.0
        v = -float(np.nanmean(motion[1])) * dx / 300.0
        winds[day] = [round(u, 2), round(v, 2)]
        model = OrographicPrecipDownscaler(torch.from_numpy(z), dx, dx, FACTOR_P, (u, v)).to(device)
        for frame in seq[:: max(len(seq) // 8, 1)]:  # eight frames per event
            if (frame > 0.5).mean() < 0.01:
                continue
            truth = frame
            coarse = block_mean(torch.from_numpy(truth), FACTOR_P)
            bil = torch.nn.functional.interpolate(coarse[None, None], scale_factor=FACTOR_P, mode="bilinear",
                                                  align_corners=False)[0, 0].clamp_min(0).numpy()
            oro = model(coarse.to(device)).cpu().numpy()
            members = []
            for _ in range(n_members):
                np.random.seed(rng_seed)
                rng_seed += 1
                members.append(rainfarm.downscale(coarse.numpy(), ds_factor=FACTOR_P))
            oro_rf = [model.modulate(torch.from_numpy(m).to(device), coarse.to(device)).cpu().numpy() for m in members]
            fields = {"bilinear": [bil], "RainFARM": members, "orographic (ours)": [oro],
                      "RainFARM + orographic weights (ours)": oro_rf}
            for name, outs in fields.items():
                for th in thresholds:
                    for sc in scales_km:
                        key = f"{th}|{sc}"
                        vals = [fss(o, truth, th, int(sc * 1000 / dx)) for o in outs]
                        results.setdefault(name, {}).setdefault(key, []).append(float(np.nanmean(vals)))
                for o in outs:
                    spectra.setdefault(name, []).append(_rapsd(o)[0])
            spectra.setdefault("radar", []).append(_rapsd(truth)[0])
    freq = _rapsd(np.zeros((rs.stop - rs.start, cs.stop - cs.start)))[1]
    wavelength_km = dx / 1000.0 / np.maximum(freq, 1e-9)
    obs = np.mean(spectra["radar"], axis=0)
    bands = {"2-6 km": (2, 6), "6-24 km": (6, 24), "24-100 km": (24, 100)}
    spec_rows = {}
    for name in ("bilinear", "RainFARM", "orographic (ours)", "RainFARM + orographic weights (ours)"):
        mean = np.mean(spectra[name], axis=0)
        spec_rows[name] = {
            b: float(np.mean(np.log10(mean[(wavelength_km >= lo) & (wavelength_km < hi)]
                                      / obs[(wavelength_km >= lo) & (wavelength_km < hi)])))
            for b, (lo, hi) in bands.items()
        }
    fss_rows = {name: {k: float(np.mean(v)) for k, v in d.items()} for name, d in results.items()}
    return {"window": [rs.start, rs.stop, cs.start, cs.stop], "n_frames": len(spectra["radar"]),
            "steering_wind_m_s": winds, "fss": fss_rows, "log10_power_ratio": spec_rows, "thresholds": thresholds, "scales_km": scales_km}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dem", default="ifs-orography", help="DEM dataset for ERA5 (ifs-orography or etopo20)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--skip-radar", action="store_true")
    parser.add_argument("--skip-era5", action="store_true")
    parser.add_argument("--neural-steps", type=int, default=0,
                        help="also fit the neural field with this many steps (slow on a CPU)")
    args = parser.parse_args()
    root = Settings.from_env().data_root
    if root is None:
        raise SystemExit("sample data not found: set METEOLENS_DATA")
    device = resolve_device(args.device)
    out: dict[str, object] = {"device": str(device)}
    if not args.skip_era5:
        rows = era5_uk(root, device, args.dem, args.neural_steps)
        out["era5_uk_t2m"] = rows
        print(f"\nERA5 UK t2m, March 2019, 744 h, 1 deg -> 0.25 deg, DEM {args.dem}, device {device}\n")
        print("| method | MAE (K) | RMSE (K) | bias (K) | MAE land (K) | MAE vs bilinear | time (s) |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['method']} | {r['mae_K']:.3f} | {r['rmse_K']:.3f} | {r['bias_K']:+.3f} | "
                  f"{r['mae_land_K']:.3f} | {r['mae_vs_bilinear_pct']:+.1f} % | {r['seconds']:.2f} |")
    if not args.skip_radar:
        res = radar(root, device)
        out["radar"] = res
        print(f"\nMeteoSwiss radar, 24 km -> 1 km, {res['n_frames']} frames, window {res['window']}\n")
        keys = [f"{th}|{sc}" for th in res["thresholds"] for sc in res["scales_km"]]  # type: ignore[attr-defined]
        print("| method | " + " | ".join(f"FSS {k.split('|')[0]} mm/h @ {k.split('|')[1]} km" for k in keys) + " |")
        print("|---|" + "---|" * len(keys))
        for name, d in res["fss"].items():  # type: ignore[attr-defined]
            print(f"| {name} | " + " | ".join(f"{d[k]:.3f}" for k in keys) + " |")
        print("\n| method | log10 power ratio 2-6 km | 6-24 km | 24-100 km |\n|---|---|---|---|")
        for name, d in res["log10_power_ratio"].items():  # type: ignore[attr-defined]
            print(f"| {name} | {d['2-6 km']:+.2f} | {d['6-24 km']:+.2f} | {d['24-100 km']:+.2f} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
