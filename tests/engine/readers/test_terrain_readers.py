"""DEM and text-grid readers (GeoTIFF, netCDF DEMs, basemap text grids) on the real sample files."""

from __future__ import annotations

import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import tifffile
from pyproj import Transformer

from engine.config import Settings
from engine.errors import FormatError, VariableNotFoundError
from engine.readers import detect, open_any
from engine.readers.terrain import EtopoTextReader, GeoTiffReader, NetcdfDemReader, geotiff_crs


@pytest.fixture(scope="module")
def data() -> Path:
    root = Settings.from_env().data_root
    if root is None:
        pytest.skip("sample data folder not available (set METEOLENS_DATA)")
    return root


# ------------------------------------------------------------------------------------ GeoTIFF


def test_oetztal_tile_is_where_it_should_be(data: Path) -> None:
    path = data / "oggm-sample-data/test-workflow/srtm_oetztal.tif"
    ds = GeoTiffReader().open(path)
    oro = ds["orography"]
    assert oro.dims == ("lat", "lon") and oro.attrs["units"] == "m"
    assert ds.attrs["crs"] == "EPSG:4326" and ds.attrs["lat_order"] == "descending"
    # The tile centre lies in the Oetztal Alps (about 46.8 N, 10.8 E); Wildspitze, 3768 m, is the highest summit.
    assert float(ds["lat"].mean()) == pytest.approx(46.84, abs=0.1)
    assert float(ds["lon"].mean()) == pytest.approx(10.86, abs=0.1)
    assert 3600.0 < float(oro.max()) < 3800.0
    raw = tifffile.imread(path)
    np.testing.assert_array_equal(oro.values, raw.astype("float32"))
    # Cell centres: half a pixel in from the tiepoint corner.
    with tifffile.TiffFile(path) as tif:
        tie = tif.geotiff_metadata["ModelTiepoint"]
        scale = tif.geotiff_metadata["ModelPixelScale"]
    assert float(ds["lon"][0]) == pytest.approx(tie[3] + 0.5 * scale[0])
    assert float(ds["lat"][0]) == pytest.approx(tie[4] - 0.5 * scale[1])


def test_projected_geotiff(data: Path) -> None:
    path = data / "oggm-sample-data/test-files/dem_chhota_shigri.tif"
    ds = GeoTiffReader().open(path)
    assert ds["orography"].dims == ("y", "x") and ds["orography"].attrs["grid_mapping"] == "crs"
    assert ds["lat"].dims == ("y", "x") and "crs_wkt" in ds["crs"].attrs
    # Chhota Shigri glacier, Lahaul, Himachal Pradesh: about 32.25 N, 77.5 E.
    assert float(ds["lat"].mean()) == pytest.approx(32.23, abs=0.15)
    assert float(ds["lon"].mean()) == pytest.approx(77.5, abs=0.15)
    # Independent check: the file's user-defined transverse Mercator (GeoKeys: natural origin 0 N,
    # 77.507513941 E, scale 0.9996, no false easting/northing, WGS 84) written out by hand.
    to_geo = Transformer.from_crs("+proj=tmerc +lon_0=77.507513941 +k_0=0.9996 +ellps=WGS84", "EPSG:4326", always_xy=True)
    lon, lat = to_geo.transform(float(ds["x"][100]), float(ds["y"][50]))
    assert float(ds["lat"][50, 100]) == pytest.approx(lat, abs=1e-5)
    assert float(ds["lon"][50, 100]) == pytest.approx(lon, abs=1e-5)
    np.testing.assert_array_equal(ds["orography"].values, tifffile.imread(path).astype("float32"))


def test_geotiff_crs_rejects_unsupported() -> None:
    with pytest.raises(ValueError, match="coordinate transform"):
        geotiff_crs({"GTModelTypeGeoKey": 1, "ProjectedCSTypeGeoKey": 32767, "ProjCoordTransGeoKey": 11})
    assert geotiff_crs({"GTModelTypeGeoKey": 1, "ProjectedCSTypeGeoKey": 32632}).to_epsg() == 32632


def test_geotiff_bad_inputs(data: Path, tmp_path: Path) -> None:
    src = data / "oggm-sample-data/test-files/hef_srtm.tif"
    cut = tmp_path / "hef_srtm.tif"
    cut.write_bytes(src.read_bytes()[:5000])
    with pytest.raises(FormatError, match="hef_srtm.tif"):
        GeoTiffReader().open(cut)
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((4, 5), dtype="int16"))  # a TIFF without georeferencing
    with pytest.raises(FormatError, match="plain.tif.*not georeferenced"):
        GeoTiffReader().open(plain)
    with pytest.raises(VariableNotFoundError, match="hef_srtm.tif.*t2m"):
        GeoTiffReader().open(src, variables=["t2m"])


# --------------------------------------------------------------------------------- netCDF DEMs


def test_colorado_elevation(data: Path) -> None:
    path = data / "geocat-datafiles/netcdf_files/colorado_elev.nc"
    ds = NetcdfDemReader().open(path)
    oro = ds["orography"]
    assert oro.dims == ("lat", "lon") and oro.attrs["units"] == "m"
    with netCDF4.Dataset(path) as nc:
        raw = nc["z"][:]
        lat, lon = nc["y"][:], nc["x"][:]
    np.testing.assert_array_equal(oro.values, raw.astype("float32"))
    np.testing.assert_array_equal(ds["lat"].values, lat)
    np.testing.assert_array_equal(ds["lon"].values, lon)
    assert float(ds["lon"].min()) == -110.0 and float(ds["lon"].max()) == -102.0
    # Colorado's fourteeners reach 4401 m (Mount Elbert); the plains are near 1000 m.
    assert 4000.0 < float(oro.max()) < 4450.0 and float(oro.min()) < 1500.0


