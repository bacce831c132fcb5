"""``meteolens app`` and ``meteolens demo``: serve the dashboard, build the demo store.

    meteolens app [--store DIR] [--port N] [--address HOST] [--no-demo] [--demo-plan TOML]
    meteolens demo build [--store DIR] [--plan TOML] [--json]

``meteolens app`` runs ``streamlit run app/streamlit_app.py -- <script arguments>``: the store,
the sample-data folder and the first-start choices travel as the script's own arguments
(:mod:`app.settings` writes and reads them), not through the environment. On first start with an
empty store the app builds the demo store and shows its progress in the page (``--no-demo``
opens an empty store as it is).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from app.settings import AppSettings, app_arguments
from engine.config import Settings

APP_FILE = Path(__file__).resolve().parent.parent / "streamlit_app.py"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``app`` and ``demo`` sub-commands."""
    p = sub.add_parser("app", help="serve the Streamlit dashboard")
    p.add_argument("--store", type=Path, help="store folder (default: METEOLENS_STORE or ./store)")
    p.add_argument("--port", type=int, default=8501, help="port to listen on (default 8501)")
    p.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--no-demo", action="store_true", help="do not build the demo store on first start")
    p.add_argument("--demo-plan", type=Path, help="demo plan TOML for the first start (default: assets/demo.toml)")
    p.set_defaults(func=cmd_app)

    d = sub.add_parser("demo", help="build the demo store from the sample data")
    dsub = d.add_subparsers(dest="demo_command", metavar="ACTION", required=True)
    b = dsub.add_parser("build", help="build (or complete) the demo store; a second build skips what exists")
    b.add_argument("--store", type=Path, help="store folder (default: METEOLENS_STORE or ./store)")
    b.add_argument("--plan", type=Path, help="demo plan TOML (default: assets/demo.toml)")
    b.add_argument("--json", action="store_true", help="print the report as JSON")
    b.set_defaults(func=cmd_demo_build)


def streamlit_command(app: AppSettings, port: int, address: str) -> list[str]:
    """The command line that serves the app: ``streamlit run`` through :func:`serve` (see there).

    The app's settings follow ``--`` as the script's arguments (:func:`app.settings.app_arguments`).
    """
    return [
        sys.executable,
        "-m",
        "app.cli.app",
        "run",
        str(APP_FILE),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--",
        *app_arguments(app),
    ]


def cmd_app(args: argparse.Namespace) -> int:
    """Serve the app until interrupted (on POSIX the process becomes the server); returns its exit status."""
    settings = Settings.from_env(store=args.store)
    app = AppSettings(
        settings,
        build_demo=not args.no_demo,
        demo_plan=args.demo_plan.resolve() if args.demo_plan and not args.no_demo else None,
    )
    print(f"meteolens app: store {settings.store_root}, http://{args.address}:{args.port}", file=sys.stderr)
    cmd = streamlit_command(app, args.port, args.address)
    if os.name == "posix":
        # Become the server: signals (Ctrl-C, a service manager's SIGTERM) reach it directly
        # and no orphaned server outlives a killed wrapper.
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(cmd[0], cmd)
    return subprocess.call(cmd)


def cmd_demo_build(args: argparse.Namespace) -> int:
    """Build the demo store with a progress bar; exit status 1 when an entry failed."""
    from app.cli.progress import TextProgress
    from app.demo import DEMO_FILE, build, load_plan

    settings = Settings.from_env(store=args.store)
    plan = load_plan(args.plan or DEMO_FILE)
    report = build(settings, progress=None if args.json else TextProgress(), plan=plan)
    if args.json:
        json.dump(
            {
                "store": str(settings.store_root),
                "built": report.built,
                "skipped": report.skipped,
                "failed": report.failed,
            },
            sys.stdout,
            indent=1,
        )
        print()
    else:
        print(f"demo store {settings.store_root}: {report.summary()}")
        for name, why in report.skipped.items():
            print(f"  skipped {name}: {why}")
        for name, why in report.failed.items():
            print(f"  FAILED  {name}: {why}")
    return 1 if report.failed else 0


def serve(argv: list[str]) -> None:
    """Run ``streamlit <argv>`` with the app's navigation taking precedence over the pages folder.

    Streamlit treats a ``pages/`` folder beside the main script as the old (v1) multipage layout
    until the main script has called ``st.navigation`` once; on a cold server, a first request for
    a deep link (``/maps?...``) would run the page file alone, without the shared chrome. The app
    always uses ``st.navigation``, so the v1 layout is switched off before the server starts.
    """
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli as streamlit_cli

    PagesManager.uses_pages_directory = False
    sys.argv = ["streamlit", *argv]
    streamlit_cli.main()


if __name__ == "__main__":  # pragma: no cover (exercised by the browser tests)
    serve(sys.argv[1:])
