"""Strict-JSON conversion of attribute and parameter values."""

from __future__ import annotations

import datetime as dt
import enum
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.storage.jsonable import jsonable


class Method(enum.Enum):
    STEPS = "steps"


@dataclass(frozen=True)
class Window:
    size: int
    units: str


def test_known_types() -> None:
    value = {
        "path": Path("/data/a.gif"),
        "tuple": (1, np.int16(2)),
        "set": {3, 1, 2},
        "float32": np.float32(0.5),
        "bool": np.bool_(True),
        "array": np.arange(4).reshape(2, 2),
        "times": np.array(["2017-01-01T00", "2017-01-01T06"], dtype="datetime64[h]"),
        "lead": np.timedelta64(6, "h"),
        "aware": pd.Timestamp("2017-01-01T01:00", tz="Europe/Vienna"),
        "date": dt.date(2017, 1, 1),
        "delta": dt.timedelta(minutes=5),
        "enum": Method.STEPS,
        "dataclass": Window(8, "km"),
        "nan": float("nan"),
        "inf": -np.inf,
        1: "int key",
    }
    assert jsonable(value) == {
        "path": "/data/a.gif",
        "tuple": [1, 2],
        "set": [1, 2, 3],
        "float32": 0.5,
        "bool": True,
        "array": [[0, 1], [2, 3]],
        "times": ["2017-01-01T00:00:00", "2017-01-01T06:00:00"],
        "lead": "P0DT6H0M0S",
        "aware": "2017-01-01T01:00:00+01:00",
        "date": "2017-01-01",
        "delta": "P0DT0H5M0S",
        "enum": "steps",
        "dataclass": {"size": 8, "units": "km"},
        "nan": "NaN",
        "inf": "-Infinity",
        "1": "int key",
    }
    assert jsonable(np.datetime64("NaT")) == "NaT"


def test_unsupported_values_name_their_type() -> None:
    with pytest.raises(TypeError, match="of type object has no JSON representation"):
        jsonable({"ok": 1, "bad": [object()]})


# Nested values built from what attributes and parameters hold: numbers (numpy and Python, with
# NaN and infinities), strings, paths, tuples, lists and dicts.
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**62), max_value=2**62),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(width=32).map(np.float32),
    st.integers(-1000, 1000).map(np.int32),
    st.text(max_size=8),
    st.text(alphabet="abc/", min_size=1, max_size=8).map(Path),
)
_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
    ),
    max_leaves=20,
)


@given(_values)
def test_result_is_strict_json_and_stable(value: object) -> None:
    converted = jsonable(value)
    text = json.dumps(converted, allow_nan=False)  # strict JSON: no NaN/Infinity tokens
    assert jsonable(json.loads(text)) == json.loads(text)  # idempotent on its own output
