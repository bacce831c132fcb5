"""``meteolens runs list/show/delete`` on a temporary store, and the text progress bar."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import app.cli
from app.cli import main
from app.cli.progress import TextProgress
from engine.config import Settings
from engine.jobs.runner import JobOutput, LocalExecutor, ProgressCallback, job_kinds
from engine.jobs.specs import JobSpec
from engine.lexicon import attrs_for
from engine.storage.catalog import Catalog


@dataclass(frozen=True)
class WarmingSpec(JobSpec):
    """2 m temperature warming linearly with lead time over a small grid."""

    kind: ClassVar[str] = "test-cli-warming"
    n_lead: int = 3
    rate_k_per_hour: float = 0.5
    fail: bool = False


@job_kinds.register(WarmingSpec.kind)
def run_warming(spec: WarmingSpec, progress: ProgressCallback) -> JobOutput:
    if spec.fail:
        raise ValueError("no analysis for 2017-01-01")
    lead = pd.to_timedelta(np.arange(spec.n_lead), unit="h")
    base = np.linspace(265.0, 275.0, 20, dtype="float32").reshape(4, 5)
    t2m = (
        base[None, None]
        + np.float32(spec.rate_k_per_hour) * np.arange(spec.n_lead, dtype="float32")[None, :, None, None]
    )
    ds = xr.Dataset(
        {"t2m": (("init_time", "lead_time", "lat", "lon"), t2m, attrs_for("t2m"))},
        coords={
            "init_time": [pd.Timestamp("2017-01-01")],
            "lead_time": lead,
            "lat": np.array([48.0, 47.5, 47.0, 46.5]),
            "lon": np.array([10.0, 10.5, 11.0, 11.5, 12.0]),
        },
    )
    progress(1.0, "done")
    return JobOutput(ds, 0.2, ("analysis.grib",), pd.Timestamp("2017-01-01"), "cpu", "test/warming")


@pytest.fixture(autouse=True)
def only_runs_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the CLI with just ``runs``: these tests must not depend on other commands' imports."""
    monkeypatch.setattr(app.cli, "COMMANDS", ("app.cli.runs",))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store with two succeeded runs and one failed run; returns its folder."""
    settings = Settings(data_root=None, store_root=tmp_path / "store")
    executor = LocalExecutor(settings)
    executor.submit(WarmingSpec())
    executor.submit(WarmingSpec(n_lead=2))
    with pytest.raises(Exception, match="no analysis"):
        executor.submit(WarmingSpec(fail=True))
    return settings.store_root


def run_ids(store: Path) -> dict[str, str]:
    runs = Catalog(store / "catalog.duckdb").list_runs()
    return dict(zip(runs["run_id"], runs["status"], strict=True))


def test_list_text(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "list", "--store", str(store)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["RUN_ID", "STATUS", "KIND", "MODEL", "INIT_TIME", "CREATED", "SECONDS"]
    assert len(out) == 4
    assert sorted(line.split()[1] for line in out[1:]) == ["failed", "succeeded", "succeeded"]
    assert all(line.startswith("test-cli-warming-") for line in out[1:])


def test_list_json_and_filters(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "list", "--store", str(store), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["catalog"] == str(store / "catalog.duckdb")
    assert {r["run_id"]: r["status"] for r in doc["runs"]} == run_ids(store)
    ok = [r for r in doc["runs"] if r["status"] == "succeeded"]
    assert all(r["parameters"]["device"] == "auto" and r["compute_seconds"] == 0.2 for r in ok)
    assert all(r["path"].endswith(".zarr") for r in ok)

    assert main(["runs", "list", "--store", str(store), "--status", "failed", "--json"]) == 0
    (failed,) = json.loads(capsys.readouterr().out)["runs"]
    assert failed["error"] == "ValueError: no analysis for 2017-01-01" and failed["path"] is None

    assert main(["runs", "list", "--store", str(store), "--limit", "1", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["runs"]) == 1


def test_list_uses_environment_and_never_creates_a_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("METEOLENS_STORE", str(tmp_path / "empty"))
    assert main(["runs", "list"]) == 0
    assert "no runs in" in capsys.readouterr().out
    assert main(["runs", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == []
    assert not (tmp_path / "empty").exists()


def test_show(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = next(r for r, s in run_ids(store).items() if s == "succeeded")
    assert main(["runs", "show", ok, "--store", str(store), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["run"]["run_id"] == ok and doc["run"]["status"] == "succeeded"
    assert doc["store"]["provenance"]["model"] == "test/warming"
    assert doc["store"]["provenance"]["inputs"] == ["analysis.grib"]
    assert doc["store"]["variables"]["t2m"]["dims"] == ["init_time", "lead_time", "lat", "lon"]
    assert doc["store"]["variables"]["t2m"]["dtype"] == "float32"
    assert doc["store"]["variables"]["t2m"]["units"] == "K"
    assert doc["store"]["dims"]["lon"] == 5

    assert main(["runs", "show", ok, "--store", str(store)]) == 0
    text = capsys.readouterr().out
    assert "run_id" in text and ok in text
    assert "t2m (init_time, lead_time, lat, lon) float32 [K]" in text
    assert "model: test/warming" in text


def test_show_failed_run(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = next(r for r, s in run_ids(store).items() if s == "failed")
    assert main(["runs", "show", bad, "--store", str(store)]) == 0
    text = capsys.readouterr().out
    assert "ValueError: no analysis" in text and "store: no store (run is failed)" in text


def test_unknown_run_is_a_one_line_error(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for action in ("show", "delete"):
        assert main(["runs", action, "nowcast-19990101T000000-deadbeef", "--store", str(store)]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("meteolens: error: ")
        assert "unknown run 'nowcast-19990101T000000-deadbeef'" in lines[0]


def test_show_without_catalogue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "show", "x", "--store", str(tmp_path)]) == 2
    assert "no catalogue here" in capsys.readouterr().err


def test_delete(store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    ok = next(r for r, s in run_ids(store).items() if s == "succeeded")
    path = store / "runs" / f"{ok}.zarr"
    assert path.is_dir()

    # Not a terminal and no --yes: refuse, delete nothing.
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["runs", "delete", ok, "--store", str(store)]) == 2
    assert "without --yes" in capsys.readouterr().err
    assert ok in run_ids(store) and path.is_dir()

    # A terminal that answers "n": nothing happens either.
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Tty())
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(["runs", "delete", ok, "--store", str(store)]) == 1
    assert ok in run_ids(store)

    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert main(["runs", "delete", ok, "--store", str(store)]) == 0
    assert f"deleted run {ok}" in capsys.readouterr().out
    assert ok not in run_ids(store) and not path.exists()


def test_delete_yes_keep_store(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = next(r for r, s in run_ids(store).items() if s == "succeeded")
    assert main(["runs", "delete", ok, "--yes", "--keep-store", "--store", str(store)]) == 0
    assert "store kept" in capsys.readouterr().out
    assert ok not in run_ids(store) and (store / "runs" / f"{ok}.zarr").is_dir()
    assert len(run_ids(store)) == 2


def test_cleanup(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = Catalog(store / "catalog.duckdb")
    catalog.register_run("orphan", "m", "test", None, None, {})
    catalog.set_status("orphan", "running")
    # Pretend the run belongs to a process that has exited (pid 2**22 + 1 exceeds Linux's pid_max).
    with catalog._transaction() as con:
        con.execute("UPDATE runs SET pid = ? WHERE run_id = 'orphan'", [2**22 + 1])
    stale = store / "runs" / ".x.zarr.tmp-00000000"
    stale.mkdir()
    assert main(["runs", "cleanup", "--store", str(store), "--min-age", "0"]) == 0
    out = capsys.readouterr().out
    assert "marked failed (process gone): orphan" in out and "removed stale temporary store" in out
    assert catalog.get_run("orphan").status == "failed" and not stale.exists()
    assert main(["runs", "cleanup", "--store", str(store)]) == 0
    assert capsys.readouterr().out.strip() == "nothing to clean up"


# -- progress bar ----------------------------------------------------------------------------


def test_progress_log_mode_prints_one_line_per_tenth() -> None:
    out = io.StringIO()
    bar = TextProgress(out, tty=False, width=10)
    for i in range(101):
        bar(i / 100, f"step {i}")
    lines = out.getvalue().splitlines()
    assert len(lines) == 11 and "\r" not in out.getvalue()
    assert lines[0].startswith("[----------]   0%  step 0  (")
    assert lines[5].startswith("[#####-----]  50%  step 50")
    assert lines[-1].startswith("[##########] 100%  step 100") and lines[-1].endswith(" s)")


def test_progress_terminal_mode_redraws_in_place() -> None:
    out = io.StringIO()
    bar = TextProgress(out, tty=True, width=4, min_interval=0.0)
    bar(0.25, "a much longer first message")
    bar(0.5, "short")
    bar(1.0, "done")
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    second = text.split("\r")[2]
    assert second.startswith("[##--]  50%  short") and len(second) >= len("[#---]  25%  a much longer first message")
    bar(1.0, "again")  # finished: further calls draw nothing
    assert out.getvalue() == text


def test_progress_close_ends_an_interrupted_line() -> None:
    out = io.StringIO()
    bar = TextProgress(out, tty=True, min_interval=0.0)
    bar(0.3, "working")
    bar.close()
    assert out.getvalue().endswith("\n")


def test_progress_bar_as_job_callback_keeps_stdout_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(data_root=None, store_root=tmp_path / "store")
    LocalExecutor(settings).submit(WarmingSpec(), progress=TextProgress())
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "100%" in captured.err.splitlines()[-1]
