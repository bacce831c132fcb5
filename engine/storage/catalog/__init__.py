"""The run catalogue: one DuckDB file with runs, stations, observations, point forecasts,
scores and quality reports.

:class:`Catalog` gathers one class per family of tables: :mod:`.runs` (the run lifecycle),
:mod:`.stations` (stations and observations), :mod:`.forecasts` (point forecasts and scores),
:mod:`.quality` (quality reports). They share the locked, short-lived connections of
:mod:`.base` (the module docstring there explains the concurrency design) and the column
declarations of :mod:`.tables`; :mod:`.schema` holds the migrations.

Public API: ``Catalog``, ``RunRecord``, ``UnknownRunError``, ``Migration``, ``MIGRATIONS``,
``SCHEMA_VERSION``, ``STATUSES``, ``migrate``.
"""

from __future__ import annotations

import os

from engine.errors import StorageError
from engine.storage.catalog.forecasts import ForecastsTable
from engine.storage.catalog.quality import QualityTable
from engine.storage.catalog.runs import STATUSES, RunRecord, RunsTable, UnknownRunError
from engine.storage.catalog.schema import MIGRATIONS, SCHEMA_VERSION, Migration, migrate
from engine.storage.catalog.stations import StationsTable

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STATUSES",
    "Catalog",
    "Migration",
    "RunRecord",
    "UnknownRunError",
    "migrate",
]


class Catalog(RunsTable, StationsTable, ForecastsTable, QualityTable):
    """The DuckDB catalogue of runs and verification data.

    Every method opens a short-lived connection under an inter-process lock (see
    :mod:`engine.storage.catalog.base`), so instances are cheap, hold no open file, and may be
    shared between threads or created in each process.

    Parameters
    ----------
    path : path-like
        The DuckDB file (conventionally ``<store>/catalog.duckdb``).
    timeout : float, default 60
        Seconds to wait for the catalogue lock before giving up with :class:`StorageError`.
    create : bool, default True
        Create the catalogue (and its folder) if missing. With ``False`` a missing file is an
        error, which read-only tools use to avoid creating catalogues by accident.

    Raises
    ------
    StorageError
        The file is missing (``create=False``), not a DuckDB catalogue, locked for longer than
        ``timeout``, or from a newer meteolens.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 60.0, create: bool = True) -> None:
        super().__init__(path, timeout=timeout)
        if not create and not self.path.exists():
            raise StorageError(f"{self.path}: no catalogue here")
        migrate(self.path, timeout=timeout)
