"""Conversion of attribute and parameter values into strict JSON.

Run-store attributes (zarr v3 metadata is JSON), catalogue ``parameters`` columns and job
spec parameters all need plain JSON values; this is the one place that decides how numpy,
pandas, pathlib and datetime values are spelled.

Public API: ``jsonable``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """Convert ``value`` into plain JSON types (dict, list, str, int, float, bool, None).

    Paths become strings, tuples/sets become lists (sets sorted, for a stable result),
    numpy scalars and arrays become Python numbers and lists, dates and times become ISO 8601
    strings (``numpy.datetime64``/``pandas.Timestamp`` included), timedeltas become ISO 8601
    durations (``"P0DT6H0M0S"``), enums become their value
    and nested dataclasses become dicts. Non-finite floats become the strings ``"NaN"``,
    ``"Infinity"`` and ``"-Infinity"`` (the spelling zarr v3 uses), because strict JSON has no
    such numbers.

    Raises
    ------
    TypeError
        If a value has no JSON representation (an open file, a tensor...); the message names its type.
    """
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.generic):
        if isinstance(value, np.datetime64 | np.timedelta64):
            return _time_to_str(value)
        return jsonable(value.item())
    if isinstance(value, np.ndarray):
        # Iterating the first axis keeps nesting and sends each element back through here,
        # so datetime64 elements become ISO text rather than opaque integers.
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time | dt.timedelta):
        return _time_to_str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    raise TypeError(f"value {value!r} of type {type(value).__name__} has no JSON representation")


def _time_to_str(value: Any) -> str:
    """ISO 8601 text of a date, time, datetime or timedelta (numpy, pandas or stdlib)."""
    import pandas as pd  # pandas is a core dependency; imported here to keep import time low

    if isinstance(value, dt.timedelta | np.timedelta64):
        return pd.Timedelta(value).isoformat()
    if isinstance(value, dt.time | dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        return "NaT"
    return ts.isoformat()
