"""Initialisation: regridding, linear balance, ensembles of analyses and perturbations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

from engine.errors import CoordError, VariableNotFoundError
from engine.models.global_.initial import LinearBalance, balance_matrix, initial_state, perturb, regrid_bilinear
from engine.models.global_.shallow_water import ShallowWaterConfig, ShallowWaterModel


@pytest.fixture(scope="module")
def model() -> ShallowWaterModel:
    return ShallowWaterModel(ShallowWaterConfig(truncation=21))


@pytest.fixture(scope="module")
def balance(model: ShallowWaterModel) -> LinearBalance:
    return LinearBalance(model.spec)


def _analysis(nlat: int = 61, nlon: int = 120, members: int = 3, lon0: float = 0.0, descending: bool = True) -> xr.Dataset:
    lat = np.linspace(90, -90, nlat) if descending else np.linspace(-90, 90, nlat)
    lon = lon0 + np.arange(nlon) * 360.0 / nlon
    la, lo = np.meshgrid(np.radians(lat), np.radians(lon), indexing="ij")
    rng = np.random.default_rng(0)
    z = np.stack([5.5e4 - 3e3 * np.sin(la) ** 2 + 400 * np.cos(la) ** 4 * np.cos(3 * lo + k) + rng.normal(0, 1, la.shape) for k in range(members)])
    return xr.Dataset(
        {"z500": (("time", "member", "lat", "lon"), z[None].astype("float32"))},
        coords={"time": [np.datetime64("2017-01-01T00")], "member": np.arange(members), "lat": lat, "lon": lon},
    )


def test_regrid_is_exact_for_bilinear_fields_and_wraps_longitude() -> None:
    lat = np.linspace(-90, 90, 19)
    lon = np.arange(36) * 10.0 - 180.0
    field = (lat[:, None] * 2.0 + 0 * lon[None, :]) + 5.0
    out = regrid_bilinear(field[::-1], lat[::-1], lon, np.array([33.3, -71.0]), np.array([355.0, 0.0, 179.0]))
    assert np.allclose(out, np.array([33.3, -71.0])[:, None] * 2 + 5.0)
    # periodic in longitude: a point between the last and the first source column
    ring = np.cos(np.radians(lon))[None, :] * np.ones((19, 1))
    val = regrid_bilinear(ring, lat, lon, np.array([0.0]), np.array([175.0]))
    assert val[0, 0] == pytest.approx(0.5 * (math.cos(math.radians(170)) + math.cos(math.radians(180))))


def test_regrid_rejects_regional_grid() -> None:
    with pytest.raises(CoordError, match="global grid"):
        regrid_bilinear(np.zeros((3, 4)), np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.0, 3.0]), np.zeros(1), np.zeros(1), what="x.nc")


def test_balance_matrix_matches_transform_method(model: ShallowWaterModel) -> None:
    g = model.spec
    n = g.truncation + 1
    f = 2 * model.config.omega * g.coriolis_sin
    for m in (0, 4):
        ls = torch.arange(m, n)
        basis = torch.zeros(len(ls), n, n, dtype=torch.complex128)
        basis[torch.arange(len(ls)), ls, m] = 1.0
        gx, gy = g.grad(basis)
        div, _ = g.div_curl(f * gx, f * gy)
        numeric = div[:, m:, m].real.T * g.radius**2 / (2 * model.config.omega)
        assert torch.allclose(numeric, balance_matrix(21, m)[:-1], atol=1e-6 * numeric.abs().max().item())


def test_linear_balance_recovers_zonal_geostrophic_flow(model: ShallowWaterModel, balance: LinearBalance) -> None:
    # Phi = -a Omega u0 sin^2(lat) is in linear balance with u = u0 cos(lat) (case 2 without the u0^2 term).
    g = model.spec
    lat, lon = g.lats.reshape(-1, 1), g.lons.reshape(1, -1)
    u0 = 20.0
    phi = -g.radius * model.config.omega * u0 * torch.sin(lat) ** 2 * torch.ones_like(lon)
    vrt = balance.vorticity(g.to_spec(phi))
    u, v = g.uv(vrt, torch.zeros_like(vrt))
    err = (u - u0 * torch.cos(lat)).abs()
    extratropics = (lat.abs() > math.radians(20)).expand_as(err)
    assert err[extratropics].max() < 0.02 * u0
    assert err.max() < 0.05 * u0  # stays bounded at the equator instead of blowing up like 1/f
    assert v.abs().max() < 1e-8


def test_initial_state_members_and_mass(model: ShallowWaterModel, balance: LinearBalance) -> None:
    ds = _analysis(lon0=-180.0, descending=False)
    init = initial_state(ds, model, balance=balance, members=2)
    assert init.state.shape == (2, 3, 22, 22) and init.winds == "balanced"
    assert init.members.tolist() == [0, 1]
    assert init.init_time == np.datetime64("2017-01-01T00", "ns")
    # The model anomaly has zero global mean, the mean is carried separately.
    phi = model.to_grid(init.state)["phi"] - model.phibar
    assert model.spec.global_mean(phi).abs().max() < 1e-8
    assert float(init.z_mean[0]) == pytest.approx(5.5e4 - 1e3, rel=1e-3)


def test_initial_state_uses_winds_when_present(model: ShallowWaterModel) -> None:
    ds = _analysis(members=1)
    lat = np.radians(ds["lat"].values)[:, None] * np.ones(ds.sizes["lon"])
    ds["u500"] = (("time", "member", "lat", "lon"), (10 * np.cos(lat))[None, None])
    ds["v500"] = (("time", "member", "lat", "lon"), np.zeros_like(lat)[None, None])
    init = initial_state(ds, model)
    assert init.winds == "analysed"
    u = model.to_grid(init.state)["u"][0]
    assert torch.allclose(u, 10 * torch.cos(model.spec.lats).reshape(-1, 1).expand_as(u), atol=0.05)
    assert init.state[:, 1].abs().max() == 0  # divergence dropped


def test_missing_z500_names_file_and_variable(model: ShallowWaterModel) -> None:
    ds = _analysis().rename({"z500": "t500"})
    with pytest.raises(VariableNotFoundError, match=r"era5\.grib: no variable z500"):
        initial_state(ds, model, source="era5.grib")
    ds = _analysis()
    ds["u500"] = ds["z500"] * 0
    with pytest.raises(VariableNotFoundError, match="not v500"):
        initial_state(ds, model, source="era5.grib")


def test_perturbations_are_seeded_balanced_and_sized(model: ShallowWaterModel, balance: LinearBalance) -> None:
    init = initial_state(_analysis(members=1), model, balance=balance)
    a = perturb(init, 4, seed=7, amplitude=50.0, balance=balance)
    b = perturb(init, 4, seed=7, amplitude=50.0, balance=balance)
    c = perturb(init, 4, seed=8, amplitude=50.0, balance=balance)
    assert torch.equal(a.state, b.state) and not torch.equal(a.state, c.state)
    assert torch.equal(a.state[0], init.state[0])  # member 0 is the control
    dphi = model.to_grid(a.state[1:] - init.state[:1])["phi"] - model.phibar
    rms = torch.sqrt(model.spec.global_mean(dphi**2))
    assert torch.allclose(rms, torch.full_like(rms, 50.0), rtol=1e-6)


def test_balanced_winds_close_to_era_interim_winds(data_root, model: ShallowWaterModel) -> None:
    from engine.models.global_.initial import balanced_wind_error
    from engine.readers import open_any

    ds = open_any(data_root / "xarray-data" / "eraint_uvz.nc", variables=["z500", "u500", "v500"]).isel(month=0)
    err = balanced_wind_error(model, ds)
    # January-mean 500 hPa winds reach 40 m/s; linear balance explains them to ~1-2 m/s RMS.
    assert err["extratropics"] < 2.0 and err["tropics"] < 3.0