def test_rotated_pole_orography(data: Path) -> None:
    path = data / "geocat-datafiles/netcdf_files/HSURF_regional_model_0.11deg.nc"
    ds = NetcdfDemReader().open(path)
    oro = ds["orography"]
    assert oro.dims == ("y", "x") and oro.attrs["grid_mapping"] == "crs"
    assert ds["crs"].attrs["grid_mapping_name"] == "rotated_latitude_longitude"
    assert ds["crs"].attrs["grid_north_pole_latitude"] == pytest.approx(39.25)
    with netCDF4.Dataset(path) as nc:
        np.testing.assert_array_equal(oro.values, nc["HSURF"][0])
        # pyproj's ob_tran from the grid mapping reproduces the file's own 2-D lat/lon.
        np.testing.assert_allclose(ds["lat"].values, nc["lat"][:], atol=1e-3)
        dlon = (ds["lon"].values - nc["lon"][:] + 180.0) % 360.0 - 180.0
        assert np.abs(dlon).max() < 1e-3
    # The Alps are in the domain: the highest point within 45.5-47.5 N, 6-12 E is well above 2500 m
    # (at 0.11 deg the peaks are smoothed).
    alps = oro.where((ds["lat"] > 45.5) & (ds["lat"] < 47.5) & (ds["lon"] > 6) & (ds["lon"] < 12))
    assert 2500.0 < float(alps.max()) < 4000.0


def test_netcdf_dem_truncated(data: Path, tmp_path: Path) -> None:
    src = data / "geocat-datafiles/netcdf_files/colorado_elev.nc"
    cut = tmp_path / "colorado_elev.nc"
    cut.write_bytes(src.read_bytes()[:100_000])
    with pytest.raises(FormatError, match="colorado_elev.nc"):
        NetcdfDemReader().open(cut)


# ---------------------------------------------------------------------------------- text grids


@pytest.mark.parametrize("part", ["data", "lats", "lons"])
def test_etopo_any_file_of_the_triple(data: Path, part: str) -> None:
    folder = data / "basemap/doc/examples"
    ds = EtopoTextReader().open(folder / f"etopo20{part}.gz")
    oro = ds["orography"]
    raw = np.loadtxt(folder / "etopo20data.gz")
    lons = np.loadtxt(folder / "etopo20lons.gz")
    assert oro.attrs["units"] == "m" and oro.dims == ("lat", "lon")
    # The last column repeats the first 360 degrees on and is dropped.
    assert lons.size == 1081 and ds.sizes["lon"] == 1080
    np.testing.assert_array_equal(oro.values, raw[:, :-1].astype("float32"))
    assert float(oro.min()) < -8000.0 and float(oro.max()) > 5000.0  # ocean trenches negative, Himalaya positive


def test_500hgt_is_gh500_in_metres(data: Path) -> None:
    ds = open_any(data / "basemap/doc/examples/500hgtlons.gz")
    gh = ds["gh500"]
    assert gh.attrs["units"] == "m"
    assert 4700.0 < float(gh.min()) < float(gh.max()) < 6000.0  # metres, not decametres
    raw = np.loadtxt(data / "basemap/doc/examples/500hgtdata.gz")
    np.testing.assert_array_equal(gh.values, raw[:, :-1].astype("float32"))


def test_etopo_missing_sibling(data: Path, tmp_path: Path) -> None:
    shutil.copy(data / "basemap/doc/examples/etopo20data.gz", tmp_path / "etopo20data.gz")
    shutil.copy(data / "basemap/doc/examples/etopo20lats.gz", tmp_path / "etopo20lats.gz")
    assert not EtopoTextReader().can_open(tmp_path / "etopo20data.gz")
    with pytest.raises(FormatError, match="etopo20lons.gz"):
        EtopoTextReader().open(tmp_path / "etopo20data.gz")
    with pytest.raises(VariableNotFoundError, match="etopo20data.gz.*gh500"):
        shutil.copy(data / "basemap/doc/examples/etopo20lons.gz", tmp_path / "etopo20lons.gz")
        EtopoTextReader().open(tmp_path / "etopo20data.gz", variables=["gh500"])


@pytest.mark.parametrize(
    ("name", "reader"),
    [
        ("oggm-sample-data/test-workflow/srtm_oetztal.tif", "geotiff"),
        ("oggm-sample-data/test-files/baltoro_srtm_clip.tif", "geotiff"),
        ("geocat-datafiles/netcdf_files/colorado_elev.nc", "netcdf_dem"),
        ("geocat-datafiles/netcdf_files/HSURF_regional_model_0.11deg.nc", "netcdf_dem"),
        ("basemap/doc/examples/etopo20lats.gz", "etopo_text"),
        ("basemap/doc/examples/500hgtdata.gz", "etopo_text"),
    ],
)
def test_detection(data: Path, name: str, reader: str) -> None:
    assert detect(data / name) == reader
