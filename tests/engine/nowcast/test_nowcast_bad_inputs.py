"""Bad and degenerate nowcast inputs: clear errors or documented results, never silent NaN.

Two levels are checked for every method (extrapolation, steps, persistence):

* the engine API on tensors of real MeteoSwiss frames (windows of ``mch_full``);
* ``meteolens nowcast`` on files: real MeteoSwiss frames cropped to a 128 x 128 window and written
  back as ODIM_H5 ``RATE`` composites (the reader tests' writer), with the times, missing pixels
  or dry fields each case needs. The files go through the same readers, job and store as any input.

Covered: irregular time steps and duplicate times (error naming the times), frames out of order
(sorted), a frame with every pixel missing (error naming the file and time), no rain at all (zero
motion, an all-zero nowcast; STEPS must not divide by the zero variance), fewer frames than
needed and mismatched grids.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from nowcast_helpers import mch_files
from odim_files import write_odim_file
from pyproj import CRS, Transformer

from app.cli import main
from engine.errors import DimensionError, JobError
from engine.jobs.nowcast_job import load_frames
from engine.models.nowcast import Extrapolation, Persistence, Steps, StepsParams, estimate_motion, extrapolate
from engine.models.nowcast.steps import ar2_parameters, steps_ensemble
from engine.readers import open_any
from engine.readers.radar_mch import CCS4_PROJ
from engine.storage.zarr_store import open_run_store

METHODS = ("extrapolation", "steps", "persistence")
#: Rows and columns of a 128 x 128 window of ``mch_full`` fully covered by the radars, with rain
#: (35 % of it above 1 mm/h at 17:40). Small, so that every case runs in well under a second.
WINDOW = (slice(300, 428), slice(350, 478))


def _method(name: str) -> Callable[[torch.Tensor, int], torch.Tensor]:
    return {"extrapolation": Extrapolation(), "steps": Steps(n_members=2, seed=3), "persistence": Persistence()}[name]


@pytest.fixture(scope="module")
def rainy(mch_full: np.ndarray) -> torch.Tensor:
    """The four frames on :data:`WINDOW`, ``(4, 128, 128)`` mm/h, NaN-free."""
    return torch.from_numpy(np.ascontiguousarray(mch_full[:, WINDOW[0], WINDOW[1]]))


# --- engine API --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, params",
    [
        ("extrapolation", None),
        ("persistence", None),
        ("steps", StepsParams()),
        # Without probability matching and mask nothing hides a NaN from the AR(2) parameters:
        # this is the configuration that returned all-NaN members before the guard.
        ("steps", StepsParams(probmatching=None, mask_method=None)),
    ],
)
def test_no_rain_gives_zero_motion_and_a_dry_nowcast(
    mch_full: np.ndarray, name: str, params: StepsParams | None
) -> None:
    # A real window at the edge of radar coverage (46 % missing), with the rain removed.
    window = torch.from_numpy(np.ascontiguousarray(mch_full[-3:, 64:192, 64:192]))
    dry = torch.where(torch.isfinite(window), torch.zeros_like(window), window)
    method = Steps(n_members=2, seed=3, params=params) if name == "steps" else _method(name)
    out = method(dry, 3)
    if name != "persistence":
        assert torch.count_nonzero(method.motion(dry[None])) == 0  # type: ignore[attr-defined]
    # Data where every frame the method uses has data; there, exactly 0 mm/h, never NaN.
    used = dry[-1:] if name in ("persistence", "extrapolation") else dry
    covered = torch.isfinite(used).all(dim=0)
    assert covered.sum() > 1000
    expect_shape = (2, 3, 128, 128) if name == "steps" else (3, 128, 128)
    assert out.shape == expect_shape
    torch.testing.assert_close(torch.isfinite(out), covered.expand(expect_shape))
    assert torch.all(out[torch.isfinite(out)] == 0.0)


def test_ar2_parameters_of_an_uncorrelated_level() -> None:
    # gamma1 = 0 is what a level without variance gives; the stationarity bound is 0/0 there.
    phi = ar2_parameters(torch.zeros(2, dtype=torch.float64), torch.tensor([0.0, -0.3], dtype=torch.float64))
    torch.testing.assert_close(phi, torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64))
    # The series used for |gamma1| < 0.01 joins the exact formula continuously.
    g1 = torch.tensor([0.01 - 1e-9, 0.01 + 1e-9, -1e-6], dtype=torch.float64)
    phi = ar2_parameters(g1, torch.full_like(g1, -0.5))
    assert torch.isfinite(phi).all()
    torch.testing.assert_close(phi[0], phi[1], atol=1e-8, rtol=0)


@pytest.mark.parametrize(
    "name, empty, message",
    [
        ("extrapolation", 1, "time 1 has no data"),  # a motion frame (the last 3 of 4 are used)
        ("extrapolation", 3, "time 3 has no data"),  # the start frame
        ("steps", 2, "time 2 has no data"),
        ("persistence", 3, "time 3 has no data"),
    ],
)
def test_all_missing_frame_is_rejected(rainy: torch.Tensor, name: str, empty: int, message: str) -> None:
    frames = rainy.clone()
    frames[empty] = float("nan")
    with pytest.raises(DimensionError, match=message):
        _method(name)(frames, 2)


@pytest.mark.parametrize("name", ["extrapolation", "persistence"])
def test_unused_all_missing_frame_does_not_matter(rainy: torch.Tensor, name: str) -> None:
    # Extrapolation uses the last 3 frames, persistence the last one: an empty older frame is ignored.
    frames = rainy.clone()
    frames[0] = float("nan")
    torch.testing.assert_close(_method(name)(frames, 2), _method(name)(rainy[1:], 2), equal_nan=True)


def test_all_missing_frame_is_rejected_by_the_functions(rainy: torch.Tensor) -> None:
    batch = torch.stack([rainy[:3], rainy[1:]])
    batch[1, 0] = float("nan")
    with pytest.raises(DimensionError, match="batch 1, time 0 has no data.*motion estimation"):
        estimate_motion(batch)
    with pytest.raises(DimensionError, match="batch 1, time 0 has no data.*STEPS"):
        steps_ensemble(batch, torch.zeros(2, 2, 128, 128), 1, 1)
    with pytest.raises(DimensionError, match="field: batch 1 has no data"):
        extrapolate(batch[:, 0], torch.zeros(2, 2, 128, 128), 1)


def test_fewer_frames_and_mismatched_grids(rainy: torch.Tensor) -> None:
    with pytest.raises(DimensionError, match="time >= 2"):
        Extrapolation()(rainy[:1], 2)
    with pytest.raises(DimensionError, match="time >= 3"):
        Steps(n_members=2)(rainy[:2], 2)
    with pytest.raises(DimensionError, match="time >= 1"):
        Persistence()(rainy[:0], 2)
    # A motion field from another grid.
    other = torch.zeros(1, 2, 96, 128)
    with pytest.raises(DimensionError, match="velocity"):
        Extrapolation()(rainy[None], 2, velocity=other)
    with pytest.raises(DimensionError, match="velocity"):
        Steps(n_members=2)(rainy[None], 2, velocity=other)


# --- files and the CLI ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mch_window(data_root: Path, mch_full: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rain rates ``(4, 128, 128)`` of :data:`WINDOW` with their Swiss grid ``x``, ``y`` (metres)."""
    grid = open_any(mch_files(data_root, 20, 1)[0], variables=["precip_rate"])
    rate = np.ascontiguousarray(mch_full[:, WINDOW[0], WINDOW[1]])
    return rate, grid["x"].values[WINDOW[1]], grid["y"].values[WINDOW[0]]


