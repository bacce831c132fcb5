"""Spectral cascade decomposition with Gaussian band-pass filters in log wavenumber (STEPS).

A field is split into ``n_levels`` spatial scales by multiplying its 2-D Fourier transform with
band-pass weights that are Gaussian in the logarithm of the radial wavenumber and sum to one at
every wavenumber, so that the levels add back up to the field exactly (Seed 2003; Pulkkinen et al.
2019, sect. 2.2). The filters reproduce ``pysteps.cascade.bandpass_filters.filter_gaussian``.

Everything here works on ``torch.fft.rfft2`` half spectra, layout ``(..., y, x // 2 + 1)``, so
the STEPS ensemble can keep its cascade in the spectral domain (Pulkkinen et al. 2019, sect. 2.4:
the AR(2) update and the recomposition are linear, hence identical in either domain). Level
statistics (mean, standard deviation, correlation) follow from Parseval's theorem without any
inverse transform.

Public API: ``gaussian_bandpass_filters``, ``BandpassFilters``, ``decompose``, ``recompose``,
``spectral_moments``, ``spectral_covariance``, ``CompactLevel``, ``compact_levels``,
``compact_moments``, ``compact_covariance``.

References
----------
Seed, A. W. (2003): A dynamic and spatial scaling approach to advection forecasting.
J. Appl. Meteor. 42, 381-388.
Pulkkinen, S. et al. (2019): Pysteps: an open-source Python library for probabilistic
precipitation nowcasting (v1.0). Geosci. Model Dev. 12, 4185-4219.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.errors import DimensionError


@dataclass(frozen=True)
class BandpassFilters:
    """Band-pass weights of a cascade on one grid.

    Attributes
    ----------
    weights : Tensor
        ``(level, y, x // 2 + 1)`` float32 weights on the ``rfft2`` half spectrum; they sum to 1
        at every wavenumber, and the mean (wavenumber 0) belongs to level 0 only.
    central_wavenumbers : tuple of float
        Centre of each band in cycles per domain (of the longer side).
    shape : tuple of int
        ``(ny, nx)`` of the grid the filters were built for.
    """

    weights: torch.Tensor
    central_wavenumbers: tuple[float, ...]
    shape: tuple[int, int]

    @property
    def n_levels(self) -> int:
        return int(self.weights.shape[0])

    def to(self, device: torch.device | str) -> BandpassFilters:
        return BandpassFilters(self.weights.to(device), self.central_wavenumbers, self.shape)


def gaussian_bandpass_filters(
    shape: tuple[int, int], n_levels: int, *, gauss_scale: float = 0.5, device: torch.device | str = "cpu"
) -> BandpassFilters:
    r"""Gaussian band-pass filters in log wavenumber, as in pysteps/STEPS.

    Band :math:`k = 1..n` is centred on :math:`r_k = (q^{k-1} + q^k)/2` with
    :math:`q = (L/2)^{1/n}` and :math:`L` the longer side in pixels; its weight at radial
    wavenumber :math:`r` (cycles per :math:`L`) is

    .. math:: w_k(r) = \exp\!\left(-\frac{(\log_q r - \log_q r_k)^2}{2 s^2}\right),

    normalised so that :math:`\sum_k w_k(r) = 1`; the wavenumber-zero (domain mean) coefficient
    belongs to the first level only.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` grid size in pixels.
    n_levels : int
        Number of cascade levels, at least 3 (STEPS uses 6 to 8).
    gauss_scale : float
        Standard deviation :math:`s` of the Gaussians in units of :math:`\log_q` (pysteps: 0.5).
    device : torch.device or str
        Where the weights live.

    Returns
    -------
    BandpassFilters

    Raises
    ------
    DimensionError
        If ``shape`` is not two positive sizes or ``n_levels < 3``.
    """
    if len(shape) != 2 or min(shape) < 2:
        raise DimensionError(f"shape: expected (ny, nx) with both >= 2, got {shape!r}")
    if n_levels < 3:
        raise DimensionError(f"n_levels: expected at least 3 cascade levels, got {n_levels}")
    if not gauss_scale > 0:
        raise DimensionError(f"gauss_scale: expected a positive value, got {gauss_scale}")
    ny, nx = shape
    max_length = max(ny, nx)
    # Radial wavenumber on the rfft2 grid in cycles per longer side; pysteps uses integer
    # frequency indices (cycles per each side), which is what fftfreq * size gives.
    ky = torch.fft.fftfreq(ny, d=1.0 / ny, dtype=torch.float64)
    kx = torch.fft.rfftfreq(nx, d=1.0 / nx, dtype=torch.float64)
    r = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    q = (0.5 * max_length) ** (1.0 / n_levels)
    centres = [0.5 * (q ** (k - 1) + q**k) for k in range(1, n_levels + 1)]
    log_q = torch.where(r > 0, torch.log(r.clamp_min(1e-12)) / math.log(q), torch.zeros_like(r))
    w = torch.stack([torch.exp(-((log_q - math.log(c) / math.log(q)) ** 2) / (2.0 * gauss_scale**2)) for c in centres])
    w = w / w.sum(dim=0, keepdim=True)
    w[:, 0, 0] = 0.0
    w[0, 0, 0] = 1.0
    return BandpassFilters(w.to(dtype=torch.float32, device=device), tuple(centres), (ny, nx))


def _hermitian_weights(nx: int, n_rfft: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """How often each ``rfft`` column appears in the full spectrum (1 for 0 and Nyquist, else 2)."""
    c = torch.full((n_rfft,), 2.0, device=device, dtype=dtype)
    c[0] = 1.0
    if nx % 2 == 0:
        c[-1] = 1.0
    return c


def spectral_moments(spec: torch.Tensor, nx: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Spatial mean and standard deviation of real fields from their ``rfft2`` spectra.

    By Parseval, for a real field :math:`f` on :math:`N` pixels with transform :math:`\hat f`:
    :math:`\bar f = \hat f_0 / N` and
    :math:`\overline{f^2} = \sum_k c_k |\hat f_k|^2 / N^2` (:math:`c_k` counts the conjugate half).

    Parameters
    ----------
    spec : Tensor
        ``(..., y, x // 2 + 1)`` complex half spectra.
    nx : int
        Size of the real fields along ``x``.

    Returns
    -------
    mean, std : Tensor
        ``(...)`` real, in the fields' units.
    """
    ny = spec.shape[-2]
    n = float(ny * nx)
    c = _hermitian_weights(nx, spec.shape[-1], spec.device)
    power = (spec.real.square() + spec.imag.square()) * c
    mean = spec[..., 0, 0].real / n
    var = power.sum(dim=(-2, -1)) / n**2 - mean.square()
    return mean, var.clamp_min(0.0).sqrt()


def spectral_covariance(a: torch.Tensor, b: torch.Tensor, nx: int) -> torch.Tensor:
    r"""Spatial covariance of two sets of real fields from their ``rfft2`` spectra (Parseval).

    .. math:: \mathrm{cov}(f, g) = \sum_k c_k \,\mathrm{Re}(\hat f_k \hat g_k^*) / N^2 - \bar f \bar g

    Parameters
    ----------
    a, b : Tensor
        ``(..., y, x // 2 + 1)`` complex half spectra (broadcastable).
    nx : int
        Size of the real fields along ``x``.

    Returns
    -------
    Tensor
        ``(...)`` covariance in the product of the fields' units.
    """
    ny = a.shape[-2]
    n = float(ny * nx)
    c = _hermitian_weights(nx, a.shape[-1], a.device)
    cross = (a.real * b.real + a.imag * b.imag) * c
    return cross.sum(dim=(-2, -1)) / n**2 - (a[..., 0, 0].real / n) * (b[..., 0, 0].real / n)


def decompose(
    field: torch.Tensor, filters: BandpassFilters, *, normalize: bool = True, spectral: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split fields into cascade levels.

    Parameters
    ----------
    field : Tensor
        ``(..., y, x)`` real fields (any units, e.g. dBR), finite everywhere.
    filters : BandpassFilters
        Built for the fields' ``(y, x)`` shape.
    normalize : bool
        Return each level minus its spatial mean and divided by its standard deviation
        (pysteps ``normalize=True``), so every level has unit variance.
    spectral : bool
        Return the levels as ``rfft2`` half spectra instead of real fields.

    Returns
    -------
    levels : Tensor
        ``(..., level, y, x)`` real, or ``(..., level, y, x // 2 + 1)`` complex if ``spectral``.
    mean, std : Tensor
        ``(..., level)`` spatial mean and standard deviation of each (un-normalised) level.

    Raises
    ------
    DimensionError
        If the field's grid is not the filters' grid.
    """
    if tuple(field.shape[-2:]) != filters.shape:
        raise DimensionError(f"field: grid {tuple(field.shape[-2:])} does not match the filters' grid {filters.shape}")
    nx = field.shape[-1]
    spec = torch.fft.rfft2(field)
    levels = spec.unsqueeze(-3) * filters.weights
    mean, std = spectral_moments(levels, nx)
    if normalize:
        levels = normalize_spectral(levels, mean, std, nx)
    if not spectral:
        levels = torch.fft.irfft2(levels, s=filters.shape)
    return levels, mean, std


def normalize_spectral(levels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, nx: int) -> torch.Tensor:
    """``(level - mean) / std`` applied to ``rfft2`` spectra ``(..., y, x // 2 + 1)`` (returns a new tensor)."""
    n = levels.shape[-2] * nx
    out = levels.clone()
    out[..., 0, 0] -= mean * n
    return out / std.clamp_min(1e-12)[..., None, None]


def recompose(
    levels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *, shape: tuple[int, int] | None = None
) -> torch.Tensor:
    r"""Sum cascade levels back into a field: :math:`f = \sum_k (\sigma_k z_k + \mu_k)`.

    Parameters
    ----------
    levels : Tensor
        ``(..., level, y, x)`` normalised real levels, or ``(..., level, y, x // 2 + 1)`` complex
        spectra (then ``shape`` gives the real grid and the sum is transformed back once).
    mean, std : Tensor
        ``(..., level)`` statistics the levels were normalised with.
    shape : tuple of int, optional
        ``(ny, nx)``; required for spectral levels.

    Returns
    -------
    Tensor
        ``(..., y, x)`` real field in the original units.
    """
    if levels.is_complex():
        if shape is None:
            raise DimensionError("shape: required to recompose spectral levels")
        spec = (levels * std[..., None, None]).sum(dim=-3)
        spec[..., 0, 0] += mean.sum(dim=-1) * (shape[0] * shape[1])
        return torch.fft.irfft2(spec, s=shape)
    return (levels * std[..., None, None]).sum(dim=-3) + mean.sum(dim=-1)[..., None, None]


@dataclass(frozen=True)
class CompactLevel:
    """One cascade level restricted to the wavenumbers where its weight is not negligible.

    Attributes
    ----------
    index : Tensor or None
        ``(n,)`` int64 flat indices into the ``(y * (x // 2 + 1))`` half spectrum, ascending;
        ``None`` for a *dense* level stored on the whole half spectrum (cheaper than gathering
        when the level covers most of it, as the small-scale levels do).
    weight : Tensor
        ``(n,)`` float32 filter weights there.
    hermitian : Tensor
        ``(n,)`` float32 multiplicity of each coefficient in the full spectrum (1 or 2), for Parseval.
    has_mean : bool
        Whether the level holds wavenumber zero (the domain mean), at position 0.
    """

    index: torch.Tensor | None
    weight: torch.Tensor
    hermitian: torch.Tensor
    has_mean: bool

    def gather(self, spec: torch.Tensor) -> torch.Tensor:
        """This level's weighted coefficients of flat half spectra ``(..., y * (x // 2 + 1))``."""
        return (spec if self.index is None else spec[..., self.index]) * self.weight

    def scatter_add(self, out: torch.Tensor, coeffs: torch.Tensor) -> None:
        """Add ``coeffs`` ``(..., n)`` into flat half spectra ``out`` in place."""
        if self.index is None:
            out += coeffs
        else:
            out.index_add_(-1, self.index, coeffs)


def compact_levels(filters: BandpassFilters, *, tol: float = 1e-4, dense_fraction: float = 0.5) -> list[CompactLevel]:
    """Sparse form of a cascade: each level keeps only wavenumbers with weight >= ``tol``.

    The large-scale levels of a Gaussian cascade occupy a tiny part of the spectrum (level 1 of 6
    on a 700-pixel grid: well under 1 %), so storing and evolving each level only where it is
    non-zero cuts the cost of the STEPS AR update by about half the number of levels. Weights
    below ``tol`` are dropped and the rest renormalised so the levels still sum to exactly 1 at
    every wavenumber (the cascade stays a partition of the field); the change to the filters is
    below ``tol`` everywhere.

    Parameters
    ----------
    filters : BandpassFilters
    tol : float
        Weight below which a coefficient is dropped from a level.
    dense_fraction : float
        Levels covering more than this fraction of the half spectrum are kept dense
        (``index=None``): gathering them would cost more than it saves.

    Returns
    -------
    list of CompactLevel
        One per level, on the filters' device.
    """
    w = filters.weights
    kept = torch.where(w >= tol, w, torch.zeros_like(w))
    kept = kept / kept.sum(dim=0, keepdim=True).clamp_min(1e-12)
    ny, nx = filters.shape
    herm = _hermitian_weights(nx, w.shape[-1], w.device).expand(ny, -1).reshape(-1).contiguous()
    out = []
    for level in kept.reshape(kept.shape[0], -1):
        idx = torch.nonzero(level > 0).squeeze(1)
        has_mean = bool(idx.numel() and idx[0] == 0)
        if idx.numel() > dense_fraction * level.numel():
            out.append(CompactLevel(None, level.contiguous(), herm, has_mean))
        else:
            out.append(CompactLevel(idx, level[idx].contiguous(), herm[idx].contiguous(), has_mean))
    return out


def compact_moments(coeffs: torch.Tensor, level: CompactLevel, n_pixels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial mean and standard deviation of a compact level ``(..., n)`` (Parseval, see :func:`spectral_moments`)."""
    power = (coeffs.real.square() + coeffs.imag.square()) @ level.hermitian
    mean = coeffs[..., 0].real / n_pixels if level.has_mean else torch.zeros(coeffs.shape[:-1], device=coeffs.device)
    var = power / float(n_pixels) ** 2 - mean.square()
    return mean, var.clamp_min(0.0).sqrt()


def compact_covariance(a: torch.Tensor, b: torch.Tensor, level: CompactLevel, n_pixels: int) -> torch.Tensor:
    """Spatial covariance of two compact levels ``(..., n)`` (Parseval, see :func:`spectral_covariance`)."""
    cross = (a.real * b.real + a.imag * b.imag) @ level.hermitian
    cov = cross / float(n_pixels) ** 2
    if level.has_mean:
        cov = cov - (a[..., 0].real / n_pixels) * (b[..., 0].real / n_pixels)
    return cov
