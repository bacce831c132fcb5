"""Radar reader benchmark: open time of one file per radar format, meteolens vs pysteps' importer.

Run by hand (never in the test suite)::

    .venv/bin/python benchmarks/bench_read_radar.py [--repeat 5]

Both sides are timed in the same run as the median of ``--repeat`` calls on the same file (the
first call is a warm-up and not counted, so both have warm OS caches; meteolens' per-grid lat/lon
cache is then warm too, as it is when a sequence is read). meteolens returns the full canonical
Dataset (mm h-1 float32, 2-D lat/lon, CRS); pysteps returns a numpy array plus metadata without
lat/lon, and its MCH/KNMI/BoM values are accumulations that still need ``to_rainrate``.

The ODIM file is written to a temporary folder from the FMI frame (there is no ODIM sample).
MRMS is the full 7000 x 3500 frame at full resolution (``window_size=1`` for pysteps); pysteps'
importer needs pygrib, whose wheel bundles a second libeccodes that crashes a process already
using eccodes, so that side runs in a subprocess with pygrib from ``$VIRTUAL_ENV/isolated/pygrib``
(``pip install --no-deps --target .venv/isolated/pygrib pygrib``) and times itself there.
Timings on a shared machine are noisy: treat them as indicative.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyproj  # noqa: F401  (before ecCodes; see engine/__init__.py)
from pyproj import CRS, Transformer
from timing import median_time

from engine.config import Settings
from engine.readers import readers

FILES = {
    "mch_gif": "radar/mch/20150515/AQC151351745F_00005.801.gif",
    "knmi_hdf5": "radar/KNMI/2010/08/RAD_NL25_RAP_5min_201008260150.h5",
    "bom_netcdf": "radar/bom/prcp-c10/66/2020/10/31/66_20201031_100000.prcp-c10.nc",
    "fmi_pgm": "radar/fmi/pgm/20160928/201609281645_fmi.radar.composite.lowest_FIN_SUOMI1.pgm.gz",
    "mrms_grib2": "mrms/2019/06/10/PrecipRate_00.00_20190610-010600.grib2",
}

_PYSTEPS_MRMS = """
import statistics, sys, time
from pysteps.io.importers import import_mrms_grib
times = []
for _ in range(int(sys.argv[2]) + 1):
    t0 = time.perf_counter()
    import_mrms_grib(sys.argv[1], window_size=1, dtype="float32")
    times.append(time.perf_counter() - t0)
