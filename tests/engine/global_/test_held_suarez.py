"""The Held & Suarez (1994) forcing against the paper's numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.errors import CoordError
from engine.models.global_.primitive.held_suarez import (
    HeldSuarezForcing,
    HeldSuarezParameters,
    equilibrium_temperature,
    friction_rate,
    thermal_relaxation_rate,
)
from engine.models.global_.primitive.vertical import KAPPA, SigmaLevels
from engine.models.global_.spectral import SpectralGrid

DAY = 86400.0


def _t(x: float | list[float] | np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def test_paper_rates() -> None:
    p = HeldSuarezParameters()
    # HS94 section 2: k_f = 1/day, k_a = 1/40 day, k_s = 1/4 day, sigma_b = 0.7
    assert p.k_f * DAY == pytest.approx(1.0) and p.k_a * 40 * DAY == pytest.approx(1.0)
    assert p.k_s * 4 * DAY == pytest.approx(1.0) and p.sigma_b == 0.7
    sigma = _t([0.3, 0.7, 0.85, 1.0])
    np.testing.assert_allclose(friction_rate(sigma).numpy() * DAY, [0.0, 0.0, 0.5, 1.0], atol=1e-12)
    equator, pole = _t(0.0), _t(math.pi / 2)
    np.testing.assert_allclose(
        thermal_relaxation_rate(equator, sigma).numpy() * DAY,
        [1 / 40, 1 / 40, 1 / 40 + 0.5 * (1 / 4 - 1 / 40), 1 / 4],
        rtol=1e-12,
    )
    # cos^4 lat: no boundary-layer cooling at the pole, a quarter of it at 45 degrees
    np.testing.assert_allclose(thermal_relaxation_rate(pole, sigma).numpy() * DAY, [1 / 40] * 4, rtol=1e-12)
    at45 = thermal_relaxation_rate(_t(math.pi / 4), _t(1.0))
    assert float(at45) * DAY == pytest.approx(1 / 40 + 0.25 * (1 / 4 - 1 / 40))


def test_equilibrium_temperature_values() -> None:
    # 315 K at the equator's surface, 315 - 60 = 255 K at the pole's surface (p = p0)
    got = equilibrium_temperature(_t([0.0, math.pi / 2]), _t(1e5))
    np.testing.assert_allclose(got.numpy(), [315.0, 255.0], rtol=1e-12)
    # equator, 500 hPa: (315 + 10 ln 2) * 0.5^kappa = 321.93 * 0.82034 = 264.09 K (by hand, kappa = 2/7)
    mid = equilibrium_temperature(_t(0.0), _t(5e4), HeldSuarezParameters(kappa=2 / 7))
    assert float(mid) == pytest.approx(264.09, abs=0.01)
    assert float(equilibrium_temperature(_t(0.0), _t(5e4))) == pytest.approx((315 + 10 * math.log(2)) * 0.5**KAPPA)
    # the 200 K floor in the stratosphere (at 100 hPa the formula gives < 200 K everywhere)
    high = equilibrium_temperature(_t(np.radians(np.linspace(-90, 90, 19))), _t(1e4))
    assert torch.all(high == 200.0)


def test_equilibrium_temperature_bounds() -> None:
    lat = _t(np.radians(np.linspace(-90, 90, 73))).reshape(-1, 1)
    p = _t(np.linspace(100.0, 1.05e5, 300)).reshape(1, -1)
    t_eq = equilibrium_temperature(lat, p)
    assert float(t_eq.min()) == 200.0
    assert float(t_eq.max()) <= 315.0 * (1.05) ** KAPPA + 1e-9
    # symmetric about the equator, colder towards the poles at the surface
    assert torch.allclose(t_eq, torch.flip(t_eq, (0,)))
    surface = equilibrium_temperature(lat[36:, 0], _t(1e5))
    assert torch.all(torch.diff(surface) <= 0)


def test_forcing_on_a_grid_batched() -> None:
    grid = SpectralGrid(10)
    levels = SigmaLevels.held_suarez()
    forcing = HeldSuarezForcing(grid, levels)
    assert forcing.k_t.shape == (20, grid.nlat, 1) and forcing.k_v.shape == (20, 1, 1)
    gen = torch.Generator().manual_seed(0)
    shape = (3, 20, grid.nlat, grid.nlon)
    u = torch.randn(shape, generator=gen, dtype=torch.float64) * 10
    v = torch.randn(shape, generator=gen, dtype=torch.float64) * 10
    t = 250 + torch.randn(shape, generator=gen, dtype=torch.float64) * 20
    ps = 1e5 + torch.randn((3, grid.nlat, grid.nlon), generator=gen, dtype=torch.float64) * 1e3
    du, dv, dt = forcing.tendencies(u, v, t, ps)
    # member 1 alone gives the same tendencies as in the batch
    du1, _, dt1 = forcing.tendencies(u[1], v[1], t[1], ps[1])
    assert torch.equal(du[1], du1) and torch.allclose(dt[1], dt1)
    # no drag above sigma_b = 0.7 (the top 14 of 20 equal layers have full sigma < 0.7)
    assert torch.all(du[:, :14] == 0) and torch.all(dv[:, :14] == 0)
    assert torch.allclose(du[:, -1], -u[:, -1] * (0.975 - 0.7) / 0.3 / DAY)
    t_eq = forcing.equilibrium(ps)
    k, j, i = 5, 7, 3
    sigma = levels.full[k]
    expected = float(equilibrium_temperature(grid.lats[j], sigma * ps[2, j, i]))
    assert float(t_eq[2, k, j, i]) == pytest.approx(expected)
    assert float(dt[2, k, j, i]) == pytest.approx(-(float(t[2, k, j, i]) - expected) / (40 * DAY))


def test_implicit_relaxation() -> None:
    grid = SpectralGrid(8)
    levels = SigmaLevels.equal(10)
    forcing = HeldSuarezForcing(grid, levels)
    ps = torch.full((grid.nlat, grid.nlon), 1e5, dtype=torch.float64)
    t_eq = forcing.equilibrium(ps)
    u = torch.ones_like(t_eq)
    # the equilibrium is a fixed point; a huge step lands on it without overshooting
    _, _, t1 = forcing.relax(u, u, t_eq, ps, 1800.0)
    assert torch.allclose(t1, t_eq, rtol=1e-14)
    u2, _, t2 = forcing.relax(u, u, t_eq + 10, ps, 1e12)
    assert torch.all((t2 - t_eq > 0) & (t2 - t_eq < 1e-3))
    assert torch.all(u2[-1] < 1e-3) and torch.all(u2[:7] == 1.0)  # full sigma 0.05 ... 0.65 undamped
    # a small step agrees with the explicit tendency to first order
    dt = 60.0
    u3, _, t3 = forcing.relax(u, u, t_eq + 10, ps, dt)
    du, _, dtt = forcing.tendencies(u, u, t_eq + 10, ps)
    assert torch.allclose(u3 - u, dt * du, rtol=1e-3, atol=1e-12)
    assert torch.allclose(t3 - t_eq - 10, dt * dtt, rtol=1e-3)


def test_bad_input() -> None:
    grid = SpectralGrid(8)
    forcing = HeldSuarezForcing(grid, SigmaLevels.equal(4))
    t = torch.full((4, grid.nlat, grid.nlon), 250.0, dtype=torch.float64)
    ps = torch.full((grid.nlat, grid.nlon), 1e5, dtype=torch.float64)
    with pytest.raises(CoordError, match="Held-Suarez forcing"):
        forcing.tendencies(t[:3], t[:3], t[:3], ps)
    with pytest.raises(CoordError, match="same leading dims"):
        forcing.tendencies(t, t, t, ps.expand(2, -1, -1))
    with pytest.raises(CoordError, match="dt"):
        forcing.relax(t, t, t, ps, 0.0)
    with pytest.raises(CoordError, match="pressure"):
        forcing.equilibrium(-ps)
    with pytest.raises(CoordError, match="sigma"):
        friction_rate(_t([0.0, 0.5]))
    with pytest.raises(CoordError, match="sigma_b"):
        HeldSuarezParameters(sigma_b=1.0)
