"""Quality analysis: RadarQA-style frame and sequence reports of a nowcast run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from engine.errors import CoordError
from engine.storage.catalog import Catalog
from verification.pipeline.grids import _case_of, _same_grid, grid_spacing_km
from verification.pipeline.options import VerificationError, parse_time_tolerance
from verification.pipeline.references import open_reference
from verification.pipeline.results import QualityResult
from verification.pipeline.runs import _open_run, _pick_variable, _single_init, _valid_times
from verification.pipeline.times import _require_times
from verification.radar_quality import QualityConfig, assess_sequence

# --------------------------------------------------------------------------------------------
# Quality analysis
# --------------------------------------------------------------------------------------------


def assess_run(
    catalog: Catalog,
    run_id: str,
    against: str | Sequence[str],
    *,
    data_root: Path | None,
    config: QualityConfig | None = None,
    variable: str = "precip_rate",
    write: bool = True,
    time_tolerance: pd.Timedelta | str | None = None,
) -> QualityResult:
    """RadarQA-style quality reports of a nowcast run: one per frame and one for the sequence.

    The forecast and the observed frames at the same valid times (exactly, or the nearest
    frame within ``time_tolerance``, as in :func:`verify_run`; same grid) go to
    :func:`verification.radar_quality.assess_sequence`. An ensemble is assessed through its
    mean, so its sharpness rating describes the mean's smoothness. Without ``config`` the grid
    spacing is read from the run's ``x`` coordinate (radar defaults otherwise). Every report is
    stored with :meth:`Catalog.insert_quality_report` under the reference label.

    Parameters
    ----------
    catalog : Catalog
        The catalogue holding the run; reports go there.
    run_id : str
        A succeeded nowcast run.
    against : str or sequence of str
        Observed frames: sample dataset, files or another run.
    data_root : Path or None
        The sample data folder.
    config : QualityConfig, optional
        Thresholds, FSS window and spacing.
    variable : str
        The rain-rate variable (mm h-1).
    write : bool
        Store the reports.
    time_tolerance : Timedelta or str, optional
        Largest distance between a valid time and the observed frame used for it (see
        :attr:`VerifyOptions.time_tolerance`); default 0, an exact match.

    Returns
    -------
    QualityResult

    Raises
    ------
    UnknownRunError, VerificationError, CoordError, ReaderError
        As in :func:`verify_run`.
    """
    rec = catalog.get_run(run_id)
    ds = _open_run(rec)
    variable = _pick_variable(ds, variable, run_id)
    fc = _single_init(ds[variable], run_id)
    ref = open_reference(against, variable, catalog=catalog, data_root=data_root)
    if ref.frames is None:
        raise VerificationError(f"{ref.label}: quality analysis needs gridded observations, not stations")
    case = _case_of(fc)
    grid = ("y", "x") if case == "grid" else ("lat", "lon")
    valid = _valid_times(fc, rec)
    frame_times = _require_times(ref.frames, valid, run_id, parse_time_tolerance(time_tolerance))
    if not _same_grid(ref.frames.template, fc, grid):
        raise CoordError(f"{ref.label}: grid {dict(ref.frames.template.sizes)} differs from run {run_id}'s")
    if "member" in fc.dims:
        fc = fc.mean("member") if fc.sizes["member"] > 1 else fc.isel(member=0, drop=True)
    fcst = fc.drop_vars([c for c in fc.coords if c not in fc.dims]).load()
    obs = ref.frames.stack(frame_times, "lead_time", fcst["lead_time"].values)
    obs = obs.assign_coords({d: fcst[d].values for d in grid if d in fcst.coords}).load()
    if config is None:
        spacing = grid_spacing_km(fcst)
        # the sharpness cut-off must exceed the shortest resolved wave (2 cells)
        config = QualityConfig(spacing_km=spacing, sharp_wavelength_km=max(16.0, 4.0 * spacing))
    sequence, frames = assess_sequence(fcst, obs, config=config)
    if write:
        for report in (sequence, *frames):
            catalog.insert_quality_report(run_id, reference=ref.label, **report.to_record())
    return QualityResult(run_id, ref.label, sequence, frames)
