"""The ``point_forecasts`` and ``scores`` tables: forecasts at stations and verification scores.

Public API: ``ForecastsTable`` (mixed into :class:`~engine.storage.catalog.Catalog`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from engine.errors import StorageError
from engine.storage.catalog.base import CatalogBase
from engine.storage.catalog.tables import (
    POINT_COLS,
    SCORE_COLS,
    SCORE_KEY,
    utc_naive,
    utc_now,
    validated_frame,
    where_clause,
)


class ForecastsTable(CatalogBase):
    """Methods of :class:`~engine.storage.catalog.Catalog` on the ``point_forecasts`` and ``scores`` tables."""

    def insert_scores(self, df: pd.DataFrame) -> int:
        """Insert verification scores (long format); a score with the same key replaces the old one.

        Parameters
        ----------
        df : DataFrame
            Required columns ``run_id, variable, metric, value``; optional ``reference`` (run id
            or dataset the run was verified against), ``lead_time`` (timedelta64; missing =
            aggregated over lead times), ``threshold`` (units of the variable), ``scale``
            (neighbourhood size, e.g. FSS window in grid points or km), ``region``, ``created``.
            The key is ``run_id, reference, variable, lead_time, metric, threshold, scale, region``.

        Returns
        -------
        int
            Number of rows written.

        Raises
        ------
        StorageError
            Missing or unknown columns, a run that is not catalogued, a non-timedelta lead time.
        """
        frame = validated_frame(df, SCORE_COLS, required=("run_id", "variable", "metric", "value"), table="scores")
        frame["created"] = frame["created"].fillna(pd.Timestamp(utc_now()))
        frame = frame.drop_duplicates(subset=list(SCORE_KEY), keep="last")
        with self._transaction() as con:
            self._require_runs(con, frame["run_id"], "scores")
            self._replace_rows(con, "scores", frame, SCORE_COLS, key=SCORE_KEY)
        return len(frame)

    def scores(self, run_id: str | Sequence[str] | None = None, **filters: Any) -> pd.DataFrame:
        """Scores, optionally filtered.

        Parameters
        ----------
        run_id : str or sequence of str, optional
            Only these runs.
        **filters
            Column = value filters on ``reference, variable, lead_time, metric, threshold, scale,
            region``; a list or tuple means "any of", ``None`` means "is missing".

        Returns
        -------
        DataFrame
            Columns of the ``scores`` table, sorted by run, variable, metric, lead time.

        Raises
        ------
        UnknownNameError
            A filter names a column that does not exist.
        """
        if run_id is not None:
            filters = {"run_id": run_id, **filters}
        where, params = where_clause(filters, SCORE_COLS, "score column")
        sql = f"SELECT {', '.join(SCORE_COLS)} FROM scores{where} ORDER BY run_id, variable, metric, lead_time"
        with self._connect(read_only=True) as con:
            return con.execute(sql, params).df()

    def insert_point_forecasts(self, df: pd.DataFrame) -> int:
        """Insert forecasts matched to stations; replaces earlier rows of the same run, station and variable.

        Parameters
        ----------
        df : DataFrame
            Required ``run_id, station_id, init_time, lead_time`` (timedelta64), ``variable,
            value``; optional ``member`` (ensemble member number; missing for deterministic runs)
            and ``valid_time`` (computed as ``init_time + lead_time`` when absent).

        Returns
        -------
        int
            Number of rows written.

        Raises
        ------
        StorageError
            Missing columns, unknown runs or stations, ``valid_time`` ≠ ``init_time + lead_time``.
        """
        required = ("run_id", "station_id", "init_time", "lead_time", "variable", "value")
        frame = validated_frame(df, POINT_COLS, required=required, table="point_forecasts")
        expected = frame["init_time"] + frame["lead_time"]
        if "valid_time" in df:
            mismatch = frame["valid_time"].notna() & (frame["valid_time"] != expected)
            if mismatch.any():
                raise StorageError(
                    f"point_forecasts: valid_time != init_time + lead_time in {int(mismatch.sum())} rows"
                )
        frame["valid_time"] = expected
        with self._transaction() as con:
            self._require_runs(con, frame["run_id"], "point forecasts")
            self._require_stations(con, frame["station_id"], "point forecasts")
            self._replace_rows(con, "point_forecasts", frame, POINT_COLS, key=("run_id", "station_id", "variable"))
        return len(frame)

    def point_forecasts(self, run_id: str, station_id: str | None = None) -> pd.DataFrame:
        """Point forecasts of a run (at one station, or all), sorted by station, variable, member, time."""
        sql = "SELECT * FROM point_forecasts WHERE run_id = ?"
        params: list[Any] = [run_id]
        if station_id is not None:
            sql += " AND station_id = ?"
            params.append(station_id)
        sql += " ORDER BY station_id, variable, member NULLS FIRST, init_time, lead_time"
        with self._connect(read_only=True) as con:
            return con.execute(sql, params).df()

    def station_forecasts(self, station_id: str, variable: str, start: Any, end: Any) -> pd.DataFrame:
        """Point forecasts of every run at one station, for one variable, valid in a period.

        Parameters
        ----------
        station_id, variable : str
            The station and the canonical variable.
        start, end : datetime-like
            Valid-time period (inclusive); aware times are converted to UTC.

        Returns
        -------
        DataFrame
            Columns ``run_id, valid_time, lead_time, member, value``, sorted by run, member
            and valid time.
        """
        with self._connect(read_only=True) as con:
            return con.execute(
                "SELECT run_id, valid_time, lead_time, member, value FROM point_forecasts"
                " WHERE station_id = ? AND variable = ? AND valid_time BETWEEN ? AND ?"
                " ORDER BY run_id, member, valid_time",
                [station_id, variable, utc_naive(start, "start"), utc_naive(end, "end")],
            ).df()

    def score_counts(self) -> pd.DataFrame:
        """How many scores each (run kind, variable, metric) has.

        Returns
        -------
        DataFrame
            Columns ``kind, variable, metric, n``, sorted by kind, variable and metric; only
            combinations with scores appear.
        """
        with self._connect(read_only=True) as con:
            return con.execute(
                "SELECT r.kind, s.variable, s.metric, count(*) AS n FROM scores s JOIN runs r USING (run_id)"
                " GROUP BY ALL ORDER BY r.kind, s.variable, s.metric"
            ).df()
