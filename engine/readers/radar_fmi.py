"""Finnish Meteorological Institute radar reflectivity composites in gzipped 8-bit PGM.

A binary PGM (``P5``) whose comment lines carry the metadata (``# obstime 201609281445``,
``# metersperpixel_x ...``, a ``# projection radar { ... }`` block with the stereographic
parameters and the lon/lat of the outer bottom-left and top-right corners). Pixel values encode
reflectivity as ``dBZ = (p - 64) / 2``; ``p = 255`` (the PGM maxval) is no data and ``p = 0``
(-32 dBZ) is the "no echo" floor.

The PGM is parsed here rather than with Pillow/matplotlib because the metadata lives in the
comment lines, which those libraries drop, and because the raster is a plain byte array after
the header (no decoding library adds anything).

Public API: ``FmiPgmReader`` (registered as ``fmi_pgm``), ``FMI_ZR``.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import numpy as np
import xarray as xr
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from engine.errors import FormatError
from engine.readers.base import has_suffix, read_head, readers
from engine.readers.radar_common import (
    build_radar_dataset,
    check_variables,
    check_zr,
    dbz_to_rate,
    time_from_name,
    utc_datetime64,
)

#: Z-R coefficients FMI uses for its composites, Z = 223 R^1.53 (the values pysteps' importer
#: reports in its metadata for FMI data); used unless the caller passes others.
FMI_ZR: tuple[float, float] = (223.0, 1.53)

# The PGM files do not state the earth radius or false origin; these are the values FMI's
# SUOMI1 composite uses (as hard-coded in pysteps' _import_fmi_pgm_geodata). The false origin
# only shifts x/y (it puts the bottom-left corner at 0, 0); the earth radius matters for lat/lon.
_STERE_EXTRA = "+a=6371288 +x_0=380886.310 +y_0=3395677.920 +no_defs"

_HEADER_TOKEN = re.compile(rb"\s*(\d+)")


def parse_pgm_header(path: Path, raw: bytes) -> tuple[dict[str, list[str]], int, int, int, int]:
    """Parse a binary PGM header.

    Parameters
    ----------
    path : Path
        For error messages.
    raw : bytes
        The (decompressed) file content.

    Returns
    -------
    metadata : dict
        ``key -> [values...]`` from ``# key value...`` comment lines.
    width, height, maxval : int
        From the header.
    offset : int
        Byte offset of the raster.

    Raises
    ------
    FormatError
        If the content is not a binary (P5) PGM.
    """
    if not raw.startswith(b"P5"):
        raise FormatError(path, "not a binary PGM (no P5 signature)")
    metadata: dict[str, list[str]] = {}
    numbers: list[int] = []
    pos = 2
    # Header: magic, then width, height, maxval as ASCII integers separated by whitespace, with
    # '#' comments to the end of a line anywhere in between; one whitespace byte ends it.
    while len(numbers) < 3:
        while pos < len(raw) and raw[pos : pos + 1].isspace():
            pos += 1
        if raw[pos : pos + 1] == b"#":
            end = raw.find(b"\n", pos)
            if end < 0:
                raise FormatError(path, "PGM header ends inside a comment (truncated?)")
            words = raw[pos + 1 : end].decode("latin-1").split()
            if len(words) >= 2:
                metadata[words[0]] = words[1:]
            pos = end + 1
            continue
        m = _HEADER_TOKEN.match(raw, pos)
        if not m:
            raise FormatError(path, f"bad PGM header near byte {pos}")
        numbers.append(int(m.group(1)))
        pos = m.end()
    width, height, maxval = numbers
    if not (0 < maxval < 256):
        raise FormatError(path, f"PGM maxval {maxval}: only 8-bit PGMs are supported")
    return metadata, width, height, maxval, pos + 1


@readers.register("fmi_pgm")
class FmiPgmReader:
    """FMI reflectivity composite (PGM, optionally gzipped) → ``reflectivity`` (dBZ) and ``precip_rate``.

    Detection: ``.pgm``/``.pgm.gz`` suffix, the ``P5`` signature (after decompression) and
    FMI's metadata comments (``# obstime``, ``# metersperpixel_x``).
    """

    suffixes: ClassVar[tuple[str, ...]] = (".pgm.gz", ".pgm")
    description: ClassVar[str] = "FMI radar reflectivity composite (PGM/PGM.gz, polar stereographic 1 km)"

    def can_open(self, path: Path) -> bool:
        """Suffix, PGM signature and FMI comments; never raises (``read_head`` returns b"" on error)."""
        if not has_suffix(path, self.suffixes):
            return False
        head = read_head(path, 2048)
        return head.startswith(b"P5") and b"# obstime" in head and b"# metersperpixel_x" in head

    def open(
        self,
        path: Path,
        *,
        variables: Sequence[str] | None = None,
        zr_a: float = FMI_ZR[0],
        zr_b: float = FMI_ZR[1],
    ) -> xr.Dataset:
        """Read one composite.

        Parameters
        ----------
        path : Path
            A ``*_fmi.radar.composite.*.pgm.gz`` (or uncompressed ``.pgm``) file.
        variables : sequence of str, optional
            ``reflectivity`` and/or ``precip_rate``; both when omitted.
        zr_a, zr_b : float
            Coefficients of ``Z = a R^b`` for ``precip_rate``; FMI's own 223 and 1.53 by default
            (Marshall-Palmer would be 200 and 1.6).

        Returns
        -------
        Dataset
            ``reflectivity`` (dBZ, float32, ``(1, 1226, 760)``; -32 dBZ is the no-echo floor) and
            ``precip_rate`` (mm h-1) from it by :func:`~engine.readers.radar_common.dbz_to_rate`,
            0 where there is no echo. NaN outside coverage in both. ``time`` is ``obstime``
            (UTC); attributes ``zr_a``, ``zr_b``, ``radars``.

        Raises
        ------
        FormatError
            Not an FMI PGM, truncated, or a non-stereographic projection.
        VariableNotFoundError
            ``variables`` names something else.
        """
        path = Path(path)
        names = check_variables(path, variables, ("precip_rate", "reflectivity"))
        check_zr(path, zr_a, zr_b)
        try:
            if path.name.lower().endswith(".gz"):
                with gzip.open(path, "rb") as f:
                    raw = f.read()
            else:
                raw = path.read_bytes()
        except (OSError, EOFError, zlib.error) as err:
            raise FormatError(path, f"cannot decompress/read (truncated or corrupt?): {err}") from err
        meta, width, height, maxval, offset = parse_pgm_header(path, raw)
        if len(raw) - offset < width * height:
            raise FormatError(path, f"raster has {len(raw) - offset} bytes, expected {width} x {height} (truncated?)")
        pixels = np.frombuffer(raw, dtype=np.uint8, count=width * height, offset=offset).reshape(height, width)

        crs, x, y = self._grid(path, meta, width, height)
        # Decode through 256-entry tables: the Z-R power law then runs on 256 values, not 1e6 pixels.
        dbz_table = (np.arange(256, dtype="float64") - 64.0) / 2.0
        dbz_table[maxval] = np.nan  # no data
        rate_table = dbz_to_rate(dbz_table, zr_a, zr_b)
        rate_table[0] = 0.0  # p = 0 is "no echo", i.e. no rain, not a tiny rate
        dbz = dbz_table.astype("float32")[pixels]
        rate = rate_table[pixels]
        time = self._time(path, meta)
        radars = self._radar_names(raw[:offset])
        fields = {"reflectivity": dbz, "precip_rate": rate}
        return build_radar_dataset(
            path,
            {n: fields[n] for n in names},
            time=time,
            crs=crs,
            x=x,
            y=y,
            attrs={
                "institution": "Finnish Meteorological Institute",
                "product": " ".join(meta.get("producttype", []) + meta.get("productname", []))
                or "reflectivity composite",
                "quantity": " ".join(meta.get("param", [])),
                "zr_a": float(zr_a),
                "zr_b": float(zr_b),
                "radars": ", ".join(radars),
            },
            field_attrs={"precip_rate": {"zr_a": float(zr_a), "zr_b": float(zr_b)}},
        )

    @staticmethod
    def _radar_names(header: bytes) -> list[str]:
        # "# radar KOR 1 21.6460 60.1280" lines repeat, so the metadata dict keeps only the last.
        return [m.decode("ascii") for m in re.findall(rb"^# radar ([A-Z]{3}) ", header, flags=re.MULTILINE)]

    @staticmethod
    def _time(path: Path, meta: dict[str, list[str]]) -> np.datetime64:
        if "obstime" in meta:
            try:
                return utc_datetime64(datetime.strptime(meta["obstime"][0], "%Y%m%d%H%M"))
            except ValueError as err:
                raise FormatError(path, f"bad obstime {meta['obstime'][0]!r}: {err}") from err
        return time_from_name(path, r"^(\d{12})_", "%Y%m%d%H%M")

    @staticmethod
    def _grid(path: Path, meta: dict[str, list[str]], width: int, height: int) -> tuple[CRS, np.ndarray, np.ndarray]:
        try:
            if meta.get("type", [""])[0] != "stereographic":
                raise FormatError(path, f"projection type {meta.get('type')} is not supported (only stereographic)")
            proj = (
                f"+proj=stere +lon_0={float(meta['centrallongitude'][0])} +lat_0={float(meta['centrallatitude'][0])} "
                f"+lat_ts={float(meta['truelatitude'][0])} {_STERE_EXTRA}"
            )
            crs = CRS.from_proj4(proj)
            ll_lon, ll_lat = (float(v) for v in meta["bottomleft"][:2])
            ur_lon, ur_lat = (float(v) for v in meta["topright"][:2])
        except (KeyError, IndexError, ValueError, CRSError) as err:
            raise FormatError(path, f"incomplete projection metadata in the PGM comments: {err!r}") from err
        to_xy = Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True)
        x1, y1 = to_xy.transform(ll_lon, ll_lat)
        x2, y2 = to_xy.transform(ur_lon, ur_lat)
        # bottomleft/topright are the outer corners of the corner pixels: centres are half a pixel in.
        dx, dy = (x2 - x1) / width, (y2 - y1) / height
        x = x1 + dx * (np.arange(width) + 0.5)
        y = y2 - dy * (np.arange(height) + 0.5)
        return crs, x, y
