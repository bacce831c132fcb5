"""Spherical operators of the dynamical core against closed-form fields."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.errors import CoordError
from engine.models.global_.spectral import SpectralGrid, quadratic_grid_size


@pytest.fixture(scope="module")
def grid() -> SpectralGrid:
    return SpectralGrid(21)


def test_quadratic_grid_matches_stswm_table() -> None:
    # Hack & Jakob (1992), table 1: T42 runs on 64 x 128, T21 on 32 x 64.
    assert quadratic_grid_size(42) == (64, 128)
    assert quadratic_grid_size(21) == (32, 64)


def test_solid_body_rotation_vorticity_and_inverse(grid: SpectralGrid) -> None:
    lat, lon = grid.lats.reshape(-1, 1), grid.lons.reshape(1, -1)
    u0 = 20.0
    u = u0 * torch.cos(lat) * torch.ones_like(lon)
    v = torch.zeros_like(u)
    vrt, div = grid.vrtdiv(u, v)
    # zeta = 2 u0 sin(lat) / a for u = u0 cos(lat) (Williamson et al. 1992, case 1/2 winds)
    expected = 2 * u0 * torch.sin(lat) / grid.radius * torch.ones_like(lon)
    assert torch.allclose(grid.to_grid(vrt), expected, atol=1e-15, rtol=0)
    assert grid.to_grid(div).abs().max() < 1e-17
    u2, v2 = grid.uv(vrt, div)
    assert torch.allclose(u2, u, atol=1e-10) and v2.abs().max() < 1e-10


def test_gradient_and_global_mean(grid: SpectralGrid) -> None:
    lat, lon = grid.lats.reshape(-1, 1), grid.lons.reshape(1, -1)
    f = torch.sin(lat) * torch.ones_like(lon)
    gx, gy = grid.grad(grid.to_spec(f))
    assert torch.allclose(gy, torch.cos(lat) / grid.radius * torch.ones_like(lon), atol=1e-18)
    assert gx.abs().max() < 1e-18
    # mean of sin^2 over the sphere is 1/3
    assert grid.global_mean(f**2).item() == pytest.approx(1 / 3, abs=1e-14)


def test_evaluate_on_regular_grid_is_spectral_interpolation(grid: SpectralGrid) -> None:
    lat, lon = grid.lats.reshape(-1, 1), grid.lons.reshape(1, -1)
    field = torch.cos(lat) ** 2 * torch.cos(2 * lon) + torch.sin(lat)
    la, lo = np.linspace(90, -90, 61), np.arange(120) * 3.0 - 180.0
    out = grid.evaluate(grid.to_spec(field), la, lo)
    lat_t, lon_t = torch.tensor(np.radians(la)).reshape(-1, 1), torch.tensor(np.radians(lo)).reshape(1, -1)
    ref = torch.cos(lat_t) ** 2 * torch.cos(2 * lon_t) + torch.sin(lat_t)
    assert torch.allclose(out, ref, atol=1e-12)


def test_evaluate_rejects_irregular_longitudes(grid: SpectralGrid) -> None:
    spec = grid.to_spec(torch.ones(grid.nlat, grid.nlon, dtype=torch.float64))
    with pytest.raises(CoordError, match="equally spaced"):
        grid.evaluate(spec, np.array([0.0]), np.array([0.0, 1.0, 5.0]))


def test_grid_too_small_for_truncation() -> None:
    with pytest.raises(CoordError, match="cannot represent"):
        SpectralGrid(42, nlat=16, nlon=32)


def test_grid_latitudes_descend() -> None:
    g = SpectralGrid(10)
    assert np.all(np.diff(g.lat_deg) < 0) and g.lat_deg[0] < 90 and math.isclose(g.lon_deg[0], 0.0)
