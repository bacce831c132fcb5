"""GRIB (cfgrib) and gridded netCDF readers on the real sample files, against independent readers."""

from __future__ import annotations

import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from engine.config import Settings
from engine.errors import FormatError, VariableNotFoundError
from engine.readers import detect, open_any
from engine.readers.grib import GribReader, spectral_to_grid
from engine.readers.netcdf import G0, NetcdfGridReader

cfgrib = pytest.importorskip("cfgrib")
eccodes = pytest.importorskip("eccodes")


@pytest.fixture(scope="module")
def data() -> Path:
    root = Settings.from_env().data_root
    if root is None:
        pytest.skip("sample data folder not available (set METEOLENS_DATA)")
    return root


@pytest.fixture(autouse=True)
def _no_index_files(data: Path):
    """The sample folder is read-only: no reader may leave cfgrib .idx files in it."""
    before = set(data.rglob("*.idx"))
    yield
    assert set(data.rglob("*.idx")) == before


def _cfgrib(path: Path, **filter_by_keys: object) -> xr.Dataset:
    """The independent reference: xarray's cfgrib engine, no index file."""
    kwargs = {"indexpath": ""}
    if filter_by_keys:
        kwargs["filter_by_keys"] = filter_by_keys
    return xr.open_dataset(path, engine="cfgrib", backend_kwargs=kwargs)


# --------------------------------------------------------------------------------------- GRIB


def test_era5_members_z500_equals_cfgrib(data: Path) -> None:
    path = data / "cfgrib/tests/sample-data/era5-levels-members.grib"
    ds = GribReader().open(path)
    ref = _cfgrib(path)
    assert set(ds.data_vars) == {"z500", "z850", "t500", "t850"}
    assert ds["z500"].dims == ("time", "member", "lat", "lon")
    assert ds["z500"].attrs["units"] == "m2 s-2" and ds["t850"].attrs["units"] == "K"
    assert ds.sizes["member"] == 10 and ds.attrs["lat_order"] == "descending"
    ours = ds["z500"].sel(member=3, lat=45.0, lon=9.0).isel(time=1).item()
    theirs = ref["z"].sel(number=3, isobaricInhPa=500, latitude=45.0, longitude=9.0).isel(time=1).item()
    assert ours == theirs
    np.testing.assert_array_equal(ds["t850"].values, ref["t"].sel(isobaricInhPa=850).transpose("time", "number", ...).values)
    assert ds["lat"].attrs["units"] == "degrees_north" and ds["lon"].attrs["units"] == "degrees_east"
    assert ds.attrs["source_files"] == str(path)


def test_forecast_steps_give_init_and_lead_time(data: Path) -> None:
    path = data / "cfgrib/tests/sample-data/uv_on_different_levels.grib"
    ds = GribReader().open(path)
    assert {"u1000", "u850", "u500", "v1000", "v700", "v500"} <= set(ds.data_vars)
    assert "v850" not in ds.data_vars  # v is not on 850 hPa in this file
    assert ds["u500"].dims == ("init_time", "lead_time", "lat", "lon")
    np.testing.assert_array_equal(ds["valid_time"].values, (ds["init_time"] + ds["lead_time"]).values)
    ref = _cfgrib(path, shortName="u")
    np.testing.assert_array_equal(ds["u850"].isel(init_time=0).values, ref["u"].sel(isobaricInhPa=850).values)


def test_single_perturbed_member_and_msl(data: Path) -> None:
    path = data / "cfgrib/tests/sample-data/regular_ll_msl.grib"
    ds = GribReader().open(path)
    ref = _cfgrib(path)
    assert list(ds["member"].values) == [int(ref["number"])]
    assert ds["msl"].attrs["units"] == "Pa"
    np.testing.assert_array_equal(ds["msl"].values.squeeze(), ref["prmsl"].values)
    assert ds["lead_time"].values[0] == np.timedelta64(3, "D")


def test_missing_values_are_nan(data: Path) -> None:
    path = data / "cfgrib/tests/sample-data/fields_with_missing_values.grib"
    ds = GribReader().open(path)
    ref = _cfgrib(path)
    assert ds["t2m"].isnull().sum() == ref["t2m"].isnull().sum() > 0
    np.testing.assert_array_equal(ds["t2m"].values, ref["t2m"].values)


def test_era5_uk_t2m(data: Path) -> None:
    path = data / "xarray-data/era5-2mt-2019-03-uk.grib"
    ds = open_any(path, variables=["t2m"])
    assert ds.sizes == {"time": 744, "lat": 33, "lon": 49}
    ref = _cfgrib(path)
    assert ds["t2m"].isel(time=100).sel(lat=51.5, lon=0.0).item() == ref["t2m"].isel(time=100).sel(latitude=51.5, longitude=0.0).item()


