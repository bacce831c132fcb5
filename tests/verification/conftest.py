"""Real-data fixtures for the verification tests.

``radar_pair`` reads two consecutive MeteoSwiss radar frames from the sample data (frame t as
"forecast", t + 5 min as "observation": a persistence nowcast), and skips cleanly when the
data or pysteps is absent. Synthetic factories live in ``verification_factories``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from engine.config import Settings

MCH_EVENT = Path("pysteps-data/radar/mch/20160711")


@pytest.fixture(scope="session")
def radar_pair() -> tuple[xr.DataArray, xr.DataArray]:
    """Two consecutive MeteoSwiss rain-rate frames (mm h-1), dims (y, x), NaN outside the radar range."""
    settings = Settings.from_env()
    if settings.data_root is None or not (settings.data_root / MCH_EVENT).is_dir():
        pytest.skip("sample radar data not available (set METEOLENS_DATA)")
    io = pytest.importorskip("pysteps.io")
    utils = pytest.importorskip("pysteps.utils")
    files = sorted((settings.data_root / MCH_EVENT).glob("AQC*.gif"))
    if len(files) < 12:
        pytest.skip("not enough MeteoSwiss frames in the sample data")
    frames = []
    for path in files[10:12]:  # 2016-07-11 21:35 and 21:40 UTC: widespread convection
        rain, _, meta = io.import_mch_gif(str(path), product="AQC", unit="mm", accutime=5.0)
        rain, meta = utils.to_rainrate(rain, meta)
        frames.append(
            xr.DataArray(
                np.asarray(rain, dtype=float),
                dims=["y", "x"],
                attrs={"units": "mm h-1", "source": path.name, "pixelsize_km": meta["xpixelsize"] / 1000.0},
            )
        )
    return frames[0], frames[1]


@pytest.fixture(scope="session")
def era5_ensemble() -> tuple[xr.DataArray, xr.DataArray]:
    """ERA5 ensemble of data assimilations, t850 (K): members 1-9 as ensemble, member 0 as "truth".

    A perfect-model pair: the truth is statistically one more member, so the ensemble is
    reliable by construction. Dims: member, time, lat, lon (3-degree global grid).
    """
    settings = Settings.from_env()
    path = (
        None if settings.data_root is None else settings.data_root / "cfgrib/tests/sample-data/era5-levels-members.grib"
    )
    if path is None or not path.is_file():
        pytest.skip("ERA5 ensemble sample file not available (set METEOLENS_DATA)")
    pytest.importorskip("cfgrib")
    ds = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""})
    t = ds["t"].sel(isobaricInhPa=850.0, drop=True).rename(number="member", latitude="lat", longitude="lon").load()
    t = t.drop_vars([c for c in t.coords if c not in t.dims])
    return t.isel(member=slice(1, None)), t.isel(member=0, drop=True)
