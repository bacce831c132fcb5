"""The demo store built on the app's first start, when ``meteolens app`` asked for it.

Public API: ``demo_store_wanted``, ``build_demo_store``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from app.services.store import app_settings


def demo_store_wanted() -> bool:
    """Whether the app was started to build the demo store on first start (``--build-demo``)."""
    return app_settings().build_demo


def build_demo_store(progress: Callable[[float, str], None]) -> Any:
    """Build the demo store into the app's store (plan: ``--demo-plan`` or ``assets/demo.toml``).

    Returns
    -------
    app.demo.DemoReport
    """
    from app import demo

    app = app_settings()
    plan = demo.load_plan(app.demo_plan) if app.demo_plan else demo.load_plan()
    report = demo.build(app.settings, progress=progress, plan=plan)
    st.cache_data.clear()
    return report
