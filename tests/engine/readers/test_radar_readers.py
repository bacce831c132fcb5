"""Radar readers against pysteps' importers on the real sample files, plus detection and errors.

Every comparison applies pysteps' own unit conversion (``pysteps.utils.conversion.to_rainrate``,
which uses the importer's ``accutime``/``zr_a``/``zr_b`` metadata) and requires identical NaN masks
and values within 1e-5 relative. MRMS is compared with pysteps in a subprocess: pysteps needs
pygrib there, whose wheel bundles a second libeccodes that crashes a process already using
eccodes, so pygrib lives outside site-packages (``$VIRTUAL_ENV/isolated/pygrib``).
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from pyproj import CRS, Transformer

from engine.errors import CoordError, FormatError, ReaderError, VariableNotFoundError
from engine.readers import detect, open_any, readers
from engine.readers.radar_common import (
    MARSHALL_PALMER,
    accumulation_to_rate,
    dbz_to_rate,
    rate_to_dbz,
)
from engine.readers.radar_mch import CCS4_PROJ
from engine.readers.radar_odim import UNDETECT_DBZ

pysteps_importers = pytest.importorskip("pysteps.io.importers")
pysteps_conversion = pytest.importorskip("pysteps.utils.conversion")

MCH = "mch/20150515/AQC151351745F_00005.801.gif"
KNMI = "KNMI/2010/08/RAD_NL25_RAP_5min_201008260150.h5"
BOM_C10 = "bom/prcp-c10/66/2020/10/31/66_20201031_100000.prcp-c10.nc"
BOM_CSCN = "bom/prcp-cscn/2/2018/06/16/2_20180616_120000.prcp-cscn.nc"
FMI = "fmi/pgm/20160928/201609281645_fmi.radar.composite.lowest_FIN_SUOMI1.pgm.gz"
MRMS = "mrms/2019/06/10/PrecipRate_00.00_20190610-010600.grib2"


def assert_same_field(ours: np.ndarray, ref: np.ndarray, *, rtol: float = 1e-5) -> None:
    """Identical NaN masks and values within ``rtol`` relative (absolute 1e-6 near 0)."""
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=rtol, atol=1e-6)


def check_contract(ds: xr.Dataset, shape: tuple[int, int]) -> None:
    """The output contract every radar reader shares."""
    assert ds["precip_rate"].dims == ("time", "y", "x")
    assert ds["precip_rate"].shape == (1, *shape)
    assert ds["precip_rate"].dtype == np.float32
    assert ds["precip_rate"].attrs["units"] == "mm h-1"
    assert ds["time"].dtype == np.dtype("datetime64[ns]")
    assert ds["lat"].dims == ("y", "x") and ds["lon"].dims == ("y", "x")
    assert "crs_wkt" in ds["crs"].attrs and ds["precip_rate"].attrs["grid_mapping"] == "crs"
    assert ds["y"].values[0] > ds["y"].values[-1], "rows run north to south"
    rate = ds["precip_rate"].values
    assert np.nanmin(rate) == 0.0, "no rain is 0"
    assert {"institution", "product", "source_files"} <= set(ds.attrs)


def lonlat_of(ds: xr.Dataset, x: float, y: float) -> tuple[float, float]:
    """WGS84 lon/lat of projection point (x, y) of ``ds`` through its own CF crs variable."""
    crs = CRS.from_wkt(ds["crs"].attrs["crs_wkt"])
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)


# --- Z-R and unit helpers -------------------------------------------------------------------


def test_marshall_palmer_known_values() -> None:
    # Z = 200 R^1.6: R = 1 mm/h gives Z = 200 mm6 m-3 = 23.0103 dBZ; R = 10 gives 39.0103 dBZ.
    dbz = np.array([10 * np.log10(200.0), 10 * np.log10(200.0) + 16.0, np.nan])
    np.testing.assert_allclose(dbz_to_rate(dbz, *MARSHALL_PALMER), [1.0, 10.0, np.nan], rtol=1e-6)
    rates = np.array([0.1, 1.0, 25.0], dtype="float32")
    np.testing.assert_allclose(dbz_to_rate(rate_to_dbz(rates, 223.0, 1.53), 223.0, 1.53), rates, rtol=1e-5)
    with pytest.raises(ValueError, match="positive"):
        dbz_to_rate(dbz, 0.0, 1.6)


def test_accumulation_to_rate() -> None:
    np.testing.assert_allclose(accumulation_to_rate(np.array([0.5, 0.0, np.nan]), 5.0), [6.0, 0.0, np.nan])
    with pytest.raises(ValueError, match="positive"):
        accumulation_to_rate(np.ones(2), 0.0)


# --- each format against pysteps -----------------------------------------------------------


def test_mch_gif_matches_pysteps(radar_dir: Path) -> None:
    path = radar_dir / MCH
    ds = open_any(path)
    check_contract(ds, (640, 710))
    ref, _, meta = pysteps_importers.import_mch_gif(str(path), "AQC", "mm", 5.0)
    ref, _ = pysteps_conversion.to_rainrate(ref, meta)
    assert_same_field(ds["precip_rate"].values[0], ref)
    assert ds["time"].values[0] == np.datetime64("2015-05-15T17:45")
    assert ds.attrs["accutime"] == 5.0 and ds.attrs["product"] == "AQC"
    assert CRS.from_wkt(ds["crs"].attrs["crs_wkt"]).equals(CRS.from_proj4(meta["projection"]))
    # Cell edges are pysteps' x1..x2, y1..y2 (LV03 metres).
    assert ds["x"].values[0] - 500 == meta["x1"] and ds["x"].values[-1] + 500 == meta["x2"]
    assert ds["y"].values[0] + 500 == meta["y2"] and ds["y"].values[-1] - 500 == meta["y1"]
    # LV03 origin (600 km, 200 km) is the old observatory of Bern, 46.95108 N 7.43864 E (WGS84).
    lon, lat = lonlat_of(ds, 600000.0, 200000.0)
    assert abs(lat - 46.95108) < 2e-4 and abs(lon - 7.43864) < 2e-4
    j, i = int(np.argmin(np.abs(ds["y"].values - 200500))), int(np.argmin(np.abs(ds["x"].values - 600500)))
    assert abs(ds["lat"].values[j, i] - 46.9556) < 0.01 and abs(ds["lon"].values[j, i] - 7.4452) < 0.01


def test_knmi_hdf5_matches_pysteps(radar_dir: Path) -> None:
    path = radar_dir / KNMI
    ds = open_any(path)
    check_contract(ds, (765, 700))
    ref, _, meta = pysteps_importers.import_knmi_hdf5(str(path))
    ref, _ = pysteps_conversion.to_rainrate(ref, meta)
    assert_same_field(ds["precip_rate"].values[0], ref)
    assert ds["time"].values[0] == np.datetime64("2010-08-26T01:50")
    assert ds.attrs["accutime"] == 5.0
    # Grid edges equal pysteps' (km there, metres here).
    assert np.isclose(ds["x"].values[0] - 500, meta["x1"] * 1000) and np.isclose(
        ds["y"].values[0] + 500, meta["y2"] * 1000
    )
    # The file states its corner lon/lat (geo_product_corners: LL, UL, UR, LR outer corners);
    # corner cell centres are within half a 1 km cell of them.
    lat, lon = ds["lat"].values, ds["lon"].values
    for (jj, ii), (clon, clat) in zip(
        [(-1, 0), (0, 0), (0, -1), (-1, -1)],
        [(0.0, 49.362), (0.0, 55.974), (10.856, 55.389), (9.009, 48.895)],
        strict=True,
    ):
        assert abs(lat[jj, ii] - clat) < 0.012 and abs(lon[jj, ii] - clon) < 0.012


@pytest.mark.parametrize(
    ("name", "accutime", "site"), [(BOM_C10, 10.0, (-27.7178, 153.24)), (BOM_CSCN, 6.0, (-37.852, 144.752))]
)
def test_bom_netcdf_matches_pysteps(radar_dir: Path, name: str, accutime: float, site: tuple[float, float]) -> None:
    path = radar_dir / name
    ds = open_any(path)
    check_contract(ds, (512, 512))
    ref, _, meta = pysteps_importers.import_bom_rf3(str(path))
    ref, _ = pysteps_conversion.to_rainrate(ref, meta)
    assert_same_field(ds["precip_rate"].values[0], ref)
    assert ds.attrs["accutime"] == accutime == meta["accutime"]
    # The grid is centred on the radar (Mt Stapylton 66, Melbourne 2): projection origin = site.
    lon, lat = lonlat_of(ds, 0.0, 0.0)
    assert abs(lat - site[0]) < 1e-3 and abs(lon - site[1]) < 1e-3
    c = ds["lat"].values[255:257, 255:257].mean(), ds["lon"].values[255:257, 255:257].mean()
    assert abs(c[0] - site[0]) < 0.01 and abs(c[1] - site[1]) < 0.01


def test_fmi_pgm_matches_pysteps(radar_dir: Path) -> None:
    path = radar_dir / FMI
    ds = open_any(path)
    check_contract(ds, (1226, 760))
    ref_dbz, _, meta = pysteps_importers.import_fmi_pgm(str(path), gzipped=True)
    assert_same_field(ds["reflectivity"].values[0], ref_dbz)
    assert ds["reflectivity"].attrs["units"] == "dBZ"
    ref, meta_r = pysteps_conversion.to_rainrate(ref_dbz.copy(), meta)
    ours = ds["precip_rate"].values[0]
    # pysteps keeps the no-echo floor (-32 dBZ) as a tiny rate; the contract makes it 0.
    no_echo = ref_dbz == meta["zerovalue"]
    assert no_echo.sum() > 1000 and np.all(ours[no_echo] == 0.0)
    assert_same_field(np.where(no_echo, np.nan, ours), np.where(no_echo, np.nan, ref))
    assert (ds.attrs["zr_a"], ds.attrs["zr_b"]) == (meta["zr_a"], meta["zr_b"]) == (223.0, 1.53)
    assert ds["time"].values[0] == np.datetime64("2016-09-28T16:45")
    # Header corners "bottomleft 18.6 57.93", "topright 34.903 69.005" are outer corners.
    lat, lon = ds["lat"].values, ds["lon"].values
    assert abs(lat[-1, 0] - 57.93) < 0.01 and abs(lon[-1, 0] - 18.6) < 0.02
    assert abs(lat[0, -1] - 69.005) < 0.01 and abs(lon[0, -1] - 34.903) < 0.03


# --- ODIM written from real frames -----------------------------------------------------------


def _outer_corners(crs: CRS, ds: xr.Dataset) -> dict[str, tuple[float, float]]:
    # ODIM corner lon/lat are on the projection's own datum (what pyproj.Proj(projdef) inverts to).
    x, y = ds["x"].values, ds["y"].values
    dx, dy = x[1] - x[0], y[0] - y[1]
    west, east, north, south = x[0] - dx / 2, x[-1] + dx / 2, y[0] + dy / 2, y[-1] - dy / 2
    pts = {"UL": (west, north), "LL": (west, south), "UR": (east, north), "LR": (east, south)}
    to_lonlat = Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
    return {k: to_lonlat.transform(*v) for k, v in pts.items()}


def _odim_from(
    write: Callable[..., Path], ds: xr.Dataset, path: Path, fields: list[dict], projdef: str, **kw: object
) -> Path:
    x, y = ds["x"].values, ds["y"].values
    return write(
        path,
        datasets=[fields],
        projdef=projdef,
        corners=_outer_corners(CRS.from_proj4(projdef), ds),
        xscale=float(x[1] - x[0]),
        yscale=float(y[0] - y[1]),
        **kw,  # type: ignore[arg-type]
    )


def test_odim_dbzh_from_fmi_frame(radar_dir: Path, tmp_path: Path, odim_writer: Callable[..., Path]) -> None:
    fmi = open_any(radar_dir / FMI)
    dbz = fmi["reflectivity"].values[0]
    raw = np.where(np.isnan(dbz), 255, dbz * 2 + 64).astype("uint8")  # FMI's own 8-bit encoding
    path = _odim_from(
        odim_writer,
        fmi,
        tmp_path / "fmi_odim.h5",
        [dict(data=raw, quantity="DBZH", gain=0.5, offset=-32.0, nodata=255, undetect=0)],
        projdef="+proj=stere +lon_0=25 +lat_0=90 +lat_ts=60 +a=6371288 +x_0=380886.310 +y_0=3395677.920 +no_defs",
        date="20160928",
        time="164500",
    )
    assert detect(path) == "odim_hdf5"
    ds = open_any(path)
    check_contract(ds, raw.shape)
    # Same field and grid as the FMI reader (undetect = -32 dBZ floor = FMI's p = 0).
    np.testing.assert_array_equal(ds["reflectivity"].values, fmi["reflectivity"].values)
    np.testing.assert_allclose(ds["x"].values, fmi["x"].values, atol=0.5)
    np.testing.assert_allclose(ds["lat"].values, fmi["lat"].values, atol=1e-4)
    assert ds["time"].values[0] == fmi["time"].values[0]
    # Only reflectivity in the file: precip_rate through Marshall-Palmer, 0 at undetect.
    assert (ds.attrs["zr_a"], ds.attrs["zr_b"]) == MARSHALL_PALMER
    expected = dbz_to_rate(fmi["reflectivity"].values[0], *MARSHALL_PALMER)
    expected[raw == 0] = 0.0
    assert_same_field(ds["precip_rate"].values[0], expected)
    # With the producer's Z-R in how/zr_a, how/zr_b (FMI's 223, 1.53) the rate equals the FMI reader's.
    path_how = _odim_from(
        odim_writer,
        fmi,
        tmp_path / "fmi_odim_how.h5",
        [dict(data=raw, quantity="DBZH", gain=0.5, offset=-32.0, nodata=255, undetect=0)],
        projdef="+proj=stere +lon_0=25 +lat_0=90 +lat_ts=60 +a=6371288 +x_0=380886.310 +y_0=3395677.920 +no_defs",
        date="20160928",
        time="164500",
        how={"zr_a": 223.0, "zr_b": 1.53},
    )
    with_how = open_any(path_how)
    assert (with_how.attrs["zr_a"], with_how.attrs["zr_b"]) == (223.0, 1.53)
    assert_same_field(with_how["precip_rate"].values[0], fmi["precip_rate"].values[0])
    # Round trip against pysteps' ODIM importer; it puts undetect at -30 dBZ, we at the -32 floor.
    ref, _, _meta = pysteps_importers.import_odim_hdf5(str(path), qty="DBZH")
    undetect = raw == 0
    assert np.all(ref[undetect] == -30.0) and np.all(ds["reflectivity"].values[0][undetect] == UNDETECT_DBZ)
    assert_same_field(np.where(undetect, np.nan, ds["reflectivity"].values[0]), np.where(undetect, np.nan, ref))


def test_odim_rate_float_and_acrr(radar_dir: Path, tmp_path: Path, odim_writer: Callable[..., Path]) -> None:
    # RATE as float32 with ODIM 2.3-style flag values, from the MeteoSwiss frame (Swiss oblique grid).
    mch = open_any(radar_dir / MCH)
    rate = mch["precip_rate"].values[0]
    raw = np.where(np.isnan(rate), -9999000.0, np.where(rate == 0, -8888000.0, rate)).astype("float32")
    path = _odim_from(
        odim_writer,
        mch,
        tmp_path / "rate.h5",
        [dict(data=raw, quantity="RATE", gain=1.0, offset=0.0, nodata=-9999000.0, undetect=-8888000.0)],
        projdef=CCS4_PROJ,
        date="20150515",
        time="174500",
    )
    ds = open_any(path)
    assert list(ds.data_vars) == ["crs", "precip_rate"] and "zr_a" not in ds.attrs
    assert_same_field(ds["precip_rate"].values[0], rate)
    np.testing.assert_allclose(ds["lat"].values, mch["lat"].values, atol=1e-4)
    ref, _, _meta = pysteps_importers.import_odim_hdf5(str(path), qty="RATE")
    assert_same_field(ds["precip_rate"].values[0], ref)
    with pytest.raises(VariableNotFoundError, match="reflectivity"):
        open_any(path, variables=["reflectivity"])

    # ACRR as uint16 hundredths of mm over 5 minutes, from the KNMI frame (polar stereographic).
    import h5py

    knmi = open_any(radar_dir / KNMI)
    with h5py.File(radar_dir / KNMI) as f:
        raw16 = f["image1/image_data"][()]
    path = _odim_from(
        odim_writer,
        knmi,
        tmp_path / "acrr.h5",
        [dict(data=raw16, quantity="ACRR", gain=0.01, offset=0.0, nodata=65535, undetect=65534)],
        projdef="+proj=stere +lat_0=90 +lon_0=0 +lat_ts=60 +a=6378137 +b=6356752 +x_0=0 +y_0=0 +units=m +no_defs",
        date="20100826",
        time="015000",
        start=("20100826", "014500"),
    )
    ds = open_any(path)
    assert ds.attrs["accutime"] == 5.0
    assert_same_field(ds["precip_rate"].values[0], knmi["precip_rate"].values[0])
    np.testing.assert_allclose(ds["lon"].values, knmi["lon"].values, atol=1e-4)
    ref_mm, _, _meta = pysteps_importers.import_odim_hdf5(str(path), qty="ACRR")
    assert_same_field(ds["precip_rate"].values[0] * 5.0 / 60.0, ref_mm)


# --- MRMS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mrms(data_root: Path) -> tuple[Path, xr.Dataset]:
    path = data_root / "pysteps-data" / MRMS
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path, open_any(path)


def test_mrms_values_and_grid(mrms: tuple[Path, xr.Dataset]) -> None:
    import eccodes

    path, ds = mrms
    check_contract(ds, (3500, 7000))
    assert ds["time"].values[0] == np.datetime64("2019-06-10T01:06")
    assert ds["x"].attrs["units"] == "degrees_east"
    assert ds["x"].values[0] == pytest.approx(-129.995) and ds["x"].values[-1] == pytest.approx(-60.005, abs=1e-5)
    assert ds["y"].values[0] == pytest.approx(54.995) and ds["y"].values[-1] == pytest.approx(20.005, abs=1e-5)
    assert ds["lat"].values.base is not None, "2-D lat is a broadcast view, not a copy"
    assert ds["lat"].values[1234, 5] == np.float32(ds["y"].values[1234])
    # Independent decode: eccodes' own unpacking (float64), -3 = no coverage.
    handle = eccodes.codes_new_from_message(path.read_bytes())
    try:
        ref = eccodes.codes_get_values(handle).reshape(3500, 7000)
    finally:
        eccodes.codes_release(handle)
    ref = np.where(ref < 0, np.nan, ref).astype("float32")
    np.testing.assert_array_equal(ds["precip_rate"].values[0], ref)
    assert np.isnan(ref).sum() > 1_000_000


def test_mrms_extent_is_a_window_of_the_frame(mrms: tuple[Path, xr.Dataset], tmp_path: Path) -> None:
    path, full = mrms
    sub = readers.get("mrms_grib2")().open(path, extent=(-100.0, -90.0, 30.0, 40.0))
    assert sub["precip_rate"].shape == (1, 1000, 1000)
    window = full.sel(x=sub["x"], y=sub["y"])
    np.testing.assert_array_equal(sub["precip_rate"].values, window["precip_rate"].values)
    # A gzipped copy (as NOAA distributes them) reads the same.
    gz = tmp_path / (path.name + ".gz")
    gz.write_bytes(gzip.compress(path.read_bytes(), compresslevel=1))
    assert detect(gz) == "mrms_grib2"
    from_gz = readers.get("mrms_grib2")().open(gz, extent=(-100.0, -90.0, 30.0, 40.0))
    np.testing.assert_array_equal(from_gz["precip_rate"].values, sub["precip_rate"].values)
    # 0..360 longitudes are accepted too.
    same = readers.get("mrms_grib2")().open(path, extent=(260.0, 270.0, 30.0, 40.0))
    np.testing.assert_array_equal(same["x"].values, sub["x"].values)
    with pytest.raises(CoordError, match="does not overlap"):
        readers.get("mrms_grib2")().open(path, extent=(0.0, 10.0, 30.0, 40.0))
    with pytest.raises(CoordError, match="extent must be"):
        readers.get("mrms_grib2")().open(path, extent=(-100.0, -90.0, 30.0))


@pytest.mark.slow
def test_mrms_matches_pysteps(mrms: tuple[Path, xr.Dataset], tmp_path: Path) -> None:
    pygrib_dir = Path(sys.prefix) / "isolated" / "pygrib"
    if not (pygrib_dir / "pygrib").is_dir():
        pytest.skip(f"pysteps' MRMS importer needs pygrib, kept apart in {pygrib_dir}")
    path, ds = mrms
    out = tmp_path / "pysteps.npy"
    code = (
        "import sys, numpy as np\n"
        "from pysteps.io.importers import import_mrms_grib\n"
        "p, _, m = import_mrms_grib(sys.argv[1], window_size=1, dtype='float32')\n"
        "np.save(sys.argv[2], p)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(pygrib_dir)}
    subprocess.run(
        [sys.executable, "-c", code, str(path), str(out)], check=True, env=env, capture_output=True, timeout=300
    )
    ref = np.load(out)
    assert_same_field(ds["precip_rate"].values[0], ref)


# --- detection and errors --------------------------------------------------------------------

SAMPLES = [(MCH, "mch_gif"), (KNMI, "knmi_hdf5"), (BOM_C10, "bom_netcdf"), (BOM_CSCN, "bom_netcdf"), (FMI, "fmi_pgm")]


@pytest.mark.parametrize(("name", "reader"), SAMPLES)
def test_detect_routes_by_content(radar_dir: Path, name: str, reader: str) -> None:
    assert detect(radar_dir / name) == reader


def test_detect_mrms(data_root: Path) -> None:
    path = data_root / "pysteps-data" / MRMS
    if not path.exists():
        pytest.skip(f"{path} not found")
    assert detect(path) == "mrms_grib2"


@pytest.mark.parametrize(("name", "reader"), [*SAMPLES, ("mrms", "mrms_grib2")])
def test_truncated_file_gives_format_error(radar_dir: Path, tmp_path: Path, name: str, reader: str) -> None:
    src = radar_dir.parent / MRMS if name == "mrms" else radar_dir / name
    if not src.exists():
        pytest.skip(f"{src} not found")
    dst = tmp_path / src.name
    if src.name.endswith(".gz"):
        # Truncate the compressed stream, as a broken download would.
        data = src.read_bytes()
        dst.write_bytes(data[: len(data) // 2])
    else:
        with open(src, "rb") as fin:
            dst.write_bytes(fin.read(max(4096, src.stat().st_size // 3)))
    with pytest.raises(FormatError) as err:
        open_any(dst)
    assert str(dst) in str(err.value)
    with pytest.raises(FormatError) as err:
        readers.get(reader)().open(dst)
    assert str(dst) in str(err.value)


@pytest.mark.parametrize("suffix", [".gif", ".h5", ".nc", ".pgm.gz", ".grib2"])
def test_wrong_content_with_radar_suffix(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"radar{suffix}"
    text = b"this is not radar data\n" * 50
    path.write_bytes(gzip.compress(text) if suffix.endswith(".gz") else text)
    with pytest.raises(FormatError) as err:
        detect(path)
    assert str(path) in str(err.value)
    for name in ("mch_gif", "knmi_hdf5", "bom_netcdf", "fmi_pgm", "odim_hdf5", "mrms_grib2"):
        reader = readers.get(name)()
        assert reader.can_open(path) is False
        if reader.can_open(path.with_suffix("")) is not False:  # missing file: never raises
            pytest.fail(f"{name}.can_open claimed a missing file")
        with pytest.raises(FormatError) as err:
            reader.open(path)
        assert str(path) in str(err.value)


def test_can_open_never_raises_on_odd_paths(tmp_path: Path) -> None:
    (tmp_path / "empty.h5").write_bytes(b"")
    (tmp_path / "dir.gif").mkdir()
    for name in ("mch_gif", "knmi_hdf5", "bom_netcdf", "fmi_pgm", "odim_hdf5", "mrms_grib2"):
        reader = readers.get(name)()
        for p in (tmp_path / "empty.h5", tmp_path / "dir.gif", tmp_path / "missing.nc"):
            assert reader.can_open(p) is False


def test_missing_variable(radar_dir: Path) -> None:
    with pytest.raises(VariableNotFoundError) as err:
        open_any(radar_dir / MCH, variables=["reflectivity"])
    assert MCH.split("/")[-1] in str(err.value)
    with pytest.raises(VariableNotFoundError, match="t2m"):
        readers.get("knmi_hdf5")().open(radar_dir / KNMI, variables=["t2m"])
    ds = readers.get("fmi_pgm")().open(radar_dir / FMI, variables=["reflectivity"])
    assert sorted(ds.data_vars) == ["crs", "reflectivity"]
    with pytest.raises(ReaderError, match="zr_a and zr_b must be positive"):
        readers.get("fmi_pgm")().open(radar_dir / FMI, zr_a=-1.0)


def test_odim_rejects_polar_and_missing_quantity(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "pvol.h5"
    with h5py.File(path, "w") as f:
        f.attrs["Conventions"] = np.bytes_(b"ODIM_H5/V2_2")
        f.create_group("what").attrs["object"] = np.bytes_(b"PVOL")
    assert detect(path) == "odim_hdf5"
    with pytest.raises(FormatError, match="PVOL is not a Cartesian"):
        open_any(path)
    with pytest.raises(ReaderError, match="no such file"):
        open_any(tmp_path / "gone.h5", format="odim_hdf5")


def test_open_many_stacks_a_sequence(radar_dir: Path) -> None:
    from engine.readers import open_many

    files = sorted((radar_dir / "mch/20150515").glob("AQC1513517[45]*.gif"))[:3]
    ds = open_many(files)
    assert ds["precip_rate"].shape == (3, 640, 710)
    assert np.all(np.diff(ds["time"].values) == np.timedelta64(5, "m"))
