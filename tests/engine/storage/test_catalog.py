"""The DuckDB catalogue: runs and their lifecycle, verification tables, migrations, concurrency."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from filelock import FileLock

from engine.errors import StorageError, UnknownNameError
from engine.storage.catalog import SCHEMA_VERSION, Catalog, Migration, UnknownRunError, migrate
from engine.storage.catalog import schema as catalog_module
from engine.storage.zarr_store import write_run_store


@pytest.fixture
def cat(tmp_path: Path) -> Catalog:
    return Catalog(tmp_path / "store" / "catalog.duckdb")


def add_run(cat: Catalog, run_id: str, kind: str = "nowcast", **kw: object) -> None:
    cat.register_run(run_id, f"{kind}/model", kind, "alps", "2017-01-01T00:00", {"n": 1}, **kw)


# -- runs ------------------------------------------------------------------------------------


def test_register_and_get(cat: Catalog) -> None:
    params = {"inputs": ("a.gif", Path("/d/b.gif")), "threshold": np.float32(0.5), "when": pd.Timestamp("2017-01-01")}
    rec = cat.register_run(
        "nowcast-1", "nowcast/steps", "nowcast", "alps", "2017-01-01T06:00+01:00", params, device="cpu"
    )
    assert rec == cat.get_run("nowcast-1")
    assert rec.status == "queued" and rec.started is None and rec.finished is None
    assert rec.init_time == pd.Timestamp("2017-01-01T05:00")  # converted to UTC, stored without zone
    assert rec.parameters == {"inputs": ["a.gif", "/d/b.gif"], "threshold": 0.5, "when": "2017-01-01T00:00:00"}
    assert rec.device == "cpu" and rec.domain == "alps"
    assert json.loads(json.dumps(rec.to_dict()))["run_id"] == "nowcast-1"


def test_register_rejects_duplicates_and_bad_ids(cat: Catalog) -> None:
    add_run(cat, "r1")
    with pytest.raises(StorageError, match="run 'r1' is already catalogued"):
        add_run(cat, "r1")
    for bad in ("", "../etc", "a b", "-leading"):
        with pytest.raises(StorageError, match="run_id="):
            add_run(cat, bad)
    with pytest.raises(StorageError, match="status='done'"):
        add_run(cat, "r2", status="done")
    assert cat.list_runs()["run_id"].tolist() == ["r1"]


def test_status_lifecycle(cat: Catalog, tmp_path: Path) -> None:
    add_run(cat, "ok")
    running = cat.set_status("ok", "running")
    assert running.started is not None and running.finished is None
    done = cat.set_status("ok", "succeeded", path=tmp_path / "ok.zarr", compute_seconds=2.5)
    assert done.status == "succeeded" and done.finished >= done.started
    assert done.path == (tmp_path / "ok.zarr").absolute() and done.compute_seconds == 2.5

    add_run(cat, "bad")
    failed = cat.set_status("bad", "failed", error="ValueError: no radar frames")
    assert failed.status == "failed" and failed.error == "ValueError: no radar frames"
    assert failed.started is None and failed.finished is not None


@pytest.mark.parametrize(
    ("steps", "forbidden"),
    [((), "succeeded"), (("running", "succeeded"), "running"), (("failed",), "running"), (("running",), "queued")],
)
def test_forbidden_transitions(cat: Catalog, steps: tuple[str, ...], forbidden: str) -> None:
    add_run(cat, "r")
    for status in steps:
        cat.set_status("r", status)
    with pytest.raises(StorageError, match=f"cannot go from .* to '{forbidden}'"):
        cat.set_status("r", forbidden)
    assert cat.get_run("r").status == (steps[-1] if steps else "queued")


def test_unknown_run_error_is_short(cat: Catalog) -> None:
    for i in range(30):
        add_run(cat, f"nowcast-{i:03d}")
    with pytest.raises(UnknownRunError) as info:
        cat.get_run("nowcast-0077")
    message = str(info.value)
    assert isinstance(info.value, UnknownNameError) and isinstance(info.value, KeyError)
    assert "unknown run 'nowcast-0077'" in message and "30 runs catalogued" in message
    assert "did you mean" in message and message.count("nowcast-0") <= 4
    with pytest.raises(UnknownRunError):
        cat.set_status("nowcast-0077", "running")
    with pytest.raises(UnknownRunError):
        cat.delete_run("nowcast-0077")


def test_list_runs_filters_and_order(cat: Catalog) -> None:
    add_run(cat, "a", kind="nowcast")
    add_run(cat, "b", kind="global")
    add_run(cat, "c", kind="nowcast")
    cat.set_status("c", "running")
    runs = cat.list_runs()
    assert runs["run_id"].tolist() == ["c", "b", "a"]  # newest first
    assert cat.list_runs(kind="nowcast")["run_id"].tolist() == ["c", "a"]
    assert cat.list_runs(status="running")["run_id"].tolist() == ["c"]
    assert cat.list_runs(limit=1)["run_id"].tolist() == ["c"]
    assert cat.list_runs(kind="regional").empty
    with pytest.raises(UnknownNameError, match="unknown run status 'done'"):
        cat.list_runs(status="done")
    with pytest.raises(StorageError, match="limit=0"):
        cat.list_runs(limit=0)


def test_annotate_run(cat: Catalog) -> None:
    add_run(cat, "r")
    rec = cat.annotate_run("r", model="nowcast/steps-v2", init_time=pd.Timestamp("2017-01-02", tz="UTC"))
    assert rec.model == "nowcast/steps-v2" and rec.init_time == pd.Timestamp("2017-01-02")
    assert rec.domain == "alps"  # untouched


def test_fail_abandoned_runs(cat: Catalog) -> None:
    # A job process that sets its run running and then dies without a word (as under SIGKILL).
    code = (
        "import os, sys; from engine.storage.catalog import Catalog; c = Catalog(sys.argv[1]);"
        " c.register_run('killed', 'm', 'test', None, None, {}); c.set_status('killed', 'running'); os._exit(9)"
    )
    assert subprocess.run([sys.executable, "-c", code, str(cat.path)], check=False).returncode == 9
    add_run(cat, "alive")
    cat.set_status("alive", "running")  # this process: still alive
    add_run(cat, "waiting")
    killed = cat.get_run("killed")
    assert killed.status == "running" and killed.pid is not None and killed.host

    assert cat.fail_abandoned_runs() == ["killed"]
    killed = cat.get_run("killed")
    assert killed.status == "failed" and killed.finished is not None
    assert killed.error == f"abandoned: process {killed.pid} on {killed.host} ended without finishing the run"
    assert cat.get_run("alive").status == "running" and cat.get_run("waiting").status == "queued"
    assert cat.fail_abandoned_runs() == []


def test_delete_run_removes_store_and_rows(cat: Catalog, tmp_path: Path) -> None:
    ds = xr.Dataset({"t2m": (("y", "x"), np.zeros((2, 2), "float32"))})
    for rid in ("keep", "drop"):
        add_run(cat, rid)
        cat.set_status(rid, "running")
        store = write_run_store(ds, tmp_path / "runs" / f"{rid}.zarr", provenance={"model": "m"})
        cat.set_status(rid, "succeeded", path=store)
        cat.insert_scores(pd.DataFrame({"run_id": [rid], "variable": ["t2m"], "metric": ["rmse"], "value": [1.0]}))
        cat.insert_quality_report(rid, scope="sequence", ratings={"coverage": 3}, grade=3, text="fair")
    cat.delete_run("drop")
    assert cat.list_runs()["run_id"].tolist() == ["keep"]
    assert not (tmp_path / "runs" / "drop.zarr").exists() and (tmp_path / "runs" / "keep.zarr").exists()
    assert cat.scores()["run_id"].tolist() == ["keep"]
    assert cat.quality_reports("drop").empty and len(cat.quality_reports("keep")) == 1
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["keep.zarr"]
    cat.delete_run("keep", delete_store=False)
    assert (tmp_path / "runs" / "keep.zarr").exists() and cat.list_runs().empty


def test_delete_run_refuses_a_path_that_is_not_a_store(cat: Catalog, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    add_run(cat, "r", status="succeeded", path=precious)
    with pytest.raises(StorageError, match="precious: recorded as the store of run r but is not a zarr store"):
        cat.delete_run("r")
    assert (precious / "thesis.tex").exists() and cat.has_run("r")


# -- verification tables ---------------------------------------------------------------------


def scores_frame(value: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": ["r"] * 4,
            "reference": ["radar"] * 4,
            "variable": ["precip_rate"] * 4,
            "lead_time": pd.to_timedelta([5, 10, 5, 5], unit="min"),
            "metric": ["csi", "csi", "fss", "fss"],
            "threshold": [1.0, 1.0, 1.0, 1.0],
            "scale": [None, None, 4.0, 16.0],
            "value": [value, value / 2, 0.7, np.nan],
        }
    )


def test_scores_insert_replace_and_filter(cat: Catalog) -> None:
    add_run(cat, "r")
    assert cat.insert_scores(scores_frame(0.5)) == 4
    assert cat.insert_scores(scores_frame(0.6)) == 4  # same keys: replaced, not duplicated
    all_scores = cat.scores("r")
    assert len(all_scores) == 4
    csi = cat.scores("r", metric="csi")
    assert csi["value"].tolist() == [0.6, 0.3]
    assert csi["lead_time"].tolist() == [pd.Timedelta("5min"), pd.Timedelta("10min")]
    fss = cat.scores(metric="fss", scale=[16.0])
    assert len(fss) == 1 and np.isnan(fss["value"].iloc[0])
    assert cat.scores(metric="csi", scale=None, lead_time=pd.Timedelta("10min"))["value"].tolist() == [0.3]
    with pytest.raises(UnknownNameError, match="unknown score column 'metrik'"):
        cat.scores(metrik="csi")


def test_scores_bad_input(cat: Catalog) -> None:
    add_run(cat, "r")
    with pytest.raises(StorageError, match="runs that are not catalogued: ghost"):
        cat.insert_scores(scores_frame().assign(run_id="ghost"))
    with pytest.raises(StorageError, match=r"missing columns \['metric'\], unknown columns \['colour'\]"):
        cat.insert_scores(scores_frame().drop(columns="metric").assign(colour="red"))
    with pytest.raises(StorageError, match="'lead_time' must be timedelta64.*pd.to_timedelta"):
        cat.insert_scores(scores_frame().assign(lead_time=1))
    assert cat.scores().empty


def test_stations_and_observations(cat: Catalog) -> None:
    stations = pd.DataFrame(
        {
            "station_id": ["ellboegen", "sattelberg"],
            "name": ["Ellboegen", "Sattelberg"],
            "lat": [47.18694, 47.01083],
            "lon": [11.42889, 11.47889],
            "elevation": [1080.0, 2107.0],
            "source": ["acinn", "acinn"],
        }
    )
    assert cat.upsert_stations(stations) == 2
    cat.upsert_stations(stations.iloc[:1].assign(elevation=1081.0))  # update, not duplicate
    got = cat.stations()
    assert got["station_id"].tolist() == ["ellboegen", "sattelberg"] and got["elevation"].tolist() == [1081, 2107]
    with pytest.raises(StorageError, match="out of range for 1 rows \\(x\\)"):
        cat.upsert_stations(pd.DataFrame({"station_id": ["x"], "lat": [95.0], "lon": [0.0]}))

    times = pd.date_range("2017-01-01T01:00+01:00", periods=6, freq="h")  # aware: stored as UTC
    obs = pd.DataFrame({"station_id": "ellboegen", "time": times, "variable": "t2m", "value": 270.0 + np.arange(6)})
    assert cat.insert_observations(obs) == 6
    cat.insert_observations(obs.iloc[:1].assign(value=99.0))  # replaces the 00 UTC value
    window = cat.observations("ellboegen", "t2m", "2017-01-01T00:00", pd.Timestamp("2017-01-01T02:00"))
    assert window["time"].tolist() == list(pd.date_range("2017-01-01T00:00", periods=3, freq="h"))
    assert window["value"].tolist() == [99.0, 271.0, 272.0]
    assert len(cat.observations("ellboegen", "t2m")) == 6
    with pytest.raises(StorageError, match="stations that are not catalogued .*: nowhere"):
        cat.insert_observations(obs.assign(station_id="nowhere"))


def test_point_forecasts(cat: Catalog) -> None:
    add_run(cat, "r")
    cat.upsert_stations(pd.DataFrame({"station_id": ["s1", "s2"], "lat": [47.0, 46.0], "lon": [11.0, 10.0]}))
    lead = pd.to_timedelta([0, 6, 12], unit="h")
    rows = pd.DataFrame(
        {
            "run_id": "r",
            "station_id": np.repeat(["s1", "s2"], 3),
            "init_time": pd.Timestamp("2017-01-01"),
            "lead_time": np.tile(lead, 2),
            "variable": "t2m",
            "value": np.arange(6.0),
        }
    )
    assert cat.insert_point_forecasts(rows) == 6
    s1 = cat.point_forecasts("r", "s1")
    assert s1["valid_time"].tolist() == list(pd.Timestamp("2017-01-01") + lead)
    assert s1["member"].isna().all()
    # Re-inserting a (run, station, variable) group replaces it, here with a 2-member ensemble.
    ens = pd.concat([rows.iloc[:3].assign(member=0), rows.iloc[:3].assign(member=1, value=10.0)])
    cat.insert_point_forecasts(ens)
    assert len(cat.point_forecasts("r", "s1")) == 6 and len(cat.point_forecasts("r")) == 9
    with pytest.raises(StorageError, match="valid_time != init_time \\+ lead_time in 3 rows"):
        cat.insert_point_forecasts(rows.iloc[:3].assign(valid_time=pd.Timestamp("2000-01-01")))


def test_station_observation_summaries(cat: Catalog) -> None:
    cat.upsert_stations(pd.DataFrame({"station_id": ["v", "c", "empty"], "lat": [47, 47, 46], "lon": [11, 11, 10]}))
    times = pd.date_range("2016-04-01", periods=4, freq="h")
    obs = pd.concat(
        [
            pd.DataFrame({"station_id": "v", "time": times, "variable": "wind_dir", "value": [180.0, 190, 200, 210]}),
            pd.DataFrame({"station_id": "v", "time": times[1:], "variable": "wind_speed", "value": [3.0, 4, np.nan]}),
            pd.DataFrame({"station_id": "v", "time": times[:2], "variable": "t2m", "value": [280.0, 281]}),
            pd.DataFrame({"station_id": "c", "time": times[:1], "variable": "t2m", "value": [270.0]}),
        ]
    )
    cat.insert_observations(obs)
    assert cat.observed_variables("v") == ["t2m", "wind_dir", "wind_speed"]
    assert cat.observed_variables("empty") == [] and cat.observed_variables("nowhere") == []
    assert cat.observation_period("v") == (times[0], times[-1])
    assert cat.observation_period("empty") is None
    assert cat.observation_count("v") == 4 + 3 + 2 and cat.observation_count("empty") == 0

    wind = cat.observation_table("v", times[1], times[3], variables=("wind_dir", "wind_speed"))
    assert list(wind.columns) == ["wind_dir", "wind_speed"] and wind.index.name == "time"
    assert wind.index.tolist() == list(times[1:])
    assert wind["wind_dir"].tolist() == [190.0, 200.0, 210.0]
    assert wind["wind_speed"].iloc[:2].tolist() == [3.0, 4.0] and np.isnan(wind["wind_speed"].iloc[2])
    everything = cat.observation_table("v")
    assert list(everything.columns) == ["t2m", "wind_dir", "wind_speed"] and len(everything) == 4
    assert np.isnan(everything.loc[times[3], "t2m"])
    # Aware bounds are UTC: 02:00+01:00 is 01:00 UTC.
    assert cat.observation_table("v", end="2016-04-01T02:00+01:00").index.tolist() == list(times[:2])
    assert cat.observation_table("empty").empty and cat.observation_table("v", variables=()).empty


def test_station_forecasts_and_score_counts(cat: Catalog) -> None:
    add_run(cat, "a", kind="global")
    cat.register_run("b", "nowcast/model", "nowcast", None, "2017-01-01T00:00", {})
    cat.upsert_stations(pd.DataFrame({"station_id": ["s1", "s2"], "lat": [47.0, 46.0], "lon": [11.0, 10.0]}))
    lead = pd.to_timedelta([0, 6, 12], unit="h")
    rows = pd.DataFrame(
        {
            "run_id": np.repeat(["b", "a"], 3),
            "station_id": "s1",
            "init_time": pd.Timestamp("2017-01-01"),
            "lead_time": np.tile(lead, 2),
            "variable": "t2m",
            "value": np.arange(6.0),
        }
    )
    other = rows.assign(station_id="s2", value=-1.0)
    cat.insert_point_forecasts(pd.concat([rows, other, rows.assign(variable="msl")]))
    got = cat.station_forecasts("s1", "t2m", "2017-01-01T06:00", pd.Timestamp("2017-01-01T12:00"))
    assert list(got.columns) == ["run_id", "valid_time", "lead_time", "member", "value"]
    assert got["run_id"].tolist() == ["a", "a", "b", "b"]
    assert got["value"].tolist() == [4.0, 5.0, 1.0, 2.0]
    assert got["lead_time"].tolist() == [pd.Timedelta("6h"), pd.Timedelta("12h")] * 2
    assert cat.station_forecasts("s1", "t2m", "2018-01-01", "2018-01-02").empty

    assert cat.score_counts().empty
    cat.insert_scores(scores_frame().assign(run_id="a"))
    cat.insert_scores(scores_frame().assign(run_id="b").iloc[:2])
    counts = cat.score_counts()
    assert counts.to_dict("list") == {
        "kind": ["global", "global", "nowcast"],
        "variable": ["precip_rate"] * 3,
        "metric": ["csi", "fss", "csi"],
        "n": [2, 2, 2],
    }


def test_a_failed_bulk_write_changes_nothing(cat: Catalog) -> None:
    """The shared replace-rows write runs in the caller's transaction: a failing insert keeps the old rows."""
    add_run(cat, "r")
    cat.insert_scores(scores_frame(0.5))
    # Same keys, so the old rows are deleted first; then a value that is no number fails the insert.
    broken = scores_frame(0.9).assign(value=["0.9", "0.45", "0.7", "lots"])
    with pytest.raises(duckdb.ConversionException, match="lots"):
        cat.insert_scores(broken)
    assert cat.scores("r", metric="csi")["value"].tolist() == [0.5, 0.25]


