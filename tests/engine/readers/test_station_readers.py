"""Station readers (surface reports netCDF, foehnix CSV, ASOS text) on the real sample files."""

from __future__ import annotations

import lzma
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest

from engine.config import Settings
from engine.errors import FormatError, ReaderError, VariableNotFoundError
from engine.readers import detect, open_any
from engine.readers.stations import (
    AIRPORTS_FILE,
    AsosTextReader,
    FoehnixCsvReader,
    StationReportsReader,
    airport_table,
    open_station_reports,
)


@pytest.fixture(scope="module")
def data() -> Path:
    root = Settings.from_env().data_root
    if root is None:
        pytest.skip("sample data folder not available (set METEOLENS_DATA)")
    return root


@pytest.fixture(scope="module")
def sao(data: Path) -> Path:
    return data / "geocat-datafiles/netcdf_files/95031812_sao.cdf"


def _raw_reports(path: Path) -> pd.DataFrame:
    """The file's reports read with netCDF4 alone (no masking), one row per report."""
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_mask(False)
        frame = pd.DataFrame({v: nc[v][:] for v in ("lat", "lon", "elev", "T", "TD", "PSL", "SPD", "DIR", "VIS", "PRECIP")})
        frame["id"] = [b"".join(row).decode().strip("\x00 ") for row in nc["id"][:]]
        frame["time"] = [b"".join(row).decode().strip("\x00 ") for row in nc["time"][:]]
    return frame


def test_station_reports_layout_and_units(sao: Path) -> None:
    ds = StationReportsReader().open(sao)
    assert ds["t2m"].dims == ("station", "time") and ds.sizes["time"] == 1
    assert ds["time"].values[0] == np.datetime64("1995-03-18T12:00")
    assert ds["station"].dtype.kind == "U" and ds.indexes["station"].is_unique
    units = {v: ds[v].attrs["units"] for v in ds.data_vars}
    assert units == {"t2m": "K", "d2m": "K", "msl": "Pa", "wind_speed": "m s-1", "wind_dir": "degree",
                     "wind_gust": "m s-1", "visibility": "m", "tp": "mm"}
    assert ds["lat"].attrs["units"] == "degrees_north" and ds["elevation"].attrs["units"] == "m"
    assert ds.attrs["source_files"] == str(sao)


def test_station_reports_values_match_netcdf4(sao: Path) -> None:
    ds = StationReportsReader().open(sao)
    raw = _raw_reports(sao)
    # A station with a single, complete report: every value is the raw one with the documented conversion.
    single = raw.groupby("id").filter(lambda g: len(g) == 1)
    row = single[(single["T"] > -9999) & (single["PSL"] > 900) & (single["VIS"] > 0) & (single["SPD"] > 0)].iloc[0]
    st = ds.sel(station=row["id"]).isel(time=0)
    assert st["t2m"].item() == pytest.approx(row["T"] + 273.15, abs=1e-4)
    assert st["msl"].item() == pytest.approx(row["PSL"] * 100.0, rel=1e-6)
    assert st["visibility"].item() == pytest.approx(row["VIS"] * 1000.0, rel=1e-6)
    assert st["wind_speed"].item() == pytest.approx(row["SPD"], rel=1e-6)
    assert st["wind_dir"].item() == pytest.approx(row["DIR"])
    assert st["lat"].item() == pytest.approx(row["lat"]) and st["elevation"].item() == pytest.approx(row["elev"])


def test_station_reports_missing_values(sao: Path) -> None:
    ds = StationReportsReader().open(sao)
    raw = _raw_reports(sao)
    # Fill values never leak through as numbers.
    for name in ds.data_vars:
        assert not np.any(ds[name].values < -1000)
    # Decoder garbage: a 2.6e-39 hPa pressure and 9999 degC dew points become NaN.
    bad_psl = raw.loc[(raw["PSL"] > -9999) & (raw["PSL"] < 800), "id"]
    assert len(bad_psl) > 0
    for sid in bad_psl:
        assert not (ds["msl"].sel(station=sid) < 80_000).any()
    assert float(ds["d2m"].max()) < 330.0
    assert bool((ds["d2m"] <= ds["t2m"] + 0.5).where(ds["d2m"].notnull(), True).all())
    # Calm winds have no direction.
    calm = ds["wind_speed"] == 0
    assert bool(calm.any()) and bool(ds["wind_dir"].where(calm).isnull().all())
    # Stations with no position keep NaN coordinates rather than -9999.
    assert np.isnan(ds["lat"].values).any() and np.nanmin(ds["lat"].values) > -90


def test_station_reports_subset_and_missing_variable(sao: Path) -> None:
    ds = StationReportsReader().open(sao, variables=["t2m", "tp"])
    assert set(ds.data_vars) == {"t2m", "tp"}
    assert set(np.unique(ds["tp_period_hours"].values[np.isfinite(ds["tp_period_hours"].values)])) <= {1.0, 3.0, 6.0, 12.0, 24.0}
    with pytest.raises(VariableNotFoundError, match=r"95031812_sao.cdf.*sst"):
        StationReportsReader().open(sao, variables=["sst"])


