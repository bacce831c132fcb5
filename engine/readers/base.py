"""Reader protocol, the reader registry, and format detection.

Every reader returns an :class:`xarray.Dataset` that follows the data contract of DESIGN.md:
canonical variable names and units from :mod:`engine.lexicon`, and full georeferencing
(``lat``/``lon`` dims for regular grids; ``y``/``x`` dims with 2-D ``lat``/``lon`` coordinates and
a CF ``grid_mapping`` variable for projected grids; ``station`` for point data).

Detection is two-stage, cheap first: a reader claims a file by its suffix *and* its magic
bytes/content (:meth:`Reader.can_open`), so a ``.h5`` file is routed to the ODIM or KNMI reader by
what is inside, and a wrong-format file with a familiar suffix is rejected with a clear error.

Public API: ``Reader``, ``readers``, ``open_any``, ``open_many``, ``detect``, ``read_head``.
"""

from __future__ import annotations

import gzip
import lzma
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import xarray as xr

from engine.errors import FormatError, ReaderError, VariableNotFoundError
from engine.registry import Registry


@runtime_checkable
class Reader(Protocol):
    """One file format.

    Attributes
    ----------
    suffixes : tuple of str
        Lower-case file suffixes this format uses (``".h5"``, ``".pgm.gz"``...).
    description : str
        One line for ``meteolens data show``.
    """

    suffixes: ClassVar[tuple[str, ...]]
    description: ClassVar[str]

    def can_open(self, path: Path) -> bool:
        """Cheap check of suffix and content (magic bytes, a header field); never raises."""
        ...

    def open(self, path: Path, *, variables: Sequence[str] | None = None) -> xr.Dataset:
        """Read the file into a canonical Dataset.

        Raises
        ------
        FormatError
            The file is truncated or not in this format.
        VariableNotFoundError
            A requested variable is not in the file.
        """
        ...


readers: Registry[type[Reader]] = Registry("reader")


def read_head(path: Path, n: int = 512) -> bytes:
    """First ``n`` bytes of ``path``, transparently decompressing ``.gz``/``.xz``; ``b""`` on error."""
    try:
        name = path.name.lower()
        if name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read(n)
        if name.endswith(".xz"):
            with lzma.open(path, "rb") as f:
                return f.read(n)
        with open(path, "rb") as f:
            return f.read(n)
    except (OSError, EOFError, lzma.LZMAError):
        return b""


def has_suffix(path: Path, suffixes: Sequence[str]) -> bool:
    """Whether ``path``'s name ends with one of ``suffixes`` (case-insensitive)."""
    name = path.name.lower()
    return any(name.endswith(s) for s in suffixes)


def _load_builtin_readers() -> None:
    # Importing the package registers every built-in reader.
    import engine.readers  # noqa: F401


def detect(path: str | Path) -> str:
    """Name of the registered reader that claims ``path``.

    Raises
    ------
    ReaderError
        If the file does not exist.
    FormatError
        If no reader recognises the content.
    """
    _load_builtin_readers()
    p = Path(path)
    if not p.exists():
        raise ReaderError(p, "no such file or directory")
    if p.is_dir():
        raise FormatError(p, "is a directory; give a file, or a dataset name")
    if p.stat().st_size == 0:
        raise FormatError(p, "file is empty")
    for name, cls in readers.items():
        if cls().can_open(p):
            return name
    by_suffix = [name for name, cls in readers.items() if has_suffix(p, cls.suffixes)]
    if by_suffix:
        raise FormatError(p, f"suffix suggests {', '.join(by_suffix)} but the content does not match (truncated or wrong format?)")
    raise FormatError(p, f"unknown format; supported: {', '.join(readers.names())}")


def open_any(
    path: str | Path, *, format: str | None = None, variables: Sequence[str] | None = None
) -> xr.Dataset:
    """Open any supported file with the reader named ``format`` or the one detected.

    Parameters
    ----------
    path : str or Path
        The file.
    format : str, optional
        A registered reader name (``meteolens data formats`` lists them); detected when omitted.
    variables : sequence of str, optional
        Canonical variables to keep; all when omitted.

    Raises
    ------
    ReaderError, FormatError, VariableNotFoundError, UnknownNameError
        With a message that starts with the file's path.
    """
    _load_builtin_readers()
    p = Path(path)
    name = format or detect(p)
    reader = readers.get(name)()
    if format and not p.exists():
        raise ReaderError(p, "no such file or directory")
    try:
        ds = reader.open(p, variables=variables)
    except (ReaderError, KeyboardInterrupt):
        raise
    except (OSError, ValueError, EOFError, IndexError, KeyError, TypeError, RuntimeError) as err:
        # Third-party libraries fail on corrupt input with many exception types; name the file.
        raise FormatError(p, f"cannot be read as {name}: {type(err).__name__}: {err}") from err
    if variables:
        missing = [v for v in variables if v not in ds.data_vars]
        if missing:
            raise VariableNotFoundError(p, f"no variable {', '.join(missing)}; has {', '.join(map(str, ds.data_vars))}")
        # Keep the grid-mapping variables the selection refers to (the CF ``crs``).
        mappings = {ds[v].attrs["grid_mapping"] for v in variables if "grid_mapping" in ds[v].attrs}
        ds = ds[list(variables) + sorted(m for m in mappings if m in ds)]
    ds.attrs.setdefault("source_files", str(p))
    ds.attrs.setdefault("reader", name)
    return ds


def open_many(
    paths: Sequence[str | Path], *, format: str | None = None, variables: Sequence[str] | None = None,
    dim: str = "time",
) -> xr.Dataset:
    """Open several files of one format and concatenate them along ``dim`` (sorted by it).

    Raises
    ------
    ReaderError
        If ``paths`` is empty or the files disagree on their grid.
    """
    if not paths:
        raise ReaderError(Path("."), "no input files given")
    return concat_opened([open_any(p, format=format, variables=variables) for p in paths], paths, dim=dim)


def concat_opened(parts: Sequence[xr.Dataset], paths: Sequence[str | Path], *, dim: str = "time") -> xr.Dataset:
    """Concatenate datasets already opened from ``paths`` as :func:`open_many` does (sorted by ``dim``).

    Raises
    ------
    ReaderError
        If the datasets disagree on their grid.
    """
    try:
        ds = xr.concat(parts, dim=dim, join="exact", combine_attrs="drop_conflicts", data_vars="minimal", coords="minimal", compat="override")
    except ValueError as err:
        raise ReaderError(Path(paths[0]).parent, f"files do not share one grid: {err}") from err
    if dim in ds.dims and dim in ds.coords:
        ds = ds.sortby(dim)
    ds.attrs["source_files"] = ",".join(str(p) for p in paths)
    return ds
