r"""Spectral primitive-equation dynamical core on sigma levels (semi-implicit leapfrog), in torch.

Prognostic variables, spectral per full level ``k`` (index 0 = top): relative vorticity
:math:`\zeta_k`, divergence :math:`\delta_k` (s-1), temperature deviation
:math:`T'_k = T_k - T_r` from an isothermal reference :math:`T_r` (K), the log surface pressure
:math:`\pi = \ln p_s` (``p_s`` in Pa) and, optionally, specific humidity :math:`q_k` (kg kg-1).
With :math:`A_k = \delta_k + \mathbf V_k\cdot\nabla\pi` (Hoskins & Simmons 1975; Collins et al.
2004, section 3.1):

.. math::

    \partial_t \zeta &= \mathbf k\cdot\nabla\times\mathbf N, \qquad
    \partial_t \delta = \nabla\cdot\mathbf N - \nabla^2\left(K + \Phi_s + R\,G\,T' + R T_r \pi\right),\\
    \mathbf N &= -(\zeta + f)\,\mathbf k\times\mathbf V - \dot\sigma\,\partial_\sigma\mathbf V
                 - R\,T'\,\nabla\pi + \mathbf F, \\
    \partial_t T' &= -\nabla\cdot(\mathbf V T') + T'\delta - \dot\sigma\,\partial_\sigma T'
                     + \kappa T\,\omega/p + Q, \qquad
    \partial_t \pi = -\textstyle\sum_k A_k\,\Delta\sigma_k,

with the Simmons & Burridge (1981) vertical discretisation in sigma coordinates: the hydrostatic
matrix ``G`` of :func:`~engine.models.global_.primitive.vertical.hydrostatic_matrix`
(``Phi - Phi_s = R G T``), :math:`\dot\sigma_{k+1/2} = -\sum_{j\le k} A_j\Delta\sigma_j
- \sigma_{k+1/2}\partial_t\pi`, the vertical advection
:math:`(\dot\sigma\partial_\sigma X)_k = [\dot\sigma_{k+1/2}(X_{k+1}-X_k) +
\dot\sigma_{k-1/2}(X_k-X_{k-1})] / (2\Delta\sigma_k)` and
:math:`(\omega/p)_k = \mathbf V_k\cdot\nabla\pi - (C A)_k`, where
``C = diag(1/dsigma) G^T diag(dsigma)`` (``C[k, k] = alpha_k``,
``C[k, j] = ln(sigma_{k+1/2}/sigma_{k-1/2}) dsigma_j / dsigma_k`` for ``j < k``): the energy-
conserving pair of SB81 (their eqs. 3.12-3.18), the one CAM3's Eulerian core and the ECMWF IFS use.

Time stepping: leapfrog, with the linear gravity-wave terms (``-lap(R G T' + R T_r pi)``,
``-kappa T_r C delta`` and ``-dsigma . delta``) averaged over steps ``n - 1`` and ``n + 1``
(Hoskins & Simmons 1975, section 4; Collins et al. 2004, eqs. 3.136-3.145). Each total
wavenumber ``l`` decouples into one ``nlev x nlev`` system for the time-averaged divergence,
whose inverse is computed once per ``l`` (:attr:`PrimitiveCore.si_inverse`). Hyperdiffusion
``nabla^(2p)`` of vorticity, divergence, temperature and humidity is implicit, with the ``l = 1``
rate subtracted for vorticity and divergence (no damping of solid rotation, as in CAM3
section 3.1.13); the leapfrog computational mode is damped by the Robert-Asselin filter with
Williams' (2009) modification (RAW). Dissipative physics (Held-Suarez relaxation, large-scale
condensation) enters as a tendency computed from the step ``n - 1`` state (the lagged, stable
evaluation of damping terms in a leapfrog scheme; Rayleigh friction, a function of sigma alone,
is implicit in spectral space together with the diffusion).

Mass: with ``ln ps`` prognostic the spectral scheme conserves the ``l = 0`` coefficient of
``ln ps``, not the integral of ``ps``; a global mass fixer (Collins et al. 2004, section 3.1.19)
rescales ``ps`` after each step so that the global mass equals the initial one to round-off
(``mass_fixer=False`` switches it off).

All levels are transformed at once (one batched scalar and one batched vector transform each
way per step); there are no Python loops over levels or wavenumbers in the step. The code runs
on whatever device its tensors are on.

Public API: ``PrimitiveConfig``, ``PrimitiveCore``.

References
----------
Hoskins, B. J. and A. J. Simmons (1975): A multi-layer spectral model and the semi-implicit
method. Q. J. R. Meteorol. Soc. 101, 637-655.
Simmons, A. J. and D. M. Burridge (1981): An energy and angular-momentum conserving vertical
finite-difference scheme and hybrid vertical coordinates. Mon. Wea. Rev. 109, 758-766.
Collins, W. D. et al. (2004): Description of the NCAR Community Atmosphere Model (CAM 3.0).
NCAR/TN-464+STR, section 3.1 (Eulerian dynamical core).
Williams, P. D. (2009): A proposed modification to the Robert-Asselin time filter. Mon. Wea. Rev.
137, 2538-2546.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from engine.errors import CoordError, JobError
from engine.models.global_.primitive.physics import Physics
from engine.models.global_.primitive.transforms import BatchedTransforms
from engine.models.global_.primitive.vertical import KAPPA, R_DRY, SigmaLevels, hydrostatic_matrix
from engine.models.global_.shallow_water import default_time_step
from engine.models.global_.spectral import EARTH_OMEGA, SpectralGrid

__all__ = ["PrimitiveConfig", "PrimitiveCore"]


@dataclass(frozen=True)
class PrimitiveConfig:
    """Parameters of the primitive-equation core.

    Attributes
    ----------
    truncation : int
        Triangular truncation ``T`` (the quadratic Gaussian grid of ``SpectralGrid``).
    dt : float
        Time step (s); ``1200 s * 42 / T`` rounded to divide 6 h when 0 (the CAM3 Eulerian
        choice: 1200 s at T42, 600 s at T85).
    t_ref : float
        Isothermal reference temperature of the semi-implicit scheme (K); 300 K as in Hoskins &
        Simmons (1975), warmer than any column so the scheme stays stable (Simmons et al. 1978).
    diffusion_order : int
        ``p`` of ``nabla^(2p)``: 2 (del-4, CAM3 and JW06) or 3 (del-6); 0 switches it off.
    diffusion_efold_hours : float
        e-folding time at ``l = T`` (h). 8 h is the JW06 T85 setting (K4 = 1e15 m4 s-1 gives
        1 / (K4 (85 86 / a^2)^2) = 8.5 h).
    robert, williams_alpha : float
        RAW filter coefficient ``nu`` and Williams' ``alpha`` (``alpha = 1``: classical
        Robert-Asselin). CAM3 uses ``nu = 0.06`` with ``alpha = 1``.
    mass_fixer : bool
        Rescale ``ps`` after every step to keep the global mass (Collins et al. 2004, 3.1.19).
    omega : float
        Rotation rate (s-1).
    """

    truncation: int = 42
    dt: float = 0.0
    t_ref: float = 300.0
    diffusion_order: int = 2
    diffusion_efold_hours: float = 8.0
    robert: float = 0.06
    williams_alpha: float = 0.53
    mass_fixer: bool = True
    omega: float = EARTH_OMEGA

    def __post_init__(self) -> None:
        if self.truncation < 2:
            raise JobError(f"truncation: must be >= 2, got {self.truncation}")
        if self.dt < 0:
            raise JobError(f"dt: must be >= 0 seconds, got {self.dt}")
        if self.t_ref <= 0:
            raise JobError(f"t_ref: must be > 0 K, got {self.t_ref}")
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
        """The time step in seconds (the truncation's default when ``dt`` is 0)."""
        return self.dt or default_time_step(self.truncation)


class PrimitiveCore(nn.Module):
    """Semi-implicit spectral primitive-equation core; states are stacked spectral tensors.

    A state is a complex tensor ``(..., F, T + 1, T + 1)`` with ``F = 3 nlev + 1`` (``+ nlev``
    with humidity): vorticity, divergence, ``T - t_ref`` per level, then ``ln ps``, then ``q``.
    Leading dims hold ensemble members.

    Parameters
    ----------
    config : PrimitiveConfig
    levels : SigmaLevels
        Vertical grid (default :meth:`SigmaLevels.default`).
    phis : Tensor, optional
        Surface geopotential (m2 s-2, ``(nlat, nlon)`` on the model grid); 0 when None.
    humidity : bool
        Carry specific humidity.
    physics : Physics, optional
        Forcing and parameterisations (:mod:`~engine.models.global_.primitive.physics`).
    dtype : torch.dtype
        Real dtype (float64 by default; float32 works for forecasts).
    """

    si_inverse: torch.Tensor
    si_inverse_start: torch.Tensor
    h_mat: torch.Tensor
    g_mat: torch.Tensor
    c_mat: torch.Tensor
    dsigma: torch.Tensor
    sigma_half: torch.Tensor
    coriolis: torch.Tensor
    k_diff: torch.Tensor
    phis_grid: torch.Tensor
    lap_phis: torch.Tensor

    def __init__(
        self,
        config: PrimitiveConfig | None = None,
        levels: SigmaLevels | None = None,
        *,
        phis: torch.Tensor | None = None,
        humidity: bool = False,
        physics: Physics | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.config = config = config or PrimitiveConfig()
        self.levels = levels = levels or SigmaLevels.default()
        self.grid = g = SpectralGrid(config.truncation, dtype=dtype)
        self.tr = BatchedTransforms(g)
        self.humidity, self.physics, self.dtype = humidity, physics, dtype
        self.dt = config.time_step
        n = self.nlev = levels.nlev
        self.nfields = 4 * n + 1 if humidity else 3 * n + 1
        gm = hydrostatic_matrix(levels)
        dsig = levels.tensor("dsigma")
        cm = (gm.T * dsig[None, :]) / dsig[:, None]  # C = diag(1/dsigma) G^T diag(dsigma)
        hm = KAPPA * config.t_ref * cm
        self.register_buffer("g_mat", gm.to(dtype))
        self.register_buffer("c_mat", cm.to(dtype))
        self.register_buffer("h_mat", hm.to(dtype))
        self.register_buffer("dsigma", dsig.to(dtype))
        self.register_buffer("sigma_half", levels.tensor("half").to(dtype))
        self.register_buffer("si_inverse", self._si_matrices(self.dt, gm, hm, dsig).to(dtype))
        self.register_buffer("si_inverse_start", self._si_matrices(0.5 * self.dt, gm, hm, dsig).to(dtype))
        self.register_buffer("coriolis", (2 * config.omega * g.coriolis_sin).to(dtype))
        ell = g.ell.to(torch.float64)
        p = config.diffusion_order
        if p:
            tmax = config.truncation * (config.truncation + 1.0)
            tau = config.diffusion_efold_hours * 3600.0
            base = (ell * (ell + 1)) ** p
            k_t = base / (tau * tmax**p)
            k_vd = torch.clamp(base - 2.0**p, min=0.0) / (tau * (tmax**p - 2.0**p))
        else:
            k_t = k_vd = torch.zeros_like(ell)
        zeros = torch.zeros_like(ell)
        rates = [k_vd] * (2 * n) + [k_t] * n + [zeros] + ([k_t] * n if humidity else [])
        k_diff = torch.stack(rates)  # (F, T+1, 1)
        if physics is not None and physics.friction is not None:
            kv = physics.friction.to(torch.float64).reshape(n, 1, 1)
            k_diff[: 2 * n] = k_diff[: 2 * n] + torch.cat((kv, kv))
        self.register_buffer("k_diff", k_diff.to(dtype))
        phis = torch.zeros(g.nlat, g.nlon, dtype=dtype) if phis is None else phis.to(dtype)
        if tuple(phis.shape) != (g.nlat, g.nlon):
            raise CoordError(
                f"phis: expected ({g.nlat}, {g.nlon}) on the T{config.truncation} grid, got {tuple(phis.shape)}"
            )
        self.register_buffer("phis_grid", phis)
        self.register_buffer("lap_phis", g.lap * g.to_spec(phis))

    def _si_matrices(self, h: float, gm: torch.Tensor, hm: torch.Tensor, dsig: torch.Tensor) -> torch.Tensor:
        """``(I - h^2 lap_l R (G H + T_r 1 dsigma^T))^-1`` per ``l``, ``(T+1, nlev, nlev)``, float64.

        The implicit system for the divergence averaged over ``n +- 1`` (half-interval ``h``).
        """
        n = gm.shape[0]
        lap = self.grid.lap.to(torch.float64).reshape(-1, 1, 1)
        b = gm @ hm + self.config.t_ref * torch.ones(n, 1, dtype=torch.float64) * dsig[None, :]
        mats = torch.eye(n, dtype=torch.float64) - h * h * lap * R_DRY * b
        return torch.linalg.inv(mats)

    # ------------------------------------------------------------------ slices
    def _split(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        n = self.nlev
        vrt, div, tp, lnps = x[..., :n, :, :], x[..., n : 2 * n, :, :], x[..., 2 * n : 3 * n, :, :], x[..., 3 * n, :, :]
        q = x[..., 3 * n + 1 :, :, :] if self.humidity else None
        return vrt, div, tp, lnps, q

    # ------------------------------------------------------------------ conversions
    def state_from_grid(
        self, u: torch.Tensor, v: torch.Tensor, t: torch.Tensor, ps: torch.Tensor, q: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Spectral state from grid fields: winds (m s-1), ``t`` (K), ``q`` (kg kg-1) ``(..., nlev, lat, lon)``, ``ps`` (Pa).

        Raises
        ------
        CoordError
            If a field has the wrong shape, ``ps`` is not positive, or humidity is given to a
            dry core (or missing for a moist one).
        """
        g, n = self.grid, self.nlev
        want = (n, g.nlat, g.nlon)
        for name, f in (("u", u), ("v", v), ("t", t)) + ((("q", q),) if q is not None else ()):
            if tuple(f.shape[-3:]) != want:
                raise CoordError(f"{name}: expected (..., {n}, {g.nlat}, {g.nlon}), got {tuple(f.shape)}")
        if tuple(ps.shape[-2:]) != want[1:] or ps.shape[:-2] != t.shape[:-3]:
            raise CoordError(f"ps: expected {tuple(t.shape[:-3]) + want[1:]}, got {tuple(ps.shape)}")
        if not bool(torch.all(ps > 0)):
            raise CoordError("ps: surface pressure must be > 0 Pa everywhere")
        if (q is not None) != self.humidity:
            raise CoordError("q: the core was built " + ("with" if self.humidity else "without") + " humidity")
        vrt, div = g.vrtdiv(u.to(self.dtype), v.to(self.dtype))
        scal = [t.to(self.dtype) - self.config.t_ref, torch.log(ps.to(self.dtype)).unsqueeze(-3)]
        if q is not None:
            scal.append(q.to(self.dtype))
        return torch.cat((vrt, div, g.to_spec(torch.cat(scal, dim=-3))), dim=-3)

    def to_grid(self, state: torch.Tensor) -> dict[str, torch.Tensor]:
        """Grid fields of a state: ``u``, ``v`` (m s-1), ``vrt``, ``div`` (s-1), ``t`` (K), ``ps`` (Pa), ``q``."""
        g, n = self.grid, self.nlev
        vrt, div, _, _, _ = self._split(state)
        u, v = g.uv(vrt, div)
        grid = g.to_grid(state)
        out = {
            "u": u,
            "v": v,
            "vrt": grid[..., :n, :, :],
            "div": grid[..., n : 2 * n, :, :],
            "t": grid[..., 2 * n : 3 * n, :, :] + self.config.t_ref,
            "ps": torch.exp(grid[..., 3 * n, :, :]),
        }
        if self.humidity:
            out["q"] = grid[..., 3 * n + 1 :, :, :]
        return out

    # ------------------------------------------------------------------ dynamics
    def _vertical_advection(self, sdot: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """SB81 ``(sigmadot d/dsigma X)_k`` from interior half-level ``sdot (..., nlev - 1, lat, lon)``."""
        flux = sdot * (x[..., 1:, :, :] - x[..., :-1, :, :])  # at k + 1/2, k = 0..nlev-2
        zero = torch.zeros_like(flux[..., :1, :, :])
        return (torch.cat((flux, zero), dim=-3) + torch.cat((zero, flux), dim=-3)) / (2 * self.dsigma[:, None, None])

    def explicit_tendency(
        self, now: torch.Tensor, old: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tendencies of the explicit terms at ``now`` (physics from ``old`` when given).

        The linear gravity-wave terms of the semi-implicit scheme are left out. Returns the
        stacked spectral tendency and the precipitation rate (mm h-1, grid) when the physics
        makes one, else None.
        """
        g, n, tr = self.grid, self.nlev, self.config.t_ref
        vrt, div, tp, lnps, q = self._split(now)
        zero = torch.zeros_like(lnps).unsqueeze(-3)
        lead = now.shape[:-3]
        # inverse transforms: all scalars at once, all vectors at once
        scal_spec = [vrt, div, tp] + ([q] if q is not None else [])
        phys_old = self.physics is not None and self.physics.needs_grid and old is not None
        if phys_old:
            assert old is not None
            _, _, tp_o, lnps_o, q_o = self._split(old)
            scal_spec += [tp_o, lnps_o.unsqueeze(-3)] + ([q_o] if q_o is not None else [])
        scal = self.tr.to_grid(torch.cat(scal_spec, dim=-3))
        ug, vg = self.tr.uv(torch.cat((vrt, zero), dim=-3), torch.cat((div, g.lap * lnps.unsqueeze(-3)), dim=-3))
        u, v, px, py = ug[..., :n, :, :], vg[..., :n, :, :], ug[..., n : n + 1, :, :], vg[..., n : n + 1, :, :]
        zeta, delta, tpg = scal[..., :n, :, :], scal[..., n : 2 * n, :, :], scal[..., 2 * n : 3 * n, :, :]
        qg = scal[..., 3 * n : 4 * n, :, :] if q is not None else None
        # vertical velocity (Simmons & Burridge 1981)
        vgp = u * px + v * py
        a_dsig = (delta + vgp) * self.dsigma[:, None, None]
        cum = torch.cumsum(a_dsig, dim=-3)
        total = cum[..., -1:, :, :]
        sdot = -cum[..., :-1, :, :] + self.sigma_half[1:-1, None, None] * total
        omega_p = vgp - torch.einsum("kj,...jyx->...kyx", self.c_mat, delta + vgp)
        absv = zeta + self.coriolis
        nu = absv * v - self._vertical_advection(sdot, u) - R_DRY * tpg * px
        nv = -absv * u - self._vertical_advection(sdot, v) - R_DRY * tpg * py
        heat = (
            tpg * delta
            - self._vertical_advection(sdot, tpg)
            + KAPPA * (tpg + tr) * omega_p
            + KAPPA * tr * torch.einsum("kj,...jyx->...kyx", self.c_mat, delta)
        )
        scal_out = [0.5 * (u * u + v * v), heat, -torch.sum(vgp * self.dsigma[:, None, None], dim=-3, keepdim=True)]
        vec_x, vec_y = [nu, u * tpg], [nv, v * tpg]
        if qg is not None:
            scal_out.append(qg * delta - self._vertical_advection(sdot, qg))
            vec_x.append(u * qg)
            vec_y.append(v * qg)
        precip = None
        if phys_old:
            assert self.physics is not None
            base = 3 * n + (n if qg is not None else 0)
            t_o = scal[..., base : base + n, :, :] + tr
            ps_o = torch.exp(scal[..., base + n, :, :])
            q_o_g = scal[..., base + n + 1 :, :, :] if qg is not None else None
            dt_phys, dq_phys, precip = self.physics.tendencies(t_o, ps_o, q_o_g)
            scal_out[1] = scal_out[1] + dt_phys
            if qg is not None and dq_phys is not None:
                scal_out[3] = scal_out[3] + dq_phys
        sspec = self.tr.to_spec(torch.cat(scal_out, dim=-3))
        dv, cv = self.tr.div_curl(torch.cat(vec_x, dim=-3), torch.cat(vec_y, dim=-3))
        tend = [cv[..., :n, :, :], dv[..., :n, :, :] - g.lap * sspec[..., :n, :, :] - self.lap_phis]
        tend += [sspec[..., n : 2 * n, :, :] - dv[..., n : 2 * n, :, :], sspec[..., 2 * n : 2 * n + 1, :, :]]
        if qg is not None:
            tend.append(sspec[..., 2 * n + 1 :, :, :] - dv[..., 2 * n :, :, :])
        out = torch.cat(tend, dim=-3) * g.mask
        assert out.shape[:-3] == lead
        return out, precip

    def _implicit_step(
        self, old: torch.Tensor, now: torch.Tensor, tau: float
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x(n+1)`` from ``x(n-1)`` and ``x(n)`` over ``tau`` (``2 dt``, or ``dt`` to start)."""
        g, h = self.grid, 0.5 * tau
        inv = self.si_inverse if tau > 1.5 * self.dt else self.si_inverse_start
        gmat, hmat, dsig = self.g_mat.to(old.dtype), self.h_mat.to(old.dtype), self.dsigma.to(old.dtype)
        inv = inv.to(old.dtype)
        tend, precip = self.explicit_tendency(now, old)
        vrt_o, div_o, tp_o, lnps_o, q_o = self._split(old)
        n_vrt, n_div, n_t, n_pi, n_q = self._split(tend)
        t_avg = tp_o + h * n_t  # T_avg = this - h H dbar
        pi_avg = lnps_o + h * n_pi
        rhs = (
            div_o
            + h * n_div
            - h
            * g.lap
            * R_DRY
            * (torch.einsum("kj,...jlm->...klm", gmat, t_avg) + self.config.t_ref * pi_avg.unsqueeze(-3))
        )
        dbar = torch.einsum("lkj,...jlm->...klm", inv, rhs)
        hd = torch.einsum("kj,...jlm->...klm", hmat, dbar)
        parts = [
            vrt_o + tau * n_vrt,
            2 * dbar - div_o,
            tp_o + tau * (n_t - hd),
            (lnps_o + tau * (n_pi - torch.einsum("j,...jlm->...lm", dsig, dbar))).unsqueeze(-3),
        ]
        if q_o is not None and n_q is not None:
            parts.append(q_o + tau * n_q)
        new = torch.cat(parts, dim=-3) / (1.0 + tau * self.k_diff) * g.mask
        return new, precip

    def fix_mass(self, state: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:
        """Rescale ``ps`` of ``state`` so that its global integral is ``mass`` (Pa m2, per member).

        Adds ``ln(mass / M)`` to the ``l = 0`` coefficient of ``ln ps`` (orthonormal harmonics:
        ``Y_00 = 1 / sqrt(4 pi)`` times the torch-harmonics normalisation of the grid mean).
        """
        current = self.mass(state)
        shift = torch.log(mass / current)
        y00 = self.grid.to_spec(torch.ones(self.grid.nlat, self.grid.nlon, dtype=self.dtype, device=state.device))[0, 0]
        out = state.clone()
        out[..., 3 * self.nlev, 0, 0] = out[..., 3 * self.nlev, 0, 0] + shift * y00
        return out

    def mass(self, state: torch.Tensor) -> torch.Tensor:
        """Global integral of ``ps`` (Pa m2; divide by g for kg), per leading index."""
        return self.grid.integrate(torch.exp(self.tr.to_grid(state[..., 3 * self.nlev, :, :])))

    def integrate(
        self,
        state: torch.Tensor,
        n_steps: int,
        *,
        save_every: int = 1,
        history: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Integrate ``n_steps`` steps of :attr:`dt`, yielding ``(step, state)`` at 0 and every ``save_every``.

        Parameters
        ----------
        state : Tensor
            Initial spectral state ``(..., F, T + 1, T + 1)``.
        n_steps, save_every : int
        history : (Tensor, Tensor), optional
            ``(previous, current)`` leapfrog pair of an earlier :meth:`integrate` (see
            :attr:`last_pair`) to continue without a new forward start; ``state`` is then ignored.

        Yields
        ------
        (int, Tensor)
            Step number and the filtered state. :attr:`last_precip` holds the latest
            precipitation rate (mm h-1) when the physics has condensation; :attr:`last_pair` the
            leapfrog pair after the last step.
        """
        if n_steps < 0 or save_every < 1:
            raise JobError(f"n_steps must be >= 0 and save_every >= 1, got {n_steps}, {save_every}")
        nu, alpha, dt = self.config.robert, self.config.williams_alpha, self.dt
        mass_ref = history[1] if history is not None else state
        mass0 = self.mass(mass_ref) if self.config.mass_fixer else None
        self.last_precip: torch.Tensor | None = None
        if history is not None:
            old, now = history
            step = 0
            yield 0, now
        else:
            yield 0, state
            if n_steps == 0:
                self.last_pair = (state, state)
                return
            old = state
            now, self.last_precip = self._implicit_step(state, state, dt)  # semi-implicit forward start
            if mass0 is not None:
                now = self.fix_mass(now, mass0)
            step = 1
            if save_every == 1:
                yield 1, now
        while step < n_steps:  # leapfrog; (old, now) = (x(step - 1), x(step))
            new, self.last_precip = self._implicit_step(old, now, 2 * dt)
            if nu > 0:
                d = 0.5 * nu * (old - 2 * now + new)
                now = now + alpha * d
                new = new - (1 - alpha) * d
            if mass0 is not None:
                new = self.fix_mass(new, mass0)
            old, now = now, new
            step += 1
            if step % save_every == 0:
                yield step, now
        self.last_pair = (old, now)
