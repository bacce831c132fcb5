"""Fixtures for the regional tests: MeteoSwiss radar and its 24 km block means, EURO-CORDEX terrain."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr
from regional_helpers import coarsen_radar


@pytest.fixture(scope="session")
def radar(data_root: Path) -> xr.Dataset:
    """The last hour (12 frames, 17:55-18:50... UTC) of the MeteoSwiss composite of 2015-05-15, 1 km, projected."""
    from engine.datasets import open_dataset

    try:
        ds = open_dataset("mch-2015-05-15", data_root)
    except Exception as err:  # noqa: BLE001 - sample files absent: skip like the other data tests
        pytest.skip(f"MeteoSwiss sample radar not available: {err}")
    return ds.isel(time=slice(-12, None)).load()


@pytest.fixture(scope="session")
def coarse_radar(radar: xr.Dataset) -> xr.Dataset:
    """The radar block-averaged 24 x 24 (about 24 km) on the same Swiss projection."""
    return coarsen_radar(radar)


@pytest.fixture(scope="session")
def hsurf(data_root: Path) -> xr.Dataset:
    """EURO-CORDEX 0.11 deg model orography (rotated pole, covers the Alps)."""
    from engine.datasets import open_dataset

    try:
        return open_dataset("hsurf-euro-cordex", data_root).load()
    except Exception as err:  # noqa: BLE001
        pytest.skip(f"HSURF terrain not available: {err}")
