"""The ``quality_reports`` table: RadarQA-style assessments of nowcast frames and sequences.

Public API: ``QualityTable`` (mixed into :class:`~engine.storage.catalog.Catalog`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from engine.errors import StorageError
from engine.storage.catalog.base import CatalogBase
from engine.storage.catalog.tables import utc_now
from engine.storage.jsonable import jsonable


class QualityTable(CatalogBase):
    """Methods of :class:`~engine.storage.catalog.Catalog` on the ``quality_reports`` table."""

    def insert_quality_report(
        self,
        run_id: str,
        *,
        scope: str,
        ratings: Mapping[str, Any],
        grade: float | None,
        text: str,
        reference: str | None = None,
        lead_time: Any = None,
    ) -> None:
        """Store one quality report (RadarQA-style) of a run; replaces a report with the same key.

        Parameters
        ----------
        run_id : str
            The forecast run assessed.
        scope : {"frame", "sequence"}
            A single lead time (``frame``) or the whole sequence.
        ratings : mapping
            Attribute name → rating (1-5) and any numbers behind it; stored as JSON.
        grade : float or None
            Overall grade (1-5).
        text : str
            The written assessment.
        reference : str, optional
            What the run was compared with (observed radar product, analysis run id).
        lead_time : timedelta-like, optional
            The frame's lead time (``scope="frame"``); ``None`` for sequences.

        Raises
        ------
        StorageError
            Unknown run, bad scope, ratings not JSON-able, frame without lead time.
        """
        if scope not in ("frame", "sequence"):
            raise StorageError(f"scope={scope!r}: expected 'frame' or 'sequence'")
        if scope == "frame" and lead_time is None:
            raise StorageError(f"quality report of run {run_id}: scope='frame' needs a lead_time")
        if not isinstance(ratings, Mapping):
            raise StorageError(f"ratings: expected a mapping of attribute → rating, got {type(ratings).__name__}")
        try:
            ratings_json = json.dumps(jsonable(dict(ratings)), allow_nan=False)
        except (TypeError, ValueError) as err:
            raise StorageError(f"ratings of run {run_id}: {err}") from err
        lead = None
        if lead_time is not None:
            try:
                lead = pd.Timedelta(lead_time).to_pytimedelta()
            except (TypeError, ValueError) as err:
                raise StorageError(f"lead_time={lead_time!r}: not a time interval ({err})") from err
        grade_value = None if grade is None else float(grade)
        with self._transaction() as con:
            self._require_runs(con, pd.Series([run_id]), "quality report")
            con.execute(
                "DELETE FROM quality_reports WHERE run_id = ? AND reference IS NOT DISTINCT FROM ?"
                " AND scope = ? AND lead_time IS NOT DISTINCT FROM ?",
                [run_id, reference, scope, lead],
            )
            con.execute(
                "INSERT INTO quality_reports VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, reference, scope, lead, ratings_json, grade_value, str(text), utc_now()],
            )

    def quality_reports(self, run_id: str) -> pd.DataFrame:
        """Quality reports of a run, sequence first then frames by lead time.

        Returns
        -------
        DataFrame
            Columns ``run_id, reference, scope, lead_time, ratings`` (decoded to dicts),
            ``grade, text, created``.
        """
        with self._connect(read_only=True) as con:
            out = con.execute(
                "SELECT * FROM quality_reports WHERE run_id = ? ORDER BY scope DESC, lead_time NULLS FIRST, reference",
                [run_id],
            ).df()
        out["ratings"] = [json.loads(r) for r in out["ratings"]]
        return out
