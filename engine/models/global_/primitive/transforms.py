"""Batched spherical-harmonic transforms for the primitive-equation core.

The same transforms as :class:`~engine.models.global_.spectral.SpectralGrid` (torch-harmonics'
``RealSHT``, ``InverseRealSHT`` and their vector versions, whose precomputed Legendre weights are
reused unchanged), with the Legendre step done as one batched matrix product over the zonal
wavenumbers ``m`` (``torch.bmm`` of ``(m, fields, lat) x (m, lat, l)``) instead of
torch-harmonics' ``einsum`` over strided slices: for the 50-100 fields of a multi-level step
this is 5-20 times faster on CPU (torch 2.x), and it is as fast on CUDA. Results agree with
``SpectralGrid`` to round-off (tests/engine/global_/test_pe_core.py).

Public API: ``BatchedTransforms``.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.models.global_.spectral import SpectralGrid

__all__ = ["BatchedTransforms"]


def _legendre(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``out[n, b, m] = sum_a w[m, a, b] x[n, a, m]`` for complex ``x (n, a, m)`` and real ``w (m, a, b)``."""
    n, a, m = x.shape
    xr = torch.view_as_real(x).permute(2, 0, 3, 1).reshape(m, 2 * n, a)
    out = torch.bmm(xr, w)  # (m, 2n, b)
    out = out.reshape(m, n, 2, -1).permute(1, 3, 0, 2).contiguous()
    return torch.view_as_complex(out)


class BatchedTransforms(nn.Module):
    """Scalar and vector transforms of a :class:`SpectralGrid`, batched over all leading dims.

    Parameters
    ----------
    grid : SpectralGrid
        The grid whose torch-harmonics transforms are reproduced.
    """

    w_fwd: torch.Tensor
    w_inv: torch.Tensor
    w_vfwd: torch.Tensor
    w_vinv: torch.Tensor

    def __init__(self, grid: SpectralGrid) -> None:
        super().__init__()
        self.grid = grid
        self.nlat, self.nlon, self.n = grid.nlat, grid.nlon, grid.truncation + 1
        dtype = grid.dtype
        self.register_buffer("w_fwd", grid.sht.weights.transpose(-1, -2).contiguous().to(dtype))  # (m, k, l)
        self.register_buffer("w_inv", grid.isht.pct.contiguous().to(dtype))  # (m, l, k)
        vw = grid.vsht.weights.transpose(-1, -2)  # (2, m, k, l)
        self.register_buffer("w_vfwd", torch.cat((vw[0], vw[1]), dim=-1).contiguous().to(dtype))  # (m, k, 2l)
        dp = grid.ivsht.dpct  # (2, m, l, k)
        self.register_buffer("w_vinv", torch.cat((dp[0], dp[1]), dim=-1).contiguous().to(dtype))  # (m, l, 2k)

    def _fft(self, f: torch.Tensor) -> torch.Tensor:
        return (2.0 * torch.pi * torch.fft.rfft(f, dim=-1, norm="forward"))[..., : self.n]

    def _ifft(self, c: torch.Tensor) -> torch.Tensor:
        c = c.clone()
        c[..., 0] = c[..., 0].real.to(c.dtype)
        return torch.fft.irfft(c, n=self.nlon, dim=-1, norm="forward")

    def to_spec(self, field: torch.Tensor) -> torch.Tensor:
        """Grid ``(..., lat, lon)`` → triangular spectral ``(..., l, m)`` (as ``SpectralGrid.to_spec``)."""
        lead = field.shape[:-2]
        x = self._fft(field.reshape(-1, self.nlat, self.nlon))
        return _legendre(x, self.w_fwd).reshape(*lead, self.n, self.n) * self.grid.mask

    def to_grid(self, spec: torch.Tensor) -> torch.Tensor:
        """Spectral ``(..., l, m)`` → grid ``(..., lat, lon)`` (as ``SpectralGrid.to_grid``)."""
        lead = spec.shape[:-2]
        x = _legendre(spec.reshape(-1, self.n, self.n), self.w_inv)
        return self._ifft(x).reshape(*lead, self.nlat, self.nlon)

    def uv(self, vrt: torch.Tensor, div: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Winds (m s-1) from spectral vorticity and divergence (as ``SpectralGrid.uv``)."""
        g = self.grid
        lead = vrt.shape[:-2]
        scale = g.invlap / g.radius
        p0, p1 = (vrt * scale).reshape(-1, self.n, self.n), (div * scale).reshape(-1, self.n, self.n)
        nb = p0.shape[0]
        d = _legendre(torch.cat((p0, p1)), self.w_vinv)  # (2 nb, 2 nlat, m): [D0 x | D1 x]
        d0, d1 = d[:, : self.nlat], d[:, self.nlat :]
        s = d0[:nb] + 1j * d1[nb:]
        t = 1j * d1[:nb] - d0[nb:]
        uvg = self._ifft(torch.cat((s, t)))
        return uvg[:nb].reshape(*lead, self.nlat, self.nlon), uvg[nb:].reshape(*lead, self.nlat, self.nlon)

    def div_curl(self, fx: torch.Tensor, fy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spectral divergence and curl of a grid vector field (as ``SpectralGrid.div_curl``)."""
        g = self.grid
        lead = fx.shape[:-2]
        x0, x1 = self._fft(fx.reshape(-1, self.nlat, self.nlon)), self._fft(fy.reshape(-1, self.nlat, self.nlon))
        nb = x0.shape[0]
        p = _legendre(torch.cat((x0, x1)), self.w_vfwd)  # (2 nb, 2 l, m): [W0 x | W1 x]
        p0, p1 = p[:, : self.n], p[:, self.n :]
        s = p0[:nb] + 1j * p1[nb:]
        t = 1j * p1[:nb] - p0[nb:]
        scale = g.lap * g.radius * g.mask
        curl, div = s * scale, t * scale
        return div.reshape(*lead, self.n, self.n), curl.reshape(*lead, self.n, self.n)
