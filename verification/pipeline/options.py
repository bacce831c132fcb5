"""Options of the verification pipeline: defaults, the threshold and tolerance parsers, :class:`VerifyOptions`."""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from engine.errors import UnknownNameError, WxError
from verification.metrics.registry import METRIC_INFO

#: Event thresholds (mm/h) of the categorical scores of rain, after common radar practice:
#: drizzle / any rain, moderate, heavy.
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.1, 1.0, 5.0)
#: FSS thresholds (mm/h): 0.1 mm/h covers nearly every wet pixel, which says little at large scales.
DEFAULT_FSS_THRESHOLDS: tuple[float, ...] = (1.0, 5.0)
#: FSS windows in grid points (1 = grid scale); 1 km radar grids: 1, 5, 11 and 21 km.
DEFAULT_WINDOWS: tuple[int, ...] = (1, 5, 11, 21)
#: Default climatology of the anomaly correlation (sample dataset name).
DEFAULT_CLIMATOLOGY = "era-interim-climatology"


class VerificationError(WxError, ValueError):
    """Verification cannot proceed: bad option, missing reference times, unusable reference."""


def parse_thresholds(values: Any, *, name: str = "thresholds") -> tuple[float, ...]:
    """Event thresholds as given (numbers, strings, comma-separated lists) as finite floats.

    The one parser of thresholds: :class:`VerifyOptions`, ``meteolens verify --thresholds`` and
    the demo plan all go through it.

    Parameters
    ----------
    values : float, str or sequence of float and str
        ``0.5``, ``"0.5"``, ``"0.1,1,5"``, ``["1", "5,10"]`` or ``(0.1, 1.0)``; strings are
        split at commas and stripped.
    name : str
        How the values were given (``thresholds``, ``--thresholds``), for the message.

    Returns
    -------
    tuple of float
        In the order given.

    Raises
    ------
    VerificationError
        If a value is not a finite number, or values repeat.
    """
    items = [values] if isinstance(values, str | int | float) else list(values)
    tokens: list[Any] = []
    for item in items:
        if isinstance(item, str):
            tokens.extend(part.strip() for part in item.split(",") if part.strip())
        else:
            tokens.append(item)
    out = []
    for v in tokens:
        if isinstance(v, bool):
            raise VerificationError(f"{name}: {v!r} is not a number")
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise VerificationError(f"{name}: {v!r} is not a number") from None
        if not math.isfinite(x):
            raise VerificationError(f"{name}: {v!r} is not a finite number")
        out.append(x)
    if len(set(out)) != len(out):
        raise VerificationError(f"{name}: values repeat: {tokens}")
    return tuple(out)


def parse_time_tolerance(value: Any, *, name: str = "time_tolerance") -> pd.Timedelta:
    """A time tolerance as a non-negative :class:`pandas.Timedelta`.

    Parameters
    ----------
    value : str, Timedelta, timedelta, timedelta64 or None
        ``"30min"``, ``"1h"``, ``"PT30M"``, ``"00:30:00"``, a timedelta, or ``None`` / ``0`` /
        ``"0"`` for an exact match. A bare number other than 0 is refused: it has no unit.
    name : str
        How the value was given (``time_tolerance``, ``--time-tolerance``), for the message.

    Returns
    -------
    pandas.Timedelta

    Raises
    ------
    VerificationError
        If ``value`` is not a duration, has no unit, or is negative.
    """
    if value is None:
        return pd.Timedelta(0)
    hint = "give a duration such as 30min, 1h or PT30M"
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None:
            if number == 0:
                return pd.Timedelta(0)
            raise VerificationError(f"{name}: {value!r} has no unit; {hint}")
        try:
            tol = pd.Timedelta(text)
        except ValueError:
            raise VerificationError(f"{name}: {value!r} is not a duration; {hint}") from None
    elif isinstance(value, bool) or not isinstance(value, pd.Timedelta | np.timedelta64 | _dt.timedelta | int | float):
        raise VerificationError(f"{name}: {value!r} is not a duration; {hint}")
    elif isinstance(value, int | float):
        if value != 0:
            raise VerificationError(f"{name}: {value!r} has no unit; {hint}")
        return pd.Timedelta(0)
    else:
        tol = pd.Timedelta(value)
    if pd.isna(tol):
        raise VerificationError(f"{name}: {value!r} is not a duration; {hint}")
    if tol < pd.Timedelta(0):
        raise VerificationError(f"{name}: {value!r} is negative; the tolerance is a distance in time (>= 0)")
    return tol