def test_truncated_station_reports(sao: Path, tmp_path: Path) -> None:
    cut = tmp_path / "95031812_sao.cdf"
    cut.write_bytes(sao.read_bytes()[:50_000])
    with pytest.raises(FormatError, match="95031812_sao.cdf"):
        StationReportsReader().open(cut)


# ------------------------------------------------------------------------------------ foehnix


def test_foehnix_matches_pandas(data: Path) -> None:
    path = data / "rfoehnix/data-raw/ellboegen.csv"
    ds = FoehnixCsvReader().open(path)
    ref = pd.read_csv(path, sep=";", na_values="NA", skipinitialspace=True)
    assert ds["t2m"].dims == ("time",) and ds.sizes["time"] == len(ref)
    i = 12345
    when = pd.to_datetime(ref["timestamp"].iloc[i], unit="s")
    assert ds["t2m"].sel(time=when).item() == pytest.approx(ref["t"].iloc[i] + 273.15, abs=1e-4)
    assert ds["wind_speed"].sel(time=when).item() == pytest.approx(ref["ff"].iloc[i], abs=1e-6)
    assert ds["wind_dir"].sel(time=when).item() == pytest.approx(ref["dd"].iloc[i])
    assert ds["rh2m"].sel(time=when).item() == pytest.approx(ref["rh"].iloc[i])
    assert int(ds["wind_speed"].isnull().sum()) == int(ref["ff"].isna().sum()) > 0
    assert ds["time"].values[0] == np.datetime64("2006-01-01T01:00")


def test_foehnix_station_metadata_and_plausibility(data: Path) -> None:
    ell = FoehnixCsvReader().open(data / "rfoehnix/data-raw/ellboegen.csv")
    sat = FoehnixCsvReader().open(data / "rfoehnix/data-raw/sattelberg.csv")
    assert ell.attrs["station_name"] == "Ellboegen" and ell.attrs["station_elevation"] == 1080.0
    assert ell.attrs["station_lat"] == pytest.approx(47.18694) and ell.attrs["station_lon"] == pytest.approx(11.42889)
    assert sat.attrs["station_elevation"] == 2107.0
    assert 240.0 < float(ell["t2m"].min()) < float(ell["t2m"].max()) < 315.0
    # The crest station is colder on average (about 1000 m higher).
    assert float(sat["t2m"].mean()) < float(ell["t2m"].mean())
    assert float(ell["wind_dir"].max()) <= 360.0 and float(ell["rh2m"].max()) <= 100.0