def test_quality_reports(cat: Catalog) -> None:
    add_run(cat, "r")
    ratings = {"coverage": 4, "false_alarms": np.int64(2), "numbers": {"csi": 0.41}}
    cat.insert_quality_report("r", scope="sequence", ratings=ratings, grade=3.0, text="Good coverage.")
    cat.insert_quality_report(
        "r", scope="frame", lead_time=pd.Timedelta("30min"), ratings={"coverage": 2}, grade=2, text="Late."
    )
    cat.insert_quality_report("r", scope="sequence", ratings=ratings, grade=4.0, text="Revised.")  # replaces
    reports = cat.quality_reports("r")
    assert reports["scope"].tolist() == ["sequence", "frame"]
    assert reports["ratings"].iloc[0] == {"coverage": 4, "false_alarms": 2, "numbers": {"csi": 0.41}}
    assert reports["text"].tolist() == ["Revised.", "Late."] and reports["grade"].tolist() == [4.0, 2.0]
    with pytest.raises(StorageError, match="scope='frame' needs a lead_time"):
        cat.insert_quality_report("r", scope="frame", ratings={}, grade=1, text="")
    with pytest.raises(StorageError, match="scope='movie'"):
        cat.insert_quality_report("r", scope="movie", ratings={}, grade=1, text="")
    with pytest.raises(StorageError, match="not catalogued: ghost"):
        cat.insert_quality_report("ghost", scope="sequence", ratings={}, grade=1, text="")


