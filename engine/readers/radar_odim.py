"""Cartesian ODIM_H5 radar products: OPERA and national composites (``object`` COMP or IMAGE).

ODIM_H5 (EUMETNET OPERA Data Information Model, Michelson et al., v2.0-2.4) stores each field in
``/datasetN/dataM/data`` with its encoding in a ``what`` group: ``quantity``, ``gain``, ``offset``
(physical = raw * gain + offset), ``nodata`` (no coverage) and ``undetect`` (looked, saw nothing).
``what`` attributes may sit at the root, the dataset or the data level; the most specific wins.
The grid is in the root ``where``: a proj4 ``projdef``, ``xsize``/``ysize``, ``xscale``/``yscale``
(metres) and the lon/lat of the outer corners (``UL``/``LL``/``UR``/``LR``); rows run from north to
south. Time stamps are ``startdate``/``starttime``/``enddate``/``endtime`` (UTC).

Quantities read: ``DBZH`` (or ``TH`` when there is no DBZH) → ``reflectivity``; ``RATE`` →
``precip_rate``; ``ACRR`` (mm over start..end) → ``precip_rate``; when the file has only
reflectivity, ``precip_rate`` is derived from it by a Z-R relation: the caller's, else the file's
``how/zr_a``/``how/zr_b``, else Marshall-Palmer.

Public API: ``OdimHdf5Reader`` (registered as ``odim_hdf5``), ``UNDETECT_DBZ``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import h5py
import numpy as np
import xarray as xr
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from engine.errors import FormatError
from engine.readers.base import has_suffix, readers
from engine.readers.radar_common import (
    MARSHALL_PALMER,
    accumulation_to_rate,
    build_radar_dataset,
    check_variables,
    check_zr,
    dbz_to_rate,
    is_hdf5,
    utc_datetime64,
)

#: Reflectivity given to ``undetect`` pixels: the bottom of the 8-bit 0.5 dB scale
#: (gain 0.5, offset -32) used by OPERA and FMI. (pysteps' importer uses -30 dBZ there.)
#: ``precip_rate`` is 0 at those pixels whatever this floor is.
UNDETECT_DBZ = -32.0

_CARTESIAN_OBJECTS = ("COMP", "IMAGE", "CVOL")
_REFLECTIVITY = ("DBZH", "TH")
_SUPPORTED = (*_REFLECTIVITY, "RATE", "ACRR")


def _text(value: object) -> str:
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size else ""
    if isinstance(value, bytes | np.bytes_):
        return value.decode("ascii", errors="replace").strip("\x00 ")
    return str(value)


def _attrs(group: h5py.Group, name: str) -> dict[str, object]:
    return dict(group[name].attrs) if name in group else {}


@dataclass
class _Field:
    """One ``dataN`` array with its merged ``what`` attributes."""

    quantity: str
    raw: np.ndarray
    what: dict[str, object]
    how: dict[str, object]

    def decode(self, undetect_value: float, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """Physical values: NaN at ``nodata``, ``undetect_value`` at ``undetect``.

        Parameters
        ----------
        undetect_value : float
            Value for ``undetect`` pixels (after ``transform``).
        transform : callable, optional
            Applied to the decoded values (e.g. a Z-R conversion) before the flags are set.

        Notes
        -----
        8- and 16-bit integer data (most ODIM products) are decoded through a lookup table over
        all possible codes, so ``transform`` runs on at most 65536 values instead of every pixel.
        """
        gain = float(self.what.get("gain", 1.0))  # type: ignore[arg-type]
        offset = float(self.what.get("offset", 0.0))  # type: ignore[arg-type]
        use_table = self.raw.dtype.kind in "ub" and self.raw.dtype.itemsize <= 2
        codes = np.arange(2 ** (8 * self.raw.dtype.itemsize)) if use_table else self.raw
        values = codes * gain + offset
        if transform is not None:
            values = np.asarray(transform(values), dtype="float64")
        if "undetect" in self.what:
            values[codes == self.what["undetect"]] = undetect_value
        if "nodata" in self.what:
            values[codes == self.what["nodata"]] = np.nan
        return values[self.raw] if use_table else values


def _stamp(path: Path, what: dict[str, object], prefix: str) -> np.datetime64 | None:
    if f"{prefix}date" not in what or f"{prefix}time" not in what:
        return None
    text = _text(what[f"{prefix}date"]) + _text(what[f"{prefix}time"])
    try:
        return utc_datetime64(datetime.strptime(text, "%Y%m%d%H%M%S"))
    except ValueError as err:
        raise FormatError(path, f"bad ODIM {prefix}date/{prefix}time {text!r}: {err}") from err


@readers.register("odim_hdf5")
class OdimHdf5Reader:
    """Cartesian ODIM_H5 composite/image → ``precip_rate`` (mm h-1) and/or ``reflectivity`` (dBZ).

    Detection: ``.h5``/``.hdf5``/``.hdf`` suffix, the HDF5 signature and a root ``Conventions``
    attribute starting with ``ODIM_H5``.
    """

    suffixes: ClassVar[tuple[str, ...]] = (".h5", ".hdf5", ".hdf")
    description: ClassVar[str] = "ODIM_H5 Cartesian radar composite (OPERA and national composites)"

    def can_open(self, path: Path) -> bool:
        """Suffix, HDF5 signature and ``Conventions = ODIM_H5/...``; never raises."""
        if not (has_suffix(path, self.suffixes) and is_hdf5(path)):
            return False
        try:
            with h5py.File(path, "r") as f:
                return _text(f.attrs.get("Conventions", b"")).startswith("ODIM_H5")
        except Exception:  # noqa: BLE001 - can_open must never raise; h5py fails in many ways on bad files
            return False

    def open(
        self,
        path: Path,
        *,
        variables: Sequence[str] | None = None,
        zr_a: float | None = None,
        zr_b: float | None = None,
    ) -> xr.Dataset:
        """Read one ODIM_H5 Cartesian product.

        Parameters
        ----------
        path : Path
            An ODIM_H5 file whose root ``what/object`` is COMP, IMAGE or CVOL.
        variables : sequence of str, optional
            ``precip_rate`` and/or ``reflectivity`` (only when the file has DBZH or TH).
        zr_a, zr_b : float, optional
            Z-R coefficients (``Z = a R^b``) used only when ``precip_rate`` has to be derived from
            reflectivity. Default: the file's own ``how/zr_a``, ``how/zr_b`` (ODIM's attributes for
            the relation the producer uses; root, dataset or data level, the most specific wins),
            else Marshall-Palmer 200, 1.6.

        Returns
        -------
        Dataset
            ``precip_rate`` (mm h-1, float32, ``(1, ysize, xsize)``; from RATE, else ACRR divided by
            its period, else DBZH through Z-R) and ``reflectivity`` (dBZ) when present. NaN at
            ``nodata``, 0 mm h-1 (and :data:`UNDETECT_DBZ`) at ``undetect``. ``time`` is the end
            time of the first dataset (else the root date/time). Attributes ``source``,
            ``product``, ``accutime`` (ACRR), ``zr_a``/``zr_b`` (when Z-R was applied).

        Raises
        ------
        FormatError
            Not ODIM_H5, polar data, truncated, no supported quantity, or bad georeferencing.
        VariableNotFoundError
            A requested variable cannot be provided from this file.
        """
        path = Path(path)
        try:
            f = h5py.File(path, "r")
        except OSError as err:
            raise FormatError(path, f"not a readable HDF5 file (truncated?): {err}") from err
        with f:
            try:
                root_what = _attrs(f, "what")
                how = {**_attrs(f, "how"), **(_attrs(f["dataset1"], "how") if "dataset1" in f else {})}
                obj = _text(root_what.get("object", b""))
                if obj not in _CARTESIAN_OBJECTS:
                    raise FormatError(
                        path,
                        f"ODIM object {obj or '(none)'} is not a Cartesian product; supported: {', '.join(_CARTESIAN_OBJECTS)}",
                    )
                fields, dataset_what = self._fields(f, root_what)
                where = _attrs(f, "where")
                if "projdef" not in where and "dataset1" in f:
                    where = {**_attrs(f["dataset1"], "where"), **where}
            except KeyError as err:
                raise FormatError(path, f"not a complete ODIM_H5 file: missing {err}") from err
            except OSError as err:
                raise FormatError(path, f"cannot read (truncated or corrupt?): {err}") from err

        available = []
        if any(q in fields for q in ("RATE", "ACRR", *_REFLECTIVITY)):
            available.append("precip_rate")
        if any(q in fields for q in _REFLECTIVITY):
            available.append("reflectivity")
        if not available:
            raise FormatError(
                path,
                f"no supported quantity; file has {', '.join(sorted(fields)) or 'none'}, supported {', '.join(_SUPPORTED)}",
            )
        names = check_variables(path, variables, available)

        end = _stamp(path, dataset_what, "end") or _stamp(path, root_what, "")
        start = _stamp(path, dataset_what, "start")
        if end is None:
            raise FormatError(path, "no enddate/endtime in dataset1/what and no date/time in /what")
        crs, x, y = self._grid(path, where, fields)

        out: dict[str, np.ndarray] = {}
        attrs: dict[str, object] = {}
        zr: tuple[float, float] | None = None  # the Z-R coefficients, when applied
        refl_q = next((q for q in _REFLECTIVITY if q in fields), None)
        dbz = fields[refl_q].decode(UNDETECT_DBZ) if refl_q else None
        if "reflectivity" in names and dbz is not None:
            out["reflectivity"] = dbz
        if "precip_rate" in names:
            if "RATE" in fields:
                out["precip_rate"] = fields["RATE"].decode(0.0)
            elif "ACRR" in fields:
                acrr = fields["ACRR"]
                a_start = _stamp(path, acrr.what, "start") or start
                a_end = _stamp(path, acrr.what, "end") or end
                if a_start is None:
                    raise FormatError(path, "ACRR without startdate/starttime: the accumulation period is unknown")
                accutime = (a_end - a_start) / np.timedelta64(1, "m")
                if accutime <= 0:
                    raise FormatError(path, f"ACRR period {a_start} to {a_end} is not positive")
                out["precip_rate"] = accumulation_to_rate(acrr.decode(0.0), accutime)
                attrs["accutime"] = float(accutime)
            elif dbz is not None and refl_q is not None:
                how = {**how, **fields[refl_q].how}
                if zr_a is None:
                    zr_a = float(how.get("zr_a", MARSHALL_PALMER[0]))  # type: ignore[arg-type]
                if zr_b is None:
                    zr_b = float(how.get("zr_b", MARSHALL_PALMER[1]))  # type: ignore[arg-type]
                check_zr(path, zr_a, zr_b)
                zr = (zr_a, zr_b)
                a, b = zr
                out["precip_rate"] = fields[refl_q].decode(0.0, transform=lambda d: dbz_to_rate(d, a, b))
        if zr is not None:
            attrs.update(zr_a=float(zr[0]), zr_b=float(zr[1]))
        source = _text(root_what.get("source", b""))
        return build_radar_dataset(
            path,
            out,
            time=end,
            crs=crs,
            x=x,
            y=y,
            attrs={
                "institution": _institution(source),
                "source": source,
                "product": " ".join(
                    filter(None, (_text(dataset_what.get("product", b"")), _text(dataset_what.get("prodpar", b""))))
                ),
                "conventions": "ODIM_H5",
                **attrs,
            },
            field_attrs={"precip_rate": {"zr_a": float(zr[0]), "zr_b": float(zr[1])}} if zr is not None else None,
        )

    @staticmethod
    def _fields(f: h5py.File, root_what: dict[str, object]) -> tuple[dict[str, _Field], dict[str, object]]:
        """The first field of each quantity, and the first dataset's ``what``."""
        fields: dict[str, _Field] = {}
        first_what: dict[str, object] | None = None
        datasets = sorted((k for k in f if k.startswith("dataset")), key=lambda k: int(k[7:] or 0))
        for ds_name in datasets:
            group = f[ds_name]
            ds_what = {**root_what, **_attrs(group, "what")}
            if first_what is None:
                first_what = ds_what
            for d_name in sorted((k for k in group if k.startswith("data")), key=lambda k: int(k[4:] or 0)):
                what = {**ds_what, **_attrs(group[d_name], "what")}
                quantity = _text(what.get("quantity", b""))
                if quantity in _SUPPORTED and quantity not in fields:
                    how = _attrs(group[d_name], "how")
                    fields[quantity] = _Field(quantity, group[d_name]["data"][()], what, how)
        return fields, first_what or root_what

    @staticmethod
    def _grid(path: Path, where: dict[str, object], fields: dict[str, _Field]) -> tuple[CRS, np.ndarray, np.ndarray]:
        try:
            crs = CRS.from_proj4(_text(where["projdef"]))
            nx, ny = int(where["xsize"]), int(where["ysize"])  # type: ignore[call-overload]
            dx, dy = float(where["xscale"]), float(where["yscale"])  # type: ignore[arg-type]
            corners = {
                c: (float(where[f"{c}_lon"]), float(where[f"{c}_lat"]))  # type: ignore[arg-type]
                for c in ("UL", "LL", "UR", "LR")
                if f"{c}_lon" in where and f"{c}_lat" in where
            }
        except (KeyError, TypeError, ValueError, CRSError) as err:
            raise FormatError(path, f"incomplete or bad georeferencing in /where: {err!r}") from err
        for q, fld in fields.items():
            if fld.raw.shape != (ny, nx):
                raise FormatError(path, f"{q} is {fld.raw.shape}, /where says ysize={ny}, xsize={nx}")
        to_xy = Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True)
        xy = {c: to_xy.transform(*lonlat) for c, lonlat in corners.items()}
        # Corners are outer corners of the corner pixels; UL fixes the grid, else LL (west) + UR (north).
        if "UL" in xy:
            x0, y0 = xy["UL"]
        elif "LL" in xy and "UR" in xy:
            x0, y0 = xy["LL"][0], xy["UR"][1]
        else:
            raise FormatError(
                path, f"/where needs UL_lon/UL_lat or LL_* and UR_* corners; has {', '.join(sorted(corners))}"
            )
        if "LR" in xy:
            # A cheap consistency check of the scales against the opposite corner.
            ex, ey = x0 + nx * dx - xy["LR"][0], y0 - ny * dy - xy["LR"][1]
            if abs(ex) > dx or abs(ey) > dy:
                warnings.warn(
                    f"{path}: LR corner is ({ex:.0f}, {ey:.0f}) m from where xscale/yscale put it; using UL and the scales",
                    UserWarning,
                    stacklevel=3,
                )
        x = x0 + dx * (np.arange(nx) + 0.5)
        y = y0 - dy * (np.arange(ny) + 0.5)
        return crs, x, y


def _institution(source: str) -> str:
    """Institution from the ODIM ``source`` string (``WMO:...,ORG:247,CTY:...,NOD:...``)."""
    parts = dict(p.split(":", 1) for p in source.split(",") if ":" in p)
    for key in ("ORG", "CTY", "NOD", "RAD", "PLC"):
        if key in parts:
            return f"{key}:{parts[key]}"
    return source or "unknown"
