"""Output diagnostics of the primitive-equation core: standard atmosphere, closed forms, ERA5 round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.datasets import open_dataset
from engine.errors import CoordError
from engine.lexicon import lookup
from engine.models.global_.primitive.analysis import analysis_state, read_pressure_levels
from engine.models.global_.primitive.diagnostics import (
    ROUGHNESS_LENGTH,
    STANDARD_LEVELS_HPA,
    output_fields,
    output_names,
    pressure_level_fields,
    pressure_levels_spanned,
)
from engine.models.global_.primitive.vertical import (
    GRAVITY,
    R_DRY,
    SigmaLevels,
    geopotential,
    pressure_full,
    standard_atmosphere,
)
from engine.models.global_.spectral import SpectralGrid
from engine.readers import open_any

HEIGHTS = torch.tensor([[0.0, 500.0, 1500.0], [3000.0, 4000.0, 4900.0]], dtype=torch.float64)


def _standard_ps(height: torch.Tensor) -> torch.Tensor:
    """Pressure (Pa) of the standard atmosphere at ``height`` (m), by bisection on its geopotential."""
    lo, hi = torch.full_like(height, 3.0e4), torch.full_like(height, 1.1e5)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        up = standard_atmosphere(mid)[1] > height * GRAVITY
        lo, hi = torch.where(up, mid, lo), torch.where(up, hi, mid)
    return 0.5 * (lo + hi)


@pytest.fixture(scope="module")
def standard_state() -> dict[str, torch.Tensor]:
    lev = SigmaLevels.default()
    ps = _standard_ps(HEIGHTS)
    t, _ = standard_atmosphere(pressure_full(ps, lev))
    u = torch.full_like(t, 10.0)
    return output_fields(u, torch.zeros_like(t), t, ps, HEIGHTS * GRAVITY, lev) | {"ps_in": ps}


def test_msl_of_the_standard_atmosphere_is_1013_25_hpa(standard_state: dict[str, torch.Tensor]) -> None:
    msl = standard_state["msl"]
    # exact at sea level; the series of Trenberth et al. (1993, eq. 15) truncates at x^3, which
    # costs 0.3 Pa at 1500 m and 28 Pa (0.28 hPa) at 4900 m
    assert abs(float(msl[0, 0]) - 101325.0) < 1e-6
    assert torch.all((msl[0] - 101325.0).abs() < 5.0)
    assert torch.all((msl - 101325.0).abs() < 35.0)


def test_pressure_levels_of_the_standard_atmosphere(standard_state: dict[str, torch.Tensor]) -> None:
    for lev in STANDARD_LEVELS_HPA:
        t_ref, phi_ref = standard_atmosphere(torch.tensor(lev * 100.0, dtype=torch.float64))
        # above and below the ground (1000 hPa is under the surface of every column but the first)
        # layer-constant temperature in 20 layers: within 4 gpm of the standard heights
        assert torch.all((standard_state[f"z{lev}"] - phi_ref).abs() < 4.0 * GRAVITY), lev
        # linear in ln p between full levels: 0.8 K off at 250 hPa, next to the tropopause's kink
        assert torch.all((standard_state[f"t{lev}"] - t_ref).abs() < (1.0 if lev <= 250 else 0.05)), lev
        assert torch.allclose(standard_state[f"u{lev}"], torch.full_like(HEIGHTS, 10.0))
    assert torch.equal(standard_state["sp"], standard_state["ps_in"])


def test_near_surface_fields(standard_state: dict[str, torch.Tensor]) -> None:
    lev = SigmaLevels.default()
    ps = standard_state["ps_in"]
    t2_ref, _ = standard_atmosphere(ps)
    assert torch.all((standard_state["t2m"] - t2_ref).abs() < 0.03)  # the standard lapse rate down to 2 m
    # lowest full level height z_L by the model's hydrostatics: u10 = u_L ln(10 / z0) / ln(z_L / z0)
    t, _ = standard_atmosphere(pressure_full(ps, lev))
    z_low = (geopotential(t, HEIGHTS * GRAVITY, lev)[-1] - HEIGHTS * GRAVITY) / GRAVITY
    factor = math.log(10 / ROUGHNESS_LENGTH) / torch.log(z_low / ROUGHNESS_LENGTH)
    assert torch.allclose(standard_state["u10"], 10.0 * factor, rtol=1e-12)
    assert torch.all((factor > 0.65) & (factor < 0.8))
    assert torch.all(standard_state["v10"] == 0)


def test_isothermal_geopotential_on_pressure_levels_is_exact() -> None:
    lev = SigmaLevels.equal(8)
    ps = torch.tensor([[100000.0, 90000.0]], dtype=torch.float64)
    t = torch.full((2, lev.nlev, 1, 2), 250.0, dtype=torch.float64)  # two members
    phis = torch.tensor([[0.0, 8000.0]], dtype=torch.float64)
    zeros = torch.zeros_like(t)
    out = pressure_level_fields(zeros, zeros, t, ps, phis, lev, levels_hpa=(850, 500, 300))
    for p in (850, 500, 300):
        expected = phis + R_DRY * 250.0 * torch.log(ps / (p * 100.0))
        assert torch.allclose(out[f"z{p}"], expected.expand(2, 1, 2), atol=1e-8, rtol=0), p
        if p < 850:  # 850 hPa lies below the lowest full level of the second column (lapse-rate extrapolation)
            assert torch.allclose(out[f"t{p}"], torch.full_like(out[f"t{p}"], 250.0))


def test_output_names_are_canonical_and_ordered() -> None:
    lev = SigmaLevels.default()
    names = output_names(lev, humidity=True, precipitation=True)
    assert names[:7] == [f"z{p}" for p in STANDARD_LEVELS_HPA] and names[-6:] == [
        "msl",
        "sp",
        "t2m",
        "u10",
        "v10",
        "tp",
    ]
    assert {lookup(n).units for n in ("msl", "sp", "t2m", "u10", "q850", "tp")} == {"Pa", "K", "m s-1", "kg kg-1", "mm"}
    t = torch.full((lev.nlev, 2, 3), 260.0, dtype=torch.float64)
    out = output_fields(t * 0, t * 0, t, torch.full((2, 3), 1.0e5, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64),
                        lev, q=t * 0 + 1e-3, precipitation=torch.ones(2, 3, dtype=torch.float64))  # fmt: skip
    assert list(out) == names
    # two equal layers: the top full level is at 250 hPa, so 200 hPa is not spanned
    assert pressure_levels_spanned(SigmaLevels.equal(2)) == (1000, 850, 700, 500, 300, 250)


def test_wrong_level_count() -> None:
    lev = SigmaLevels.equal(5)
    t = torch.full((4, 2, 3), 260.0, dtype=torch.float64)
    with pytest.raises(CoordError, match="t has 4 levels, the model 5"):
        pressure_level_fields(
            t, t, t, torch.full((2, 3), 1e5, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64), lev
        )


@pytest.fixture(scope="module")
def round_trip(data_root) -> dict[str, dict[str, float]]:
    """ERA5 sample (2017-01-01 00Z, 2 members) -> T42 L20 sigma levels -> 500/850 hPa again."""
    ds = open_any(data_root / "cfgrib" / "tests" / "sample-data" / "era5-levels-members.grib")
    g = SpectralGrid(42)
    lev = SigmaLevels.default()
    st = analysis_state(ds, g, lev, orography=open_dataset("ifs-orography", data_root), members=2)
    ana = read_pressure_levels(ds, g, members=2)
    out = pressure_level_fields(st.u, st.v, st.t, st.ps, st.phis, lev, levels_hpa=(500, 850))
    stats: dict[str, dict[str, float]] = {}
    for i, p in enumerate((500, 850)):
        above = (ana.fields["z"][:, i] > st.phis).to(torch.float64)
        for base in ("z", "t"):
            err = out[f"{base}{p}"] - ana.fields[base][:, i]
            w = g.weights * torch.ones_like(err)
            stats[f"{base}{p}"] = {
                "rms": float(torch.sqrt((err**2 * w).sum() / w.sum())),
                "rms_above_ground": float(torch.sqrt((err**2 * w * above).sum() / (w * above).sum())),
                "bias": float((err * w).sum() / w.sum()),
            }
    return stats


def test_round_trip_reproduces_the_era5_analysis(round_trip: dict[str, dict[str, float]]) -> None:
    # measured (T42, L20): z500 rms 8.7 m2 s-2 (0.9 gpm), bias -4.3; z850 above the ground 4.1;
    # t850 above the ground 0.25 K; t500 0.43 K (the kink of the profile at the top analysis level)
    assert round_trip["z500"]["rms"] < 15.0 and abs(round_trip["z500"]["bias"]) < 8.0
    assert round_trip["z850"]["rms_above_ground"] < 8.0
    assert round_trip["t850"]["rms_above_ground"] < 0.4
    assert round_trip["t500"]["rms"] < 0.6 and abs(round_trip["t500"]["bias"]) < 0.2


@pytest.mark.gpu
def test_diagnostics_on_cuda_match_cpu() -> None:
    lev = SigmaLevels.jablonowski_williamson()
    gen = torch.Generator().manual_seed(1)
    t = 220 + 60 * torch.rand(2, lev.nlev, 8, 16, generator=gen, dtype=torch.float64)
    u = 20 * torch.randn(2, lev.nlev, 8, 16, generator=gen, dtype=torch.float64)
    ps = 9.0e4 + 1.0e4 * torch.rand(2, 8, 16, generator=gen, dtype=torch.float64)
    phis = 2.0e4 * torch.rand(8, 16, generator=gen, dtype=torch.float64)
    cpu = output_fields(u, -u, t, ps, phis, lev)
    gpu = output_fields(u.cuda(), -u.cuda(), t.cuda(), ps.cuda(), phis.cuda(), lev)
    for name, field in cpu.items():
        assert np.allclose(gpu[name].cpu().numpy(), field.numpy(), atol=1e-8), name