def test_query_is_read_only(cat: Catalog) -> None:
    add_run(cat, "r")
    assert cat.query("SELECT count(*) AS n FROM runs")["n"].tolist() == [1]
    with pytest.raises(StorageError, match="query failed"):
        cat.query("DELETE FROM runs")
    assert cat.has_run("r")


# -- migrations ------------------------------------------------------------------------------


def test_migrate_from_version_1(tmp_path: Path) -> None:
    path = tmp_path / "catalog.duckdb"
    assert migrate(path, up_to=1) == 1
    # A catalogue written by the first release: runs without device/compute columns.
    con = duckdb.connect(str(path))
    con.execute(
        "INSERT INTO runs (run_id, model, kind, parameters, status, path, created, finished)"
        " VALUES ('old-1', 'global/swm', 'global', '{\"steps\": 4}', 'succeeded', '/x.zarr',"
        " TIMESTAMP '2024-01-01 00:00:00', TIMESTAMP '2024-01-01 00:10:00')"
    )
    con.execute("INSERT INTO stations VALUES ('s', 'S', 47.0, 11.0, 500.0, 'test')")
    con.close()
    cat = Catalog(path)
    assert cat.schema_version == SCHEMA_VERSION
    rec = cat.get_run("old-1")
    assert rec.parameters == {"steps": 4} and rec.status == "succeeded"
    assert rec.device is None and rec.compute_seconds is None and rec.started is None and rec.pid is None
    assert cat.stations()["station_id"].tolist() == ["s"]
    history = cat.query("SELECT version, description FROM schema_migrations ORDER BY version")
    assert history["version"].tolist() == [m.version for m in catalog_module.MIGRATIONS]
    # The new tables and columns work on the migrated file.
    cat.insert_quality_report("old-1", scope="sequence", ratings={"coverage": 5}, grade=5, text="ok")
    add_run(cat, "new-1", device="cuda:0")
    assert cat.get_run("new-1").device == "cuda:0"


