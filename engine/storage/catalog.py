"""The run catalogue: one DuckDB file with runs, stations, observations, point forecasts,
scores and quality reports.

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

Schema and migrations
---------------------
The schema is the ordered list :data:`MIGRATIONS` of ``(version, description, SQL)``. Opening
a catalogue applies the missing ones in order, each in its own transaction together with its
row in ``schema_migrations``, so a failed migration leaves the catalogue at the previous
version. A catalogue from a newer meteolens (a version this code does not know) is refused
rather than written with an older idea of the schema. JSON columns (``parameters``,
``ratings``) are ``VARCHAR`` holding JSON text, which needs no DuckDB extension.

Times are stored as UTC without a zone (``TIMESTAMP``); aware inputs are converted to UTC.
Lead times are ``INTERVAL`` and come back as ``timedelta64``.

Public API: ``Catalog``, ``RunRecord``, ``UnknownRunError``, ``Migration``, ``MIGRATIONS``,
``SCHEMA_VERSION``, ``STATUSES``, ``migrate``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import numpy as np
import pandas as pd
from filelock import FileLock, Timeout

from engine.errors import StorageError, UnknownNameError
from engine.storage.jsonable import jsonable

#: Run statuses, in lifecycle order.
STATUSES: tuple[str, ...] = ("queued", "running", "succeeded", "failed")

#: Allowed status transitions. A queued run may fail without running (invalid spec, cancelled).
_TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "failed"}),
    "running": frozenset({"succeeded", "failed"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
}

#: WAL size at which DuckDB folds it into the file: bounds what each attach has to replay.
_WAL_LIMIT = "1MB"

#: Name under which the catalogue file is attached to the in-memory DuckDB of each process.
_ALIAS = "meteolens_catalog"

_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


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

# Column types of the bulk-insert tables: every insert SELECTs with explicit casts, so a
# pandas column that is all None, or pandas' string dtype, lands with the declared type.
_STATION_COLS = {
    "station_id": "VARCHAR",
    "name": "VARCHAR",
    "lat": "DOUBLE",
    "lon": "DOUBLE",
    "elevation": "DOUBLE",
    "source": "VARCHAR",
}
_OBS_COLS = {"station_id": "VARCHAR", "time": "TIMESTAMP", "variable": "VARCHAR", "value": "DOUBLE"}
_POINT_COLS = {
    "run_id": "VARCHAR",
    "station_id": "VARCHAR",
    "init_time": "TIMESTAMP",
    "lead_time": "INTERVAL",
    "valid_time": "TIMESTAMP",
    "variable": "VARCHAR",
    "value": "DOUBLE",
    "member": "INTEGER",
}
_SCORE_COLS = {
    "run_id": "VARCHAR",
    "reference": "VARCHAR",
    "variable": "VARCHAR",
    "lead_time": "INTERVAL",
    "metric": "VARCHAR",
    "threshold": "DOUBLE",
    "scale": "DOUBLE",
    "region": "VARCHAR",
    "value": "DOUBLE",
    "created": "TIMESTAMP",
}
#: Columns identifying one score: re-inserting a score with the same key replaces it.
_SCORE_KEY = ("run_id", "reference", "variable", "lead_time", "metric", "threshold", "scale", "region")

_RUN_COLUMNS = (
    "run_id",
    "model",
    "kind",
    "domain",
    "init_time",
    "status",
    "error",
    "path",
    "created",
    "started",
    "finished",
    "compute_seconds",
    "device",
    "host",
    "pid",
    "parameters",
)


class UnknownRunError(UnknownNameError):
    """A run id that is not in the catalogue.

    Unlike the generic :class:`UnknownNameError` it does not list every run (a catalogue holds
    thousands); it names the catalogue, the number of runs and up to three close matches.
    """

    def __init__(self, run_id: str, catalog_path: Path, n_runs: int, close: Sequence[str] = ()) -> None:
        self.kind, self.name, self.available = "run", run_id, list(close)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        Exception.__init__(self, f"{catalog_path}: unknown run {run_id!r} ({n_runs} runs catalogued{hint})")


@dataclass(frozen=True)
class RunRecord:
    """One row of the ``runs`` table.

    Attributes
    ----------
    run_id, model, kind : str
        Identity of the run; ``kind`` is the job kind (``"nowcast"``, ``"global"``...).
    domain : str or None
        Region name or description, when the job has one.
    init_time : Timestamp or None
        Forecast initial time (UTC, no zone).
    parameters : dict
        The job spec's parameters (decoded JSON).
    status : str
        One of :data:`STATUSES`.
    error : str or None
        Why a failed run failed.
    path : Path or None
        The run store, once written.
    created, started, finished : Timestamp or None
        Registration, start and end times (UTC, no zone).
    compute_seconds : float or None
        Compute time reported by the job.
    device : str or None
        Device the job ran on (``"cpu"``, ``"cuda:0"``).
    host, pid : str or None, int or None
        Machine and process that set the run ``running`` (to detect abandoned runs).
    """

    run_id: str
    model: str
    kind: str
    domain: str | None
    init_time: pd.Timestamp | None
    parameters: dict[str, Any]
    status: str
    error: str | None
    path: Path | None
    created: pd.Timestamp
    started: pd.Timestamp | None
    finished: pd.Timestamp | None
    compute_seconds: float | None
    device: str | None
    host: str | None = None
    pid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the record (times as ISO text, path as text)."""
        return {name: jsonable(getattr(self, name)) for name in self.__dataclass_fields__}


