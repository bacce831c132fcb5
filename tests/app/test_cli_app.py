"""``meteolens demo build`` (idempotent, only registered job kinds) and ``meteolens app``'s command line."""

from __future__ import annotations

import json
import sys

import pytest

from app.cli import main
from app.cli.app import APP_FILE, streamlit_command
from app.settings import AppSettings, parse_app_arguments
from engine.config import Settings

PLAN = """
[[stations]]
dataset = "foehn-sattelberg"
station_id = "sattelberg"
start = "2016-04-01"
end = "2016-04-03"

[[runs]]
id = "demo-regional-blizzard-msl"
kind = "downscale"
params = { input = "blizzard-1996", variable = "msl", resolution = 1.0, domain = [30.0, 40.0, -105.0, -95.0], method = "bilinear" }

[[runs]]
id = "demo-global-persistence"
kind = "global"
params = { init = ["data:cfgrib/tests/sample-data/era5-levels-members.grib"], model = "persistence", members = "2", lead_hours = 12 }

[[runs]]
id = "demo-not-a-kind"
kind = "no-such-kind"

[[scores]]
run = "demo-absent"
against = "mch-2015-05-15"

[[scores]]
run = "demo-global-persistence"
against = "era5-ensemble-2017-01"
"""


def _build(tmp_path, capsys) -> tuple[int, dict]:
    code = main(["demo", "build", "--store", str(tmp_path / "store"), "--plan", str(tmp_path / "plan.toml"), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_demo_build_is_idempotent(tmp_path, capsys, data_root, monkeypatch):
    monkeypatch.setenv("METEOLENS_DATA", str(data_root))
    (tmp_path / "plan.toml").write_text(PLAN)
    code, first = _build(tmp_path, capsys)
    assert code == 0, first["failed"]
    assert first["built"] == [
        "stations sattelberg",
        "run demo-regional-blizzard-msl",
        "run demo-global-persistence",
        "scores demo-global-persistence",
    ]
    assert "not registered" in first["skipped"]["run demo-not-a-kind"]
    assert "not in the store" in first["skipped"]["scores demo-absent"]

    code, second = _build(tmp_path, capsys)
    assert code == 0 and second["built"] == []
    assert "already built" in second["skipped"]["run demo-regional-blizzard-msl"]
    # 3 days x 24 hours x 4 variables (wind direction and speed, humidity, temperature)
    assert "already has 288 observations" in second["skipped"]["stations sattelberg"]

    from engine.storage.catalog import Catalog

    catalog = Catalog(tmp_path / "store" / "catalog.duckdb")
    runs = catalog.list_runs()
    # the verification pipeline catalogues the persistence baseline of every run it scores
    assert sorted(runs["run_id"]) == [
        "demo-global-persistence",
        "demo-global-persistence.persistence",
        "demo-regional-blizzard-msl",
    ]
    assert set(runs["status"]) == {"succeeded"}
    # Persistence verified against the analysis it starts from: exact at T+0 up to the ensemble
    # mean (2 members vs the 10-member analysis mean), worse 12 h later; spread constant in time.
    scores = catalog.scores("demo-global-persistence").set_index(["metric", "lead_time"])["value"]
    rmse0, rmse12 = scores["rmse"].iloc[0], scores["rmse"].iloc[-1]
    assert 0 <= rmse0 < rmse12
    spread = scores["spread"]
    assert spread.iloc[0] == pytest.approx(spread.iloc[-1])


def test_demo_build_without_sample_data_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("METEOLENS_DATA", str(tmp_path / "nowhere"))
    code = main(["demo", "build", "--store", str(tmp_path / "store")])
    assert code == 2
    assert "no sample data folder" in capsys.readouterr().err


def test_the_shipped_demo_plan_parses():
    from app.demo import load_plan

    plan = load_plan()
    assert {r["kind"] for r in plan.runs} == {"nowcast", "global", "downscale"}
    assert len({r["id"] for r in plan.runs}) == len(plan.runs)


def test_app_command_runs_streamlit_on_the_app(tmp_path):
    app = AppSettings(Settings(data_root=tmp_path / "data", store_root=tmp_path / "store"), build_demo=True)
    cmd = streamlit_command(app, 8599, "127.0.0.1")
    assert cmd[:5] == [sys.executable, "-m", "app.cli.app", "run", str(APP_FILE)]
    assert cmd[cmd.index("--server.port") + 1] == "8599"
    # The settings travel as the script's arguments after "--", and parse back to the same.
    script_args = cmd[cmd.index("--") + 1 :]
    assert parse_app_arguments(script_args) == app


@pytest.mark.parametrize("argv", [["app", "--help"], ["demo", "build", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "--store" in capsys.readouterr().out
