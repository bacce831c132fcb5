"""Synthetic, seeded, tiny factories for the verification tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr


def make_field(*, n_lead: int = 3, ny: int = 8, nx: int = 9, seed: int = 0, nan_fraction: float = 0.0) -> xr.DataArray:
    """Gaussian random field with dims (lead_time, y, x) and coords, optionally with NaN holes."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(n_lead, ny, nx))
    if nan_fraction:
        data[rng.random(data.shape) < nan_fraction] = np.nan
    return xr.DataArray(
        data,
        dims=["lead_time", "y", "x"],
        coords={"lead_time": pd.to_timedelta(np.arange(n_lead), "h"), "y": np.arange(ny), "x": np.arange(nx)},
        name="t2m",
    )


def make_pair(**kwargs: int | float) -> tuple[xr.DataArray, xr.DataArray]:
    """Correlated forecast/observation pair: obs = 0.8 fcst + noise."""
    seed = int(kwargs.pop("seed", 0))
    fcst = make_field(seed=seed, **kwargs)  # type: ignore[arg-type]
    noise = make_field(seed=seed + 1000, **kwargs)  # type: ignore[arg-type]
    return fcst, 0.8 * fcst + 0.6 * noise


def make_ensemble(
    *, n_member: int = 7, n_time: int = 40, n_station: int = 5, seed: int = 0
) -> tuple[xr.DataArray, xr.DataArray]:
    """Ensemble (member, time, station) and an observation (time, station), continuous values."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n_time, n_station))
    ens = truth[None] + rng.normal(scale=1.2, size=(n_member, n_time, n_station)) + 0.3
    coords = {"time": np.arange(n_time), "station": [f"S{i}" for i in range(n_station)]}
    fcst = xr.DataArray(ens, dims=["member", "time", "station"], coords={**coords, "member": np.arange(n_member)})
    obs = xr.DataArray(truth, dims=["time", "station"], coords=coords)
    return fcst, obs


def make_rain(*, ny: int = 96, nx: int = 80, seed: int = 0, n_cells: int = 6) -> np.ndarray:
    """Non-negative rain-like field: a few Gaussian cells of random size and intensity (mm h-1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ny, 0:nx]
    field = np.zeros((ny, nx))
    for _ in range(n_cells):
        cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
        sig = rng.uniform(3, 9)
        field += rng.uniform(1, 20) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sig**2))
    field[field < 0.05] = 0.0
    return field