def _now() -> dt.datetime:
    """Current UTC time without zone, the catalogue's convention."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """The value of a one-row query (an aggregate such as ``SELECT max(...)``)."""
    row = con.execute(sql).fetchone()
    if row is None:
        raise StorageError(f"no row from {sql!r}")
    return row[0]


def _utc_naive(value: Any, what: str) -> dt.datetime | None:
    """A timestamp-like value as a naive UTC datetime (aware values converted to UTC)."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as err:
        raise StorageError(f"{what}={value!r}: not a time ({err})") from err
    if ts is pd.NaT:
        return None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime(warn=False)


def _ts(value: Any) -> pd.Timestamp | None:
    return None if value is None or value is pd.NaT else pd.Timestamp(value)


def migrate(path: str | os.PathLike[str], *, up_to: int | None = None, timeout: float = 60.0) -> int:
    """Create or migrate the catalogue at ``path`` to schema version ``up_to`` (default: latest).

    Parameters
    ----------
    path : path-like
        The DuckDB file; created (with its folder) if missing.
    up_to : int, optional
        Stop after this version. Older versions are for tests and tooling; normal code opens
        :class:`Catalog`, which migrates to the latest.
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
    cat = Catalog.__new__(Catalog)
    cat._setup(Path(path), timeout)
    if cat.path.exists():
        # Fast path, read-only: an up-to-date catalogue (the usual case) needs no write access,
        # so opening one costs a shared read and works on a read-only file system too.
        try:
            with cat._connect(read_only=True) as con:
                current = _scalar(con, "SELECT max(version) FROM schema_migrations")
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
        current = _scalar(con, "SELECT coalesce(max(version), 0) FROM schema_migrations")
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
                con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [m.version, m.description, _now()])
                con.commit()
            except duckdb.Error as err:
                con.rollback()
                raise StorageError(
                    f"{cat.path}: migration {m.version} ({m.description}) failed, catalogue left at "
                    f"version {current}: {err}"
                ) from err
            current = m.version
    return current


class Catalog:
    """The DuckDB catalogue of runs and verification data.

    Every method opens a short-lived connection under an inter-process lock (see the module
    docstring), so instances are cheap, hold no open file, and may be shared between threads
    or created in each process.

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
        self._setup(Path(path), timeout)
        if not create and not self.path.exists():
            raise StorageError(f"{self.path}: no catalogue here")
        migrate(self.path, timeout=timeout)

    def _setup(self, path: Path, timeout: float) -> None:
        self.path = path.expanduser().absolute()
        self.timeout = float(timeout)
        self._lock = FileLock(f"{self.path}.lock", timeout=self.timeout)
        # Threads of one process (app sessions) share the instance; they take turns here
        # before contending for the file lock, and never use the DuckDB connection at once.
        self._thread_lock = threading.RLock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._pid = -1

    def __repr__(self) -> str:
        return f"Catalog({str(self.path)!r})"

    # -- connections ---------------------------------------------------------------------

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
            return int(_scalar(con, "SELECT max(version) FROM schema_migrations"))

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

    # -- runs ----------------------------------------------------------------------------

    def register_run(
        self,
        run_id: str,
        model: str,
        kind: str,
        domain: str | None,
        init_time: Any,
        parameters: Mapping[str, Any] | None,
        status: str = "queued",
        path: str | os.PathLike[str] | None = None,
        device: str | None = None,
    ) -> RunRecord:
        """Add a run to the catalogue.

        Parameters
        ----------
        run_id : str
            Unique id, also the store's file name: letters, digits, ``._-`` (see
            :func:`engine.jobs.runner.new_run_id`).
        model, kind : str
            Model name and job kind.
        domain : str or None
            Region name, if any.
        init_time : datetime-like or None
            Forecast initial time; aware times are converted to UTC.
        parameters : mapping or None
            Job parameters, stored as JSON.
        status : str, default "queued"
            Initial status (normally ``"queued"``; any of :data:`STATUSES` to import old runs).
        path : path-like, optional
            The run store, when it already exists.
        device : str, optional
            Device the run will use or used.

        Returns
        -------
        RunRecord

        Raises
        ------
        StorageError
            The id is malformed or already catalogued, or an argument is invalid.
        """
        if not isinstance(run_id, str) or not _RUN_ID_RE.match(run_id):
            raise StorageError(
                f"run_id={run_id!r}: expected 1-200 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        if status not in STATUSES:
            raise StorageError(f"status={status!r}: expected one of {', '.join(STATUSES)}")
        for name, value in (("model", model), ("kind", kind)):
            if not isinstance(value, str) or not value:
                raise StorageError(f"{name}={value!r}: expected a non-empty string")
        try:
            params_json = json.dumps(jsonable(dict(parameters or {})), allow_nan=False)
        except TypeError as err:
            raise StorageError(f"parameters of run {run_id}: {err}") from err
        now = _now()
        terminal = status in ("succeeded", "failed")
        row = [
            run_id,
            model,
            kind,
            domain,
            _utc_naive(init_time, "init_time"),
            params_json,
            status,
            None if path is None else str(Path(path).absolute()),
            now,
            now if status != "queued" else None,
            now if terminal else None,
            device,
        ]
        with self._transaction() as con:
            try:
                con.execute(
                    "INSERT INTO runs (run_id, model, kind, domain, init_time, parameters, status, path, created,"
                    " started, finished, device) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
            except duckdb.ConstraintException as err:
                raise StorageError(f"{self.path}: run {run_id!r} is already catalogued") from err
            return self._fetch_run(con, run_id)

    def set_status(
        self,
        run_id: str,
        status: str,
        *,
        error: str | None = None,
        path: str | os.PathLike[str] | None = None,
        compute_seconds: float | None = None,
        device: str | None = None,
    ) -> RunRecord:
        """Move a run to a new status (queued → running → succeeded | failed; queued → failed).

        ``started``, ``host`` and ``pid`` (of the calling process) are stamped on ``running``,
        ``finished`` on ``succeeded``/``failed``. ``error``,
        ``path``, ``compute_seconds`` and ``device`` are updated when given, kept otherwise.

        Returns
        -------
        RunRecord
            The updated row.

        Raises
        ------
        UnknownRunError
            ``run_id`` is not catalogued.
        StorageError
            ``status`` is unknown or the transition is not allowed (e.g. succeeded → running).
        """
        if status not in STATUSES:
            raise StorageError(f"status={status!r}: expected one of {', '.join(STATUSES)}")
        now = _now()
        with self._transaction() as con:
            row = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
            if row is None:
                raise self._unknown_run(con, run_id)
            current = row[0]
            if status not in _TRANSITIONS[current]:
                allowed = ", ".join(sorted(_TRANSITIONS[current])) or "none (final)"
                raise StorageError(
                    f"run {run_id}: cannot go from {current!r} to {status!r}; allowed from {current!r}: {allowed}"
                )
            con.execute(
                """
                UPDATE runs SET
                    status = ?,
                    error = coalesce(?, error),
                    path = coalesce(?, path),
                    compute_seconds = coalesce(?, compute_seconds),
                    device = coalesce(?, device),
                    started = CASE WHEN ? THEN ? ELSE started END,
                    host = CASE WHEN ? THEN ? ELSE host END,
                    pid = CASE WHEN ? THEN ? ELSE pid END,
                    finished = CASE WHEN ? THEN ? ELSE finished END
                WHERE run_id = ?
                """,
                [
                    status,
                    error,
                    None if path is None else str(Path(path).absolute()),
                    None if compute_seconds is None else float(compute_seconds),
                    device,
                    status == "running",
                    now,
                    status == "running",
                    socket.gethostname(),
                    status == "running",
                    os.getpid(),
                    status in ("succeeded", "failed"),
                    now,
                    run_id,
                ],
            )
            return self._fetch_run(con, run_id)

    def annotate_run(
        self,
        run_id: str,
        *,
        model: str | None = None,
        domain: str | None = None,
        init_time: Any = None,
        device: str | None = None,
        sources: Sequence[Mapping[str, Any]] | None = None,
    ) -> RunRecord:
        """Fill in run metadata known only once the job ran (model version, domain, init time, device).

        ``sources`` (the :meth:`engine.sources.Source.provenance` records of what the job read)
        is stored in the run's parameters under ``"sources"``. Arguments left as ``None`` keep
        their value.

        Raises
        ------
        UnknownRunError
            ``run_id`` is not catalogued.
        """
        with self._transaction() as con:
            if con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone() is None:
                raise self._unknown_run(con, run_id)
            con.execute(
                "UPDATE runs SET model = coalesce(?, model), domain = coalesce(?, domain),"
                " init_time = coalesce(?, init_time), device = coalesce(?, device) WHERE run_id = ?",
                [model, domain, _utc_naive(init_time, "init_time"), device, run_id],
            )
            if sources is not None:
                params = self._fetch_run(con, run_id).parameters
                try:
                    text = json.dumps(jsonable({**params, "sources": list(sources)}), allow_nan=False)
                except (TypeError, ValueError) as err:
                    raise StorageError(f"sources of run {run_id}: {err}") from err
                con.execute("UPDATE runs SET parameters = ? WHERE run_id = ?", [text, run_id])
            return self._fetch_run(con, run_id)

    def fail_abandoned_runs(self) -> list[str]:
        """Mark ``failed`` the runs left ``running`` by processes of this host that no longer exist.

        A job killed outright (SIGKILL, out of memory, power loss) cannot record its own
        failure; its run would stay ``running`` for ever. Runs started on other hosts are left
        alone (their processes cannot be checked from here), and so are runs whose process
        still exists.

        Returns
        -------
        list of str
            The run ids marked failed.
        """
        host = socket.gethostname()
        abandoned = []
        with self._transaction() as con:
            rows = con.execute("SELECT run_id, pid FROM runs WHERE status = 'running' AND host = ?", [host]).fetchall()
            for run_id, pid in rows:
                if pid is None or _process_exists(int(pid)):
                    continue
                con.execute(
                    "UPDATE runs SET status = 'failed', finished = ?, error = ? WHERE run_id = ?",
                    [_now(), f"abandoned: process {pid} on {host} ended without finishing the run", run_id],
                )
                abandoned.append(run_id)
        return abandoned

    def get_run(self, run_id: str) -> RunRecord:
        """The catalogue row of one run.

        Raises
        ------
        UnknownRunError
            ``run_id`` is not catalogued (the message suggests close matches).
        """
        with self._connect(read_only=True) as con:
            return self._fetch_run(con, run_id)

    def has_run(self, run_id: str) -> bool:
        """Whether ``run_id`` is catalogued."""
        with self._connect(read_only=True) as con:
            return con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone() is not None

    def _fetch_run(self, con: duckdb.DuckDBPyConnection, run_id: str) -> RunRecord:
        row = con.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise self._unknown_run(con, run_id)
        rec = dict(zip(_RUN_COLUMNS, row, strict=True))
        return RunRecord(
            run_id=rec["run_id"],
            model=rec["model"],
            kind=rec["kind"],
            domain=rec["domain"],
            init_time=_ts(rec["init_time"]),
            parameters=json.loads(rec["parameters"] or "{}"),
            status=rec["status"],
            error=rec["error"],
            path=None if rec["path"] is None else Path(rec["path"]),
            created=pd.Timestamp(rec["created"]),
            started=_ts(rec["started"]),
            finished=_ts(rec["finished"]),
            compute_seconds=rec["compute_seconds"],
            device=rec["device"],
            host=rec["host"],
            pid=rec["pid"],
        )

    def _unknown_run(self, con: duckdb.DuckDBPyConnection, run_id: str) -> UnknownRunError:
        ids = [r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()]
        close = difflib.get_close_matches(str(run_id), ids, n=3, cutoff=0.6)
        return UnknownRunError(str(run_id), self.path, len(ids), close)

    def list_runs(self, status: str | None = None, kind: str | None = None, limit: int | None = None) -> pd.DataFrame:
        """Runs, newest first.

        Parameters
        ----------
        status : str, optional
            Only runs with this status (one of :data:`STATUSES`).
        kind : str, optional
            Only runs of this job kind.
        limit : int, optional
            At most this many rows.

        Returns
        -------
        DataFrame
            Columns ``run_id, model, kind, domain, init_time, status, error, path, created,
            started, finished, compute_seconds, device, host, pid, parameters``
            (``parameters`` as JSON text).

        Raises
        ------
        UnknownNameError
            ``status`` is not a run status.
        StorageError
            ``limit`` is not a positive integer.
        """
        where, params = [], []
        if status is not None:
            if status not in STATUSES:
                raise UnknownNameError("run status", status, STATUSES)
            where.append("status = ?")
            params.append(status)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        sql = f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created DESC, run_id DESC"
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 1:
                raise StorageError(f"limit={limit!r}: expected a positive integer")
            sql += f" LIMIT {int(limit)}"
        with self._connect(read_only=True) as con:
            return con.execute(sql, params).df()

    def delete_run(self, run_id: str, *, delete_store: bool = True) -> None:
        """Remove a run: its row, scores, quality reports, point forecasts and (by default) its store.

        The store is first renamed to a hidden name, then the rows are deleted in one
        transaction; if that fails the store is renamed back, so the catalogue never points
        at a store that is gone, and the data is removed only once both steps succeeded.

        Raises
        ------
        UnknownRunError
            ``run_id`` is not catalogued.
        StorageError
            The recorded path exists but is not a zarr store (it is then left untouched, as is
            the row), or the store cannot be moved.
        """
        with self._connect() as con:
            row = con.execute("SELECT path FROM runs WHERE run_id = ?", [run_id]).fetchone()
            if row is None:
                raise self._unknown_run(con, run_id)
            store = Path(row[0]) if (delete_store and row[0]) else None
            trash: Path | None = None
            if store is not None and store.exists():
                if not (store.is_dir() and (store / "zarr.json").is_file()):
                    # Never rmtree a path that is not a run store: a hand-edited row must not
                    # be able to delete somebody's folder.
                    raise StorageError(f"{store}: recorded as the store of run {run_id} but is not a zarr store")
                trash = store.with_name(f".{store.name}.del-{uuid.uuid4().hex}")
                try:
                    os.rename(store, trash)
                except OSError as err:
                    raise StorageError(f"{store}: cannot remove run store: {err}") from err
            try:
                con.begin()
                for table in ("scores", "quality_reports", "point_forecasts", "runs"):
                    con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
                con.commit()
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.rollback()
                if trash is not None:
                    os.rename(trash, store)  # type: ignore[arg-type]
                raise
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)

    # -- scores --------------------------------------------------------------------------

    def insert_scores(self, df: pd.DataFrame) -> int:
        """Insert verification scores (long format); a score with the same key replaces the old one.

        Parameters
        ----------
        df : DataFrame
            Required columns ``run_id, variable, metric, value``; optional ``reference`` (run id
            or dataset the run was verified against), ``lead_time`` (timedelta64; missing =
            aggregated over lead times), ``threshold`` (units of the variable), ``scale``
            (neighbourhood size, e.g. FSS window in grid points or km), ``region``, ``created``.
            The key is ``run_id, reference, variable, lead_time, metric, threshold, scale, region``.

        Returns
        -------
        int
            Number of rows written.

        Raises
        ------
        StorageError
            Missing or unknown columns, a run that is not catalogued, a non-timedelta lead time.
        """
        frame = self._frame(df, _SCORE_COLS, required=("run_id", "variable", "metric", "value"), table="scores")
        frame["created"] = frame["created"].fillna(pd.Timestamp(_now()))
        frame = frame.drop_duplicates(subset=list(_SCORE_KEY), keep="last")
        match = " AND ".join(f"s.{k} IS NOT DISTINCT FROM i.{k}" for k in _SCORE_KEY)
        with self._transaction() as con:
            self._require_runs(con, frame["run_id"], "scores")
            con.register("incoming", frame)
            con.execute(f"DELETE FROM scores s USING ({self._select(_SCORE_COLS)}) i WHERE {match}")
            con.execute(f"INSERT INTO scores {self._select(_SCORE_COLS)}")
            con.unregister("incoming")
        return len(frame)

    def scores(self, run_id: str | Sequence[str] | None = None, **filters: Any) -> pd.DataFrame:
        """Scores, optionally filtered.

        Parameters
        ----------
        run_id : str or sequence of str, optional
            Only these runs.
        **filters
            Column = value filters on ``reference, variable, lead_time, metric, threshold, scale,
            region``; a list or tuple means "any of", ``None`` means "is missing".

        Returns
        -------
        DataFrame
            Columns of the ``scores`` table, sorted by run, variable, metric, lead time.

        Raises
        ------
        UnknownNameError
            A filter names a column that does not exist.
        """
        if run_id is not None:
            filters = {"run_id": run_id, **filters}
        where, params = self._where(filters, _SCORE_COLS, "score column")
        sql = f"SELECT {', '.join(_SCORE_COLS)} FROM scores{where} ORDER BY run_id, variable, metric, lead_time"
        with self._connect(read_only=True) as con:
            return con.execute(sql, params).df()

    # -- quality reports -----------------------------------------------------------------

    def insert_quality_report(
        self,
        run_id: str,
        *,
        scope: str,
        ratings: Mapping[str, Any],
        grade: float | None,
        text: str,
        reference: str | None = None,
        lead_time: Any = None,
    ) -> None:
        """Store one quality report (RadarQA-style) of a run; replaces a report with the same key.

        Parameters
        ----------
        run_id : str
            The forecast run assessed.
        scope : {"frame", "sequence"}
            A single lead time (``frame``) or the whole sequence.
        ratings : mapping
            Attribute name → rating (1-5) and any numbers behind it; stored as JSON.
        grade : float or None
            Overall grade (1-5).
        text : str
            The written assessment.
        reference : str, optional
            What the run was compared with (observed radar product, analysis run id).
        lead_time : timedelta-like, optional
            The frame's lead time (``scope="frame"``); ``None`` for sequences.

        Raises
        ------
        StorageError
            Unknown run, bad scope, ratings not JSON-able, frame without lead time.
        """
        if scope not in ("frame", "sequence"):
            raise StorageError(f"scope={scope!r}: expected 'frame' or 'sequence'")
        if scope == "frame" and lead_time is None:
            raise StorageError(f"quality report of run {run_id}: scope='frame' needs a lead_time")
        if not isinstance(ratings, Mapping):
            raise StorageError(f"ratings: expected a mapping of attribute → rating, got {type(ratings).__name__}")
        try:
            ratings_json = json.dumps(jsonable(dict(ratings)), allow_nan=False)
        except (TypeError, ValueError) as err:
            raise StorageError(f"ratings of run {run_id}: {err}") from err
        lead = None
        if lead_time is not None:
            try:
                lead = pd.Timedelta(lead_time).to_pytimedelta()
            except (TypeError, ValueError) as err:
                raise StorageError(f"lead_time={lead_time!r}: not a time interval ({err})") from err
        grade_value = None if grade is None else float(grade)
        with self._transaction() as con:
            self._require_runs(con, pd.Series([run_id]), "quality report")
            con.execute(
                "DELETE FROM quality_reports WHERE run_id = ? AND reference IS NOT DISTINCT FROM ?"
                " AND scope = ? AND lead_time IS NOT DISTINCT FROM ?",
                [run_id, reference, scope, lead],
            )
            con.execute(
                "INSERT INTO quality_reports VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, reference, scope, lead, ratings_json, grade_value, str(text), _now()],
            )

    def quality_reports(self, run_id: str) -> pd.DataFrame:
        """Quality reports of a run, sequence first then frames by lead time.

        Returns
        -------
        DataFrame
            Columns ``run_id, reference, scope, lead_time, ratings`` (decoded to dicts),
            ``grade, text, created``.
        """
        with self._connect(read_only=True) as con:
            out = con.execute(
                "SELECT * FROM quality_reports WHERE run_id = ? ORDER BY scope DESC, lead_time NULLS FIRST, reference",
                [run_id],
            ).df()
        out["ratings"] = [json.loads(r) for r in out["ratings"]]
        return out

    # -- stations and observations -------------------------------------------------------

    def upsert_stations(self, df: pd.DataFrame) -> int:
        """Insert stations or update them (by ``station_id``).

        Parameters
        ----------
        df : DataFrame
            Required ``station_id, lat, lon`` (degrees north/east); optional ``name``,
            ``elevation`` (m above sea level), ``source``.

        Returns
        -------
        int
            Number of stations written.

        Raises
        ------
        StorageError
            Missing columns, or coordinates outside [-90, 90] / [-180, 360].
        """
        frame = self._frame(df, _STATION_COLS, required=("station_id", "lat", "lon"), table="stations")
        lat = pd.to_numeric(frame["lat"], errors="coerce")
        lon = pd.to_numeric(frame["lon"], errors="coerce")
        bad = ~(lat.between(-90, 90) & lon.between(-180, 360))
        if bad.any():
            ids = ", ".join(map(str, frame.loc[bad, "station_id"].head(5)))
            raise StorageError(
                f"stations: latitude/longitude missing or out of range for {int(bad.sum())} rows ({ids})"
            )
        frame = frame.drop_duplicates(subset=["station_id"], keep="last")
        with self._transaction() as con:
            con.register("incoming", frame)
            con.execute(f"INSERT OR REPLACE INTO stations {self._select(_STATION_COLS)}")
            con.unregister("incoming")
        return len(frame)

    def stations(self, source: str | None = None) -> pd.DataFrame:
        """Stations (all, or those of one ``source``), sorted by id."""
        where, params = self._where({} if source is None else {"source": source}, _STATION_COLS, "station column")
        with self._connect(read_only=True) as con:
            return con.execute(f"SELECT * FROM stations{where} ORDER BY station_id", params).df()

    def insert_observations(self, df: pd.DataFrame) -> int:
        """Insert station observations (long format); an existing (station, variable, time) is replaced.

        Parameters
        ----------
        df : DataFrame
            Columns ``station_id, time, variable, value``; ``variable`` a canonical name with
            canonical units (:mod:`engine.lexicon`); ``time`` datetime (aware → UTC).

        Returns
        -------
        int
            Number of rows written.

        Raises
        ------
        StorageError
            Missing or unknown columns, or stations that are not catalogued (upsert them first).
        """
        frame = self._frame(df, _OBS_COLS, required=tuple(_OBS_COLS), table="observations")
        frame = frame.drop_duplicates(subset=["station_id", "variable", "time"], keep="last")
        with self._transaction() as con:
            self._require_stations(con, frame["station_id"], "observations")
            con.register("incoming", frame)
            con.execute(f"INSERT OR REPLACE INTO observations {self._select(_OBS_COLS)}")
            con.unregister("incoming")
        return len(frame)

    def observations(self, station_id: str, variable: str, start: Any = None, end: Any = None) -> pd.DataFrame:
        """Observations of one station and variable between ``start`` and ``end`` (inclusive), by time.

        Returns
        -------
        DataFrame
            Columns ``station_id, time, variable, value``.
        """
        sql = "SELECT * FROM observations WHERE station_id = ? AND variable = ?"
        params: list[Any] = [station_id, variable]
        if start is not None:
            sql += " AND time >= ?"
            params.append(_utc_naive(start, "start"))
        if end is not None:
            sql += " AND time <= ?"
            params.append(_utc_naive(end, "end"))
        with self._connect(read_only=True) as con:
            return con.execute(sql + " ORDER BY time", params).df()

    # -- point forecasts -----------------------------------------------------------------

    def insert_point_forecasts(self, df: pd.DataFrame) -> int:
        """Insert forecasts matched to stations; replaces earlier rows of the same run, station and variable.

        Parameters
        ----------
        df : DataFrame
            Required ``run_id, station_id, init_time, lead_time`` (timedelta64), ``variable,
            value``; optional ``member`` (ensemble member number; missing for deterministic runs)
            and ``valid_time`` (computed as ``init_time + lead_time`` when absent).

        Returns
        -------
        int
            Number of rows written.

        Raises
        ------
        StorageError
            Missing columns, unknown runs or stations, ``valid_time`` ≠ ``init_time + lead_time``.
        """
        required = ("run_id", "station_id", "init_time", "lead_time", "variable", "value")
        frame = self._frame(df, _POINT_COLS, required=required, table="point_forecasts")
        expected = frame["init_time"] + frame["lead_time"]
        if "valid_time" in df:
            mismatch = frame["valid_time"].notna() & (frame["valid_time"] != expected)
            if mismatch.any():
                raise StorageError(
                    f"point_forecasts: valid_time != init_time + lead_time in {int(mismatch.sum())} rows"
                )
        frame["valid_time"] = expected
        with self._transaction() as con:
            self._require_runs(con, frame["run_id"], "point forecasts")
            self._require_stations(con, frame["station_id"], "point forecasts")
            con.register("incoming", frame)
            con.execute(
                "DELETE FROM point_forecasts p USING (SELECT DISTINCT run_id, station_id, variable FROM incoming) i"
                " WHERE p.run_id = i.run_id AND p.station_id = i.station_id AND p.variable = i.variable"
            )
            con.execute(f"INSERT INTO point_forecasts {self._select(_POINT_COLS)}")
            con.unregister("incoming")
        return len(frame)

    def point_forecasts(self, run_id: str, station_id: str | None = None) -> pd.DataFrame:
        """Point forecasts of a run (at one station, or all), sorted by station, variable, member, time."""
        sql = "SELECT * FROM point_forecasts WHERE run_id = ?"
        params: list[Any] = [run_id]
        if station_id is not None:
            sql += " AND station_id = ?"
            params.append(station_id)
        sql += " ORDER BY station_id, variable, member NULLS FIRST, init_time, lead_time"
        with self._connect(read_only=True) as con:
            return con.execute(sql, params).df()

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _select(columns: Mapping[str, str]) -> str:
        """``SELECT`` from the registered ``incoming`` frame with each column cast to its declared type."""
        return "SELECT " + ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in columns.items()) + " FROM incoming"

    @staticmethod
    def _frame(df: pd.DataFrame, columns: Mapping[str, str], *, required: Sequence[str], table: str) -> pd.DataFrame:
        """Validate ``df`` for ``table`` and return a copy with every column, times as naive UTC."""
        if not isinstance(df, pd.DataFrame):
            raise StorageError(f"{table}: expected a pandas DataFrame, got {type(df).__name__}")
        missing = [c for c in required if c not in df.columns]
        unknown = [str(c) for c in df.columns if c not in columns]
        if missing or unknown:
            raise StorageError(
                f"{table}: missing columns {missing or '[]'}, unknown columns {unknown or '[]'}; "
                f"expected {list(columns)} with {list(required)} required"
            )
        frame = pd.DataFrame(index=range(len(df)))
        for col, sql_type in columns.items():
            if col not in df.columns:
                frame[col] = None
                continue
            values = df[col].reset_index(drop=True)
            # Missing values are data in value columns (a score that could not be computed) but
            # corrupt the key columns (ids, names, times).
            if col in required and sql_type != "DOUBLE" and values.isna().any():
                raise StorageError(f"{table}: column {col!r} has {int(values.isna().sum())} missing values")
            if sql_type == "TIMESTAMP":
                values = _datetime_column(values, table, col)
            elif sql_type == "INTERVAL":
                values = _timedelta_column(values, table, col)
            frame[col] = values
        return frame

    @staticmethod
    def _where(filters: Mapping[str, Any], columns: Mapping[str, str], what: str) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for col, value in filters.items():
            if col not in columns:
                raise UnknownNameError(what, col, columns)
            if value is None:
                clauses.append(f"{col} IS NULL")
            elif isinstance(value, list | tuple | set | frozenset | np.ndarray | pd.Index):
                values = [_param(v) for v in value]
                clauses.append(f"{col} IN ({', '.join('?' * len(values))})" if values else "FALSE")
                params.extend(values)
            else:
                clauses.append(f"{col} = ?")
                params.append(_param(value))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

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


