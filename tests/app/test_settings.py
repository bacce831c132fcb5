"""The app's script arguments (app.settings): written by ``meteolens app``, read by the app."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from app.settings import AppArgumentError, AppSettings, app_arguments, parse_app_arguments, script_arguments
from engine.config import Settings


def test_arguments_round_trip(tmp_path: Path) -> None:
    app = AppSettings(Settings(data_root=tmp_path / "data", store_root=tmp_path / "store"), True, tmp_path / "p.toml")
    assert parse_app_arguments(app_arguments(app)) == app
    plain = AppSettings(Settings(data_root=None, store_root=tmp_path / "store"))
    assert app_arguments(plain) == ["--store", str(tmp_path / "store")]


def test_folders_not_given_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METEOLENS_STORE", str(tmp_path / "env-store"))
    monkeypatch.setenv("METEOLENS_DATA", str(tmp_path / "env-data"))
    got = parse_app_arguments([])
    assert got == AppSettings(Settings(data_root=tmp_path / "env-data", store_root=tmp_path / "env-store"))
    assert parse_app_arguments(["--store", str(tmp_path / "s")]).settings.store_root == tmp_path / "s"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--stor", "x"], "unrecognized arguments: --stor x"),  # no abbreviations
        (["--store"], "argument --store: expected one argument"),
        (["--build-demo=yes"], "argument --build-demo: ignored explicit argument 'yes'"),
    ],
)
def test_bad_arguments_are_one_clear_error(argv: list[str], expected: str) -> None:
    with pytest.raises(
        AppArgumentError, match=f"^app/streamlit_app.py: {expected} \\(usage: app/streamlit_app.py \\[--store STORE\\]"
    ):
        parse_app_arguments(argv)
    with pytest.raises(AppArgumentError) as info:
        parse_app_arguments(argv)
    assert "\n" not in str(info.value)


def test_script_arguments_only_when_streamlit_runs_the_script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    script = tmp_path / "streamlit_app.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--build-demo"])
    assert script_arguments(script) == ["--build-demo"]
    monkeypatch.setattr(sys, "argv", ["/usr/bin/pytest", "-x", "tests"])  # AppTest inside pytest
    assert script_arguments(script) == []
