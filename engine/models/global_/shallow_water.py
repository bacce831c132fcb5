r"""Spectral shallow-water model on the rotating sphere (vorticity-divergence form), in torch.

The prognostic variables are the spectral coefficients of relative vorticity :math:`\zeta`,
divergence :math:`\delta` (both s-1) and the geopotential deviation
:math:`\phi = \Phi - \bar\Phi` (m2 s-2) from a reference :math:`\bar\Phi = g H`:

.. math::

    \partial_t \zeta &= -\nabla\cdot\big((\zeta + f)\mathbf{V}\big) \\
    \partial_t \delta &= \mathbf{k}\cdot\nabla\times\big((\zeta + f)\mathbf{V}\big)
        - \nabla^2\big(\phi + \tfrac12|\mathbf{V}|^2\big) \\
    \partial_t \phi &= -\nabla\cdot(\phi\mathbf{V}) - \bar\Phi\,\delta

(Williamson et al. 1992, eqs. 3-5; Hack & Jakob 1992, NCAR STSWM). Products are formed on the
Gaussian grid and transformed back (the transform method); the transforms come from
torch-harmonics (Bonev et al. 2023), whose ``ShallowWaterSolver`` example uses the same form
with Adams-Bashforth stepping and an equiangular grid.

Time stepping is **semi-implicit leapfrog** as in STSWM: the terms that carry gravity waves,
:math:`-\nabla^2\phi` and :math:`-\bar\Phi\delta`, are averaged over the ``n-1`` and ``n+1``
levels, which makes the scheme stable for steps limited only by advection (T42: 20 min instead
of about 3 min for explicit gravity waves). Each spherical harmonic decouples, so the implicit
solve is one division per coefficient. The leapfrog computational mode is damped by the
Robert-Asselin filter with Williams' (2009) correction (RAW), which keeps the accuracy of the
physical mode close to that of the unfiltered scheme. Scale-selective implicit hyperdiffusion
:math:`\nabla^{2p}` (``p = 2``: del-4, ``p = 4``: del-8) removes the enstrophy that cascades to the
truncation scale; for vorticity and divergence the :math:`l = 1` rate is subtracted so that
solid-body rotation is not damped (angular momentum is conserved, as in the NCAR CCM).

Mass (the :math:`l = 0` coefficient of :math:`\phi`) is conserved to round-off: no term changes it.

Public API: ``ShallowWaterConfig``, ``ShallowWaterModel``, ``default_time_step``.

References
----------
Williamson, D. L., J. B. Drake, J. J. Hack, R. Jakob, P. N. Swarztrauber (1992): A standard test
set for numerical approximations to the shallow water equations in spherical geometry.
J. Comput. Phys. 102, 211-224.
Hack, J. J., R. Jakob (1992): Description of a global shallow water model based on the spectral
transform method. NCAR Technical Note NCAR/TN-343+STR.
Williams, P. D. (2009): A proposed modification to the Robert-Asselin time filter. Mon. Wea. Rev.
137, 2538-2546.
Bonev, B. et al. (2023): Spherical Fourier neural operators. ICML (torch-harmonics).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from engine.errors import JobError
from engine.models.base import models
from engine.models.global_.spectral import EARTH_OMEGA, EARTH_RADIUS, GRAVITY, SpectralGrid


def default_time_step(truncation: int, output_step_hours: float = 6.0) -> float:
    """Time step (s) for truncation ``T``: about ``1200 s * 42 / T`` and dividing the output step.

    1200 s at T42 keeps the advective Courant number ``U dt T / a`` below 0.5 for jets up to
    120 m s-1 (Hack & Jakob 1992 use 2400 s at T42 for case 2 with a 38 m s-1 jet; the semi-
    implicit treatment removes the gravity-wave limit, so only advection matters).
    """
    target = 1200.0 * 42.0 / truncation
    total = output_step_hours * 3600.0
    n_sub = max(1, math.ceil(total / target - 1e-9))
    return total / n_sub


@dataclass(frozen=True)
class ShallowWaterConfig:
    """Parameters of the shallow-water model.

    Attributes
    ----------
    truncation : int
        Triangular spectral truncation ``T`` (e.g. 21, 42, 63).
    dt : float
        Time step (s); :func:`default_time_step` when 0.
    mean_depth : float
        Reference depth ``H`` (m); ``g H`` is the geopotential about which the gravity-wave terms
        are linearised and, for the equivalent-barotropic model, the mean layer depth.
    diffusion_order : int
        ``p`` of the hyperdiffusion ``nabla^(2p)``: 2 (del-4) or 4 (del-8); 0 switches it off.
    diffusion_efold_hours : float
        e-folding time (h) of the highest retained wavenumber ``l = T``.
    robert : float
        Robert-Asselin filter coefficient ``nu`` (Williams 2009 use 0.2 with ``alpha`` 0.53; STSWM
        uses small values; 0.05 here).
    williams_alpha : float
        RAW parameter ``alpha`` (0.5 to 1; 1 gives the classical Robert-Asselin filter).
    grid : str
        ``"legendre-gauss"`` (default) or ``"equiangular"``.
    radius, omega, gravity : float
        Planet radius (m), rotation rate (s-1), gravity (m s-2).
    """

    truncation: int = 42
    dt: float = 0.0
    mean_depth: float = 8000.0
    diffusion_order: int = 2
    diffusion_efold_hours: float = 12.0
    robert: float = 0.05
    williams_alpha: float = 0.53
    grid: str = "legendre-gauss"
    radius: float = EARTH_RADIUS
    omega: float = EARTH_OMEGA
    gravity: float = GRAVITY

    def __post_init__(self) -> None:
        if self.truncation < 2:
            raise JobError(f"truncation: must be >= 2, got {self.truncation}")
        if self.dt < 0:
            raise JobError(f"dt: must be >= 0 seconds, got {self.dt}")
        if self.mean_depth <= 0:
            raise JobError(f"mean_depth: must be > 0 m, got {self.mean_depth}")
        if self.diffusion_order not in (0, 1, 2, 3, 4):
            raise JobError(f"diffusion_order: expected 0 (off) or 1-4, got {self.diffusion_order}")
        if self.diffusion_efold_hours <= 0:
            raise JobError(f"diffusion_efold_hours: must be > 0, got {self.diffusion_efold_hours}")
        if not 0 <= self.robert < 0.5:
            raise JobError(f"robert: expected 0 <= nu < 0.5, got {self.robert}")
        if not 0.5 <= self.williams_alpha <= 1.0:
            raise JobError(f"williams_alpha: expected 0.5 <= alpha <= 1, got {self.williams_alpha}")

    @property
    def time_step(self) -> float:
        """The time step in seconds (the default for the truncation when ``dt`` is 0)."""
        return self.dt or default_time_step(self.truncation)


@models.register("global/swm")
class ShallowWaterModel(nn.Module):
    """Semi-implicit spectral shallow-water model; states are batched spectral tensors.

    A state is a complex tensor ``(batch, 3, T + 1, T + 1)``: vorticity (s-1), divergence (s-1)
    and geopotential deviation ``Phi - g H`` (m2 s-2). The batch dim holds ensemble members.

    Parameters
    ----------
    config : ShallowWaterConfig
        Truncation, time step, reference depth, diffusion and filter settings.
    dtype : torch.dtype
        Real dtype of the grid computations (float64 by default).

    Examples
    --------
    >>> model = ShallowWaterModel(ShallowWaterConfig(truncation=21))
    >>> state = model.state_from_grid(u, v, phi)          # doctest: +SKIP
    >>> for step, s in model.integrate(state, n_steps=72, save_every=9): ...  # doctest: +SKIP
    """

    # Buffers registered in __init__ (declared so that type checkers see tensors, not modules).
    coriolis: torch.Tensor
    k_diff: torch.Tensor
    forcing: torch.Tensor

    def __init__(self, config: ShallowWaterConfig | None = None, *, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.config = config = config or ShallowWaterConfig()
        self.spec = SpectralGrid(config.truncation, grid=config.grid, radius=config.radius, dtype=dtype)
        self.dt = config.time_step
        self.phibar = config.gravity * config.mean_depth
        g = self.spec
        self.register_buffer("coriolis", (2 * config.omega * g.coriolis_sin).to(dtype))
        # Hyperdiffusion rates (s-1) per total wavenumber l: k_l = [(l(l+1))^p - c] / (tau (T(T+1))^p).
        ell = g.ell
        p = config.diffusion_order
        if p:
            tmax = config.truncation * (config.truncation + 1.0)
            tau = config.diffusion_efold_hours * 3600.0
            base = (ell * (ell + 1)) ** p
            k_phi = base / (tau * tmax**p)
            # Subtract the l = 1 value for vorticity and divergence: solid-body rotation (l = 1
            # vorticity) carries the angular momentum and must not be damped.
            k_vd = torch.clamp(base - 2.0**p, min=0.0) / (tau * (tmax**p - 2.0**p))
        else:
            k_phi = torch.zeros_like(ell)
            k_vd = torch.zeros_like(ell)
        self.register_buffer("k_diff", torch.stack((k_vd, k_vd, k_phi)).to(dtype))  # (3, T+1, 1)
        self.register_buffer("forcing", torch.zeros(3, config.truncation + 1, config.truncation + 1, dtype=_complex(dtype)))

    # ------------------------------------------------------------------ conversions
    def state_from_grid(self, u: torch.Tensor, v: torch.Tensor, phi: torch.Tensor, *, keep_divergence: bool = True) -> torch.Tensor:
        """Spectral state from grid winds (m s-1) and *total* geopotential (m2 s-2), ``(..., lat, lon)``.

        ``keep_divergence=False`` keeps only the rotational wind (used when initialising from
        analysed winds, whose divergence a one-layer model cannot represent consistently).
        """
        vrt, div = self.spec.vrtdiv(u, v)
        if not keep_divergence:
            div = torch.zeros_like(div)
        ph = self.spec.to_spec(phi - self.phibar)
        return torch.stack((vrt, div, ph), dim=-3)

    def to_grid(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        """Grid fields of a state: ``u``, ``v`` (m s-1), ``vrt``, ``div`` (s-1), ``phi`` (total, m2 s-2)."""
        u, v = self.spec.uv(state[..., 0, :, :], state[..., 1, :, :])
        grid = self.spec.to_grid(state)
        return {"u": u, "v": v, "vrt": grid[..., 0, :, :], "div": grid[..., 1, :, :], "phi": grid[..., 2, :, :] + self.phibar}

    # ------------------------------------------------------------------ dynamics
    def explicit_tendency(self, state: torch.Tensor) -> torch.Tensor:
        """Tendencies of the terms treated explicitly (advection, Coriolis, kinetic energy, forcing).

        The linear gravity-wave terms ``-lap(phi)`` and ``-Phibar div`` are left out: the
        semi-implicit step handles them.
        """
        g = self.spec
        vrt, div, ph = state[..., 0, :, :], state[..., 1, :, :], state[..., 2, :, :]
        u, v = g.uv(vrt, div)
        absv = g.to_grid(vrt) + self.coriolis
        phig = g.to_grid(ph)
        flux_div, flux_curl = g.div_curl(absv * u, absv * v)
        phi_div, _ = g.div_curl(phig * u, phig * v)
        ke = g.to_spec(0.5 * (u * u + v * v))
        tend = torch.stack((-flux_div, flux_curl - g.lap * ke, -phi_div), dim=-3)
        return tend + self.forcing

    def full_tendency(self, state: torch.Tensor) -> torch.Tensor:
        """All tendencies including the linear gravity-wave terms and hyperdiffusion."""
        tend = self.explicit_tendency(state)
        lin = torch.stack(
            (torch.zeros_like(state[..., 0, :, :]), -self.spec.lap * state[..., 2, :, :], -self.phibar * state[..., 1, :, :]),
            dim=-3,
        )
        return tend + lin - self.k_diff * state

    def set_forcing(self, steady_state: torch.Tensor) -> None:
        """Add a constant forcing that makes ``steady_state`` (``(3, l, m)``) a steady solution.

        This is the "forced barotropic model" device (e.g. Sardeshmukh & Hoskins 1988): the
        time-mean flow of the real atmosphere is maintained by heating and orography that a
        one-layer model lacks; without the forcing its long waves drift and retrogress.
        """
        self.forcing.zero_()
        tend = self.full_tendency(steady_state.unsqueeze(0))[0]
        self.forcing.copy_(-tend * self.spec.mask)

    def _implicit_step(self, old: torch.Tensor, now: torch.Tensor, tau: float) -> torch.Tensor:
        """``x(n+1)`` from ``x(n-1)`` and ``x(n)`` over an interval ``tau`` (``2 dt``, or ``dt`` to start)."""
        lap, pb, h = self.spec.lap, self.phibar, 0.5 * tau
        n = self.explicit_tendency(now)
        vrt = old[..., 0, :, :] + tau * n[..., 0, :, :]
        a = old[..., 1, :, :] + tau * n[..., 1, :, :] - h * lap * old[..., 2, :, :]
        b = old[..., 2, :, :] + tau * n[..., 2, :, :] - h * pb * old[..., 1, :, :]
        div = (a - h * lap * b) / (1.0 - h * h * lap * pb)
        ph = b - h * pb * div
        new = torch.stack((vrt, div, ph), dim=-3)
        return new / (1.0 + tau * self.k_diff) * self.spec.mask

    def integrate(self, state: torch.Tensor, n_steps: int, *, save_every: int = 1) -> Iterator[tuple[int, torch.Tensor]]:
        """Integrate ``n_steps`` time steps, yielding ``(step, state)`` at step 0 and every ``save_every``.

        Parameters
        ----------
        state : Tensor
            Initial state ``(batch, 3, T + 1, T + 1)`` complex.
        n_steps : int
            Number of steps of :attr:`dt` seconds.
        save_every : int
            Yield every this many steps.

        Yields
        ------
        (int, Tensor)
            Step number and the (filtered where possible) state at that step.
        """
        if n_steps < 0 or save_every < 1:
            raise JobError(f"n_steps must be >= 0 and save_every >= 1, got {n_steps}, {save_every}")
        nu, alpha = self.config.robert, self.config.williams_alpha
        yield 0, state
        if n_steps == 0:
            return
        old = state
        now = self._implicit_step(state, state, self.dt)  # semi-implicit forward start
        for step in range(1, n_steps + 1):
            new = self._implicit_step(old, now, 2 * self.dt) if step < n_steps else None
            if new is not None and nu > 0:
                # Robert-Asselin-Williams filter: displace x(n) and x(n+1) by the curvature term.
                d = 0.5 * nu * (old - 2 * now + new)
                now = now + alpha * d
                new = new - (1 - alpha) * d
            if step % save_every == 0:
                yield step, now
            if new is None:
                break
            old, now = now, new

    # ------------------------------------------------------------------ diagnostics
    def mass(self, state: torch.Tensor) -> torch.Tensor:
        """Global integral of ``Phi / g`` (m3, i.e. volume of the layer), per batch member."""
        phi = self.spec.to_grid(state[..., 2, :, :]) + self.phibar
        return self.spec.integrate(phi) / self.config.gravity

    def energy(self, state: torch.Tensor) -> torch.Tensor:
        r"""Total energy :math:`\int (\Phi |V|^2 / 2 + \Phi^2 / 2) / g \, dA` (m5 s-2 per unit density)."""
        f = self.to_grid(state)
        e = f["phi"] * 0.5 * (f["u"] ** 2 + f["v"] ** 2) + 0.5 * f["phi"] ** 2
        return self.spec.integrate(e) / self.config.gravity

    def enstrophy_pv(self, state: torch.Tensor) -> torch.Tensor:
        r"""Potential enstrophy :math:`\int \Phi q^2 / 2 \, dA`, :math:`q = (\zeta + f)/\Phi` (s-2 m2)."""
        f = self.to_grid(state)
        q = (f["vrt"] + self.coriolis) / f["phi"]
        return self.spec.integrate(0.5 * f["phi"] * q * q)


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64
