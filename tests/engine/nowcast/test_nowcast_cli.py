"""``meteolens nowcast`` end to end on real MeteoSwiss frames, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from nowcast_helpers import mch_files

from app.cli import main
from engine.jobs.nowcast_job import NowcastSpec
from engine.storage.catalog import Catalog
from engine.storage.zarr_store import open_run_store


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("method", "members"), [("extrapolation", None), ("persistence", None), ("steps", 2)])
def test_cli_end_to_end(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], method: str, members: int | None
) -> None:
    files = [str(p) for p in mch_files(data_root, 20, 3)]
    argv = [
        "nowcast",
        "--input",
        *files,
        "--method",
        method,
        "--lead-steps",
        "2",
        "--device",
        "cpu",
        "--store",
        str(tmp_path),
        "--json",
    ]
    if members:
        argv += ["--members", str(members), "--seed", "4"]
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    info = json.loads(out)
    assert set(info) >= {"run_id", "path", "compute_seconds"} and info["compute_seconds"] > 0
    ds = open_run_store(info["path"])
    rate = ds["precip_rate"]
    expect_dims = ("lead_time", "member", "y", "x") if members else ("lead_time", "y", "x")
    assert rate.dims == expect_dims
    assert rate.attrs["units"] == "mm h-1"
    assert rate.sizes["y"] == 640 and rate.sizes["x"] == 710
    assert {"lat", "lon", "x", "y", "init_time", "valid_time"} <= set(ds.coords)
    assert "crs" in ds
    init = np.datetime64("2015-05-15T17:35")  # time of the last input frame (AQC151351735)
    assert ds["init_time"].values == init
    np.testing.assert_array_equal(ds["valid_time"].values, init + np.array([5, 10], dtype="timedelta64[m]"))
    values = rate.values
    assert np.isnan(values).any() and np.nanmax(values) > 1.0  # no-data outside radar range, real rain
    record = Catalog(Path(tmp_path) / "catalog.duckdb").get_run(info["run_id"])
    assert record.status == "succeeded" and record.model == f"nowcast/{method}"


def test_cli_dataset_name(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        capsys,
        "nowcast",
        "--input",
        "mch-2015-05-15",
        "--last",
        "2",
        "--method",
        "persistence",
        "--lead-steps",
        "1",
        "--store",
        str(tmp_path),
        "--json",
    )
    assert code == 0, err
    ds = open_run_store(json.loads(out)["path"])
    assert ds["init_time"].values == np.datetime64("2015-05-15T19:00")


def test_cli_init_starts_inside_the_event(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--init picks the frames up to a time, by frame time, whatever order the files come in."""
    files = [str(p) for p in mch_files(data_root, 0, 12)]
    shuffled = files[::2] + files[1::2]
    common = ["--method", "persistence", "--lead-steps", "2", "--store", str(tmp_path), "--json"]
    code, out, err = _run(capsys, "nowcast", "--input", *shuffled, "--init", "2015-05-15T16:10", "--last", "2", *common)
    assert code == 0, err
    ds = open_run_store(json.loads(out)["path"])
    assert ds["init_time"].values == np.datetime64("2015-05-15T16:10")
    assert str(ds.attrs["inputs"]).count(".gif") == 2

    for init, message in (("2015-05-15T12:00", "no input frame at or before it"), ("soon", "not a time")):
        code, _, err = _run(capsys, "nowcast", "--input", *files, "--init", init, *common)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_cli_bad_input(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(p) for p in mch_files(data_root, 20, 3)]
    store = ["--store", str(tmp_path), "--json"]
    cases = [
        (["--input", str(tmp_path / "nothing*.gif"), "--lead-steps", "2"], "glob matches no files"),
        (["--input", *files, "--lead-steps", "0"], "--lead-steps 0"),
        (["--input", *files, "--method", "steps", "--members", "0", "--lead-steps", "2"], "--members 0"),
        (["--input", *files, "--method", "extrapolation", "--members", "3", "--lead-steps", "2"], "--members 3"),
        (["--input", files[-1], "--method", "extrapolation", "--lead-steps", "2"], "needs at least 2 frames"),
        (["--input", *files[-2:], "--method", "steps", "--lead-steps", "2"], "needs at least 3 frames"),
    ]
    knmi = sorted((data_root / "pysteps-data/radar/KNMI/2010/08").glob("*.h5"))[:1]
    if knmi:
        cases.append((["--input", files[-1], str(knmi[0]), "--lead-steps", "2"], "one grid"))
    for argv, message in cases:
        code, out, err = _run(capsys, "nowcast", *argv, *store)
        assert code == 2, (argv, err)
        assert message in err, (message, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("meteolens: error:")


def test_spec_validation_names_the_field() -> None:
    from engine.errors import JobError

    with pytest.raises(JobError, match="inputs"):
        NowcastSpec()
    with pytest.raises(JobError, match="lead_steps"):
        NowcastSpec(inputs=("a",), lead_steps=0)
    with pytest.raises(JobError, match="method"):
        NowcastSpec(inputs=("a",), method="magic")
    with pytest.raises(JobError, match="members"):
        NowcastSpec(inputs=("a",), method="steps", members=0)
    with pytest.raises(JobError, match="device"):
        NowcastSpec(inputs=("a",), device="tpu")
    assert NowcastSpec(inputs=("a",), method="steps").n_members == 20


def test_min_frames_table_matches_the_methods() -> None:
    from engine.jobs.nowcast_job import MIN_FRAMES
    from engine.models.nowcast import nowcast_methods

    assert {name: cls.min_frames for name, cls in nowcast_methods.items()} == MIN_FRAMES
