"""Global medium-range forecasts as jobs: the dynamical core, baselines and pretrained models.

``meteolens forecast global`` builds a :class:`GlobalForecastSpec`; the executor calls
:func:`run_global_job`, which reads the analysis, runs the chosen model and returns a Dataset with
``z500`` (m2 s-2) on dims ``(lead_time, member, lat, lon)``, on the analysis grid, with
``init_time`` and ``valid_time`` coordinates. The rollout logic lives here, not in the model
files (STYLE.md section 3); :func:`forecast_global` is the same without the catalogue, for
benchmarks and notebooks.

Models (``--model``):

``swm`` (default)
    The spectral shallow-water dynamical core as an equivalent-barotropic model of the 500 hPa
    flow (:mod:`engine.models.global_.shallow_water`), T42 by default, 6-hourly output.
    Physical choices, none fitted to the verifying analyses:

    * equivalent depth ``H = 8 km``: the density scale height of the troposphere, the usual depth
      of a barotropic atmosphere (Holton & Hakim 2013, sec. 7.4); it gives a deformation radius
      ``sqrt(gH)/f`` of about 2800 km at 45N, which slows the spurious westward retrogression of
      the planetary waves that a non-divergent model has (Cressman 1958);
    * climatological forcing (``forcing="climatology"``): a constant source term that makes the
      ERA-Interim monthly-mean 500 hPa flow of the initial month a steady solution. The
      real stationary waves are maintained by orography and heating, which a one-layer model
      lacks; without forcing they drift (the "climate drift" of barotropic models), which is
      the largest systematic error over one to three days;
    * del-4 hyperdiffusion with a 12 h e-folding time at ``l = T``, close to the STSWM value at T42
      (Hack & Jakob 1992), removing enstrophy at the truncation scale only.

``persistence``, ``climatology``
    The baselines of :mod:`engine.models.global_.baselines`.

``PATH.toml`` / ``PATH.json``
    A pretrained model declared by an adapter spec (:mod:`engine.models.global_.adapters`).

Public API: ``GlobalForecastSpec``, ``forecast_global``, ``run_global_job``, ``GLOBAL_MODELS``,
``STEP_HOURS``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import xarray as xr

from engine.config import Settings
from engine.errors import CoordError, JobError, UnknownNameError, VariableNotFoundError
from engine.jobs.runner import JobOutput, ProgressCallback, job_kinds
from engine.jobs.specs import JobSpec
from engine.lexicon import attrs_for

#: Built-in global model names; a path to a ``.toml``/``.json`` adapter spec is also accepted.
GLOBAL_MODELS: tuple[str, ...] = ("swm", "persistence", "climatology")
#: Output interval (h) of the built-in models.
STEP_HOURS = 6
_ADAPTER_SUFFIXES = (".toml", ".json")


def _is_adapter(model: str) -> bool:
    return model.lower().endswith(_ADAPTER_SUFFIXES)


def _model_step_hours(model: str) -> int:
    if _is_adapter(model):
        from engine.models.global_.adapters import load_model_spec

        return int(load_model_spec(model).time_step_hours)
    return STEP_HOURS


@dataclass(frozen=True)
class GlobalForecastSpec(JobSpec):
    """One global forecast.

    Attributes
    ----------
    init : tuple of str
        Analysis files (a sample dataset name is resolved to files by the CLI).
    model : str
        ``swm``, ``persistence``, ``climatology`` or a path to an adapter spec file.
    members : str
        ``"all"`` (one forecast per analysis member) or ``"N"`` (the first ``N`` members; with
        ``perturbations`` the ensemble size instead).
    lead_hours : int
        Forecast length (h), a positive multiple of the model's output step.
    init_time : str, optional
        Analysis time (ISO) when the file holds several; the first by default.
    truncation : int
        Spectral truncation of the dynamical core.
    mean_depth : float
        Equivalent depth ``H`` (m) of the dynamical core.
    forcing : str
        ``"climatology"`` or ``"none"``.
    perturbations : bool
        Build the ensemble from balanced random perturbations of the first member (seeded)
        instead of from the analysis members.
    seed : int
        Seed of the perturbations.
    climatology : str, optional
        Monthly-mean climatology file; default ``<data_root>/xarray-data/eraint_uvz.nc``.
    """

    kind: ClassVar[str] = "global"
    init: tuple[str, ...] = ()
    model: str = "swm"
    members: str = "all"
    lead_hours: int = 24
    init_time: str | None = None
    truncation: int = 42
    mean_depth: float = 8000.0
    forcing: str = "climatology"
    perturbations: bool = False
    seed: int = 0
    climatology: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.init:
            raise JobError("init: no analysis file given")
        if not (self.model.lower() in GLOBAL_MODELS or _is_adapter(self.model)):
            raise UnknownNameError("global model", self.model, [*GLOBAL_MODELS, "<spec.toml>", "<spec.json>"])
        if _is_adapter(self.model) and not Path(self.model).expanduser().is_file():
            raise JobError(f"model: adapter spec {self.model} does not exist")
        if self.members != "all" and not (self.members.isdigit() and int(self.members) >= 1):
            raise JobError(f"members={self.members!r}: expected 'all' or a positive integer")
        if self.perturbations and self.members == "all":
            raise JobError("members: give the ensemble size N with perturbations (not 'all')")
        step = _model_step_hours(self.model)
        if not isinstance(self.lead_hours, int) or self.lead_hours <= 0 or self.lead_hours % step:
            raise JobError(f"lead_hours={self.lead_hours}: must be a positive multiple of the model step ({step} h)")
        if self.forcing not in ("climatology", "none"):
            raise JobError(f"forcing={self.forcing!r}: expected 'climatology' or 'none'")
        if not 10 <= self.truncation <= 255:
            raise JobError(f"truncation={self.truncation}: expected 10..255")
        if self.mean_depth <= 0:
            raise JobError(f"mean_depth={self.mean_depth}: must be > 0 m")

    def model_name(self) -> str:
        return f"global/{Path(self.model).stem if _is_adapter(self.model) else self.model.lower()}"


# ---------------------------------------------------------------------------------- helpers
def read_analysis(paths: Sequence[str | Path]) -> xr.Dataset:
    """Open analysis files as one canonical dataset (``engine.readers``), requiring ``z500``.

    Raises
    ------
    VariableNotFoundError
        Naming the file when ``z500`` is missing.
    """
    from engine.sources import resolve

    ds = resolve([str(p) for p in paths], None, lambda run_id: None, what="--init").open()
    if "z500" not in ds.data_vars:
        raise VariableNotFoundError(
            paths[0], f"no variable z500 (500 hPa geopotential) to start a global forecast from; has {', '.join(map(str, ds.data_vars)) or 'none'}"
        )
    return ds


def _default_climatology(path: str | None) -> Path:
    if path:
        return Path(path).expanduser()
    from engine.models.global_.baselines import CLIMATOLOGY_FILE

    root = Settings.from_env().data_root
    if root is None:
        raise JobError("climatology: no sample data folder (set METEOLENS_DATA) and no climatology file given")
    return root / CLIMATOLOGY_FILE


def _pick_time(ds: xr.Dataset, init_time: str | None, source: str) -> xr.Dataset:
    from engine.models.global_.initial import _select_time

    return _select_time(ds, init_time, source)


def _members(ds: xr.Dataset, members: str) -> xr.Dataset:
    if "member" not in ds.dims:
        return ds.expand_dims(member=[0])
    if members == "all":
        return ds
    n = int(members)
    if n > ds.sizes["member"]:
        raise CoordError(f"members={n}: the analysis has {ds.sizes['member']} members")
    return ds.isel(member=slice(0, n))


def _ignore_progress(fraction: float, message: str = "") -> None:
    """Progress callback used when the caller gives none."""


def _finish(z: np.ndarray, init_time: np.datetime64, lead_hours: Sequence[int], members: np.ndarray, lat: np.ndarray, lon: np.ndarray, model: str) -> xr.Dataset:
    lead = pd.to_timedelta(np.asarray(lead_hours, dtype="int64"), unit="h").to_numpy()
    t0 = init_time.astype("datetime64[ns]")
    ds = xr.Dataset(
        {"z500": (("lead_time", "member", "lat", "lon"), z.astype("float32"), attrs_for("z500"))},
        coords={
            "lead_time": ("lead_time", lead),
            "member": ("member", np.asarray(members)),
            "lat": ("lat", np.asarray(lat, dtype="float64"), {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", np.asarray(lon, dtype="float64"), {"units": "degrees_east", "standard_name": "longitude"}),
            "init_time": t0,
            "valid_time": ("lead_time", t0 + lead),
        },
        attrs={"model": model, "lat_order": "descending" if lat[0] > lat[-1] else "ascending"},
    )
    return ds


# ---------------------------------------------------------------------------------- models
def run_dynamical_core(
    analysis: xr.Dataset,
    lead_hours: int,
    *,
    device: str = "auto",
    truncation: int = 42,
    mean_depth: float = 8000.0,
    forcing: xr.Dataset | None = None,
    n_perturbed: int = 0,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    source: str = "input",
) -> tuple[xr.Dataset, str]:
    """Integrate the shallow-water core from an analysis at one time.

    Parameters
    ----------
    analysis : Dataset
        ``z500`` (and optionally ``u500``, ``v500``) on ``([member,] lat, lon)``, scalar ``time``.
    lead_hours : int
        Multiple of :data:`STEP_HOURS`.
    device : str
        ``auto``, ``cpu``, ``cuda``...
    truncation, mean_depth : int, float
        Model resolution and equivalent depth (m).
    forcing : Dataset, optional
        Climatological ``z500``, ``u500``, ``v500`` (dims ``lat, lon``) made steady by forcing.
    n_perturbed : int
        If > 0, an ensemble of this size from balanced perturbations of the first member.
    seed : int
        Perturbation seed.
    progress : callable, optional
        ``progress(fraction, message)``.
    source : str
        Input name for error messages.

    Returns
    -------
    (Dataset, str)
        The forecast on the analysis grid, dims ``(lead_time, member, lat, lon)``; the device used.
    """
    import torch

    from engine.device import resolve_device
    from engine.models.global_.initial import LinearBalance, initial_state, perturb
    from engine.models.global_.shallow_water import ShallowWaterConfig, ShallowWaterModel

    if lead_hours % STEP_HOURS:
        raise JobError(f"lead_hours={lead_hours}: must be a multiple of {STEP_HOURS} h for the dynamical core")
    dev = resolve_device(device)
    report: ProgressCallback = progress or _ignore_progress
    with torch.no_grad():
        model = ShallowWaterModel(ShallowWaterConfig(truncation=truncation, mean_depth=mean_depth)).to(dev)
        balance = LinearBalance(model.spec, omega=model.config.omega)
        init = initial_state(analysis, model, balance=balance, source=source)
        if n_perturbed:
            init = perturb(init, n_perturbed, seed=seed, balance=balance)
        if forcing is not None:
            steady = initial_state(forcing, model, balance=balance, source="climatology")
            model.set_forcing(steady.state[0])
        report(0.05, f"T{truncation} shallow-water core on {dev}, {init.state.shape[0]} member(s), winds {init.winds}")
        every = round(STEP_HOURS * 3600 / model.dt)
        n_steps = round(lead_hours * 3600 / model.dt)
        lat, lon = analysis["lat"].values, analysis["lon"].values
        frames = []
        for step, state in model.integrate(init.state, n_steps, save_every=every):
            z = model.spec.evaluate(state[:, 2], lat, lon) + init.z_mean[:, None, None]
            frames.append(z.cpu().numpy())
            report(0.05 + 0.95 * step / max(n_steps, 1), f"+{step * model.dt / 3600:.0f} h")
        if not np.all(np.isfinite(frames[-1])):
            raise JobError(f"the dynamical core became unstable before +{lead_hours} h (non-finite values)")
    leads = [h for h in range(0, lead_hours + 1, STEP_HOURS)]
    out = _finish(np.stack(frames), init.init_time, leads, init.members, lat, lon, "global/swm")
    out.attrs.update({"truncation": truncation, "mean_depth_m": mean_depth, "time_step_s": model.dt,
                      "winds": init.winds, "forcing": "climatology" if forcing is not None else "none",
                      "ensemble": f"perturbed (seed {seed})" if n_perturbed else "analysis members"})
    return out, str(dev)


def forecast_global(
    analysis: xr.Dataset,
    *,
    model: str = "swm",
    lead_hours: int = 24,
    members: str = "all",
    init_time: str | None = None,
    device: str = "auto",
    truncation: int = 42,
    mean_depth: float = 8000.0,
    forcing: str = "climatology",
    perturbations: bool = False,
    seed: int = 0,
    climatology: str | None = None,
    progress: ProgressCallback | None = None,
    source: str = "input",
) -> tuple[xr.Dataset, str]:
    """Run any global model on an analysis dataset; no catalogue, no store.

    Parameters are those of :class:`GlobalForecastSpec`; ``analysis`` is an opened dataset.

    Returns
    -------
    (Dataset, str)
        Forecast with ``z500`` on ``(lead_time, member, lat, lon)`` and the device used.
    """
    name = model.lower()
    step = _model_step_hours(model)
    if lead_hours <= 0 or lead_hours % step:
        raise JobError(f"lead_hours={lead_hours}: must be a positive multiple of the model step ({step} h)")
    at_t0 = _pick_time(analysis, init_time, source)
    if "time" not in at_t0.coords:
        raise CoordError(f"{source}: no time coordinate; the initial time must be known")
    ens = _members(at_t0, "1") if perturbations else _members(at_t0, members)
    leads = list(range(0, lead_hours + 1, step))
    clim_path = _default_climatology(climatology) if (name == "climatology" or (name == "swm" and forcing == "climatology")) else None
    if name == "swm":
        forcing_ds = None
        if clim_path is not None:
            from engine.models.global_.baselines import load_climatology

            month = pd.Timestamp(at_t0["time"].values).month
            clim = load_climatology(clim_path, variables=("z500", "u500", "v500"))
            if month not in clim["month"].values:
                raise CoordError(f"{clim_path}: no climatology for month {month}; holds {clim['month'].values.tolist()}")
            forcing_ds = clim.sel(month=month).drop_vars("month")
        n_pert = int(members) if perturbations else 0
        return run_dynamical_core(ens, lead_hours, device=device, truncation=truncation, mean_depth=mean_depth,
                                  forcing=forcing_ds, n_perturbed=n_pert, seed=seed, progress=progress, source=source)
    if name == "persistence":
        from engine.models.global_.baselines import persistence
        from engine.models.global_.initial import datetime64_ns

        out = persistence(ens.transpose("member", "lat", "lon"), leads).transpose("lead_time", "member", "lat", "lon")
        out = _finish(out["z500"].values, datetime64_ns(at_t0["time"].values), leads, ens["member"].values, ens["lat"].values, ens["lon"].values, "global/persistence")
        return out, "cpu"
    if name == "climatology":
        from engine.models.global_.baselines import climatology as clim_fc
        from engine.models.global_.baselines import load_climatology
        from engine.models.global_.initial import datetime64_ns

        if clim_path is None:  # resolved above whenever name == "climatology"
            raise JobError("climatology: no climatology file was resolved")
        t0 = datetime64_ns(at_t0["time"].values)
        valid = t0 + pd.to_timedelta(np.asarray(leads), unit="h").to_numpy()
        c = clim_fc(load_climatology(clim_path), valid, ens["lat"].values, ens["lon"].values, source=str(clim_path))
        z = np.broadcast_to(c["z500"].values[:, None], (len(leads), 1, ens.sizes["lat"], ens.sizes["lon"]))
        return _finish(z, t0, leads, np.array([0]), ens["lat"].values, ens["lon"].values, "global/climatology"), "cpu"
    if _is_adapter(model):
        from engine.models.global_.adapters import PretrainedAdapter

        adapter = PretrainedAdapter.from_spec_file(model, device=device)
        out = adapter.forecast(analysis, lead_hours, init_time=init_time, members=members, progress=progress, source=source)
        return out, adapter.device_name
    raise UnknownNameError("global model", model, [*GLOBAL_MODELS, "<spec.toml>", "<spec.json>"])


@job_kinds.register("global")
def run_global_job(spec: GlobalForecastSpec, progress: ProgressCallback) -> JobOutput:
    """Job kind ``global``: read the analysis, run the model, return the forecast for the store."""
    t_start = time.perf_counter()
    ds = read_analysis(spec.init)
    progress(0.02, f"read {len(spec.init)} file(s)")
    out, device = forecast_global(
        ds, model=spec.model, lead_hours=spec.lead_hours, members=spec.members, init_time=spec.init_time,
        device=spec.device, truncation=spec.truncation, mean_depth=spec.mean_depth, forcing=spec.forcing,
        perturbations=spec.perturbations, seed=spec.seed, climatology=spec.climatology, progress=progress,
        source=str(spec.init[0]),
    )
    progress(1.0, "forecast complete")
    inputs: list[str] = [str(p) for p in spec.init]
    if spec.model.lower() == "climatology" or (spec.model.lower() == "swm" and spec.forcing == "climatology"):
        inputs.append(str(_default_climatology(spec.climatology)))
    return JobOutput(
        dataset=out, compute_seconds=time.perf_counter() - t_start, inputs=inputs,
        init_time=pd.Timestamp(out["init_time"].values).to_pydatetime(), device=device, model=spec.model_name(),
        domain="global", extra_attrs={k: v for k, v in out.attrs.items() if k != "model"},
    )

