"""The ``downscale`` job kind: a coarse field (run store, file or sample dataset) onto fine terrain.

``DownscaleSpec`` says what to downscale; :func:`run_downscale` opens the input and the DEM,
calls :func:`engine.models.regional.downscale.downscale_dataset` on the resolved device and
hands the result to the executor, which writes and catalogues the run store.

Public API: ``DownscaleSpec``, ``open_source``, ``run_downscale``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import xarray as xr

from engine.config import Settings
from engine.device import resolve_device
from engine.errors import JobError
from engine.jobs.runner import JobOutput, ProgressCallback, job_kinds
from engine.jobs.specs import JobSpec
from engine.models.regional.downscale import (
    DEFAULT_METHOD,
    METHODS,
    DownscaleError,
    downscale_dataset,
    parse_steering_wind,
)
from engine.sources import resolve


@dataclass(frozen=True)
class DownscaleSpec(JobSpec):
    """A downscaling job.

    Attributes
    ----------
    input : str
        A run store path (``*.zarr``), a file any reader opens, or a sample dataset name.
    variable : str
        Canonical variable to downscale (``t2m``, ``u10``/``v10``...).
    resolution : float
        Target grid spacing (degrees), e.g. 0.05.
    dem : str, optional
        DEM file or sample dataset name (``orography`` in m); required except for bilinear.
    domain : (lat0, lat1, lon0, lon1), optional
        Target box (degrees); the input's extent when omitted.
    method : str, optional
        A method of :data:`engine.models.regional.downscale.METHODS`; the variable's default
        when omitted.
    alpha : float
        Stability parameter of the mass-consistent wind adjustment.
    radius : int
        Neighbourhood half-width (coarse cells) of the lapse-rate regression.
    steering_wind : (float, float), optional
        Steering wind ``(u, v)`` of the orographic precipitation method (m s-1, eastward and
        northward); when omitted the input's own wind (700, 850 hPa or 10 m) or, for at least 2
        time steps, the echo motion.
    """

    kind: ClassVar[str] = "downscale"
    input: str
    variable: str
    resolution: float
    dem: str | None = None
    domain: tuple[float, float, float, float] | None = None
    method: str | None = None
    alpha: float = 1.0
    radius: int = 2
    steering_wind: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.input:
            raise JobError("input: give a run store, a file or a dataset name")
        if not self.variable:
            raise JobError("variable: give a canonical variable name (e.g. t2m)")
        if not (isinstance(self.resolution, int | float) and math.isfinite(self.resolution) and self.resolution > 0):
            raise JobError(f"resolution={self.resolution!r}: expected a positive number of degrees")
        if self.resolution > 5:
            raise JobError(f"resolution={self.resolution}: a downscaling target coarser than 5 degrees makes no sense")
        if self.domain is not None:
            if len(self.domain) != 4 or not all(math.isfinite(float(v)) for v in self.domain):
                raise JobError(f"domain={self.domain!r}: expected four numbers LAT0 LAT1 LON0 LON1")
            lat0, lat1, lon0, lon1 = (float(v) for v in self.domain)
            if not (-90 <= lat0 < lat1 <= 90) or not lon0 < lon1:
                raise JobError(f"domain={self.domain!r}: need -90 <= LAT0 < LAT1 <= 90 and LON0 < LON1")
        method = self.method or DEFAULT_METHOD.get(self.variable, "bilinear")
        if method.lower() not in METHODS:
            raise JobError(f"method={self.method!r}: unknown; available: {', '.join(sorted(METHODS))}")
        if method.lower() != "bilinear" and not self.dem:
            raise JobError(f"dem: method {method} needs a DEM (file or dataset name), or use method bilinear")
        if not (self.alpha > 0):
            raise JobError(f"alpha={self.alpha}: expected a positive number")
        if self.radius < 1:
            raise JobError(f"radius={self.radius}: expected at least 1 coarse cell")
        if self.steering_wind is not None:
            if method.lower() != "orographic":
                raise JobError(f"--steering-wind: only the orographic method uses a steering wind, not {method}")
            try:
                parse_steering_wind(self.steering_wind)
            except DownscaleError as err:
                raise JobError(str(err)) from None

    def model_name(self) -> str:
        return f"regional/{(self.method or DEFAULT_METHOD.get(self.variable, 'bilinear')).lower()}"


def open_source(source: str, data_root: Path | None, *, what: str = "--input") -> xr.Dataset:
    """Open a run store (``.zarr`` folder), a file, files or a sample dataset name.

    Resolved by :func:`engine.sources.resolve` (run ids are turned into store paths by the CLI).

    Raises
    ------
    ReaderError
        If ``source`` is none of those (the message lists the datasets).
    """
    return resolve(source, data_root, lambda run_id: None, what=what).open()


@job_kinds.register("downscale")
def run_downscale(spec: DownscaleSpec, progress: ProgressCallback) -> JobOutput:
    """Run a :class:`DownscaleSpec` (see :mod:`engine.jobs.runner` for the contract)."""
    t0 = time.perf_counter()
    settings = Settings.from_env()
    device = resolve_device(spec.device)
    progress(0.0, f"opening {spec.input}")
    ds = open_source(spec.input, settings.data_root)
    dem = open_source(spec.dem, settings.data_root, what="--dem") if spec.dem else None
    inputs = [spec.input] + ([spec.dem] if spec.dem else [])
    progress(0.05, "downscaling")

    def scaled(fraction: float, message: str) -> None:
        progress(0.05 + 0.9 * fraction, message)

    out = downscale_dataset(
        ds,
        spec.variable,
        resolution=float(spec.resolution),
        dem=dem,
        domain=spec.domain,
        method=spec.method,
        device=device,
        options={"alpha": spec.alpha, "radius": spec.radius,
                 **({"steering_wind": list(spec.steering_wind)} if spec.steering_wind is not None else {})},
        progress=scaled,
    )
    out = out.load()
    init = (
        ds["init_time"].values.ravel()[0]
        if "init_time" in ds.coords
        else (ds["time"].values.ravel()[0] if "time" in ds.coords else None)
    )
    return JobOutput(
        dataset=out,
        compute_seconds=time.perf_counter() - t0,
        inputs=inputs,
        init_time=init,
        device=str(device),
        model=spec.model_name(),
        domain=",".join(f"{v:g}" for v in out.attrs["domain"]),
        extra_attrs={
            "title": f"{spec.variable} downscaled to {spec.resolution:g} deg ({out.attrs['downscaling_method']})"
        },
    )
