"""Initial states of the primitive-equation core from pressure-level analyses, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from engine.datasets import open_dataset
from engine.errors import CoordError, VariableNotFoundError, WxError
from engine.models.global_.primitive.analysis import (
    analysis_state,
    model_orography,
    read_pressure_levels,
    surface_pressure,
)
from engine.models.global_.primitive.vertical import GRAVITY, SigmaLevels, pressure_full, standard_atmosphere
from engine.models.global_.spectral import SpectralGrid
from engine.readers import open_any

LAT = np.linspace(90, -90, 37)
LON = np.arange(72) * 5.0


@pytest.fixture(scope="module")
def grid() -> SpectralGrid:
    return SpectralGrid(21)


@pytest.fixture(scope="module")
def era5(data_root) -> xr.Dataset:
    return open_any(data_root / "cfgrib" / "tests" / "sample-data" / "era5-levels-members.grib")


def _isa(p_hpa: float) -> tuple[float, float]:
    t, phi = standard_atmosphere(torch.tensor(p_hpa * 100.0, dtype=torch.float64))
    return float(t), float(phi)


def _standard_analysis(levels_hpa=(850, 500, 250), *, winds: bool = False, rh: float | None = None) -> xr.Dataset:
    """The standard atmosphere on pressure levels (uniform fields) on a 5-degree grid."""
    data = {}
    shape = (LAT.size, LON.size)
    for lev in levels_hpa:
        t, phi = _isa(lev)
        data[f"z{lev}"] = (("lat", "lon"), np.full(shape, phi))
        data[f"t{lev}"] = (("lat", "lon"), np.full(shape, t))
        if winds:
            # u linear in ln p: 10 m/s per e-folding of pressure upwards
            data[f"u{lev}"] = (("lat", "lon"), np.full(shape, 10.0 * np.log(1000.0 / lev)))
            data[f"v{lev}"] = (("lat", "lon"), np.full(shape, -2.0))
        if rh is not None:
            data[f"r{lev}"] = (("lat", "lon"), np.full(shape, rh))
    return xr.Dataset(data, coords={"lat": LAT, "lon": LON, "time": np.datetime64("2018-04-04T12", "ns")})


def test_standard_atmosphere_at_sea_level(grid: SpectralGrid) -> None:
    levels = SigmaLevels.default()
    st = analysis_state(_standard_analysis(), grid, levels)
    assert (
        st.members is None
        and st.t.shape == (levels.nlev, grid.nlat, grid.nlon)
        and st.ps.shape == (grid.nlat, grid.nlon)
    )
    assert st.winds == "balanced" and st.q is None
    assert st.init_time == np.datetime64("2018-04-04T12", "ns")
    # below 850 hPa the 6.5 K/km extrapolation is the standard atmosphere itself
    assert torch.allclose(st.ps, torch.full_like(st.ps, 101325.0), atol=1.0)
    t_std, _ = standard_atmosphere(pressure_full(st.ps, levels))
    inside = (levels.full * 1013.25 >= 250) & (levels.full * 1013.25 <= 850)
    # between analysis levels: the thickness-corrected profile follows the standard one to 0.1 K
    assert (st.t - t_std)[inside].abs().max() < 0.1
    assert (st.t - t_std)[levels.full * 1013.25 > 850].abs().max() < 1e-6
    # no horizontal gradients: no balanced wind
    assert st.u.abs().max() < 1e-6 and st.v.abs().max() < 1e-6


@pytest.mark.parametrize("height", [0.0, 1000.0, 3000.0, 6000.0])
def test_surface_pressure_of_standard_atmosphere_over_ground(height: float) -> None:
    # ground below all levels (0, 1000 m), between 700 and 500 hPa (3000 m), above the top (6000 m)
    levels_hpa = torch.tensor([500.0, 700.0, 850.0], dtype=torch.float64)
    t, phi = standard_atmosphere(levels_hpa * 100)
    z, tt = phi[:, None, None].expand(3, 2, 2), t[:, None, None].expand(3, 2, 2)
    phis = torch.full((2, 2), height * GRAVITY, dtype=torch.float64)
    ps = surface_pressure(z, tt, levels_hpa * 100, phis)
    expected = float(torch.exp(torch.log(torch.tensor(101325.0)) - 0))  # at sea level
    if height:
        # the standard atmosphere's pressure at that height, by bisection on its geopotential
        lo, hi = 1.0e4, 1.1e5
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            lo, hi = (
                (mid, hi)
                if float(standard_atmosphere(torch.tensor(mid, dtype=torch.float64))[1]) > height * GRAVITY
                else (lo, mid)
            )
        expected = 0.5 * (lo + hi)
    tol = 20.0 if height < 6000 else 60.0  # Pa; above the top the 700-500 profile is extended
    assert torch.allclose(ps, torch.full_like(ps, expected), atol=tol)


def test_analysed_winds_and_humidity(grid: SpectralGrid) -> None:
    levels = SigmaLevels.equal(10)
    st = analysis_state(_standard_analysis(winds=True, rh=50.0), grid, levels)
    assert st.winds == "analysed"
    p = pressure_full(st.ps, levels)
    inside = (p >= 25000) & (p <= 85000)
    # a wind linear in ln p is interpolated exactly; constant below 850 hPa
    assert torch.allclose(st.u[inside], (10.0 * torch.log(100000.0 / p))[inside], atol=1e-9)
    assert torch.allclose(st.u[p > 85000], torch.full_like(st.u[p > 85000], 10 * np.log(1000 / 850)), atol=1e-9)
    assert torch.allclose(st.v, torch.full_like(st.v, -2.0))
    # 50 % relative humidity at 850 hPa and its standard temperature, Bolton (1980) eq. 10
    t850, _ = _isa(850)
    es = 611.2 * np.exp(17.67 * (t850 - 273.15) / (t850 - 29.65))
    q850 = 0.622 * 0.5 * es / (85000 - 0.378 * 0.5 * es)
    assert st.q is not None
    assert torch.allclose(st.q[p > 85000], torch.full_like(st.q[p > 85000], q850), rtol=1e-12)
    assert st.q.min() >= 0 and st.q.max() < 0.01


def test_era5_sample_members_and_surface_pressure(era5: xr.Dataset, data_root) -> None:
    g = SpectralGrid(21)
    oro = open_dataset("ifs-orography", data_root)
    st = analysis_state(era5, g, orography=oro, members=3, source="era5.grib")
    assert st.t.shape == (3, 20, g.nlat, g.nlon) and st.ps.shape == (3, g.nlat, g.nlon)
    assert st.members.tolist() == [0, 1, 2] and st.winds == "balanced"
    assert st.init_time == np.datetime64("2017-01-01T00", "ns")
    for field in st.fields().values():
        assert field is None or bool(torch.isfinite(field).all())
    # the real atmosphere's global-mean surface pressure is 985 hPa (Trenberth & Smith 2005)
    mean_ps = g.global_mean(st.ps) / 100
    assert torch.all((mean_ps > 980) & (mean_ps < 990)), mean_ps
    # Tibet (32N 90E, smoothed at T21) under 700 hPa, the tropical Pacific (0N 180E) above 1005 hPa
    i_tib = int(np.argmin(np.abs(g.lat_deg - 32))), int(np.argmin(np.abs(g.lon_deg - 90)))
    i_pac = int(np.argmin(np.abs(g.lat_deg))), int(np.argmin(np.abs(g.lon_deg - 180)))
    assert float(st.ps[0][i_tib]) < 70000 and float(st.ps[0][i_pac]) > 100500
    assert 20 < float(torch.sqrt(st.u**2 + st.v**2).max()) < 100
    # the members differ (the ERA5 data-assimilation ensemble)
    assert float((st.t[1] - st.t[0]).abs().max()) > 0.1


def test_model_orography_from_the_ifs_dem(data_root, grid: SpectralGrid) -> None:
    dem = open_dataset("ifs-orography", data_root)
    phis = model_orography(grid, dem)
    height = phis / GRAVITY
    lat = torch.as_tensor(grid.lat_deg)[:, None].expand_as(height)
    # T21 keeps a Tibetan plateau of 3-5 km, the Antarctic dome above 2 km, little ripple at sea
    assert 3000 < float(height[(lat > 25) & (lat < 40)].max()) < 5500
    assert float(height[lat < -75].mean()) > 2000
    # the mean height of the globe survives the averaging and the filter (~ 230 m of land on 29 %)
    w = np.cos(np.radians(dem["lat"].values))[:, None]
    dem_mean = float((np.clip(dem["orography"].values, 0, None) * w).sum() / (w.sum() * dem.sizes["lon"]))
    assert float(grid.global_mean(height)) == pytest.approx(dem_mean, rel=0.02)
    assert float(height.min()) > -400


# ---------------------------------------------------------------------------------- bad input
def test_one_level_only(era5: xr.Dataset, grid: SpectralGrid) -> None:
    with pytest.raises(
        CoordError, match=r"^era5\.grib: geopotential and temperature on 1 common pressure level\(s\) only \(500 hPa\)"
    ):
        analysis_state(era5[["z500", "t500", "z850"]], grid, source="era5.grib")


def test_missing_temperature_in_a_real_file(data_root, grid: SpectralGrid) -> None:
    path = data_root / "xarray-data" / "eraint_uvz.nc"
    ds = open_any(path).isel(month=0)
    with pytest.raises(VariableNotFoundError, match=r"eraint_uvz\.nc: no temperature on pressure levels .* has z200"):
        analysis_state(ds, grid, source=path.name)


def test_levels_in_pa(grid: SpectralGrid) -> None:
    # 50 and 85 hPa given in Pa, read as hPa names: z5000, z8500
    ds = _standard_analysis((500, 850)).rename({"z500": "z5000", "t500": "t5000", "z850": "z8500", "t850": "t8500"})
    with pytest.raises(CoordError, match=r"^x\.nc: z on level\(s\) 5000, 8500 hPa: .* are the levels in Pa\?$"):
        analysis_state(ds, grid, source="x.nc")


def test_levels_in_kpa(grid: SpectralGrid) -> None:
    ds = _standard_analysis((500, 850)).rename({"z500": "z50", "t500": "t50", "z850": "z85", "t850": "t85"})
    with pytest.raises(CoordError, match=r"^x\.nc: z50 has mean .* at 50 hPa; are the levels in the wrong units\?$"):
        analysis_state(ds, grid, source="x.nc")


def test_geopotential_in_metres(era5: xr.Dataset, grid: SpectralGrid) -> None:
    ds = era5.assign(z500=era5["z500"] / GRAVITY, z850=era5["z850"] / GRAVITY)
    with pytest.raises(CoordError, match=r"^era5\.grib: z500 has mean .* it looks like geopotential height in m"):
        analysis_state(ds, grid, source="era5.grib")


def test_temperature_in_celsius(grid: SpectralGrid) -> None:
    ds = _standard_analysis()
    ds["t500"] = ds["t500"] - 273.15
    with pytest.raises(CoordError, match=r"^a\.nc: t500 ranges .* outside the plausible 150 .. 350 K; is it in degC\?"):
        analysis_state(ds, grid, source="a.nc")


def test_nan_in_a_field(era5: xr.Dataset, grid: SpectralGrid) -> None:
    t850 = era5["t850"].values.copy()
    t850[0, 0, 10, 10] = np.nan
    ds = era5.assign(t850=(era5["t850"].dims, t850))
    with pytest.raises(CoordError, match=r"^era5\.grib: t850 has 1 missing \(NaN\) values"):
        analysis_state(ds, grid, members=2, source="era5.grib")


def test_one_wind_component(grid: SpectralGrid) -> None:
    ds = _standard_analysis(winds=True).drop_vars(["v850", "v500", "v250"])
    with pytest.raises(VariableNotFoundError, match=r"^a\.nc: has u on levels but not v"):
        analysis_state(ds, grid, source="a.nc")


def test_errors_are_one_line(era5: xr.Dataset, grid: SpectralGrid) -> None:
    for ds in (era5[["z500", "t500"]], era5.drop_vars(["t500", "t850"])):
        with pytest.raises(WxError) as info:
            read_pressure_levels(ds, grid, source="era5.grib")
        assert "\n" not in str(info.value) and str(info.value).startswith("era5.grib: ")


@pytest.mark.gpu
def test_analysis_on_cuda_matches_cpu(era5: xr.Dataset) -> None:
    cpu = SpectralGrid(21)
    gpu = SpectralGrid(21).to("cuda")
    a = analysis_state(era5, cpu, members=2)
    b = analysis_state(era5, gpu, members=2)
    for name, field in a.fields().items():
        other = b.fields()[name]
        assert field is not None and other is not None and other.device.type == "cuda", name
        assert torch.allclose(other.cpu(), field, atol=1e-6, rtol=1e-9), name