print(statistics.median(times[1:]))
"""


def write_odim_from_fmi(fmi_path: Path, out: Path) -> Path:
    """An ODIM_H5 DBZH composite holding the FMI frame (8-bit, gain 0.5, offset -32)."""
    import h5py
    import numpy as np

    ds = readers.get("fmi_pgm")().open(fmi_path, variables=["reflectivity"])
    dbz = ds["reflectivity"].values[0]
    raw = np.where(np.isnan(dbz), 255, dbz * 2 + 64).astype("uint8")
    projdef = "+proj=stere +lon_0=25 +lat_0=90 +lat_ts=60 +a=6371288 +x_0=380886.310 +y_0=3395677.920 +no_defs"
    x, y = ds["x"].values, ds["y"].values
    dx, dy = x[1] - x[0], y[0] - y[1]
    crs = CRS.from_proj4(projdef)
    to_ll = Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
    corners = {
        "UL": (x[0] - dx / 2, y[0] + dy / 2),
        "LL": (x[0] - dx / 2, y[-1] - dy / 2),
        "UR": (x[-1] + dx / 2, y[0] + dy / 2),
        "LR": (x[-1] + dx / 2, y[-1] - dy / 2),
    }
    with h5py.File(out, "w") as f:
        f.attrs["Conventions"] = np.bytes_(b"ODIM_H5/V2_2")
        f.create_group("what").attrs.update(
            {"object": np.bytes_(b"COMP"), "date": np.bytes_(b"20160928"), "time": np.bytes_(b"164500")}
        )
        where = f.create_group("where")
        where.attrs.update({"projdef": np.bytes_(projdef.encode()), "xsize": raw.shape[1], "ysize": raw.shape[0]})
        where.attrs.update({"xscale": float(dx), "yscale": float(dy)})
        for name, xy in corners.items():
            lon, lat = to_ll.transform(*xy)
            where.attrs.update({f"{name}_lon": lon, f"{name}_lat": lat})
        d = f.create_group("dataset1")
        d.create_group("what").attrs.update({"enddate": np.bytes_(b"20160928"), "endtime": np.bytes_(b"164500")})
        g = d.create_group("data1")
        g.create_dataset("data", data=raw, compression="gzip", compression_opts=6)
        g.create_group("what").attrs.update(
            {"quantity": np.bytes_(b"DBZH"), "gain": 0.5, "offset": -32.0, "nodata": 255.0, "undetect": 0.0}
        )
    return out


def pysteps_mrms_time(path: Path, repeat: int) -> float | None:
    """Median time of pysteps' MRMS importer, measured in a subprocess; None without pygrib."""
    pygrib_dir = Path(sys.prefix) / "isolated" / "pygrib"
    if not (pygrib_dir / "pygrib").is_dir():
        return None
    env = {**os.environ, "PYTHONPATH": str(pygrib_dir)}
    out = subprocess.run(
        [sys.executable, "-c", _PYSTEPS_MRMS, str(path), str(repeat)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    root = Settings.from_env().data_root
    if root is None:
        raise SystemExit("no sample data: set METEOLENS_DATA")
    base = root / "pysteps-data"
    from pysteps.io import importers as ps

    with tempfile.TemporaryDirectory() as tmp:
        odim = write_odim_from_fmi(base / FILES["fmi_pgm"], Path(tmp) / "fmi_odim.h5")
        cases: list[tuple[str, Path, Callable[[], object] | None]] = [
            ("mch_gif", base / FILES["mch_gif"], lambda p: ps.import_mch_gif(str(p), "AQC", "mm", 5.0)),
            ("knmi_hdf5", base / FILES["knmi_hdf5"], lambda p: ps.import_knmi_hdf5(str(p))),
            ("bom_netcdf", base / FILES["bom_netcdf"], lambda p: ps.import_bom_rf3(str(p))),
            ("fmi_pgm", base / FILES["fmi_pgm"], lambda p: ps.import_fmi_pgm(str(p), gzipped=True)),
            ("odim_hdf5", odim, lambda p: ps.import_odim_hdf5(str(p), qty="DBZH")),
            ("mrms_grib2", base / FILES["mrms_grib2"], None),
        ]
        print(f"median of {args.repeat} runs after one warm-up; ratio = pysteps / meteolens (> 1: meteolens faster)\n")
        print("| format | file | grid | meteolens (ms) | pysteps (ms) | ratio |")
        print("|---|---|---|---:|---:|---:|")
        for name, path, peer in cases:
            reader = readers.get(name)()
            ds = reader.open(path)
            ours = median_time(lambda r=reader, p=path: r.open(p), args.repeat)
            if peer is None:
                theirs = pysteps_mrms_time(path, args.repeat)
            else:
                theirs = median_time(lambda f=peer, p=path: f(p), args.repeat)
            grid = "x".join(str(ds.sizes[d]) for d in ("y", "x"))
            t_ps = "n/a" if theirs is None else f"{theirs * 1e3:.0f}"
            ratio = "n/a" if theirs is None else f"{theirs / ours:.2f}"
            print(f"| {name} | {path.name} | {grid} | {ours * 1e3:.0f} | {t_ps} | {ratio} |")
        mrms = readers.get("mrms_grib2")()
        win = median_time(lambda: mrms.open(base / FILES["mrms_grib2"], extent=(-100, -90, 30, 40)), args.repeat)
        print(
            f"| mrms_grib2 (extent 10x10 deg) | {Path(FILES['mrms_grib2']).name} | 1000x1000 | {win * 1e3:.0f} | - | - |"
        )


if __name__ == "__main__":
    main()
