"""Connections to the catalogue file, and the writes and checks every table shares (internal).

Concurrency
-----------
DuckDB lets one *process* hold a database file read-write at a time; a second process that
connects (even read-only) while the first holds it fails with a lock error, and DuckDB does
not wait. meteolens has several processes that touch the catalogue at once: jobs registering
runs and updating their status, verification writing scores, one or more app sessions reading.
Three designs were possible:

1. one long-lived connection per process, retrying on the lock error: the first process to
   connect starves every other one for as long as it lives (an app session for hours);
2. a catalogue server process that owns the file and answers the others: robust, but one more
   service to run and a network protocol for a laptop tool;
3. **short-lived access under an inter-process lock** (chosen): every operation takes
   ``catalog.duckdb.lock`` with :class:`filelock.FileLock` (an OS ``flock``, released by the
   kernel if the holder dies, so a killed job cannot wedge the catalogue), attaches the file,
   runs its statements in one transaction, commits and detaches, then releases the lock.

The file is ``ATTACH``-ed to one in-memory DuckDB kept per process rather than opened with a
fresh ``duckdb.connect``: creating a DuckDB instance costs tens of milliseconds, attaching a
file a few, and ``DETACH`` releases DuckDB's own file lock exactly as closing does. Operations
are small (a row, a few thousand scores), so the lock is held for milliseconds; waiting
processes poll it until :attr:`Catalog.timeout`. Detaching does not checkpoint: each commit is
durable in DuckDB's write-ahead log (fsynced at commit), the next attach replays it, and DuckDB
folds the log into the file once it exceeds 1 MB. That halves the cost of a write.
Because every write is one transaction and readers connect only between writers, a reader
sees committed state only: never a half-registered run or half the rows of a score batch.
The connection is also retried for a short while if DuckDB itself reports a lock error, which
happens when some tool outside meteolens (a ``duckdb`` shell) holds the file.
Scaling beyond one machine replaces this class by one with the same methods over a server
database (DESIGN.md, "Scale").
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from filelock import FileLock, Timeout

from engine.errors import StorageError
from engine.storage.catalog.tables import scalar, select_incoming

#: WAL size at which DuckDB folds it into the file: bounds what each attach has to replay.
_WAL_LIMIT = "1MB"

#: Name under which the catalogue file is attached to the in-memory DuckDB of each process.
_ALIAS = "meteolens_catalog"


class CatalogBase:
    """Short-lived, locked access to the catalogue file (see the module docstring).

    Holds no open file: every operation attaches the file under the inter-process lock and
    detaches it again. :class:`engine.storage.catalog.Catalog` adds the tables' methods and
    migrates the file on opening; this class alone is what :func:`~engine.storage.catalog.migrate`
    needs to reach a file that may not have a schema yet.

    Parameters
    ----------
    path : path-like
        The DuckDB file.
    timeout : float, default 60
        Seconds to wait for the catalogue lock.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 60.0) -> None:
        self.path = Path(path).expanduser().absolute()
        self.timeout = float(timeout)
        self._lock = FileLock(f"{self.path}.lock", timeout=self.timeout)
        # Threads of one process (app sessions) share the instance; they take turns here
        # before contending for the file lock, and never use the DuckDB connection at once.
        self._thread_lock = threading.RLock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._pid = -1

    def __repr__(self) -> str:
        return f"Catalog({str(self.path)!r})"

    def _engine(self) -> duckdb.DuckDBPyConnection:
        """This process's in-memory DuckDB, into which the catalogue file is attached per operation.

        Creating a DuckDB instance costs tens of milliseconds; ``ATTACH``/``DETACH`` of the file
        on a long-lived in-memory instance costs a few, and ``DETACH`` releases DuckDB's file
        lock just as closing would. A new instance is made after ``fork``: DuckDB state must
        not be shared between processes.
        """
        if self._con is None or self._pid != os.getpid():
            self._con = duckdb.connect(":memory:", config={"checkpoint_threshold": _WAL_LIMIT})
            # Detaching would otherwise checkpoint (rewrite and fsync the file) on every
            # operation, doubling the cost of a write; commits are already durable in the WAL.
            self._con.execute("PRAGMA disable_checkpoint_on_shutdown")
            self._pid = os.getpid()
        return self._con

    @contextlib.contextmanager
    def _connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """The catalogue attached (as the default database) under the inter-process lock."""
        with self._thread_lock:
            try:
                self._lock.acquire(timeout=self.timeout)
            except Timeout as err:
                raise StorageError(
                    f"{self.path}: catalogue busy: another process held {self._lock.lock_file} "
                    f"for over {self.timeout:g} s"
                ) from err
            try:
                con = self._engine()
                self._attach(con, read_only=read_only)
                try:
                    yield con
                finally:
                    self._detach(con)
            finally:
                self._lock.release()

    def _attach(self, con: duckdb.DuckDBPyConnection, *, read_only: bool) -> None:
        target = str(self.path).replace("'", "''")
        mode = " (READ_ONLY)" if read_only else ""
        deadline = time.monotonic() + min(self.timeout, 10.0)
        delay = 0.01
        while True:
            try:
                con.execute(f"ATTACH '{target}' AS {_ALIAS}{mode}")
                con.execute(f"USE {_ALIAS}")
                return
            except duckdb.IOException as err:
                # A lock error here means a process outside meteolens' lock (a duckdb shell)
                # holds the file: wait a little. Any other I/O error is final.
                if "lock" not in str(err).lower() or time.monotonic() > deadline:
                    raise StorageError(f"{self.path}: cannot open the catalogue: {err}") from err
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
            except duckdb.Error as err:
                raise StorageError(f"{self.path}: cannot open the catalogue: {err}") from err

    @staticmethod
    def _detach(con: duckdb.DuckDBPyConnection) -> None:
        # A transaction left open by an exception would keep the file attached (and locked).
        with contextlib.suppress(duckdb.Error):
            con.rollback()
        with contextlib.suppress(duckdb.Error):
            con.execute("USE memory")
        con.execute(f"DETACH DATABASE IF EXISTS {_ALIAS}")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection with an open transaction, committed on success, rolled back otherwise."""
        with self._connect() as con:
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    @property
    def schema_version(self) -> int:
        """The catalogue's schema version (latest migration applied)."""
        with self._connect(read_only=True) as con:
            return int(scalar(con, "SELECT max(version) FROM schema_migrations"))

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run a read-only SQL query and return its result (the connection is read-only).

        For ad-hoc analysis and app pages that need a join the methods do not offer.

        Raises
        ------
        StorageError
            The query fails (including any attempt to write).
        """
        with self._connect(read_only=True) as con:
            try:
                return con.execute(sql, params).df()
            except duckdb.Error as err:
                raise StorageError(f"{self.path}: query failed: {err}") from err

    # -- shared by the tables --------------------------------------------------------------

    @staticmethod
    def _replace_rows(
        con: duckdb.DuckDBPyConnection,
        table: str,
        frame: pd.DataFrame,
        columns: Mapping[str, str],
        key: Sequence[str],
    ) -> None:
        """Write ``frame`` into ``table``, first deleting the stored rows that share a ``key`` with it.

        The one bulk write of the catalogue. With the primary key as ``key`` it is an upsert
        (stations, observations); with a score's identity, re-scoring replaces the score; with
        ``(run_id, station_id, variable)`` a new batch of point forecasts replaces the whole
        series. Keys compare with ``IS NOT DISTINCT FROM``, so a missing threshold matches a
        missing threshold, and on the cast columns, so an interval matches an interval. Runs
        inside the caller's transaction: a failure leaves the table as it was.

        Parameters
        ----------
        con : DuckDBPyConnection
            A connection with an open transaction.
        table : str
            Table name.
        frame : DataFrame
            Validated rows (see :func:`~engine.storage.catalog.tables.validated_frame`), one
            column per entry of ``columns``.
        columns : mapping of str to str
            Column name → SQL type.
        key : sequence of str
            Columns whose values identify the rows an incoming row replaces.
        """
        select = select_incoming(columns)
        keys = ", ".join(key)
        match = " AND ".join(f"t.{k} IS NOT DISTINCT FROM i.{k}" for k in key)
        con.register("incoming", frame)
        try:
            con.execute(f"DELETE FROM {table} t USING (SELECT DISTINCT {keys} FROM ({select})) i WHERE {match}")
            con.execute(f"INSERT INTO {table} ({', '.join(columns)}) {select}")
        finally:
            # After a failed statement the transaction is aborted and this fails too; the view
            # is then simply replaced by the next register.
            with contextlib.suppress(duckdb.Error):
                con.unregister("incoming")

    def _require_runs(self, con: duckdb.DuckDBPyConnection, run_ids: pd.Series, what: str) -> None:
        wanted = set(run_ids.dropna().astype(str))
        known = {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()}
        unknown = sorted(wanted - known)
        if unknown:
            raise StorageError(
                f"{self.path}: {what} for runs that are not catalogued: {', '.join(unknown[:5])}"
                + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            )

    def _require_stations(self, con: duckdb.DuckDBPyConnection, station_ids: pd.Series, what: str) -> None:
        wanted = set(station_ids.dropna().astype(str))
        known = {r[0] for r in con.execute("SELECT station_id FROM stations").fetchall()}
        unknown = sorted(wanted - known)
        if unknown:
            raise StorageError(
                f"{self.path}: {what} for stations that are not catalogued (upsert_stations first): "
                f"{', '.join(unknown[:5])}" + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            )
