"""Lapse-rate temperature downscaling: exactness, inversions, constants, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from engine.errors import CoordError, VariableNotFoundError, WxError
from engine.models.regional.downscale import downscale_dataset
from engine.models.regional.grid import LatLonGrid, block_mean, interp_regular, target_grid
from engine.models.regional.temperature import STANDARD_LAPSE, LapseRateDownscaler, local_lapse_rate

FACTOR = 4


def _terrain(fine: LatLonGrid, seed: int = 0, widths: tuple[float, float] = (1.5, 5.0), n: int = 30) -> np.ndarray:
    """Random hills of 1.5-5 fine cells width (sub-coarse-grid relief, up to about 1.5 km)."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.arange(fine.shape[0]), np.arange(fine.shape[1]), indexing="ij")
    z = np.zeros(fine.shape)
    for _ in range(n):
        cy, cx = rng.uniform(0, fine.shape[0]), rng.uniform(0, fine.shape[1])
        w = rng.uniform(*widths)
        z += rng.uniform(200, 900) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * w**2))
    return z


def _grids() -> tuple[LatLonGrid, LatLonGrid]:
    fine = target_grid(45.0, 47.4, 8.0, 11.2, 0.05)  # 48 x 64
    coarse = LatLonGrid(fine.lat.reshape(-1, FACTOR).mean(1), fine.lon.reshape(-1, FACTOR).mean(1))
    return fine, coarse


def _coords(g: LatLonGrid) -> dict[str, np.ndarray]:
    return {"lat": g.lat, "lon": g.lon}


def test_exact_on_a_linear_lapse_atmosphere() -> None:
    # T = T0 + a*lon + b*lat + gamma*z is linear in (lon, lat, z): block means of T and z keep
    # that relation exactly on the coarse grid, the local regression recovers gamma and the
    # planar trend, and reduce-interpolate-restore reproduces the fine truth.
    fine, coarse = _grids()
    z = _terrain(fine)
    gamma = -0.0048
    lat2, lon2 = np.meshgrid(fine.lat, fine.lon, indexing="ij")
    truth = 288.0 + 0.3 * (lon2 - 8.0) - 0.8 * (lat2 - 45.0) + gamma * z
    t_c = block_mean(torch.from_numpy(truth)[None], FACTOR)
    z_c = block_mean(torch.from_numpy(z), FACTOR).numpy()

    g = local_lapse_rate(t_c, torch.from_numpy(z_c), prior_relief=0.0)
    np.testing.assert_allclose(g.numpy(), gamma, atol=1e-8)  # K/m: 0.01 K/km

    model = LapseRateDownscaler(z, z_c, prior_relief=0.0)
    out = model(t_c, _coords(coarse), _coords(fine))[0].numpy()
    np.testing.assert_allclose(out, truth, atol=1e-4)
    # The bilinear baseline misses the terrain by degrees; the lapse-rate method does not.
    bil = interp_regular(t_c, coarse, fine)[0].numpy()
    assert np.abs(bil - truth).max() > 1.0
    # With the default weak prior towards -6.5 K/km the error stays a fraction of bilinear's.
    default = LapseRateDownscaler(z, z_c)(t_c, _coords(coarse), _coords(fine))[0].numpy()
    assert np.abs(default - truth).max() < 0.25 * np.abs(bil - truth).max()


def test_inversion_gives_positive_lapse_and_cold_valleys() -> None:
    fine, coarse = _grids()
    # Broad mountains carrying small valleys: relief on both the coarse and the sub-grid scale.
    z = _terrain(fine, seed=1, widths=(8.0, 16.0), n=8) + _terrain(fine, seed=3, widths=(1.5, 3.0), n=30)
    # Cold-air pool: temperature rises 8 K/km with height (a valley inversion).
    truth = 268.0 + 0.008 * z
    t_c = block_mean(torch.from_numpy(truth)[None], FACTOR)
    z_c = block_mean(torch.from_numpy(z), FACTOR).numpy()
    local = LapseRateDownscaler(z, z_c)
    gamma = local.lapse_rate(t_c, coarse, fine)
    # Positive lapse rate nearly everywhere (the prior may win only where the coarse relief,
    # once the planar trend is removed, is a few tens of metres).
    assert float((gamma > 0).double().mean()) > 0.9
    assert float(gamma.median()) > 0.006
    out = local(t_c, _coords(coarse), _coords(fine))[0].numpy()
    fixed = LapseRateDownscaler(z, z_c, fixed_lapse=STANDARD_LAPSE)(t_c, _coords(coarse), _coords(fine))[0].numpy()
    bil = interp_regular(t_c, coarse, fine)[0].numpy()
    z_ci = interp_regular(torch.from_numpy(z_c), coarse, fine).numpy()
    valleys = z < z_ci - 100  # fine cells well below their coarse cell's mean height
    ridges = z > z_ci + 100
    assert valleys.sum() > 20 and ridges.sum() > 20
    # The local method puts cold air in the valleys and warm air on the ridges ...
    assert (out[valleys] < bil[valleys]).all()
    assert (out[ridges] > bil[ridges]).all()
    # ... where a fixed -6.5 K/km would make the valleys warmer than the coarse cell: wrong sign.
    assert (fixed[valleys] > bil[valleys]).all()
    assert np.abs(out - truth).mean() < 0.2 * np.abs(fixed - truth).mean()