def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "catalog.duckdb"
    Catalog(path)
    broken = Migration(SCHEMA_VERSION + 1, "broken", "ALTER TABLE runs ADD COLUMN extra INTEGER; SELECT * FROM nope;")
    monkeypatch.setattr(catalog_module, "MIGRATIONS", (*catalog_module.MIGRATIONS, broken))
    monkeypatch.setattr(catalog_module, "SCHEMA_VERSION", broken.version)
    with pytest.raises(
        StorageError, match=f"migration {broken.version} \\(broken\\) failed, catalogue left at version"
    ):
        Catalog(path)
    monkeypatch.undo()
    cat = Catalog(path)
    assert cat.schema_version == SCHEMA_VERSION
    assert "extra" not in cat.query("SELECT * FROM runs").columns  # the ALTER was rolled back too


def test_newer_catalogue_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.duckdb"
    Catalog(path)
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', now())")
    con.close()
    with pytest.raises(StorageError, match="schema version 999 is newer than this meteolens knows"):
        Catalog(path)


def test_missing_catalogue_without_create(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="catalog.duckdb: no catalogue here"):
        Catalog(tmp_path / "catalog.duckdb", create=False)
    assert not (tmp_path / "catalog.duckdb").exists()


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "catalog.duckdb"
    path.write_text("this is not a database")
    with pytest.raises(StorageError, match="catalog.duckdb: cannot open the catalogue"):
        Catalog(path)


