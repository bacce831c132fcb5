"""Session-state keys and the URL ↔ widget state of every page.

Each page's whole state lives in the URL (``st.query_params``), so a view can be shared by
copying the address: on a page's first run every widget key is seeded from its query parameter
(falling back to a default when absent or invalid), the widgets are created with ``key=`` only,
and after they are drawn :func:`to_url` writes their values back. Keys are the constants below,
and the query parameter has the same name as the key.

Public API: the key constants, ``bind``, ``bind_choice``, ``to_url``, ``parse_box``, ``format_box``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import streamlit as st

T = TypeVar("T")

# Maps page
SOURCE = "src"
VARIABLE = "var"
STEP = "step"
MEMBER = "member"
PROJECTION = "proj"
BOX = "box"
COMPARE = "cmp"
STATIONS_OVERLAY = "stn"
ANIMATE = "anim"
# Stations page
STATION = "station"
STATION_VAR = "svar"
START = "start"
END = "end"
FOEHN_PAIR = "pair"
# Nowcast page
NOWCAST_RUN = "run"
OBSERVED = "obs"
# Verification page
SCORE_KIND = "kind"
SCORE_VAR = "vvar"
SCORE_METRIC = "metric"
BASELINE = "base"
# Run page
JOB_KIND = "job"
# Run page log of the last job (not in the URL)
LAST_JOB_LOG = "_last_job_log"
# The session's settings, parsed from the app's script arguments (not in the URL; app.settings)
SETTINGS = "_settings"


def bind(key: str, default: T, cast: Callable[[str], T] | None = None) -> T:
    """Seed ``st.session_state[key]`` from the URL (or ``default``) on first use; return the value.

    Parameters
    ----------
    key : str
        Widget key, also the query-parameter name.
    default : object
        Value when the URL has none or it cannot be cast.
    cast : callable, optional
        Turns the URL text into the widget's type (``int``, ``float``...); by default the type of
        ``default`` (``bool`` from ``"1"/"true"``).
    """
    if key not in st.session_state:
        raw = st.query_params.get(key)
        value: Any = default
        if raw is not None:
            try:
                if cast is not None:
                    value = cast(raw)
                elif isinstance(default, bool):
                    value = raw.lower() in ("1", "true", "yes", "on")
                elif default is not None:
                    parse: Any = type(default)  # the default's own type (int, float, str...) parses the text
                    value = parse(raw)
                else:
                    value = raw
            except (TypeError, ValueError):
                value = default
        st.session_state[key] = value
    return st.session_state[key]


def bind_choice(key: str, options: Sequence[T], default: T | None = None) -> T | None:
    """Like :func:`bind` for a choice among ``options``: an unknown value falls back to ``default``.

    ``default`` defaults to the first option (``None`` when there are none).
    """
    if not options:
        st.session_state.pop(key, None)
        return None
    fallback = default if default in options else options[0]
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]
    if key not in st.session_state:
        raw = st.query_params.get(key)
        matches = [o for o in options if str(o) == raw]
        st.session_state[key] = matches[0] if matches else fallback
    return st.session_state[key]


def to_url(keys: Sequence[str]) -> None:
    """Write the current values of ``keys`` to the query string (``None`` values are removed)."""
    for key in keys:
        value = st.session_state.get(key)
        if value is None or value == "":
            if key in st.query_params:
                del st.query_params[key]
            continue
        text = ("1" if value else "0") if isinstance(value, bool) else str(value)
        if st.query_params.get(key) != text:
            st.query_params[key] = text


def parse_box(text: str | None) -> tuple[float, float, float, float] | None:
    """``"west,east,south,north"`` (degrees) → a tuple, or ``None`` when empty.

    Raises
    ------
    ValueError
        Not four numbers, or west ≥ east / south ≥ north, or latitudes outside [-90, 90].
    """
    if not text:
        return None
    parts = [float(p) for p in str(text).split(",")]
    if len(parts) != 4:
        raise ValueError(f"extent {text!r}: expected four numbers west,east,south,north")
    west, east, south, north = parts
    if not (west < east and south < north and south >= -90 and north <= 90):
        raise ValueError(f"extent {text!r}: expected west < east, south < north, latitudes within ±90")
    return west, east, south, north


def format_box(box: Sequence[float] | None) -> str:
    """Inverse of :func:`parse_box` (2 decimals)."""
    return "" if box is None else ",".join(f"{v:.2f}" for v in box)
