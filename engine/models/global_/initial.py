r"""Initial states for the global dynamical core from analyses (500 hPa height, winds if present).

Three steps turn an analysis into a shallow-water state:

1. **Regridding.** Any global regular latitude-longitude grid (latitudes ascending or descending,
   longitudes from -180 or 0, with or without pole rows) is interpolated bilinearly onto the
   model's Gaussian grid, with longitude wrap-around; the spectral transform that follows
   truncates what the model cannot represent. ERA5 at 3 degrees (61 x 120) onto the T42 grid
   (64 x 128) changes resolution little, so bilinear interpolation loses almost nothing.
2. **Equivalent-barotropic geopotential.** The model's geopotential is
   :math:`\Phi = g H + (z_{500} - \langle z_{500}\rangle)`, the analysed 500 hPa geopotential
   anomaly about its global mean on a layer of equivalent depth ``H``. Geostrophic winds of
   the layer are then those of the 500 hPa map; ``H`` sets the deformation radius
   :math:`\sqrt{gH}/f` (see :mod:`engine.models.global_.workflow` for the choice).
3. **Winds.** Analysed winds (``u500``, ``v500``) are used when present, keeping only their
   rotational part: a one-layer model has no vertical structure to balance the analysed
   divergence, which would radiate as gravity-wave noise. Otherwise the wind is the
   non-divergent wind in *linear balance* with the height field,

   .. math:: \nabla\cdot(f\nabla\psi) = \nabla^2\Phi ,

   which is geostrophy with the variation of ``f`` included. It is degenerate where ``f``
   vanishes: at the equator it does not determine :math:`\psi`. We therefore solve it in spectral
   space as a damped least-squares problem, minimising
   :math:`\|L\psi - \nabla^2\Phi\|^2 + \epsilon \|\nabla\psi\|^2` (scaled by ``a^2 / 2 Omega``),
   i.e. the least kinetic energy compatible with balance (``epsilon`` small: see :class:`LinearBalance`). Outside the tropics the balance term
   dominates and the solution is the geostrophic one; near the equator, where height gradients
   carry no information about the wind, it relaxes smoothly towards rest instead of blowing up
   like :math:`\nabla\Phi / f`. The operator :math:`L` commutes with rotations about the polar
   axis, so each zonal wavenumber ``m`` is an independent small system, built once per
   truncation by applying :math:`L` to each basis function with the torch-harmonics transforms.

Ensembles come from analysis members (one state per member) or from random balanced spectral
perturbations of one analysis (:func:`perturb`), seeded for reproducibility.

Public API: ``regrid_bilinear``, ``LinearBalance``, ``InitialState``, ``initial_state``, ``select_members``, ``perturb``,
``datetime64_ns``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import xarray as xr

from engine.errors import CoordError, VariableNotFoundError
from engine.models.global_.shallow_water import ShallowWaterModel
from engine.models.global_.spectral import SpectralGrid


# ---------------------------------------------------------------------------------- regridding
def _check_global_lon(lon: np.ndarray, what: str) -> np.ndarray:
    lon = np.asarray(lon, dtype="float64")
    if lon.ndim != 1 or lon.size < 4:
        raise CoordError(f"{what}: longitude must be 1-D with at least 4 values, got shape {lon.shape}")
    step = np.diff(lon)
    if np.any(step <= 0) or not np.allclose(step, step[0], rtol=1e-3):
        raise CoordError(f"{what}: longitudes must be increasing and equally spaced (regular grid)")
    if abs(step[0] * lon.size - 360.0) > 0.51 * step[0]:
        raise CoordError(f"{what}: longitudes cover {step[0] * lon.size:.1f} degrees; a global grid (360) is required")
    return lon


def regrid_bilinear(
    values: np.ndarray, lat_in: np.ndarray, lon_in: np.ndarray, lat_out: np.ndarray, lon_out: np.ndarray, *, what: str = "input"
) -> np.ndarray:
    """Bilinear interpolation between global regular latitude-longitude grids.

    Parameters
    ----------
    values : ndarray
        ``(..., ny, nx)`` on ``(lat_in, lon_in)``; any units.
    lat_in, lon_in : ndarray
        Source latitudes (degrees north, ascending or descending) and longitudes (degrees east,
        equally spaced, global; any origin, e.g. -180 or 0).
    lat_out, lon_out : ndarray
        Target latitudes and longitudes (degrees), 1-D.
    what : str
        Name used in error messages (e.g. the file name).

    Returns
    -------
    ndarray
        ``(..., len(lat_out), len(lon_out))``. Target latitudes poleward of the outermost source
        row take that row's values (no extrapolation).

    Raises
    ------
    CoordError
        If the source grid is not regular and global.
    """
    lat = np.asarray(lat_in, dtype="float64")
    lon = _check_global_lon(lon_in, what)
    if lat.ndim != 1 or lat.size < 2 or np.any(np.diff(lat) == 0) or not (np.all(np.diff(lat) > 0) or np.all(np.diff(lat) < 0)):
        raise CoordError(f"{what}: latitude must be 1-D and strictly monotonic")
    vals = np.asarray(values, dtype="float64")
    if vals.shape[-2:] != (lat.size, lon.size):
        raise CoordError(f"{what}: field shape {vals.shape[-2:]} does not match lat/lon sizes {(lat.size, lon.size)}")
    if lat[0] > lat[-1]:
        lat, vals = lat[::-1], vals[..., ::-1, :]
    # Latitude: fractional index, clamped at the outermost rows.
    yo = np.clip(np.asarray(lat_out, dtype="float64"), lat[0], lat[-1])
    j = np.clip(np.searchsorted(lat, yo, side="right") - 1, 0, lat.size - 2)
    wy = (yo - lat[j]) / (lat[j + 1] - lat[j])
    # Longitude: periodic, measured from the first source longitude.
    dlon = lon[1] - lon[0]
    x = np.mod(np.asarray(lon_out, dtype="float64") - lon[0], 360.0) / dlon
    i0 = np.floor(x).astype(int) % lon.size
    i1 = (i0 + 1) % lon.size
    wx = x - np.floor(x)
    rows = vals[..., j, :] * (1 - wy)[:, None] + vals[..., j + 1, :] * wy[:, None]
    return rows[..., i0] * (1 - wx) + rows[..., i1] * wx


# ---------------------------------------------------------------------------------- balance
def balance_matrix(truncation: int, m: int) -> torch.Tensor:
    r"""The operator :math:`\nabla\cdot(f\nabla\,\cdot)` on order ``m``, in units of ``2 Omega / a^2``.

    With :math:`\mu = \sin\varphi`, :math:`f = 2\Omega\mu` and the recurrences of orthonormal
    associated Legendre functions, :math:`\mu Y_l = \epsilon_{l+1} Y_{l+1} + \epsilon_l Y_{l-1}` and
    :math:`(1-\mu^2)\partial_\mu Y_l = -l\epsilon_{l+1} Y_{l+1} + (l+1)\epsilon_l Y_{l-1}`,
    :math:`\epsilon_l = \sqrt{(l^2-m^2)/(4l^2-1)}`:

    .. math:: \nabla\cdot(f\nabla Y_l) = -\frac{2\Omega}{a^2}\big[l(l+2)\,\epsilon_{l+1} Y_{l+1}
              + (l-1)(l+1)\,\epsilon_l Y_{l-1}\big]

    The output keeps degree ``T + 1``: the balance residual there must vanish too (the truncated
    right-hand side has none). Dropping it, as a transform to degree ``T`` would, leaves a spurious
    near-null space (a chain of odd/even degrees whose images cancel below ``T + 1``) that the
    damping would then have to resolve arbitrarily.

    Returns
    -------
    Tensor
        ``(T + 2 - m, T + 1 - m)`` float64: rows are output degrees ``l = m..T+1``, columns input
        degrees ``l = m..T``.
    """
    n = truncation + 1
    ls = torch.arange(m, n, dtype=torch.float64)

    def eps(ell: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.clamp((ell**2 - m**2) / (4 * ell**2 - 1), min=0.0))

    mat = torch.zeros(n + 1 - m, n - m, dtype=torch.float64)
    idx = torch.arange(n - m)
    mat[idx + 1, idx] = -(ls * (ls + 2)) * eps(ls + 1)  # Y_l -> Y_{l+1}
    mat[idx[1:] - 1, idx[1:]] = (-((ls - 1) * (ls + 1)) * eps(ls))[1:]  # Y_l -> Y_{l-1}
    return mat


class LinearBalance:
    r"""Solve :math:`\nabla\cdot(f\nabla\psi) = \nabla^2\Phi` for the streamfunction, spectrally.

    Parameters
    ----------
    grid : SpectralGrid
        Model transforms (truncation ``T``).
    omega : float
        Rotation rate (s-1).
    epsilon : float
        Weight of the kinetic-energy penalty relative to the balance residual (dimensionless, the
        operator scaled by ``a^2 / 2 Omega``). The default 0.01 was chosen on data independent of
        any forecast verification: balanced winds from the ERA-Interim January-mean z500 at T42
        against its analysed u500/v500 give RMS vector errors of 1.07 m/s (|lat| >= 20) and
        0.88 m/s (tropics), while the zonal flow of test case 2 is recovered within 1 % outside
        the tropics (larger values smooth the tropics more but shrink the planetary-scale flow,
        which the penalty cannot tell apart from equatorial modes at low degree).

    Notes
    -----
    For each zonal wavenumber ``m`` the operator maps the real coefficients ``psi[l', m]`` to
    ``L[l, l'] psi[l', m]``; it is real because ``f`` depends on latitude only, so real and
    imaginary parts are solved with the same matrix. The normal equations
    :math:`(L^T L + \epsilon K)\psi = L^T b` with :math:`K = \mathrm{diag}(l (l + 1))` are solved by
    Cholesky once per ``m`` (the factorisation is cached). ``L`` comes from the recurrences of
    the orthonormal harmonics (:func:`balance_matrix`), checked against the grid transforms in
    the tests.
    """

    def __init__(self, grid: SpectralGrid, *, omega: float = 7.292e-5, epsilon: float = 0.01) -> None:
        self.grid, self.omega, self.epsilon = grid, omega, epsilon
        n = grid.truncation + 1
        scale = grid.radius**2 / (2 * omega)
        self._solvers: list[tuple[torch.Tensor, torch.Tensor]] = []
        for m in range(n):
            mat = balance_matrix(grid.truncation, m)
            ell = torch.arange(m, n, dtype=torch.float64)
            k = torch.diag(ell * (ell + 1))
            if m == 0:
                # l = 0 of psi is a gauge constant: pin it with a unit penalty.
                k[0, 0] = 1.0
            chol = torch.linalg.cholesky(mat.T @ mat + epsilon * k)
            self._solvers.append((mat, chol))
        self._scale = scale

    def streamfunction(self, phi_spec: torch.Tensor) -> torch.Tensor:
        """Balanced streamfunction (m2 s-1) of a geopotential ``(..., l, m)`` (spectral, m2 s-2)."""
        g = self.grid
        rhs = (g.lap * phi_spec) * self._scale  # dimensionless-ish right-hand side
        out = torch.zeros_like(phi_spec)
        for m, (mat, chol) in enumerate(self._solvers):
            b = rhs[..., m:, m]
            bt = torch.view_as_real(b).movedim(-1, -2).to(torch.float64)  # (..., 2, L-m)
            atb = bt @ mat[:-1]  # (A^T b)^T; b has no degree T + 1
            sol = torch.cholesky_solve(atb.unsqueeze(-1).reshape(-1, atb.shape[-1], 1), chol)
            sol = sol.reshape(atb.shape)
            out[..., m:, m] = torch.complex(sol[..., 0, :], sol[..., 1, :]).to(out.dtype)
        return out * g.mask

    def vorticity(self, phi_spec: torch.Tensor) -> torch.Tensor:
        """Balanced relative vorticity (s-1, spectral) of a geopotential (spectral, m2 s-2)."""
        return self.grid.lap * self.streamfunction(phi_spec)


# ---------------------------------------------------------------------------------- states
@dataclass(frozen=True)
class InitialState:
    """A batch of model initial states and what is needed to map the forecast back.

    Attributes
    ----------
    state : Tensor
        ``(member, 3, T + 1, T + 1)`` spectral vorticity, divergence, geopotential deviation.
    z_mean : Tensor
        Global-mean 500 hPa geopotential of each member (m2 s-2), ``(member,)``: added back to the
        model's anomaly (it is conserved, being the mass of the layer).
    members : ndarray
        Member labels, ``(member,)``.
    init_time : numpy.datetime64
        Analysis time.
    winds : str
        ``"analysed"`` or ``"balanced"``.
    """

    state: torch.Tensor
    z_mean: torch.Tensor
    members: np.ndarray
    init_time: np.datetime64
    winds: str


def datetime64_ns(value: np.datetime64 | np.ndarray | str | None) -> np.datetime64:
    """A time as a ``datetime64[ns]`` scalar: what ``np.datetime64(value, "ns")`` gives.

    ``value`` is a datetime64 scalar, a 0-d datetime64 array (a scalar coordinate's ``.values``),
    an ISO 8601 string, or ``None`` (NaT). Written with ``np.asarray`` because numpy's stubs
    accept a unit in ``np.datetime64`` only for string, bytes or date input.
    """
    # Indexing a 0-d array with () gives its scalar; numpy's stubs type the result as an array.
    return cast(np.datetime64, np.asarray(value, dtype="datetime64[ns]")[()])


def _select_time(ds: xr.Dataset, init_time: np.datetime64 | str | None, source: str) -> xr.Dataset:
    tdim = next((d for d in ("time", "init_time", "valid_time") if d in ds.dims), None)
    if tdim is None:
        if init_time is not None and "time" in ds.coords and datetime64_ns(ds["time"].values) != np.datetime64(init_time):
            raise CoordError(f"{source}: holds time {ds['time'].values}, not the requested {init_time}")
        return ds
    times = ds[tdim].values
    if init_time is None:
        return ds.isel({tdim: 0})
    t = datetime64_ns(init_time)
    hits = np.nonzero(times.astype("datetime64[ns]") == t)[0]
    if hits.size == 0:
        raise CoordError(f"{source}: no analysis at {init_time}; times are {', '.join(str(x)[:16] for x in times[:8])}")
    return ds.isel({tdim: int(hits[0])})


def select_members(
    ds: xr.Dataset, members: Sequence[int] | int | None, source: str
) -> tuple[xr.Dataset, np.ndarray | None]:
    """The analysis members to start from, always with a ``member`` dim.

    ``members``: an int ``N`` (the first ``N``), labels, or ``None`` (all). A dataset without a
    member dim gets one of size 1 (label 0), and ``None`` is returned as its labels.

    Raises
    ------
    CoordError
        ``N`` outside ``1..n_members``, or labels the analysis does not have (named with ``source``).
    """
    if "member" not in ds.dims:
        return ds.expand_dims(member=[0]), None
    labels = ds["member"].values
    if isinstance(members, int):
        if not 1 <= members <= labels.size:
            raise CoordError(f"{source}: members={members}, but the analysis has {labels.size} members")
        labels = labels[:members]
    elif members is not None:
        missing = sorted(set(members) - set(labels.tolist()))
        if missing:
            raise CoordError(f"{source}: no member {missing}; has {labels.tolist()}")
        labels = np.asarray(list(members))
    return ds.sel(member=labels), np.asarray(labels)


def initial_state(
    ds: xr.Dataset,
    model: ShallowWaterModel,
    *,
    init_time: np.datetime64 | str | None = None,
    members: Sequence[int] | int | None = None,
    balance: LinearBalance | None = None,
    source: str = "input",
) -> InitialState:
    """Model initial states from an analysis dataset with ``z500`` (and optionally ``u500``, ``v500``).

    Parameters
    ----------
    ds : Dataset
        Canonical dataset (``engine.readers.open_any``) with ``z500`` (m2 s-2) on dims
        ``([time,] [member,] lat, lon)``; a regular global grid.
    model : ShallowWaterModel
        The model whose grid and reference depth the state is for.
    init_time : datetime-like, optional
        Analysis time to start from; the first time when omitted.
    members : sequence of int or int, optional
        Member labels to use (an int ``N``: the first ``N``); all when omitted. A dataset without
        a ``member`` dim gives one member labelled 0.
    balance : LinearBalance, optional
        Reused balance solver (built when needed and not given).
    source : str
        Name of the input (file) for error messages.

    Returns
    -------
    InitialState

    Raises
    ------
    VariableNotFoundError
        If ``z500`` is missing, or only one of ``u500``/``v500`` is present.
    CoordError
        If the grid is not regular and global, or ``init_time`` is not in the data.
    """
    if "z500" not in ds.data_vars:
        raise VariableNotFoundError(source, f"no variable z500 (500 hPa geopotential, m2 s-2) to initialise from; has {', '.join(map(str, ds.data_vars)) or 'none'}")
    has_u, has_v = "u500" in ds.data_vars, "v500" in ds.data_vars
    if has_u != has_v:
        raise VariableNotFoundError(source, f"has {'u500' if has_u else 'v500'} but not {'v500' if has_u else 'u500'}; give both winds or neither")
    for c in ("lat", "lon"):
        if c not in ds.coords:
            raise CoordError(f"{source}: no {c!r} coordinate; a regular latitude-longitude grid is required")
    ds = _select_time(ds, init_time, source)
    t0 = ds["time"].values if "time" in ds.coords else np.datetime64(init_time or "NaT")
    ds, picked = select_members(ds, members, source)
    labels = picked if picked is not None else np.array([0])
    names = ["z500"] + (["u500", "v500"] if has_u else [])
    ds = ds[names].transpose("member", "lat", "lon")
    g = model.spec
    lat_out, lon_out = g.lat_deg, g.lon_deg

    def on_model_grid(name: str) -> torch.Tensor:
        arr = ds[name].values
        if not np.all(np.isfinite(arr)):
            raise CoordError(f"{source}: {name} has missing values; the global model needs a complete field")
        out = regrid_bilinear(arr, ds["lat"].values, ds["lon"].values, lat_out, lon_out, what=source)
        return torch.as_tensor(out, dtype=g.dtype, device=g.lats.device)

    z = on_model_grid("z500")
    z_mean = g.global_mean(z)
    phi = model.phibar + z - z_mean[:, None, None]
    if has_u:
        u, v = on_model_grid("u500"), on_model_grid("v500")
        state = model.state_from_grid(u, v, phi, keep_divergence=False)
        winds = "analysed"
    else:
        balance = balance or LinearBalance(g, omega=model.config.omega)
        ph = g.to_spec(phi - model.phibar)
        vrt = balance.vorticity(ph)
        state = torch.stack((vrt, torch.zeros_like(vrt), ph), dim=-3)
        winds = "balanced"
    return InitialState(state=state, z_mean=z_mean, members=np.asarray(labels), init_time=datetime64_ns(t0), winds=winds)


def perturb(
    init: InitialState,
    n_members: int,
    *,
    seed: int = 0,
    amplitude: float = 50.0,
    lmin: int = 6,
    tropical_taper_deg: float = 20.0,
    balance: LinearBalance,
) -> InitialState:
    """An ensemble of balanced random perturbations of the first member of ``init``.

    Member 0 is the unperturbed analysis (the control); members ``1..n-1`` add a geopotential
    perturbation drawn from independent Gaussian spectral coefficients at total wavenumbers
    ``lmin <= l <= T`` with a flat spectrum, tapered towards the equator and scaled to a global
    RMS of ``amplitude`` m2 s-2, plus
    the wind in linear balance with it (so the perturbation projects on slow Rossby modes, not
    on gravity waves).

    Parameters
    ----------
    init : InitialState
        The analysis (member 0 is perturbed).
    n_members : int
        Ensemble size including the control.
    seed : int
        Seed of the random generator (a CPU ``torch.Generator``: identical on every device).
    amplitude : float
        Global RMS of the geopotential perturbation (m2 s-2). 50 (about 5 gpm) is the order of the
        differences between 500 hPa analyses of different centres; the ERA5 data-assimilation
        ensemble, known to be under-dispersive, spreads by only 14 m2 s-2 in the sample file.
    lmin : int
        Lowest perturbed total wavenumber (planetary waves are well analysed).
    tropical_taper_deg : float
        Perturbations are multiplied by ``1 - exp(-(lat / taper)^2)`` (degrees) before scaling.
    balance : LinearBalance
        Balance solver of the model's truncation.

    Returns
    -------
    InitialState
        With ``n_members`` members labelled ``0..n-1``.
    """
    if n_members < 1:
        raise CoordError(f"members: need at least 1, got {n_members}")
    g = balance.grid
    base = init.state[:1]
    n = g.truncation + 1
    gen = torch.Generator().manual_seed(seed)
    coef = torch.randn(n_members, n, n, 2, generator=gen, dtype=torch.float64)
    coef = torch.view_as_complex(coef)
    ell = torch.arange(n).reshape(n, 1)
    keep = (ell >= lmin) & g.mask.cpu()
    coef = coef * keep
    coef[:, :, 0] = coef[:, :, 0].real.to(coef.dtype)  # m = 0 coefficients of a real field are real
    coef[0] = 0.0
    grid = g.to_grid(coef.to(device=base.device, dtype=base.dtype))
    # Taper the perturbations towards the equator: there, height perturbations are not balanced
    # by a wind (f -> 0) and 500 hPa analysis uncertainty in geopotential is small; untapered,
    # the balanced wind of small-scale tropical noise (psi ~ phi / f) is tens of m/s.
    lat = g.lats.reshape(-1, 1)
    grid = grid * (1.0 - torch.exp(-((lat / math.radians(tropical_taper_deg)) ** 2)))
    pert = g.to_spec(grid)
    rms = torch.sqrt(g.global_mean(g.to_grid(pert) ** 2)).clamp_min(1e-30)
    pert = pert * (amplitude / rms)[:, None, None]
    pert[0] = 0.0
    vrt = balance.vorticity(pert)
    state = base + torch.stack((vrt, torch.zeros_like(vrt), pert), dim=-3)
    z_mean = init.z_mean[:1].expand(n_members).clone()
    return InitialState(state=state, z_mean=z_mean, members=np.arange(n_members), init_time=init.init_time, winds=init.winds)


def balanced_wind_error(model: ShallowWaterModel, ds: xr.Dataset, *, epsilon: float = 0.01, band: float = 20.0) -> dict[str, float]:
    """RMS vector error (m s-1) of balanced winds against analysed winds, extratropics and tropics.

    A diagnostic for choosing ``epsilon`` on data independent of any forecast verification
    (e.g. the ERA-Interim monthly means, which hold ``z500``, ``u500``, ``v500``).

    Returns
    -------
    dict
        ``{"extratropics": ..., "tropics": ...}`` split at ``|lat| = band`` degrees.
    """
    balance = LinearBalance(model.spec, omega=model.config.omega, epsilon=epsilon)
    bal = initial_state(ds.drop_vars(["u500", "v500"]), model, balance=balance)
    ana = initial_state(ds, model)
    fb, fa = model.to_grid(bal.state), model.to_grid(ana.state)
    err2 = (fb["u"] - fa["u"]) ** 2 + (fb["v"] - fa["v"]) ** 2
    lat = model.spec.lats.reshape(-1, 1) * torch.ones_like(err2[0])
    out = {}
    for name, sel in (("extratropics", lat.abs() >= math.radians(band)), ("tropics", lat.abs() < math.radians(band))):
        w = model.spec.weights * sel
        out[name] = float(torch.sqrt((err2 * w).sum() / (w.sum() * err2.shape[0])))
    return out