@dataclass(frozen=True)
class VerifyOptions:
    """What to compute; validated on construction.

    Attributes
    ----------
    metrics : tuple of str, optional
        Names from :data:`~verification.metrics.registry.METRIC_INFO`; default: the metrics whose
        record lists the case in ``default_in`` (module docstring).
    thresholds : tuple of float, optional
        Event thresholds of the categorical scores (units of the variable); also the FSS
        thresholds when given. Default :data:`DEFAULT_THRESHOLDS` for ``precip_rate``. Any form
        :func:`parse_thresholds` takes (e.g. ``("0.1", "1,5")``); stored as a tuple of floats.
    windows : tuple of int, optional
        FSS windows in grid points (odd sizes centre the window); default :data:`DEFAULT_WINDOWS`.
    variable : str, optional
        The variable to verify; default the run's first variable with a ``lead_time`` dim.
    climatology : str, optional
        Dataset name or file of the climatology for the ACC; default
        :data:`DEFAULT_CLIMATOLOGY` when it holds the variable.
    persistence : bool
        Also score the persistence baseline (gridded cases).
    station_method : {"bilinear", "nearest"}
        Interpolation to stations.
    time_tolerance : Timedelta or str
        How far the reference time used for a forecast valid time may be from it (inclusive; a
        tie goes to the earlier reference time): e.g. ``"30min"`` (any form
        :func:`parse_time_tolerance` takes; stored as a ``Timedelta``). Stations are matched one
        by one, each to its nearest *valid* report (module docstring, "Matching in time").
        Default 0, an exact match, for gridded and station references alike: existing results
        stay as they were, and the right tolerance depends on the reference's report times
        *and* on the forecast's output step (30 min suits hourly forecasts against METAR
        reports at hh:53, but would let one hourly report stand for six 5-minute nowcast
        steps), so it is the user's choice; without it a reference at other minutes fails with
        an error naming the option.

    Raises
    ------
    UnknownNameError
        A metric name is unknown.
    VerificationError
        A threshold is not a finite number, a window not a positive integer, values repeat, or
        the time tolerance is not a non-negative duration.
    """

    metrics: tuple[str, ...] | None = None
    thresholds: tuple[float, ...] | None = None
    windows: tuple[int, ...] | None = None
    variable: str | None = None
    climatology: str | None = None
    persistence: bool = True
    station_method: Literal["bilinear", "nearest"] = "bilinear"
    time_tolerance: pd.Timedelta | str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_tolerance", parse_time_tolerance(self.time_tolerance))
        if self.metrics is not None:
            names = tuple(str(m).lower() for m in self.metrics)
            for name in names:
                if name not in METRIC_INFO:
                    raise UnknownNameError("metric", name, METRIC_INFO)
            if not names:
                raise VerificationError("metrics: give at least one metric name")
            object.__setattr__(self, "metrics", tuple(dict.fromkeys(names)))
        if self.thresholds is not None:
            object.__setattr__(self, "thresholds", parse_thresholds(self.thresholds))
        if self.windows is not None:
            wins = []
            for w in self.windows:
                try:
                    n = float(w)
                except (TypeError, ValueError):
                    raise VerificationError(f"windows: {w!r} is not a number of grid points") from None
                if not n.is_integer() or n < 1:
                    raise VerificationError(f"windows: {w!r} is not a positive whole number of grid points")
                wins.append(int(n))
            if len(set(wins)) != len(wins):
                raise VerificationError(f"windows: values repeat: {wins}")
            object.__setattr__(self, "windows", tuple(wins))
        if self.station_method not in ("bilinear", "nearest"):
            raise VerificationError(f"station_method={self.station_method!r}: expected 'bilinear' or 'nearest'")
