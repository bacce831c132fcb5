"""Spatially correlated Gaussian noise with the observed power spectrum (nonparametric FFT filter).

White Gaussian noise is filtered in Fourier space with the amplitude spectrum :math:`|\\hat R|` of
the observed rain field(s), so the noise has the observed (anisotropic) power spectrum and hence
its spatial correlation (Seed 2003; the nonparametric filter of Nerini et al. 2017 and pysteps
``noise.fftgenerators.initialize_nonparam_2d_fft_filter``). The observed fields are tapered with
a Tukey window first: radar domains are not periodic, and the jump across the domain edge would
otherwise add spurious power along the axes.

Reproducibility: every ensemble member (and batch item) draws from its own
:class:`torch.Generator`, seeded from ``(seed, batch index, member index)``. Results therefore do
not depend on how members are chunked, and, with ``noise_device="cpu"`` (the default), not on
the device either: the white noise is drawn on the CPU and moved, so CPU and CUDA ensembles agree
up to floating-point rounding.

Public API: ``NoiseFilter``, ``nonparametric_filter``, ``member_generators``, ``white_noise_spectrum``.

References
----------
Seed, A. W. (2003): A dynamic and spatial scaling approach to advection forecasting.
J. Appl. Meteor. 42, 381-388.
Nerini, D. et al. (2017): A non-stationary stochastic ensemble generator for radar rainfall
fields based on the short-space Fourier transform. Hydrol. Earth Syst. Sci. 21, 2777-2797.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from engine.errors import DimensionError


@dataclass(frozen=True)
class NoiseFilter:
    """Amplitude filter of correlated noise.

    Attributes
    ----------
    amplitude : Tensor
        ``(batch, y, x // 2 + 1)`` float32 amplitude on the ``rfft2`` half spectrum (arbitrary
        scale: generated noise is normalised per cascade level anyway).
    shape : tuple of int
        ``(ny, nx)`` of the grid.
    """

    amplitude: torch.Tensor
    shape: tuple[int, int]


def tukey_window(n: int, alpha: float = 0.2, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """1-D Tukey (tapered cosine) window of ``n`` points; ``alpha`` is the tapered fraction."""
    if n < 2 or alpha <= 0:
        return torch.ones(n, device=device)
    x = torch.linspace(0.0, 1.0, n, device=device, dtype=torch.float64)
    w = torch.ones(n, dtype=torch.float64, device=device)
    lo = x < alpha / 2
    hi = x > 1 - alpha / 2
    w[lo] = 0.5 * (1 + torch.cos(2 * math.pi / alpha * (x[lo] - alpha / 2)))
    w[hi] = 0.5 * (1 + torch.cos(2 * math.pi / alpha * (x[hi] - 1 + alpha / 2)))
    return w.to(torch.float32)


def nonparametric_filter(fields: torch.Tensor, *, window_alpha: float = 0.2) -> NoiseFilter:
    """Build the nonparametric noise filter from observed fields.

    Parameters
    ----------
    fields : Tensor
        ``(batch, time, y, x)`` finite fields in the transformed units (dBR, no rain at the
        floor value); the amplitude spectra of the ``time`` fields are averaged.
    window_alpha : float
        Tapered fraction of the Tukey window along each axis.

    Returns
    -------
    NoiseFilter

    Raises
    ------
    DimensionError
        If ``fields`` is not 4-D or contains non-finite values.
    """
    if fields.dim() != 4:
        raise DimensionError(f"fields: expected (batch, time, y, x), got shape {tuple(fields.shape)}")
    if not bool(torch.isfinite(fields).all()):
        raise DimensionError("fields: must be finite (fill no-data with the no-rain value first)")
    ny, nx = fields.shape[-2:]
    # Dry pixels at zero, so the taper brings the field smoothly to "no rain" at the edges.
    anomaly = fields - fields.amin(dim=(-2, -1), keepdim=True)
    win = (
        tukey_window(ny, window_alpha, device=fields.device)[:, None]
        * tukey_window(nx, window_alpha, device=fields.device)[None, :]
    )
    amp = torch.fft.rfft2(anomaly * win).abs().mean(dim=1)
    return NoiseFilter(amp.to(torch.float32), (int(ny), int(nx)))


def member_generators(
    seed: int, batch_index: int, members: range | list[int], *, device: torch.device | str = "cpu"
) -> list[torch.Generator]:
    """One generator per member (on ``device``), seeded from ``(seed, batch_index, member)``.

    ``numpy.random.SeedSequence`` hashes the triple, so neighbouring seeds and members give
    independent streams.
    """
    gens = []
    for m in members:
        state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(batch_index), int(m)]).generate_state(
            2, dtype=np.uint32
        )
        g = torch.Generator(device=device)
        g.manual_seed(int(state[0]) << 32 | int(state[1]))
        gens.append(g)
    return gens


def white_noise_spectrum(
    generators: list[torch.Generator], shape: tuple[int, int], *, device: torch.device, noise_device: str = "cpu"
) -> torch.Tensor:
    """``rfft2`` of one standard white-noise field per generator.

    Parameters
    ----------
    generators : list of torch.Generator
        One per member (CPU generators, or generators on ``noise_device``).
    shape : tuple of int
        ``(ny, nx)``.
    device : torch.device
        Where the spectra are returned.
    noise_device : str
        Where the white noise is drawn: ``"cpu"`` for device-independent ensembles, or the
        compute device for speed (then CPU and CUDA ensembles differ, statistically equal).

    Returns
    -------
    Tensor
        ``(member, y, x // 2 + 1)`` complex64.
    """
    if noise_device == "cpu":
        white = torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in generators]).to(device)
    else:
        white = torch.stack([torch.randn(shape, generator=g, dtype=torch.float32, device=device) for g in generators])
    return torch.fft.rfft2(white)
