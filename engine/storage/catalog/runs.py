"""The ``runs`` table: registering runs, their status lifecycle, listing and deleting them.

Public API: ``RunsTable`` (mixed into :class:`~engine.storage.catalog.Catalog`), ``RunRecord``,
``UnknownRunError``, ``STATUSES``.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from engine.errors import StorageError, UnknownNameError
from engine.storage.catalog.base import CatalogBase
from engine.storage.catalog.tables import timestamp_or_none, utc_naive, utc_now
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

_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")

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


class RunsTable(CatalogBase):
    """Methods of :class:`~engine.storage.catalog.Catalog` on the ``runs`` table."""

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
        now = utc_now()
        terminal = status in ("succeeded", "failed")
        row = [
            run_id,
            model,
            kind,
            domain,
            utc_naive(init_time, "init_time"),
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
        now = utc_now()
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
                [model, domain, utc_naive(init_time, "init_time"), device, run_id],
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
                    [utc_now(), f"abandoned: process {pid} on {host} ended without finishing the run", run_id],
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
            init_time=timestamp_or_none(rec["init_time"]),
            parameters=json.loads(rec["parameters"] or "{}"),
            status=rec["status"],
            error=rec["error"],
            path=None if rec["path"] is None else Path(rec["path"]),
            created=pd.Timestamp(rec["created"]),
            started=timestamp_or_none(rec["started"]),
            finished=timestamp_or_none(rec["finished"]),
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
