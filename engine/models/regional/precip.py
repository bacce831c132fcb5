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
none, and with ``factor`` given each coarse cell's mean is restored exactly (mass conservation).

Public API: ``smith_barstad``, ``OrographicPrecipDownscaler``.

References
----------
Smith, R. B. and I. Barstad (2004): A linear theory of orographic precipitation. J. Atmos. Sci.
61, 1377-1391.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.errors import CoordError
from engine.models.base import models


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

    Returns
    -------
    Tensor
        ``(ny, nx)`` float64, mm h-1 (negative on lee sides: clip or add a background).
    """
    if h.ndim != 2:
        raise CoordError(f"terrain must be 2-D (ny, nx), got shape {tuple(h.shape)}")
    ny, nx = h.shape
    # Zero-pad to half the domain on each side: the FFT is periodic and the downwind spill-over
    # of precipitation must not wrap onto the upwind edge.
    py, px = ny // 2, nx // 2
    hp = F.pad(h.to(torch.float64)[None, None], (px, px, py, py))[0, 0]
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


def _gaussian_smooth(field: torch.Tensor, sigma_cells: float) -> torch.Tensor:
    """Separable Gaussian smoothing of ``(..., ny, nx)`` with reflecting edges."""
    r = max(int(3 * sigma_cells), 1)
    x = torch.arange(-r, r + 1, dtype=field.dtype, device=field.device)
    w = torch.exp(-0.5 * (x / sigma_cells) ** 2)
    w = w / w.sum()
    shape = field.shape
    f = field.reshape(-1, 1, *shape[-2:])
    f = F.conv2d(F.pad(f, (r, r, 0, 0), mode="reflect"), w.view(1, 1, 1, -1))
    f = F.conv2d(F.pad(f, (0, 0, r, r), mode="reflect"), w.view(1, 1, -1, 1))
    return f.reshape(shape)


@models.register("regional/orographic_precip")
class OrographicPrecipDownscaler(torch.nn.Module):
    """Downscale precipitation by an integer factor with Smith-Barstad orographic modulation.

    Parameters
    ----------
    fine_orography : Tensor
        Terrain (m) on the fine grid, ``(ny, nx)``.
    dx, dy : float
        Fine grid spacing (m).
    factor : int
        Coarse cells are ``factor x factor`` blocks of fine cells.
    wind : (float, float)
        Steering wind ``(u, v)`` (m s-1), e.g. the 700 hPa wind or the radar echo motion.
    reference_rate : float
        :math:`P_0` (mm h-1): the larger, the weaker the relative orographic modulation.
    min_ratio : float
        Floor of the orographic ratio (lee sides keep at least this fraction).
    north_up : bool
        Row index increases southward.
    **physics
        ``nm``, ``hw``, ``cw``, ``tau_c``, ``tau_f`` of :func:`smith_barstad`.
    """

    def __init__(
        self, fine_orography: torch.Tensor, dx: float, dy: float, factor: int, wind: tuple[float, float], *,
        reference_rate: float = 1.0, min_ratio: float = 0.1, north_up: bool = True, **physics: float,
    ) -> None:
        super().__init__()
        if factor < 2:
            raise CoordError(f"downscaling factor must be an integer >= 2, got {factor}")
        if reference_rate <= 0:
            raise CoordError(f"reference_rate must be positive (mm/h), got {reference_rate}")
        z = torch.as_tensor(fine_orography, dtype=torch.float64)
        if z.ndim != 2 or z.shape[0] % factor or z.shape[1] % factor:
            raise CoordError(f"fine orography {tuple(z.shape)} must be 2-D and divisible by factor {factor}")
        p_sb = smith_barstad(z, dx, dy, float(wind[0]), float(wind[1]), north_up=north_up, **physics)
        weight = (reference_rate + p_sb).clamp_min(0.0)
        # The coarse field already holds the grid-scale orographic signal: keep only the
        # sub-grid modulation (weight over its coarse-scale smooth).
        ratio = weight / _gaussian_smooth(weight, factor / 2.0).clamp_min(1e-6 * reference_rate)
        # Floor the modulation: a full rain shadow in the linear model would leave a coarse cell's
        # rain to a few pixels, which the mass correction would then turn into spikes.
        ratio = ratio.clamp_min(min_ratio)
        self.register_buffer("ratio", ratio)
        self.register_buffer("orographic_rate", p_sb)
        self.factor = factor

    def _check(self, coarse: torch.Tensor) -> tuple[torch.Tensor, bool]:
        f = self.factor
        ny, nx = self.ratio.shape
        if coarse.shape[-2:] != (ny // f, nx // f):
            raise CoordError(f"coarse grid {tuple(coarse.shape[-2:])} != fine {ny}x{nx} / factor {f}")
        if not torch.isfinite(coarse).all() or bool((coarse < 0).any()):
            raise CoordError("coarse precipitation must be finite and non-negative (mm/h)")
        x = coarse.to(torch.float64)
        return (x[None], True) if x.ndim == 2 else (x, False)

    def _conserve(self, fine: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Rescale ``fine`` so each coarse block's mean is ``x`` again.

        Applied per block, the correction factors would print the coarse grid into the field as
        steps of one coarse cell; so a few passes first apply them interpolated bilinearly
        (smooth), which removes most of the mismatch, and a final per-block pass makes the block
        means exact with only small steps left.
        """
        f = self.factor

        def up(c: torch.Tensor) -> torch.Tensor:
            return torch.repeat_interleave(torch.repeat_interleave(c, f, dim=-2), f, dim=-1)

        for _ in range(3):
            block = F.avg_pool2d(fine[:, None], f)[:, 0]
            # Bounded factors: one nearly empty block must not leak a huge factor into its neighbours.
            scale = torch.where(block > 0, x / block.clamp_min(1e-12), torch.ones_like(block)).clamp(0.1, 10.0)
            fine = fine * F.interpolate(scale[:, None], scale_factor=f, mode="bilinear", align_corners=False)[:, 0]
        block = F.avg_pool2d(fine[:, None], f)[:, 0]
        scale = torch.where(block > 0, x / block.clamp_min(1e-12), torch.zeros_like(block))
        # A block entirely in a modelled rain shadow keeps its coarse rain, spread evenly.
        return torch.where(up(block) > 0, fine * up(scale), up(x))

    def forward(self, coarse: torch.Tensor) -> torch.Tensor:
        """Fine precipitation (mm h-1) from coarse rates ``(batch, ny/f, nx/f)`` (mm h-1).

        Bilinear interpolation of the coarse field, times the orographic ratio, then the coarse
        block means restored (mass conservation).
        """
        x, squeeze = self._check(coarse)
        first = F.interpolate(x[:, None], scale_factor=self.factor, mode="bilinear", align_corners=False)[:, 0]
        fine = self._conserve(first.clamp_min(0) * self.ratio, x)
        return fine[0] if squeeze else fine

    def modulate(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """Impose the orographic pattern on a stochastic fine field (e.g. RainFARM members).

        Multiplies ``fine`` (mm h-1, ``(batch, ny, nx)``) by the orographic ratio and restores the
        coarse block means, in the spirit of RainFARM with orographic weights (Terzago et al.
        2018, NHESS 18, 2825-2840), here with weights from the linear model instead of a rain
        climatology.
        """
        x, squeeze = self._check(coarse)
        f = fine.to(torch.float64)
        f = f[None] if f.ndim == 2 else f
        out = self._conserve(f.clamp_min(0) * self.ratio, x)
        return out[0] if squeeze else out
