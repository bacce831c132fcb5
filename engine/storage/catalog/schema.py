"""The catalogue's schema: the ordered migrations, and :func:`migrate`, which applies them.

---------------------
The schema is the ordered list :data:`MIGRATIONS` of ``(version, description, SQL)``. Opening
a catalogue applies the missing ones in order, each in its own transaction together with its
row in ``schema_migrations``, so a failed migration leaves the catalogue at the previous
version. A catalogue from a newer meteolens (a version this code does not know) is refused
rather than written with an older idea of the schema. JSON columns (``parameters``,
``ratings``) are ``VARCHAR`` holding JSON text, which needs no DuckDB extension.


Public API: ``Migration``, ``MIGRATIONS``, ``SCHEMA_VERSION``, ``migrate``.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import duckdb

from engine.errors import StorageError
from engine.storage.catalog.base import CatalogBase
from engine.storage.catalog.tables import scalar, utc_now


class Migration(NamedTuple):
    """One schema step: applied once, in order, in one transaction."""

    version: int
    description: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema: runs, stations, observations, point forecasts, scores",
        """
        CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY,
            model VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            domain VARCHAR,
            init_time TIMESTAMP,
            parameters VARCHAR NOT NULL DEFAULT '{}',
            status VARCHAR NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
            error VARCHAR,
            path VARCHAR,
            created TIMESTAMP NOT NULL,
            finished TIMESTAMP
        );
        CREATE TABLE stations (
            station_id VARCHAR PRIMARY KEY,
            name VARCHAR,
            lat DOUBLE NOT NULL,
            lon DOUBLE NOT NULL,
            elevation DOUBLE,
            source VARCHAR
        );
        CREATE TABLE observations (
            station_id VARCHAR NOT NULL,
            time TIMESTAMP NOT NULL,
            variable VARCHAR NOT NULL,
            value DOUBLE,
            PRIMARY KEY (station_id, variable, time)
        );
        CREATE TABLE point_forecasts (
            run_id VARCHAR NOT NULL,
            station_id VARCHAR NOT NULL,
            init_time TIMESTAMP NOT NULL,
            lead_time INTERVAL NOT NULL,
            valid_time TIMESTAMP NOT NULL,
            variable VARCHAR NOT NULL,
            value DOUBLE,
            member INTEGER
        );
        CREATE TABLE scores (
            run_id VARCHAR NOT NULL,
            reference VARCHAR,
            variable VARCHAR NOT NULL,
            lead_time INTERVAL,
            metric VARCHAR NOT NULL,
            threshold DOUBLE,
            scale DOUBLE,
            region VARCHAR,
            value DOUBLE,
            created TIMESTAMP NOT NULL
        );
        """,
    ),
    Migration(
        2,
        "runs: start time, compute seconds and device of each run",
        """
        ALTER TABLE runs ADD COLUMN started TIMESTAMP;
        ALTER TABLE runs ADD COLUMN compute_seconds DOUBLE;
        ALTER TABLE runs ADD COLUMN device VARCHAR;
        """,
    ),
    Migration(
        3,
        "quality reports: RadarQA-style attribute ratings, grade and text per frame or sequence",
        """
        CREATE TABLE quality_reports (
            run_id VARCHAR NOT NULL,
            reference VARCHAR,
            scope VARCHAR NOT NULL CHECK (scope IN ('frame', 'sequence')),
            lead_time INTERVAL,
            ratings VARCHAR NOT NULL,
            grade DOUBLE,
            text VARCHAR NOT NULL,
            created TIMESTAMP NOT NULL
        );
        """,
    ),
    Migration(
        4,
        "runs: host and process id of a running job, to detect runs abandoned by killed processes",
        """
        ALTER TABLE runs ADD COLUMN host VARCHAR;
        ALTER TABLE runs ADD COLUMN pid INTEGER;
        """,
    ),
)

#: The schema version this code writes.
SCHEMA_VERSION: int = MIGRATIONS[-1].version


def migrate(path: str | os.PathLike[str], *, up_to: int | None = None, timeout: float = 60.0) -> int:
    """Create or migrate the catalogue at ``path`` to schema version ``up_to`` (default: latest).

    Parameters
    ----------
    path : path-like
        The DuckDB file; created (with its folder) if missing.
    up_to : int, optional
        Stop after this version. Older versions are for tests and tooling; normal code opens
        :class:`~engine.storage.catalog.Catalog`, which migrates to the latest.
    timeout : float
        Seconds to wait for the catalogue lock.

    Returns
    -------
    int
        The schema version after migrating.

    Raises
    ------
    StorageError
        The catalogue has a schema version newer than this code knows, a migration failed
        (the catalogue stays at the previous version), or the file cannot be opened.
    """
    known = [m.version for m in MIGRATIONS]
    if known != sorted(set(known)):
        raise StorageError(f"MIGRATIONS versions must be strictly increasing, got {known}")
    target = SCHEMA_VERSION if up_to is None else up_to
    if target not in known:
        raise StorageError(f"up_to={up_to}: unknown schema version; known: {known}")
    cat = CatalogBase(path, timeout=timeout)
    if cat.path.exists():
        # Fast path, read-only: an up-to-date catalogue (the usual case) needs no write access,
        # so opening one costs a shared read and works on a read-only file system too.
        try:
            with cat._connect(read_only=True) as con:
                current = scalar(con, "SELECT max(version) FROM schema_migrations")
        except (StorageError, duckdb.Error):
            current = None  # new, damaged or pre-migration file: the full path below decides
        if current is not None and target <= current <= SCHEMA_VERSION:
            return int(current)
    try:
        cat.path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StorageError(f"{cat.path.parent}: cannot create the catalogue folder: {err}") from err
    with cat._connect() as con:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, applied TIMESTAMP NOT NULL)"
        )
        current = scalar(con, "SELECT coalesce(max(version), 0) FROM schema_migrations")
        if current > SCHEMA_VERSION:
            raise StorageError(
                f"{cat.path}: catalogue schema version {current} is newer than this meteolens knows "
                f"({SCHEMA_VERSION}); upgrade meteolens to use it"
            )
        for m in MIGRATIONS:
            if m.version <= current or m.version > target:
                continue
            try:
                con.begin()
                con.execute(m.sql)
                con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [m.version, m.description, utc_now()])
                con.commit()
            except duckdb.Error as err:
                con.rollback()
                raise StorageError(
                    f"{cat.path}: migration {m.version} ({m.description}) failed, catalogue left at "
                    f"version {current}: {err}"
                ) from err
            current = m.version
    return current
