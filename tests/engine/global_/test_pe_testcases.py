"""The Jablonowski & Williamson (2006) initial states against the paper's formulas and balances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.errors import CoordError
from engine.models.global_.primitive.testcases import (
    JW06Parameters,
    jw06_baroclinic_wave,
    jw06_geopotential,
    jw06_perturbation,
    jw06_steady_state,
    jw06_temperature,
    jw06_zonal_wind,
    zonal_mean_l2,
)
from engine.models.global_.primitive.vertical import R_DRY, SigmaLevels
from engine.models.global_.spectral import EARTH_OMEGA, EARTH_RADIUS, GRAVITY, SpectralGrid

P = JW06Parameters()
A = EARTH_RADIUS


@pytest.fixture(scope="module")
def grid() -> SpectralGrid:
    return SpectralGrid(21)


def _t(x: float | np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def test_jet_maximum_is_u0_at_45n_and_eta0() -> None:
    # JW06 eq. 2: u = u0 cos^1.5((eta - eta0) pi/2) sin^2(2 lat): 35 m/s at 45N, eta = 0.252.
    assert float(jw06_zonal_wind(_t(math.radians(45)), _t(0.252))) == pytest.approx(35.0, abs=1e-12)
    assert float(jw06_zonal_wind(_t(0.0), _t(0.7))) == pytest.approx(0.0, abs=1e-12)
    # At the surface: 35 * cos^1.5(0.748 pi / 2) = 35 * 0.3857^1.5 = 8.38 (hand computation)
    expected = 35.0 * math.cos(0.748 * math.pi / 2) ** 1.5
    assert float(jw06_zonal_wind(_t(math.radians(45)), _t(1.0))) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(8.38, abs=0.01)


def test_state_on_the_papers_26_levels(grid: SpectralGrid) -> None:
    levels = SigmaLevels.jablonowski_williamson()
    state = jw06_steady_state(grid, levels)
    assert state["u"].shape == state["t"].shape == state["v"].shape == (26, grid.nlat, grid.nlon)
    assert state["ps"].shape == state["phis"].shape == (grid.nlat, grid.nlon)
    assert all(v.dtype == torch.float64 for v in state.values())
    u = state["u"]
    k, j, _ = np.unravel_index(int(torch.argmax(u)), u.shape)
    # the jet core: the full level nearest eta0 = 0.252 and the grid latitude nearest 45N
    assert abs(levels.full[k] - 0.252) == pytest.approx(np.min(np.abs(levels.full - 0.252)))
    assert abs(abs(grid.lat_deg[j]) - 45.0) < 180.0 / grid.nlat
    assert 33.0 < float(u.max()) <= 35.0
    assert torch.all(state["v"] == 0)
    assert torch.all(state["ps"] == 1.0e5)
    # zonally symmetric and symmetric about the equator
    for name in ("u", "t"):
        assert torch.allclose(state[name], state[name][..., :1].expand_as(state[name]), rtol=0, atol=1e-12)
        assert torch.allclose(state[name], torch.flip(state[name], (-2,)), rtol=0, atol=1e-9)


def test_mean_temperature_profile() -> None:
    # Horizontal mean of T is T0 eta^(R Gamma / g) (+ the stratospheric term): A(phi) and B(phi)
    # have zero global means (int sin^6 cos^2 = 2/63, int sin^6 = 1/7; int cos^3 sin^2 = pi/32,
    # int cos^3 = 3 pi/16 in the area mean), so the deviation vanishes in the mean.
    expo = R_DRY * 0.005 / GRAVITY
    assert P.exponent == pytest.approx(expo)
    lat = _t(np.radians(np.linspace(-89.999, 89.999, 20001)))
    w = torch.cos(lat)
    for eta, t_bar in ((1.0, 288.0), (0.5, 288.0 * 0.5**expo), (0.1, 288.0 * 0.1**expo + 4.8e5 * 0.1**5)):
        t = jw06_temperature(lat, _t(eta), radius=A)
        assert float(torch.sum(t * w) / torch.sum(w)) == pytest.approx(t_bar, abs=1e-3)
    # at the tropopause the mean profile reaches 288 * 0.2^0.14636 = 227.6 K
    assert 288.0 * 0.2**expo == pytest.approx(227.6, abs=0.1)


def test_surface_geopotential_has_zero_global_mean(grid: SpectralGrid) -> None:
    phis = jw06_steady_state(grid, SigmaLevels.equal(4))["phis"]
    assert abs(float(grid.global_mean(phis))) < 1e-6 * float(phis.abs().max())
    # equator and pole by hand: phis = u0 c^1.5 (A u0 c^1.5 + B a Omega), c = cos(0.374 pi)
    c15 = math.cos((1 - 0.252) * math.pi / 2) ** 1.5
    at_equator = 35.0 * c15 * (10 / 63 * 35.0 * c15 + (1.6 * 2 / 3 - math.pi / 4) * A * EARTH_OMEGA)
    at_pole = 35.0 * c15 * ((-2 / 3 + 10 / 63) * 35.0 * c15 - math.pi / 4 * A * EARTH_OMEGA)
    got = jw06_geopotential(_t(np.radians([0.0, 90.0])), _t(1.0), radius=A)
    np.testing.assert_allclose(got.numpy(), [at_equator, at_pole], rtol=1e-12)
    # 8.384 * (1.331 + 130.67) = 1106 and 8.384 * (-4.259 - 364.89) = -3095 m2 s-2 (by hand, 4 digits)
    assert at_equator == pytest.approx(1106, abs=2) and at_pole == pytest.approx(-3095, abs=3)


@pytest.mark.parametrize("eta", [0.05, 0.15, 0.199, 0.201, 0.252, 0.5, 0.9, 0.9999])
def test_hydrostatic_balance(eta: float) -> None:
    # dPhi / d ln(eta) = -R T at constant ps (centred difference of the analytic geopotential)
    lat = _t(np.radians(np.linspace(-85, 85, 35)))
    h = 1e-5
    dphi = (
        jw06_geopotential(lat, _t(eta * math.exp(h)), radius=A)
        - jw06_geopotential(lat, _t(eta * math.exp(-h)), radius=A)
    ) / (2 * h)
    t = jw06_temperature(lat, _t(eta), radius=A)
    np.testing.assert_allclose(dphi.numpy(), (-R_DRY * t).numpy(), rtol=1e-7)


@pytest.mark.parametrize("eta", [0.1, 0.252, 0.6, 1.0])
def test_gradient_wind_balance(eta: float) -> None:
    # The steady zonal flow balances the meridional pressure-gradient force on an eta = sigma
    # surface where ps is uniform: (2 Omega sin(lat) + u tan(lat) / a) u = -(1 / a) dPhi/dlat.
    lat = _t(np.radians(np.linspace(-80, 80, 33)))
    h = 1e-6
    dphi = (jw06_geopotential(lat + h, _t(eta), radius=A) - jw06_geopotential(lat - h, _t(eta), radius=A)) / (2 * h)
    u = jw06_zonal_wind(lat, _t(eta))
    lhs = (2 * EARTH_OMEGA * torch.sin(lat) + u * torch.tan(lat) / A) * u
    np.testing.assert_allclose(lhs.numpy(), (-dphi / A).numpy(), atol=1e-9 * float(dphi.abs().max() / A))


def test_paper_constants_are_accepted() -> None:
    paper = JW06Parameters(radius=6.371229e6, omega=7.29212e-5, r_dry=287.0, gravity=9.80616)
    ours = jw06_geopotential(_t(0.7), _t(1.0), radius=A)
    theirs = jw06_geopotential(_t(0.7), _t(1.0), paper, radius=6.371229e6)
    assert float(abs(ours - theirs)) < 1e-3 * float(abs(ours))


def test_perturbation_peak_and_radius(grid: SpectralGrid) -> None:
    latc, lonc = math.radians(40), math.radians(20)
    assert float(jw06_perturbation(_t(latc), _t(lonc))) == pytest.approx(1.0)
    # a great-circle distance of R = a / 10 due north of the centre: exp(-1)
    assert float(jw06_perturbation(_t(latc + 0.1), _t(lonc))) == pytest.approx(math.exp(-1))
    assert float(jw06_perturbation(_t(-latc), _t(lonc + math.pi))) < 1e-300
    steady = jw06_steady_state(grid, SigmaLevels.equal(5))
    wave = jw06_baroclinic_wave(grid, SigmaLevels.equal(5))
    du = wave["u"] - steady["u"]
    assert torch.allclose(du, du[:1].expand_as(du))  # the same bump on every level
    j, i = np.unravel_index(int(torch.argmax(du[0])), du[0].shape)
    assert abs(grid.lat_deg[j] - 40) < 180 / grid.nlat and abs(grid.lon_deg[i] - 20) < 360 / grid.nlon
    for name in ("v", "t", "ps", "phis"):
        assert torch.equal(wave[name], steady[name])


def test_levels_as_array_and_errors(grid: SpectralGrid) -> None:
    levels = SigmaLevels.equal(3)
    a = jw06_steady_state(grid, levels)
    b = jw06_steady_state(grid, np.asarray(levels.full))
    assert torch.equal(a["t"], b["t"])
    with pytest.raises(CoordError, match="eta"):
        jw06_steady_state(grid, np.array([0.5, 1.2]))
    with pytest.raises(CoordError, match="eta_t"):
        JW06Parameters(eta_t=0.3)


def test_zonal_mean_l2(grid: SpectralGrid) -> None:
    levels = SigmaLevels.equal(4)
    u = jw06_steady_state(grid, levels)["u"]
    assert float(zonal_mean_l2(grid, u, u, levels)) == 0.0
    assert float(zonal_mean_l2(grid, u + 2.0, u, levels)) == pytest.approx(2.0, rel=1e-12)
    # a zonal-wavenumber-1 change leaves the zonal mean, and so the l2 of JW06 eq. 14, untouched
    wave = torch.cos(grid.lons).reshape(1, 1, -1)
    assert float(zonal_mean_l2(grid, u + wave, u, levels)) < 1e-12
    # only the lowest layer off by 4 m/s: sqrt(dsigma * 16) = 2
    shifted = u.clone()
    shifted[-1] += 4.0
    assert float(zonal_mean_l2(grid, shifted, u, levels)) == pytest.approx(2.0, rel=1e-12)
    with pytest.raises(CoordError, match="levels"):
        zonal_mean_l2(grid, u[:2], u[:2], levels)
