"""The catalogue of sample datasets, and fetching them from their public sources.

Datasets are declared in ``assets/datasets.toml`` (name, kind, reader format, file globs relative
to the data root, variables, grid, time range, source, licence). ``assets/sample_data_manifest.json``
lists every file with its size and SHA-256 so that :func:`fetch` can download exactly the same
files and prove it did.

Public API: ``SampleDataset``, ``Source``, ``load_catalogue``, ``get``, ``resolve_inputs``,
``open_dataset``, ``require_root``, ``fetch``, ``build_manifest``, ``file_sha256``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Required, TypedDict

import xarray as xr

from engine.config import REPO_ROOT
from engine.errors import ReaderError, StorageError, UnknownNameError, WxError

ASSETS = REPO_ROOT / "assets"
CATALOGUE_FILE = ASSETS / "datasets.toml"
MANIFEST_FILE = ASSETS / "sample_data_manifest.json"


class ManifestEntry(TypedDict):
    """One file of ``assets/sample_data_manifest.json``."""

    path: str  # relative to the data root
    size: int  # bytes
    sha256: str


@dataclass(frozen=True)
class Source:
    """A public repository that sample files come from.

    ``url`` is a template with ``{path}``: the file's path relative to ``folder`` (the source's
    folder below the data root).
    """

    name: str
    url: str
    folder: str
    repository: str


@dataclass(frozen=True)
class SampleDataset:
    """One named sample dataset (see ``assets/datasets.toml``)."""

    name: str
    kind: str
    description: str
    format: str
    source: Source
    files: tuple[str, ...]
    licence: str
    variables: tuple[str, ...] = ()
    grid: str = ""
    time_range: tuple[str, ...] = ()
    time_step_minutes: int | None = None
    companions: tuple[str, ...] = ()
    combine: str = "time"

    def paths(self, data_root: Path) -> list[Path]:
        """The dataset's files below ``data_root``, sorted (empty when not present)."""
        found: set[Path] = set()
        for pattern in self.files:
            found.update(Path(p) for p in glob.glob(str(data_root / pattern)))
        return sorted(found)

    def manifest_entries(self) -> list[ManifestEntry]:
        """Manifest rows (path, size, sha256) of this dataset's files."""
        rows = _manifest()
        patterns = self.files + self.companions
        return [r for r in rows if any(_matches(str(r["path"]), pat) for pat in patterns)]

    def describe(self) -> dict[str, object]:
        """JSON-able summary for ``meteolens data list``."""
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "format": self.format,
            "variables": list(self.variables),
            "grid": self.grid,
            "time_range": list(self.time_range),
            "time_step_minutes": self.time_step_minutes,
            "source": self.source.repository,
            "licence": self.licence,
            "files": len(self.manifest_entries()),
        }


def _matches(path: str, pattern: str) -> bool:
    from fnmatch import fnmatchcase

    return fnmatchcase(path, pattern)