# -- concurrency -----------------------------------------------------------------------------


def test_lock_timeout_is_a_clear_error(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "catalog.duckdb", timeout=0.2)
    other = FileLock(f"{cat.path}.lock")  # what another process would hold
    with other, pytest.raises(StorageError, match=r"catalogue busy: .*catalog\.duckdb\.lock"):
        cat.list_runs()
    assert cat.list_runs().empty  # released: usable again


WRITER = textwrap.dedent(
    """
    import sys
    from engine.storage.catalog import Catalog

    path, worker, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cat = Catalog(path, timeout=120)
    for i in range(n):
        rid = f"w{worker}-{i:03d}"
        cat.register_run(rid, "m", "test", None, None, {"worker": worker, "i": i})
        cat.set_status(rid, "running")
        if i % 5 == 4:
            cat.set_status(rid, "failed", error=f"error {rid}")
        else:
            cat.set_status(rid, "succeeded", path=f"/runs/{rid}.zarr", compute_seconds=float(i))
    """
)

READER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pandas import isna, notna
    from engine.storage.catalog import Catalog

    path, stop = sys.argv[1], Path(sys.argv[2])
    cat = Catalog(path, timeout=120, create=False)
    polls, seen = 0, 0
    while True:
        final = stop.exists()  # decide before polling, so the last poll sees everything
        runs = cat.list_runs()
        polls += 1
        if len(runs) < seen:
            sys.exit(f"row count went down: {seen} -> {len(runs)}")
        seen = len(runs)
        for r in runs.itertuples():
            # Each status comes with exactly the fields its update wrote, or the reader saw a
            # half-applied change.
            ok = {
                "queued": isna(r.started) and isna(r.finished),
                "running": notna(r.started) and isna(r.finished) and isna(r.path),
                "succeeded": r.path == f"/runs/{r.run_id}.zarr" and notna(r.compute_seconds) and notna(r.finished),
                "failed": r.error == f"error {r.run_id}" and notna(r.finished) and isna(r.path),
            }[r.status]
            if not ok:
                sys.exit(f"half-updated run seen: {r}")
        if final:
            break
        time.sleep(0.01)
    print(polls, seen)
    """
)


def test_concurrent_processes(tmp_path: Path) -> None:
    path = tmp_path / "catalog.duckdb"
    Catalog(path)
    stop = tmp_path / "writers-done"
    n_workers, n_runs = 4, 25
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(path), str(stop)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(w), str(n_runs)], stderr=subprocess.PIPE, text=True
        )
        for w in range(n_workers)
    ]
    for w in writers:
        _, err = w.communicate(timeout=240)
        assert w.returncode == 0, err
    stop.touch()
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err + out
    polls, seen = map(int, out.split())
    assert seen == n_workers * n_runs and polls >= 2

    runs = Catalog(path).list_runs()
    assert len(runs) == n_workers * n_runs and runs["run_id"].is_unique
    for r in runs.itertuples():
        i = int(r.run_id.split("-")[1])
        if i % 5 == 4:
            assert r.status == "failed" and r.error == f"error {r.run_id}"
        else:
            assert r.status == "succeeded" and r.compute_seconds == float(i)
        assert json.loads(r.parameters) == {"worker": int(r.run_id[1]), "i": i}


def test_threads_share_one_catalog(cat: Catalog) -> None:
    """App sessions are threads sharing one Catalog object: the lock must serialise them too."""
    from concurrent.futures import ThreadPoolExecutor

    def work(i: int) -> str:
        add_run(cat, f"t{i}")
        cat.set_status(f"t{i}", "running")
        return cat.get_run(f"t{i}").status

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(work, range(12))) == ["running"] * 12
    assert len(cat.list_runs(status="running")) == 12
