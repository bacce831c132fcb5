r"""Terrain-aware temperature downscaling with a locally estimated lapse rate.

The coarse field is reduced to a common reference height with a lapse rate estimated *from the
coarse field itself*, interpolated to the fine grid, and brought back up to the fine terrain:

.. math::
    T_f = \mathcal{I}\left[T_c - \Gamma z_c\right] + \mathcal{I}[\Gamma]\, z_f

where :math:`\mathcal{I}` is bilinear interpolation from the coarse to the fine grid,
:math:`z_c` the coarse model's orography (the DEM area-averaged onto the coarse cells when not
given) and :math:`z_f` the fine terrain. :math:`\Gamma` (K m-1) comes from a Gaussian-weighted
local regression in a moving neighbourhood of coarse cells,

.. math::
    T_c(x, y) \approx a + b\,\Delta x + c\,\Delta y + \Gamma z_c(x, y),

whose planar terms absorb the synoptic horizontal gradient so that it is not mistaken for a
vertical one. A ridge prior pulls :math:`\Gamma` towards the standard-atmosphere value
(-6.5 K km-1) where the neighbourhood has little relief (sea, plains), where the regression would
be noise; the result is clipped to a physical range. In valley inversions (cold-air pools) the
regression finds :math:`\Gamma > 0`, so valleys come out colder and slopes warmer than the coarse
cell, instead of the spurious valley warming a fixed -6.5 K km-1 would give.

This "reduce-interpolate-restore" scheme with a data-derived lapse rate follows e.g. Dodson &
Marks (1997) and the MicroMet model (Liston & Elder 2006), with the lapse rate estimated per case
as advocated for inversions by Sheridan, Smith & Holmes (2010).

Public API: ``local_lapse_rate``, ``LapseRateDownscaler``.

References
----------
Dodson, R. and D. Marks (1997): Daily air temperature interpolated at high spatial resolution
over a large mountainous region. Climate Research 8, 1-20.
Liston, G. E. and K. Elder (2006): A meteorological distribution system for high-resolution
terrestrial modeling (MicroMet). J. Hydrometeor. 7, 217-234.
Sheridan, P., S. Smith, G. Brown and S. Vosper (2010): A simple height-based correction for
temperature downscaling in complex terrain. Meteorol. Appl. 17, 329-339.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr

from engine.errors import CoordError
from engine.models.base import models
from engine.models.regional.grid import LatLonGrid, dem_to_grid, interp_regular

#: Standard-atmosphere lapse rate (K m-1): the prior where the coarse field cannot tell.
STANDARD_LAPSE = -0.0065
#: Default clipping range of the estimated lapse rate (K m-1): from slightly steeper than the dry
#: adiabat (superadiabatic surface layers over sunny slopes) to strong surface inversions.
LAPSE_BOUNDS = (-0.0100, 0.0150)


def local_lapse_rate(
    t: torch.Tensor,
    z: torch.Tensor,
    *,
    radius: int = 2,
    prior: float = STANDARD_LAPSE,
    prior_relief: float = 30.0,
    bounds: tuple[float, float] = LAPSE_BOUNDS,
) -> torch.Tensor:
    r"""Lapse rate of a coarse temperature field by moving-window regression on orography.

    For each coarse cell, weighted least squares over the ``(2r+1) x (2r+1)`` neighbourhood with
    Gaussian weights (:math:`\sigma = r` cells) fits :math:`T = a + b\Delta x + c\Delta y + \Gamma z`,
    minimising

    .. math::
        \sum_k w_k (T_k - a - b\Delta x_k - c\Delta y_k - \Gamma z_k)^2
        + \Big(\sum_k w_k\Big) s_0^2 (\Gamma - \Gamma_0)^2,

    where the penalty acts like an extra relief variance :math:`s_0^2` at the prior lapse rate
    :math:`\Gamma_0`: with neighbourhood relief well above :math:`s_0` the data decide, over flat
    ground the prior does.

    Parameters
    ----------
    t : Tensor
        Temperature (K), shape ``(batch, ny, nx)`` on the coarse grid.
    z : Tensor
        Coarse orography (m), shape ``(ny, nx)``.
    radius : int
        Neighbourhood half-width in coarse cells (>= 1).
    prior : float
        Prior lapse rate :math:`\Gamma_0` (K m-1).
    prior_relief : float
        :math:`s_0` (m); 0 disables the prior (ordinary least squares).
    bounds : (float, float)
        Clip range of :math:`\Gamma` (K m-1).

    Returns
    -------
    Tensor
        :math:`\Gamma` (K m-1), shape ``(batch, ny, nx)``, dtype of ``t``.
    """
    if radius < 1:
        raise CoordError(f"lapse-rate radius must be at least 1 coarse cell, got {radius}")
    if t.ndim != 3 or z.shape != t.shape[-2:]:
        raise CoordError(f"expected t (batch, ny, nx) and z (ny, nx); got {tuple(t.shape)} and {tuple(z.shape)}")
    dev = t.device
    dt = torch.float64  # the 4x4 normal equations are solved in double precision
    k = 2 * radius + 1
    oy, ox = torch.meshgrid(
        torch.arange(-radius, radius + 1, device=dev, dtype=dt),
        torch.arange(-radius, radius + 1, device=dev, dtype=dt),
        indexing="ij",
    )
    w = torch.exp(-(ox**2 + oy**2) / (2.0 * radius**2)).reshape(-1, 1)  # (K, 1)
    ny, nx = z.shape

    def windows(f: torch.Tensor) -> torch.Tensor:  # (C, ny, nx) -> (C, K, L), zero-padded
        return F.unfold(f[:, None], kernel_size=k, padding=radius)

    zk = z.to(dt) / 1000.0  # km, for conditioning
    mask = windows(torch.ones(1, ny, nx, device=dev, dtype=dt))[0]  # (K, L): 1 where inside the grid
    zw = windows(zk[None])[0]  # (K, L)
    wm = w * mask  # (K, L)
    basis = torch.stack([torch.ones_like(zw), ox.reshape(-1, 1).expand_as(zw), oy.reshape(-1, 1).expand_as(zw), zw])
    # Normal matrix per cell: A_l = sum_k wm_kl phi_k phi_k^T  -> (L, 4, 4)
    a = torch.einsum("ikl,jkl,kl->lij", basis, basis, wm)
    rhs_t = windows(t.to(dt))  # (B, K, L)
    rhs = torch.einsum("ikl,bkl,kl->bli", basis, rhs_t, wm)  # (B, L, 4)
    if prior_relief > 0:
        lam = wm.sum(0) * (prior_relief / 1000.0) ** 2  # (L,)
        a[:, 3, 3] += lam
        rhs[..., 3] += lam * (prior * 1000.0)
    # A tiny ridge on every coefficient keeps fully flat, one-point windows solvable.
    a = a + 1e-12 * torch.eye(4, device=dev, dtype=dt)
    coef = torch.linalg.solve(a[None], rhs[..., None])[..., 0]  # (B, L, 4)
    gamma = (coef[..., 3] / 1000.0).clamp(bounds[0], bounds[1])
    return gamma.reshape(t.shape[0], ny, nx).to(t.dtype)


@models.register("regional/lapse_rate")
class LapseRateDownscaler(torch.nn.Module):
    """Downscale near-surface temperature onto fine terrain with a locally estimated lapse rate.

    Parameters
    ----------
    fine_orography : ndarray
        Terrain height (m) on the fine grid, shape ``(ny_f, nx_f)``.
    coarse_orography : ndarray, optional
        The coarse model's orography (m), shape ``(ny_c, nx_c)``. When omitted it is the fine
        terrain area-averaged onto the coarse cells at the first call.
    radius : int
        Neighbourhood half-width (coarse cells) of the lapse-rate regression.
    prior, prior_relief, bounds
        See :func:`local_lapse_rate`.
    fixed_lapse : float, optional
        Use this constant lapse rate (K m-1) instead of the local estimate (the classic
        -6.5 K km-1 correction, kept for comparison).

    Notes
    -----
    Satisfies :class:`engine.models.base.Downscaler`: ``coarse_coords`` and ``fine_coords`` map
    ``"lat"``/``"lon"`` to 1-D coordinate arrays (degrees).
    """

    # Buffers registered in __init__ (declared so that type checkers see tensors, not modules).
    z_fine: torch.Tensor
    z_coarse: torch.Tensor | None

    def __init__(
        self,
        fine_orography: np.ndarray,
        coarse_orography: np.ndarray | None = None,
        *,
        radius: int = 2,
        prior: float = STANDARD_LAPSE,
        prior_relief: float = 30.0,
        bounds: tuple[float, float] = LAPSE_BOUNDS,
        fixed_lapse: float | None = None,
    ) -> None:
        super().__init__()
        zf = np.asarray(fine_orography, dtype="float32")
        if zf.ndim != 2 or not np.isfinite(zf).all():
            raise CoordError(f"fine orography must be a finite 2-D array (m), got shape {zf.shape}")
        if bounds[0] >= bounds[1]:
            raise CoordError(f"lapse-rate bounds {bounds}: lower must be below upper")
        self.register_buffer("z_fine", torch.from_numpy(zf))
        zc = None if coarse_orography is None else torch.from_numpy(np.asarray(coarse_orography, dtype="float32"))
        self.register_buffer("z_coarse", zc)
        self.radius, self.prior, self.prior_relief, self.bounds = radius, prior, prior_relief, bounds
        self.fixed_lapse = fixed_lapse

    def _coarse_orography(self, coarse: LatLonGrid, fine: LatLonGrid) -> torch.Tensor:
        if self.z_coarse is not None:
            if tuple(self.z_coarse.shape) != coarse.shape:
                raise CoordError(f"coarse orography shape {tuple(self.z_coarse.shape)} != coarse grid {coarse.shape}")
            return self.z_coarse
        dem = xr.DataArray(self.z_fine.cpu().numpy(), coords={"lat": fine.lat, "lon": fine.lon}, dims=("lat", "lon"))
        zc = torch.from_numpy(dem_to_grid(dem, coarse, name="fine orography").astype("float32"))
        return zc.to(self.z_fine.device)

    def lapse_rate(self, coarse: torch.Tensor, coarse_grid: LatLonGrid, fine_grid: LatLonGrid) -> torch.Tensor:
        """Lapse rate (K m-1) on the coarse grid, shape ``(batch, ny_c, nx_c)``."""
        zc = self._coarse_orography(coarse_grid, fine_grid).to(coarse.device)
        if self.fixed_lapse is not None:
            return torch.full_like(coarse, self.fixed_lapse)
        return local_lapse_rate(
            coarse, zc, radius=self.radius, prior=self.prior, prior_relief=self.prior_relief, bounds=self.bounds
        )

    def forward(
        self, coarse: torch.Tensor, coarse_coords: Mapping[str, np.ndarray], fine_coords: Mapping[str, np.ndarray]
    ) -> torch.Tensor:
        """Temperature (K) on the fine grid.

        Parameters
        ----------
        coarse : Tensor
            Temperature (K), shape ``(batch, ny_c, nx_c)`` or ``(ny_c, nx_c)``.
        coarse_coords, fine_coords : mapping
            ``{"lat": ..., "lon": ...}`` 1-D coordinates (degrees) of both grids.

        Returns
        -------
        Tensor
            Shape ``(batch, ny_f, nx_f)`` (or ``(ny_f, nx_f)``), on ``coarse``'s device.
        """
        cg = LatLonGrid(np.asarray(coarse_coords["lat"]), np.asarray(coarse_coords["lon"]))
        fg = LatLonGrid(np.asarray(fine_coords["lat"]), np.asarray(fine_coords["lon"]))
        if fg.shape != tuple(self.z_fine.shape):
            raise CoordError(f"fine grid {fg.shape} does not match the fine orography {tuple(self.z_fine.shape)}")
        squeeze = coarse.ndim == 2
        t = coarse[None] if squeeze else coarse
        if t.ndim != 3:
            raise CoordError(f"coarse temperature must be (batch, ny, nx), got shape {tuple(coarse.shape)}")
        if not torch.isfinite(t).all():
            raise CoordError("coarse temperature has missing values (NaN/inf); fill or mask them first")
        zc = self._coarse_orography(cg, fg).to(t.device, t.dtype)
        gamma = self.lapse_rate(t, cg, fg)
        reduced = t - gamma * zc  # temperature at the reference height z = 0
        zf = self.z_fine.to(t.device, t.dtype)
        out = interp_regular(reduced, cg, fg) + interp_regular(gamma, cg, fg) * zf
        return out[0] if squeeze else out
