"""What the app server was started with: its script arguments, written and read here.

``meteolens app`` runs ``streamlit run app/streamlit_app.py -- <arguments>``; Streamlit hands the
arguments after ``--`` to the script as ``sys.argv[1:]``. :func:`app_arguments` writes them and
:func:`parse_app_arguments` reads them back, so the two sides cannot drift apart:

    --store DIR        the store (run stores and the catalogue)
    --data DIR         the sample-data folder
    --build-demo       build the demo store on first start when the store is empty
    --demo-plan TOML   the demo plan for that build (default: assets/demo.toml)

A folder not given falls back to the environment (``METEOLENS_STORE``, ``METEOLENS_DATA``, see
:class:`engine.config.Settings`), as for every meteolens command; that is also what a plain
``streamlit run app/streamlit_app.py`` and Streamlit's ``AppTest`` get.

Public API: ``AppSettings``, ``AppArgumentError``, ``app_arguments``, ``parse_app_arguments``,
``script_arguments``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from engine.config import Settings
from engine.errors import WxError


class AppArgumentError(WxError, ValueError):
    """A script argument of the app that is unknown or lacks its value."""


@dataclass(frozen=True)
class AppSettings:
    """Settings of one app server, read once from its script arguments.

    Attributes
    ----------
    settings : Settings
        Store and sample-data folders.
    build_demo : bool
        Build the demo store on first start when the store is empty.
    demo_plan : Path or None
        Demo plan of that build (``None``: the shipped ``assets/demo.toml``).
    """

    settings: Settings
    build_demo: bool = False
    demo_plan: Path | None = None


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises instead of exiting: the app shows the message in the page."""

    def error(self, message: str) -> NoReturn:
        usage = " ".join(self.format_usage().split())  # one line: argparse wraps it
        raise AppArgumentError(f"{self.prog}: {message} ({usage})")


def _parser() -> _Parser:
    p = _Parser(prog="app/streamlit_app.py", allow_abbrev=False, add_help=False)
    p.add_argument("--store", type=Path, help="store folder")
    p.add_argument("--data", type=Path, help="sample-data folder")
    p.add_argument("--build-demo", action="store_true", help="build the demo store on first start")
    p.add_argument("--demo-plan", type=Path, help="demo plan TOML of that build")
    return p


def app_arguments(app: AppSettings) -> list[str]:
    """The script arguments that :func:`parse_app_arguments` turns back into ``app``."""
    args = ["--store", str(app.settings.store_root)]
    if app.settings.data_root is not None:
        args += ["--data", str(app.settings.data_root)]
    if app.build_demo:
        args.append("--build-demo")
    if app.demo_plan is not None:
        args += ["--demo-plan", str(app.demo_plan)]
    return args


def parse_app_arguments(argv: Sequence[str]) -> AppSettings:
    """Settings from the app's script arguments (folders not given come from the environment).

    Raises
    ------
    AppArgumentError
        An unknown argument, or an option without its value.
    """
    ns = _parser().parse_args(list(argv))
    base = Settings.from_env(store=ns.store)
    data_root = ns.data.expanduser() if ns.data is not None else base.data_root
    plan = ns.demo_plan.expanduser().resolve() if ns.demo_plan is not None else None
    return AppSettings(Settings(data_root=data_root, store_root=base.store_root), ns.build_demo, plan)


def script_arguments(script: str | Path) -> list[str]:
    """The arguments ``streamlit run`` gave ``script``: ``sys.argv[1:]`` when ``sys.argv[0]`` is it.

    Streamlit sets ``sys.argv`` to the script and its arguments. Anywhere else (Streamlit's
    ``AppTest`` inside pytest, the services imported by a benchmark) ``sys.argv`` belongs to
    another program, and the app has no arguments.
    """
    if sys.argv and Path(sys.argv[0]).resolve() == Path(script).resolve():
        return sys.argv[1:]
    return []
