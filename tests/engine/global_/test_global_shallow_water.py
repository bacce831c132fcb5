"""The shallow-water core on Williamson et al. (1992) test cases 2 and 6."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.errors import JobError
from engine.models.global_.shallow_water import ShallowWaterConfig, ShallowWaterModel, default_time_step
from engine.models.global_.testcases import haurwitz_angular_speed, rossby_haurwitz, williamson_case2

GH0_CASE2 = 2.94e4  # m2 s-2 (Williamson et al. 1992, case 2)


def _run(model: ShallowWaterModel, state: torch.Tensor, days: float) -> torch.Tensor:
    n = round(days * 86400 / model.dt)
    for _, s in model.integrate(state, n, save_every=n):
        last = s
    return last


def _l2(model: ShallowWaterModel, a: torch.Tensor, b: torch.Tensor) -> float:
    # Williamson et al. (1992) normalised l2 error of the height field, eq. (83)
    ha, hb = model.to_grid(a)["phi"], model.to_grid(b)["phi"]
    return float(torch.sqrt(model.spec.integrate((ha - hb) ** 2) / model.spec.integrate(hb**2)).max())


@pytest.mark.parametrize("diffusion_order, tolerance", [(0, 1e-12), (2, 1e-4)])
def test_climatological_forcing_makes_a_state_steady(diffusion_order: int, tolerance: float) -> None:
    # The forced model (global_job: forcing="climatology") keeps the forcing state steady: the
    # forcing cancels advection and gravity-wave terms exactly (round-off). With diffusion, the
    # explicit diffusion in the forcing meets the implicit diffusion and gravity-wave solve of the
    # step, an O(dt) mismatch that stays small.
    model = ShallowWaterModel(ShallowWaterConfig(truncation=21, mean_depth=8000.0, diffusion_order=diffusion_order))
    s0 = rossby_haurwitz(model)
    model.set_forcing(s0[0])
    s1 = _run(model, s0, 0.5)
    assert _l2(model, s1, s0) < tolerance


@pytest.mark.parametrize("diffusion_order, tolerance", [(0, 1e-7), (2, 1e-3)])
def test_case2_stays_steady_for_five_days(diffusion_order: int, tolerance: float) -> None:
    # Without diffusion only round-off and time truncation remain. With the default del-4 the
    # l = 2 part of the height field decays slightly (its winds are l = 1, which the
    # angular-momentum-conserving diffusion leaves alone), so the error is larger but bounded.
    # dt = 1 h at T21: advective Courant number u0 dt T / a = 0.46 (STSWM: 2400 s at T42).
    cfg = ShallowWaterConfig(truncation=21, dt=3600.0, mean_depth=GH0_CASE2 / 9.80616, diffusion_order=diffusion_order)
    model = ShallowWaterModel(cfg)
    s0 = williamson_case2(model)
    s5 = _run(model, s0, 5.0)
    err = _l2(model, s5, s0)
    assert err < tolerance
    u_err = (model.to_grid(s5)["u"] - model.to_grid(s0)["u"]).abs().max().item()
    assert u_err < (1e-4 if diffusion_order == 0 else 0.1)


def _phase_speed(model: ShallowWaterModel, s0: torch.Tensor, days: float, wavenumber: int = 4) -> float:
    """Angular speed (rad/s) of zonal wavenumber ``wavenumber`` from the phase of its coefficients."""
    every = max(1, round(3 * 3600 / model.dt))  # sample every ~3 h so phase steps stay < pi
    n = round(days * 86400 / model.dt)
    prev = s0[0, 2, :, wavenumber]
    total = 0.0
    for step, s in model.integrate(s0, n, save_every=every):
        if step == 0:
            continue
        c = s[0, 2, :, wavenumber]
        total += torch.angle((c * prev.conj()).sum()).item()
        prev = c
        last = step
    # a pattern f(lambda - nu t) has coefficients c_m(t) = c_m(0) exp(-i m nu t)
    return -total / (wavenumber * last * model.dt)


def test_rossby_haurwitz_nondivergent_limit_moves_at_haurwitz_speed() -> None:
    # With a very deep layer the flow is nearly non-divergent and Haurwitz's (1940) formula holds.
    h0 = 1.0e5
    model = ShallowWaterModel(ShallowWaterConfig(truncation=21, mean_depth=h0, diffusion_order=0))
    nu = _phase_speed(model, rossby_haurwitz(model, h0=h0), days=1.5)
    assert nu == pytest.approx(haurwitz_angular_speed(), rel=0.03)


def test_rossby_haurwitz_case6_speed_and_conservation() -> None:
    # Williamson case 6 (h0 = 8 km) is divergent: the finite deformation radius slows the wave
    # relative to the non-divergent formula (8 % slower here at T21, 0.2 % at h0 = 100 km).
    model = ShallowWaterModel(ShallowWaterConfig(truncation=21, mean_depth=8000.0, diffusion_order=0))
    s0 = rossby_haurwitz(model)
    nu = _phase_speed(model, s0, days=1.5)
    assert 0.85 * haurwitz_angular_speed() < nu < 1.0 * haurwitz_angular_speed()


def test_mass_conserved_to_roundoff_and_energy_nearly_conserved() -> None:
    model = ShallowWaterModel(ShallowWaterConfig(truncation=21, dt=3600.0, mean_depth=8000.0, diffusion_order=0))
    s0 = rossby_haurwitz(model)
    m0, e0 = model.mass(s0), model.energy(s0)
    n = round(3 * 86400 / model.dt)  # 72 steps
    masses, energies = [], []
    for _, s in model.integrate(s0, n, save_every=12):
        masses.append(((model.mass(s) - m0) / m0).abs().item())
        energies.append(((model.energy(s) - e0) / e0).abs().item())
    assert max(masses) < 1e-13
    # The leapfrog/RAW scheme does not conserve energy exactly; drift stays well below 1e-4.
    assert max(energies) < 1e-4
    # ...and del-4 diffusion only removes energy (mass still exact).
    diffused = ShallowWaterModel(ShallowWaterConfig(truncation=21, dt=3600.0, mean_depth=8000.0))
    s = _run(diffused, s0, 0.5)
    assert abs((diffused.mass(s) - m0) / m0).item() < 1e-13
    assert (diffused.energy(s) < e0).all()


def test_batched_members_evolve_independently() -> None:
    model = ShallowWaterModel(ShallowWaterConfig(truncation=21, mean_depth=8000.0))
    a = rossby_haurwitz(model)
    b = williamson_case2(model)
    both = _run(model, torch.cat([a, b]), 0.25)
    alone = _run(model, a, 0.25)
    ha, hb = model.to_grid(both[:1])["phi"], model.to_grid(alone)["phi"]
    assert ((ha - hb).abs().max() / hb.abs().max()).item() < 1e-12


def test_config_validation_names_field() -> None:
    with pytest.raises(JobError, match="mean_depth"):
        ShallowWaterConfig(mean_depth=-1.0)
    with pytest.raises(JobError, match="diffusion_order"):
        ShallowWaterConfig(diffusion_order=7)


def test_default_time_step_divides_output_interval() -> None:
    for t in (21, 31, 42, 63):
        dt = default_time_step(t)
        n = 6 * 3600 / dt
        assert math.isclose(n, round(n)) and dt <= 1200 * 42 / t + 1e-9


@pytest.mark.gpu
def test_cpu_cuda_parity() -> None:
    cfg = ShallowWaterConfig(truncation=21, mean_depth=8000.0)
    cpu = ShallowWaterModel(cfg)
    gpu = ShallowWaterModel(cfg).to(torch.device("cuda"))
    s0 = rossby_haurwitz(cpu)
    a = _run(cpu, s0, 1.0)
    b = _run(gpu, s0.to("cuda"), 1.0).cpu()
    ha, hb = cpu.to_grid(a)["phi"], cpu.to_grid(b)["phi"]
    # float64 on both; differences come from reduction order only
    assert np.abs((ha - hb).numpy()).max() / np.abs(ha.numpy()).max() < 1e-10
