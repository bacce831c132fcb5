"""What the verification pipeline returns: :class:`VerificationResult`, :class:`QualityResult`, summary tables."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from verification.radar_quality import QualityReport


@dataclass
class VerificationResult:
    """What :func:`verify_run` computed (and wrote).

    Attributes
    ----------
    run_id, reference, variable : str
        The run, the reference label (``dataset:<name>``, ``run:<id>`` or ``files:<spec>``) and
        the variable verified.
    case : {"grid", "latlon", "stations"}
        Which comparison was made (module docstring).
    scores : DataFrame
        Tidy scores of the run and, when computed, of its persistence baseline (rows whose
        ``run_id`` is :attr:`baseline_run_id`).
    baseline_run_id : str or None
        The catalogued baseline run, when persistence was scored.
    point_forecasts : DataFrame or None
        Station cases: the forecasts matched to the stations.
    notes : list of str
        What was skipped and why (e.g. no climatology for the ACC).
    obs_time : xarray.DataArray or None
        The reference time used for each lead time: on ``lead_time`` (gridded cases; only the
        lead times verified) or ``(lead_time, station)`` (stations; NaT where a station had no
        valid report within the tolerance), with the ``valid_time`` coordinate. Not stored:
        the catalogue has no column for it.
    observations : xarray.DataArray or None
        Station cases: the observations scored, on ``(lead_time, station)``, with the
        coordinates ``valid_time`` and ``obs_time``.
    """

    run_id: str
    reference: str
    variable: str
    case: str
    scores: pd.DataFrame
    baseline_run_id: str | None = None
    point_forecasts: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    obs_time: xr.DataArray | None = None
    observations: xr.DataArray | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-able summary: run, reference, variable, case, notes and the scores as records."""
        records = []
        for row in self.scores.to_dict("records"):
            rec: dict[str, Any] = {}
            for key, value in row.items():
                if key == "lead_time":
                    rec[key] = None if pd.isna(value) else pd.Timedelta(value).isoformat()
                elif isinstance(value, float | np.floating):
                    rec[key] = float(value) if math.isfinite(value) else None
                else:
                    rec[key] = None if value is None or (not isinstance(value, str) and pd.isna(value)) else value
            rec["lead_minutes"] = (
                None if rec["lead_time"] is None else pd.Timedelta(row["lead_time"]).total_seconds() / 60.0
            )
            records.append(rec)
        return {
            "run_id": self.run_id,
            "reference": self.reference,
            "variable": self.variable,
            "case": self.case,
            "baseline_run_id": self.baseline_run_id,
            "notes": list(self.notes),
            "scores": records,
        }


@dataclass
class QualityResult:
    """What :func:`assess_run` computed (and wrote).

    Attributes
    ----------
    run_id, reference : str
        The run and the reference label (as in :class:`VerificationResult`).
    sequence : QualityReport
        The report of the whole sequence (``scope="sequence"``).
    frames : list of QualityReport
        One report per lead time, in lead-time order.
    """

    run_id: str
    reference: str
    sequence: QualityReport
    frames: list[QualityReport]

    def to_json(self) -> dict[str, Any]:
        """JSON-able reports (lead times as ISO 8601 durations)."""

        def rec(report: QualityReport) -> dict[str, Any]:
            r = report.to_record()
            r["lead_time"] = None if r["lead_time"] is None else pd.Timedelta(r["lead_time"]).isoformat()
            return r

        return {
            "run_id": self.run_id,
            "reference": self.reference,
            "sequence": rec(self.sequence),
            "frames": [rec(f) for f in self.frames],
        }


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Lead time × metric table of tidy scores (one column per metric, threshold and scale).

    Parameters
    ----------
    scores : DataFrame
        Tidy scores of one run (as in :attr:`VerificationResult.scores`).

    Returns
    -------
    DataFrame
        Index: lead time in minutes; columns ``metric``, ``metric@threshold`` or
        ``metric@threshold/scale`` (the FSS window in grid points), in the order of first
        appearance. Only domain scores (``region`` missing) are tabulated; empty when none.
    """
    df = scores[scores["region"].isna()].copy() if "region" in scores else scores.copy()

    def label(r: Mapping[str, Any]) -> str:
        name = str(r["metric"])
        if pd.notna(r["threshold"]):
            name += f"@{r['threshold']:g}"
        if pd.notna(r["scale"]):
            name += f"/{r['scale']:g}"
        return name

    if df.empty:
        return pd.DataFrame()
    df["column"] = [label(r) for r in df.to_dict("records")]
    df["lead_min"] = pd.to_timedelta(df["lead_time"]).dt.total_seconds() / 60.0
    order = list(dict.fromkeys(df["column"]))
    table = df.pivot_table(index="lead_min", columns="column", values="value", aggfunc="first", dropna=False)
    return table.reindex(columns=order)
