"""Shared pytest configuration and factories."""

from __future__ import annotations

# Load pyproj before anything imports ecCodes (see engine/__init__.py for why).
import pyproj  # noqa: F401
import pytest

from engine.config import Settings


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests where torch has no CUDA device."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def data_root():
    """The sample data folder; tests that need it are skipped where it is absent."""
    root = Settings.from_env().data_root
    if root is None or not root.is_dir():
        pytest.skip("sample data folder not found (set METEOLENS_DATA)")
    return root