def test_lapse_rate_is_clipped_and_prior_rules_flat_ground() -> None:
    t = torch.full((1, 6, 6), 280.0, dtype=torch.float64)
    flat = torch.zeros(6, 6, dtype=torch.float64)
    np.testing.assert_allclose(local_lapse_rate(t, flat).numpy(), STANDARD_LAPSE, atol=1e-6)
    # Terrain must not be a plane: a planar z is indistinguishable from the horizontal trend.
    z = torch.from_numpy(np.random.default_rng(0).uniform(0.0, 1500.0, (6, 6)))
    steep = 280.0 - 0.05 * z[None]  # 50 K/km: unphysical, clipped to the lower bound
    assert float(local_lapse_rate(steep, z, prior_relief=0.0).min()) == pytest.approx(-0.0100)


def _dataset(values: np.ndarray, grid: LatLonGrid, times: int = 3) -> xr.Dataset:
    data = np.broadcast_to(values, (times, *grid.shape)).astype("float32")
    return xr.Dataset(
        {"t2m": (("time", "lat", "lon"), data)},
        coords={"time": np.arange(times).astype("datetime64[h]"), "lat": grid.lat, "lon": grid.lon},
    )


def _dem(fine: LatLonGrid, z: np.ndarray) -> xr.Dataset:
    return xr.Dataset({"orography": (("lat", "lon"), z)}, coords={"lat": fine.lat, "lon": fine.lon})


@pytest.mark.parametrize("method", ["bilinear", "lapse_rate", "neural_field"])
def test_constant_field_on_flat_terrain_stays_constant(method: str) -> None:
    fine, coarse = _grids()
    ds = _dataset(np.full(coarse.shape, 281.5), coarse)
    dem = _dem(fine, np.full(fine.shape, 300.0))
    out = downscale_dataset(ds, "t2m", resolution=0.05, dem=dem, method=method, domain=(45.0, 47.4, 8.0, 11.2),
                            options={"steps": 3})
    assert out["t2m"].dims == ("time", "lat", "lon")
    assert out["t2m"].shape == (3, *fine.shape)
    np.testing.assert_allclose(out["t2m"].values, 281.5, atol=1e-4)
    assert out["t2m"].attrs["units"] == "K"


def test_downscale_dataset_derives_coarse_orography_from_the_dem() -> None:
    # No coarse orography given: the DEM's grid-box mean stands in, so a linear-lapse truth on
    # the fine grid is recovered from its block means.
    fine, coarse = _grids()
    z = _terrain(fine, seed=2)
    truth = 285.0 - 0.006 * z
    t_c = block_mean(torch.from_numpy(truth), FACTOR).numpy()
    ds = _dataset(t_c, coarse, times=2)
    out = downscale_dataset(ds, "t2m", resolution=0.05, dem=_dem(fine, z), domain=(45.0, 47.4, 8.0, 11.2))
    assert np.abs(out["t2m"].values[0] - truth).max() < 0.05
    np.testing.assert_allclose(out["orography"].values, z, atol=1e-3)


def test_bad_inputs() -> None:
    fine, coarse = _grids()
    ds = _dataset(np.full(coarse.shape, 280.0), coarse)
    dem = _dem(fine, np.zeros(fine.shape))
    with pytest.raises(VariableNotFoundError, match="no variable 'u10'"):
        downscale_dataset(ds, "u10", resolution=0.05, dem=dem)
    with pytest.raises(WxError, match="needs a DEM"):
        downscale_dataset(ds, "t2m", resolution=0.05, method="lapse_rate")
    with pytest.raises(WxError, match="unknown"):
        downscale_dataset(ds, "t2m", resolution=0.05, dem=dem, method="magic")
    with pytest.raises(WxError, match="applies to"):
        downscale_dataset(ds, "t2m", resolution=0.05, dem=dem, method="mass_consistent")
    with pytest.raises(CoordError, match="LAT0 < LAT1"):
        downscale_dataset(ds, "t2m", resolution=0.05, dem=dem, domain=(47, 45, 8, 11))
    with pytest.raises(CoordError, match="DEM covers"):
        downscale_dataset(ds, "t2m", resolution=0.05, dem=_dem(target_grid(10, 11, 0, 1, 0.05), np.zeros((20, 20))))
    with pytest.raises(CoordError, match="regular"):
        downscale_dataset(ds.rename(lat="y", lon="x"), "t2m", resolution=0.05, dem=dem)
    with pytest.raises(CoordError, match="missing values"):
        bad = ds.copy(deep=True)
        bad["t2m"][0, 0, 0] = np.nan
        downscale_dataset(bad, "t2m", resolution=0.05, dem=dem)
    with pytest.raises(CoordError, match="does not match"):
        LapseRateDownscaler(np.zeros((5, 5)))(torch.zeros(1, *coarse.shape), _coords(coarse), _coords(fine))
