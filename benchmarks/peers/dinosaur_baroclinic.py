"""The Jablonowski & Williamson (2006) baroclinic wave in the peer core, dinosaur (NeuralGCM's dynamical core).

What is run: dinosaur's sigma-coordinate primitive equations (``PrimitiveEquationsSigma``) from
its own JW06 initial state (``primitive_equations_states.steady_state_jw`` plus
``baroclinic_perturbation_jw``: the paper's balanced jet, surface geopotential and the 1 m/s
zonal-wind bump at 20E 40N, the same formulas as ours in
``engine/models/global_/primitive/testcases.py``), on the grid and levels our core uses:

- horizontal: dinosaur's ``Grid.T42()`` / ``Grid.T85()`` (Gaussian 64 x 128 / 128 x 256, the
  quadratic grids of our ``SpectralGrid(42)`` / ``SpectralGrid(85)``);
- vertical: the 26 JW06 levels as sigma, ``SigmaLevels.jablonowski_williamson()`` (half levels
  ``A + B`` of the paper's table, top lowered to 0), passed to dinosaur as ``SigmaCoordinates``;
- time stepping: dinosaur's own choice for this test, the IMEX SIL3 Runge-Kutta scheme
  (``time_integration.imex_rk_sil3``) with the exponential mode filter its example notebooks use
  for the baroclinic and Held-Suarez cases (``exponential_step_filter(tau=0.0087504, order=1.5,
  cutoff=0.8)``, nondimensional tau); time step ``--dt-minutes`` (20 min at T42, 10 min at
  T85 by default, inside the explicit advective limit of the three-stage scheme at 60 m/s);
- float64 (``jax_enable_x64``) by default, as our core; ``--float32`` for dinosaur's default.

Timing: the integration is compiled once (``jax.jit`` of one simulated day of steps, repeated),
the first call (compile + day 1) is reported as the JIT warm-up, and the wall time per simulated
day is the median over days 2..N. JAX uses all the CPU threads it sees (the count is recorded).

Output: surface pressure at days 8 and 9 (or every ``--save-days``) on a regular 1-degree
latitude-longitude grid (lat -90..90, lon 0..359), evaluated exactly from dinosaur's spectral
log surface pressure (``to_nodal`` on an equiangular-with-poles grid of the same wavenumbers),
written to ``benchmarks/results/dinosaur_jw06_T{T}L26.nc`` (not committed: regenerate with this
script), with the run's settings and timings as attributes. The deepest northern-hemisphere
low and every local minimum below 1000 hPa are printed (and stored as attributes).

The reference: JW06 tabulates no minimum surface pressure; it shows the day-8/9 surface pressure
of four cores at several resolutions (its section 5) and estimates the uncertainty of the
reference solutions from the l2 differences of ps between cores and resolutions, which stay small
until about day 9-10 at T85 and finer (section 5, its Figs 10-11). The printout therefore lists
the paper's reference as qualitative (see ``REFERENCE`` below) beside dinosaur's numbers.

Install: dinosaur is in the ``dev`` extra (``pip install -e '.[dev]'``); it pulls CPU JAX
and leaves torch, numpy and xarray as they are. Not used by the test suite.

Run from the repository root::

    .venv/bin/python benchmarks/peers/dinosaur_baroclinic.py --truncation 42 [--truncation 85] [--days 9]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from engine.models.global_.primitive.vertical import SigmaLevels  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_DT_MINUTES = {42: 20.0, 85: 10.0}
#: JW06's own statement of the reference (section 5): qualitative, no table of minima.
REFERENCE = (
    "JW06 (QJRMS 132, section 5): the wave grows observably from about day 4, deepens explosively "
    "around day 8 and breaks after day 9; no minimum ps is tabulated, only day-8/9 maps of four "
    "cores (EUL, FV, SLD, GME) whose l2(ps) differences at T85 and finer are the uncertainty of "
    "the reference"
)


def _lows(ps_hpa: np.ndarray, lat: np.ndarray, lon: np.ndarray, below: float = 1000.0) -> list[dict[str, float]]:
    """Local minima of a northern-hemisphere ps field (hPa) below ``below``, deepest first."""
    north = lat > 0
    field = ps_hpa[north]
    is_min = field == ndimage.minimum_filter(field, size=5, mode=("nearest", "wrap"))
    rows = [
        {"ps_hpa": float(field[j, i]), "lat": float(lat[north][j]), "lon": float(lon[i])}
        for j, i in zip(*np.nonzero(is_min & (field < below)), strict=True)
    ]
    return sorted(rows, key=lambda r: r["ps_hpa"])


def compare(ours: xr.DataArray, peer: xr.DataArray) -> dict[int, dict[str, float]]:
    r"""Surface-pressure difference of two runs on the same regular grid, per saved day.

    The area-weighted l2 difference JW06 (section 5) uses to compare cores,

    .. math:: l_2 = \left\{ \frac{\int (p_{s,1} - p_{s,2})^2 \, dA}{\int dA} \right\}^{1/2},

    with ``cos(lat)`` weights on the regular grid, the largest absolute difference, and each
    run's deepest northern-hemisphere low (hPa, lat, lon).

    Parameters
    ----------
    ours, peer : xr.DataArray
        Surface pressure (Pa), dims ``(day, lat, lon)`` on the same latitudes and longitudes
        (the 1-degree grid this script writes).
    """
    ours = ours.transpose("day", "lat", "lon")
    peer = peer.transpose("day", "lat", "lon")
    if not (np.allclose(ours.lat, peer.lat) and np.allclose(ours.lon, peer.lon)):
        raise SystemExit("compare: the two surface-pressure fields are not on the same lat/lon grid")
    weights = np.cos(np.radians(peer.lat.values))[:, None] * np.ones(peer.lon.size)
    out: dict[int, dict[str, float]] = {}
    for day in sorted(set(ours.day.values.tolist()) & set(peer.day.values.tolist())):
        a = ours.sel(day=day).values.astype(np.float64) / 100.0
        b = peer.sel(day=day).values.astype(np.float64) / 100.0
        low_a, low_b = (
            _lows(a, peer.lat.values, peer.lon.values, below=np.inf)[0],
            _lows(b, peer.lat.values, peer.lon.values, below=np.inf)[0],
        )
        out[int(day)] = {
            "l2_hpa": float(np.sqrt(np.sum(weights * (a - b) ** 2) / np.sum(weights))),
            "max_abs_hpa": float(np.max(np.abs(a - b))),
            **{f"ours_{k}": v for k, v in low_a.items()},
            **{f"peer_{k}": v for k, v in low_b.items()},
        }
    return out


def run(truncation: int, days: int, dt_minutes: float, save_days: tuple[int, ...]) -> xr.Dataset:
    """Integrate the JW06 wave in dinosaur for ``days`` days; ps at ``save_days`` on a 1-degree grid."""
    import jax
    from dinosaur import (
        coordinate_systems,
        primitive_equations,
        primitive_equations_states,
        scales,
        sigma_coordinates,
        spherical_harmonic,
        time_integration,
        xarray_utils,
    )

    units = scales.units
    grid = {42: spherical_harmonic.Grid.T42, 85: spherical_harmonic.Grid.T85}[truncation]()
    levels = SigmaLevels.jablonowski_williamson()
    vertical = sigma_coordinates.SigmaCoordinates(np.asarray(levels.half))
    coords = coordinate_systems.CoordinateSystem(grid, vertical)
    specs = primitive_equations.PrimitiveEquationsSpecs.from_si()

    initial_state_fn, aux = primitive_equations_states.steady_state_jw(coords, specs)
    state = initial_state_fn() + primitive_equations_states.baroclinic_perturbation_jw(coords, specs)
    orography = primitive_equations.truncated_modal_orography(aux[xarray_utils.OROGRAPHY], coords)
    eq = primitive_equations.PrimitiveEquationsSigma(aux[xarray_utils.REF_TEMP_KEY], orography, coords, specs)
    dt = specs.nondimensionalize(dt_minutes * units.minute)
    steps_per_day = round(24 * 60 / dt_minutes)
    if abs(steps_per_day * dt_minutes - 24 * 60) > 1e-6:
        raise SystemExit(f"--dt-minutes {dt_minutes}: must divide a day")
    step = time_integration.step_with_filters(
        time_integration.imex_rk_sil3(eq, dt),
        [time_integration.exponential_step_filter(grid, dt, tau=0.0087504, order=1.5, cutoff=0.8)],
    )
    one_day = jax.jit(time_integration.repeated(step, steps_per_day))

    # A grid of the same wavenumbers on 1-degree nodes: to_nodal there evaluates the spectral
    # series exactly at the regular points (no interpolation).
    out_grid = spherical_harmonic.Grid(
        longitude_wavenumbers=grid.longitude_wavenumbers,
        total_wavenumbers=grid.total_wavenumbers,
        longitude_nodes=360,
        latitude_nodes=181,
        latitude_spacing="equiangular_with_poles",
    )
    lat = np.linspace(-90.0, 90.0, 181)
    lon = np.arange(360.0)

    def surface_pressure(s: primitive_equations.State) -> np.ndarray:
        log_ps = np.asarray(out_grid.to_nodal(s.log_surface_pressure))[0]  # (lon, lat)
        ps = specs.dimensionalize(np.exp(log_ps), units.pascal).magnitude
        return np.asarray(ps, dtype=np.float64).T  # (lat, lon)

    day_times: list[float] = []
    saved: dict[int, np.ndarray] = {}
    for day in range(1, days + 1):
        t0 = time.perf_counter()
        state = jax.block_until_ready(one_day(state))
        day_times.append(time.perf_counter() - t0)
        if day in save_days:
            saved[day] = surface_pressure(state)
    if not np.all(np.isfinite(np.stack(list(saved.values())))):
        raise SystemExit(f"dinosaur T{truncation}: non-finite surface pressure (unstable at dt = {dt_minutes} min)")

    per_day = statistics.median(day_times[1:]) if days > 1 else float("nan")
    ds = xr.Dataset(
        {"sp": (("day", "lat", "lon"), np.stack([saved[d] for d in sorted(saved)]).astype(np.float32))},
        coords={
            "day": ("day", np.array(sorted(saved)), {"long_name": "simulated days since the initial state"}),
            "lat": lat,
            "lon": lon,
        },
    )
    ds["sp"].attrs = {"units": "Pa", "long_name": "surface pressure"}
    ds["lat"].attrs, ds["lon"].attrs = {"units": "degrees_north"}, {"units": "degrees_east"}
    ds.attrs = {
        "title": f"Jablonowski-Williamson (2006) baroclinic wave, dinosaur T{truncation}L{levels.nlev} sigma",
        "model": f"dinosaur {version('dinosaur')} (jax {version('jax')}), PrimitiveEquationsSigma, imex_rk_sil3",
        "truncation": truncation,
        "levels": "SigmaLevels.jablonowski_williamson() (JW06 table A+B, top 0)",
        "dt_minutes": dt_minutes,
        "filter": "exponential_step_filter(tau=0.0087504, order=1.5, cutoff=0.8)",
        "precision": "float64" if jax.config.jax_enable_x64 else "float32",
        "cpu_threads": len(os.sched_getaffinity(0)),
        "jit_warmup_s": day_times[0] - per_day if days > 1 else day_times[0],
        "wall_s_per_simulated_day": per_day,
        "day_wall_s": json.dumps([round(t, 3) for t in day_times]),
    }
    for d in sorted(saved):
        ds.attrs[f"lows_day{d}"] = json.dumps(_lows(saved[d] / 100.0, lat, lon)[:6])
    return ds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--truncation", type=int, action="append", choices=sorted(DEFAULT_DT_MINUTES), help="42 and/or 85"
    )
    parser.add_argument("--days", type=int, default=9, help="simulated days (default 9)")
    parser.add_argument("--dt-minutes", type=float, default=None, help="time step (default 20 at T42, 10 at T85)")
    parser.add_argument(
        "--save-days", type=int, nargs="+", default=[8, 9], help="days whose ps is written (default 8 9)"
    )
    parser.add_argument("--float32", action="store_true", help="run in float32 (dinosaur's default) instead of float64")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where the netCDF files go (benchmarks/results)")
    parser.add_argument(
        "--compare",
        type=Path,
        nargs=2,
        metavar=("OURS_NC", "PEER_NC"),
        help="no run: compare the 'sp' (day, lat, lon) of two files written on this script's grid",
    )
    args = parser.parse_args(argv)
    if args.compare:
        with (
            xr.open_dataset(args.compare[0], decode_times=False) as ours,
            xr.open_dataset(args.compare[1], decode_times=False) as peer,
        ):
            print(json.dumps(compare(ours["sp"], peer["sp"]), indent=1))
        return 0
    if args.days < max(args.save_days) or min(args.save_days) < 1:
        parser.error(f"--save-days {args.save_days} must lie in 1..--days ({args.days})")
    try:
        import jax
    except ImportError:
        print("dinosaur_baroclinic: jax/dinosaur not installed: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    jax.config.update("jax_enable_x64", not args.float32)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    print(REFERENCE)
    for truncation in args.truncation or [42]:
        dt = args.dt_minutes or DEFAULT_DT_MINUTES[truncation]
        ds = run(truncation, args.days, dt, tuple(args.save_days))
        path = args.out_dir / f"dinosaur_jw06_T{truncation}L26.nc"
        tmp = path.with_suffix(".nc.tmp")
        ds.to_netcdf(tmp)
        tmp.replace(path)
        a = ds.attrs
        print(
            f"T{truncation}L26 dt={dt:g} min {a['precision']} on {a['cpu_threads']} threads: "
            f"{a['wall_s_per_simulated_day']:.2f} s per simulated day, JIT warm-up {a['jit_warmup_s']:.1f} s -> {path}"
        )
        for d in ds.day.values:
            lows = json.loads(a[f"lows_day{d}"])
            text = ", ".join(f"{r['ps_hpa']:.1f} hPa at {r['lat']:.0f}N {r['lon']:.0f}E" for r in lows[:4])
            print(f"  day {d}: min ps {float(ds.sp.sel(day=d).where(ds.lat > 0).min()) / 100:.2f} hPa; lows: {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
