"""Exceptions shared by every meteolens package.

Every error a user can provoke derives from :class:`WxError`, so the CLI can turn it into a
one-line message (``meteolens: <file>: <what is wrong>``) and a non-zero exit status without a
traceback, while programming errors still surface as ordinary exceptions.

Public API: ``WxError``, ``UnknownNameError``, ``CoordError``, ``DimensionError``,
``MissingDependencyError``, ``ReaderError``, ``FormatError``, ``VariableNotFoundError``,
``StorageError``, ``JobError``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class WxError(Exception):
    """Base class for every error meteolens raises on purpose."""


class UnknownNameError(WxError, KeyError):
    """A name looked up in a registry (reader, dataset, model, metric...) does not exist."""

    def __init__(self, kind: str, name: str, available: Iterable[str]):
        self.kind, self.name, self.available = kind, name, sorted(available)
        super().__init__(f"unknown {kind} {name!r}; available: {', '.join(self.available) or '(none)'}")

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return str(self.args[0])


class CoordError(WxError, ValueError):
    """Coordinates do not match what a model, reader or store expects."""


class DimensionError(WxError, ValueError):
    """Dimensions passed to a function are missing, duplicated or contradictory."""


class MissingDependencyError(WxError, ImportError):
    """An optional dependency is needed for this feature; the message names the pip extra."""

    def __init__(self, package: str, extra: str, feature: str = ""):
        what = f" for {feature}" if feature else ""
        super().__init__(f"{package} is required{what}: pip install 'meteolens[{extra}]'")


class ReaderError(WxError, ValueError):
    """A file could not be read. The message always starts with the file's path."""

    def __init__(self, path: str | Path, problem: str):
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path}: {problem}")


class FormatError(ReaderError):
    """A file is not in the format expected (wrong magic bytes, truncated, unknown format)."""


class VariableNotFoundError(ReaderError, KeyError):
    """A requested variable is not present in a file or store."""

    def __str__(self) -> str:
        return str(self.args[0])


class StorageError(WxError, OSError):
    """A run store or the catalogue could not be read or written."""


class JobError(WxError, RuntimeError):
    """A job spec is invalid or a job failed."""
