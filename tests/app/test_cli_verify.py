"""``meteolens verify`` and ``meteolens qa`` on a temporary store with nowcasts of real radar frames.

The runs are made from the MeteoSwiss frames of 2015-05-15 (init 16:30 UTC, leads 5-15 min):
``persist`` holds the 16:30 frame, ``perfect`` is the observed frames themselves, ``cropped`` a
200 x 200 cut-out (wrong grid); for the quality analysis, ``observed`` / ``perfect-crop`` are the
observed frames on a 256 x 256 cut-out and ``displaced`` the same moved 40 km east.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from app.cli import main
from engine import datasets
from engine.config import Settings
from engine.readers import open_any
from engine.storage.catalog import Catalog
from engine.storage.zarr_store import write_run_store
from verification.metrics import csi, fss

INIT = pd.Timestamp("2015-05-15T16:30")
LEADS = pd.to_timedelta([5, 10, 15], unit="min")


def _store_run(settings: Settings, run_id: str, fields: list[xr.DataArray], template: xr.Dataset) -> None:
    stacked = xr.concat(fields, dim=xr.DataArray(LEADS.values, dims=["lead_time"], name="lead_time"))
    ds = stacked.to_dataset(name="precip_rate")
    ds = ds.assign_coords(init_time=INIT.to_datetime64(), valid_time=("lead_time", (INIT + LEADS).values))
    ds["crs"] = template["crs"]
    ds["precip_rate"].attrs = {**template["precip_rate"].attrs, "grid_mapping": "crs"}
    path = write_run_store(ds, settings.runs_dir / f"{run_id}.zarr", provenance={"model": run_id})
    Catalog(settings.catalog_path).register_run(run_id, run_id, "nowcast", "mch", INIT, {}, "succeeded", path)


@pytest.fixture(scope="module")
def store(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    meta = datasets.get("mch-2015-05-15")
    paths = meta.paths(data_root)[9:13]  # 16:30 .. 16:45
    opened = [open_any(p, format=meta.format) for p in paths]
    obs = [ds["precip_rate"].isel(time=0, drop=True).drop_vars(["lat", "lon"]) for ds in opened]
    settings = Settings(data_root=data_root, store_root=tmp_path_factory.mktemp("cli-verify"))
    _store_run(settings, "persist", [obs[0]] * 3, opened[0])
    _store_run(settings, "perfect", obs[1:], opened[0])
    crop = {"y": slice(100, 300), "x": slice(200, 400)}
    _store_run(settings, "cropped", [o.isel(crop) for o in obs[1:]], opened[0].isel(crop))
    # The quality analysis runs on a 256 km square with most of the rain, against the observed
    # frames stored as a run (a run is a valid reference): fast, and it covers that path too.
    rain = {"y": slice(256, 512), "x": slice(352, 608)}
    observed = [o.isel(rain) for o in obs[1:]]
    _store_run(settings, "observed", observed, opened[0].isel(rain))
    _store_run(settings, "perfect-crop", observed, opened[0].isel(rain))
    # shift() fills the vacated columns with NaN (no data), rather than wrapping rain around
    _store_run(settings, "displaced", [o.shift(x=40) for o in observed], opened[0].isel(rain))
    return {"store": str(settings.store_root), "files": [str(p) for p in paths], "obs": obs, "settings": settings}


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("meteolens: error: ") and err.count("\n") == 1, err
    return err


def test_verify_json_against_the_dataset(store: dict, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["verify", "--run", "persist", "--against", "mch-2015-05-15", "--store", store["store"]]
    argv += ["--metrics", "csi", "fss", "--thresholds", "1", "--windows", "5", "10km", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run_id"] == "persist" and out["reference"] == "dataset:mch-2015-05-15"
    assert out["baseline_run_id"] == "persist.persistence"
    mine = pd.DataFrame([r for r in out["scores"] if r["run_id"] == "persist"])
    # csi at one threshold, fss at one threshold and two windows (10 km on the 1 km grid = 11 points)
    assert len(mine) == 3 * (1 + 2)
    assert sorted(mine.loc[mine["metric"] == "fss", "scale"].unique()) == [5.0, 11.0]
    held = store["obs"][0]
    for k, minutes in enumerate((5.0, 10.0, 15.0)):
        row = mine[(mine["metric"] == "csi") & (mine["lead_minutes"] == minutes)]
        assert row["value"].item() == float(csi(held, store["obs"][k + 1], threshold=1.0))
        row = mine[(mine["metric"] == "fss") & (mine["lead_minutes"] == minutes) & (mine["scale"] == 11.0)]
        assert row["value"].item() == float(fss(held, store["obs"][k + 1], threshold=1.0, window=11))
    assert mine["lead_time"].iloc[0].startswith("P")  # ISO 8601 duration
    # the run is persistence itself: the baseline scores are the run's
    base = pd.DataFrame([r for r in out["scores"] if r["run_id"] == "persist.persistence"])
    np.testing.assert_array_equal(base["value"].to_numpy(), mine["value"].to_numpy())
    stored = Catalog(store["settings"].catalog_path).scores("persist", metric="csi")
    assert len(stored) == 3 and set(stored["reference"]) == {"dataset:mch-2015-05-15"}


def test_verify_prints_a_table(store: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--run", "perfect", "--against", *store["files"], "--store", store["store"]]) == 0
    out = capsys.readouterr().out
    assert "forecast (perfect):" in out and "persistence baseline (perfect.persistence):" in out
    lines = out.splitlines()
    header = next(line for line in lines if "+5 min" in line)
    assert header.split() == ["+5", "min", "+10", "min", "+15", "min"]
    csi_line = next(line for line in lines if line.startswith("csi@1 "))
    assert csi_line.split()[1:] == ["1.000", "1.000", "1.000"]  # the observed frames score perfectly
    rmse_line = next(line for line in lines if line.startswith("rmse "))
    assert rmse_line.split()[1:] == ["0.000", "0.000", "0.000"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", "nope", "--against", "FILES"], "unknown run 'nope'"),
        (["--run", "perfect", "--against", "FILES2"], "no frame at 1 valid time(s) of run perfect: 2015-05-15 16:45"),
        (["--run", "cropped", "--against", "FILES"], "grid {'y': 640, 'x': 710} differs from run cropped's"),
        (["--run", "perfect", "--against", "FILES", "--metrics", "csi", "nonsense"], "unknown metric 'nonsense'"),
        (
            ["--run", "perfect", "--against", "FILES", "--thresholds", "1", "heavy"],
            "thresholds: 'heavy' is not a number",
        ),
        (["--run", "perfect", "--against", "FILES", "--windows", "5miles"], "--windows: '5miles' is not a number"),
        (["--run", "perfect", "--against", "no-such-dataset"], "no such file, directory or dataset name"),
        (["--run", "perfect", "--against", "FILES", "--time-tolerance", "soon"], "--time-tolerance: 'soon' is not a"),
        (["--run", "perfect", "--against", "FILES", "--time-tolerance", "30"], "--time-tolerance: '30' has no unit"),
        (["--run", "perfect", "--against", "FILES", "--time-tolerance=-5min"], "--time-tolerance: '-5min' is negative"),
        (["--run", "perfect", "--against", "FILES2", "--time-tolerance", "4min"], "no frame within 4 min at 1 valid"),
    ],
)
def test_verify_bad_input_is_one_line_exit_2(
    store: dict, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    files = store["files"]
    argv = []
    for a in args:
        argv += files if a == "FILES" else files[:3] if a == "FILES2" else [a]
    err = _one_line_error(capsys, ["verify", *argv, "--store", store["store"]])
    assert message in err


def test_verify_time_tolerance_uses_the_nearest_frame(store: dict, capsys: pytest.CaptureFixture[str]) -> None:
    # the 16:45 frame left out: with --time-tolerance 5min the +15 min lead is scored against 16:40
    argv = ["verify", "--run", "perfect", "--against", *store["files"][:3], "--store", store["store"]]
    argv += ["--metrics", "rmse", "--no-persistence", "--time-tolerance", "5min", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    rmse = {r["lead_minutes"]: r["value"] for r in out["scores"]}
    assert rmse[5.0] == rmse[10.0] == 0.0 and rmse[15.0] > 0.0
    assert any("1 of 3 lead time(s)" in n and "largest offset 5 min" in n for n in out["notes"])


def test_qa_stores_reports_and_rates_a_displaced_run_worse(store: dict, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = Catalog(store["settings"].catalog_path)
    assert main(["qa", "--run", "displaced", "--against", "observed", "--store", store["store"], "--json"]) == 0
    displaced = json.loads(capsys.readouterr().out)
    assert main(["qa", "--run", "perfect-crop", "--against", "observed", "--store", store["store"]]) == 0
    text = capsys.readouterr().out
    assert "perfect-crop against run:observed: overall grade 5.0/5" in text and "location" in text
    assert "+15 min  grade" in text
    perfect = catalog.quality_reports("perfect-crop")
    assert list(perfect["scope"]) == ["sequence", "frame", "frame", "frame"]
    assert list(pd.to_timedelta(perfect["lead_time"].iloc[1:])) == list(LEADS)
    stored = catalog.quality_reports("displaced")
    assert len(stored) == 4 and set(stored["reference"]) == {"run:observed"}
    seq = displaced["sequence"]
    assert seq["scope"] == "sequence" and len(displaced["frames"]) == 3
    assert seq["ratings"]["location"]["rating"] < perfect["ratings"].iloc[0]["location"]["rating"] == 5
    assert seq["ratings"]["location"]["dx_km"] == pytest.approx(40.0, abs=2.0)
    assert seq["grade"] < perfect["grade"].iloc[0]


def test_qa_unknown_run_is_one_line_exit_2(store: dict, capsys: pytest.CaptureFixture[str]) -> None:
    err = _one_line_error(capsys, ["qa", "--run", "nope", "--against", *store["files"], "--store", store["store"]])
    assert "unknown run 'nope'" in err
