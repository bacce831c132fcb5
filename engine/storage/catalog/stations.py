"""The ``stations`` and ``observations`` tables: station metadata and observed time series.

Public API: ``StationsTable`` (mixed into :class:`~engine.storage.catalog.Catalog`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from engine.errors import StorageError
from engine.storage.catalog.base import CatalogBase
from engine.storage.catalog.tables import OBS_COLS, STATION_COLS, period_clause, validated_frame, where_clause


class StationsTable(CatalogBase):
    """Methods of :class:`~engine.storage.catalog.Catalog` on the ``stations`` and ``observations`` tables."""

    def upsert_stations(self, df: pd.DataFrame) -> int:
        """Insert stations or update them (by ``station_id``).

        Parameters
        ----------
        df : DataFrame
            Required ``station_id, lat, lon`` (degrees north/east); optional ``name``,
            ``elevation`` (m above sea level), ``source``.

        Returns
        -------
        int
            Number of stations written.

        Raises
        ------
        StorageError
            Missing columns, or coordinates outside [-90, 90] / [-180, 360].
        """
        frame = validated_frame(df, STATION_COLS, required=("station_id", "lat", "lon"), table="stations")
        lat = pd.to_numeric(frame["lat"], errors="coerce")
        lon = pd.to_numeric(frame["lon"], errors="coerce")
        bad = ~(lat.between(-90, 90) & lon.between(-180, 360))
        if bad.any():
            ids = ", ".join(map(str, frame.loc[bad, "station_id"].head(5)))
            raise StorageError(
                f"stations: latitude/longitude missing or out of range for {int(bad.sum())} rows ({ids})"
            )
        frame = frame.drop_duplicates(subset=["station_id"], keep="last")
        with self._transaction() as con:
            self._replace_rows(con, "stations", frame, STATION_COLS, key=("station_id",))
        return len(frame)

    def stations(self, source: str | None = None) -> pd.DataFrame:
        """Stations (all, or those of one ``source``), sorted by id."""
        where, params = where_clause({} if source is None else {"source": source}, STATION_COLS, "station column")
        with self._connect(read_only=True) as con:
            return con.execute(f"SELECT * FROM stations{where} ORDER BY station_id", params).df()

    def insert_observations(self, df: pd.DataFrame) -> int:
        """Insert station observations (long format); an existing (station, variable, time) is replaced.

        Parameters
        ----------
        df : DataFrame
            Columns ``station_id, time, variable, value``; ``variable`` a canonical name with
            canonical units (:mod:`engine.lexicon`); ``time`` datetime (aware → UTC).

        Returns
        -------
        int
            Number of rows written.

        Raises
        ------
        StorageError
            Missing or unknown columns, or stations that are not catalogued (upsert them first).
        """
        frame = validated_frame(df, OBS_COLS, required=tuple(OBS_COLS), table="observations")
        frame = frame.drop_duplicates(subset=["station_id", "variable", "time"], keep="last")
        with self._transaction() as con:
            self._require_stations(con, frame["station_id"], "observations")
            self._replace_rows(con, "observations", frame, OBS_COLS, key=("station_id", "variable", "time"))
        return len(frame)

    def observations(self, station_id: str, variable: str, start: Any = None, end: Any = None) -> pd.DataFrame:
        """Observations of one station and variable between ``start`` and ``end`` (inclusive), by time.

        Returns
        -------
        DataFrame
            Columns ``station_id, time, variable, value``.
        """
        period, params = period_clause("time", start, end)
        with self._connect(read_only=True) as con:
            return con.execute(
                f"SELECT * FROM observations WHERE station_id = ? AND variable = ?{period} ORDER BY time",
                [station_id, variable, *params],
            ).df()

    def observed_variables(self, station_id: str) -> list[str]:
        """The variables observed at a station, sorted (empty for an unknown station)."""
        with self._connect(read_only=True) as con:
            rows = con.execute(
                "SELECT DISTINCT variable FROM observations WHERE station_id = ? ORDER BY variable", [station_id]
            ).fetchall()
        return [str(r[0]) for r in rows]

    def observation_period(self, station_id: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """First and last observation time of a station (UTC, no zone); ``None`` when it has none."""
        with self._connect(read_only=True) as con:
            row = con.execute(
                "SELECT min(time), max(time) FROM observations WHERE station_id = ?", [station_id]
            ).fetchone()
        if row is None or row[0] is None:
            return None
        return pd.Timestamp(row[0]), pd.Timestamp(row[1])

    def observation_count(self, station_id: str) -> int:
        """Number of observations (all variables and times) of a station."""
        with self._connect(read_only=True) as con:
            row = con.execute("SELECT count(*) FROM observations WHERE station_id = ?", [station_id]).fetchone()
        return 0 if row is None else int(row[0])

    def observation_table(
        self, station_id: str, start: Any = None, end: Any = None, variables: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Observations of a station as a table: one row per time, one column per variable.

        Parameters
        ----------
        station_id : str
            The station.
        start, end : datetime-like, optional
            Period (inclusive); aware times are converted to UTC.
        variables : sequence of str, optional
            Only these variables (all by default).

        Returns
        -------
        DataFrame
            Indexed by ``time`` (sorted), columns the observed variables (sorted; canonical
            units), NaN where a variable has no value at a time; times and variables without
            any value are left out. Empty (no columns) when the station has no observation in
            the period.
        """
        sql = "SELECT time, variable, value FROM observations WHERE station_id = ?"
        params: list[Any] = [station_id]
        if variables is not None:
            names = [str(v) for v in variables]
            sql += f" AND variable IN ({', '.join('?' * len(names))})" if names else " AND FALSE"
            params.extend(names)
        period, period_params = period_clause("time", start, end)
        with self._connect(read_only=True) as con:
            long = con.execute(sql + period, [*params, *period_params]).df()
        if long.empty:
            return pd.DataFrame(index=pd.DatetimeIndex([], name="time"))
        # (station, variable, time) is the primary key: the mean of pivot_table never averages
        # two values; it is used for leaving out the times and variables without any value.
        return long.pivot_table(index="time", columns="variable", values="value")
