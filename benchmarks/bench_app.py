"""Dashboard performance budget: page readiness, map re-rendering, the full MRMS frame view.

Run by hand (never in the test suite)::

    .venv/bin/python benchmarks/bench_app.py [--repeat 5] [--store DIR] [--skip-pages]

Three measurements, each against its budget, printed as markdown tables:

1. **Pages ready within 2 s warm.** Every page of the app is run with Streamlit's ``AppTest``
   (the whole script: shared chrome, widgets, cached service calls, figures) on the small test
   store of ``tests/app/conftest.py`` (built into a temporary folder unless ``--store`` names one
   already built), with the same deep links as the browser tests. One uncounted run fills the
   caches, then the median of ``--repeat`` runs is the warm time; the first run is shown as cold.
   This is server time: the browser's own drawing is not included.
2. **Re-rendering a 1-million-point field under 0.5 s of server time.** A 1000 x 1000
   latitude-longitude field (0.005 deg over the Alps; smooth temperature and rain cells) drawn by
   :func:`app.components.raster.rasterize` at the page's 640-pixel map width, in the grid's own
   projection (datashader aggregation only) and in reprojected views (aggregation at twice the
   screen resolution, then the cartopy pixel lookup); then the same plus the plotly figure
   serialised to JSON (what Streamlit sends), which is the server's whole re-render.
3. **The full MRMS frame view under 2 s.** The 7000 x 3500 MRMS PrecipRate frame through
   ``maps.map_view`` at a 1000-pixel viewport: *cold* (every cache cleared: the source is
   described and its first GRIB2 file read and decoded), *next frame* (the slider moved: another
   file read and decoded) and *warm read cache* (the decoded frame kept by ``st.cache_resource``,
   the map rendered again: what changing the projection costs). Each after one uncounted call,
   because the first map of a process compiles datashader's numba kernels (a few seconds, once
   per server process).

Timings are medians of wall time on whatever machine runs this; on a shared machine they are
indicative only.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pyproj  # noqa: F401  (before ecCodes; see engine/__init__.py)
import xarray as xr
from timing import median_time

from engine.config import REPO_ROOT, Settings

APP = str(REPO_ROOT / "app" / "streamlit_app.py")
PAGE_BUDGET_S = 2.0
RERENDER_BUDGET_S = 0.5
MRMS_BUDGET_S = 2.0

#: (page file, query parameters, what the page shows): the browser tests' deep links.
PAGES: list[tuple[str, dict[str, str], str]] = [
    ("pages/home.py", {}, "Home"),
    (
        "pages/maps.py",
        {"src": "dataset:mch-2015-05-15", "var": "precip_rate", "step": "20", "proj": "Data grid"},
        "Maps, MeteoSwiss radar frame (own grid)",
    ),
    ("pages/maps.py", {"src": "run:test-regional-msl", "var": "msl", "proj": "LambertConformal"}, "Maps, regional run"),
    (
        "pages/stations.py",
        {"station": "ellboegen", "svar": "t2m", "start": "2016-04-01", "end": "2016-04-20"},
        "Stations (series, wind, Foehn fit)",
    ),
    ("pages/nowcast.py", {"run": "test-persistence"}, "Nowcast & quality"),
    ("pages/verification.py", {"kind": "nowcast", "metric": "csi"}, "Verification"),
    ("pages/run.py", {"job": "nowcast"}, "Run"),
    ("pages/cases.py", {}, "Case studies"),
]


def _status(seconds: float, budget: float) -> str:
    return "within" if seconds <= budget else "**over**"


def _test_store(store: Path | None) -> Settings:
    """The app tests' small store: ``--store`` when given (already built), else built into a temp folder."""
    data_root = Settings.from_env().data_root
    if data_root is None:
        raise SystemExit("no sample data: set METEOLENS_DATA")
    if store is not None:
        return Settings(data_root=data_root, store_root=store.resolve())
    # The builder lives with the tests (tests/ is not a package): load it by path.
    spec = importlib.util.spec_from_file_location("app_test_store", REPO_ROOT / "tests" / "app" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = Path(tempfile.mkdtemp(prefix="meteolens-bench-app-"))
    print(f"building the test store in {folder}…", file=sys.stderr)
    return module.build_test_store(folder / "store", data_root)


def bench_pages(settings: Settings, repeat: int) -> None:
    """Time every page with AppTest: the first (cold) run and the median of warm runs."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["METEOLENS_STORE"] = str(settings.store_root)
    os.environ["METEOLENS_DATA"] = str(settings.data_root)
    st.cache_data.clear()
    st.cache_resource.clear()

    def run(page: str, params: dict[str, str]) -> None:
        at = AppTest.from_file(APP, default_timeout=300)
        for key, value in params.items():
            at.query_params[key] = value
        at.switch_page(page)
        at.run()
        if at.exception:
            raise SystemExit(f"{page} {params}: {[e.value for e in at.exception]}")

    print(f"\n### Pages (AppTest script run on the test store, median of {repeat} warm runs)\n")
    print("| page | cold first run (s) | warm (s) | budget 2 s |")
    print("|---|---:|---:|---|")
    for page, params, label in PAGES:
        t0 = time.perf_counter()
        run(page, params)
        cold = time.perf_counter() - t0
        warm = median_time(lambda p=page, q=params: run(p, q), repeat, warmup=False)
        print(f"| {label} | {cold:.2f} | {warm:.3f} | {_status(warm, PAGE_BUDGET_S)} |")


def million_point_field() -> tuple[xr.DataArray, xr.DataArray]:
    """A 1000 x 1000 regular lat-lon grid over the Alps: a smooth temperature and a rain field."""
    lat = np.linspace(49.0, 44.005, 1000)  # descending, as many analyses store it
    lon = np.linspace(5.0, 9.995, 1000)
    glon, glat = np.meshgrid(lon, lat)
    t2m = 288.0 - 6.5e-3 * 1500.0 * (1 + np.sin(glon * 3.0) * np.cos(glat * 2.0)) + 0.3 * (glat - 46.5)
    rng = np.random.default_rng(0)
    rain = np.zeros_like(glon)
    for cx, cy, r, peak in zip(
        rng.uniform(5, 10, 40), rng.uniform(44, 49, 40), rng.uniform(0.05, 0.4, 40), rng.uniform(1, 60, 40), strict=True
    ):
        rain += peak * np.exp(-((glon - cx) ** 2 + (glat - cy) ** 2) / (2 * r**2))
    rain[rain < 0.05] = 0.0
    coords = {"lat": lat, "lon": lon}
    return (
        xr.DataArray(t2m.astype("float32"), dims=("lat", "lon"), coords=coords, name="t2m", attrs={"units": "K"}),
        xr.DataArray(
            rain.astype("float32"), dims=("lat", "lon"), coords=coords, name="precip_rate", attrs={"units": "mm h-1"}
        ),
    )


def bench_rerender(repeat: int) -> None:
    """rasterize (and rasterize + figure JSON) of the 1000 x 1000 field in several views."""
    import cartopy.crs as ccrs

    from app.components.maps import MapData, MapLayer, map_figure
    from app.components.raster import rasterize, view_crs, view_extent
    from app.components.scales import scale_for

    t2m, rain = million_point_field()
    native = ccrs.PlateCarree()
    box = (5.0, 10.0, 44.0, 49.0)
    width = 640  # maps.MapRequest's default: the map column of the Maps page
    print(f"\n### Re-rendering a 1000 x 1000 field at {width} px (median of {repeat}, after one warm-up)\n")
    print("| field | view | rasterize (s) | rasterize + figure JSON (s) | budget 0.5 s |")
    print("|---|---|---:|---:|---|")
    for da, smooth in ((rain, False), (t2m, True)):
        for proj in ("PlateCarree", "LambertConformal", "Orthographic"):
            view = view_crs(proj, centre=(7.5, 46.5), native=native)
            extent = view_extent(view, box)

            def raster(d: xr.DataArray = da, v: ccrs.CRS = view, e: tuple = extent, s: bool = smooth) -> object:
                return rasterize(d, native=native, view=v, extent=e, width=width, smooth=s)

            def whole(
                d: xr.DataArray = da, v: ccrs.CRS = view, e: tuple = extent, s: bool = smooth, p: str = proj
            ) -> str:
                img = rasterize(d, native=native, view=v, extent=e, width=width, smooth=s)
                scale = scale_for(str(d.name), d.attrs["units"])
                data = MapData(
                    layers=[MapLayer(img, "step")],
                    scale=scale,
                    title=str(d.name),
                    extent=e,
                    geographic=p == "PlateCarree",
                    coastlines=(np.zeros(0), np.zeros(0)),
                    borders=(np.zeros(0), np.zeros(0)),
                    stations={},
                )
                return map_figure(data).to_json()

            t_r = median_time(raster, repeat)
            t_w = median_time(whole, repeat)
            print(f"| {da.name} | {proj} | {t_r:.3f} | {t_w:.3f} | {_status(t_w, RERENDER_BUDGET_S)} |")


def bench_mrms(settings: Settings, repeat: int) -> None:
    """The full MRMS frame through maps.map_view at 1000 px: cold, a new frame, warm read cache."""
    import streamlit as st

    from app.services import fields, maps

    os.environ["METEOLENS_DATA"] = str(settings.data_root)
    os.environ["METEOLENS_STORE"] = str(settings.store_root)
    st.cache_data.clear()
    st.cache_resource.clear()
    info = fields.source_info("dataset:mrms-2019-06-10")
    print(f"\n### Full MRMS frame view, {info.grid}, 1000 px (median of {repeat})\n")
    print(
        "| view | cold: open the source, read + raster (s) | next frame: read + raster (s) "
        "| warm read cache: raster (s) | budget 2 s |"
    )
    print("|---|---:|---:|---:|---|")
    for proj in ("PlateCarree", "LambertConformal"):
        first = maps.MapRequest("dataset:mrms-2019-06-10", "precip_rate", step=0, projection=proj, width=1000)
        following = dataclasses.replace(first, step=1)

        def cold(req: maps.MapRequest = first) -> object:
            # Everything again: source description, the frame's GRIB2 decode, coastlines, the map.
            st.cache_data.clear()
            st.cache_resource.clear()
            return maps.map_view(req)

        def next_frame(req: maps.MapRequest = following) -> object:
            # The slider moved: the source is described already, the new frame is read and drawn.
            maps.map_view.clear()
            fields._open_frame.clear()
            fields.source_info(req.source)
            return maps.map_view(req)

        def warm(req: maps.MapRequest = first) -> object:
            maps.map_view.clear()  # the rendered map, not the decoded frame (a cache_resource)
            return maps.map_view(req)

        # One uncounted call each: the first map drawn in a process compiles datashader's
        # numba kernels (seconds, once per server process).
        t_cold = median_time(cold, repeat)
        t_next = median_time(next_frame, repeat)
        t_warm = median_time(warm, repeat)
        worst = max(t_cold, t_next, t_warm)
        print(f"| {proj} | {t_cold:.3f} | {t_next:.3f} | {t_warm:.3f} | {_status(worst, MRMS_BUDGET_S)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--store", type=Path, help="an already built test store (default: build one)")
    parser.add_argument("--skip-pages", action="store_true", help="only the rendering benchmarks")
    args = parser.parse_args()
    # Streamlit warns on every cached call outside a server ("No runtime found"): not news here.
    from streamlit.logger import set_log_level

    set_log_level("error")
    warnings.simplefilter("ignore")
    if args.skip_pages:
        # The map benchmarks only need the sample data; an empty store keeps ./store untouched.
        data_root = Settings.from_env().data_root
        settings = Settings(data_root=data_root, store_root=Path(tempfile.mkdtemp(prefix="meteolens-bench-app-")))
    else:
        settings = _test_store(args.store)
        bench_pages(settings, args.repeat)
    bench_rerender(args.repeat)
    bench_mrms(settings, max(2, args.repeat // 2))


if __name__ == "__main__":
    main()
