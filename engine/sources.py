"""What a user names as input, resolved once: a catalogued run, a sample dataset, or files.

Every command and job that reads gridded fields takes a *source* as text:

``run:<run id>``
    A catalogued run (its store); a bare run id works too when a catalogue is given.
``dataset:<name>``
    A sample dataset of ``assets/datasets.toml``; a bare dataset name works too.
a file, a folder (its visible files), a glob, or a run store folder (``*.zarr``)
    Files are read by the reader detected for each; a sequence of several names is one
    source made of all their files (``--input a.gif b.gif``).

:func:`resolve_source` turns the text into a frozen :class:`Source` (its kind, name, the paths
resolved and, for runs, the run id), which :meth:`Source.open` opens as the canonical
Dataset and :meth:`Source.provenance` describes as JSON. The executor records the sources a
job opened (:func:`record_sources`) in the run store's attributes and the catalogue's
parameters (``"sources"``), so :func:`run_source` answers "which source did run X read"
from that record instead of guessing from the parameters (a fallback for runs catalogued
before sources were recorded still matches their ``inputs`` against the sample datasets).

Public API: ``Source``, ``SOURCE_KINDS``, ``resolve_source``, ``resolve``, ``record_sources``,
``run_store_path``, ``open_run``, ``run_source``.
"""

from __future__ import annotations

import contextlib
import contextvars
import glob
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import xarray as xr

from engine import datasets
from engine.errors import ReaderError, StorageError

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.storage.catalog import Catalog, RunRecord

SourceKind = Literal["run", "dataset", "files"]
#: The kinds of :class:`Source`.
SOURCE_KINDS: tuple[SourceKind, ...] = ("run", "dataset", "files")

