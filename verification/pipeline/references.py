"""References: other runs, sample datasets and files indexed by valid time (gridded) or opened whole (stations)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from engine.errors import DimensionError
from engine.storage.catalog import Catalog
from verification.pipeline.grids import _same_grid
from verification.pipeline.options import VerificationError
from verification.pipeline.runs import _open_run, _single_init, _valid_times
from verification.pipeline.times import _time_key
from verification.stations import nearest_time_indices

# --------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------


@dataclass
class FrameIndex:
    """Gridded reference frames indexed by valid time; a frame is read only when asked for.

    ``loader(key)`` returns the frame of one index entry as a 2-D DataArray; ``template`` has
    the grid's dims and coordinates; ``repeated`` lists the times found more than once while
    indexing (the first occurrence is the one indexed).
    """

    label: str
    times: dict[np.datetime64, Any]
    loader: Callable[[Any], xr.DataArray]
    template: xr.DataArray
    repeated: tuple[np.datetime64, ...] = ()

    def frame(self, t: np.datetime64) -> xr.DataArray:
        """The frame valid at ``t`` (read now); ``KeyError`` if there is none."""
        return self.loader(self.times[t])

    def nearest(
        self, times: Sequence[np.datetime64], tolerance: pd.Timedelta | str = "0s"
    ) -> list[np.datetime64 | None]:
        """For each of ``times``, the indexed time nearest to it within ``tolerance``, or ``None``.

        The tolerance is inclusive and a tie goes to the earlier time
        (:func:`verification.stations.nearest_time_indices`); 0 is an exact match.
        """
        keys = list(self.times)
        pos = nearest_time_indices(np.array(keys, dtype="datetime64[ns]"), np.asarray(times), tolerance)
        return [None if k < 0 else keys[k] for k in pos]

    def missing(self, times: Sequence[np.datetime64], tolerance: pd.Timedelta | str = "0s") -> list[np.datetime64]:
        """The ``times`` without a frame within ``tolerance`` (default: exactly), in the order given."""
        return [t for t, m in zip(times, self.nearest(times, tolerance), strict=True) if m is None]

    def stack(self, times: Sequence[np.datetime64], dim: str, coord: np.ndarray) -> xr.DataArray:
        """Lazy (dask) stack of the frames at ``times`` along ``dim`` with coordinate ``coord``."""
        import dask
        import dask.array as dsa

        shape = self.template.shape
        parts = [
            dsa.from_delayed(
                # the declared dtype must be the real one: dask trusts it for the whole graph
                dask.delayed(lambda key: np.asarray(self.loader(key).values, dtype=self.template.dtype))(self.times[t]),
                shape=shape,
                dtype=self.template.dtype,
            )
            for t in times
        ]
        data = dsa.stack(parts, axis=0)
        coords = {d: self.template[d] for d in self.template.dims if d in self.template.coords}
        return xr.DataArray(
            data, dims=(dim, *self.template.dims), coords={dim: coord, **coords}, attrs=self.template.attrs
        )


@dataclass
class Reference:
    """An opened reference: gridded frames indexed by valid time, or a station dataset.

    Attributes
    ----------
    label : str
        ``dataset:<name>``, ``run:<id>`` or ``files:<as typed>``; the ``reference`` column.
    frames : FrameIndex or None
        Gridded references.
    stations : xarray.Dataset or None
        Station references: variables on ``(station, time)``, ``lat``/``lon`` coordinates.
    """

    label: str
    frames: FrameIndex | None = None
    stations: xr.Dataset | None = None


def _reference_label(against: Sequence[str], catalog: Catalog) -> str:
    from engine import datasets

    if len(against) == 1:
        item = against[0]
        if catalog.has_run(item):
            return f"run:{item}"
        if not Path(item).expanduser().exists() and item.lower() in datasets.load_catalogue():
            return f"dataset:{item.lower()}"
    return "files:" + " ".join(against)


def _single_station(ds: xr.Dataset, label: str) -> xr.Dataset:
    """A one-station file (foehnix CSV: coordinates in attributes) as a ``station`` dataset."""
    # The same id the catalogue's stations table uses (the demo ingests the file under it).
    sid = str(ds.attrs.get("station_id") or Path(str(ds.attrs.get("source_files", "station"))).stem.lower())
    out = ds.expand_dims(station=[sid])
    coords = {
        "lat": ("station", [float(ds.attrs["station_lat"])]),
        "lon": ("station", [float(ds.attrs["station_lon"])]),
    }
    if "station_elevation" in ds.attrs:
        coords["elevation"] = ("station", [float(ds.attrs["station_elevation"])])
    return out.assign_coords(coords)


def open_reference(
    against: str | Sequence[str],
    variable: str,
    *,
    catalog: Catalog,
    data_root: Path | None,
) -> Reference:
    """Index a reference: another run, a sample dataset, or files (globs, folders).

    Gridded references are indexed by valid time without keeping their data: each file is
    opened once to learn its times and grid, and frames are read again on demand (the file
    read last is kept open, so a multi-time file such as a GRIB analysis is read once). A
    time found again (in a later file, or twice in one file) keeps its first frame and is
    listed in :attr:`FrameIndex.repeated`.
    Station references (a ``station`` dim, or station coordinates in the attributes) are
    opened whole; they are small.

    Parameters
    ----------
    against : str or sequence of str
        A catalogued run id, a sample dataset name, or files / globs / folders.
    variable : str
        The canonical variable needed.
    catalog : Catalog
        To resolve run ids.
    data_root : Path or None
        The sample data folder, for dataset names.

    Raises
    ------
    ReaderError
        Nothing matches ``against`` or a file cannot be read.
    VerificationError
        The reference lacks ``variable``, has no time coordinate, or its files disagree on the grid.
    """
    from engine import datasets
    from engine.readers import open_any

    items = [against] if isinstance(against, str) else list(against)
    if not items:
        raise VerificationError("against: give a dataset name, a run id or files")
    label = _reference_label(items, catalog)
    if label.startswith("run:"):
        return _run_reference(catalog, items[0], variable, label)

    fmt: str | None = None
    if label.startswith("dataset:"):
        meta = datasets.get(items[0])
        fmt = meta.format
        if meta.kind == "stations" or meta.combine != "time":
            return _whole_reference(datasets.open_dataset(meta.name, data_root), variable, label)
    paths = datasets.resolve_inputs(items, data_root)

    cache: dict[str, Any] = {"path": None, "ds": None}
    lock = threading.Lock()

    def opened(path: Path) -> xr.Dataset:
        # keep the file read last: consecutive frames of one file cost one read
        if cache["path"] != path:
            cache["ds"] = open_any(path, format=fmt)
            cache["path"] = path
        return cache["ds"]

    times: dict[np.datetime64, tuple[Path, int | None]] = {}
    repeated: list[np.datetime64] = []
    template: xr.DataArray | None = None
    for path in paths:
        ds = opened(path)
        if "station" in ds.dims or "station_lat" in ds.attrs:
            if len(paths) > 1:
                raise VerificationError(f"{path}: station files are verified one at a time (or as a dataset name)")
            return _whole_reference(ds, variable, label)
        if variable not in ds.data_vars:
            raise VerificationError(f"{path}: no variable {variable!r} (has {', '.join(map(str, ds.data_vars))})")
        da = ds[variable]
        if "time" not in da.coords:
            raise VerificationError(
                f"{path}: {variable} has no time coordinate, so it cannot be matched to valid times"
            )
        tvals = np.atleast_1d(da["time"].values)
        frame = _to_frame(da.isel(time=0) if "time" in da.dims else da)
        if template is None:
            template = frame
        elif not _same_grid(frame, template, tuple(map(str, frame.dims[-2:]))):
            raise VerificationError(
                f"{path}: grid {dict(frame.sizes)} differs from the first file's {dict(template.sizes)}"
            )
        for i, t in enumerate(tvals):
            key = _time_key(t)
            if key in times:
                repeated.append(key)  # the first file's frame is kept (module docstring)
            else:
                times[key] = (path, i if "time" in da.dims else None)
    assert template is not None  # resolve_inputs never returns an empty list

    def load(key: tuple[Path, int | None]) -> xr.DataArray:
        path, i = key
        # dask may call this from several threads; the one-file cache is not thread-safe
        with lock:
            da = opened(path)[variable]
            return _to_frame(da.isel(time=i) if i is not None else da).load()

    return Reference(label, frames=FrameIndex(label, times, load, template, tuple(repeated)))


def _to_frame(da: xr.DataArray) -> xr.DataArray:
    """One reference time: the member mean of an analysis ensemble, scalar coordinates dropped."""
    if "member" in da.dims:
        # an ensemble of analyses (ERA5 EDA): its mean is the best estimate of the truth
        da = da.mean("member", keep_attrs=True)
    extra = [d for d in da.dims if d not in ("y", "x", "lat", "lon")]
    if extra:
        raise DimensionError(f"{da.name}: reference frames must be 2-D grids; extra dims {extra}")
    # the data contract's order (y, x) / (lat, lon), whatever order the file stores
    order = [d for d in ("y", "x", "lat", "lon") if d in da.dims]
    return da.drop_vars([c for c in da.coords if c not in da.dims]).transpose(*order)


def _whole_reference(ds: xr.Dataset, variable: str, label: str) -> Reference:
    if "station" not in ds.dims and "station_lat" in ds.attrs:
        ds = _single_station(ds, label)
    if "station" in ds.dims:
        if variable not in ds.data_vars:
            raise VerificationError(
                f"{label}: no station variable {variable!r} (has {', '.join(map(str, ds.data_vars))})"
            )
        if "lat" not in ds.coords or "lon" not in ds.coords:
            raise VerificationError(f"{label}: the stations have no coordinates (lat/lon), so they cannot be matched")
        return Reference(label, stations=ds)
    if variable not in ds.data_vars or "time" not in ds[variable].dims:
        raise VerificationError(f"{label}: no {variable!r} with a time dim to verify against")
    da = ds[variable]
    frames: dict[np.datetime64, int] = {}
    repeated = []
    for i, t in enumerate(da["time"].values):
        key = _time_key(t)
        if key in frames:
            repeated.append(key)  # the first is kept, as for files
        else:
            frames[key] = i
    template = _to_frame(da.isel(time=0))
    return Reference(
        label,
        frames=FrameIndex(label, frames, lambda i: _to_frame(da.isel(time=i)).load(), template, tuple(repeated)),
    )


def _run_reference(catalog: Catalog, run_id: str, variable: str, label: str) -> Reference:
    """Another run as reference: each of its lead times is a frame at its valid time."""
    rec = catalog.get_run(run_id)
    ds = _open_run(rec)
    if variable not in ds.data_vars:
        raise VerificationError(f"{label}: no variable {variable!r} (has {', '.join(map(str, ds.data_vars))})")
    da = _single_init(ds[variable], rec.run_id)
    valid = _valid_times(da, rec)
    frames = {_time_key(t): k for k, t in enumerate(valid)}
    template = _to_frame(da.isel(lead_time=0))
    return Reference(
        label, frames=FrameIndex(label, frames, lambda k: _to_frame(da.isel(lead_time=k)).load(), template)
    )
