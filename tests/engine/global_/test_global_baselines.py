"""Persistence and climatology baselines."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from engine.errors import CoordError
from engine.models.global_.baselines import climatology, persistence


def _clim() -> xr.Dataset:
    lat = np.linspace(90, -90, 7)
    lon = np.arange(12) * 30.0 - 180.0
    z = np.stack([np.full((7, 12), 5.0e4), np.full((7, 12), 5.6e4)])
    return xr.Dataset({"z500": (("month", "lat", "lon"), z)}, coords={"month": [1, 7], "lat": lat, "lon": lon})


def test_persistence_repeats_the_analysis() -> None:
    ana = xr.Dataset({"z500": (("member", "lat", "lon"), np.random.default_rng(1).normal(5e4, 100, (2, 5, 8)))},
                     coords={"time": np.datetime64("2017-01-01T00", "ns"), "member": [0, 1], "lat": np.linspace(90, -90, 5), "lon": np.arange(8) * 45.0})
    fc = persistence(ana, [0, 12, 24])
    assert fc.sizes["lead_time"] == 3
    for k in range(3):
        np.testing.assert_array_equal(fc["z500"].isel(lead_time=k).values, ana["z500"].values)
    assert fc["valid_time"].values[-1] == np.datetime64("2017-01-02T00", "ns")


def test_climatology_picks_month_of_valid_time() -> None:
    valid = np.array(["2017-01-31T12", "2017-07-01T00"], dtype="datetime64[ns]")
    fc = climatology(_clim(), valid, np.array([45.0, -45.0]), np.array([0.0, 90.0, 180.0]))
    assert np.allclose(fc["z500"].values[0], 5.0e4) and np.allclose(fc["z500"].values[1], 5.6e4)


def test_climatology_missing_month_is_an_error() -> None:
    with pytest.raises(CoordError, match=r"clim\.nc: no climatology for month\(s\) \[3\]"):
        climatology(_clim(), np.array(["2017-03-01"], dtype="datetime64[ns]"), np.zeros(1), np.zeros(4) + [0, 90, 180, 270], source="clim.nc")
