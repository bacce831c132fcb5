"""Helpers shared by the regional tests (a uniquely named module: every test folder has a conftest)."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from engine.coords import attach_projection, crs_of
from engine.models.regional.grid import LatLonGrid, ProjectedGrid, containing_cell

#: Radar pixels (1 km) per side of a coarse cell.
FACTOR = 24


def coarsen_radar(ds: xr.Dataset, factor: int = FACTOR) -> xr.Dataset:
    """Block means of ``factor x factor`` radar pixels on the same projection; a block with more
    than half its pixels missing is missing (no-data stays no-data)."""
    r = ds["precip_rate"].values
    nt, ny, nx = r.shape
    ny, nx = ny // factor * factor, nx // factor * factor
    blocks = r[:, :ny, :nx].reshape(nt, ny // factor, factor, nx // factor, factor)
    valid = np.isfinite(blocks).mean(axis=(2, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # blocks with no data at all: NaN
        mean = np.nanmean(blocks, axis=(2, 4))
    coarse = np.where(valid >= 0.5, mean, np.nan).astype("float32")
    x = ds["x"].values[:nx].reshape(-1, factor).mean(1)
    y = ds["y"].values[:ny].reshape(-1, factor).mean(1)
    out = xr.Dataset({"precip_rate": (("time", "y", "x"), coarse, dict(ds["precip_rate"].attrs))},
                     coords={"time": ds["time"].values})
    with warnings.catch_warnings():
        # CF has no parameter for the Swiss grid's skew angle; crs_wkt keeps it (as in the reader).
        warnings.filterwarnings("ignore", message="angle from rectified to skew grid", category=UserWarning)
        out = attach_projection(out, crs_of(ds), x=x, y=y)
    out.attrs.update(ds.attrs, source_files="mch-2015-05-15 (24 km block means)")
    return out


def aggregate(fine: np.ndarray, src: ProjectedGrid | LatLonGrid, grid: LatLonGrid) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the finite fine values per source cell (by the cell containing each fine centre), and counts."""
    cell = containing_cell(*src.positions(grid), src.shape).ravel()
    n_cells = src.shape[0] * src.shape[1]
    flat = fine.reshape(-1, cell.size)
    means, counts = [], []
    for f in flat:
        ok = np.isfinite(f) & (cell >= 0)
        n = np.bincount(cell[ok], minlength=n_cells)
        s = np.bincount(cell[ok], weights=f[ok], minlength=n_cells)
        means.append(np.where(n > 0, s / np.maximum(n, 1), np.nan))
        counts.append(n)
    return np.array(means), np.array(counts)