def _process_exists(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return True  # cannot tell (e.g. a platform without signals): do not declare it dead
    return True


def _param(value: Any) -> Any:
    """A filter value as a DuckDB parameter (numpy scalars unwrapped, times as naive UTC)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timedelta | np.timedelta64):
        return pd.Timedelta(value).to_pytimedelta()
    if isinstance(value, dt.datetime | np.datetime64):
        return _utc_naive(value, "filter")
    return value


def _datetime_column(values: pd.Series, table: str, col: str) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values
    if values.isna().all():
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
    try:
        converted = pd.to_datetime(values, utc=True)
    except (TypeError, ValueError) as err:
        raise StorageError(f"{table}: column {col!r} is not a time ({err})") from err
    return converted.dt.tz_localize(None)


def _timedelta_column(values: pd.Series, table: str, col: str) -> pd.Series:
    if pd.api.types.is_timedelta64_dtype(values.dtype):
        return values
    if values.isna().all():
        return pd.Series(pd.NaT, index=values.index, dtype="timedelta64[us]")
    if pd.api.types.is_numeric_dtype(values.dtype):
        # A bare number could be hours, minutes or steps; refusing it beats guessing wrong.
        raise StorageError(
            f"{table}: column {col!r} must be timedelta64, got {values.dtype} "
            "(convert with pd.to_timedelta(hours, unit='h'))"
        )
    try:
        return pd.to_timedelta(values)
    except (TypeError, ValueError) as err:
        raise StorageError(f"{table}: column {col!r} is not a time interval ({err})") from err
