"""Column declarations and the validation every bulk write shares (internal to the catalogue).

Every insert SELECTs from the registered ``incoming`` frame with explicit casts, so a pandas
column that is all None, or pandas' string dtype, lands with the declared type. Times are
stored as UTC without a zone (``TIMESTAMP``); aware inputs are converted to UTC. Lead times
are ``INTERVAL`` and come back as ``timedelta64``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from engine.errors import StorageError, UnknownNameError

STATION_COLS = {
    "station_id": "VARCHAR",
    "name": "VARCHAR",
    "lat": "DOUBLE",
    "lon": "DOUBLE",
    "elevation": "DOUBLE",
    "source": "VARCHAR",
}
OBS_COLS = {"station_id": "VARCHAR", "time": "TIMESTAMP", "variable": "VARCHAR", "value": "DOUBLE"}
POINT_COLS = {
    "run_id": "VARCHAR",
    "station_id": "VARCHAR",
    "init_time": "TIMESTAMP",
    "lead_time": "INTERVAL",
    "valid_time": "TIMESTAMP",
    "variable": "VARCHAR",
    "value": "DOUBLE",
    "member": "INTEGER",
}
SCORE_COLS = {
    "run_id": "VARCHAR",
    "reference": "VARCHAR",
    "variable": "VARCHAR",
    "lead_time": "INTERVAL",
    "metric": "VARCHAR",
    "threshold": "DOUBLE",
    "scale": "DOUBLE",
    "region": "VARCHAR",
    "value": "DOUBLE",
    "created": "TIMESTAMP",
}
#: Columns identifying one score: re-inserting a score with the same key replaces it.
SCORE_KEY = ("run_id", "reference", "variable", "lead_time", "metric", "threshold", "scale", "region")


def utc_now() -> dt.datetime:
    """Current UTC time without zone, the catalogue's convention."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """The value of a one-row query (an aggregate such as ``SELECT max(...)``)."""
    row = con.execute(sql).fetchone()
    if row is None:
        raise StorageError(f"no row from {sql!r}")
    return row[0]


def utc_naive(value: Any, what: str) -> dt.datetime | None:
    """A timestamp-like value as a naive UTC datetime (aware values converted to UTC)."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as err:
        raise StorageError(f"{what}={value!r}: not a time ({err})") from err
    if ts is pd.NaT:
        return None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime(warn=False)


def period_clause(column: str, start: Any, end: Any) -> tuple[str, list[Any]]:
    """``" AND column >= ? AND column <= ?"`` for the bounds given (inclusive), with their parameters as naive UTC."""
    sql, params = "", []
    if start is not None:
        sql += f" AND {column} >= ?"
        params.append(utc_naive(start, "start"))
    if end is not None:
        sql += f" AND {column} <= ?"
        params.append(utc_naive(end, "end"))
    return sql, params


def timestamp_or_none(value: Any) -> pd.Timestamp | None:
    """A stored time as a ``Timestamp`` (``None`` for a missing one)."""
    return None if value is None or value is pd.NaT else pd.Timestamp(value)


def select_incoming(columns: Mapping[str, str]) -> str:
    """``SELECT`` from the registered ``incoming`` frame with each column cast to its declared type."""
    return "SELECT " + ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in columns.items()) + " FROM incoming"


def validated_frame(
    df: pd.DataFrame, columns: Mapping[str, str], *, required: Sequence[str], table: str
) -> pd.DataFrame:
    """Validate ``df`` for ``table`` and return a copy with every column, times as naive UTC."""
    if not isinstance(df, pd.DataFrame):
        raise StorageError(f"{table}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    unknown = [str(c) for c in df.columns if c not in columns]
    if missing or unknown:
        raise StorageError(
            f"{table}: missing columns {missing or '[]'}, unknown columns {unknown or '[]'}; "
            f"expected {list(columns)} with {list(required)} required"
        )
    frame = pd.DataFrame(index=range(len(df)))
    for col, sql_type in columns.items():
        if col not in df.columns:
            frame[col] = None
            continue
        values = df[col].reset_index(drop=True)
        # Missing values are data in value columns (a score that could not be computed) but
        # corrupt the key columns (ids, names, times).
        if col in required and sql_type != "DOUBLE" and values.isna().any():
            raise StorageError(f"{table}: column {col!r} has {int(values.isna().sum())} missing values")
        if sql_type == "TIMESTAMP":
            values = _datetime_column(values, table, col)
        elif sql_type == "INTERVAL":
            values = _timedelta_column(values, table, col)
        frame[col] = values
    return frame


def where_clause(filters: Mapping[str, Any], columns: Mapping[str, str], what: str) -> tuple[str, list[Any]]:
    """``WHERE`` text and parameters of column = value filters (a list means "any of", ``None`` "is missing")."""
    clauses, params = [], []
    for col, value in filters.items():
        if col not in columns:
            raise UnknownNameError(what, col, columns)
        if value is None:
            clauses.append(f"{col} IS NULL")
        elif isinstance(value, list | tuple | set | frozenset | np.ndarray | pd.Index):
            values = [_param(v) for v in value]
            clauses.append(f"{col} IN ({', '.join('?' * len(values))})" if values else "FALSE")
            params.extend(values)
        else:
            clauses.append(f"{col} = ?")
            params.append(_param(value))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _param(value: Any) -> Any:
    """A filter value as a DuckDB parameter (numpy scalars unwrapped, times as naive UTC)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timedelta | np.timedelta64):
        return pd.Timedelta(value).to_pytimedelta()
    if isinstance(value, dt.datetime | np.datetime64):
        return utc_naive(value, "filter")
    return value


def _datetime_column(values: pd.Series, table: str, col: str) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values
    if values.isna().all():
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
    try:
        converted = pd.to_datetime(values, utc=True)
    except (TypeError, ValueError) as err:
        raise StorageError(f"{table}: column {col!r} is not a time ({err})") from err
    return converted.dt.tz_localize(None)


def _timedelta_column(values: pd.Series, table: str, col: str) -> pd.Series:
    if pd.api.types.is_timedelta64_dtype(values.dtype):
        return values
    if values.isna().all():
        return pd.Series(pd.NaT, index=values.index, dtype="timedelta64[us]")
    if pd.api.types.is_numeric_dtype(values.dtype):
        # A bare number could be hours, minutes or steps; refusing it beats guessing wrong.
        raise StorageError(
            f"{table}: column {col!r} must be timedelta64, got {values.dtype} "
            "(convert with pd.to_timedelta(hours, unit='h'))"
        )
    try:
        return pd.to_timedelta(values)
    except (TypeError, ValueError) as err:
        raise StorageError(f"{table}: column {col!r} is not a time interval ({err})") from err