def _direct_synthesis(coeffs: np.ndarray, j: int, lat: float, lon: float) -> float:
    """Independent spectral synthesis with scipy's spherical harmonics (ECMWF normalisation, no CS phase)."""
    from scipy.special import sph_harm_y

    c = coeffs[0::2] + 1j * coeffs[1::2]
    theta, phi = np.deg2rad(90.0 - lat), np.deg2rad(lon)
    total, k = 0.0, 0
    for m in range(j + 1):
        for n in range(m, j + 1):
            # scipy's Y is orthonormal with the Condon-Shortley phase; ECMWF's is sqrt(4 pi) larger, without it.
            y = sph_harm_y(n, m, theta, phi) * np.sqrt(4.0 * np.pi) * (-1) ** m
            total += (1.0 if m == 0 else 2.0) * np.real(c[k] * y)
            k += 1
    return total


def test_spherical_harmonics_are_synthesised(data: Path) -> None:
    path = data / "cfgrib/tests/sample-data/spherical_harmonics.grib"
    ds = GribReader().open(path)
    z = ds["z500"].isel(time=0)
    with open(path, "rb") as f:
        handle = eccodes.codes_grib_new_from_file(f)
        coeffs = eccodes.codes_get_values(handle)
        j = eccodes.codes_get(handle, "pentagonalResolutionParameterJ")
        eccodes.codes_release(handle)
    assert z.attrs["spectral_truncation"] == f"T{j}"
    for i_lat, i_lon in [(10, 20), (64, 100), (100, 250)]:
        lat, lon = float(z.lat[i_lat]), float(z.lon[i_lon])
        assert z.values[i_lat, i_lon] == pytest.approx(_direct_synthesis(coeffs, j, lat, lon), rel=1e-6)
    # The (0, 0) coefficient is the global mean: compare with the area-weighted grid mean.
    w = np.cos(np.deg2rad(z.lat))
    assert float(z.weighted(w).mean()) == pytest.approx(coeffs[0], rel=2e-3)
    assert 45_000 < float(z.min()) < float(z.max()) < 60_000  # 500 hPa geopotential, m2 s-2


def test_spectral_to_grid_rejects_wrong_length() -> None:
    with pytest.raises(ValueError, match="T10"):
        spectral_to_grid(np.zeros(10), 10)


def test_truncated_grib_is_a_format_error(data: Path, tmp_path: Path) -> None:
    src = data / "cfgrib/tests/sample-data/era5-levels-members.grib"
    cut = tmp_path / "cut.grib"
    cut.write_bytes(src.read_bytes()[: 14752 * 3 + 500])
    with pytest.raises(FormatError, match="cut.grib.*truncated"):
        GribReader().open(cut)


def test_not_grib_with_grib_suffix(tmp_path: Path) -> None:
    bad = tmp_path / "fake.grib"
    bad.write_bytes(b"this is not GRIB at all" * 10)
    assert not GribReader().can_open(bad)
    with pytest.raises(FormatError, match="fake.grib"):
        GribReader().open(bad)
    with pytest.raises(FormatError, match="fake.grib"):
        detect(bad)


def test_grib_missing_variable(data: Path) -> None:
    path = data / "cfgrib/tests/sample-data/regular_ll_msl.grib"
    with pytest.raises(VariableNotFoundError, match=r"regular_ll_msl.grib.*z500.*available: msl"):
        GribReader().open(path, variables=["z500"])


# --------------------------------------------------------------------------------- netCDF grid


def test_eraint_levels_are_split(data: Path) -> None:
    path = data / "xarray-data/eraint_uvz.nc"
    ds = NetcdfGridReader().open(path, variables=["z500", "u850"])
    assert set(ds.data_vars) == {"z500", "u850"}
    with netCDF4.Dataset(path) as nc:  # netCDF4 applies scale_factor/add_offset itself
        lat = list(nc["latitude"][:]).index(45.0)
        lon = list(nc["longitude"][:]).index(9.0)
        level = list(nc["level"][:]).index(500)
        nc["z"].set_auto_mask(False)  # its NaN _FillValue cannot apply to int16; scaling stays on
        raw = float(nc["z"][0, level, lat, lon])
    assert ds["z500"].sel(month=1, lat=45.0, lon=9.0).item() == pytest.approx(raw, rel=1e-6)
    assert ds["z500"].attrs["units"] == "m2 s-2" and ds.attrs["lat_order"] == "descending"


