"""Case studies: the curated cases of ``assets/cases/`` and what each needs from the store.

Public API: ``Case``, ``cases``, ``missing_requirements``, ``CASES_DIR``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from app.services.stations import stations
from app.services.store import catalog, settings
from engine import datasets
from engine.config import REPO_ROOT
from engine.errors import StorageError

#: Folder of the curated case studies.
CASES_DIR = REPO_ROOT / "assets" / "cases"


@dataclass(frozen=True)
class Case:
    """A curated case study (``assets/cases/<id>.toml``).

    Attributes
    ----------
    case_id, title, date, summary, story : str
        Identity and the text shown on the Cases page.
    page : str
        URL path of the page that opens the case (``maps``, ``stations``, ``nowcast``...).
    params : dict of str
        Query parameters of that page (its whole state, see :mod:`app.state`).
    requires : tuple of str
        Sample datasets or run ids the case needs; missing ones are named on the page.
    also : tuple of dict
        Further links: ``page``, ``label``, ``params`` (e.g. the demo nowcast of a radar case).
    """

    case_id: str
    title: str
    date: str
    summary: str
    story: str
    page: str
    params: dict[str, str]
    requires: tuple[str, ...]
    also: tuple[dict[str, Any], ...] = ()


@st.cache_data(ttl="1m", show_spinner=False)
def cases(folder: str | None = None) -> list[Case]:
    """All case studies, sorted by date.

    Raises
    ------
    StorageError
        A case file is not valid TOML or lacks a field (the message names the file).
    """
    out = []
    for path in sorted(Path(folder or CASES_DIR).glob("*.toml")):
        try:
            raw = tomllib.loads(path.read_text())
            out.append(
                Case(
                    case_id=path.stem,
                    title=raw["title"],
                    date=str(raw["date"]),
                    summary=raw["summary"],
                    story=raw.get("story", ""),
                    page=raw["open"]["page"],
                    params={k: str(v) for k, v in raw["open"].get("params", {}).items()},
                    requires=tuple(raw.get("requires", ())),
                    also=tuple(
                        {
                            "page": a["page"],
                            "label": a["label"],
                            "params": {k: str(v) for k, v in a.get("params", {}).items()},
                        }
                        for a in raw.get("also", ())
                    ),
                )
            )
        except (OSError, tomllib.TOMLDecodeError, KeyError) as err:
            raise StorageError(f"{path}: invalid case study: {type(err).__name__}: {err}") from err
    return sorted(out, key=lambda c: c.date)


def missing_requirements(requires: Sequence[str]) -> list[str]:
    """Which of a case's required datasets (``dataset:``) or runs (``run:``) are absent."""
    missing = []
    root = settings().data_root
    for item in requires:
        kind, _, name = item.partition(":")
        if kind == "dataset":
            ok = root is not None and name in datasets.load_catalogue() and bool(datasets.get(name).paths(root))
        elif kind == "run":
            ok = catalog().has_run(name)
        elif kind == "station":
            ok = name in set(stations()["station_id"])
        else:
            ok = False
        if not ok:
            missing.append(item)
    return missing
