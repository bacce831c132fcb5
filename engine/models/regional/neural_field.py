r"""Physics-guided neural-field temperature downscaling (in the spirit of PhyDL-NWP).

A small coordinate network :math:`g_\theta(x, y, z, t)` (an MLP of normalised space-time
coordinates and terrain height) is fitted per case on top of the lapse-rate downscaling
:math:`T_\mathrm{LR}` of :mod:`engine.models.regional.temperature`:

.. math::
    T(x, y, z, t) = T_\mathrm{LR}(x, y, z, t) + g_\theta(x, y, z, t),

with a physics-informed loss that only ever sees the *coarse* data:

.. math::
    \mathcal{L} = \underbrace{\big\| \mathcal{A}\,T - T_c \big\|^2}_{\text{coarse-cell means}}
    + w_\Gamma \underbrace{\Big\| \frac{\partial T}{\partial z} - \Gamma \Big\|^2}_{\text{lapse rate}}
    + w_s \underbrace{\big\| \nabla_h g_\theta \big\|^2}_{\text{smoothness}},

where :math:`\mathcal{A}` averages the fine field over each coarse cell, :math:`\Gamma` is the
locally regressed lapse rate (K m-1) and the derivatives come from automatic differentiation.
The first term makes the fine field consistent with the coarse cell means (which bilinear
reduce-interpolate-restore is not), the second keeps the vertical structure physical, the third
keeps the correction at the scales the coarse data can inform. Like PhyDL-NWP (a coordinate
network with physics terms by autograd, tens of thousands of parameters) the fitted field is
resolution-free: :meth:`NeuralFieldDownscaler.evaluate` returns it at any points.

Public API: ``CoordinateMLP``, ``NeuralFieldDownscaler``.

References
----------
PhyDL-NWP: physics-guided deep learning for resolution-free downscaling of numerical weather
prediction (coordinate network, physics-informed loss; see DESIGN.md for its role here).
Raissi, M., P. Perdikaris and G. E. Karniadakis (2019): Physics-informed neural networks.
J. Comput. Phys. 378, 686-707.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from engine.errors import CoordError
from engine.models.base import models
from engine.models.regional.grid import LatLonGrid
from engine.models.regional.temperature import LapseRateDownscaler


class CoordinateMLP(torch.nn.Module):
    """MLP of ``(x, y, z, t)`` (each scaled to about [-1, 1]) with random Fourier features in x, y.

    Parameters
    ----------
    hidden : int
        Width of the hidden layers.
    layers : int
        Number of hidden layers.
    n_fourier : int
        Number of random Fourier features of the horizontal coordinates (scale 1-4 cycles per
        domain), which let a small MLP represent horizontal structure.
    seed : int
        Seed of the initialisation (fits are reproducible).
    """

    # Buffer registered in __init__ (declared so that type checkers see a tensor, not a module).
    freq: torch.Tensor

    def __init__(self, hidden: int = 64, layers: int = 3, n_fourier: int = 16, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("freq", torch.randn(2, n_fourier, generator=gen, dtype=torch.float64) * 2.0)
        dims = [4 + 2 * n_fourier] + [hidden] * layers
        blocks: list[torch.nn.Module] = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for a, b in zip(dims[:-1], dims[1:], strict=True):
                blocks += [torch.nn.Linear(a, b, dtype=torch.float64), torch.nn.SiLU()]
            last = torch.nn.Linear(hidden, 1, dtype=torch.float64)
            torch.nn.init.zeros_(last.weight)  # start from the lapse-rate field exactly
            torch.nn.init.zeros_(last.bias)
        self.net = torch.nn.Sequential(*blocks, last)

    def forward(self, xyzt: torch.Tensor) -> torch.Tensor:
        """``(n, 4)`` scaled coordinates → ``(n,)`` correction (K)."""
        proj = 2 * torch.pi * xyzt[:, :2] @ self.freq
        return self.net(torch.cat([xyzt, torch.sin(proj), torch.cos(proj)], dim=1))[:, 0]


@models.register("regional/neural_field")
class NeuralFieldDownscaler(torch.nn.Module):
    """Lapse-rate downscaling plus a physics-guided neural-field correction fitted per case.

    Parameters
    ----------
    fine_orography : ndarray
        Terrain (m) on the fine grid, ``(ny_f, nx_f)``.
    coarse_orography : ndarray, optional
        Coarse model orography (m); see :class:`LapseRateDownscaler`.
    steps : int
        Adam steps of the fit.
    batch_times : int
        Time steps per optimisation step (random subsets of the case).
    lr : float
        Adam learning rate.
    w_lapse, w_smooth : float
        Weights of the lapse-rate and smoothness terms (lapse term in (K km-1)^2).
    hidden, layers, n_fourier, seed
        Network shape and seed (:class:`CoordinateMLP`).
    """

    def __init__(
        self, fine_orography: np.ndarray, coarse_orography: np.ndarray | None = None, *, steps: int = 300,
        batch_times: int = 24, lr: float = 3e-3, w_lapse: float = 0.1, w_smooth: float = 0.01, hidden: int = 64,
        layers: int = 3, n_fourier: int = 16, seed: int = 0,
    ) -> None:
        super().__init__()
        if steps < 1 or batch_times < 1:
            raise CoordError(f"steps ({steps}) and batch_times ({batch_times}) must be positive")
        self.base = LapseRateDownscaler(fine_orography, coarse_orography)
        self.field = CoordinateMLP(hidden, layers, n_fourier, seed)
        self.steps, self.batch_times, self.lr = steps, batch_times, lr
        self.w_lapse, self.w_smooth, self.seed = w_lapse, w_smooth, seed
        self.loss_history: list[float] = []
        self._scales: dict[str, tuple[float, float]] = {}

    # -- coordinates ------------------------------------------------------------------------
    def _scale(self, name: str, values: np.ndarray | torch.Tensor) -> torch.Tensor:
        lo, hi = self._scales[name]
        return 2.0 * (torch.as_tensor(values, dtype=torch.float64) - lo) / max(hi - lo, 1e-9) - 1.0

    def _inputs(self, lat: torch.Tensor, lon: torch.Tensor, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._scale("lon", lon), self._scale("lat", lat), self._scale("z", z),
                            self._scale("t", t)], dim=1)

    def evaluate(self, lat: np.ndarray, lon: np.ndarray, z: np.ndarray, t: np.ndarray) -> torch.Tensor:
        """The fitted correction (K) at arbitrary points: resolution-free evaluation.

        Parameters
        ----------
        lat, lon, z, t : ndarray
            Point latitudes, longitudes (degrees), terrain heights (m) and time indices, shape ``(n,)``.
        """
        if not self._scales:
            raise CoordError("the neural field has not been fitted yet; call the downscaler first")
        dev = next(self.field.parameters()).device
        x = self._inputs(*(torch.as_tensor(np.asarray(a), dtype=torch.float64) for a in (lat, lon, z, t))).to(dev)
        with torch.no_grad():
            return self.field(x)

    # -- fit and apply ------------------------------------------------------------------------
    def forward(
        self, coarse: torch.Tensor, coarse_coords: Mapping[str, np.ndarray], fine_coords: Mapping[str, np.ndarray]
    ) -> torch.Tensor:
        """Fit the neural field to this case and return the fine temperature (K).

        Parameters
        ----------
        coarse : Tensor
            Temperature (K), ``(time, ny_c, nx_c)``: the whole case (the time axis is a network input).
        coarse_coords, fine_coords : mapping
            ``lat``/``lon`` 1-D coordinates (degrees).

        Returns
        -------
        Tensor
            ``(time, ny_f, nx_f)``.
        """
        if coarse.ndim != 3:
            raise CoordError(f"neural field needs coarse (time, ny, nx), got {tuple(coarse.shape)}")
        dev = coarse.device
        cg = LatLonGrid(np.asarray(coarse_coords["lat"]), np.asarray(coarse_coords["lon"]))
        fg = LatLonGrid(np.asarray(fine_coords["lat"]), np.asarray(fine_coords["lon"]))
        t_c = coarse.to(torch.float64)
        self.base = self.base.to(dev)
        self.field = self.field.to(dev)
        with torch.no_grad():
            base = self.base(t_c, coarse_coords, fine_coords)  # (T, ny, nx)
        nt = t_c.shape[0]
        zf = self.base.z_fine.to(dev, torch.float64)
        lat2, lon2 = torch.meshgrid(torch.tensor(np.array(fg.lat), dtype=torch.float64, device=dev),
                                    torch.tensor(np.array(fg.lon), dtype=torch.float64, device=dev), indexing="ij")
        self._scales = {"lat": (float(fg.lat.min()), float(fg.lat.max())), "lon": (float(fg.lon.min()), float(fg.lon.max())),
                        "z": (0.0, max(float(zf.max()), 1.0)), "t": (0.0, float(max(nt - 1, 1)))}
        # Which coarse cell each fine point falls in (nearest centre on regular grids); points
        # beyond the outer coarse cells are left out of the data term.
        iy = np.abs(fg.lat[:, None] - cg.lat[None, :]).argmin(1)
        ix = np.abs(fg.lon[:, None] - cg.lon[None, :]).argmin(1)
        inside_y = np.abs(fg.lat - cg.lat[iy]) <= cg.dlat / 2 + 1e-9
        inside_x = np.abs(fg.lon - cg.lon[ix]) <= cg.dlon / 2 + 1e-9
        cell = torch.as_tensor((iy[:, None] * cg.shape[1] + ix[None, :]).ravel(), device=dev)
        inside = torch.as_tensor((inside_y[:, None] & inside_x[None, :]).ravel(), device=dev)
        counts = torch.zeros(cg.shape[0] * cg.shape[1], dtype=torch.float64, device=dev).index_add_(
            0, cell[inside], torch.ones(int(inside.sum()), dtype=torch.float64, device=dev))
        observed = counts > 0
        flat_lat, flat_lon, flat_z = lat2.ravel(), lon2.ravel(), zf.ravel()
        npts = flat_lat.numel()

        def predict(times: torch.Tensor, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
            tt = times.to(torch.float64).repeat_interleave(npts)
            x = self._inputs(flat_lat.repeat(len(times)), flat_lon.repeat(len(times)), flat_z.repeat(len(times)), tt)
            x.requires_grad_(need_grad)
            return self.field(x).reshape(len(times), -1), x

        z_range = self._scales["z"][1] - self._scales["z"][0]
        lon_range = self._scales["lon"][1] - self._scales["lon"][0]
        lat_range = self._scales["lat"][1] - self._scales["lat"][0]
        opt = torch.optim.Adam(self.field.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        self.loss_history = []
        for _ in range(self.steps):
            times = torch.randperm(nt, generator=gen)[: self.batch_times].to(dev)
            g, x = predict(times, need_grad=True)
            full = base[times].reshape(len(times), -1) + g
            sums = torch.zeros(len(times), counts.numel(), dtype=torch.float64, device=dev).index_add_(
                1, cell[inside], full[:, inside])
            means = sums[:, observed] / counts[observed]
            loss_data = (means - t_c[times].reshape(len(times), -1)[:, observed]).pow(2).mean()
            grads = torch.autograd.grad(g.sum(), x, create_graph=True)[0]
            # Chain rule back to physical units: d/dz = (2 / z_range) d/dz_scaled; K/m -> K/km.
            dg_dz = grads[:, 2].reshape(len(times), -1) * 2.0 / z_range
            # dT/dz of the full field is gamma + dg/dz (T_LR is linear in z with slope gamma), so
            # the lapse-rate residual is dg/dz, measured in K/km.
            loss_lapse = (dg_dz * 1000.0).pow(2).mean()
            smooth = (grads[:, 0] * 2.0 / lon_range).pow(2) + (grads[:, 1] * 2.0 / lat_range).pow(2)
            loss = loss_data + self.w_lapse * loss_lapse + self.w_smooth * smooth.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            self.loss_history.append(float(loss.detach()))
        with torch.no_grad():
            out = torch.empty_like(base)
            for start in range(0, nt, self.batch_times):
                times = torch.arange(start, min(start + self.batch_times, nt), device=dev)
                g, _ = predict(times, need_grad=False)
                out[times] = base[times] + g.reshape(len(times), *fg.shape)
        return out.to(coarse.dtype)
