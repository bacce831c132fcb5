"""``meteolens data``: listing, describing and fetching sample datasets; one-line errors on bad input."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest

from app.cli import main
from engine import datasets

CATALOGUE = datasets.load_catalogue()


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json_names_every_dataset(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "data", "list", "--json")
    assert code == 0
    listing = json.loads(out)
    names = {d["name"] for d in listing["datasets"]}
    assert names == set(CATALOGUE)
    for row in listing["datasets"]:
        assert row["available"], f"{row['name']} has no files under {data_root}"
        for key in ("kind", "variables", "grid", "time_range", "source", "licence"):
            assert key in row
        assert row["files"] >= 1


def test_manifest_covers_every_file_of_every_dataset(data_root: Path) -> None:
    """The manifest that `data fetch` checks against lists exactly the files present here."""
    manifest = {e["path"]: e for e in datasets._manifest()}
    for ds in CATALOGUE.values():
        for p in ds.paths(data_root):
            rel = p.relative_to(data_root).as_posix()
            assert rel in manifest
            assert manifest[rel]["size"] == p.stat().st_size


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_show_opens_every_dataset(name: str, data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "data", "show", name, "--json")
    assert code == 0, err
    summary = json.loads(out)
    declared = set(CATALOGUE[name].variables)
    assert declared <= set(summary["variables"]), f"{name}: declared {declared}, got {set(summary['variables'])}"
    assert summary["variables"], f"{name}: no variables"
    if CATALOGUE[name].time_range and "time" in summary["coords"]:
        first, last = CATALOGUE[name].time_range
        span = summary.get("time_span") or [summary["coords"]["time"]["min"], summary["coords"]["time"]["max"]]
        assert span[0].startswith(first[:13].replace("T", "T")) or span[0][:16] == first[:16]
        assert span[1][:16] == last[:16]


def _one_line_error(code: int, err: str, must_name: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert must_name in lines[0]


def test_show_truncated_file_fails_cleanly(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for rel in (
        "pysteps-data/radar/KNMI/2010/08/RAD_NL25_RAP_5min_201008260000.h5",
        "cfgrib/tests/sample-data/era5-levels-members.grib",
        "xarray-data/eraint_uvz.nc",
    ):
        src = data_root / rel
        bad = tmp_path / src.name
        bad.write_bytes(src.read_bytes()[: src.stat().st_size // 3])
        code, _, err = run_cli(capsys, "data", "show", str(bad))
        _one_line_error(code, err, str(bad))


def test_show_wrong_format_unknown_format_and_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "radar.h5"
    fake.write_text("this is not HDF5\n" * 10)
    _one_line_error(*run_cli(capsys, "data", "show", str(fake))[::2], must_name=str(fake))

    unknown = tmp_path / "notes.xyz"
    unknown.write_bytes(b"\x00\x01 plain bytes of no known format")
    _one_line_error(*run_cli(capsys, "data", "show", str(unknown))[::2], must_name=str(unknown))

    missing = tmp_path / "nowhere.grib"
    _one_line_error(*run_cli(capsys, "data", "show", str(missing))[::2], must_name=str(missing))

    code, _, err = run_cli(capsys, "data", "show", "no-such-dataset-or-file")
    _one_line_error(code, err, "no-such-dataset-or-file")


def test_show_missing_variable_names_it(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = data_root / "xarray-data/era5-2mt-2019-03-uk.grib"
    code, _, err = run_cli(capsys, "data", "show", str(path), "--variables", "t2m,u850")
    _one_line_error(code, err, str(path))
    assert "u850" in err


def test_show_with_unknown_reader_name(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = data_root / "xarray-data/eraint_uvz.nc"
    code, _, err = run_cli(capsys, "data", "show", str(path), "--format", "no_such_reader")
    _one_line_error(code, err, "no_such_reader")


@pytest.fixture
def http_mirror(tmp_path: Path):
    """A local HTTP server on 127.0.0.1 serving a folder laid out like the data root."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (signature of the base class)
        pass


def _mirror_dataset(name: str, data_root: Path, mirror_root: Path) -> list[str]:
    rels = [str(e["path"]) for e in CATALOGUE[name].manifest_entries()]
    for rel in rels:
        (mirror_root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_root / rel, mirror_root / rel)
    return rels


def test_fetch_from_local_mirror(data_root: Path, http_mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mirror_root, url = http_mirror
    rels = _mirror_dataset("etopo20", data_root, mirror_root) + _mirror_dataset("countries-110m", data_root, mirror_root)
    target = tmp_path / "data"
    code, out, err = run_cli(capsys, "data", "fetch", "etopo20", "countries-110m", "--to", str(target), "--mirror", url, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert sorted(report["downloaded"]) == sorted(rels)
    for rel in rels:
        assert (target / rel).read_bytes() == (data_root / rel).read_bytes()
    # A second fetch finds everything in place and downloads nothing.
    code, out, _ = run_cli(capsys, "data", "fetch", "etopo20", "countries-110m", "--to", str(target), "--mirror", url, "--json")
    assert json.loads(out)["downloaded"] == [] and len(json.loads(out)["present"]) == len(rels)


def test_fetch_rejects_corrupt_download_and_leaves_nothing(
    data_root: Path, http_mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mirror_root, url = http_mirror
    (rel,) = _mirror_dataset("countries-110m", data_root, mirror_root)
    with open(mirror_root / rel, "r+b") as f:  # flip bytes in the middle: same size, wrong checksum
        f.seek(1000)
        f.write(b"XXXX")
    target = tmp_path / "data"
    code, _, err = run_cli(capsys, "data", "fetch", "countries-110m", "--to", str(target), "--mirror", url)
    assert code == 2 and "checksum" in err
    leftovers = [p for p in target.rglob("*") if p.is_file()] if target.exists() else []
    assert leftovers == []


def test_fetch_unreachable_mirror_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "data", "fetch", "countries-110m", "--to", str(tmp_path / "d"),
                           "--mirror", "http://127.0.0.1:9")
    assert code == 2 and "127.0.0.1:9" in err and "Traceback" not in err


def test_resolve_inputs(data_root: Path, tmp_path: Path) -> None:
    files = datasets.resolve_inputs("mch-2015-05-15", data_root)
    assert len(files) == 40 and files == sorted(files)
    folder = data_root / "pysteps-data/radar/mch/20150515"
    assert datasets.resolve_inputs(str(folder), data_root) == files
    assert datasets.resolve_inputs(str(folder / "*.gif"), data_root) == files
    from engine.errors import ReaderError

    with pytest.raises(ReaderError, match="glob matches no files"):
        datasets.resolve_inputs(str(tmp_path / "*.gif"), data_root)
    with pytest.raises(ReaderError, match="no such file"):
        datasets.resolve_inputs("nonsense", data_root)
