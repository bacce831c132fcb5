"""Reading benchmark: open time of every sample dataset, and one MRMS frame against pysteps.

Run by hand (never in the test suite)::

    .venv/bin/python benchmarks/bench_read.py [--repeat 3]

For each dataset in ``assets/datasets.toml`` it times opening one file with meteolens' reader
(values loaded into memory, so lazy readers are not flattered) and, for multi-file datasets, the
whole dataset. Then it reads the same MRMS 7000 x 3500 PrecipRate frame with meteolens and with
pysteps' importer, in the same process, and prints the ratio. Prints markdown tables.
"""

from __future__ import annotations

import argparse

import pyproj  # noqa: F401  (before ecCodes; see engine/__init__.py)
import xarray as xr
from timing import median_time

from engine import datasets
from engine.config import Settings
from engine.readers import open_any


def load(ds: xr.Dataset) -> xr.Dataset:
    return ds.load()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = Settings.from_env().data_root
    if root is None:
        raise SystemExit("no sample data: set METEOLENS_DATA")

    print("| dataset | format | files | one file (s) | whole dataset (s) | shape of one file |")
    print("|---|---|---:|---:|---:|---|")
    for name, meta in datasets.load_catalogue().items():
        paths = meta.paths(root)
        ds = load(open_any(paths[0], format=meta.format))
        t_one = median_time(lambda p=paths[0], f=meta.format: load(open_any(p, format=f)), args.repeat, warmup=False)
        shape = ", ".join(f"{k}={v}" for k, v in ds.sizes.items())
        whole = "-"
        # Whole-dataset time for multi-file sets that fit comfortably (not the 3.5 GB MRMS sequence).
        if len(paths) > 1 and name != "mrms-2019-06-10":
            t_all = median_time(lambda n=name: load(datasets.open_dataset(n, root)), 1, warmup=False)
            whole = f"{t_all:.3f}"
        print(f"| {name} | {meta.format} | {len(paths)} | {t_one:.3f} | {whole} | {shape} |")

    # pysteps' MRMS importer needs pygrib, which must run in its own process (see bench_read_radar).
    from bench_read_radar import pysteps_mrms_time

    mrms = datasets.get("mrms-2019-06-10").paths(root)[0]
    repeat = args.repeat + 2
    ours = load(open_any(mrms))
    t_ours = median_time(lambda: load(open_any(mrms)), repeat, warmup=False)
    t_peer = pysteps_mrms_time(mrms, repeat)
    print()
    print(f"MRMS frame {mrms.name} ({ours['precip_rate'].shape[-2]} x {ours['precip_rate'].shape[-1]}), median of {repeat}:")
    print()
    print("| reader | seconds | ratio (pysteps / meteolens) |")
    print("|---|---:|---:|")
    if t_peer is None:
        print(f"| meteolens | {t_ours:.3f} | - |")
        print("| pysteps import_mrms_grib | not run: pygrib missing (bash .ci/setup installs it) | - |")
    else:
        print(f"| meteolens | {t_ours:.3f} | {t_peer / t_ours:.2f} |")
        print(f"| pysteps import_mrms_grib | {t_peer:.3f} | 1.00 |")

if __name__ == "__main__":
    main()
