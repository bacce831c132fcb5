"""Station-comparison cases of the regional engine: a coarse analysis downscaled onto terrain and
compared with stations.

Two cases, each built by :func:`run_case` (``meteolens case NAME``, and ``[[cases]]`` of the demo):

``wipp-valley-2017-01``
    ERA5 ensemble of data assimilations (3 deg), 2017-01-01 00 UTC to 01-02 12 UTC, onto the
    EURO-CORDEX HSURF terrain (0.11 deg; the SRTM Oetztal tile ends at 11.1 E, west of the Wipp
    valley) at 0.05 deg, compared with Ellboegen (valley, 1080 m) and Sattelberg (crest, 2107 m)
    through :func:`verification.pipeline.verify_run` (point forecasts and scores per station and
    lead time in the catalogue).
``front-range-2017-01``
    The same analyses onto the 1-arcmin Colorado DEM at 0.02 deg, compared with the ASOS stations
    FNL, LMO and 1V6 (0CO has no substantiated position, see ``assets/airports.csv``). The 1996
    blizzard analyses do not overlap the 2017 ASOS records, so the 2017 ERA5 analyses are used.
    The ASOS stations report at their own minutes (FNL :55/:56, LMO :14/:34/:54, 1V6 :15/:35/:55),
    so each analysis time is compared with each station's nearest valid report within
    :data:`ASOS_TOLERANCE` (``VerifyOptions.time_tolerance``; ties go to the earlier report).

**What is compared.** The sample ERA5 file holds no 2 m temperature, only ``t850`` and ``z850``.
The cases use a documented *proxy*: the ensemble-mean 850 hPa temperature brought from the
850 hPa height :math:`h_{850} = z_{850} / g` to the terrain along the standard lapse rate,
:math:`T = T_{850} + \\Gamma (h_{850} - z)` with :math:`\\Gamma = 6.5` K km-1. On the coarse grid
:math:`z` is the IFS orography area-averaged onto the 3 deg cells (what a 3 deg model sees). This
is a free-atmosphere temperature at terrain height: it has no boundary layer, no diurnal cycle and
no cold-air pool, so in a winter valley it is expected to be too warm at night. The comparison
isolates what the terrain does: the *downscaled* run (the ``lapse_rate`` method: local lapse
rate regressed from the coarse proxy, applied to the fine terrain) against the *bilinear* run (the
coarse proxy interpolated, i.e. still at the smooth 3 deg terrain height). Both are ordinary
catalogued ``downscale`` runs, scored with the same code.

The analysis times are stored as one run with ``init_time`` the first of them and lead times the
offsets of the others (Colorado: 2017-01-01 00 UTC, 0-36 h; Wipp valley: 2017-01-01 12 UTC, 0-24 h,
as the station records miss 01-01 00 UTC): "lead time" is the offset of the analysis, not a
forecast range.

**Foehn.** :func:`verification.foehn.prepare_pair` gives the crest-valley potential-temperature
difference of the extracted model pair and of the observations. A mixture-model fit
(:func:`verification.foehn.fit_foehn`) needs hundreds of hours; three analysis times are not
enough, and the proxy's crest-valley difference is set by its lapse rate and the model terrain
heights, not by the flow, so no Foehn classification of the model pair is attempted (the result
says so).

Both cases are verified by :func:`verification.pipeline.verify_run` (bias, MAE and RMSE per
station and lead time, the same over all stations, the persistence baseline of the downscaled
run, and the point forecasts).

Public API: ``StationCase``, ``CASES``, ``CaseResult``, ``CaseError``, ``ASOS_TOLERANCE``,
``era5_t2m_proxy``, ``run_case``, ``comparison_table``.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from engine import datasets
from engine.config import Settings
from engine.errors import WxError
from engine.models.regional.grid import LatLonGrid, dem_to_grid
from engine.readers.stations import FOEHNIX_STATIONS, airport_table
from engine.storage.catalog import Catalog
from engine.storage.zarr_store import software_versions, write_run_store
from verification.foehn import prepare_pair
from verification.pipeline import VerifyOptions, verify_run

Progress = Callable[[float, str], None]

#: Standard gravity (m s-2): geopotential to geopotential height.
GRAVITY = 9.80665
#: ICAO standard-atmosphere lapse rate (K m-1), used to bring T850 to the terrain.
STANDARD_LAPSE = 0.0065
#: Global orography for the coarse (3 deg) model terrain, area-averaged onto the ERA5 cells.
COARSE_OROGRAPHY = "ifs-orography"
#: The analyses both cases downscale.
ANALYSIS = "era5-ensemble-2017-01"
#: How far an ASOS report may be from an analysis time and still stand for it (reports come every
#: 5-20 min, so 30 min always finds one unless the station was silent); the METAR convention of
#: the hour's routine report (hh:53) standing for the hour.
ASOS_TOLERANCE = pd.Timedelta("30min")


class CaseError(WxError, ValueError):
    """A case cannot be built: unknown name, missing data, stations outside the domain."""


@dataclass(frozen=True)
class StationCase:
    """A station-comparison case.

    Attributes
    ----------
    name : str
        Case id; run ids are ``<name>-downscaled`` and ``<name>-bilinear``.
    title : str
        One line for listings.
    dem : str
        Sample dataset of the fine terrain.
    domain : (lat0, lat1, lon0, lon1)
        Fine grid box (degrees), covering the stations.
    resolution : float
        Fine grid spacing (degrees).
    stations : tuple of str
        Station datasets: one-station foehnix datasets or one multi-station ASOS dataset (whose
        stations and reports of the case's days are also put in the catalogue).
    start : str
        First analysis time used (it becomes the run's init time).
    time_tolerance : Timedelta
        How far a station report may be from an analysis time (``VerifyOptions.time_tolerance``):
        0 for the hourly foehnix records, which have a report at every analysis time;
        :data:`ASOS_TOLERANCE` for ASOS.
    """

    name: str
    title: str
    dem: str
    domain: tuple[float, float, float, float]
    resolution: float
    stations: tuple[str, ...]
    start: str = "2017-01-01T00:00"
    time_tolerance: pd.Timedelta = pd.Timedelta(0)

    @property
    def run_ids(self) -> dict[str, str]:
        """Run ids by method: ``{"lapse_rate": ..., "bilinear": ...}``."""
        return {"lapse_rate": f"{self.name}-downscaled", "bilinear": f"{self.name}-bilinear"}


CASES: dict[str, StationCase] = {
    "wipp-valley-2017-01": StationCase(
        name="wipp-valley-2017-01",
        title="ERA5 T850 proxy downscaled over the Wipp valley vs Ellboegen and Sattelberg",
        dem="hsurf-euro-cordex",
        domain=(46.8, 47.5, 11.0, 11.9),
        resolution=0.05,
        stations=("foehn-ellboegen", "foehn-sattelberg"),
        # the foehnix records have no value at 2017-01-01 00 UTC (the hour after the year change)
        start="2017-01-01T12:00",
    ),
    "front-range-2017-01": StationCase(
        name="front-range-2017-01",
        title="ERA5 T850 proxy downscaled over the Colorado Front Range vs FNL, LMO, 1V6",
        dem="colorado-dem",
        domain=(38.0, 40.8, -106.0, -104.4),
        resolution=0.02,
        stations=("asos-colorado-2017-01",),
        time_tolerance=ASOS_TOLERANCE,
    ),
}


@dataclass
class CaseResult:
    """What :func:`run_case` produced.

    Attributes
    ----------
    case : StationCase
    run_ids : dict
        Run ids by method (``lapse_rate``, ``bilinear``).
    table : DataFrame
        :func:`comparison_table` of the case.
    foehn : DataFrame or None
        Wipp valley only: the crest-valley potential-temperature difference (K) of the model pair
        (both methods) and of the observations at the analysis times.
    notes : list of str
        What was left out and why.
    seconds : float
        Wall time of the build.
    """

    case: StationCase
    run_ids: dict[str, str]
    table: pd.DataFrame
    foehn: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (the CLI's ``--json``)."""
        table = self.table.assign(lead_time=self.table["lead_time"].astype(str))
        out: dict[str, Any] = {
            "case": self.case.name,
            "run_ids": self.run_ids,
            "scores": json.loads(table.to_json(orient="records")),
            "notes": self.notes,
            "seconds": round(self.seconds, 2),
        }
        if self.foehn is not None:
            out["foehn_dtheta"] = json.loads(self.foehn.reset_index().astype({"time": str}).to_json(orient="records"))
        return out


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------


def era5_t2m_proxy(era5: xr.Dataset, coarse_orography: np.ndarray, *, lapse: float = STANDARD_LAPSE) -> xr.Dataset:
    r"""The 2 m temperature proxy of the cases on the analysis grid, as a forecast-shaped Dataset.

    :math:`T = \overline{T_{850}} + \Gamma\,(\overline{z_{850}}/g - z_c)`, ensemble means over
    ``member``.

    Parameters
    ----------
    era5 : Dataset
        ``t850`` (K) and ``z850`` (m2 s-2) on ``(time, [member,] lat, lon)``.
    coarse_orography : ndarray
        Model terrain height (m) on the analysis ``(lat, lon)`` grid.
    lapse : float
        :math:`\Gamma` in K m-1 (positive: colder aloft).

    Returns
    -------
    Dataset
        ``t2m`` on ``(init_time, lead_time, lat, lon)`` (one init time: the first analysis time;
        lead times: offsets of the others), ``valid_time``, and ``orography`` (m) on ``(lat, lon)``.

    Raises
    ------
    CaseError
        Missing variables, fewer than one time, or an orography of another shape.
    """
    missing = {"t850", "z850"} - set(era5.data_vars)
    if missing:
        raise CaseError(f"the analysis lacks {', '.join(sorted(missing))} (has {', '.join(map(str, era5.data_vars))})")
    if "time" not in era5.dims or era5.sizes["time"] < 1:
        raise CaseError("the analysis needs a 'time' dim with at least one time")
    shape = (era5.sizes["lat"], era5.sizes["lon"])
    zc = np.asarray(coarse_orography, dtype="float64")
    if zc.shape != shape:
        raise CaseError(f"coarse orography shape {zc.shape} differs from the analysis grid {shape}")
    t850, z850 = era5["t850"], era5["z850"]
    if "member" in t850.dims:
        # the EDA spread is small for T850; its mean is the best single estimate of the state
        t850, z850 = t850.mean("member"), z850.mean("member")
    proxy = t850 + lapse * (z850 / GRAVITY - xr.DataArray(zc, dims=("lat", "lon")))
    times = pd.DatetimeIndex(era5["time"].values)
    proxy = proxy.transpose("time", "lat", "lon").rename(time="lead_time")
    proxy = proxy.assign_coords(lead_time=np.asarray(times - times[0], dtype="timedelta64[ns]"))
    proxy = proxy.expand_dims(init_time=[times[0].to_datetime64()])
    out = xr.Dataset(
        {
            "t2m": proxy.astype("float32").assign_attrs(
                units="K",
                long_name="2 m temperature proxy: ERA5 EDA mean T850 brought to the terrain at -6.5 K/km",
                comment="free-atmosphere temperature at terrain height; no boundary layer (see app/cases_regional.py)",
            ),
            "orography": (("lat", "lon"), zc.astype("float32"), {"units": "m", "long_name": "coarse model orography"}),
        },
        coords={"lat": era5["lat"], "lon": era5["lon"]},
    )
    return out.assign_coords(valid_time=out["init_time"] + out["lead_time"])


# --------------------------------------------------------------------------------------------
# building a case
# --------------------------------------------------------------------------------------------


def _proxy_store(settings: Settings, data_root: Path, start: str) -> Path:
    """Write (once) the coarse t2m proxy from ``start`` on as a run store below the store's ``cases`` folder."""
    first = pd.Timestamp(start)
    path = settings.store_root / "cases" / f"era5-t2m-proxy-{first:%Y%m%dT%H%M}.zarr"
    if path.exists():
        return path
    era5 = datasets.open_dataset(ANALYSIS, data_root).sel(time=slice(first, None))
    if era5.sizes["time"] == 0:
        raise CaseError(f"{ANALYSIS} has no analysis at or after {first}")
    zc = dem_to_grid(datasets.open_dataset(COARSE_OROGRAPHY, data_root), LatLonGrid.of(era5), name=COARSE_OROGRAPHY)
    proxy = era5_t2m_proxy(era5, zc)
    provenance = {
        "model": "era5-t850-lapse-proxy",
        "model_version": "1",
        "parameters": {"lapse_K_per_km": STANDARD_LAPSE * 1000, "member_mean": True},
        "init_time": str(proxy["init_time"].values[0]),
        "inputs": [ANALYSIS, COARSE_OROGRAPHY],
        "device": "cpu",
        "compute_seconds": 0.0,
        "software": software_versions(),
        "created": pd.Timestamp.now("UTC").isoformat(),
    }
    return write_run_store(proxy, path, provenance=provenance, overwrite=True)


def _ensure_runs(case: StationCase, settings: Settings, catalog: Catalog, proxy: Path, progress: Progress) -> None:
    from engine.jobs.downscale_job import DownscaleSpec
    from engine.jobs.runner import LocalExecutor

    executor = LocalExecutor(settings, catalog)
    for i, (method, run_id) in enumerate(case.run_ids.items()):
        if catalog.has_run(run_id):
            if catalog.get_run(run_id).status == "succeeded":
                continue
            catalog.delete_run(run_id)  # failed or interrupted before: build again
        spec = DownscaleSpec(
            input=str(proxy), variable="t2m", resolution=case.resolution, dem=case.dem,
            domain=case.domain, method=method, device="cpu",
        )
        progress((1 + i) / 5, f"{case.name}: downscaling ({method})")
        executor.submit(spec, run_id=run_id)


def _verify(case: StationCase, catalog: Catalog, data_root: Path) -> list[str]:
    """Verify both runs against each station dataset of the case (skipping what is already scored)."""
    notes: list[str] = []
    for method, run_id in case.run_ids.items():
        for ref in case.stations:
            have = catalog.scores(run_id)
            if len(have) and (have["reference"] == f"dataset:{ref}").any():
                continue
            # persistence only once (for the downscaled run): it does not depend on the method
            options = VerifyOptions(
                variable="t2m",
                metrics=("bias", "mae", "rmse"),
                persistence=method == "lapse_rate",
                time_tolerance=case.time_tolerance,
            )
            result = verify_run(catalog, run_id, ref, data_root=data_root, options=options)
            notes.extend(f"{run_id} vs {ref}: {n}" for n in result.notes)
    return notes


def _prepare_asos(case: StationCase, catalog: Catalog, data_root: Path) -> list[str]:
    """The ASOS stations (with names) and their reports of the case's days into the catalogue."""
    (ref,) = case.stations
    obs_all = datasets.open_dataset(ref, data_root)
    notes = []
    unknown = obs_all.attrs.get("stations_without_coordinates")
    if unknown:
        notes.append(f"{unknown}: no position in assets/airports.csv, left out")
    _ingest_asos(catalog, obs_all.sel(station=np.isfinite(obs_all["lat"].values)), f"dataset:{ref}", case.start)
    return notes


def _ingest_asos(catalog: Catalog, obs: xr.Dataset, label: str, start: str) -> None:
    """The ASOS stations (named from the airport table) and their reports of the case's two days.

    The Stations page shows a station's observations next to the point forecasts; only the two
    days of the case go in (the year of 5-minute reports would be most of the catalogue).
    """
    names = airport_table()["name"]
    ids = obs["station"].values.astype(str)
    catalog.upsert_stations(pd.DataFrame({
        "station_id": ids, "name": names.reindex(ids).fillna(pd.Series(ids, index=ids)).to_numpy(),
        "lat": obs["lat"].values, "lon": obs["lon"].values, "elevation": obs["elevation"].values, "source": label,
    }))
    first = pd.Timestamp(start).normalize()
    window = obs[["t2m", "d2m"]].sel(time=slice(first, first + pd.Timedelta(days=2, hours=23, minutes=59)))
    long = window.drop_vars([c for c in window.coords if c not in window.dims]).to_dataframe().reset_index()
    long = long.melt(id_vars=["station", "time"], var_name="variable", value_name="value").dropna()
    catalog.insert_observations(long.rename(columns={"station": "station_id"})[["station_id", "time", "variable", "value"]])


def _elevation(station: dict[str, object]) -> float:
    """A station record's ``station_elevation`` (m)."""
    z = station["station_elevation"]
    if not isinstance(z, (int, float)):
        raise TypeError(f"{station.get('station_id')}: station_elevation {z!r} is not a number")
    return float(z)


def _foehn_pair(case: StationCase, catalog: Catalog, data_root: Path) -> pd.DataFrame:
    """Crest-valley potential-temperature difference of the model pair and of the observations."""
    valley, crest = FOEHNIX_STATIONS["ellboegen"], FOEHNIX_STATIONS["sattelberg"]
    zv, zc = _elevation(valley), _elevation(crest)
    out: dict[str, pd.Series] = {}
    with warnings.catch_warnings():
        # neither the model nor the foehnix records carry station pressure: the standard
        # atmosphere at the station heights is used, which is what the documented method does
        warnings.filterwarnings("ignore", message="no station pressure")
        for method, run_id in case.run_ids.items():
            points = catalog.point_forecasts(run_id)
            points = points[points["variable"] == "t2m"]
            frames = {}
            for sid in ("ellboegen", "sattelberg"):
                p = points[points["station_id"] == sid]
                frames[sid] = pd.DataFrame({"t2m": p["value"].to_numpy()},
                                           index=pd.DatetimeIndex(p["init_time"] + pd.to_timedelta(p["lead_time"]), name="time"))
            pair = prepare_pair(frames["ellboegen"], frames["sattelberg"], valley_elevation=zv, crest_elevation=zc)
            out[f"dtheta_{method}"] = pair["dtheta"]
        times = next(iter(out.values())).index
        obs_v = datasets.open_dataset("foehn-ellboegen", data_root).sel(time=times)
        obs_c = datasets.open_dataset("foehn-sattelberg", data_root).sel(time=times)
        pair = prepare_pair(obs_v, obs_c, valley_elevation=zv, crest_elevation=zc)
        out["dtheta_observed"] = pair["dtheta"]
    return pd.DataFrame(out).rename_axis("time")


def run_case(
    name: str,
    settings: Settings,
    *,
    catalog: Catalog | None = None,
    progress: Progress | None = None,
) -> CaseResult:
    """Build a case (runs, point forecasts, scores), or complete what an earlier build left out.

    Parameters
    ----------
    name : str
        A key of :data:`CASES`.
    settings : Settings
        Sample data folder and store.
    catalog : Catalog, optional
        Default: the store's catalogue.
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    CaseResult

    Raises
    ------
    CaseError
        Unknown case or no sample data folder.
    WxError
        From the readers, the downscaling job or the verification pipeline.
    """
    if name not in CASES:
        raise CaseError(f"unknown case {name!r}; available: {', '.join(sorted(CASES))}")
    if settings.data_root is None or not settings.data_root.is_dir():
        raise CaseError("the cases are built from the sample data: set METEOLENS_DATA or run `meteolens data fetch`")
    t0 = time.perf_counter()
    case = CASES[name]
    say = progress or (lambda f, m: None)
    catalog = catalog if catalog is not None else Catalog(settings.catalog_path)
    say(0.0, f"{name}: coarse t2m proxy")
    proxy = _proxy_store(settings, settings.data_root, case.start)
    _ensure_runs(case, settings, catalog, proxy, say)
    say(0.6, f"{name}: verifying at the stations")
    if case.stations[0].startswith("asos"):
        notes = _prepare_asos(case, catalog, settings.data_root) + _verify(case, catalog, settings.data_root)
        foehn = None
    else:
        notes = _verify(case, catalog, settings.data_root)
        foehn = _foehn_pair(case, catalog, settings.data_root)
        notes.append(
            f"Foehn mixture model not fitted: {len(foehn)} analysis times (it needs hundreds of hours), and the "
            "proxy's crest-valley difference is set by its lapse rate and the model terrain, not by the flow; "
            "dtheta is reported instead"
        )
    say(1.0, f"{name}: done")
    return CaseResult(case, case.run_ids, comparison_table(catalog, case), foehn, notes, time.perf_counter() - t0)


def comparison_table(catalog: Catalog, case: StationCase) -> pd.DataFrame:
    """MAE and bias per station and lead time of the downscaled and the bilinear run.

    Returns
    -------
    DataFrame
        Columns ``station``, ``lead_time``, ``mae_downscaled``, ``mae_bilinear``,
        ``bias_downscaled``, ``bias_bilinear`` (K), one row per station and lead time, then one
        row per station with ``lead_time`` NaT holding the means over the lead times.
    """
    parts = []
    for method, run_id in case.run_ids.items():
        s = catalog.scores(run_id)
        s = s[s["metric"].isin(["mae", "bias"]) & s["region"].fillna("").str.startswith("station:")]
        s = s.assign(station=s["region"].str.removeprefix("station:"),
                     column=s["metric"] + ("_downscaled" if method == "lapse_rate" else "_bilinear"))
        parts.append(s[["station", "lead_time", "column", "value"]])
    if not parts or all(p.empty for p in parts):
        raise CaseError(f"case {case.name}: no station scores in the catalogue yet (run the case first)")
    wide = pd.concat(parts).pivot_table(index=["station", "lead_time"], columns="column", values="value").reset_index()
    cols = ["mae_downscaled", "mae_bilinear", "bias_downscaled", "bias_bilinear"]
    wide = wide.reindex(columns=["station", "lead_time", *cols])
    means = wide.groupby("station", as_index=False)[cols].mean().assign(lead_time=pd.NaT)
    return pd.concat([wide, means[wide.columns]], ignore_index=True)
