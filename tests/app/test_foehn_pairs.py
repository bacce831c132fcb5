"""The Foehn station pairs of ``assets/foehn_pairs.toml`` (app.services.foehn.load_foehn_pairs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.services.foehn import FOEHN_FILE, FoehnPair, load_foehn_pairs
from engine.errors import StorageError

GOOD = """
[[pairs]]
name = "Wipp valley"
valley = "ellboegen"
crest = "sattelberg"
valley_sector = [43, 223.0]
crest_sector = [90.0, 270.0]
"""


def test_the_shipped_pairs_load() -> None:
    pairs = load_foehn_pairs()
    assert pairs == {
        "Wipp valley (Ellboegen / Sattelberg)": FoehnPair(
            "Wipp valley (Ellboegen / Sattelberg)", "ellboegen", "sattelberg", (43.0, 223.0), (90.0, 270.0)
        )
    }
    assert FOEHN_FILE.name == "foehn_pairs.toml"


def test_a_pair_file(tmp_path: Path) -> None:
    path = tmp_path / "pairs.toml"
    path.write_text(GOOD)
    assert load_foehn_pairs(path)["Wipp valley"].valley_sector == (43.0, 223.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[pairs]\nname = 1", "cannot read the Foehn station pairs: "),
        ("title = 'no pairs'", r"expected one or more \[\[pairs\]\] entries"),
        (
            GOOD.replace('crest = "sattelberg"\n', ""),
            r"\[\[pairs\]\] entry 1: missing keys \['crest'\], unknown keys \[\]",
        ),
        (
            GOOD.replace("crest_sector", "crest_sectr"),
            r"\[\[pairs\]\] entry 1: missing keys \['crest_sector'\], unknown keys \['crest_sectr'\]",
        ),
        (
            GOOD.replace('valley = "ellboegen"', "valley = 3"),
            r"\[\[pairs\]\] entry 1: valley must be a non-empty string, got 3",
        ),
        (
            GOOD.replace("[90.0, 270.0]", "[90.0, 400.0]"),
            r"\[\[pairs\]\] entry 1: crest_sector: expected \[from, to\] in degrees",
        ),
        (
            GOOD.replace("[43, 223.0]", '"south"'),
            r"\[\[pairs\]\] entry 1: valley_sector: expected \[from, to\].*got 'south'",
        ),
        (GOOD + GOOD, r"\[\[pairs\]\] entry 2: the name 'Wipp valley' is used twice"),
    ],
    ids=["not-toml", "no-pairs", "missing-key", "unknown-key", "not-a-string", "sector-range", "sector-type", "twice"],
)
def test_a_bad_file_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pairs.toml"
    path.write_text(text)
    with pytest.raises(StorageError, match=f"^{re.escape(str(path))}: {message}"):
        load_foehn_pairs(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        StorageError, match=f"^{re.escape(str(tmp_path / 'none.toml'))}: cannot read the Foehn station pairs"
    ):
        load_foehn_pairs(tmp_path / "none.toml")
