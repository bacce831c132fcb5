"""Coastline and country polygons: TopoJSON (world-atlas) and GeoJSON (Natural Earth).

Both readers return the polygons as one CF-1.8 "simple geometry" ragged array (CF conventions,
section 7.5), which stores any number of (multi)polygons in flat 1-D arrays:

====================  ===========  =====================================================================
variable              dim          meaning
====================  ===========  =====================================================================
``name``              ``feature``  feature name (coordinate; ``properties.name``, else object name + index)
``feature_id``        ``feature``  the feature's ``id`` (str, ``""`` when absent)
``layer``             ``feature``  TopoJSON object (``countries``, ``land``) or ``"features"`` for GeoJSON
``node_count``        ``feature``  nodes of each feature (sum over its parts)
``part_node_count``   ``part``     nodes of each part (ring); parts of one feature are consecutive
``interior_ring``     ``part``     0 for an exterior ring, 1 for a hole
``part_feature``      ``part``     index of the feature a part belongs to
``lon``, ``lat``      ``node``     ring vertices in degrees (coordinates); each ring is closed
``node_part``         ``node``     index of the part a node belongs to
``geometry``          (scalar)     CF geometry container: ``geometry_type="polygon"`` and the names above
====================  ===========  =====================================================================

:func:`to_lines` turns such a Dataset into lon/lat polylines for drawing.

The TopoJSON decoder is hand-written (arc quantisation and delta decoding, arc reversal, ring
stitching; about 40 lines): the maintained decoders are either JavaScript (topojson-client) or
pull in shapely/geopandas, which are not in our dependency set, and the format is small and fixed.

Public API: ``TopoJsonReader``, ``GeoJsonReader``, ``to_lines``, ``decode_topojson``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from engine.errors import FormatError
from engine.readers._common import LAT_ATTRS, LON_ATTRS, check_readable, select_variables
from engine.readers.base import has_suffix, read_head, readers

_TOPOLOGY_RE = re.compile(rb'"type"\s*:\s*"Topology"')
_FEATURES_RE = re.compile(rb'"type"\s*:\s*"(FeatureCollection|Feature)"')


@dataclass
class _Polygons:
    """Accumulates features as lists of rings; :meth:`to_dataset` builds the ragged arrays."""

    names: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    # One entry per feature: list of (ring (n, 2) lon/lat, is_hole).
    rings: list[list[tuple[np.ndarray, bool]]] = field(default_factory=list)

    def add(self, name: str, fid: str, layer: str, polygons: list[list[np.ndarray]]) -> None:
        rings = [(ring, k > 0) for polygon in polygons for k, ring in enumerate(polygon) if len(ring) > 0]
        self.names.append(name)
        self.ids.append(fid)
        self.layers.append(layer)
        self.rings.append(rings)

    def to_dataset(self, path: Path) -> xr.Dataset:
        part_nodes = [len(r) for feature in self.rings for r, _ in feature]
        holes = [int(h) for feature in self.rings for _, h in feature]
        part_feature = [i for i, feature in enumerate(self.rings) for _ in feature]
        nodes = np.concatenate([r for feature in self.rings for r, _ in feature]) if part_nodes else np.zeros((0, 2))
        ds = xr.Dataset(
            {
                "node_count": ("feature", np.array([sum(len(r) for r, _ in f) for f in self.rings], dtype="int64"),
                               {"long_name": "Number of nodes of each feature"}),
                "part_node_count": ("part", np.array(part_nodes, dtype="int64"), {"long_name": "Number of nodes of each ring"}),
                "interior_ring": ("part", np.array(holes, dtype="int8"),
                                  {"long_name": "Ring is a hole", "flag_values": np.array([0, 1], dtype="int8"),
                                   "flag_meanings": "exterior_ring interior_ring"}),
                "part_feature": ("part", np.array(part_feature, dtype="int64"), {"long_name": "Feature index of each ring"}),
                "node_part": ("node", np.repeat(np.arange(len(part_nodes)), part_nodes).astype("int64"),
                              {"long_name": "Ring index of each node"}),
                "geometry": ((), np.int32(0), {
                    "geometry_type": "polygon", "node_count": "node_count", "node_coordinates": "lon lat",
                    "part_node_count": "part_node_count", "interior_ring": "interior_ring",
                }),
            },
            coords={
                "name": ("feature", np.array(self.names, dtype=str)),
                "feature_id": ("feature", np.array(self.ids, dtype=str)),
                "layer": ("feature", np.array(self.layers, dtype=str)),
                "lon": ("node", nodes[:, 0].astype("float64"), dict(LON_ATTRS)),
                "lat": ("node", nodes[:, 1].astype("float64"), dict(LAT_ATTRS)),
            },
        )
        ds.attrs = {"Conventions": "CF-1.8", "featureType": "polygon", "source_files": str(path)}
        return ds


def _load_json(path: Path) -> dict[str, Any]:
    check_readable(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FormatError(path, f"invalid JSON (truncated?): {err}") from err
    if not isinstance(doc, dict):
        raise FormatError(path, "top-level JSON value is not an object")
    return doc


def _closed(ring: np.ndarray) -> np.ndarray:
    """The ring with its first vertex repeated at the end if it is not already."""
    if len(ring) and not np.array_equal(ring[0], ring[-1]):
        ring = np.vstack([ring, ring[:1]])
    return ring


def decode_topojson(doc: dict[str, Any], path: Path) -> dict[str, list[tuple[str, str, list[list[np.ndarray]]]]]:
    """Decode a TopoJSON topology into polygons per object.

    Parameters
    ----------
    doc : dict
        The parsed topology (``type == "Topology"``).
    path : Path
        For error messages.

    Returns
    -------
    dict
        Object name → list of features ``(name, id, polygons)``; each polygon is a list of closed rings
        (exterior first), each ring an ``(n, 2)`` array of lon/lat in degrees.

    Raises
    ------
    FormatError
        Missing ``arcs``/``objects``, arc indices out of range, or unsupported geometry types.

    Notes
    -----
    With a ``transform`` the arcs are quantised and delta-encoded: the first position of an arc is
    absolute, each later one a difference to the previous, all in integer units; the positions are the
    cumulative sums times ``scale`` plus ``translate``. A negative arc index ``~i`` (``-i - 1``) means
    arc ``i`` traversed backwards. Consecutive arcs of a ring share their junction point, so the first
    point of every arc after the first is dropped when stitching.

    References
    ----------
    Bostock, M. (2013-2017). The TopoJSON Format Specification, https://github.com/topojson/topojson-specification.
    """
    try:
        raw_arcs = doc["arcs"]
        objects = doc["objects"]
    except KeyError as err:
        raise FormatError(path, f"TopoJSON without {err.args[0]!r}") from err
    transform = doc.get("transform")
    arcs: list[np.ndarray] = []
    for arc in raw_arcs:
        a = np.asarray(arc, dtype="float64").reshape(-1, len(arc[0]) if arc else 2)[:, :2]
        if transform:
            a = np.cumsum(a, axis=0) * np.asarray(transform["scale"], dtype="float64") + np.asarray(transform["translate"], dtype="float64")
        arcs.append(a)

    def ring(indices: list[int]) -> np.ndarray:
        pieces = []
        for k, idx in enumerate(indices):
            if not -len(arcs) <= idx < len(arcs):  # ~idx of a negative idx is then in range too
                raise FormatError(path, f"arc index {idx} out of range (topology has {len(arcs)} arcs)")
            a = arcs[idx] if idx >= 0 else arcs[~idx][::-1]
            pieces.append(a if k == 0 else a[1:])
        return _closed(np.concatenate(pieces)) if pieces else np.zeros((0, 2))

    out: dict[str, list[tuple[str, str, list[list[np.ndarray]]]]] = {}
    for obj_name, obj in objects.items():
        geometries = obj.get("geometries", [obj]) if obj.get("type") == "GeometryCollection" else [obj]
        features = []
        for i, geom in enumerate(geometries):
            gtype = geom.get("type")
            if gtype == "Polygon":
                polygons = [[ring(r) for r in geom["arcs"]]]
            elif gtype == "MultiPolygon":
                polygons = [[ring(r) for r in poly] for poly in geom["arcs"]]
            elif gtype is None:
                polygons = []  # null geometry: a feature without shape
            else:
                raise FormatError(path, f"object {obj_name!r} has a {gtype} geometry; only Polygon and MultiPolygon are supported")
            props = geom.get("properties") or {}
            name = str(props.get("name", f"{obj_name}_{i}" if len(geometries) > 1 else obj_name))
            features.append((name, str(geom.get("id", "")), polygons))
        out[obj_name] = features
    return out


@readers.register("topojson")
class TopoJsonReader:
    """TopoJSON topologies of polygons (world-atlas land and countries)."""

    suffixes: ClassVar[tuple[str, ...]] = (".json", ".topojson")
    description: ClassVar[str] = "TopoJSON polygons (world-atlas) as a CF ragged array"

    def can_open(self, path: Path) -> bool:
        """``.json``/``.topojson`` whose first 4 kB contain ``"type": "Topology"``."""
        return has_suffix(path, self.suffixes) and bool(_TOPOLOGY_RE.search(read_head(path, 4096)))

    def open(self, path: Path, *, variables: Sequence[str] | None = None) -> xr.Dataset:
        """Decode every object of the topology into one ragged-array Dataset (see the module docstring).

        Raises
        ------
        FormatError
            Invalid or truncated JSON, not a topology, or unsupported geometries.
        VariableNotFoundError
            A requested variable is not in the Dataset.
        """
        path = Path(path)
        doc = _load_json(path)
        if doc.get("type") != "Topology":
            raise FormatError(path, f"JSON type is {doc.get('type')!r}, not 'Topology'")
        polys = _Polygons()
        for layer, features in decode_topojson(doc, path).items():
            for name, fid, polygons in features:
                polys.add(name, fid, layer, polygons)
        return select_variables(polys.to_dataset(path), variables, path)


@readers.register("geojson")
class GeoJsonReader:
    """GeoJSON FeatureCollections of (multi)polygons (Natural Earth countries)."""

    suffixes: ClassVar[tuple[str, ...]] = (".geojson", ".json")
    description: ClassVar[str] = "GeoJSON polygons as a CF ragged array"

    def can_open(self, path: Path) -> bool:
        """``.geojson``/``.json`` whose first 4 kB contain ``"type": "FeatureCollection"`` (or ``"Feature"``)."""
        return has_suffix(path, self.suffixes) and bool(_FEATURES_RE.search(read_head(path, 4096)))

    def open(self, path: Path, *, variables: Sequence[str] | None = None) -> xr.Dataset:
        """Read every feature into one ragged-array Dataset (see the module docstring).

        Raises
        ------
        FormatError
            Invalid or truncated JSON, or a geometry other than (Multi)Polygon.
        VariableNotFoundError
            A requested variable is not in the Dataset.
        """
        path = Path(path)
        doc = _load_json(path)
        features = doc.get("features") if doc.get("type") == "FeatureCollection" else [doc] if doc.get("type") == "Feature" else None
        if features is None:
            raise FormatError(path, f"GeoJSON type is {doc.get('type')!r}, not 'FeatureCollection' or 'Feature'")
        polys = _Polygons()
        for i, feat in enumerate(features):
            geom = feat.get("geometry") or {}
            gtype, coords = geom.get("type"), geom.get("coordinates")
            if gtype is None:
                polygons = []
            elif gtype not in ("Polygon", "MultiPolygon"):
                raise FormatError(path, f"feature {i} has a {gtype} geometry; only Polygon and MultiPolygon are supported")
            elif coords is None:
                raise FormatError(path, f"feature {i} has a {gtype} geometry without coordinates")
            elif gtype == "Polygon":
                polygons = [[_closed(np.asarray(r, dtype="float64")[:, :2]) for r in coords]]
            else:
                polygons = [[_closed(np.asarray(r, dtype="float64")[:, :2]) for r in poly] for poly in coords]
            props = feat.get("properties") or {}
            name = str(props.get("name") or props.get("NAME") or props.get("admin") or f"feature_{i}")
            polys.add(name, str(feat.get("id", "")), "features", polygons)
        return select_variables(polys.to_dataset(path), variables, path)


def to_lines(ds: xr.Dataset, *, nan_separated: bool = False) -> list[np.ndarray]:
    """Polylines (one per ring) of a boundary Dataset from :class:`TopoJsonReader`/:class:`GeoJsonReader`.

    Parameters
    ----------
    ds : Dataset
        CF ragged-array polygons (``part_node_count`` on ``part``, ``lon``/``lat`` on ``node``).
    nan_separated : bool, default False
        If True, return a single ``(n, 2)`` array with the rings separated by NaN rows (what plotly's
        ``Scattergeo`` and matplotlib's ``plot`` draw as separate lines in one call).

    Returns
    -------
    list of ndarray
        ``(n_i, 2)`` arrays of lon, lat in degrees, one per ring, or a one-element list when
        ``nan_separated``.

    Raises
    ------
    DimensionError
        If ``ds`` lacks ``part_node_count``, ``lon`` or ``lat`` or their counts disagree.
    """
    from engine.errors import DimensionError

    for name in ("part_node_count", "lon", "lat"):
        if name not in ds.variables:
            raise DimensionError(f"boundary dataset has no {name!r}; expected a CF ragged array from the boundary readers")
    counts = ds["part_node_count"].values.astype("int64")
    xy = np.column_stack([ds["lon"].values, ds["lat"].values])
    if counts.sum() != len(xy):
        raise DimensionError(f"part_node_count sums to {counts.sum()} but there are {len(xy)} nodes")
    lines = np.split(xy, np.cumsum(counts)[:-1]) if len(counts) else []
    if not nan_separated:
        return lines
    if not lines:
        return [np.zeros((0, 2))]
    gap = np.full((1, 2), np.nan)
    return [np.concatenate([piece for line in lines for piece in (line, gap)])[:-1]]