def test_foehnix_unknown_station_has_no_metadata(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.csv"
    lines = (data / "rfoehnix/data-raw/ellboegen.csv").read_text().splitlines()[:50]
    path.write_text("\n".join(lines) + "\n")
    assert detect(path) == "foehnix_csv"
    ds = open_any(path)
    assert ds.sizes["time"] == 49 and "station_name" not in ds.attrs and "station_lat" not in ds.attrs


def test_foehnix_bad_inputs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp;dd;ff;rh;t\n1136077200;171;abc;90;-0.4\n")
    with pytest.raises(FormatError, match="bad.csv"):
        FoehnixCsvReader().open(bad)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert not FoehnixCsvReader().can_open(other)
    ok = tmp_path / "ok.csv"
    ok.write_text("timestamp;dd;ff\n1136077200;171;1.0\n")
    with pytest.raises(VariableNotFoundError, match=r"ok.csv.*t2m"):
        FoehnixCsvReader().open(ok, variables=["t2m"])


# --------------------------------------------------------------------------------------- ASOS


def test_asos_matches_pandas(data: Path) -> None:
    path = data / "pythia-datasets/data/jan-17-co-asos.txt.xz"
    ds = AsosTextReader().open(path)
    ref = pd.read_csv(path, sep="\t", na_values="M", skipinitialspace=True)
    ref.columns = [c.strip() for c in ref.columns]
    ref["valid"] = pd.to_datetime(ref["valid"])
    assert ds["t2m"].dims == ("station", "time")
    assert set(ds["station"].values) == {"FNL", "LMO", "0CO", "1V6"}
    row = ref.dropna(subset=["mslp"]).iloc[100]
    st = ds.sel(station=row["station"], time=row["valid"])
    assert st["t2m"].item() == pytest.approx(row["tmpc"] + 273.15, abs=1e-4)
    assert st["d2m"].item() == pytest.approx(row["dwpc"] + 273.15, abs=1e-4)
    assert st["msl"].item() == pytest.approx(row["mslp"] * 100.0, rel=1e-6)
    assert {v: ds[v].attrs["units"] for v in ds.data_vars} == {"t2m": "K", "d2m": "K", "msl": "Pa"}
    # Every non-missing value of the file is in the grid, and nothing else.
    assert int(ds["t2m"].count()) == int(ref["tmpc"].notna().sum())


def test_airport_asset_covers_the_asos_file(data: Path) -> None:
    table = airport_table()
    ids = pd.read_csv(data / "pythia-datasets/data/jan-17-co-asos.txt.xz", sep="\t", usecols=[0])["station"].unique()
    # every row belongs to a station of the file; 0CO is left out on purpose (no public source)
    assert set(table.index) == set(ids) - {"0CO"}
    # Colorado: 37-41 N, 102.05-109.05 W; the Front Range airports lie at 1.4-1.8 km
    assert table["lat"].between(37.0, 41.0).all() and table["lon"].between(-109.05, -102.05).all()
    assert table["elevation_m"].between(1400.0, 1800.0).all()
    # spot values from OurAirports (ft converted to m)
    assert table.loc["FNL", ["lat", "lon"]].tolist() == pytest.approx([40.44969, -105.011272])
    assert table.loc["LMO", "elevation_m"] == pytest.approx(5055 * 0.3048, abs=0.05)
    assert "ourairports" in AIRPORTS_FILE.read_text().lower()


def test_asos_reader_attaches_coordinates(data: Path) -> None:
    ds = AsosTextReader().open(data / "pythia-datasets/data/jan-17-co-asos.txt.xz", variables=["t2m"])
    table = airport_table()
    for sid in ("FNL", "LMO", "1V6"):
        st = ds.sel(station=sid)
        assert (st["lat"].item(), st["lon"].item(), st["elevation"].item()) == pytest.approx(
            tuple(table.loc[sid, ["lat", "lon", "elevation_m"]])
        )
    assert np.isnan(ds["lat"].sel(station="0CO").item())
    assert ds.attrs["stations_without_coordinates"] == "0CO"
    assert ds["elevation"].attrs["units"] == "m"


def test_airport_table_bad_inputs(tmp_path: Path) -> None:
    bad = tmp_path / "airports.csv"
    bad.write_text("# a comment\nstation,name,lat,lon\nFNL,x,40.4,-105.0\n")
    with pytest.raises(ReaderError, match="elevation_m"):
        airport_table(bad)
    bad.write_text("station,name,lat,lon,elevation_m\nFNL,x,140.4,-105.0,1500\n")
    with pytest.raises(ReaderError, match="out of range for FNL"):
        airport_table(bad)
    with pytest.raises(ReaderError):
        airport_table(tmp_path / "absent.csv")


def test_asos_bad_inputs(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "asos.txt.xz"
    with lzma.open(path, "wt") as f:
        f.write("station\tvalid\t tmpc \t  dwpc \t  mslp\nFNL\t2017-01-01 00:00\twarm\tM\tM\n")
    assert detect(path) == "asos_text"
    with pytest.raises(FormatError, match="asos.txt.xz"):
        AsosTextReader().open(path)
    with pytest.raises(VariableNotFoundError, match="asos.txt.xz.*wind_gust"):
        AsosTextReader().open(data / "pythia-datasets/data/jan-17-co-asos.txt.xz", variables=["wind_gust"])
    truncated = tmp_path / "cut.txt.xz"
    truncated.write_bytes((data / "pythia-datasets/data/jan-17-co-asos.txt.xz").read_bytes()[:20_000])
    with pytest.raises(FormatError, match="cut.txt.xz"):
        AsosTextReader().open(truncated)


@pytest.mark.parametrize(
    ("name", "reader"),
    [
        ("geocat-datafiles/netcdf_files/95031800_sao.cdf", "station_reports"),
        ("rfoehnix/data-raw/sattelberg.csv", "foehnix_csv"),
        ("pythia-datasets/data/jan-17-co-asos.txt.xz", "asos_text"),
    ],
)
def test_detection(data: Path, name: str, reader: str) -> None:
    assert detect(data / name) == reader


def test_open_station_reports_outer_joins_hours(data: Path) -> None:
    folder = data / "geocat-datafiles/netcdf_files"
    files = [folder / f"950318{h:02d}_sao.cdf" for h in (1, 0)]  # unsorted on purpose
    hour1 = StationReportsReader().open(files[0])
    assert "tp" not in hour1.data_vars  # only synoptic hours report precipitation
    with pytest.raises(VariableNotFoundError, match="95031801_sao.cdf.*tp"):
        StationReportsReader().open(files[0], variables=["tp"])
    ds = open_station_reports(files)
    assert list(ds["time"].values) == [np.datetime64("1995-03-18T00:00"), np.datetime64("1995-03-18T01:00")]
    assert set(hour1["station"].values) <= set(ds["station"].values)
    # Values of each hour survive the join unchanged; tp is NaN in the hour without it.
    sid = str(hour1["t2m"].dropna("station")["station"].values[0])
    assert ds["t2m"].sel(station=sid, time="1995-03-18T01:00").item() == hour1["t2m"].sel(station=sid).item()
    assert bool(ds["tp"].sel(time="1995-03-18T01:00").isnull().all())
    assert int(ds["tp"].sel(time="1995-03-18T00:00").count()) > 0
    assert ds.attrs["source_files"].count("_sao.cdf") == 2
    with pytest.raises(ReaderError, match="no station-report files"):
        open_station_reports([])
