"""Fixtures for the reader tests: the radar sample folder and an ODIM_H5 file writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from odim_files import write_odim_file


@pytest.fixture(scope="session")
def radar_dir(data_root: Path) -> Path:
    """``pysteps-data/radar`` of the sample data; skips where it is absent."""
    path = data_root / "pysteps-data" / "radar"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture
def odim_writer() -> Callable[..., Path]:
    """:func:`write_odim_file`, as a fixture."""
    return write_odim_file