@cache
def load_catalogue(path: Path = CATALOGUE_FILE) -> dict[str, SampleDataset]:
    """Parse the dataset catalogue TOML into :class:`SampleDataset` objects, by name."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise StorageError(f"{path}: cannot read the dataset catalogue: {err}") from err
    sources = {name: Source(name=name, **spec) for name, spec in raw.get("sources", {}).items()}
    out: dict[str, SampleDataset] = {}
    for name, spec in raw.get("datasets", {}).items():
        spec = dict(spec)
        src = spec.pop("source")
        if src not in sources:
            raise StorageError(f"{path}: dataset {name!r} names unknown source {src!r}")
        out[name] = SampleDataset(
            name=name,
            source=sources[src],
            files=tuple(spec.pop("files")),
            variables=tuple(spec.pop("variables", ())),
            time_range=tuple(spec.pop("time_range", ())),
            companions=tuple(spec.pop("companions", ())),
            **spec,
        )
    return out


def get(name: str) -> SampleDataset:
    """The sample dataset called ``name``; :class:`UnknownNameError` lists the known names."""
    catalogue = load_catalogue()
    try:
        return catalogue[name.lower()]
    except KeyError:
        raise UnknownNameError("dataset", name, catalogue) from None


@cache
def _manifest() -> list[ManifestEntry]:
    try:
        return json.loads(MANIFEST_FILE.read_text())["files"]
    except (OSError, ValueError, KeyError) as err:
        raise StorageError(f"{MANIFEST_FILE}: cannot read the sample-data manifest: {err}") from err


def require_root(data_root: Path | None) -> Path:
    """``data_root`` when it is a folder; a :class:`ReaderError` saying how to get the sample data otherwise."""
    if data_root is None or not data_root.is_dir():
        raise ReaderError(
            data_root or Path("../shared/data"),
            "sample data folder not found: set METEOLENS_DATA, or run `meteolens data fetch` to download it",
        )
    return data_root


def resolve_inputs(spec: str | Sequence[str], data_root: Path | None) -> list[Path]:
    """Turn what a user typed for ``--input`` into a sorted list of files.

    Parameters
    ----------
    spec : str or sequence of str
        Files, glob patterns, directories, or sample dataset names (see
        :func:`engine.sources.resolve_source`, which this is the file list of).
    data_root : Path or None
        The sample data folder, for dataset names.

    Raises
    ------
    ReaderError
        If nothing matches (the message names what was given).
    """
    from engine.sources import resolve

    # Sources are resolved in one place (engine.sources); no catalogue: run ids are not files.
    return list(resolve(spec, data_root, lambda run_id: None).paths)


def open_dataset(name: str, data_root: Path | None, *, variables: Sequence[str] | None = None) -> xr.Dataset:
    """Open a sample dataset with its reader; multi-file datasets are concatenated along time."""
    from engine.readers import open_any, open_many

    ds_meta = get(name)
    paths = ds_meta.paths(require_root(data_root))
    if not paths:
        raise ReaderError(require_root(data_root) / ds_meta.files[0], f"dataset {name!r} has no files here; run `meteolens data fetch {name}`")
    if len(paths) == 1:
        return open_any(paths[0], format=ds_meta.format, variables=variables)
    if ds_meta.combine == "time":
        return open_many(paths, format=ds_meta.format, variables=variables)
    if ds_meta.combine == "merge":
        ds = xr.merge([open_any(p, format=ds_meta.format) for p in paths], compat="override",
                      combine_attrs="drop_conflicts")
    elif ds_meta.combine == "stations":
        from engine.readers.stations import open_station_reports

        # Each hourly file reports a different set of stations: the reader aligns them.
        ds = open_station_reports(paths)
    else:
        raise StorageError(f"{CATALOGUE_FILE}: dataset {name!r} has unknown combine {ds_meta.combine!r}")
    if variables:
        missing = [v for v in variables if v not in ds.data_vars]
        if missing:
            raise ReaderError(paths[0].parent, f"dataset {name!r} has no variable {', '.join(missing)}")
        ds = ds[list(variables)]
    ds.attrs["source_files"] = ",".join(str(p) for p in paths)
    return ds


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (sample files, model weights)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_manifest(data_root: Path) -> dict[str, object]:
    """Size and SHA-256 of every file of every catalogued dataset below ``data_root``."""
    files = []
    for ds in load_catalogue().values():
        companions = sorted(Path(q) for pat in ds.companions for q in glob.glob(str(data_root / pat)))
        for p in ds.paths(data_root) + companions:
            rel = p.relative_to(data_root).as_posix()
            files.append({"path": rel, "size": p.stat().st_size, "sha256": file_sha256(p)})
    files.sort(key=lambda r: str(r["path"]))
    unique = list({str(r["path"]): r for r in files}.values())
    return {"description": "Files of the meteolens sample datasets (paths relative to the data root)", "files": unique}


@dataclass
class FetchReport:
    """What :func:`fetch` did: files downloaded, already present, and failures (path → reason)."""

    downloaded: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _url_for(entry_path: str, ds: SampleDataset, mirror: str | None) -> str:
    if mirror:
        return f"{mirror.rstrip('/')}/{entry_path}"
    inner = Path(entry_path).relative_to(ds.source.folder).as_posix()
    return ds.source.url.format(path=inner)


def fetch(
    names: Sequence[str] | None,
    data_root: Path,
    *,
    mirror: str | None = None,
    timeout: float = 60.0,
    progress: Callable[[float, str], None] | None = None,
) -> FetchReport:
    """Download sample datasets from their public sources into ``data_root``.

    Each file is downloaded to a temporary name in its target folder, checked against the size
    and SHA-256 in the manifest, and only then renamed into place, so an interrupted or corrupt
    download never leaves a file that looks complete. Files already present with the right
    checksum are skipped.

    Parameters
    ----------
    names : sequence of str or None
        Dataset names; all datasets when ``None`` or empty.
    data_root : Path
        Where to put the files (the layout of ``shared/data``).
    mirror : str, optional
        Base URL of a mirror with the data root's layout (e.g. ``http://127.0.0.1:8000``);
        the public source repositories when omitted.
    timeout : float
        Seconds per HTTP request.
    progress : callable, optional
        ``progress(fraction, message)``.

    Raises
    ------
    WxError
        If any file fails; the report lists each failure (the others are kept).
    """
    datasets = [get(n) for n in names] if names else list(load_catalogue().values())
    entries: dict[str, tuple[ManifestEntry, SampleDataset]] = {}
    for ds in datasets:
        for e in ds.manifest_entries():
            entries.setdefault(str(e["path"]), (e, ds))
    report = FetchReport()
    for i, (rel, (entry, ds)) in enumerate(sorted(entries.items())):
        if progress:
            progress(i / max(len(entries), 1), rel)
        target = data_root / rel
        if target.is_file() and target.stat().st_size == entry["size"] and file_sha256(target) == entry["sha256"]:
            report.present.append(rel)
            continue
        url = _url_for(rel, ds, mirror)
        try:
            _download(url, target, size=int(entry["size"]), sha256=str(entry["sha256"]), timeout=timeout)
            report.downloaded.append(rel)
        except WxError as err:
            report.failed[rel] = str(err)
    if progress:
        progress(1.0, "done")
    if report.failed:
        first = next(iter(report.failed.items()))
        raise WxError(f"{len(report.failed)} of {len(entries)} files failed to download; first: {first[0]}: {first[1]}")
    return report


def _download(url: str, target: Path, *, size: int, sha256: str, timeout: float) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http(s) URLs from our own catalogue)
            for block in iter(lambda: resp.read(1 << 20), b""):
                out.write(block)
                h.update(block)
        got = tmp.stat().st_size
        if got != size or h.hexdigest() != sha256:
            raise WxError(f"{url}: downloaded {got} bytes with a different checksum than the manifest ({size} bytes)")
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise WxError(f"{url}: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)


class CoordSummary(TypedDict, total=False):
    """A coordinate in :func:`summarize`: numeric ranges, or the first value and count of labels."""

    dims: Required[list[str]]
    units: Required[str]
    min: str | float  # str for times
    max: str | float
    first: str
    count: int


class VariableSummary(TypedDict, total=False):
    """A data variable in :func:`summarize`; the statistics are for numeric variables only."""

    dims: Required[list[str]]
    shape: Required[list[int]]
    dtype: Required[str]
    units: Required[str]
    long_name: Required[str]
    missing_fraction: float
    min: float
    max: float
    mean: float


class DatasetSummary(TypedDict):
    """What :func:`summarize` returns."""

    dims: dict[str, int]
    coords: dict[str, CoordSummary]
    variables: dict[str, VariableSummary]
    grid_mapping: str | None
    attrs: dict[str, str | int | float | bool]


def summarize(ds: xr.Dataset) -> DatasetSummary:
    """JSON-able description of an opened dataset: dims, coordinates, variables and their ranges.

    Value statistics are computed on the data actually opened (finite values only), with the
    fraction of missing values (NaN: no data), so "no data" and "zero" stay visibly distinct.
    """
    import numpy as np

    def _coord_range(c: xr.DataArray) -> CoordSummary:
        vals = c.values
        info: CoordSummary = {"dims": [str(d) for d in c.dims], "units": c.attrs.get("units", "")}
        if vals.size and vals.dtype.kind in "iufMm":
            if vals.dtype.kind in "Mm":
                info["min"], info["max"] = str(vals.min()), str(vals.max())
            else:
                finite = vals[np.isfinite(vals)]
                if finite.size:
                    info["min"], info["max"] = float(finite.min()), float(finite.max())
        elif vals.size:
            info["first"], info["count"] = str(vals.flat[0]), int(vals.size)
        return info

    variables: dict[str, VariableSummary] = {}
    for name, da in ds.data_vars.items():
        if da.ndim == 0:
            continue
        info: VariableSummary = {
            "dims": [str(d) for d in da.dims],
            "shape": list(da.shape),
            "dtype": str(da.dtype),
            "units": da.attrs.get("units", ""),
            "long_name": da.attrs.get("long_name", ""),
        }
        if da.dtype.kind in "iuf":
            vals = np.asarray(da.values, dtype="float64")
            finite = vals[np.isfinite(vals)]
            info["missing_fraction"] = float(1 - finite.size / vals.size) if vals.size else 0.0
            if finite.size:
                info["min"], info["max"], info["mean"] = float(finite.min()), float(finite.max()), float(finite.mean())
        variables[str(name)] = info
    crs = ds["crs"].attrs.get("grid_mapping_name") if "crs" in ds else None
    return {
        "dims": {str(k): int(v) for k, v in ds.sizes.items()},
        "coords": {str(k): _coord_range(v) for k, v in ds.coords.items()},
        "variables": variables,
        "grid_mapping": crs,
        "attrs": {str(k): (v if isinstance(v, (str, int, float, bool)) else str(v)) for k, v in ds.attrs.items()},
    }