def _write_cds(path: Path, *, new_layout: bool) -> xr.Dataset:
    """A small file in the Climate Data Store's netCDF layout (old: time/level, new: valid_time/pressure_level)."""
    rng = np.random.default_rng(0)
    t, lvl = ("valid_time", "pressure_level") if new_layout else ("time", "level")
    times = pd.date_range("2017-01-01", periods=2, freq="6h")
    lat, lon = np.array([50.0, 49.75, 49.5]), np.array([10.0, 10.25])
    shape3, shape4 = (2, 3, 2), (2, 2, 3, 2)
    ds = xr.Dataset(
        {
            "z": ((t, lvl, "latitude", "longitude"), 50_000 + rng.normal(size=shape4), {"units": "m**2 s**-2"}),
            "t": ((t, lvl, "latitude", "longitude"), 260 + rng.normal(size=shape4), {"units": "K"}),
            "t2m": ((t, "latitude", "longitude"), 270 + rng.normal(size=shape3), {"units": "K"}),
            "tp": ((t, "latitude", "longitude"), np.abs(rng.normal(size=shape3)) * 1e-3, {"units": "m"}),
        },
        coords={t: times, lvl: (lvl, [850, 500], {"units": "millibars" if not new_layout else "hPa"}),
                "latitude": lat, "longitude": lon},
    )
    if new_layout:
        # The 2024 CDS adds these bookkeeping coordinates.
        ds = ds.assign_coords(number=0, expver=("valid_time", ["0001", "0001"]))
    ds.to_netcdf(path)
    return ds


@pytest.mark.parametrize("new_layout", [False, True])
def test_era5_cds_layout(tmp_path: Path, new_layout: bool) -> None:
    path = tmp_path / "era5.nc"
    src = _write_cds(path, new_layout=new_layout)
    assert NetcdfGridReader().can_open(path)
    ds = open_any(path)
    lvl = "pressure_level" if new_layout else "level"
    t = "valid_time" if new_layout else "time"
    assert {"z500", "z850", "t500", "t850", "t2m", "tp"} <= set(ds.data_vars)
    assert ds["t850"].dims == ("time", "lat", "lon")
    np.testing.assert_allclose(ds["z500"].values, src["z"].sel({lvl: 500}).values, rtol=1e-6)
    np.testing.assert_allclose(ds["tp"].values, src["tp"].values * 1000.0, rtol=1e-6)  # m → mm
    assert ds["tp"].attrs["units"] == "mm"
    np.testing.assert_array_equal(ds["time"].values, src[t].values)


def test_surface_geopotential_becomes_orography(tmp_path: Path) -> None:
    path = tmp_path / "oro.nc"
    xr.Dataset({"z": (("latitude", "longitude"), np.full((2, 2), 2.0 * G0), {"units": "m**2 s**-2"})},
               coords={"latitude": [1.0, 0.0], "longitude": [0.0, 1.0]}).to_netcdf(path)
    ds = NetcdfGridReader().open(path)
    np.testing.assert_allclose(ds["orography"].values, 2.0)
    assert ds["orography"].attrs["units"] == "m"


def test_storm_files(data: Path) -> None:
    folder = data / "geocat-datafiles/netcdf_files"
    p = NetcdfGridReader().open(folder / "Pstorm.cdf")
    u500 = NetcdfGridReader().open(folder / "U500storm.cdf")
    u10 = NetcdfGridReader().open(folder / "Ustorm.cdf")
    t2m = NetcdfGridReader().open(folder / "Tstorm.cdf")
    assert list(p.data_vars) == ["msl"] and list(u500.data_vars) == ["u500"] and list(u10.data_vars) == ["u10"]
    assert list(t2m.data_vars) == ["t2m"] and t2m["t2m"].attrs["units"] == "K"
    assert p["time"].values[0] == np.datetime64("1996-01-05T00:00")
    assert p["time"].values[1] - p["time"].values[0] == np.timedelta64(6, "h") and p.sizes["time"] == 64
    with netCDF4.Dataset(folder / "Pstorm.cdf") as nc:
        raw = nc["p"][:]
    np.testing.assert_array_equal(np.isnan(p["msl"].values), np.ma.getmaskarray(raw))
    assert p["msl"].values[5, 10, 20] == raw[5, 10, 20]  # Pa, as stored
    assert 95_000 < float(p["msl"].min()) < float(p["msl"].max()) < 106_000


