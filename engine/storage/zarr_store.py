"""Run stores: one zarr (format 3) directory per run, written atomically, with provenance.

A run store ``runs/<run_id>.zarr`` holds the forecast dataset and, in its root attributes, the
provenance of the run (model and version, parameters, init time, source files, device, compute
time, software versions, creation time).

Atomicity
    The dataset is written to a hidden sibling ``.<name>.tmp-<uuid>`` and renamed into place
    only when complete, so a reader (the app, a verification job) never sees a partial store.
    This holds for streamed writes too (``blocks``: a large forecast written piece by piece as
    it is computed, so it never has to fit in memory): the pieces go into the temporary store.
    A failed write removes its temporary directory. Overwriting writes the new store first,
    moves the old one aside, renames the new one in and only then deletes the old one, so
    at every instant ``path`` is either the complete old store or the complete new one.
    A process killed outright (SIGKILL, power loss) can leave a hidden temporary directory;
    :func:`remove_stale_temporaries` clears those.

Encoding
    Chunks are one step along every leading dim (``init_time``, ``lead_time``, ``member``...)
    by the full trailing two (spatial) dims, tiled at :data:`MAX_TILE` points per side so that a
    0.01 deg continental grid still gives chunks of at most 16 MiB of float32. Compression is
    zarr's default (zstd). Encodings inherited from the source files (netCDF chunk sizes, packing
    with ``scale_factor``, float time units) are dropped, so float32 stays float32 and xarray
    re-derives integer time units that make ``datetime64``/``timedelta64`` coordinates
    round-trip exactly (to the nanosecond). Attributes are converted to strict JSON
    (:func:`engine.storage.jsonable.jsonable`): dicts and lists stay JSON objects and arrays, numpy
    values become numbers, non-finite floats become ``"NaN"``/``"Infinity"``.

Consolidated metadata is written (one read opens the whole store, which matters on object
storage); zarr warns that it is not yet part of the v3 specification, nor are string arrays
(station ids), and those two warnings are silenced here on purpose.

Public API: ``write_run_store``, ``Block``, ``open_run_store``, ``read_provenance``,
``remove_stale_temporaries``, ``software_versions``, ``PROVENANCE_KEYS``, ``MAX_TILE``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from engine import __version__
from engine.errors import StorageError, WxError
from engine.storage.jsonable import jsonable

#: The provenance fields every run store carries (others may be added by a job).
PROVENANCE_KEYS: tuple[str, ...] = (
    "model",
    "model_version",
    "parameters",
    "init_time",
    "inputs",
    "device",
    "compute_seconds",
    "software",
    "created",
)

#: Largest chunk side along the two trailing (spatial) dims.
MAX_TILE = 2048

#: Root attribute listing which attributes are provenance (so read_provenance returns exactly them).
_PROVENANCE_INDEX = "meteolens_provenance_keys"
#: Root attribute with the layout version of run stores, for future migrations of old stores.
_STORE_VERSION_KEY = "meteolens_store_version"
STORE_VERSION = 1

_TMP_MARK = ".tmp-"
_OLD_MARK = ".old-"

#: A piece of a streamed write: the region it fills (dim -> integer slice; dims not named are
#: written whole) and a Dataset holding only the placeholder variables it fills there.
Block = tuple[Mapping[Hashable, slice], xr.Dataset]


def software_versions() -> dict[str, str]:
    """Versions of meteolens, Python and the libraries that shape a run's numbers.

    torch is reported only when it has already been imported by the job: importing it here
    would add seconds to every store write for runs that never used it.
    """
    import pandas as pd
    import zarr

    versions = {
        "meteolens": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "xarray": xr.__version__,
        "zarr": zarr.__version__,
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        versions["torch"] = str(getattr(torch, "__version__", "unknown"))
    return versions


def write_run_store(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    provenance: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    overwrite: bool = False,
    blocks: Iterable[Block] | None = None,
) -> Path:
    """Write ``ds`` as a zarr v3 run store at ``path``, atomically, with its provenance.

    Parameters
    ----------
    ds : Dataset
        The forecast, following the data contract (dims ``init_time, lead_time, member, y, x``
        or ``lat, lon``; ``valid_time`` coordinate; CF grid mapping variable for projected grids).
        It is not modified; dask-backed datasets are computed chunk by chunk while writing.
        With ``blocks``, its dask-backed data variables are *placeholders* instead: they give
        the name, dims, shape, dtype and attributes (``dask.array.empty`` is never computed),
        and their values come from the blocks.
    path : path-like
        The store directory to create, conventionally ``<store>/runs/<run_id>.zarr``. Its parent
        is created if needed.
    provenance : mapping, or callable returning one
        Provenance fields (see :data:`PROVENANCE_KEYS`; extra keys such as ``run_id`` or
        ``kind`` are kept too). Values are converted to JSON. ``software`` is filled in from
        :func:`software_versions` (entries given here win) and ``created`` defaults to now (UTC).
        Provenance attributes replace dataset attributes of the same name. A callable is called
        as late as possible: after the last block of a streamed write, so provenance can record
        the time spent producing the blocks.
    overwrite : bool, default False
        Replace an existing store (still atomically). Without it an existing store is an error.
    blocks : iterable of (region, Dataset), optional
        Stream the placeholder variables in: each block is written into the temporary store
        as it comes, with ``Dataset.to_zarr(region=region)`` (``region`` maps dims to integer
        slices; dims not named are written whole), and dropped before the next is asked for,
        so memory holds one block. The blocks must fill every placeholder completely; their
        regions should cover whole chunks (one step along leading dims, see "Encoding").
        Exceptions raised by the iterable itself (the computation producing the blocks)
        propagate unchanged, after the temporary store is removed.

    Returns
    -------
    Path
        The absolute path of the store.

    Raises
    ------
    StorageError
        ``path`` exists and ``overwrite`` is false; ``blocks`` without placeholders, a block
        naming another variable, or placeholders left partly unfilled; or the write failed (the
        message names the path and the cause, which is chained). Nothing is left behind on failure.
    """
    path = Path(path).absolute()
    if not isinstance(ds, xr.Dataset):
        raise StorageError(f"{path}: expected an xarray.Dataset to store, got {type(ds).__name__}")
    if path.exists() and not overwrite:
        raise StorageError(f"{path}: a run store already exists here (pass overwrite=True to replace it)")
    if path.exists() and not (path.is_dir() and (path / "zarr.json").is_file()):
        # overwrite=True replaces run stores, never an unrelated file or folder given by mistake.
        raise StorageError(f"{path}: exists and is not a zarr run store; refusing to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StorageError(f"{path.parent}: cannot create the folder for run stores: {err}") from err

    prepared = _prepare(ds, path)
    placeholders = {name: var.size for name, var in prepared.data_vars.items() if var.chunks is not None}
    if blocks is not None and not placeholders:
        raise StorageError(f"{path}: blocks given but the dataset has no placeholder (dask-backed) variable to fill")
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{uuid.uuid4().hex}")
    try:
        with _quiet_zarr_warnings():
            if blocks is None:
                with _as_storage_error(path):
                    prepared.attrs = _root_attrs(prepared.attrs, provenance, path)
                    prepared.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=True, compute=True)
            else:
                _write_streamed(prepared, tmp, blocks, placeholders, provenance, path)
        with _as_storage_error(path):
            _swap_into_place(tmp, path, overwrite=overwrite)
    except BaseException:
        # BaseException: a Ctrl-C in the middle of a long write must not leave a partial store.
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(path.parent)
    return path


@contextlib.contextmanager
def _as_storage_error(path: Path) -> Iterator[None]:
    """Re-raise a failure of the storage code as a :class:`StorageError` naming ``path`` (cause chained)."""
    try:
        yield
    except WxError:
        raise
    except Exception as err:
        raise StorageError(f"{path}: writing the run store failed: {type(err).__name__}: {err}") from err


def _write_streamed(
    prepared: xr.Dataset,
    tmp: Path,
    blocks: Iterable[Block],
    placeholders: Mapping[Hashable, int],
    provenance: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    path: Path,
) -> None:
    """Write the template ``prepared`` to ``tmp``, the blocks into its placeholders, then the root attributes."""
    import zarr

    with _as_storage_error(path):
        # compute=False writes the metadata and every numpy-backed variable, not the placeholders.
        prepared.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=False, compute=False)
    filled = dict.fromkeys(placeholders, 0)
    for region, block in blocks:  # the producer's own errors propagate unchanged
        others = sorted(str(n) for n in block.variables if n not in placeholders)
        if others:
            raise StorageError(f"{path}: a block writes {', '.join(others)}: not a placeholder variable of the dataset")
        with _as_storage_error(path):
            # str keys: xarray's stubs type region as Mapping[str, ...] (dims are Hashable).
            block.drop_encoding().to_zarr(
                tmp, mode="r+", region={str(k): v for k, v in region.items()}, zarr_format=3, consolidated=False
            )
        for name in block.data_vars:
            filled[name] += block[name].size
        del block  # hold no block while the next one is computed
    short = ", ".join(f"{n}: {filled[n]} of {size}" for n, size in placeholders.items() if filled[n] < size)
    if short:
        raise StorageError(f"{path}: the blocks did not fill every value ({short} written)")
    with _as_storage_error(path):
        zarr.open_group(tmp, mode="r+", zarr_format=3).attrs.put(_root_attrs(prepared.attrs, provenance, path))
        zarr.consolidate_metadata(tmp, zarr_format=3)


def _prepare(ds: xr.Dataset, path: Path) -> xr.Dataset:
    """A copy of ``ds`` with clean encodings, run-store chunking and JSON attributes (no provenance yet)."""
    out = ds.copy(deep=False)
    try:
        for name in list(out.variables):
            var = out.variables[name]
            var.encoding = {}
            var.attrs = {str(k): jsonable(v) for k, v in var.attrs.items()}
        out.attrs = {str(k): jsonable(v) for k, v in ds.attrs.items()}
    except TypeError as err:
        raise StorageError(f"{path}: an attribute cannot be stored as JSON: {err}") from err

    spatial = _spatial_dims(out)
    for name in list(out.variables):
        var = out.variables[name]
        if var.ndim == 0 or name in out.dims:
            continue  # scalars (the CF grid-mapping variable) and 1-D indexes: one chunk, zarr's choice
        chunks = _chunks_for(var, spatial)
        if var.chunks is not None:
            # dask-backed: dask chunks must line up with zarr chunks or xarray refuses to write
            # (two dask chunks would race on one zarr chunk), so rechunk to the target first.
            rechunked = var.chunk(dict(zip(var.dims, chunks, strict=True)))
            out = out.assign_coords({name: rechunked}) if name in out.coords else out.assign({name: rechunked})
            var = out.variables[name]
        var.encoding["chunks"] = chunks
    return out


def _root_attrs(
    attrs: Mapping[str, Any], provenance: Mapping[str, Any] | Callable[[], Mapping[str, Any]], path: Path
) -> dict[str, Any]:
    """The store's root attributes: the dataset's (already JSON) and the provenance, which wins."""
    fields = provenance() if callable(provenance) else provenance
    try:
        prov = {str(k): jsonable(v) for k, v in fields.items()}
    except TypeError as err:
        raise StorageError(f"{path}: an attribute cannot be stored as JSON: {err}") from err
    given_software = prov.get("software") or {}
    if not isinstance(given_software, dict):
        raise StorageError(f"{path}: provenance 'software' must map package names to versions, got {given_software!r}")
    prov["software"] = {**software_versions(), **given_software}
    prov.setdefault("created", dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z")
    return {**attrs, **prov, _PROVENANCE_INDEX: sorted(prov), _STORE_VERSION_KEY: STORE_VERSION}


#: Variables with at most this many points are stored as a single chunk.
_SMALL = 1_000_000


def _spatial_dims(ds: xr.Dataset) -> tuple[Hashable, ...]:
    """The trailing two dims of the largest data variable: the horizontal grid (``y, x`` / ``lat, lon``)."""
    candidates = [v for v in ds.data_vars.values() if v.ndim >= 2]
    if not candidates:
        return ()
    return tuple(max(candidates, key=lambda v: v.size).dims[-2:])


def _chunks_for(var: xr.Variable, spatial: tuple[Hashable, ...]) -> tuple[int, ...]:
    """Chunk shape of one variable: 1 along leading dims, tiles of at most MAX_TILE on the grid.

    A map at one lead time is the app's typical read, so each chunk holds (part of) one map.
    Small variables (station series, 2-D coordinates of a small grid) are one chunk: splitting
    them would only multiply files.
    """
    if var.size <= _SMALL:
        return tuple(var.shape)
    return tuple(
        max(1, min(size, MAX_TILE)) if dim in spatial else 1 for dim, size in zip(var.dims, var.shape, strict=True)
    )


def _swap_into_place(tmp: Path, path: Path, *, overwrite: bool) -> None:
    """Rename the complete temporary store ``tmp`` to ``path``, keeping ``path`` whole throughout."""
    if not path.exists():
        try:
            # POSIX rename onto a non-empty directory fails, which also catches a concurrent
            # writer that created ``path`` since our first check.
            os.rename(tmp, path)
        except OSError as err:
            raise StorageError(f"{path}: cannot move the new run store into place: {err}") from err
        return
    if not overwrite:
        raise StorageError(f"{path}: a run store appeared here while writing (pass overwrite=True to replace it)")
    old = path.with_name(f".{path.name}{_OLD_MARK}{uuid.uuid4().hex}")
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)  # put the previous store back before reporting the failure
        raise
    shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    """Flush the directory entry of a rename to disk, where the platform allows it."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _quiet_zarr_warnings() -> Iterator[None]:
    """Silence two zarr notices about features used knowingly.

    Consolidated metadata is not yet part of the v3 specification, and neither are string
    data types (station ids, names); zarr-python reads both and is the reader meteolens uses.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        warnings.filterwarnings("ignore", message=r".*does not have a Zarr V3 specification")
        yield


def _check_store(path: Path) -> None:
    if not path.exists():
        raise StorageError(f"{path}: no run store here")
    if not path.is_dir() or not (path / "zarr.json").is_file():
        raise StorageError(f"{path}: not a zarr v3 run store (no zarr.json)")


def open_run_store(path: str | os.PathLike[str]) -> xr.Dataset:
    """Open a run store lazily (dask-backed, from its consolidated metadata).

    Parameters
    ----------
    path : path-like
        The ``.zarr`` directory.

    Returns
    -------
    Dataset
        Lazy dataset with its provenance in ``attrs``; ``datetime64``/``timedelta64``
        coordinates decoded, CF grid-mapping variables kept as variables.

    Raises
    ------
    StorageError
        If ``path`` does not exist or is not a readable zarr v3 store.
    """
    path = Path(path).absolute()
    _check_store(path)
    try:
        with _quiet_zarr_warnings():
            return xr.open_zarr(path, consolidated=True, zarr_format=3, decode_timedelta=True)
    except Exception as err:
        raise StorageError(f"{path}: cannot open run store: {type(err).__name__}: {err}") from err


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The provenance attributes of a run store, without opening its arrays.

    Returns
    -------
    dict
        The provenance keys recorded at write time (at least :data:`PROVENANCE_KEYS`), with
        their JSON values.

    Raises
    ------
    StorageError
        If ``path`` is not a readable run store, or carries no meteolens provenance.
    """
    import zarr

    path = Path(path).absolute()
    _check_store(path)
    try:
        with _quiet_zarr_warnings():
            attrs = dict(zarr.open_group(path, mode="r", zarr_format=3).attrs)
    except Exception as err:
        raise StorageError(f"{path}: cannot read run store metadata: {type(err).__name__}: {err}") from err
    keys = attrs.get(_PROVENANCE_INDEX)
    if not isinstance(keys, list):
        raise StorageError(f"{path}: zarr store without meteolens provenance (not written by write_run_store)")
    return {k: attrs.get(k) for k in keys}


def remove_stale_temporaries(folder: str | os.PathLike[str], *, min_age_s: float = 3600.0) -> list[Path]:
    """Delete temporary stores left by killed writers in ``folder``.

    Only hidden ``.<name>.tmp-<hex>`` / ``.<name>.old-<hex>`` directories in which nothing
    was modified for at least ``min_age_s`` seconds are removed. The newest modification time
    anywhere inside counts, not the directory's own (which stops changing once the variables'
    folders exist), so a long write in progress elsewhere is never disturbed.

    Returns
    -------
    list of Path
        The directories removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for entry in folder.iterdir():
        name = entry.name
        if not (name.startswith(".") and (_TMP_MARK in name or _OLD_MARK in name) and entry.is_dir()):
            continue
        try:
            newest = max([entry.stat().st_mtime, *(p.stat().st_mtime for p in entry.rglob("*"))])
        except OSError:
            continue  # vanished while looking: its writer finished or cleaned up
        age = now - newest
        if age >= min_age_s:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
