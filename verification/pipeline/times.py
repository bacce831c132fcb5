"""Matching reference times to valid times, and the messages about times that are missing or offset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from verification.pipeline.options import VerificationError

if TYPE_CHECKING:  # the references import these helpers
    from verification.pipeline.references import FrameIndex


def _time_key(value: Any) -> np.datetime64:
    """A time as ``datetime64[ns]``, the key of every time index of the pipeline."""
    return np.datetime64(pd.Timestamp(value).to_datetime64(), "ns")


def _fmt_times(times: Sequence[np.datetime64], limit: int = 6) -> str:
    text = ", ".join(pd.Timestamp(t).strftime("%Y-%m-%d %H:%M") for t in times[:limit])
    return text + (f" and {len(times) - limit} more" if len(times) > limit else "")


def _fmt_duration(td: pd.Timedelta) -> str:
    sec = pd.Timedelta(td).total_seconds()
    if sec and sec % 3600 == 0:
        return f"{sec / 3600:g} h"
    return f"{sec / 60:g} min" if sec % 60 == 0 else f"{sec:g} s"


def _within(tolerance: pd.Timedelta) -> str:
    """`` within <tolerance>`` for the messages about missing times; empty for an exact match."""
    if tolerance > pd.Timedelta(0):
        return f" within {_fmt_duration(tolerance)}"
    return ""


def _tolerance_hint(tolerance: pd.Timedelta) -> str:
    """For an exact match, a pointer to the option that allows the nearest time instead."""
    if tolerance > pd.Timedelta(0):
        return ""
    return "; for the nearest reference time, set a time tolerance (time_tolerance, --time-tolerance 30min)"


def _require_times(
    frames: FrameIndex, times: Sequence[np.datetime64], run_id: str, tolerance: pd.Timedelta
) -> list[np.datetime64]:
    """The frame time matched to each of ``times``; an error naming the times that have none."""
    matched = frames.nearest(times, tolerance)
    missing = [t for t, m in zip(times, matched, strict=True) if m is None]
    if missing:
        have = sorted(frames.times)
        span = f"{_fmt_times(have[:1])} to {_fmt_times(have[-1:])}" if have else "nothing"
        raise VerificationError(
            f"{frames.label}: no frame{_within(tolerance)} at {len(missing)} valid time(s) of run {run_id}: "
            f"{_fmt_times(missing)} (the reference covers {span}, {len(have)} times){_tolerance_hint(tolerance)}"
        )
    return [m for m in matched if m is not None]


def _offset_note(
    label: str,
    valid: Sequence[np.datetime64] | np.ndarray,
    used: Sequence[np.datetime64 | None],
    what: str = "lead time(s)",
) -> str | None:
    """A note on the ``what`` verified against a reference time other than their valid time."""
    offsets = [abs(pd.Timedelta(u - v)) for v, u in zip(valid, used, strict=True) if u is not None and u != v]
    if not offsets:
        return None
    return (
        f"{len(offsets)} of {len(valid)} {what} scored against {label} at a time other than the valid time "
        f"(the nearest within the tolerance; largest offset {_fmt_duration(max(offsets))})"
    )