@pytest.fixture
def write_frames(tmp_path: Path, mch_window: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Callable[..., list[Path]]:
    """``write_frames(fields, times, shift=0)``: one ODIM ``RATE`` file per field, at ``HH:MM`` times.

    ``fields`` are ``(128, 128)`` mm/h arrays on :data:`WINDOW` (NaN = no data, 0 = no rain);
    ``shift`` moves the grid east by that many pixels (same size, another window).
    """
    write = write_odim_file
    _, x, y = mch_window
    crs = CRS.from_proj4(CCS4_PROJ)
    to_lonlat = Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
    folder = tmp_path / "frames"
    folder.mkdir()

    def _write(fields: list[np.ndarray], times: list[str], shift: int = 0) -> list[Path]:
        xs = x + 1000.0 * shift
        west, east, north, south = xs[0] - 500, xs[-1] + 500, y[0] + 500, y[-1] - 500
        corners = {
            k: to_lonlat.transform(*v)
            for k, v in {"UL": (west, north), "LL": (west, south), "UR": (east, north), "LR": (east, south)}.items()
        }
        paths = []
        for i, (field, hhmm) in enumerate(zip(fields, times, strict=True)):
            # ODIM 2.3-style float RATE with flag values for "no data" and "no echo".
            raw = np.where(np.isnan(field), -9999000.0, np.where(field == 0, -8888000.0, field)).astype("float32")
            data = dict(data=raw, quantity="RATE", gain=1.0, offset=0.0, nodata=-9999000.0, undetect=-8888000.0)
            path = folder / f"mch_{i}_{hhmm.replace(':', '')}_{shift}.h5"
            write(
                path,
                datasets=[[data]],
                projdef=CCS4_PROJ,
                corners=corners,
                xscale=1000.0,
                yscale=1000.0,
                date="20150515",
                time=hhmm.replace(":", "") + "00",
            )
            paths.append(path)
        return paths

    return _write


def _nowcast(capsys: pytest.CaptureFixture[str], store: Path, files: list[Path], method: str) -> tuple[int, str]:
    argv = ["nowcast", "--input", *map(str, files), "--method", method, "--lead-steps", "2"]
    argv += ["--device", "cpu", "--store", str(store), "--json"]
    if method == "steps":
        argv += ["--members", "2"]
    code = main(argv)
    out, err = capsys.readouterr()
    if code == 0:
        return code, out
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("meteolens: error:"), err
    return code, err


@pytest.mark.parametrize("method", METHODS)
def test_cli_irregular_time_step_names_the_gap(
    write_frames: Callable[..., list[Path]],
    mch_window: tuple[np.ndarray, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    method: str,
) -> None:
    rate = mch_window[0]
    files = write_frames(list(rate[:3]), ["16:00", "16:05", "16:15"])
    code, err = _nowcast(capsys, tmp_path / "store", files, method)
    assert code == 2
    assert "2015-05-15T16:05 -> 2015-05-15T16:15 is 10 min where the other steps are 5 min" in err


def test_cli_duplicate_time_names_the_files(
    write_frames: Callable[..., list[Path]],
    mch_window: tuple[np.ndarray, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rate = mch_window[0]
    files = write_frames(list(rate[:3]), ["16:00", "16:05", "16:05"])
    code, err = _nowcast(capsys, tmp_path / "store", files, "extrapolation")
    assert code == 2
    assert f"two frames at 2015-05-15T16:05 ({files[1].name}, {files[2].name})" in err


def test_cli_sorts_frames_given_out_of_order(
    write_frames: Callable[..., list[Path]],
    mch_window: tuple[np.ndarray, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rate = mch_window[0]
    files = write_frames(list(rate[:3]), ["16:00", "16:05", "16:10"])
    runs = {}
    for label, order in (("sorted", files), ("shuffled", [files[2], files[0], files[1]])):
        code, out = _nowcast(capsys, tmp_path / "store", order, "extrapolation")
        assert code == 0, out
        runs[label] = open_run_store(json.loads(out)["path"])
    for ds in runs.values():
        assert ds["init_time"].values == np.datetime64("2015-05-15T16:10")  # the latest frame
    np.testing.assert_array_equal(runs["shuffled"]["precip_rate"].values, runs["sorted"]["precip_rate"].values)
    assert np.nanmax(runs["sorted"]["precip_rate"].values) > 1.0


@pytest.mark.parametrize(("method", "empty"), [("extrapolation", 1), ("steps", 2), ("persistence", 0)])
def test_cli_all_missing_frame_names_file_and_time(
    write_frames: Callable[..., list[Path]],
    mch_window: tuple[np.ndarray, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    method: str,
    empty: int,
) -> None:
    fields = list(mch_window[0][:3].copy())
    fields[empty] = np.full_like(fields[empty], np.nan)
    times = ["16:00", "16:05", "16:10"]
    files = write_frames(fields, times)
    code, err = _nowcast(capsys, tmp_path / "store", files, method)
    assert code == 2
    # Every input frame is checked, also one that persistence would not use.
    assert f"frame at 2015-05-15T{times[empty]} ({files[empty].name}) has no data" in err


@pytest.mark.parametrize("method", METHODS)
def test_cli_no_rain_gives_an_all_zero_nowcast(
    write_frames: Callable[..., list[Path]],
    mch_window: tuple[np.ndarray, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    method: str,
) -> None:
    dry = np.zeros_like(mch_window[0][0])  # the window is fully covered by the radars
    files = write_frames([dry, dry, dry], ["16:00", "16:05", "16:10"])
    code, out = _nowcast(capsys, tmp_path / "store", files, method)
    assert code == 0, out
    rate = open_run_store(json.loads(out)["path"])["precip_rate"]
    assert rate.sizes["lead_time"] == 2 and rate.sizes["y"] == 128 and rate.sizes["x"] == 128
    if method == "steps":
        assert rate.sizes["member"] == 2
    values = rate.values
    assert np.isfinite(values).all() and np.all(values == 0.0)


def test_cli_mismatched_grids_and_too_few_frames(
    write_frames: Callable[..., list[Path]],
    mch_window: tuple[np.ndarray, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rate = mch_window[0]
    files = write_frames(list(rate[:2]), ["16:00", "16:05"])
    # Same size and projection, but a window 3 km further east.
    shifted = write_frames([rate[2]], ["16:10"], shift=3)
    code, err = _nowcast(capsys, tmp_path / "store", [*files, *shifted], "extrapolation")
    assert code == 2 and "do not share one grid" in err
    # The job checks the frame count after reading too (the CLI checks the file count first).
    with pytest.raises(JobError, match="steps needs at least 3 frames, got 2"):
        load_frames(files, 3, "steps")
