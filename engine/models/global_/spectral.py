"""Spherical-harmonic operators on a Gaussian (or equiangular) grid, built on torch-harmonics.

The dynamical core works in spectral space with triangular truncation ``T`` (degrees and orders
``0 <= m <= l <= T``), as in Hack & Jakob (1992, NCAR STSWM) and in the torch-harmonics
shallow-water example (Bonev et al. 2023). The transforms come from torch-harmonics
(:class:`~torch_harmonics.RealSHT` and friends, orthonormal, no Condon-Shortley phase); this
module adds the operators a vorticity-divergence model needs (Laplacian and its inverse,
vorticity/divergence from winds, winds from vorticity/divergence, gradients), area integrals with
the quadrature weights, and exact spectral evaluation on any regular latitude-longitude grid.

Conventions: grid fields have trailing dims ``(lat, lon)``, latitude *descending* from the
northern-most row (torch-harmonics orders colatitude ascending), longitude from 0 eastward.
Spectral fields have trailing dims ``(l, m)`` of size ``(T + 1, T + 1)``, complex.

Public API: ``SpectralGrid``, ``quadratic_grid_size``, ``EARTH_RADIUS``, ``EARTH_OMEGA``,
``GRAVITY``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch_harmonics as th
from torch import nn
from torch_harmonics.legendre import legpoly
from torch_harmonics.quadrature import clenshaw_curtiss_weights, legendre_gauss_weights

from engine.errors import CoordError

#: Earth's radius (m), rotation rate (s-1) and gravity (m s-2) as in Williamson et al. (1992).
EARTH_RADIUS = 6.37122e6
EARTH_OMEGA = 7.292e-5
GRAVITY = 9.80616

_GRIDS = ("legendre-gauss", "equiangular")


def quadratic_grid_size(truncation: int) -> tuple[int, int]:
    """Smallest FFT-friendly Gaussian grid that transforms quadratic terms alias-free.

    A triangular truncation ``T`` needs ``nlon >= 3T + 1`` and ``nlat >= (3T + 1) / 2``
    (Orszag 1970; the "quadratic grid" of Hack & Jakob 1992, table 1: T42 -> 64 x 128).

    Parameters
    ----------
    truncation : int
        Triangular truncation ``T`` (highest total wavenumber).

    Returns
    -------
    (nlat, nlon) : tuple of int
        ``nlon`` is rounded up to a multiple of 8, ``nlat = nlon / 2``.
    """
    if truncation < 1:
        raise CoordError(f"truncation must be >= 1, got {truncation}")
    nlon = 3 * truncation + 1
    nlon = int(math.ceil(nlon / 8.0) * 8)
    return nlon // 2, nlon


class SpectralGrid(nn.Module):
    """Spherical-harmonic transforms and differential operators at triangular truncation ``T``.

    Parameters
    ----------
    truncation : int
        Triangular truncation ``T``; spectral arrays are ``(T + 1, T + 1)``.
    nlat, nlon : int, optional
        Grid size; the quadratic Gaussian grid of :func:`quadratic_grid_size` by default.
    grid : {"legendre-gauss", "equiangular"}
        Latitudes: Gaussian (exact quadrature, the STSWM choice) or equally spaced with poles.
    radius : float
        Sphere radius (m).
    dtype : torch.dtype
        Real dtype of grid fields (float64 by default: the test cases need it).

    Attributes
    ----------
    lats, lons : Tensor
        Grid latitudes (rad, descending, ``(nlat,)``) and longitudes (rad, ``(nlon,)``).
    weights : Tensor
        Quadrature weights ``(nlat, 1)`` such that ``sum(w * f) * 2 pi / nlon`` is the
        integral of ``f`` over the unit sphere.
    lap : Tensor
        Laplacian eigenvalues ``-l (l + 1) / a**2`` (m-2), ``(T + 1, 1)``.
    invlap : Tensor
        Their inverse with the ``l = 0`` entry set to 0 (m2).
    """

    # Buffers registered in __init__ (declared so that type checkers see tensors, not modules).
    lats: torch.Tensor
    lons: torch.Tensor
    weights: torch.Tensor
    ell: torch.Tensor
    lap: torch.Tensor
    invlap: torch.Tensor
    mask: torch.Tensor
    coriolis_sin: torch.Tensor

    def __init__(
        self,
        truncation: int,
        *,
        nlat: int | None = None,
        nlon: int | None = None,
        grid: str = "legendre-gauss",
        radius: float = EARTH_RADIUS,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if grid not in _GRIDS:
            raise CoordError(f"grid {grid!r}: expected one of {', '.join(_GRIDS)}")
        qlat, qlon = quadratic_grid_size(truncation)
        nlat, nlon = nlat or qlat, nlon or qlon
        if nlon < 2 * truncation + 1 or nlat < truncation + 1:
            raise CoordError(
                f"grid {nlat}x{nlon} cannot represent truncation T{truncation} "
                f"(need nlat >= {truncation + 1}, nlon >= {2 * truncation + 1})"
            )
        self.truncation, self.nlat, self.nlon, self.grid_kind = truncation, nlat, nlon, grid
        self.radius = float(radius)
        self.dtype = dtype
        n = truncation + 1
        kw = {"lmax": n, "mmax": n, "grid": grid, "csphase": False}
        self.sht = th.RealSHT(nlat, nlon, **kw)
        self.isht = th.InverseRealSHT(nlat, nlon, **kw)
        self.vsht = th.RealVectorSHT(nlat, nlon, **kw)
        self.ivsht = th.InverseRealVectorSHT(nlat, nlon, **kw)

        if grid == "legendre-gauss":
            cost, w = legendre_gauss_weights(nlat, -1, 1)
        else:
            cost, w = clenshaw_curtiss_weights(nlat, -1, 1)
        # torch-harmonics orders nodes by increasing colatitude (north first) after flipping cos(theta).
        cost, w = torch.flip(torch.as_tensor(cost), (0,)), torch.flip(torch.as_tensor(w), (0,))
        lats = torch.arcsin(cost.to(torch.float64))
        lons = torch.arange(nlon, dtype=torch.float64) * (2 * math.pi / nlon)
        ell = torch.arange(n, dtype=torch.float64).reshape(n, 1)
        lap = -ell * (ell + 1) / self.radius**2
        invlap = torch.where(ell > 0, 1.0 / torch.where(ell > 0, lap, torch.ones_like(lap)), torch.zeros_like(lap))
        mask = torch.tril(torch.ones(n, n, dtype=torch.bool))
        self.register_buffer("lats", lats.to(dtype))
        self.register_buffer("lons", lons.to(dtype))
        self.register_buffer("weights", w.to(dtype).reshape(nlat, 1))
        self.register_buffer("ell", ell.to(dtype))
        self.register_buffer("lap", lap.to(dtype))
        self.register_buffer("invlap", invlap.to(dtype))
        self.register_buffer("mask", mask)
        self.register_buffer("coriolis_sin", torch.sin(lats).to(dtype).reshape(nlat, 1))

    # ------------------------------------------------------------------ transforms
    @property
    def lat_deg(self) -> np.ndarray:
        """Grid latitudes in degrees north, descending, ``(nlat,)``."""
        return np.degrees(self.lats.detach().cpu().numpy().astype("float64"))

    @property
    def lon_deg(self) -> np.ndarray:
        """Grid longitudes in degrees east, ``[0, 360)``, ``(nlon,)``."""
        return np.degrees(self.lons.detach().cpu().numpy().astype("float64"))

    def to_spec(self, field: torch.Tensor) -> torch.Tensor:
        """Scalar grid field ``(..., lat, lon)`` → triangular spectral coefficients ``(..., l, m)``."""
        return self.sht(field) * self.mask

    def to_grid(self, spec: torch.Tensor) -> torch.Tensor:
        """Spectral coefficients ``(..., l, m)`` → grid field ``(..., lat, lon)``."""
        return self.isht(spec)

    def vrtdiv(self, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spectral relative vorticity and divergence (s-1) of a wind ``(u, v)`` (m s-1, ``(..., lat, lon)``).

        The vector transform yields the spheroidal/toroidal potentials of ``(u, v)``; multiplying
        by the Laplacian eigenvalues (and ``a``) turns them into vorticity and divergence.
        """
        sv = self.vsht(torch.stack((u, v), dim=-3)) * self.mask
        vd = self.lap * self.radius * sv
        return vd[..., 0, :, :], vd[..., 1, :, :]

    def uv(self, vrt: torch.Tensor, div: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Winds ``u, v`` (m s-1, ``(..., lat, lon)``) from spectral vorticity and divergence (s-1).

        Equivalent to ``V = k x grad(psi) + grad(chi)`` with ``psi = lap^-1 vrt``, ``chi = lap^-1 div``.
        """
        pot = torch.stack((vrt, div), dim=-3) * (self.invlap / self.radius)
        uvg = self.ivsht(pot)
        return uvg[..., 0, :, :], uvg[..., 1, :, :]

    def grad(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eastward and northward gradient components (units of the field per m) of a spectral scalar.

        The gradient of ``s`` is the divergent wind of the velocity potential ``chi = s``.
        """
        return self.uv(torch.zeros_like(spec), self.lap * spec)

    def div_curl(self, fx: torch.Tensor, fy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spectral divergence and curl ``k . curl`` of a grid vector field ``(fx, fy)`` (per m)."""
        curl, div = self.vrtdiv(fx, fy)
        return div, curl

    # ------------------------------------------------------------------ integrals
    def integrate(self, field: torch.Tensor) -> torch.Tensor:
        """Area integral over the sphere of radius ``a`` of ``field (..., lat, lon)`` (units x m2)."""
        return torch.sum(field * self.weights, dim=(-2, -1)) * (2 * math.pi / self.nlon) * self.radius**2

    def global_mean(self, field: torch.Tensor) -> torch.Tensor:
        """Area-weighted global mean of ``field (..., lat, lon)``."""
        return self.integrate(field) / (4 * math.pi * self.radius**2)

    # ------------------------------------------------------------------ evaluation on other grids
    def evaluate(self, spec: torch.Tensor, lat_deg: np.ndarray, lon_deg: np.ndarray) -> torch.Tensor:
        """Evaluate spectral fields exactly on any regular latitude-longitude grid.

        Spectral interpolation: the truncated series is summed at the target latitudes (associated
        Legendre functions from torch-harmonics' recursion) and longitudes (an inverse real FFT
        for equally spaced longitudes, with the phase shift of the first longitude).

        Parameters
        ----------
        spec : Tensor
            Coefficients ``(..., l, m)``.
        lat_deg : ndarray
            Target latitudes (degrees north, any order), ``(ny,)``.
        lon_deg : ndarray
            Target longitudes (degrees east), equally spaced and covering the globe, ``(nx,)``.

        Returns
        -------
        Tensor
            ``(..., ny, nx)``, in the order of ``lat_deg`` and ``lon_deg``.

        Raises
        ------
        CoordError
            If the longitudes are not equally spaced around the globe.
        """
        lon = np.asarray(lon_deg, dtype="float64")
        nx = lon.size
        step = np.diff(lon)
        if nx < 2 or not np.allclose(step, 360.0 / nx, atol=1e-6 * 360):
            raise CoordError(f"target longitudes must be equally spaced over 360 degrees; got {nx} values step {step[:3]}")
        n = self.truncation + 1
        colat = torch.as_tensor(np.radians(90.0 - np.asarray(lat_deg, dtype="float64")))
        pct = legpoly(n, n, torch.cos(colat), norm="ortho", inverse=True, csphase=False).to(self.dtype)
        pct = pct.to(spec.device)
        re = torch.einsum("...lm,mlk->...km", spec.real.to(self.dtype), pct)
        im = torch.einsum("...lm,mlk->...km", spec.imag.to(self.dtype), pct)
        coef = torch.complex(re, im)
        m = torch.arange(n, device=spec.device, dtype=self.dtype)
        coef = coef * torch.exp(1j * m * math.radians(float(lon[0])))
        coef[..., 0] = coef[..., 0].real.to(coef.dtype)
        if nx // 2 + 1 < n:
            coef = coef[..., : nx // 2 + 1]
        return torch.fft.irfft(coef, n=nx, dim=-1, norm="forward")
