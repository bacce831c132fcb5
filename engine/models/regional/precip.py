r"""Precipitation downscaling with orographic enhancement from the Smith-Barstad linear model.

The linear theory of orographic precipitation (Smith & Barstad 2004) gives, for a uniform wind
:math:`(U, V)` over terrain :math:`h(x, y)`, the Fourier transform of the orographic precipitation

.. math::
    \hat P(k, l) = \frac{C_w\, i\sigma\, \hat h(k, l)}
                        {(1 - i m H_w)(1 + i\sigma\tau_c)(1 + i\sigma\tau_f)},
    \qquad \sigma = Uk + Vl,
    \qquad m = \left(\frac{N_m^2 - \sigma^2}{\sigma^2}(k^2 + l^2)\right)^{1/2},

with the condensation coefficient :math:`C_w` (kg m-3), the water-vapour scale height
:math:`H_w`, the moist buoyancy frequency :math:`N_m` (the branch of :math:`m` follows the sign
of :math:`\sigma` for propagating and is positive imaginary for evanescent waves), and the
conversion and fallout delays :math:`\tau_c, \tau_f` that carry condensate downwind.

Downscaling: the sub-grid part of that pattern modulates the interpolated coarse field,

.. math::
    P_f = \mathcal{I}[P_c]\;\frac{[P_0 + P_\mathrm{SB}]_+}{\mathcal{S}\big([P_0 + P_\mathrm{SB}]_+\big)},

where :math:`\mathcal{S}` smooths to the coarse grid scale and :math:`P_0` is a reference rate:
windward slopes get more, lee sides less, rain is never created where the coarse field has
none, and each coarse cell's mean is restored exactly (mass conservation).

The coarse grid relates to the fine one in one of two ways, with one algorithm for both:
:class:`BlockCells` (coarse cells are ``factor x factor`` blocks of fine cells: pooling and
repetition, as in the radar benchmark) and :class:`AssignedCells` (any source grid, regular in
lat/lon or projected, against a fine lat/lon grid: each fine cell belongs to the coarse cell
containing its centre; scatter-mean and gather; NaN coarse cells, radar no-data, stay NaN).

Public API: ``smith_barstad``, ``orographic_rate``, ``BlockCells``, ``AssignedCells``,
``OrographicPrecipDownscaler``.

References
----------
Smith, R. B. and I. Barstad (2004): A linear theory of orographic precipitation. J. Atmos. Sci.
61, 1377-1391.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import CoordError
from engine.models.base import models
from engine.models.regional.grid import containing_cell, interp_at


def smith_barstad(
    h: torch.Tensor,
    dx: float,
    dy: float,
    u: float,
    v: float,
    *,
    nm: float = 0.005,
    hw: float = 2500.0,
    cw: float = 0.004,
    tau_c: float = 1000.0,
    tau_f: float = 1000.0,
    north_up: bool = True,
    pad: str = "zeros",
) -> torch.Tensor:
    r"""Orographic precipitation (mm h-1, signed, before clipping) of the linear model.

    Parameters
    ----------
    h : Tensor
        Terrain height (m), ``(ny, nx)`` on a regular grid.
    dx, dy : float
        Grid spacing (m).
    u, v : float
        Eastward and northward steering wind (m s-1).
    nm : float
        Moist buoyancy frequency (s-1).
    hw : float
        Water-vapour scale height (m).
    cw : float
        Condensation coefficient :math:`C_w = \rho_{S,\mathrm{ref}}\Gamma_m/\gamma` (kg m-3);
        about 0.002-0.006 in mid-latitudes (Smith & Barstad 2004, sect. 2).
    tau_c, tau_f : float
        Conversion and fallout times (s).
    north_up : bool
        Whether row index increases southward (north-up images); flips the y wavenumber.
    pad : {"zeros", "edge"}
        How the terrain is continued over the FFT padding: sea level (the terrain ends in a cliff
        at the domain edge, fine when the domain's edges are low) or the edge heights repeated
        (no artificial slope at an edge cutting through mountains).

    Returns
    -------
    Tensor
        ``(ny, nx)`` float64, mm h-1 (negative on lee sides: clip or add a background).
    """
    if h.ndim != 2:
        raise CoordError(f"terrain must be 2-D (ny, nx), got shape {tuple(h.shape)}")
    if pad not in ("zeros", "edge"):
        raise CoordError(f"pad={pad!r}: expected 'zeros' or 'edge'")
    ny, nx = h.shape
    # Pad to half the domain on each side: the FFT is periodic and the downwind spill-over of
    # precipitation must not wrap onto the upwind edge.
    py, px = ny // 2, nx // 2
    hp = F.pad(h.to(torch.float64)[None, None], (px, px, py, py), mode="constant" if pad == "zeros" else "replicate")[0, 0]
    n_y, n_x = hp.shape
    k = 2 * math.pi * torch.fft.fftfreq(n_x, d=dx, dtype=torch.float64, device=h.device)
    ll = 2 * math.pi * torch.fft.fftfreq(n_y, d=dy, dtype=torch.float64, device=h.device)
    if north_up:
        ll = -ll
    ky, kx = torch.meshgrid(ll, k, indexing="ij")
    sigma = u * kx + v * ky
    sigma = torch.where(sigma.abs() < 1e-18, torch.full_like(sigma, 1e-18), sigma)
    m2 = (nm**2 - sigma**2) / sigma**2 * (kx**2 + ky**2)
    m = torch.where(
        m2 >= 0,
        torch.complex(torch.sign(sigma) * torch.sqrt(m2.clamp_min(0)), torch.zeros_like(m2)),
        torch.complex(torch.zeros_like(m2), torch.sqrt((-m2).clamp_min(0))),
    )
    h_hat = torch.fft.fft2(hp)
    one = torch.ones_like(m)
    i = torch.complex(torch.zeros_like(sigma), torch.ones_like(sigma))
    p_hat = cw * i * sigma * h_hat / ((one - i * m * hw) * (one + i * sigma * tau_c) * (one + i * sigma * tau_f))
    p = torch.fft.ifft2(p_hat).real[py:py + ny, px:px + nx]
    return p * 3600.0  # kg m-2 s-1 = mm s-1 -> mm h-1


def orographic_rate(
    h: torch.Tensor, dx: float | Sequence[float] | np.ndarray, dy: float, u: float, v: float, *,
    band_tolerance: float = 0.05, halo_m: float = 100e3, **kwargs: Any,
) -> torch.Tensor:
    """:func:`smith_barstad` on a grid whose ``dx`` may vary by row (a latitude-longitude grid).

    With one ``dx`` this is :func:`smith_barstad`. With one per row (``(ny,)``, m, shrinking
    with cos(lat)), rows are grouped into latitude bands within which ``dx`` varies by at most
    ``band_tolerance`` (5 %: the x metric is then within 2.5 % of the truth); each band is
    solved with its middle ``dx`` on the band plus ``halo_m`` of neighbouring rows on both
    sides, and only its own rows are kept. The model's response to a terrain feature decays
    within the advection distance of the delays, ``U (tau_c + tau_f)`` (about 20-40 km), so a
    100 km halo makes the bands join without seams. Other arguments go to :func:`smith_barstad`.
    """
    dx_rows = np.atleast_1d(np.asarray(dx, dtype="float64"))
    if dx_rows.size == 1:
        return smith_barstad(h, float(dx_rows[0]), dy, u, v, **kwargs)
    ny = h.shape[0]
    if dx_rows.shape != (ny,) or not (np.all(np.isfinite(dx_rows)) and np.all(dx_rows > 0)):
        raise CoordError(f"dx must be one positive spacing or one per row ({ny}), got shape {dx_rows.shape}")
    halo = int(math.ceil(halo_m / dy))
    out = torch.empty(h.shape, dtype=torch.float64, device=h.device)
    r0 = 0
    while r0 < ny:
        lo = hi = float(dx_rows[r0])
        r1 = r0 + 1
        while r1 < ny and max(hi, dx_rows[r1]) / min(lo, dx_rows[r1]) - 1.0 <= band_tolerance:
            lo, hi = min(lo, float(dx_rows[r1])), max(hi, float(dx_rows[r1]))
            r1 += 1
        a, b = max(r0 - halo, 0), min(r1 + halo, ny)
        out[r0:r1] = smith_barstad(h[a:b], 0.5 * (lo + hi), dy, u, v, **kwargs)[r0 - a:r1 - a]
        r0 = r1
    return out


def _gaussian_smooth(field: torch.Tensor, sigma_cells: float | tuple[float, float]) -> torch.Tensor:
    """Separable Gaussian smoothing of ``(..., ny, nx)`` with reflecting edges (sigma per axis or one for both)."""
    sy, sx = (sigma_cells, sigma_cells) if isinstance(sigma_cells, int | float) else sigma_cells

    def kernel(sigma: float, n: int) -> tuple[torch.Tensor, int]:
        r = min(max(int(3 * sigma), 1), n - 1)  # reflect padding needs r < n
        x = torch.arange(-r, r + 1, dtype=field.dtype, device=field.device)
        w = torch.exp(-0.5 * (x / sigma) ** 2)
        return w / w.sum(), r

    shape = field.shape
    wy, ry = kernel(sy, shape[-2])
    wx, rx = kernel(sx, shape[-1])
    f = field.reshape(-1, 1, *shape[-2:])
    f = F.conv2d(F.pad(f, (rx, rx, 0, 0), mode="reflect"), wx.view(1, 1, 1, -1))
    f = F.conv2d(F.pad(f, (0, 0, ry, ry), mode="reflect"), wy.view(1, 1, -1, 1))
    return f.reshape(shape)


class BlockCells:
    """Coarse cells that are ``factor x factor`` blocks of fine cells (fine grid = coarse grid refined).

    The three operations of the mass-conserving downscaler: bilinear interpolation to the fine
    grid (``align_corners=False``: edge values held over the outer half cells), the block mean,
    and the block value repeated over its fine cells.
    """

    nan_aware = False

    def __init__(self, factor: int, fine_shape: tuple[int, ...]) -> None:
        if factor < 2:
            raise CoordError(f"downscaling factor must be an integer >= 2, got {factor}")
        if len(fine_shape) != 2 or fine_shape[0] % factor or fine_shape[1] % factor:
            raise CoordError(f"fine orography {tuple(fine_shape)} must be 2-D and divisible by factor {factor}")
        self.factor = factor
        self.fine_shape = (int(fine_shape[0]), int(fine_shape[1]))
        self.coarse_shape = (fine_shape[0] // factor, fine_shape[1] // factor)
        #: Fine cells per coarse cell along rows and columns.
        self.cell_size: float | tuple[float, float] = float(factor)

    def interpolate(self, coarse: torch.Tensor) -> torch.Tensor:
        return F.interpolate(coarse[:, None], scale_factor=self.factor, mode="bilinear", align_corners=False)[:, 0]

    def mean(self, fine: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(fine[:, None], self.factor)[:, 0]

    def broadcast(self, coarse: torch.Tensor) -> torch.Tensor:
        f = self.factor
        return torch.repeat_interleave(torch.repeat_interleave(coarse, f, dim=-2), f, dim=-1)


class AssignedCells:
    """Coarse cells of any source grid against a fine grid: each fine cell belongs to the coarse cell containing its centre.

    Parameters
    ----------
    py, px : ndarray
        Fractional (row, column) indices on the coarse grid of the fine cell centres, shape
        of the fine grid (``positions`` of :class:`~engine.models.regional.grid.LatLonGrid` or
        :class:`~engine.models.regional.grid.ProjectedGrid`); NaN outside the coarse grid.
    coarse_shape : (int, int)
        Shape of the coarse grid.

    Notes
    -----
    Interpolation renormalises the bilinear weights over finite coarse values and gives NaN
    only where the containing coarse cell is NaN; the mean of a coarse cell is over its finite
    fine cells (NaN if it has none); fine cells outside the coarse grid are NaN throughout.
    """

    nan_aware = True

    def __init__(self, py: np.ndarray, px: np.ndarray, coarse_shape: tuple[int, int]) -> None:
        py, px = np.asarray(py, dtype="float64"), np.asarray(px, dtype="float64")
        if py.ndim != 2 or py.shape != px.shape:
            raise CoordError(f"positions must be two 2-D arrays of one shape, got {py.shape} and {px.shape}")
        self.py, self.px = py, px
        self.fine_shape = (int(py.shape[0]), int(py.shape[1]))
        self.coarse_shape = (int(coarse_shape[0]), int(coarse_shape[1]))
        n = self.coarse_shape[0] * self.coarse_shape[1]
        cell = containing_cell(py, px, self.coarse_shape).ravel()
        self.index = torch.from_numpy(np.where(cell < 0, n, cell))  # outside → an extra, discarded cell
        self.cell_size = (self._cells_per_step(0), self._cells_per_step(1))

    def _cells_per_step(self, axis: int) -> float:
        """Fine cells per coarse cell along ``axis``: 1 / coarse cells crossed per fine step (any rotation)."""
        step = np.hypot(np.diff(self.py, axis=axis), np.diff(self.px, axis=axis))
        step = step[np.isfinite(step) & (step > 0)]
        if step.size == 0:
            raise CoordError("the fine grid does not overlap the coarse grid")
        return round(float(1.0 / np.median(step)), 6)

    def interpolate(self, coarse: torch.Tensor) -> torch.Tensor:
        return interp_at(coarse, self.py, self.px, skip_nan=True)

    def mean(self, fine: torch.Tensor) -> torch.Tensor:
        b = fine.shape[0]
        n = self.coarse_shape[0] * self.coarse_shape[1]
        f = fine.reshape(b, -1)
        ok = torch.isfinite(f)
        index = self.index.to(fine.device)
        sums = torch.zeros((b, n + 1), dtype=fine.dtype, device=fine.device)
        sums.index_add_(1, index, torch.where(ok, f, torch.zeros((), dtype=f.dtype, device=f.device)))
        counts = torch.zeros_like(sums).index_add_(1, index, ok.to(fine.dtype))
        return (sums[:, :n] / counts[:, :n]).reshape(b, *self.coarse_shape)  # 0/0 = NaN: a cell without data

    def broadcast(self, coarse: torch.Tensor) -> torch.Tensor:
        b = coarse.shape[0]
        flat = torch.cat([coarse.reshape(b, -1), torch.full((b, 1), math.nan, dtype=coarse.dtype, device=coarse.device)], 1)
        return flat[:, self.index.to(coarse.device)].reshape(b, *self.fine_shape)


@models.register("regional/orographic_precip")
class OrographicPrecipDownscaler(torch.nn.Module):
    """Downscale precipitation with Smith-Barstad orographic modulation, conserving coarse-cell means.

    Parameters
    ----------
    fine_orography : Tensor
        Terrain (m) on the fine grid, ``(ny, nx)``.
    dx, dy : float
        Fine grid spacing (m); ``dx`` may be one value per row (a latitude-longitude grid, see
        :func:`orographic_rate`).
    factor : int or AssignedCells
        An integer: coarse cells are ``factor x factor`` blocks of fine cells
        (:class:`BlockCells`). Or the assignment of fine cells to the cells of any coarse grid.
    wind : (float, float)
        Steering wind ``(u, v)`` (m s-1), e.g. the 700 hPa wind or the radar echo motion.
    reference_rate : float
        :math:`P_0` (mm h-1): the larger, the weaker the relative orographic modulation.
    min_ratio : float
        Floor of the orographic ratio (lee sides keep at least this fraction).
    north_up : bool
        Row index increases southward.
    pad : {"zeros", "edge"}
        Terrain beyond the domain for the FFT (see :func:`smith_barstad`).
    **physics
        ``nm``, ``hw``, ``cw``, ``tau_c``, ``tau_f`` of :func:`smith_barstad`.
    """

    # Buffers registered in ``__init__``; declared so they type as tensors, not ``Tensor | Module``.
    ratio: torch.Tensor
    orographic_rate: torch.Tensor

    def __init__(
        self, fine_orography: torch.Tensor, dx: float | np.ndarray, dy: float, factor: int | AssignedCells,
        wind: tuple[float, float], *, reference_rate: float = 1.0, min_ratio: float = 0.1, north_up: bool = True,
        pad: str = "zeros", **physics: float,
    ) -> None:
        super().__init__()
        if reference_rate <= 0:
            raise CoordError(f"reference_rate must be positive (mm/h), got {reference_rate}")
        z = torch.as_tensor(fine_orography, dtype=torch.float64)
        if isinstance(factor, AssignedCells):
            if tuple(z.shape) != factor.fine_shape:
                raise CoordError(f"fine orography {tuple(z.shape)} does not match the fine grid {factor.fine_shape}")
            self.cells: BlockCells | AssignedCells = factor
        else:
            self.cells = BlockCells(int(factor), tuple(z.shape))
        p_sb = orographic_rate(z, dx, dy, float(wind[0]), float(wind[1]), north_up=north_up, pad=pad, **physics)
        weight = (reference_rate + p_sb).clamp_min(0.0)
        # The coarse field already holds the grid-scale orographic signal: keep only the
        # sub-grid modulation (weight over its coarse-scale smooth).
        size = self.cells.cell_size
        sigma = size / 2.0 if isinstance(size, float) else (size[0] / 2.0, size[1] / 2.0)
        ratio = weight / _gaussian_smooth(weight, sigma).clamp_min(1e-6 * reference_rate)
        # Floor the modulation: a full rain shadow in the linear model would leave a coarse cell's
        # rain to a few pixels, which the mass correction would then turn into spikes.
        ratio = ratio.clamp_min(min_ratio)
        self.register_buffer("ratio", ratio)
        self.register_buffer("orographic_rate", p_sb)

    def _check(self, coarse: torch.Tensor) -> tuple[torch.Tensor, bool]:
        cells = self.cells
        if tuple(coarse.shape[-2:]) != cells.coarse_shape:
            ny, nx = cells.fine_shape
            where = f"fine {ny}x{nx} / factor {cells.factor}" if isinstance(cells, BlockCells) else f"{cells.coarse_shape}"
            raise CoordError(f"coarse grid {tuple(coarse.shape[-2:])} != {where}")
        bad = bool((coarse < 0).any()) or bool(torch.isinf(coarse).any())
        if bad or (not cells.nan_aware and not bool(torch.isfinite(coarse).all())):
            nan = " (NaN for no data)" if cells.nan_aware else ""
            raise CoordError(f"coarse precipitation must be finite and non-negative (mm/h){nan}")
        x = coarse.to(torch.float64)
        return (x[None], True) if x.ndim == 2 else (x, False)

    def _conserve(self, fine: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Rescale ``fine`` smoothly so each coarse cell's mean is close to ``x``.

        Applied per cell, the correction factors would print the coarse grid into the field as
        steps of one coarse cell; so they are applied interpolated bilinearly (smooth), a few
        passes, each bounded so that one nearly empty cell cannot leak a huge factor into its
        neighbours.
        """
        cells = self.cells
        for _ in range(3):
            block = cells.mean(fine)
            scale = torch.where(block > 0, x / block.clamp_min(1e-12), torch.ones_like(block)).clamp(0.1, 10.0)
            fine = fine * cells.interpolate(scale)
        return fine

    def _impose(self, fine: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The orographic pattern on a field whose cell means are (nearly) ``x``, means made exact.

        The ratio is normalised to a mean of 1 in every coarse cell before it multiplies the
        field, so it redistributes rain within each cell (windward more, lee less) and moves none
        between cells; a final per-cell factor, close to 1, makes the means exact. Smoothing the
        correction after imposing the pattern instead would carry the large factors of cells in
        a rain shadow onto their neighbours and can leave a narrow ridge's lee wetter than its
        windward slope. A cell entirely without rain in the pattern keeps its coarse rain,
        spread evenly. NaN cells (no data) keep NaN.
        """
        cells = self.cells
        ratio = self.ratio.expand_as(fine)
        fine = fine * ratio / cells.broadcast(cells.mean(ratio))
        block = cells.mean(fine)
        scale = torch.where(block > 0, x / block.clamp_min(1e-12), torch.zeros_like(block))
        return torch.where(cells.broadcast(block) > 0, fine * cells.broadcast(scale), cells.broadcast(x))

    def forward(self, coarse: torch.Tensor) -> torch.Tensor:
        """Fine precipitation (mm h-1) from coarse rates ``(batch, *coarse_shape)`` (mm h-1).

        Bilinear interpolation of the coarse field, its cell means restored smoothly, then the
        orographic ratio imposed within each cell (mass conservation exact).
        """
        x, squeeze = self._check(coarse)
        first = self._conserve(self.cells.interpolate(x).clamp_min(0), x)
        fine = self._impose(first, x)
        return fine[0] if squeeze else fine

    def modulate(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """Impose the orographic pattern on a stochastic fine field (e.g. RainFARM members).

        Multiplies ``fine`` (mm h-1, ``(batch, ny, nx)``) by the orographic ratio and restores the
        coarse cell means, in the spirit of RainFARM with orographic weights (Terzago et al.
        2018, NHESS 18, 2825-2840), here with weights from the linear model instead of a rain
        climatology.
        """
        x, squeeze = self._check(coarse)
        f = fine.to(torch.float64)
        f = f[None] if f.ndim == 2 else f
        out = self._impose(self._conserve(f.clamp_min(0), x), x)
        return out[0] if squeeze else out