_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Source:
    """A resolved input: what was named, of which kind, and the paths it stands for.

    Attributes
    ----------
    kind : {"run", "dataset", "files"}
        A run store, a sample dataset, or plain files.
    name : str
        The run id, the dataset's catalogue name, or the file names as given (space-separated).
    paths : tuple of Path
        The run store folder, or the files (sorted for a dataset; in the order given otherwise,
        without duplicates). Absolute.
    run_id : str or None
        The run id, for ``kind == "run"`` when known (a store opened by path without
        provenance has none).
    format : str or None
        The reader of a dataset's files (from the catalogue); detected per file otherwise.
    member_of : str or None
        For files: the sample dataset they all belong to, when they do (e.g. radar frames
        picked from a sample event with ``--init``); the dataset's own name for a dataset.
    data_root : Path or None
        The sample data folder a dataset was resolved in (not part of the provenance).
    """

    kind: SourceKind
    name: str
    paths: tuple[Path, ...]
    run_id: str | None = None
    format: str | None = None
    member_of: str | None = None
    data_root: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"Source.kind={self.kind!r}: expected one of {', '.join(SOURCE_KINDS)}")
        if not self.paths:
            raise ValueError(f"Source {self.name!r}: no paths")

    @property
    def label(self) -> str:
        """``run:<id>``, ``dataset:<name>`` or ``files:<as given>`` (the ``reference`` of scores)."""
        if self.kind == "run":
            return f"run:{self.run_id or self.paths[0]}"
        return f"{'dataset' if self.kind == 'dataset' else 'files'}:{self.name}"

    @property
    def dataset(self) -> str | None:
        """The sample dataset this source is, or is part of; ``None`` for runs and other files."""
        return self.member_of

    def open(
        self, *, variables: Sequence[str] | None = None, opened: Mapping[Path, xr.Dataset] | None = None
    ) -> xr.Dataset:
        """The source as one canonical Dataset (lazy for run stores).

        Recorded by :func:`record_sources` when a recorder is active (the executor's, while a
        job runs).

        Parameters
        ----------
        variables : sequence of str, optional
            Canonical variables to keep (files and datasets); all when omitted.
        opened : mapping of Path to Dataset, optional
            Files already decoded (with the same ``variables``), used instead of reading them
            again; only for ``kind == "files"``.

        Raises
        ------
        ReaderError, StorageError
            From the readers or the run store, naming the path.
        """
        from engine.readers import concat_opened, open_any
        from engine.storage.zarr_store import open_run_store

        recorder = _RECORDER.get()
        if recorder is not None and self not in recorder:
            recorder.append(self)
        if self.kind == "run":
            return open_run_store(self.paths[0])
        if self.kind == "dataset":
            return datasets.open_dataset(self.name, self.data_root, variables=variables)
        have = opened or {}
        if len(self.paths) == 1:
            return have.get(self.paths[0]) or open_any(self.paths[0], format=self.format, variables=variables)
        parts = [have.get(p) or open_any(p, format=self.format, variables=variables) for p in self.paths]
        return concat_opened(parts, self.paths)

    def provenance(self) -> dict[str, Any]:
        """JSON-able record of the source: ``kind``, ``name``, ``paths``, ``run_id``, ``format``, ``member_of``."""
        return {
            "kind": self.kind,
            "name": self.name,
            "paths": [str(p) for p in self.paths],
            "run_id": self.run_id,
            "format": self.format,
            "member_of": self.member_of,
        }

    @classmethod
    def from_provenance(cls, record: Mapping[str, Any]) -> Source:
        """The :class:`Source` a :meth:`provenance` record describes (paths are not checked).

        Raises
        ------
        StorageError
            The record is not a source record.
        """
        try:
            return cls(
                kind=record["kind"],
                name=str(record["name"]),
                paths=tuple(Path(p) for p in record["paths"]),
                run_id=record.get("run_id"),
                format=record.get("format"),
                member_of=record.get("member_of"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise StorageError(f"not a recorded source: {dict(record)!r} ({err})") from None


# ------------------------------------------------------------------------------------ resolving


def resolve_source(
    name: str | Sequence[str],
    settings: Settings | None = None,
    *,
    catalog: Catalog | None = None,
    what: str = "--input",
) -> Source:
    """Resolve what a user named into a :class:`Source`.

    Parameters
    ----------
    name : str or sequence of str
        ``run:<id>``, ``dataset:<name>``, a bare dataset name or run id, a file, a folder, a
        glob or a run store folder; several names make one ``files`` source of all their files
        (runs cannot be combined).
    settings : Settings, optional
        The sample data folder (for datasets) and the store (for run ids, when ``catalog`` is
        not given). Without it only files and store folders resolve.
    catalog : Catalog, optional
        The catalogue for run ids; the one of ``settings`` (when it exists) by default.
    what : str
        The argument's name, for the messages (``--input``, ``--against``, ``--dem``).

    Raises
    ------
    ReaderError
        A missing file, a glob matching nothing, a dataset without files here, or a name that
        is none of these (the message lists the datasets and says how runs are named).
    UnknownNameError
        ``dataset:<name>`` of an unknown dataset (the message lists the known ones);
        ``run:<id>`` of an unknown run (:class:`~engine.storage.catalog.UnknownRunError`).
    StorageError
        A run that has no store (failed, running, or an import without data).
    """
    data_root = settings.data_root if settings is not None else None
    return resolve(name, data_root, lambda run_id: _catalog(settings, catalog, what, run_id), what=what)


#: ``catalog_for(run_id)``: the catalogue to look ``run_id`` up in (``None``: a bare name, no catalogue).
CatalogFor = Callable[[str | None], "Catalog | None"]


def resolve(
    name: str | Sequence[str], data_root: Path | None, catalog_for: CatalogFor, *, what: str = "--input"
) -> Source:
    """:func:`resolve_source` with the data folder and the catalogue lookup given separately."""
    items = [name] if isinstance(name, str) else [str(n) for n in name]
    if not items or any(not item for item in items):
        raise ReaderError(Path("."), f"{what}: give a run, a dataset name or files")
    if len(items) == 1:
        return _resolve_one(items[0], data_root, catalog_for, what)
    parts = [_resolve_one(item, data_root, catalog_for, what) for item in items]
    runs = [p.name for p in parts if p.kind == "run"]
    if runs:
        raise ReaderError(Path(runs[0]), f"{what}: a run cannot be combined with other inputs")
    paths = tuple(dict.fromkeys(p for part in parts for p in part.paths))
    formats = {part.format for part in parts}
    return Source(
        "files",
        " ".join(items),
        paths,
        format=formats.pop() if len(formats) == 1 else None,
        member_of=_dataset_of(paths, data_root),
        data_root=data_root,
    )


def _resolve_one(item: str, data_root: Path | None, catalog_for: CatalogFor, what: str) -> Source:
    prefix, _, rest = item.partition(":")
    if prefix == "run" and rest:
        return _run(rest, catalog_for(rest), what)
    if prefix == "dataset" and rest:
        return _dataset(datasets.get(rest).name, data_root, what)
    p = Path(item).expanduser()
    if p.is_dir() and _is_store(p):
        return _store(p.absolute())
    if p.is_file():
        paths: tuple[Path, ...] = (p.absolute(),)
    elif p.is_dir():
        paths = tuple(sorted(q.absolute() for q in p.iterdir() if q.is_file() and not q.name.startswith(".")))
        if not paths:
            raise ReaderError(p, f"{what}: folder holds no files")
    elif any(ch in item for ch in _GLOB_CHARS):
        paths = tuple(sorted(Path(q).absolute() for q in glob.glob(str(p)) if Path(q).is_file()))
        if not paths:
            raise ReaderError(p, f"{what}: glob matches no files")
    elif item.lower() in datasets.load_catalogue():
        return _dataset(datasets.get(item).name, data_root, what)
    else:
        cat = catalog_for(None)
        if cat is not None and cat.has_run(item):
            return _run(item, cat, what)
        runs = f" ({len(cat.list_runs())} catalogued)" if cat is not None else ""
        raise ReaderError(
            p,
            f"{what}: no such file, directory or dataset name (datasets: {', '.join(sorted(datasets.load_catalogue()))};"
            f" name a run as run:<id>{runs})",
        )
    return Source("files", item, paths, member_of=_dataset_of(paths, data_root), data_root=data_root)


def _is_store(p: Path) -> bool:
    return p.suffix == ".zarr" or (p / "zarr.json").exists() or (p / ".zmetadata").exists()


def _store(path: Path) -> Source:
    """A run store folder named by path: its run id from its provenance, when it has one."""
    from engine.storage.zarr_store import read_provenance

    try:
        run_id = read_provenance(path).get("run_id")
    except StorageError:
        run_id = None
    return Source("run", str(run_id or path.name), (path,), run_id=str(run_id) if run_id else None)


def _dataset(name: str, data_root: Path | None, what: str) -> Source:
    meta = datasets.get(name)
    root = datasets.require_root(data_root)
    paths = tuple(p.absolute() for p in meta.paths(root))
    if not paths:
        raise ReaderError(
            root / meta.files[0], f"{what}: dataset {name!r} has no files here; run `meteolens data fetch {name}`"
        )
    return Source("dataset", name, paths, format=meta.format, member_of=name, data_root=data_root)


def _catalog(settings: Settings | None, catalog: Catalog | None, what: str, run_id: str | None) -> Catalog | None:
    if catalog is not None:
        return catalog
    if settings is not None and settings.catalog_path.exists():
        from engine.storage.catalog import Catalog

        return Catalog(settings.catalog_path, create=False)
    if run_id is not None:
        where = settings.catalog_path if settings is not None else "(no store given)"
        raise StorageError(f"{what} run:{run_id}: no catalogue at {where}")
    return None


def _run(run_id: str, catalog: Catalog | None, what: str) -> Source:
    if catalog is None:
        raise ReaderError(Path(run_id), f"{what} run:{run_id}: no run catalogue to look it up in")
    rec = catalog.get_run(run_id)  # UnknownRunError names the catalogue and close matches
    return Source("run", rec.run_id, (run_store_path(rec, what=f"{what} run:{run_id}"),), run_id=rec.run_id)


def _dataset_of(paths: Sequence[Path], data_root: Path | None) -> str | None:
    """The sample dataset whose file patterns all of ``paths`` match, if exactly one does."""
    if data_root is None or not paths:
        return None
    root = data_root.absolute()
    found = [
        meta.name
        for meta in datasets.load_catalogue().values()
        if all(any(fnmatchcase(str(p.absolute()), str(root / pat)) for pat in meta.files) for p in paths)
    ]
    return found[0] if len(found) == 1 else None


# -------------------------------------------------------------------------------------- runs


def run_store_path(record: RunRecord, *, what: str | None = None) -> Path:
    """The store of a catalogued run, or a :class:`StorageError` saying why it has none.

    Raises
    ------
    StorageError
        The run did not succeed, or succeeded without a store (a baseline or an import).
    """
    who = what or f"run {record.run_id}"
    if record.status != "succeeded":
        raise StorageError(f"{who}: run {record.run_id} is {record.status}, not succeeded: it has no run store to open")
    if record.path is None:
        raise StorageError(f"{who}: run {record.run_id} has no run store (a baseline run or an import without data)")
    return Path(record.path)


def open_run(catalog: Catalog, run_id: str) -> tuple[RunRecord, xr.Dataset]:
    """A catalogued run's record and its store, opened lazily.

    Raises
    ------
    UnknownRunError
        ``run_id`` is not catalogued.
    StorageError
        The run has no store (see :func:`run_store_path`) or it cannot be read.
    """
    from engine.storage.zarr_store import open_run_store

    rec = catalog.get_run(run_id)
    return rec, open_run_store(run_store_path(rec))


def run_source(catalog: Catalog, run_id: str, *, data_root: Path | None = None) -> Source | None:
    """The source run ``run_id`` read (the first, for jobs that read several), from its provenance.

    Runs record their sources in the catalogue's parameters (``"sources"``, see
    :func:`record_sources`). For runs catalogued before that, the parameters' ``inputs`` (or
    ``input``) are resolved again: a sample dataset name stays that dataset, and files that
    all belong to one sample dataset (matched against its file patterns under ``data_root``)
    are that dataset's files (``member_of``).

    Returns
    -------
    Source or None
        ``None`` when the run recorded no source and its parameters name no input.

    Raises
    ------
    UnknownRunError
        ``run_id`` is not catalogued.
    """
    params = catalog.get_run(run_id).parameters
    recorded = params.get("sources")
    if isinstance(recorded, list) and recorded:
        source = Source.from_provenance(recorded[0])
        if source.kind == "files" and source.member_of is None:
            # Jobs resolve files without the data folder; which sample dataset they are part of
            # is told here, from the recorded paths.
            source = replace(source, member_of=_dataset_of(source.paths, data_root), data_root=data_root)
        return source
    inputs = params.get("inputs") or params.get("input") or params.get("init") or []
    items = [inputs] if isinstance(inputs, str) else [str(i) for i in inputs]
    if not items:
        return None
    if len(items) == 1 and items[0].lower() in datasets.load_catalogue():
        name = datasets.get(items[0]).name
        root_paths = datasets.get(name).paths(data_root) if data_root is not None else []
        return Source("dataset", name, tuple(root_paths) or (Path(name),), member_of=name, data_root=data_root)
    paths = tuple(Path(i) for i in items)
    return Source("files", " ".join(items), paths, member_of=_dataset_of(paths, data_root), data_root=data_root)


# ------------------------------------------------------------------------------------ recording

_RECORDER: contextvars.ContextVar[list[Source] | None] = contextvars.ContextVar("meteolens_sources", default=None)


@contextlib.contextmanager
def record_sources() -> Iterator[list[Source]]:
    """Collect every :class:`Source` opened inside the block, in order, each once.

    The executor wraps each job in it, so provenance lists what the job actually read.
    """
    token = _RECORDER.set([])
    try:
        recorder = _RECORDER.get()
        assert recorder is not None
        yield recorder
    finally:
        _RECORDER.reset(token)
