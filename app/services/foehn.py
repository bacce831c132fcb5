"""Foehn: the valley/crest station pairs of ``assets/foehn_pairs.toml`` and their diagnosis.

Public API: ``FoehnPair``, ``FOEHN_FILE``, ``load_foehn_pairs``, ``foehn_pairs``, ``foehn_timeline``.
"""

from __future__ import annotations

import math
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app.services.stations import stations
from app.services.store import catalog
from engine.config import REPO_ROOT
from engine.errors import StorageError

#: The shipped station pairs.
FOEHN_FILE = REPO_ROOT / "assets" / "foehn_pairs.toml"


@dataclass(frozen=True)
class FoehnPair:
    """A valley station and a crest station upstream of it, for the Foehn diagnosis.

    Attributes
    ----------
    name : str
        Label on the Stations page.
    valley, crest : str
        Catalogued station ids.
    valley_sector, crest_sector : (float, float)
        Clockwise wind sectors ``(from, to)`` in degrees, within [0, 360], inside which the
        wind direction at each station is compatible with Foehn.
    """

    name: str
    valley: str
    crest: str
    valley_sector: tuple[float, float]
    crest_sector: tuple[float, float]


def _sector(value: Any, where: str) -> tuple[float, float]:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    )
    if not ok or not all(0.0 <= v <= 360.0 for v in value):
        raise StorageError(f"{where}: expected [from, to] in degrees within 0-360, got {value!r}")
    return float(value[0]), float(value[1])


def load_foehn_pairs(path: str | Path = FOEHN_FILE) -> dict[str, FoehnPair]:
    """The Foehn station pairs of a TOML file (``[[pairs]]`` entries), by name, in file order.

    Parameters
    ----------
    path : path-like, default :data:`FOEHN_FILE`
        The file; each entry has ``name``, ``valley``, ``crest`` (station ids) and
        ``valley_sector``, ``crest_sector`` (``[from, to]`` degrees).

    Raises
    ------
    StorageError
        The file cannot be read or is not TOML, has no ``[[pairs]]``, or an entry lacks a key,
        has an unknown one, a name used twice, or a sector that is not two degrees in 0-360
        (the message names the file and the entry).
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise StorageError(f"{path}: cannot read the Foehn station pairs: {err}") from err
    entries = raw.get("pairs")
    if not isinstance(entries, list) or not entries:
        raise StorageError(f"{path}: expected one or more [[pairs]] entries")
    keys = {"name", "valley", "crest", "valley_sector", "crest_sector"}
    pairs: dict[str, FoehnPair] = {}
    for i, entry in enumerate(entries, start=1):
        where = f"{path}: [[pairs]] entry {i}"
        missing, unknown = sorted(keys - set(entry)), sorted(set(entry) - keys)
        if missing or unknown:
            raise StorageError(f"{where}: missing keys {missing or '[]'}, unknown keys {unknown or '[]'}")
        for key in ("name", "valley", "crest"):
            if not isinstance(entry[key], str) or not entry[key]:
                raise StorageError(f"{where}: {key} must be a non-empty string, got {entry[key]!r}")
        if entry["name"] in pairs:
            raise StorageError(f"{where}: the name {entry['name']!r} is used twice")
        pairs[entry["name"]] = FoehnPair(
            name=entry["name"],
            valley=entry["valley"],
            crest=entry["crest"],
            valley_sector=_sector(entry["valley_sector"], f"{where}: valley_sector"),
            crest_sector=_sector(entry["crest_sector"], f"{where}: crest_sector"),
        )
    return pairs


@st.cache_resource(show_spinner=False)
def _pairs() -> dict[str, FoehnPair]:
    return load_foehn_pairs()


def foehn_pairs() -> list[str]:
    """Foehn station pairs whose two stations are both catalogued."""
    ids = set(stations()["station_id"])
    return [name for name, p in _pairs().items() if p.valley in ids and p.crest in ids]


@st.cache_data(max_entries=16, show_spinner="Fitting the Foehn mixture model…")
def foehn_timeline(pair: str, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, list[str]]:
    """Hourly Foehn diagnosis (foehnix mixture model) of a station pair over a period.

    Returns
    -------
    DataFrame
        Indexed by time: ``probability`` (0-1), ``dtheta`` (K), valley ``wind_speed`` (m s-1),
        ``wind_dir`` (degree) and ``rh2m`` (%).
    list of str
        Notes the diagnosis raised as warnings (approximations it made).

    Raises
    ------
    WxError
        Unknown pair, too little data in the period, or the fit fails.
    """
    from verification.foehn import fit_foehn

    known = _pairs()
    if pair not in known:
        raise StorageError(f"unknown Foehn pair {pair!r}; known: {', '.join(known)}")
    spec = known[pair]
    st_df = stations().set_index("station_id")
    frames = []
    for sid in (spec.valley, spec.crest):
        table = catalog().observation_table(sid, start, end)
        if table.empty:
            raise StorageError(f"station {sid} has no observations between {start:%Y-%m-%d} and {end:%Y-%m-%d}")
        frames.append(table)
    # The diagnosis warns about approximations it makes (e.g. standard-atmosphere pressure when
    # the stations report none); they are shown on the page as notes, not lost in a log.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_foehn(
            frames[0],
            frames[1],
            valley_elevation=float(st_df.loc[spec.valley, "elevation"]),
            crest_elevation=float(st_df.loc[spec.crest, "elevation"]),
            concomitants=("rh", "ff"),
            valley_sector=spec.valley_sector,
            crest_sector=spec.crest_sector,
            names=(spec.valley, spec.crest),
        )
    cols = [c for c in ("probability", "dtheta", "wind_speed", "wind_dir", "rh2m") if c in fit.hourly]
    return fit.hourly[cols], list(dict.fromkeys(str(w.message) for w in caught))
