"""TopoJSON and GeoJSON boundary readers, the CF ragged-array layout, and ``to_lines``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from engine.config import Settings
from engine.errors import DimensionError, FormatError, VariableNotFoundError
from engine.readers import detect, open_any
from engine.readers.boundaries import GeoJsonReader, TopoJsonReader, to_lines


@pytest.fixture(scope="module")
def data() -> Path:
    root = Settings.from_env().data_root
    if root is None:
        pytest.skip("sample data folder not available (set METEOLENS_DATA)")
    return root


def _write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _rings(ds: xr.Dataset, name: str) -> list[np.ndarray]:
    index = int(np.flatnonzero(ds["name"].values == name)[0])
    parts = np.flatnonzero(ds["part_feature"].values == index)
    lines = to_lines(ds)
    return [lines[p] for p in parts]


# ------------------------------------------------------------------------------- TopoJSON decoding


def test_topojson_stitches_shared_and_reversed_arcs(tmp_path: Path) -> None:
    # Two unit squares sharing the edge x = 1; the right one walks the shared arc backwards (~0 = -1).
    topo = {
        "type": "Topology",
        "arcs": [[[1, 0], [1, 1]], [[1, 1], [0, 1], [0, 0], [1, 0]], [[1, 0], [2, 0], [2, 1], [1, 1]]],
        "objects": {"squares": {"type": "GeometryCollection", "geometries": [
            {"type": "Polygon", "arcs": [[0, 1]], "id": "L", "properties": {"name": "left"}},
            {"type": "Polygon", "arcs": [[2, -1]], "id": "R", "properties": {"name": "right"}},
        ]}},
    }
    ds = TopoJsonReader().open(_write(tmp_path / "squares.json", topo))
    assert list(ds["name"].values) == ["left", "right"] and list(ds["feature_id"].values) == ["L", "R"]
    np.testing.assert_array_equal(_rings(ds, "left")[0], [[1, 0], [1, 1], [0, 1], [0, 0], [1, 0]])
    np.testing.assert_array_equal(_rings(ds, "right")[0], [[1, 0], [2, 0], [2, 1], [1, 1], [1, 0]])
    assert list(ds["node_count"].values) == [5, 5] and list(ds["interior_ring"].values) == [0, 0]


def test_topojson_quantised_delta_arcs(tmp_path: Path) -> None:
    # Quantised positions (0,0) (4,0) (4,8) (0,8) (0,0), delta-encoded, with scale (0.5, 0.25) and
    # translate (10, 20): lon = 10 + 0.5 qx, lat = 20 + 0.25 qy.
    topo = {
        "type": "Topology",
        "transform": {"scale": [0.5, 0.25], "translate": [10, 20]},
        "arcs": [[[0, 0], [4, 0], [0, 8], [-4, 0], [0, -8]], [[1, 1], [1, 0], [0, 1], [-1, -1]]],
        "objects": {"box": {"type": "MultiPolygon", "arcs": [[[0], [1]]], "properties": {"name": "box"}}},
    }
    ds = TopoJsonReader().open(_write(tmp_path / "box.topojson", topo))
    outer, hole = _rings(ds, "box")
    np.testing.assert_allclose(outer, [[10, 20], [12, 20], [12, 22], [10, 22], [10, 20]])
    np.testing.assert_allclose(hole, [[10.5, 20.25], [11, 20.25], [11, 20.5], [10.5, 20.25]])
    assert list(ds["interior_ring"].values) == [0, 1]
    assert ds["geometry"].attrs["geometry_type"] == "polygon"


def test_topojson_bad_inputs(data: Path, tmp_path: Path) -> None:
    src = data / "natural-earth/world-atlas/land-110m.json"
    cut = tmp_path / "land-110m.json"
    cut.write_bytes(src.read_bytes()[:3000])
    assert TopoJsonReader().can_open(cut)  # the head still looks right ...
    with pytest.raises(FormatError, match="land-110m.json.*invalid JSON"):  # ... the body does not
        TopoJsonReader().open(cut)
    points = {"type": "Topology", "arcs": [], "objects": {"p": {"type": "Point", "coordinates": [0, 0]}}}
    with pytest.raises(FormatError, match="points.json.*Point"):
        TopoJsonReader().open(_write(tmp_path / "points.json", points))
    bad_arc = {"type": "Topology", "arcs": [[[0, 0], [1, 1]]], "objects": {"x": {"type": "Polygon", "arcs": [[5]]}}}
    with pytest.raises(FormatError, match="arc index 5"):
        TopoJsonReader().open(_write(tmp_path / "bad_arc.json", bad_arc))
    with pytest.raises(VariableNotFoundError, match="land-110m.json.*t2m"):
        TopoJsonReader().open(src, variables=["t2m"])


# ------------------------------------------------------------------------------ real files


def test_world_atlas_countries(data: Path) -> None:
    path = data / "natural-earth/world-atlas/countries-110m.json"
    ds = TopoJsonReader().open(path)
    doc = json.loads(path.read_text())
    countries = doc["objects"]["countries"]["geometries"]
    in_layer = ds["layer"].values == "countries"
    assert int(in_layer.sum()) == len(countries)
    assert list(ds["name"].values[in_layer]) == [g["properties"]["name"] for g in countries]
    assert "land" in set(ds["layer"].values)
    # Every ring is closed; node bookkeeping is consistent.
    lines = to_lines(ds)
    assert all(np.array_equal(line[0], line[-1]) for line in lines)
    assert int(ds["node_count"].sum()) == ds.sizes["node"] == int(ds["part_node_count"].sum())
    np.testing.assert_array_equal(np.bincount(ds["node_part"].values), ds["part_node_count"].values)
    assert float(ds["lon"].min()) >= -180.0 and float(ds["lon"].max()) <= 180.0
    # Georeferencing sanity: Austria's outline spans about 9.5-17.2 E, 46.4-49.0 N.
    austria = np.concatenate(_rings(ds, "Austria"))
    assert austria[:, 0].min() == pytest.approx(9.5, abs=0.3) and austria[:, 0].max() == pytest.approx(17.0, abs=0.3)
    assert austria[:, 1].min() == pytest.approx(46.4, abs=0.3) and austria[:, 1].max() == pytest.approx(49.0, abs=0.3)


def test_geojson_nodes_equal_json(data: Path) -> None:
    path = data / "natural-earth/geo-boundaries-world-110m/countries.geojson"
    ds = GeoJsonReader().open(path)
    doc = json.loads(path.read_text())
    assert ds.sizes["feature"] == len(doc["features"])
    feature = next(f for f in doc["features"] if f["properties"]["name"] == "Austria")
    assert feature["geometry"]["type"] == "Polygon"
    np.testing.assert_array_equal(_rings(ds, "Austria")[0], np.asarray(feature["geometry"]["coordinates"][0]))
    multi = next(f for f in doc["features"] if f["geometry"]["type"] == "MultiPolygon")
    rings = _rings(ds, multi["properties"]["name"])
    assert len(rings) == sum(len(poly) for poly in multi["geometry"]["coordinates"])
    # Both sources place Austria alike (different simplification, same country).
    topo = TopoJsonReader().open(data / "natural-earth/world-atlas/countries-110m.json")
    a, b = np.concatenate(_rings(ds, "Austria")), np.concatenate(_rings(topo, "Austria"))
    np.testing.assert_allclose(a.min(axis=0), b.min(axis=0), atol=0.3)
    np.testing.assert_allclose(a.max(axis=0), b.max(axis=0), atol=0.3)


def test_geojson_bad_inputs(tmp_path: Path) -> None:
    line = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}]}
    with pytest.raises(FormatError, match="line.geojson.*LineString"):
        GeoJsonReader().open(_write(tmp_path / "line.geojson", line))
    other = _write(tmp_path / "other.json", {"type": "Something"})
    assert not GeoJsonReader().can_open(other) and not TopoJsonReader().can_open(other)
    with pytest.raises(FormatError, match="other.json"):
        GeoJsonReader().open(other)


def test_to_lines_nan_separated(data: Path) -> None:
    ds = open_any(data / "natural-earth/world-atlas/land-110m.json")
    lines = to_lines(ds)
    (joined,) = to_lines(ds, nan_separated=True)
    assert len(lines) == ds.sizes["part"]
    assert joined.shape == (ds.sizes["node"] + len(lines) - 1, 2)
    assert int(np.isnan(joined[:, 0]).sum()) == len(lines) - 1
    with pytest.raises(DimensionError, match="part_node_count"):
        to_lines(xr.Dataset())


@pytest.mark.parametrize(
    ("name", "reader"),
    [
        ("natural-earth/world-atlas/countries-50m.json", "topojson"),
        ("natural-earth/world-atlas/land-110m.json", "topojson"),
        ("natural-earth/geo-boundaries-world-110m/countries.geojson", "geojson"),
    ],
)
def test_detection(data: Path, name: str, reader: str) -> None:
    assert detect(data / name) == reader
