"""Settings, read once at the edge (CLI start-up or app start-up) and passed down explicitly.

``METEOLENS_DATA`` points at the sample data folder (default: ``../shared/data`` beside the
checkout, when it exists); ``METEOLENS_STORE`` at the folder holding run stores and the
catalogue (default: ``./store`` in the current directory).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: The repository root: engine/ lives directly below it.
REPO_ROOT = Path(__file__).resolve().parent.parent


def default_data_root() -> Path | None:
    """``../shared/data`` beside the checkout if it exists, else ``None``."""
    candidate = REPO_ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


@dataclass(frozen=True)
class Settings:
    """Where meteolens reads sample data and writes runs.

    Attributes
    ----------
    data_root : Path or None
        Folder with the sample data (layout of ``shared/data``); ``None`` when there is none.
    store_root : Path
        Folder holding ``runs/`` and ``catalog.duckdb``.
    """

    data_root: Path | None
    store_root: Path

    @property
    def catalog_path(self) -> Path:
        return self.store_root / "catalog.duckdb"

    @property
    def runs_dir(self) -> Path:
        return self.store_root / "runs"

    @classmethod
    def from_env(cls, *, store: str | os.PathLike[str] | None = None) -> Settings:
        """Build settings from the environment; ``store`` overrides ``METEOLENS_STORE``."""
        data_env = os.environ.get("METEOLENS_DATA")
        data_root = Path(data_env).expanduser() if data_env else default_data_root()
        store_root = Path(store or os.environ.get("METEOLENS_STORE") or "store").expanduser()
        return cls(data_root=data_root, store_root=store_root.resolve())
