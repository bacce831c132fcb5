"""Sigma levels and the Simmons & Burridge (1981) hydrostatic discretisation against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.errors import CoordError
from engine.models.global_.primitive.vertical import (
    GRAVITY,
    KAPPA,
    R_DRY,
    SigmaLevels,
    geopotential,
    geopotential_half,
    hydrostatic_matrix,
    pressure_full,
    pressure_half,
    sb81_alpha,
    sb81_log_pressure,
)

LEVEL_SETS = {
    "equal10": SigmaLevels.equal(10),
    "jw06": SigmaLevels.jablonowski_williamson(),
    "held_suarez": SigmaLevels.held_suarez(),
    "default": SigmaLevels.default(),
}


def _columns(profile: torch.Tensor, ny: int = 3, nx: int = 4) -> torch.Tensor:
    return profile[:, None, None].expand(-1, ny, nx).clone()


def _lapse_rate_phi(sigma: np.ndarray, t0: float, gamma: float) -> np.ndarray:
    # T = T0 sigma^(R gamma / g) has z = T0 / gamma (1 - sigma^(R gamma / g)) (Wallace & Hobbs 2006, eq. 3.28)
    return GRAVITY * t0 / gamma * (1.0 - sigma ** (R_DRY * gamma / GRAVITY))


def test_constants() -> None:
    assert pytest.approx(2 / 7, rel=1e-3) == KAPPA


@pytest.mark.parametrize("name", sorted(LEVEL_SETS))
def test_level_sets_are_valid(name: str) -> None:
    lev = LEVEL_SETS[name]
    assert lev.half[0] == 0.0 and lev.half[-1] == 1.0
    assert lev.dsigma.sum() == pytest.approx(1.0, abs=1e-14)
    assert np.all((lev.full > lev.half[:-1]) & (lev.full < lev.half[1:]))


def test_published_level_counts() -> None:
    jw = LEVEL_SETS["jw06"]
    assert jw.nlev == 26
    # JW06 appendix B: the lowest full level is eta = (0.9851122 + 1) / 2
    assert jw.full[-1] == pytest.approx(0.9925561, abs=1e-7)
    assert LEVEL_SETS["held_suarez"].nlev == 20 and np.allclose(LEVEL_SETS["held_suarez"].dsigma, 0.05)
    d = LEVEL_SETS["default"]
    assert d.nlev == 20 and d.dsigma[-1] < 0.5 * d.dsigma.max() and d.dsigma[-1] < 0.03


@pytest.mark.parametrize(
    "half, match",
    [
        ([0.0], "at least 2"),
        ([0.1, 0.5, 1.0], "from 0"),
        ([0.0, 0.5, 0.9], "from 0"),
        ([0.0, 0.6, 0.5, 1.0], "increase strictly"),
    ],
)
def test_bad_half_levels(half: list[float], match: str) -> None:
    with pytest.raises(CoordError, match=match):
        SigmaLevels(np.asarray(half))


def test_bad_full_levels() -> None:
    with pytest.raises(CoordError, match="inside its layer"):
        SigmaLevels(np.array([0.0, 0.5, 1.0]), full=np.array([0.25, 0.5]))
    with pytest.raises(CoordError, match="2 full levels"):
        SigmaLevels(np.array([0.0, 0.5, 1.0]), full=np.array([0.25]))


def test_alpha_top_and_sb81_full_pressure() -> None:
    lev = SigmaLevels.equal(4)
    alpha = sb81_alpha(lev)
    assert alpha[0] == pytest.approx(math.log(2))
    # layer 0.25..0.5: alpha = 1 - 0.25 / 0.25 * ln 2 (SB81 eq. 3.18)
    assert alpha[1] == pytest.approx(1 - math.log(2))
    # SB81 eq. 3.19 full-level pressure (p ln p|k+1/2 - p ln p|k-1/2) / dp - 1
    a, b = lev.half[1:-1], lev.half[2:]
    expected = (b * np.log(b) - a * np.log(a)) / (b - a) - 1
    assert np.allclose(sb81_log_pressure(lev)[1:], expected, atol=1e-14)


@pytest.mark.parametrize("name", sorted(LEVEL_SETS))
def test_isothermal_geopotential_is_exact_where_sb81_is(name: str) -> None:
    lev = LEVEL_SETS[name]
    t0 = 250.0
    t = torch.full((2, lev.nlev, 3, 4), t0, dtype=torch.float64)  # with a member dim
    phis = torch.full((3, 4), 1000.0, dtype=torch.float64)
    phi = geopotential(t, phis, lev)
    # R T ln(ps / p) at the SB81 full-level pressures, to round-off
    exact = 1000.0 + R_DRY * t0 * -torch.as_tensor(sb81_log_pressure(lev))
    assert torch.allclose(phi[1, :, 2, 3], exact, atol=1e-9, rtol=0)
    half = geopotential_half(t, phis, lev)
    assert torch.isinf(half[:, 0]).all()
    exact_half = 1000.0 - R_DRY * t0 * torch.log(lev.tensor("half")[1:])
    assert torch.allclose(half[0, 1:, 0, 0], exact_half, atol=1e-9, rtol=0)
    # at the layer mid-points the difference is the discretisation error: below 0.1 % of the
    # scale height in the lowest layer, and a fraction of one layer's thickness everywhere
    mid = 1000.0 - R_DRY * t0 * torch.log(lev.tensor("full"))
    err = (phi[0, :, 0, 0] - mid).abs()
    assert err[-1] < 1e-3 * R_DRY * t0
    thickness = R_DRY * t0 * torch.log(lev.tensor("half")[2:] / lev.tensor("half")[1:-1])
    assert torch.all(err[1:] < 0.25 * thickness)


def test_lapse_rate_atmosphere_converges_at_second_order() -> None:
    t0, gamma = 288.0, 0.0065
    errors = []
    for n in (10, 20, 40, 80):
        lev = SigmaLevels.equal(n)
        t = _columns(torch.as_tensor(t0 * lev.full ** (R_DRY * gamma / GRAVITY)))
        half = geopotential_half(t, torch.zeros(3, 4, dtype=torch.float64), lev)
        # sigma = 0.5 is a half level of each grid
        k = n // 2
        assert lev.half[k] == pytest.approx(0.5)
        errors.append(abs(float(half[k, 0, 0]) - _lapse_rate_phi(np.array(0.5), t0, gamma)))
    order = np.log2(np.asarray(errors[:-1]) / np.asarray(errors[1:]))
    assert errors[0] < 3.0 * GRAVITY  # under 3 m at sigma = 0.5 with 10 equal layers (2.6 m)
    assert np.all(order > 1.9), order


def test_matrix_and_function_agree() -> None:
    lev = SigmaLevels.default()
    gen = torch.Generator().manual_seed(0)
    t = 220 + 60 * torch.rand(3, lev.nlev, 5, 6, generator=gen, dtype=torch.float64)
    phis = 1e4 * torch.rand(5, 6, generator=gen, dtype=torch.float64)
    g = hydrostatic_matrix(lev)
    assert torch.all(torch.tril(g, diagonal=-1) == 0)
    by_matrix = phis + R_DRY * (g @ t[1].reshape(lev.nlev, -1)).reshape(lev.nlev, 5, 6)
    phi = geopotential(t, phis, lev)
    assert torch.allclose(phi[1], by_matrix, atol=1e-8, rtol=0)
    half = geopotential_half(t, phis, lev)
    # Phi_k = Phi_{k+1/2} + alpha_k R T_k
    alpha = torch.as_tensor(sb81_alpha(lev))[:, None, None]
    assert torch.allclose(phi, half[:, 1:] + alpha * R_DRY * t, atol=1e-8, rtol=0)


def test_geopotential_rejects_wrong_level_count() -> None:
    lev = SigmaLevels.equal(5)
    with pytest.raises(CoordError, match=r"\(\.\.\., 5, lat, lon\)"):
        geopotential(torch.zeros(4, 3, 2, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64), lev)


def test_pressures() -> None:
    lev = SigmaLevels.equal(4)
    ps = torch.tensor([[1.0e5, 5.0e4]], dtype=torch.float64)
    pf, ph = pressure_full(ps, lev), pressure_half(ps, lev)
    assert pf.shape == (4, 1, 2) and ph.shape == (5, 1, 2)
    assert pf[:, 0, 1].tolist() == pytest.approx([6250.0, 18750.0, 31250.0, 43750.0])
    assert torch.equal(ph[-1], ps) and torch.all(ph[0] == 0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_geopotential_on_cuda_matches_cpu() -> None:
    lev = SigmaLevels.jablonowski_williamson()
    t = 250 + 30 * torch.rand(2, lev.nlev, 8, 16, dtype=torch.float64)
    phis = 5e3 * torch.rand(8, 16, dtype=torch.float64)
    cpu = geopotential(t, phis, lev)
    gpu = geopotential(t.cuda(), phis.cuda(), lev)
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-8, rtol=0)
