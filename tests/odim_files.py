"""Writing ODIM_H5 radar composites for tests (there is no ODIM sample file in the data).

Shared by the reader tests and the nowcast tests; importable because pytest puts ``tests/`` on
``sys.path`` (``pythonpath`` in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np


def _s(text: str) -> np.bytes_:
    # ODIM stores strings as fixed-length, null-terminated byte strings.
    return np.bytes_(text.encode("ascii"))


def write_odim_file(
    path: Path,
    *,
    datasets: Sequence[Sequence[Mapping[str, object]]],
    projdef: str,
    corners: Mapping[str, tuple[float, float]],
    xscale: float,
    yscale: float,
    date: str,
    time: str,
    start: tuple[str, str] | None = None,
    source: str = "ORG:86,CTY:613,NOD:fitest",
    how: Mapping[str, object] | None = None,
) -> Path:
    """Write a Cartesian ODIM_H5 composite (object COMP, version H5rad 2.2) with h5py.

    Parameters
    ----------
    datasets : list of list of dict
        ``datasets[i][j]`` describes ``/dataset{i+1}/data{j+1}``: keys ``data`` (2-D raw array,
        rows north to south), ``quantity``, ``gain``, ``offset``, ``nodata``, ``undetect``.
    corners : dict
        ``{"UL": (lon, lat), "LL": ..., "UR": ..., "LR": ...}``, outer pixel corners.
    date, time : str
        ``YYYYMMDD``, ``HHMMSS`` of the end of the product period.
    start : (date, time), optional
        Start of the period (for ACRR).
    how : dict, optional
        Extra root ``how`` attributes (e.g. ``zr_a``, ``zr_b``).
    """
    first = np.asarray(datasets[0][0]["data"])
    with h5py.File(path, "w") as f:
        f.attrs["Conventions"] = _s("ODIM_H5/V2_2")
        what = f.create_group("what")
        what.attrs.update(
            {"object": _s("COMP"), "version": _s("H5rad 2.2"), "date": _s(date), "time": _s(time), "source": _s(source)}
        )
        where = f.create_group("where")
        where.attrs["projdef"] = _s(projdef)
        where.attrs["xsize"] = np.int64(first.shape[1])
        where.attrs["ysize"] = np.int64(first.shape[0])
        where.attrs["xscale"] = np.float64(xscale)
        where.attrs["yscale"] = np.float64(yscale)
        for corner, (lon, lat) in corners.items():
            where.attrs[f"{corner}_lon"] = np.float64(lon)
            where.attrs[f"{corner}_lat"] = np.float64(lat)
        root_how = f.create_group("how")
        root_how.attrs["software"] = _s("meteolens tests")
        for key, value in (how or {}).items():
            root_how.attrs[key] = value
        for i, fields in enumerate(datasets, start=1):
            ds = f.create_group(f"dataset{i}")
            dwhat = ds.create_group("what")
            dwhat.attrs.update({"product": _s("COMP"), "enddate": _s(date), "endtime": _s(time)})
            if start is not None:
                dwhat.attrs.update({"startdate": _s(start[0]), "starttime": _s(start[1])})
            for j, field in enumerate(fields, start=1):
                grp = ds.create_group(f"data{j}")
                grp.create_dataset("data", data=np.asarray(field["data"]), compression="gzip", compression_opts=6)
                grp["data"].attrs["CLASS"] = _s("IMAGE")
                fwhat = grp.create_group("what")
                fwhat.attrs["quantity"] = _s(str(field["quantity"]))
                for key in ("gain", "offset", "nodata", "undetect"):
                    fwhat.attrs[key] = np.float64(field[key])  # type: ignore[arg-type]
    return path
