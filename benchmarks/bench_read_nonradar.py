"""Non-radar reader benchmark: meteolens readers against the bare library call on the same file.

Run by hand (never in the test suite)::

    .venv/bin/python benchmarks/bench_read_nonradar.py [--repeat 3]

For every format it times meteolens' reader (values loaded, canonical names, units converted,
georeferencing built) and the plain library read of the same file that it builds on (cfgrib,
xarray/netCDF4, pandas, tifffile, numpy.loadtxt, json), in the same process, as the median of
``--repeat`` calls after one warm-up call. The ratio is the cost of the translation layer. The
peers do less work (no unit conversion, no canonical names; for TopoJSON no arc decoding at
all), so a ratio above 1 is expected. Timings on a shared machine are noisy: indicative only.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyproj  # noqa: F401  (before ecCodes; see engine/readers/grib.py)
import tifffile
import xarray as xr
from timing import median_time

from engine.config import Settings
from engine.readers import open_any


def cases(root: Path) -> list[tuple[str, str, Path, Callable[[Path], object]]]:
    """(format, peer description, file, peer call) for one file of each format."""

    def cfgrib_all(p: Path) -> object:
        import cfgrib

        return [ds.load() for ds in cfgrib.open_datasets(str(p), backend_kwargs={"indexpath": ""})]

    def xr_load(p: Path) -> object:
        with xr.open_dataset(p) as ds:
            return ds.load()

    def loadtxt3(p: Path) -> object:
        stem = p.name.removesuffix("data.gz")
        return [np.loadtxt(p.with_name(f"{stem}{part}.gz")) for part in ("data", "lats", "lons")]

    def json_load(p: Path) -> object:
        with open(p) as f:
            return json.load(f)

    return [
        ("grib (ERA5 EDA, 160 msgs)", "cfgrib.open_datasets + load", root / "cfgrib/tests/sample-data/era5-levels-members.grib", cfgrib_all),
        ("grib (ERA5 t2m, 744 msgs)", "cfgrib.open_datasets + load", root / "xarray-data/era5-2mt-2019-03-uk.grib", cfgrib_all),
        ("grib (spectral T63)", "cfgrib.open_datasets + load (no grid)", root / "cfgrib/tests/sample-data/spherical_harmonics.grib", cfgrib_all),
        ("netcdf_grid (ERA-Interim)", "xarray.open_dataset + load", root / "xarray-data/eraint_uvz.nc", xr_load),
        ("netcdf_grid (N512 orography)", "xarray.open_dataset + load", root / "speedyweather/input_data/orography.nc", xr_load),
        ("station_reports", "xarray.open_dataset + load", root / "geocat-datafiles/netcdf_files/95031812_sao.cdf", xr_load),
        ("foehnix_csv", "pandas.read_csv", root / "rfoehnix/data-raw/ellboegen.csv",
         lambda p: pd.read_csv(p, sep=";", na_values="NA", skipinitialspace=True)),
        ("asos_text", "pandas.read_csv", root / "pythia-datasets/data/jan-17-co-asos.txt.xz",
         lambda p: pd.read_csv(p, sep="\t", na_values="M", skipinitialspace=True)),
        ("geotiff", "tifffile.imread", root / "oggm-sample-data/test-workflow/srtm_oetztal.tif", tifffile.imread),
        ("netcdf_dem (rotated pole)", "xarray.open_dataset + load", root / "geocat-datafiles/netcdf_files/HSURF_regional_model_0.11deg.nc", xr_load),
        ("etopo_text", "numpy.loadtxt x3", root / "basemap/doc/examples/etopo20data.gz", loadtxt3),
        ("topojson (50m countries)", "json.load (no arc decoding)", root / "natural-earth/world-atlas/countries-50m.json", json_load),
        ("geojson", "json.load", root / "natural-earth/geo-boundaries-world-110m/countries.geojson", json_load),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = Settings.from_env().data_root
    if root is None:
        raise SystemExit("no sample data folder: set METEOLENS_DATA")
    print("| format | file | meteolens (s) | peer | peer (s) | ratio |\n|---|---|---:|---|---:|---:|")
    for fmt, peer_name, path, peer in cases(root):
        ours = median_time(lambda p=path: open_any(p).load(), args.repeat)
        theirs = median_time(lambda p=path, f=peer: f(p), args.repeat)
        print(f"| {fmt} | {path.name} | {ours:.3f} | {peer_name} | {theirs:.3f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