def test_landsea_classes_and_mask(data: Path) -> None:
    path = data / "geocat-datafiles/netcdf_files/landsea.nc"
    ds = NetcdfGridReader().open(path)
    with netCDF4.Dataset(path) as nc:
        codes = nc["LSMASK"][:]
    np.testing.assert_array_equal(ds["land_sea_class"].values, codes)
    np.testing.assert_array_equal(ds["land_sea_mask"].values, np.isin(codes, [1, 3]).astype("float32"))
    assert ds["land_sea_mask"].sel(lat=47.5, lon=10.5, method="nearest").item() == 1.0  # Tyrol
    assert ds["land_sea_mask"].sel(lat=0.5, lon=-150.5 % 360 if ds.lon.max() > 180 else -150.5, method="nearest").item() == 0.0


def test_speedy_orography_units_fixed(data: Path) -> None:
    path = data / "speedyweather/input_data/orography.nc"
    ds = NetcdfGridReader().open(path)
    assert ds["orography"].attrs["units"] == "m"
    with netCDF4.Dataset(path) as nc:
        assert nc["orog"].units == "m**2 s**-2"  # the wrong attribute we override
        raw = nc["orog"][500, 1000]
    assert ds["orography"].values[500, 1000] == raw
    assert 5000 < float(ds["orography"].max()) < 9000  # Himalaya in metres, not m2 s-2


def test_speedy_land_sea_fraction(data: Path) -> None:
    path = data / "speedyweather/input_data/land-sea_mask.nc"
    ds = NetcdfGridReader().open(path)
    frac = ds["land_sea_fraction"]
    assert frac.dtype == np.float32 and float(frac.min()) >= 0.0 and float(frac.max()) <= 1.0
    with netCDF4.Dataset(path) as nc:
        assert frac.values[900, 100] == nc["lsm"][900, 100]


def test_truncated_netcdf_is_a_format_error(data: Path, tmp_path: Path) -> None:
    for name in ("xarray-data/eraint_uvz.nc", "speedyweather/input_data/orography.nc"):
        src = data / name
        cut = tmp_path / src.name
        cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
        with pytest.raises(FormatError, match=src.name):
            NetcdfGridReader().open(cut)


def test_netcdf_missing_variable(data: Path) -> None:
    with pytest.raises(VariableNotFoundError, match=r"eraint_uvz.nc.*t850.*available: u200"):
        NetcdfGridReader().open(data / "xarray-data/eraint_uvz.nc", variables=["t850"])


def test_unsupported_netcdf_layout(tmp_path: Path) -> None:
    path = tmp_path / "other.nc"
    xr.Dataset({"foo": (("a",), np.arange(3.0))}).to_netcdf(path)
    assert not NetcdfGridReader().can_open(path)
    with pytest.raises(FormatError, match="other.nc"):
        NetcdfGridReader().open(path)


@pytest.mark.parametrize(
    ("name", "reader"),
    [
        ("cfgrib/tests/sample-data/era5-levels-members.grib", "grib"),
        ("cfgrib/tests/sample-data/spherical_harmonics.grib", "grib"),
        ("xarray-data/era5-2mt-2019-03-uk.grib", "grib"),
        ("xarray-data/eraint_uvz.nc", "netcdf_grid"),
        ("geocat-datafiles/netcdf_files/V500storm.cdf", "netcdf_grid"),
        ("geocat-datafiles/netcdf_files/landsea.nc", "netcdf_grid"),
        ("speedyweather/input_data/orography.nc", "netcdf_grid"),
        ("speedyweather/input_data/land-sea_mask.nc", "netcdf_grid"),
    ],
)
def test_detection(data: Path, name: str, reader: str) -> None:
    assert detect(data / name) == reader


def test_copy_keeps_working(data: Path, tmp_path: Path) -> None:
    """A copy under another name (same suffix) is read identically: detection does not depend on the path."""
    src = data / "cfgrib/tests/sample-data/regular_ll_msl.grib"
    dst = tmp_path / "copy.grb"
    shutil.copy(src, dst)
    xr.testing.assert_identical(GribReader().open(dst).drop_attrs(), GribReader().open(src).drop_attrs())


def test_reduced_gaussian_grid_is_refused(tmp_path: Path) -> None:
    handle = eccodes.codes_grib_new_from_samples("reduced_gg_pl_32_grib2")
    path = tmp_path / "reduced.grib2"
    with open(path, "wb") as f:
        eccodes.codes_write(handle, f)
    eccodes.codes_release(handle)
    with pytest.raises(FormatError, match="reduced.grib2.*reduced_gg.*regrid"):
        GribReader().open(path)


def test_pyproj_still_works_after_grib_import() -> None:
    """ecCodes bundles its own libproj; importing the GRIB reader must not break pyproj."""
    import subprocess
    import sys

    code = "import engine.readers.grib, pyproj; print(pyproj.CRS.from_epsg(4326).name)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "WGS 84" in out.stdout, out.stderr[-500:]


