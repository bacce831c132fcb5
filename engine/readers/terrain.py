"""Digital elevation models and gridded text fields: GeoTIFF, netCDF DEMs, basemap text grids.

Readers:

- ``geotiff`` (:class:`GeoTiffReader`): single-band GeoTIFF DEMs (SRTM tiles of oggm-sample-data)
  read with tifffile. Georeferencing comes from the GeoTIFF tags: ``ModelTiepoint`` and
  ``ModelPixelScale`` give the affine grid (north-up, no rotation), the GeoKey directory the CRS
  (EPSG code from ``GeographicTypeGeoKey``/``ProjectedCSTypeGeoKey``, or a user-defined transverse
  Mercator from its parameter keys). Geographic grids → dims ``(lat, lon)``; projected grids →
  ``(y, x)`` with 2-D ``lat``/``lon`` and a CF ``crs`` variable (:func:`engine.coords.attach_projection`).
  We read the tags ourselves rather than through rasterio/GDAL, which are not in our dependency set.
- ``netcdf_dem`` (:class:`NetcdfDemReader`): ``colorado_elev.nc`` (``z`` on 1-D longitude ``x`` and
  latitude ``y``) → ``orography (lat, lon)``; rotated-pole model orography (``HSURF`` on ``rlat``/
  ``rlon`` with a ``rotated_latitude_longitude`` grid mapping) → ``orography (y, x)`` with ``x``/``y``
  the rotated longitude/latitude in degrees, a CF ``crs`` variable and 2-D ``lat``/``lon`` computed
  by pyproj (``+proj=ob_tran``) from the grid mapping.
- ``etopo_text`` (:class:`EtopoTextReader`): basemap's example grids as three gzipped text files
  ``<name>data.gz`` (rows = latitudes), ``<name>lats.gz``, ``<name>lons.gz``; give any one of them.
  ``etopo*`` → ``orography`` (m, ocean negative); ``<level>hgt`` (e.g. ``500hgt``) → ``gh<level>``
  in metres (the values, 4835-5931, are 500 hPa heights in m, not dam).

Public API: ``GeoTiffReader``, ``NetcdfDemReader``, ``EtopoTextReader``, ``geotiff_crs``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import xarray as xr
from pyproj import CRS, Transformer

from engine.coords import attach_projection
from engine.errors import FormatError
from engine.lexicon import level_name
from engine.readers._common import (
    NC_SUFFIXES,
    canonical_da,
    check_readable,
    nc_header,
    open_netcdf,
    requested,
    set_lat_lon,
)
from engine.readers.base import has_suffix, read_head, readers

# --------------------------------------------------------------------------------------------
# geotiff
# --------------------------------------------------------------------------------------------

_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
_USER_DEFINED = 32767
_CT_TRANSVERSE_MERCATOR = 1


def geotiff_crs(geokeys: dict[str, Any]) -> CRS:
    """The CRS described by a GeoTIFF GeoKey directory (as decoded by ``tifffile``'s ``geotiff_metadata``).

    Parameters
    ----------
    geokeys : dict
        Key name → value; enum values are accepted (their integer value is used).

    Returns
    -------
    pyproj.CRS

    Raises
    ------
    ValueError
        If the model type or projection is not supported (only EPSG codes and user-defined
        transverse Mercator are).
    """

    def code(key: str) -> int | None:
        value = geokeys.get(key)
        return None if value is None else int(value)

    model = code("GTModelTypeGeoKey")
    if model == 2:  # geographic
        epsg = code("GeographicTypeGeoKey")
        if epsg and epsg != _USER_DEFINED:
            return CRS.from_epsg(epsg)
        a, rf = geokeys.get("GeogSemiMajorAxisGeoKey"), geokeys.get("GeogInvFlatteningGeoKey")
        if a and rf:
            return CRS.from_proj4(f"+proj=longlat +a={a} +rf={rf} +no_defs")
        raise ValueError("geographic GeoTIFF without a GeographicTypeGeoKey or ellipsoid keys")
    if model == 1:  # projected
        epsg = code("ProjectedCSTypeGeoKey")
        if epsg and epsg != _USER_DEFINED:
            return CRS.from_epsg(epsg)
        if code("ProjCoordTransGeoKey") == _CT_TRANSVERSE_MERCATOR:
            geog = code("GeographicTypeGeoKey")
            datum = CRS.from_epsg(geog) if geog and geog != _USER_DEFINED else CRS.from_epsg(4326)
            ell = datum.ellipsoid
            if ell is None:
                raise ValueError(f"geographic CRS {datum.name!r} of the transverse Mercator projection has no ellipsoid")
            params = {
                "lat_0": geokeys.get("ProjNatOriginLatGeoKey", 0.0),
                "lon_0": geokeys.get("ProjNatOriginLongGeoKey", 0.0),
                "k_0": geokeys.get("ProjScaleAtNatOriginGeoKey", 1.0),
                "x_0": geokeys.get("ProjFalseEastingGeoKey", 0.0),
                "y_0": geokeys.get("ProjFalseNorthingGeoKey", 0.0),
            }
            units = code("ProjLinearUnitsGeoKey")
            if units not in (None, 9001):
                raise ValueError(f"projected GeoTIFF with linear units code {units}; only metres (9001) are supported")
            proj = " ".join(f"+{k}={float(v)!r}" for k, v in params.items())
            return CRS.from_proj4(f"+proj=tmerc {proj} +a={ell.semi_major_metre} +rf={ell.inverse_flattening} +units=m +no_defs")
        raise ValueError(f"user-defined projection with coordinate transform {code('ProjCoordTransGeoKey')} is not supported")
    raise ValueError(f"GTModelTypeGeoKey {model} is not geographic (2) or projected (1)")


@readers.register("geotiff")
class GeoTiffReader:
    """Single-band GeoTIFF DEMs (north-up, geographic or projected)."""

    suffixes: ClassVar[tuple[str, ...]] = (".tif", ".tiff")
    description: ClassVar[str] = "GeoTIFF digital elevation model (tifffile + GeoKeys): orography"

    def can_open(self, path: Path) -> bool:
        """``.tif``/``.tiff`` with a TIFF or BigTIFF byte-order mark."""
        return has_suffix(path, self.suffixes) and read_head(path, 4) in _TIFF_MAGICS

    def open(self, path: Path, *, variables: Sequence[str] | None = None) -> xr.Dataset:
        """Read a DEM as ``orography`` in metres.

        Parameters
        ----------
        path : Path
            A GeoTIFF with ``ModelPixelScale``/``ModelTiepoint`` tags and a GeoKey directory.
        variables : sequence of str, optional
            Only ``["orography"]`` is available.

        Returns
        -------
        Dataset
            ``orography`` (float32, m; the ``GDAL_NODATA`` value → NaN) on ``(lat, lon)`` (cell
            centres, latitude descending) for geographic CRSs, or on ``(y, x)`` with 2-D ``lat``/
            ``lon`` and a ``crs`` variable for projected ones. ``attrs["crs"]`` holds the CRS as
            ``EPSG:nnnn`` or a PROJ string.

        Raises
        ------
        FormatError
            Not a GeoTIFF, truncated, no georeferencing tags, rotated/sheared grids, or an
            unsupported projection.
        """
        import tifffile

        path = Path(path)
        check_readable(path)
        requested(variables, ["orography"], path)
        try:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                geo = tif.geotiff_metadata or {}
                values = page.asarray()
                nodata = page.tags.get("GDAL_NODATA")
                nodata_value = float(str(nodata.value).strip("\x00 ")) if nodata is not None else None
        except Exception as err:  # tifffile raises TiffFileError, ValueError, struct errors... on bad files
            raise FormatError(path, f"cannot be read as TIFF (truncated or corrupt?): {type(err).__name__}: {err}") from err
        if values.ndim != 2:
            raise FormatError(path, f"expected one band (2-D raster), got shape {values.shape}")
        scale, tie = geo.get("ModelPixelScale"), geo.get("ModelTiepoint")
        if not scale or not tie or len(tie) < 6:
            raise FormatError(path, "no ModelPixelScale/ModelTiepoint tags: not georeferenced (ModelTransformation is not supported)")
        try:
            crs = geotiff_crs(geo)
        except ValueError as err:
            raise FormatError(path, str(err)) from err
        sx, sy = float(scale[0]), float(scale[1])
        i0, j0, x0, y0 = float(tie[0]), float(tie[1]), float(tie[3]), float(tie[4])
        # PixelIsArea (1, the default): the tiepoint is the outer corner of the pixel, so centres are
        # half a cell in; PixelIsPoint (2): the tiepoint is the centre already.
        half = 0.0 if int(geo.get("GTRasterTypeGeoKey", 1)) == 2 else 0.5
        ny, nx = values.shape
        x = x0 + (np.arange(nx) - i0 + half) * sx
        y = y0 - (np.arange(ny) - j0 + half) * sy  # rows run north → south
        data = values.astype("float32")
        if nodata_value is not None:
            data[values == nodata_value] = np.nan
        crs_text = crs.to_string()
        if crs.is_geographic:
            ds = xr.Dataset({"orography": canonical_da(data, "orography", dims=("lat", "lon"))},
                            coords={"lat": ("lat", y), "lon": ("lon", x)})
            ds = set_lat_lon(ds)
        else:
            ds = xr.Dataset({"orography": canonical_da(data, "orography", dims=("y", "x"))})
            ds = attach_projection(ds, crs, x=x, y=y)
        ds.attrs.update({"source_files": str(path), "crs": crs_text})
        return ds


# --------------------------------------------------------------------------------------------
# netcdf_dem
# --------------------------------------------------------------------------------------------

#: Native elevation variables of the supported DEM layouts, with the units they hold when unstated.
_DEM_VARIABLES = {"HSURF": "m", "z": "m", "elevation": "m", "topo": "m", "height": "m"}


def _dem_variable(var_dims: dict[str, tuple[str, ...]], var_attrs: dict[str, dict[str, object]]) -> str | None:
    """The elevation variable of a netCDF DEM layout, or None."""
    for name in _DEM_VARIABLES:
        dims = var_dims.get(name)
        if dims is None or len(dims) < 2:
            continue
        ydim, xdim = dims[-2], dims[-1]
        if (ydim, xdim) == ("rlat", "rlon"):
            return name
        # colorado_elev style: 1-D x/y coordinate variables that are longitude/latitude.
        xa, ya = var_attrs.get(xdim, {}), var_attrs.get(ydim, {})
        geographic = str(xa.get("units", "")).startswith("degrees_east") and str(ya.get("units", "")).startswith("degrees_north")
        # lat/lon-named dims are gridded analyses (netcdf_grid), not DEMs on x/y.
        if geographic and (xdim, ydim) not in (("lon", "lat"), ("longitude", "latitude")):
            return name
    return None


@readers.register("netcdf_dem")
class NetcdfDemReader:
    """netCDF terrain: lon/lat DEMs on ``x``/``y`` dims, rotated-pole model orography (``HSURF``)."""

    suffixes: ClassVar[tuple[str, ...]] = NC_SUFFIXES
    description: ClassVar[str] = "netCDF digital elevation models (x/y lon-lat, rotated pole HSURF): orography"

    def can_open(self, path: Path) -> bool:
        """netCDF with an elevation variable (``HSURF``, ``z``...) on ``(rlat, rlon)`` or lon/lat ``x``/``y`` dims."""
        if not has_suffix(path, self.suffixes):
            return False
        h = nc_header(path)
        return h is not None and _dem_variable(h.var_dims, h.var_attrs) is not None

    def open(self, path: Path, *, variables: Sequence[str] | None = None) -> xr.Dataset:
        """Read the DEM as ``orography`` (float32, m).

        Parameters
        ----------
        path : Path
            ``colorado_elev.nc``-like or rotated-pole ``HSURF`` file.
        variables : sequence of str, optional
            Only ``["orography"]`` is available.

        Returns
        -------
        Dataset
            ``orography`` on ``(lat, lon)`` (1-D coordinates) or on ``(y, x)`` (rotated pole: ``x``/``y``
            in rotated degrees, 2-D ``lat``/``lon``, CF ``crs`` variable with the rotated pole).

        Raises
        ------
        FormatError
            Not a supported DEM layout, truncated file, or a grid mapping that is not rotated pole.
        """
        path = Path(path)
        raw = open_netcdf(path)
        requested(variables, ["orography"], path)
        name = _dem_variable({str(k): tuple(map(str, v.dims)) for k, v in raw.variables.items()},
                             {str(k): dict(v.attrs) for k, v in raw.variables.items()})
        if name is None:
            raise FormatError(path, "no elevation variable (HSURF, z...) on rlat/rlon or lon/lat x/y dims")
        var = raw[name]
        # Drop a length-1 time (model constant fields carry one); anything longer is not a DEM.
        extra = [d for d in var.dims if d not in var.dims[-2:]]
        if any(var.sizes[d] != 1 for d in extra):
            raise FormatError(path, f"{name} has non-singleton extra dims {extra}; expected a 2-D DEM")
        var = var.squeeze(extra, drop=True)
        units = str(var.attrs.get("units", _DEM_VARIABLES[name]))
        ydim, xdim = var.dims
        if (ydim, xdim) == ("rlat", "rlon"):
            mapping_name = str(var.attrs.get("grid_mapping", "rotated_pole"))
            if mapping_name not in raw.variables:
                raise FormatError(path, f"{name} refers to grid mapping {mapping_name!r}, which is not in the file")
            mapping = raw[mapping_name].attrs
            if mapping.get("grid_mapping_name") != "rotated_latitude_longitude":
                raise FormatError(path, f"grid mapping {mapping.get('grid_mapping_name')!r} is not rotated_latitude_longitude")
            crs = CRS.from_cf({k: (float(v) if isinstance(v, np.floating) else v) for k, v in mapping.items()
                               if k.startswith("grid_") or k == "north_pole_grid_longitude"})
            da = canonical_da(var.values.astype("float32"), "orography", units=units, dims=("y", "x"), native_name=name)
            ds = attach_projection(xr.Dataset({"orography": da}), crs,
                                   x=raw["rlon"].values.astype("float64"), y=raw["rlat"].values.astype("float64"))
            # attach_projection converts to crs.geodetic_crs, which for a rotated pole (a *derived*
            # geographic CRS) is the rotated system itself; convert to true WGS 84 lon/lat here.
            xx, yy = np.meshgrid(ds["x"].values, ds["y"].values)
            lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xx, yy)
            ds["lat"] = (("y", "x"), lat.astype("float32"), ds["lat"].attrs)
            ds["lon"] = (("y", "x"), lon.astype("float32"), ds["lon"].attrs)
            ds["x"].attrs.update({"standard_name": "grid_longitude", "units": "degrees"})
            ds["y"].attrs.update({"standard_name": "grid_latitude", "units": "degrees"})
        else:
            da = canonical_da(var.values.astype("float32"), "orography", units=_metres(units), dims=("lat", "lon"),
                              native_name=name)
            ds = xr.Dataset({"orography": da}, coords={"lat": ("lat", raw[ydim].values.astype("float64")),
                                                       "lon": ("lon", raw[xdim].values.astype("float64"))})
            ds = set_lat_lon(ds)
        ds.attrs["source_files"] = str(path)
        return ds


def _metres(units: str) -> str:
    # colorado_elev's z has no units attribute; its values (943-4096) are metres.
    return units if units in ("m", "km", "meters", "metres") else "m"


# --------------------------------------------------------------------------------------------
# etopo_text
# --------------------------------------------------------------------------------------------

_TEXT_GRID_RE = re.compile(r"^(?P<stem>.+?)(?P<part>data|lats|lons)\.gz$", re.IGNORECASE)
_HGT_RE = re.compile(r"^(\d{3,4})hgt$", re.IGNORECASE)


def _text_grid_parts(path: Path) -> tuple[str, dict[str, Path]] | None:
    """(stem, {"data"|"lats"|"lons": path}) for one file of a basemap text-grid triple, else None."""
    m = _TEXT_GRID_RE.match(path.name)
    if not m:
        return None
    stem = m.group("stem")
    return stem, {part: path.with_name(f"{stem}{part}.gz") for part in ("data", "lats", "lons")}


def _text_grid_variable(stem: str) -> str | None:
    if stem.lower().startswith("etopo"):
        return "orography"
    m = _HGT_RE.match(stem)
    return level_name("gh", float(m.group(1))) if m else None


@readers.register("etopo_text")
class EtopoTextReader:
    """basemap text grids: ``<name>{data,lats,lons}.gz`` (ETOPO relief, 500 hPa height)."""

    suffixes: ClassVar[tuple[str, ...]] = ("data.gz", "lats.gz", "lons.gz")
    description: ClassVar[str] = "gzipped text grids <name>{data,lats,lons}.gz (etopo → orography, 500hgt → gh500)"

    def can_open(self, path: Path) -> bool:
        """A ``{data,lats,lons}.gz`` file of a known stem whose siblings exist and whose text starts with a number."""
        parts = _text_grid_parts(path)
        if parts is None or _text_grid_variable(parts[0]) is None:
            return False
        if not all(p.is_file() for p in parts[1].values()):
            return False
        head = read_head(path, 64).split()
        try:
            float(head[0])
        except (IndexError, ValueError):
            return False
        return True

    def open(self, path: Path, *, variables: Sequence[str] | None = None) -> xr.Dataset:
        """Read the triple that ``path`` belongs to.

        Parameters
        ----------
        path : Path
            Any of ``<name>data.gz``, ``<name>lats.gz``, ``<name>lons.gz``.
        variables : sequence of str, optional
            The single variable of the triple (``orography`` or ``gh500``).

        Returns
        -------
        Dataset
            One variable in metres on ``(lat, lon)``; latitude as in the file (ascending). A final
            longitude column that repeats the first one 360 degrees on (cyclic point) is dropped.

        Raises
        ------
        FormatError
            Not a text-grid name, a sibling file missing, unparsable text, or shapes that disagree.
        """
        path = Path(path)
        parts = _text_grid_parts(path)
        if parts is None:
            raise FormatError(path, "name is not <name>data.gz, <name>lats.gz or <name>lons.gz")
        stem, files = parts
        name = _text_grid_variable(stem)
        if name is None:
            raise FormatError(path, f"unknown text grid {stem!r}: expected etopo* (orography) or <level>hgt (gh<level>)")
        requested(variables, [name], path)
        arrays = {}
        for part, file in files.items():
            check_readable(file)
            try:
                arrays[part] = np.loadtxt(file, dtype="float64", ndmin=1 if part != "data" else 2)
            except (ValueError, OSError, EOFError) as err:
                raise FormatError(file, f"cannot be parsed as gzipped numeric text: {type(err).__name__}: {err}") from err
        data, lats, lons = arrays["data"], arrays["lats"], arrays["lons"]
        if data.shape != (lats.size, lons.size):
            raise FormatError(files["data"], f"data shape {data.shape} does not match {lats.size} lats x {lons.size} lons")
        if lons.size > 1 and np.isclose(lons[-1] - lons[0], 360.0) and np.allclose(data[:, -1], data[:, 0]):
            data, lons = data[:, :-1], lons[:-1]
        da = canonical_da(data.astype("float32"), name, units="m", dims=("lat", "lon"), native_name=stem)
        ds = xr.Dataset({name: da}, coords={"lat": ("lat", lats), "lon": ("lon", lons)})
        ds = set_lat_lon(ds)
        ds.attrs["source_files"] = ",".join(str(f) for f in files.values())
        return ds
