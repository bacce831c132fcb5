"""A slice of every sample dataset survives a round trip through a run store unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from engine import datasets
from engine.readers import open_any
from engine.storage.zarr_store import open_run_store, read_provenance, write_run_store

CATALOGUE = datasets.load_catalogue()
# Boundaries are ragged polygon arrays, not fields; they are checked by the boundary reader tests.
FIELDS = sorted(n for n, d in CATALOGUE.items() if d.kind != "boundaries")


def _slice(ds: xr.Dataset, n: int = 24) -> xr.Dataset:
    """First time step and at most ``n`` points along every other dim (keeps every coord/var kind)."""
    index = {}
    for dim, size in ds.sizes.items():
        if dim in ("time", "init_time", "lead_time"):
            index[dim] = slice(0, 1)
        else:
            index[dim] = slice(0, min(size, n))
    return ds.isel(index)


@pytest.mark.parametrize("name", FIELDS)
def test_dataset_slice_round_trips(name: str, data_root: Path, tmp_path: Path) -> None:
    meta = CATALOGUE[name]
    original = _slice(open_any(meta.paths(data_root)[0], format=meta.format)).load()
    store = write_run_store(original, tmp_path / f"{name}.zarr",
                            provenance={"model": "sample-data", "inputs": [str(meta.paths(data_root)[0])]})
    back = open_run_store(store).load()

    assert set(back.data_vars) == set(original.data_vars)
    for var in original.data_vars:
        a, b = original[var], back[var]
        assert a.dims == b.dims
        assert b.dtype == a.dtype, f"{var}: dtype {a.dtype} came back as {b.dtype}"
        if a.dtype.kind in "fiu":
            np.testing.assert_array_equal(a.values, b.values)  # NaN (no data) stays NaN, 0 stays 0
        else:
            assert (a.values == b.values).all()
        for key in ("units", "grid_mapping"):
            assert a.attrs.get(key) == b.attrs.get(key)
    for coord in original.coords:
        np.testing.assert_array_equal(original[coord].values, back[coord].values)
    if "crs" in original:
        assert back["crs"].attrs.get("crs_wkt") == original["crs"].attrs.get("crs_wkt")
    prov = read_provenance(store)
    assert prov["model"] == "sample-data"
    assert "software" in prov and "created" in prov