def test_netcdf_with_canonical_level_names_keeps_them(tmp_path: Path) -> None:
    """Files whose variables are already canonical with their level (z500, t850) keep them."""
    lat = np.linspace(90.0, -90.0, 5)
    lon = np.arange(0.0, 360.0, 90.0)
    rng = np.random.default_rng(0)
    z500 = 5.5e4 + 100.0 * rng.standard_normal((2, 5, 4))
    t850 = 270.0 + rng.standard_normal((2, 5, 4))
    times = np.array(["2017-01-01T00", "2017-01-01T06"], dtype="datetime64[ns]")
    path = tmp_path / "canonical.nc"
    xr.Dataset(
        {
            "z500": (("time", "lat", "lon"), z500, {"units": "m2 s-2"}),
            "t850": (("time", "lat", "lon"), t850, {"units": "K"}),
        },
        coords={"time": times, "lat": lat, "lon": lon},
    ).to_netcdf(path)
    ds = open_any(path)
    assert {"z500", "t850"} <= set(ds.data_vars)
    np.testing.assert_allclose(ds["z500"].transpose("time", "lat", "lon").values, z500, rtol=1e-6)
    assert ds["t850"].attrs["units"] == "K"


# --- CF netCDF on a projected grid -------------------------------------------------------------


def test_projected_radar_round_trips_through_netcdf(data: Path, tmp_path: Path) -> None:
    # A MeteoSwiss frame (Swiss oblique Mercator) written as CF netCDF and read back.
    mch = open_any(sorted((data / "pysteps-data" / "radar" / "mch" / "20150515").glob("AQC*"))[0])
    path = tmp_path / "mch.nc"
    mch.to_netcdf(path)
    back = open_any(path)
    assert back.attrs["reader"] == detect(path) == "netcdf_grid"
    assert back["precip_rate"].dims == mch["precip_rate"].dims and back["precip_rate"].attrs["units"] == "mm h-1"
    np.testing.assert_array_equal(back["precip_rate"].values, mch["precip_rate"].values)  # NaN where no data
    np.testing.assert_array_equal(back["x"].values, mch["x"].values)
    np.testing.assert_allclose(back["lat"].values, mch["lat"].values, atol=1e-5)
    np.testing.assert_allclose(back["lon"].values, mch["lon"].values, atol=1e-5)
    assert back["precip_rate"].attrs["grid_mapping"] == "crs" and "crs_wkt" in back["crs"].attrs


def _lambert_file(path: Path, mapping: dict[str, object]) -> None:
    """t2m in K on a 5 x 4 Lambert conformal grid (50 km) described by CF attributes only."""
    x, y = np.arange(4) * 50e3, np.arange(5) * 50e3
    ds = xr.Dataset(
        {"t2m": (("y", "x"), np.full((5, 4), 280.0, "float32"), {"units": "K", "grid_mapping": "lambert"}),
         "lambert": ((), np.int32(0), mapping)},
        coords={"x": ("x", x, {"units": "m", "standard_name": "projection_x_coordinate"}),
                "y": ("y", y, {"units": "m", "standard_name": "projection_y_coordinate"})},
    )
    ds.to_netcdf(path)


LAMBERT = {"grid_mapping_name": "lambert_conformal_conic", "standard_parallel": [45.0, 55.0],
           "longitude_of_central_meridian": 10.0, "latitude_of_projection_origin": 50.0}


def test_projected_grid_from_cf_attributes_gets_wgs84_lat_lon(tmp_path: Path) -> None:
    import pyproj

    path = tmp_path / "lambert.nc"
    _lambert_file(path, LAMBERT)
    ds = open_any(path)
    assert ds["t2m"].dims == ("y", "x") and ds.attrs["y_order"] == "south_to_north"
    to_geo = pyproj.Transformer.from_crs(pyproj.CRS.from_cf(LAMBERT), "EPSG:4326", always_xy=True)
    lon, lat = to_geo.transform(150e3, 200e3)
    assert abs(float(ds["lat"][4, 3]) - lat) < 1e-4 and abs(float(ds["lon"][4, 3]) - lon) < 1e-4
    assert abs(float(ds["lat"][0, 0]) - 50.0) < 1e-4 and abs(float(ds["lon"][0, 0]) - 10.0) < 1e-4


def test_projected_grid_with_a_broken_mapping_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.nc"
    _lambert_file(path, {"grid_mapping_name": "no_such_projection"})
    with pytest.raises(FormatError, match=r"broken\.nc.*not a valid projection"):
        open_any(path)
