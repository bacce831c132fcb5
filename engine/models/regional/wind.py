r"""Mass-consistent adjustment of near-surface winds to fine terrain (Sherman 1978, one-layer form).

A first-guess wind :math:`\mathbf{u}_0` (the coarse wind interpolated to the fine grid) is changed
as little as possible so that the air in a surface layer of depth :math:`h(x, y)` between the
terrain and a lid conserves mass:

.. math::
    \min_{\mathbf{u}} \int |\mathbf{u} - \mathbf{u}_0|^2 \,\mathrm{d}A
    \quad\text{subject to}\quad \nabla\cdot(h\mathbf{u}) = 0 .

With a Lagrange multiplier :math:`\lambda` the solution is :math:`\mathbf{u} = \mathbf{u}_0 +
\tfrac12 h\nabla\lambda`, where :math:`\lambda` solves the elliptic problem

.. math::
    -\nabla\cdot(h^2\nabla\lambda) = 2\,\nabla\cdot(h\mathbf{u}_0), \qquad \lambda = 0 \text{ on open boundaries},

the variational calculus of Sherman's MATHEW model (Sherman 1978: an unweighted least-squares
change of the wind, constant Gauss precision moduli) applied to the vertically integrated layer.
Because the correction scales with :math:`h`, a thin layer over high ground can change its wind
only a little, so mass goes round obstacles rather than being forced over them at high speed. Where the layer thins over high ground the flux :math:`h\mathbf{u}` must still
pass, so the wind speeds up over ridges and through gaps (channelling); where the terrain nearly
reaches the lid the layer is blocked, the flow slows upstream and goes around.

The stability parameter :math:`\alpha` plays the role of Sherman's ratio of horizontal to
vertical adjustment moduli (Ratto et al. 1994, sect. 3): the lid sits
:math:`\alpha` times the domain relief above the highest peak,
:math:`z_\mathrm{lid} = z_\max + \alpha\,(z_\max - \bar z)`, with a minimum layer depth
:math:`h_\mathrm{min}`. Small :math:`\alpha` (stable
stratification, a low dividing streamline) leaves little room above the peaks, so the flow goes
around and along barriers; large :math:`\alpha` (neutral) gives a deep layer in which the terrain
only perturbs the flow (moderate speed-up over the crests, vertical motion taking the rest).

The discretisation is a finite-volume one on an Arakawa C grid (face-normal winds), as in the
staggered-grid mass-consistent codes reviewed by Ratto et al. (1994): the discrete face-flux
divergence of the adjusted field vanishes to the solver tolerance. The elliptic problem is
solved by conjugate gradients preconditioned with one geometric multigrid V-cycle
(:class:`MultigridPreconditioner`), in torch and batched over time steps, so it runs on a GPU
where there is one. The coefficient :math:`h^2` jumps by four orders of magnitude between
valleys and blocked peaks, which is where plain (Jacobi) preconditioning needs thousands of
iterations; the V-cycle keeps the count near a dozen whatever the grid size or stability.

Why not a library: pyamg (algebraic multigrid) is the well-kept choice for such a system on the
CPU, but it works on scipy sparse matrices one right-hand side at a time, with no GPU and no
torch; the operator here is a fixed 5-point stencil on a rectangle, for which geometric
coarsening is simple, exact and batched. pyamg serves as the peer in
``benchmarks/bench_regional_speed.py`` and scipy's sparse direct solver as the reference in the tests.

Public API: ``LayerGeometry``, ``layer_depth``, ``face_divergence``, ``FivePointOperator``,
``MultigridPreconditioner``, ``adjust_winds``, ``MassConsistentWind``.

References
----------
Sherman, C. A. (1978): A mass-consistent model for wind fields over complex terrain.
J. Appl. Meteor. 17, 312-319.
Ratto, C. F., R. Festa, C. Romeo, O. A. Frumento and M. Galluzzi (1994): Mass-consistent models
for wind fields over complex terrain: the state of the art. Environ. Software 9, 247-268.
Sheppard, P. A. (1956): Airflow over mountains. Q. J. R. Meteorol. Soc. 82, 528-529 (the
dividing-streamline argument behind the stable-flow limit).
Wesseling, P. (1992): An Introduction to Multigrid Methods. Wiley, ch. 5 (cell-centred
coarsening) and 7.8 (multigrid as a preconditioner for conjugate gradients).
Braess, D. (1995): Towards algebraic multigrid for elliptic problems of second order.
Computing 55, 379-393 (why piecewise-constant interpolation needs its coarse operator halved).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import CoordError
from engine.models.base import models
from engine.models.regional.grid import EARTH_RADIUS, LatLonGrid, interp_regular

if TYPE_CHECKING:
    import scipy.sparse


def layer_depth(z: np.ndarray, alpha: float, *, min_depth: float = 50.0, min_relief: float = 500.0) -> np.ndarray:
    r"""Depth (m) of the adjusted surface layer, :math:`h = \max(z_\mathrm{lid} - z, h_\mathrm{min})`.

    The lid lies :math:`\alpha` times the domain relief above the highest terrain,
    :math:`z_\mathrm{lid} = z_\max + \alpha \max(z_\max - \bar z, r_\mathrm{min})`, so that
    :math:`\alpha \to 0` closes the layer over the peaks (stable, blocked flow that must go round)
    and large :math:`\alpha` leaves a deep layer that the terrain only perturbs (neutral flow).

    Parameters
    ----------
    z : ndarray
        Terrain height (m), shape ``(ny, nx)``.
    alpha : float
        Stability parameter (> 0), the analogue of Sherman's horizontal-to-vertical adjustment
        ratio: about 0.1-0.3 for stable, 1 for near-neutral, 3+ for strongly mixed flow.
    min_depth : float
        Floor of the layer depth (m), so blocked cells keep a small permeability.
    min_relief : float
        Relief scale (m) used when the domain is flatter than this.

    Returns
    -------
    ndarray
        ``h`` (m), shape ``(ny, nx)``.
    """
    if not (alpha > 0 and math.isfinite(alpha)):
        raise CoordError(f"alpha must be a positive number, got {alpha}")
    z = np.asarray(z, dtype="float64")
    zmax = float(np.max(z))
    lid = zmax + alpha * max(zmax - float(np.mean(z)), min_relief)
    return np.maximum(lid - z, min_depth)


@dataclass(frozen=True)
class LayerGeometry:
    """Metric terms of a regular lat/lon grid for the C-grid operators (all float64 tensors).

    Attributes
    ----------
    dx : Tensor
        Cell width (m) per row, shape ``(ny, 1)``.
    dy : float
        Cell height (m).
    cos_c : Tensor
        cos(latitude) at cell centres, ``(ny, 1)``.
    cos_f : Tensor
        cos(latitude) at the ``ny + 1`` y-faces, ``(ny + 1, 1)``.
    sign : float
        +1 when latitude increases with the row index, -1 when it decreases (north-up grids);
        converts row differences into northward differences.
    """

    dx: torch.Tensor
    dy: float
    cos_c: torch.Tensor
    cos_f: torch.Tensor
    sign: float

    @classmethod
    def of(cls, grid: LatLonGrid, device: torch.device | str = "cpu") -> LayerGeometry:
        lat = np.asarray(grid.lat, dtype="float64")
        step = lat[1] - lat[0]
        lat_f = np.concatenate([[lat[0] - step / 2], 0.5 * (lat[1:] + lat[:-1]), [lat[-1] + step / 2]])
        t = lambda a: torch.as_tensor(a, dtype=torch.float64, device=device)[:, None]  # noqa: E731
        dx = EARTH_RADIUS * math.radians(grid.dlon) * np.cos(np.radians(lat))
        return cls(t(dx), EARTH_RADIUS * math.radians(grid.dlat), t(np.cos(np.radians(lat))),
                   t(np.cos(np.radians(lat_f))), 1.0 if step > 0 else -1.0)


def _faces_x(c: torch.Tensor) -> torch.Tensor:
    """Cell values ``(..., ny, nx)`` → x-face values ``(..., ny, nx+1)`` (edge faces copy the edge cell)."""
    inner = 0.5 * (c[..., 1:] + c[..., :-1])
    return torch.cat([c[..., :1], inner, c[..., -1:]], dim=-1)


def _faces_y(c: torch.Tensor) -> torch.Tensor:
    """Cell values ``(..., ny, nx)`` → y-face values ``(..., ny+1, nx)``."""
    inner = 0.5 * (c[..., 1:, :] + c[..., :-1, :])
    return torch.cat([c[..., :1, :], inner, c[..., -1:, :]], dim=-2)


def face_divergence(fx: torch.Tensor, fy: torch.Tensor, geom: LayerGeometry) -> torch.Tensor:
    r"""Divergence at cell centres of face-normal fluxes on the sphere.

    .. math::
        \nabla\cdot\mathbf{F} = \frac{F^x_{e} - F^x_{w}}{\Delta x}
        + \frac{\cos\varphi_n F^y_n - \cos\varphi_s F^y_s}{\cos\varphi\,\Delta y}

    Parameters
    ----------
    fx : Tensor
        Eastward flux at x-faces, ``(..., ny, nx + 1)`` (e.g. ``h u`` in m2 s-1).
    fy : Tensor
        Northward flux at y-faces, ``(..., ny + 1, nx)``.
    geom : LayerGeometry

    Returns
    -------
    Tensor
        ``(..., ny, nx)``, units of the flux per metre (m s-1 for ``h u``).
    """
    ddx = (fx[..., 1:] - fx[..., :-1]) / geom.dx
    gy = geom.cos_f * fy
    ddy = geom.sign * (gy[..., 1:, :] - gy[..., :-1, :]) / (geom.cos_c * geom.dy)
    return ddx + ddy


def _gradient(lam: torch.Tensor, geom: LayerGeometry) -> tuple[torch.Tensor, torch.Tensor]:
    """Face-normal gradient of a cell field with lambda = 0 beyond the open boundaries."""
    pad_x = torch.nn.functional.pad(lam, (1, 1, 0, 0))
    pad_y = torch.nn.functional.pad(lam, (0, 0, 1, 1))
    # Boundary faces lie half a cell from the ghost value: the distance to the boundary is dx/2.
    gx = pad_x[..., 1:] - pad_x[..., :-1]
    gx = gx / geom.dx
    gx[..., 0] *= 2.0
    gx[..., -1] *= 2.0
    gy = geom.sign * (pad_y[..., 1:, :] - pad_y[..., :-1, :]) / geom.dy
    gy[..., 0, :] *= 2.0
    gy[..., -1, :] *= 2.0
    return gx, gy


@dataclass(frozen=True)
class FivePointOperator:
    r"""A symmetric 5-point operator on a ``(ny, nx)`` grid in transmissibility form.

    .. math::
        (A x)_{ij} = d_{ij} x_{ij} + \sum_{\text{faces } f \text{ of } ij} T_f\,(x_{ij} - x_{f})

    where :math:`x_f` is the neighbour across face :math:`f` and :math:`d_{ij}` collects the
    Dirichlet terms of faces on the open boundary (:math:`x = 0` beyond them). Symmetric positive
    definite when every :math:`T \ge 0` and some :math:`d > 0`.

    Attributes
    ----------
    tx : Tensor
        Transmissibility of the faces between columns ``i`` and ``i + 1``, ``(ny, nx - 1)``.
    ty : Tensor
        Between rows ``j`` and ``j + 1``, ``(ny - 1, nx)``.
    dirichlet : Tensor
        Boundary terms on the diagonal, ``(ny, nx)``.
    """

    tx: torch.Tensor
    ty: torch.Tensor
    dirichlet: torch.Tensor

    @classmethod
    def of_layer(cls, depth: torch.Tensor, geom: LayerGeometry) -> FivePointOperator:
        r"""The operator :math:`-\cos\varphi\,\nabla\cdot(h^2\nabla\,\cdot)` of the adjustment.

        Face coefficients are :math:`h^2` averaged to the faces; a boundary face lies half a cell
        from its cell centre, so its term is twice that of an interior face.
        """
        kx, ky = _faces_x(depth) ** 2, _faces_y(depth) ** 2
        ex = geom.cos_c * kx / geom.dx**2  # every x-face, (ny, nx + 1)
        ey = geom.cos_f * ky / geom.dy**2  # every y-face, (ny + 1, nx)
        d = torch.zeros_like(depth)
        d[:, 0] += 2.0 * ex[:, 0]
        d[:, -1] += 2.0 * ex[:, -1]
        d[0, :] += 2.0 * ey[0, :]
        d[-1, :] += 2.0 * ey[-1, :]
        return cls(ex[:, 1:-1], ey[1:-1, :], d)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.dirichlet.shape)  # type: ignore[return-value]

    @cached_property
    def diag(self) -> torch.Tensor:
        """The diagonal of the operator, ``(ny, nx)``."""
        d = self.dirichlet.clone()
        d[:, :-1] += self.tx
        d[:, 1:] += self.tx
        d[:-1, :] += self.ty
        d[1:, :] += self.ty
        return d

    def neighbours(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\sum_f T_f x_f` for a batch ``(..., ny, nx)``."""
        s = torch.zeros_like(x)
        s[..., :, :-1] += self.tx * x[..., :, 1:]
        s[..., :, 1:] += self.tx * x[..., :, :-1]
        s[..., :-1, :] += self.ty * x[..., 1:, :]
        s[..., 1:, :] += self.ty * x[..., :-1, :]
        return s

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.diag * x - self.neighbours(x)

    def to_scipy(self) -> scipy.sparse.csr_matrix:
        """The operator as a scipy sparse matrix over the cells in row-major order.

        For reference solvers and peers (scipy's direct solver in the tests, pyamg in the benchmark).
        """
        import scipy.sparse

        ny, nx = self.shape
        index = np.arange(ny * nx).reshape(ny, nx)
        tx, ty = -self.tx.cpu().numpy().ravel(), -self.ty.cpu().numpy().ravel()
        rows = [index, index[:, :-1], index[:, 1:], index[:-1], index[1:]]
        cols = [index, index[:, 1:], index[:, :-1], index[1:], index[:-1]]
        values = np.concatenate([self.diag.cpu().numpy().ravel(), tx, tx, ty, ty])
        return scipy.sparse.csr_matrix(
            (values, (np.concatenate([r.ravel() for r in rows]), np.concatenate([c.ravel() for c in cols]))),
            shape=(ny * nx, ny * nx),
        )

    def coarsen(self) -> FivePointOperator:
        """The operator on cells of 2 x 2 fine cells (an odd last row or column makes 1-cell blocks).

        Galerkin product with piecewise-constant interpolation, :math:`P^T A P`: a coarse face
        sums the fine faces that cross it, a coarse cell the boundary terms of its fine cells.
        That product is twice too stiff for a second-order operator with this interpolation
        (Braess 1995), so it is halved: on a uniform grid the result is the same 5-point
        operator rediscretised on the coarse cells.
        """
        py, px = self.shape[0] % 2, self.shape[1] % 2
        d = F.pad(self.dirichlet, (0, px, 0, py))
        d = d.reshape(d.shape[0] // 2, 2, d.shape[1] // 2, 2).sum(dim=(1, 3))
        tx = F.pad(self.tx[:, 1::2], (0, 0, 0, py))  # fine faces between the 2x2 blocks
        tx = tx.reshape(tx.shape[0] // 2, 2, tx.shape[1]).sum(dim=1)
        ty = F.pad(self.ty[1::2, :], (0, px, 0, 0))
        ty = ty.reshape(ty.shape[0], ty.shape[1] // 2, 2).sum(dim=2)
        return FivePointOperator(0.5 * tx, 0.5 * ty, 0.5 * d)


def _restrict(r: torch.Tensor) -> torch.Tensor:
    """Sum of the residual over 2 x 2 blocks (the transpose of :func:`_prolong`)."""
    r = F.pad(r, (0, r.shape[-1] % 2, 0, r.shape[-2] % 2))
    return r.reshape(*r.shape[:-2], r.shape[-2] // 2, 2, r.shape[-1] // 2, 2).sum(dim=(-3, -1))


def _prolong(e: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Piecewise-constant interpolation of a coarse correction onto ``shape``."""
    up = torch.repeat_interleave(torch.repeat_interleave(e, 2, dim=-2), 2, dim=-1)
    return up[..., : shape[0], : shape[1]]


class MultigridPreconditioner:
    r"""One symmetric geometric multigrid V-cycle for a :class:`FivePointOperator`.

    Cell-centred coarsening by 2 x 2 blocks (:meth:`FivePointOperator.coarsen`) down to at most
    ``coarsest`` cells, solved there by a Cholesky factorisation; ``sweeps`` red-black
    Gauss-Seidel sweeps before (red first) and after (black first) each coarse-grid correction.
    The reversed order after the correction makes the cycle a symmetric positive definite map,
    as conjugate gradients require of a preconditioner (Wesseling 1992, sect. 7.8). The levels
    depend on the operator only, so one set serves a whole batch of right-hand sides.

    Parameters
    ----------
    operator : FivePointOperator
    sweeps : int
        Red-black sweeps before and after the coarse correction.
    coarsest : int
        Largest number of cells solved directly.
    """

    def __init__(self, operator: FivePointOperator, *, sweeps: int = 2, coarsest: int = 256) -> None:
        self.levels = [operator]
        while self.levels[-1].dirichlet.numel() > coarsest:
            self.levels.append(self.levels[-1].coarsen())
        self.sweeps = sweeps
        self.red = []
        for level in self.levels:
            jj = torch.arange(level.shape[0], device=level.tx.device)[:, None]
            ii = torch.arange(level.shape[1], device=level.tx.device)[None, :]
            self.red.append((jj + ii) % 2 == 0)
        last = self.levels[-1]
        n = last.dirichlet.numel()
        eye = torch.eye(n, dtype=last.dirichlet.dtype, device=last.dirichlet.device).reshape(n, *last.shape)
        self._cholesky = torch.linalg.cholesky(last(eye).reshape(n, n))

    def _smooth(self, k: int, x: torch.Tensor, b: torch.Tensor, red_first: bool) -> torch.Tensor:
        level, red = self.levels[k], self.red[k]
        for _ in range(self.sweeps):
            for colour in ((red, ~red) if red_first else (~red, red)):
                x = torch.where(colour, (b + level.neighbours(x)) / level.diag, x)
        return x

    def _cycle(self, b: torch.Tensor, k: int) -> torch.Tensor:
        if k == len(self.levels) - 1:
            flat = b.reshape(-1, b.shape[-2] * b.shape[-1]).T
            return torch.cholesky_solve(flat, self._cholesky).T.reshape(b.shape)
        x = self._smooth(k, torch.zeros_like(b), b, red_first=True)
        residual = b - self.levels[k](x)
        x = x + _prolong(self._cycle(_restrict(residual), k + 1), self.levels[k].shape)
        return self._smooth(k, x, b, red_first=False)

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        """Approximate :math:`A^{-1} r` for a batch ``(..., ny, nx)``."""
        return self._cycle(r, 0)


def layer_rhs(u0: torch.Tensor, v0: torch.Tensor, depth: torch.Tensor, geom: LayerGeometry) -> torch.Tensor:
    r"""Right-hand side :math:`2\cos\varphi\,\nabla\cdot(h\mathbf{u}_0)` of the adjustment, ``(..., ny, nx)``."""
    return 2.0 * geom.cos_c * face_divergence(_faces_x(depth) * _faces_x(u0), _faces_y(depth) * _faces_y(v0), geom)


def _pcg(
    op: Callable[[torch.Tensor], torch.Tensor], precondition: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor, rtol: float, max_iter: int,
) -> tuple[torch.Tensor, int]:
    """Preconditioned conjugate gradients for a batch ``(batch, ny, nx)`` of right-hand sides."""
    x = torch.zeros_like(b)
    r = b.clone()
    z = precondition(r)
    p = z.clone()
    rz = (r * z).sum(dim=(-2, -1), keepdim=True)
    bnorm = b.flatten(1).norm(dim=1).clamp_min(1e-300)
    for it in range(max_iter + 1):
        if bool((r.flatten(1).norm(dim=1) / bnorm <= rtol).all()):
            return x, it
        ap = op(p)
        step = rz / (p * ap).sum(dim=(-2, -1), keepdim=True).clamp_min(1e-300)
        x = x + step * p
        r = r - step * ap
        z = precondition(r)
        rz_new = (r * z).sum(dim=(-2, -1), keepdim=True)
        p = z + (rz_new / rz.clamp_min(1e-300)) * p
        rz = rz_new
    raise CoordError(f"mass-consistent solver did not converge in {max_iter} iterations (rtol {rtol})")


def adjust_winds(
    u0: torch.Tensor,
    v0: torch.Tensor,
    depth: torch.Tensor,
    geom: LayerGeometry,
    *,
    rtol: float = 1e-8,
    max_iter: int = 20_000,
    preconditioner: Literal["multigrid", "jacobi"] = "multigrid",
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    r"""Solve the mass-consistent adjustment for a batch of first-guess winds.

    Parameters
    ----------
    u0, v0 : Tensor
        First-guess eastward and northward wind (m s-1), ``(batch, ny, nx)``.
    depth : Tensor
        Layer depth :math:`h` (m), ``(ny, nx)`` (see :func:`layer_depth`).
    geom : LayerGeometry
        Grid metrics.
    rtol : float
        Conjugate-gradient stopping criterion on the relative residual norm.
    max_iter : int
        Iteration cap (a ``CoordError`` is raised if it is reached without convergence).
    preconditioner : {"multigrid", "jacobi"}
        One V-cycle of :class:`MultigridPreconditioner` (default), or the operator's diagonal
        (kept for comparison: about a hundred times more iterations on kilometre-scale terrain).

    Returns
    -------
    (Tensor, Tensor, dict)
        Adjusted ``u``, ``v`` (m s-1) at cell centres (mean of the two faces), and diagnostics:
        ``iterations``, ``divergence_before``, ``divergence_after`` (rms face-flux divergence of
        :math:`h\mathbf{u}`, m s-1), ``reduction`` (their ratio).
    """
    dt = torch.float64
    u0, v0, h = u0.to(dt), v0.to(dt), depth.to(dt)
    hx, hy = _faces_x(h), _faces_y(h)
    ux0, vy0 = _faces_x(u0), _faces_y(v0)
    # Sherman's unweighted functional gives u = u0 + h grad(lambda) / 2, hence the h^2
    # coefficient; area weights make the operator symmetric: A = -cos(phi) div(h^2 grad .).
    op = FivePointOperator.of_layer(h, geom)
    if preconditioner == "multigrid":
        precondition: Callable[[torch.Tensor], torch.Tensor] = MultigridPreconditioner(op)
    elif preconditioner == "jacobi":
        inv_diag = 1.0 / op.diag
        precondition = lambda r: inv_diag * r  # noqa: E731
    else:
        raise CoordError(f"preconditioner={preconditioner!r}: expected 'multigrid' or 'jacobi'")
    b = layer_rhs(u0, v0, h, geom)
    div0 = b / (2.0 * geom.cos_c)  # the layer-flux divergence of the first guess
    lam, iterations = _pcg(op, precondition, b, rtol, max_iter)
    gx, gy = _gradient(lam, geom)
    ux, vy = ux0 + 0.5 * hx * gx, vy0 + 0.5 * hy * gy
    div1 = face_divergence(hx * ux, hy * vy, geom)
    rms0 = float(div0.pow(2).mean().sqrt())
    rms1 = float(div1.pow(2).mean().sqrt())
    info = {
        "iterations": float(iterations),
        "divergence_before": rms0,
        "divergence_after": rms1,
        "reduction": rms1 / rms0 if rms0 > 0 else 0.0,
    }
    u = 0.5 * (ux[..., 1:] + ux[..., :-1])
    v = 0.5 * (vy[..., 1:, :] + vy[..., :-1, :])
    return u, v, info


@models.register("regional/mass_consistent")
class MassConsistentWind(torch.nn.Module):
    """Downscale 10 m winds: bilinear first guess, then mass-consistent adjustment to the terrain.

    Parameters
    ----------
    fine_orography : ndarray
        Terrain height (m) on the fine grid, ``(ny, nx)``.
    alpha : float
        Stability parameter (see :func:`layer_depth`): 0.1-0.3 stable, 1 default, 3+ neutral.
    min_depth, min_relief : float
        See :func:`layer_depth`.
    rtol : float
        Solver tolerance.

    Notes
    -----
    ``coarse`` has a ``variable`` axis of length 2 (``u10``, ``v10``, named in
    ``coarse_coords["variable"]``), so the two components travel together with their names.
    """

    # Buffer registered in __init__ (declared so that type checkers see a tensor, not a module).
    depth: torch.Tensor

    variables = ("u10", "v10")

    def __init__(
        self, fine_orography: np.ndarray, *, alpha: float = 1.0, min_depth: float = 50.0, min_relief: float = 500.0,
        rtol: float = 1e-8,
    ) -> None:
        super().__init__()
        z = np.asarray(fine_orography, dtype="float64")
        if z.ndim != 2 or not np.isfinite(z).all():
            raise CoordError(f"fine orography must be a finite 2-D array (m), got shape {z.shape}")
        self.register_buffer("depth", torch.from_numpy(layer_depth(z, alpha, min_depth=min_depth, min_relief=min_relief)))
        self.alpha, self.rtol = alpha, rtol
        self.last_info: dict[str, float] = {}

    def forward(
        self, coarse: torch.Tensor, coarse_coords: Mapping[str, np.ndarray], fine_coords: Mapping[str, np.ndarray]
    ) -> torch.Tensor:
        """Winds (m s-1) on the fine grid.

        Parameters
        ----------
        coarse : Tensor
            ``(batch, 2, ny_c, nx_c)``: ``u10``, ``v10`` in the order of ``coarse_coords["variable"]``.
        coarse_coords, fine_coords : mapping
            ``lat``/``lon`` 1-D coordinates (degrees); ``coarse_coords["variable"]``.

        Returns
        -------
        Tensor
            ``(batch, 2, ny_f, nx_f)`` in the same variable order; diagnostics in ``last_info``.
        """
        names = [str(v) for v in coarse_coords.get("variable", self.variables)]
        if sorted(names) != sorted(self.variables) or coarse.ndim != 4 or coarse.shape[1] != 2:
            raise CoordError(f"expected coarse (batch, variable=[u10, v10], ny, nx); got {tuple(coarse.shape)}, {names}")
        cg = LatLonGrid(np.asarray(coarse_coords["lat"]), np.asarray(coarse_coords["lon"]))
        fg = LatLonGrid(np.asarray(fine_coords["lat"]), np.asarray(fine_coords["lon"]))
        if fg.shape != tuple(self.depth.shape):
            raise CoordError(f"fine grid {fg.shape} does not match the fine orography {tuple(self.depth.shape)}")
        first = interp_regular(coarse, cg, fg)
        iu, iv = names.index("u10"), names.index("v10")
        u, v, self.last_info = adjust_winds(
            first[:, iu], first[:, iv], self.depth.to(coarse.device), LayerGeometry.of(fg, coarse.device), rtol=self.rtol
        )
        out = torch.stack([u, v] if iu == 0 else [v, u], dim=1)
        return out.to(coarse.dtype)
