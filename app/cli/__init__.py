"""The ``meteolens`` command line.

Each sub-command lives in its own module below :mod:`app.cli` with a ``register(subparsers)``
function; :data:`COMMANDS` lists them. Every error that a user can provoke is a
:class:`~engine.errors.WxError` and becomes a one-line message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from engine import __version__
from engine.errors import WxError

#: Sub-command modules, in the order ``meteolens --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "app.cli.data",
    "app.cli.runs",
    "app.cli.foehn",
    "app.cli.downscale",
    "app.cli.cases",
    "app.cli.forecast",
    "app.cli.nowcast",
    "app.cli.verify",
    "app.cli.qa",
    "app.cli.app",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meteolens",
        description="Forecast exploration and verification: run forecasts, verify them, browse them.",
    )
    parser.add_argument("--version", action="version", version=f"meteolens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 success, 2 user error, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except WxError as err:
        print(f"meteolens: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("meteolens: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
