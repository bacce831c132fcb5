r"""STEPS-style stochastic ensemble nowcast in torch (Bowler et al. 2006; Seed 2003; Pulkkinen et al. 2019).

The algorithm, step by step, and where it comes from:

1. Rain rates become dBR, :math:`10\log_{10} R` for :math:`R \ge` ``threshold`` and
   ``zerovalue_db`` below it (pysteps' ``dB_transform``): the cascade statistics of rain are
   close to Gaussian in log space.
2. The two earlier frames are advected to the last frame's time along the motion field, so the
   lag-1/lag-2 autocorrelations measure Lagrangian (not Eulerian) persistence
   (Germann & Zawadzki 2002).
3. Each frame is split into ``n_cascade_levels`` scales with Gaussian band-pass filters in log
   wavenumber (:mod:`.cascade`, Seed 2003) and every level is normalised to zero mean, unit variance.
4. Per level :math:`k`, an AR(2) process with Yule-Walker parameters from the lag-1 and lag-2
   autocorrelations :math:`\gamma_{1,k}, \gamma_{2,k}` (:math:`\gamma_2` adjusted to the
   stationarity region as in pysteps ``adjust_lag2_corrcoef2``):

   .. math::
       \phi_{1} = \frac{\gamma_1 (1 - \gamma_2)}{1 - \gamma_1^2},\quad
       \phi_{2} = \frac{\gamma_2 - \gamma_1^2}{1 - \gamma_1^2},\quad
       \phi_{0} = \sqrt{1 - \phi_1\gamma_1 - \phi_2\gamma_2},

       z_k(t+1) = \phi_{1} z_k(t) + \phi_{2} z_k(t-1) + \phi_{0}\,\varepsilon_k(t+1),

   where :math:`\varepsilon_k` is level :math:`k` of spatially correlated noise with the observed
   power spectrum (:mod:`.noise`), normalised like the rain levels (Bowler et al. 2006, eq. 8;
   Pulkkinen et al. 2019, eq. 6). Small scales lose memory fast and are replaced by noise; large
   scales persist.
5. The levels are recomposed with the last frame's level means and standard deviations, the
   *incremental* precipitation mask is applied (rain may only spread a few pixels per step beyond
   the previous step's rain area, with a grey rim; pysteps ``mask_method="incremental"``), and
   the result is probability-matched (empirical CDF matching) to the last observed field, which
   restores the observed intensity distribution that the linear AR model smooths away.
6. The field, which evolves in the Lagrangian frame, is advected to its lead time along the
   motion field (:mod:`.extrapolation`); no-data areas of the input stay NaN.

Implementation choices (why it is fast and bounded in memory):

* The cascade lives in the spectral domain (pysteps ``domain="spectral"``, Pulkkinen et al.
  2019, sect. 2.4). Decomposition, AR update and recomposition are linear, so the result is the
  same as in the spatial domain, but one member-step costs one forward FFT of white noise and one
  inverse FFT instead of ``2 + n_cascade_levels`` transforms. Level moments and correlations
  come from Parseval's theorem.
* Members evolve together as one batch (``(batch, member, level, y, x)`` tensors) and share the
  backward trajectories, which are computed once per lead step for all members; members are
  processed in chunks (``member_chunk``) so memory stays bounded on large grids. Every member has
  its own random stream, so chunking does not change the result.

Public API: ``Steps``, ``StepsParams``, ``steps_ensemble``, ``iter_steps_members``, ``concat_members``, ``fft_size``,
``ar2_parameters``, ``probability_match``, ``incremental_mask``, ``to_dbr``, ``from_dbr``.

References
----------
Bowler, N. E., Pierce, C. E., Seed, A. W. (2006): STEPS: a probabilistic precipitation forecasting
scheme which merges an extrapolation nowcast with downscaled NWP. Q. J. R. Meteorol. Soc. 132,
2127-2155.
Seed, A. W. (2003): A dynamic and spatial scaling approach to advection forecasting.
J. Appl. Meteor. 42, 381-388.
Pulkkinen, S. et al. (2019): Pysteps: an open-source Python library for probabilistic
precipitation nowcasting (v1.0). Geosci. Model Dev. 12, 4185-4219.
Germann, U., Zawadzki, I. (2002): Scale-dependence of the predictability of precipitation from
continental radar images. Part I. Mon. Wea. Rev. 130, 2859-2873.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import torch

from engine.errors import DimensionError
from engine.models.nowcast.cascade import (
    CompactLevel,
    compact_covariance,
    compact_levels,
    compact_moments,
    gaussian_bandpass_filters,
)
from engine.models.nowcast.checks import batched_frames, require_data
from engine.models.nowcast.extrapolation import advect, departure_grids
from engine.models.nowcast.motion import FlowParams, estimate_motion
from engine.models.nowcast.noise import member_generators, nonparametric_filter, white_noise_spectrum


@dataclass(frozen=True)
class StepsParams:
    """Parameters of the STEPS ensemble (defaults follow the pysteps STEPS defaults).

    Attributes
    ----------
    n_cascade_levels : int
        Number of cascade levels (scales), 6 to 8 for 1 km radar grids.
    threshold : float
        Rain threshold in mm h-1; smaller rates are "no rain".
    zerovalue_db : float
        dBR value given to no-rain pixels (below ``10 log10(threshold)``, as in pysteps examples).
    gauss_scale : float
        Width of the band-pass Gaussians in log wavenumber.
    mask_method : {"incremental", None}
        Precipitation mask (see the module docstring); ``None`` lets rain appear anywhere.
    mask_dilation : int
        Radius in pixels of the diamond by which the mask grows each step. pysteps uses
        ``int((mask_f * timestep / km_per_pixel - 1) / 2)`` with ``mask_f = 1`` km per minute,
        i.e. 2 for 5-minute, 1 km data.
    mask_rim : int
        Width in pixels of the grey rim of the incremental mask.
    probmatching : {"cdf", None}
        Match the empirical CDF of each member to the last observed field.
    n_iter : int
        Midpoint iterations of the semi-Lagrangian scheme.
    member_chunk : int or None
        Members processed together; ``None`` sizes chunks to ``max_memory_gib``.
    max_memory_gib : float
        Working-memory budget used to size member chunks.
    noise_device : {"cpu", "device"}
        Where white noise is drawn: ``"cpu"`` makes ensembles identical across devices
        (the default); ``"device"`` is faster on a GPU.
    """

    n_cascade_levels: int = 6
    threshold: float = 0.1
    zerovalue_db: float = -15.0
    gauss_scale: float = 0.5
    mask_method: Literal["incremental"] | None = "incremental"
    mask_dilation: int = 2
    mask_rim: int = 10
    probmatching: Literal["cdf"] | None = "cdf"
    n_iter: int = 1
    member_chunk: int | None = None
    max_memory_gib: float = 4.0
    noise_device: Literal["cpu", "device"] = "cpu"

    def __post_init__(self) -> None:
        if self.n_cascade_levels < 3:
            raise DimensionError(f"n_cascade_levels: expected at least 3, got {self.n_cascade_levels}")
        if not self.threshold > 0:
            raise DimensionError(f"threshold: expected a positive rain rate (mm/h), got {self.threshold}")
        if not self.zerovalue_db < 10 * math.log10(self.threshold):
            raise DimensionError(
                f"zerovalue_db: must be below 10*log10(threshold) = {10 * math.log10(self.threshold):.1f} dB, got {self.zerovalue_db}"
            )
        if self.mask_method not in ("incremental", None):
            raise DimensionError(f"mask_method: expected 'incremental' or None, got {self.mask_method!r}")
        if self.probmatching not in ("cdf", None):
            raise DimensionError(f"probmatching: expected 'cdf' or None, got {self.probmatching!r}")
        if self.member_chunk is not None and self.member_chunk < 1:
            raise DimensionError(f"member_chunk: expected at least 1, got {self.member_chunk}")
        if self.noise_device not in ("cpu", "device"):
            raise DimensionError(f"noise_device: expected 'cpu' or 'device', got {self.noise_device!r}")


def to_dbr(rate: torch.Tensor, threshold: float, zerovalue_db: float) -> torch.Tensor:
    """Rain rate (mm h-1) to dBR: ``10 log10 R`` at or above ``threshold``, ``zerovalue_db`` below; NaN stays NaN."""
    db = 10.0 * torch.log10(rate.clamp_min(threshold))
    return torch.where(rate >= threshold, db, torch.where(torch.isnan(rate), rate, torch.full_like(rate, zerovalue_db)))


def from_dbr(db: torch.Tensor, threshold: float) -> torch.Tensor:
    """dBR back to rain rate (mm h-1); rates below ``threshold`` become 0, NaN stays NaN (pysteps inverse dB_transform)."""
    rate = torch.pow(10.0, db / 10.0)
    return torch.where(rate < threshold, torch.zeros_like(rate), rate)


def ar2_parameters(gamma1: torch.Tensor, gamma2: torch.Tensor) -> torch.Tensor:
    """Yule-Walker AR(2) parameters from lag-1/lag-2 autocorrelations.

    Parameters
    ----------
    gamma1, gamma2 : Tensor
        ``(...)`` lag-1 and lag-2 autocorrelation coefficients (dimensionless).

    Returns
    -------
    Tensor
        ``(..., 3)`` float64 :math:`(\\phi_1, \\phi_2, \\phi_0)`. :math:`\\gamma_2` is first moved into
        the stationarity region (pysteps ``adjust_lag2_corrcoef2``); :math:`\\phi_0 = 0` where
        the noise variance would be negative.

    Notes
    -----
    The lower bound on :math:`\\gamma_2`, :math:`(3\\gamma_1^2 - 2 + 2(1 - \\gamma_1^2)^{3/2}) /
    \\gamma_1^2`, is 0/0 at :math:`\\gamma_1 = 0`, which is exactly what a cascade level without
    variance gives (no rain at all, or a uniform field: its normalised level is identically 0).
    Evaluated as written (as pysteps does) it is NaN there, and the NaN reaches every member
    unless probability matching happens to overwrite it. The bound is
    :math:`\\tfrac34 \\gamma_1^2 + O(\\gamma_1^4)` near 0 (binomial series), so for
    :math:`\\gamma_1^2 < 10^{-4}` that series is used instead (error below :math:`2 \\cdot 10^{-9}`,
    where the exact formula loses digits to cancellation anyway). Uncorrelated levels then get
    :math:`\\phi = (0, 0, 1)`: pure noise, as the AR(2) model implies.
    """
    g1 = gamma1.to(torch.float64).clamp(-0.999999, 0.999999)
    g2 = gamma2.to(torch.float64)
    g2 = torch.maximum(g2, 2 * g1 * g2 - 1)
    g1_sq = g1**2
    small = g1_sq < 1e-4
    exact = (3 * g1_sq - 2 + 2 * (1 - g1_sq) ** 1.5) / torch.where(small, torch.ones_like(g1_sq), g1_sq)
    g2 = torch.maximum(g2, torch.where(small, 0.75 * g1_sq, exact))
    phi1 = g1 * (1 - g2) / (1 - g1**2)
    phi2 = (g2 - g1**2) / (1 - g1**2)
    phi0 = (1 - phi1 * g1 - phi2 * g2).clamp_min(0.0).sqrt()
    return torch.stack((phi1, phi2, phi0), dim=-1)


def incremental_mask(rain: torch.Tensor, dilation: int, rim: int) -> torch.Tensor:
    """Dilated rain mask with a linear grey rim (pysteps ``compute_dilated_mask``).

    pysteps dilates the rain area by a diamond of radius ``dilation`` and then adds ``rim`` more
    4-connected dilations, summing the masks and dividing by the maximum. That sum depends only
    on the city-block (L1) distance :math:`d` to the nearest rain pixel,

    .. math:: m = \\min\\left(1, \\max\\left(0, \\frac{r + 1 - \\max(d - n, 0)}{r + 1}\\right)\\right),

    so it is computed here from a truncated L1 distance transform (``n + r`` min-plus sweeps on
    uint8), which is far cheaper than ``r`` binary dilations.

    Parameters
    ----------
    rain : Tensor
        ``(N, C, y, x)`` bool, where it rains.
    dilation : int
        Radius :math:`n` (pixels) of the diamond the mask first grows by.
    rim : int
        Width :math:`r` (pixels) of the grey rim added around it.

    Returns
    -------
    Tensor
        ``(N, C, y, x)`` float32 weights in [0, 1]: 1 inside the dilated rain area, decreasing
        linearly over the rim, 0 beyond (all 0 where there is no rain at all, as in pysteps).
    """
    reach = dilation + rim + 1
    if reach > 254:
        raise DimensionError(f"mask_dilation + mask_rim: expected at most 253 pixels, got {dilation + rim}")
    d = torch.where(rain, 0, reach).to(torch.uint8)
    for _ in range(reach - 1):
        nxt = d.clone()
        torch.minimum(nxt[..., 1:, :], d[..., :-1, :] + 1, out=nxt[..., 1:, :])
        torch.minimum(nxt[..., :-1, :], d[..., 1:, :] + 1, out=nxt[..., :-1, :])
        torch.minimum(nxt[..., :, 1:], d[..., :, :-1] + 1, out=nxt[..., :, 1:])
        torch.minimum(nxt[..., :, :-1], d[..., :, 1:] + 1, out=nxt[..., :, :-1])
        d = nxt
    beyond = (d.to(torch.float32) - dilation).clamp_min(0.0)
    return ((rim + 1 - beyond) / (rim + 1)).clamp(0.0, 1.0)


def _argsort(values: torch.Tensor) -> torch.Tensor:
    """Indices that sort a 1-D tensor. On the CPU numpy's vectorised sort is used: it is several
    times faster than ``torch.argsort`` there, and sorting dominates the probability matching."""
    if values.device.type == "cpu":
        return torch.from_numpy(np.argsort(values.numpy()))
    return torch.argsort(values)


def probability_match(field: torch.Tensor, target_sorted: torch.Tensor) -> torch.Tensor:
    """Empirical CDF matching: give each pixel the target value of the same rank.

    Exactly pysteps ``nonparam_match_empirical_cdf``, including its rule that when the target has
    more wet pixels (above its minimum) than the field, the target's smallest values are set to
    its minimum, so the matched field keeps its own wet area. Since the field's dry pixels (at
    its minimum) then all receive the target minimum, only the wet pixels need ranking: the sort
    is over the wet area, not the whole domain.

    Parameters
    ----------
    field : Tensor
        ``(N, y, x)`` finite fields (dBR).
    target_sorted : Tensor
        ``(y * x,)`` target values (dBR), sorted ascending.

    Returns
    -------
    Tensor
        ``(N, y, x)`` matched fields.
    """
    n, h, w = field.shape
    size = h * w
    if target_sorted.numel() != size:
        raise DimensionError(f"target_sorted: expected {size} values, got {target_sorted.numel()}")
    flat = field.reshape(n, size)
    out = torch.empty_like(flat)
    for i in range(n):
        row = flat[i]
        wet = torch.nonzero(row > row.min()).squeeze(1)
        out[i].fill_(target_sorted[0])
        if wet.numel():
            order = _argsort(row[wet])
            out[i, wet[order]] = target_sorted[size - wet.numel() :]
    return out.reshape(n, h, w)


@dataclass
class _StepsState:
    """Everything the member loop needs, computed once from the observations."""

    levels: list[CompactLevel]
    noise_amplitude: torch.Tensor  # (B, 1, H*Wr) amplitude filter of the noise
    phi: torch.Tensor  # (B, L, 3) float32 (phi1, phi2, phi0)
    z_prev: list[torch.Tensor]  # per level (B, n_k) complex, normalised level at t-1
    z_last: list[torch.Tensor]  # per level (B, n_k) complex, normalised level at t
    mean: torch.Tensor  # (B, L) level means of the last frame (dBR)
    std: torch.Tensor  # (B, L) level standard deviations of the last frame (dBR)
    target_sorted: torch.Tensor  # (B, H*W) last observed dBR, sorted, NaN -> zerovalue
    mask0: torch.Tensor  # (B, 1, H, W) incremental mask of the last frame
    valid: torch.Tensor  # (B, 1, H, W) float, 1 where every input frame has data
    gamma: torch.Tensor  # (B, L, 2) lag-1/lag-2 autocorrelations, for diagnostics


def fft_size(n: int) -> int:
    """Smallest even ``m >= n`` whose prime factors are 2, 3 and 5 (fast FFT sizes).

    Radar grids often have awkward sizes (MeteoSwiss: 710 = 2 x 5 x 71); padding them with
    "no rain" to 720 makes every FFT of the ensemble about twice as fast.
    """
    m = max(2, n + (n % 2))
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 2


def _prepare(frames: torch.Tensor, velocity: torch.Tensor, params: StepsParams) -> _StepsState:
    b, _, h, w = frames.shape
    fh, fw = fft_size(h), fft_size(w)
    n_pix = fh * fw
    obs = frames[:, -3:].to(torch.float32)
    valid = torch.isfinite(obs).all(dim=1, keepdim=True).to(torch.float32)
    db = to_dbr(obs, params.threshold, params.zerovalue_db)
    # Lagrangian alignment of t-2 and t-1 with t (pysteps __perform_extrapolation).
    grids = list(departure_grids(velocity, 2, n_iter=params.n_iter))
    aligned = torch.stack((advect(db[:, 0:1], grids[1])[:, 0], advect(db[:, 1:2], grids[0])[:, 0], db[:, 2]), dim=1)
    aligned = torch.nan_to_num(aligned, nan=params.zerovalue_db)
    # The cascade runs on a grid padded with "no rain" to fast FFT sizes; results are cropped.
    aligned = torch.nn.functional.pad(aligned, (0, fw - w, 0, fh - h), value=params.zerovalue_db)
    filters = gaussian_bandpass_filters(
        (fh, fw), params.n_cascade_levels, gauss_scale=params.gauss_scale, device=frames.device
    )
    levels = compact_levels(filters)
    noise_amp = nonparametric_filter(aligned).amplitude.reshape(b, 1, -1)
    spec = torch.fft.rfft2(aligned).reshape(b, 3, -1)
    z_prev, z_last, means, stds, gammas = [], [], [], [], []
    for lev in levels:
        coeffs = lev.gather(spec)  # (B, 3, n_k)
        mean, std = compact_moments(coeffs, lev, n_pix)
        if lev.has_mean:
            coeffs[..., 0] = 0.0
        z = coeffs / std.clamp_min(1e-12).unsqueeze(-1)
        gammas.append(
            torch.stack(
                (compact_covariance(z[:, 2], z[:, 1], lev, n_pix), compact_covariance(z[:, 2], z[:, 0], lev, n_pix)),
                dim=-1,
            )
        )
        z_prev.append(z[:, 1].contiguous())
        z_last.append(z[:, 2].contiguous())
        means.append(mean[:, 2])
        stds.append(std[:, 2])
    gamma = torch.stack(gammas, dim=1)  # (B, L, 2)
    phi = ar2_parameters(gamma[..., 0], gamma[..., 1]).to(torch.float32)
    target = torch.nan_to_num(db[:, 2], nan=params.zerovalue_db).reshape(b, h * w)
    target_sorted = torch.sort(target, dim=1).values
    rain = torch.nan_to_num(db[:, 2:3], nan=params.zerovalue_db) >= 10 * math.log10(params.threshold)
    mask0 = (
        incremental_mask(rain, params.mask_dilation, params.mask_rim) if params.mask_method else torch.ones_like(valid)
    )
    return _StepsState(
        levels=levels,
        noise_amplitude=noise_amp,
        phi=phi,
        z_prev=z_prev,
        z_last=z_last,
        mean=torch.stack(means, dim=1),
        std=torch.stack(stds, dim=1),
        target_sorted=target_sorted,
        mask0=mask0,
        valid=valid,
        gamma=gamma,
    )


def _chunk_size(
    params: StepsParams, n_members: int, batch: int, h: int, w: int, n_steps: int, levels: list[CompactLevel]
) -> int:
    if params.member_chunk is not None:
        return min(params.member_chunk, n_members)
    # Per member: two states of every compact level plus one noise level (complex64), the noise
    # half spectrum and recomposed spectrum, ~6 real working fields and the output.
    n_coef = sum(lev.weight.numel() for lev in levels)
    wr = w // 2 + 1
    per_member = batch * (3 * n_coef * 8 + 3 * h * wr * 8 + 6 * h * w * 4 + n_steps * h * w * 4)
    return int(max(1, min(n_members, params.max_memory_gib * 2**30 // max(per_member, 1))))


def iter_steps_members(
    frames: torch.Tensor,
    velocity: torch.Tensor,
    n_steps: int,
    n_members: int,
    *,
    seed: int = 0,
    params: StepsParams | None = None,
) -> Iterator[tuple[slice, torch.Tensor]]:
    """The ensemble chunk by chunk (bounded memory: write each chunk out as it comes).

    Parameters and validation are those of :func:`steps_ensemble`. The inputs are checked and
    the observations analysed (cascade, AR(2) parameters) when this is called, so bad inputs
    fail at once; each chunk of ``member_chunk`` members is computed when it is asked for.
    Only the chunk being computed is held: drop a chunk before asking for the next to keep
    memory to one chunk.

    Returns
    -------
    iterator of (slice, Tensor)
        ``(members, rate)``: the members of the chunk, and their ``(batch, chunk, lead, y, x)``
        float32 rain rate in mm h-1, NaN = no data. Members come in order.
    """
    params = params or StepsParams()
    if frames.dim() != 4:
        raise DimensionError(f"frames: expected (batch, time, y, x), got shape {tuple(frames.shape)}")
    if frames.shape[1] < 3:
        raise DimensionError(f"frames: STEPS needs at least 3 frames (AR(2)), got {frames.shape[1]}")
    if (
        velocity.dim() != 4
        or velocity.shape[0] != frames.shape[0]
        or velocity.shape[1] != 2
        or velocity.shape[-2:] != frames.shape[-2:]
    ):
        raise DimensionError(
            f"velocity: expected (batch, 2, y, x) = ({frames.shape[0]}, 2, {frames.shape[-2]}, {frames.shape[-1]}), got {tuple(velocity.shape)}"
        )
    if n_steps < 1:
        raise DimensionError(f"n_steps: expected at least 1 lead step, got {n_steps}")
    if n_members < 1:
        raise DimensionError(f"n_members: expected at least 1 member, got {n_members}")
    require_data(frames[:, -3:], "frames", ("batch", "time"), purpose="STEPS", offset=frames.shape[1] - 3)
    b, _, h, w = frames.shape
    st = _prepare(frames, velocity, params)
    chunk = _chunk_size(params, n_members, b, fft_size(h), fft_size(w), n_steps, st.levels)
    return _member_chunks(st, velocity, n_steps, n_members, chunk, seed, params, (h, w))


def _member_chunks(
    st: _StepsState,
    velocity: torch.Tensor,
    n_steps: int,
    n_members: int,
    chunk: int,
    seed: int,
    params: StepsParams,
    shape: tuple[int, int],
) -> Iterator[tuple[slice, torch.Tensor]]:
    """The member loop of :func:`iter_steps_members`, one chunk of members per iteration."""
    b = velocity.shape[0]
    h, w = shape
    fh, fw = fft_size(h), fft_size(w)
    n_pix = fh * fw
    device = st.valid.device  # the frames' device
    thr_db = 10 * math.log10(params.threshold)
    phi = st.phi[:, None, :, :]  # (B, 1, L, 3)
    mean_total = st.mean.sum(dim=-1)[:, None] * n_pix  # DC of the recomposed spectrum, (B, 1)
    for start in range(0, n_members, chunk):
        members = range(start, min(start + chunk, n_members))
        m = len(members)
        gen_device = "cpu" if params.noise_device == "cpu" else device
        gens = [member_generators(seed, bi, members, device=gen_device) for bi in range(b)]
        # Members share the initial state; the first update creates per-member tensors.
        z_prev = [z.unsqueeze(1) for z in st.z_prev]
        z_last = [z.unsqueeze(1) for z in st.z_last]
        mask = st.mask0.expand(b, m, h, w)
        out = torch.empty((b, m, n_steps, h, w), dtype=torch.float32, device=device)
        for n, grid in enumerate(departure_grids(velocity, n_steps, n_iter=params.n_iter)):
            noise = torch.stack(
                [white_noise_spectrum(g, (fh, fw), device=device, noise_device=params.noise_device) for g in gens]
            )
            noise = noise.reshape(b, m, -1) * st.noise_amplitude  # (B, m, H*Wr)
            spec = torch.zeros((b, m, noise.shape[-1]), dtype=noise.dtype, device=device)
            for k, lev in enumerate(st.levels):
                eps = lev.gather(noise)  # (B, m, n_k)
                _, estd = compact_moments(eps, lev, n_pix)
                if lev.has_mean:
                    eps[..., 0] = 0.0  # zero-mean noise level
                # z_new = phi0 * eps / std(eps) + phi1 * z_t + phi2 * z_{t-1}, built in place in eps.
                z_new = eps.mul_((phi[..., k, 2] / estd.clamp_min(1e-12)).unsqueeze(-1))
                z_new.add_(z_last[k] * phi[..., k, 0].unsqueeze(-1))
                z_new.add_(z_prev[k] * phi[..., k, 1].unsqueeze(-1))
                z_prev[k], z_last[k] = z_last[k], z_new
                lev.scatter_add(spec, z_new * st.std[:, None, k, None])
            del noise
            spec[..., 0] += mean_total
            # (B, m, H, W) dBR in the Lagrangian frame, cropped from the padded FFT grid.
            field = torch.fft.irfft2(spec.reshape(b, m, fh, -1), s=(fh, fw))[..., :h, :w]
            del spec
            if params.mask_method == "incremental":
                fmin = field.amin(dim=(-2, -1), keepdim=True)
                field = fmin + (field - fmin) * mask
            if params.probmatching == "cdf":
                field = torch.stack([probability_match(field[bi], st.target_sorted[bi]) for bi in range(b)])
            if params.mask_method == "incremental":
                mask = incremental_mask(field >= thr_db, params.mask_dilation, params.mask_rim)
            moved = advect(field, grid, valid=st.valid)  # no-data pixels are excluded by `valid`
            out[:, :, n] = from_dbr(moved, params.threshold)
        yield slice(start, start + m), out
        # Free this chunk (the consumer has dropped its reference) before the next is allocated.
        del out, field, moved, mask, z_prev, z_last


def steps_ensemble(
    frames: torch.Tensor,
    velocity: torch.Tensor,
    n_steps: int,
    n_members: int,
    *,
    seed: int = 0,
    params: StepsParams | None = None,
) -> torch.Tensor:
    """STEPS ensemble nowcast.

    Parameters
    ----------
    frames : Tensor
        ``(batch, time, y, x)`` rain rate in mm h-1, oldest first, ``time >= 3`` (the last three
        are used); NaN = no data. ``batch`` can hold several start times or domains of one size.
    velocity : Tensor
        ``(batch, 2, y, x)`` motion in pixels per step (:func:`.motion.estimate_motion`).
    n_steps : int
        Lead steps (at the frames' time step).
    n_members : int
        Ensemble size.
    seed : int
        Seed of the random streams; the same seed gives the same ensemble.
    params : StepsParams, optional

    Returns
    -------
    Tensor
        ``(batch, member, lead, y, x)`` float32 rain rate in mm h-1; NaN where there is no data
        upstream (outside the domain or in no-data areas of the input).

    Raises
    ------
    DimensionError
        If the shapes do not fit, fewer than 3 frames are given, ``n_steps``/``n_members`` < 1,
        or one of the last 3 frames has no data at all (every pixel NaN).

    Notes
    -----
    Without rain (every rate below ``threshold``) or with a uniform field, every cascade level
    has zero variance: the levels, their autocorrelations and the noise are all 0, the AR(2)
    guard of :func:`ar2_parameters` keeps the parameters finite, and every member is the
    uniform field (all 0 mm h-1 for no rain), NaN only where the input has no data.
    """
    return concat_members(iter_steps_members(frames, velocity, n_steps, n_members, seed=seed, params=params))


def concat_members(chunks: Iterable[tuple[slice, torch.Tensor]]) -> torch.Tensor:
    """Join member chunks (from :func:`iter_steps_members` or :meth:`Steps.iter_members`) into one
    tensor along the member dimension, ``-4`` of ``([batch,] member, lead, y, x)``."""
    parts = [rate for _, rate in chunks]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-4)


@dataclass(frozen=True)
class Steps:
    """Nowcaster: STEPS ensemble (motion from the last frames, then :func:`steps_ensemble`).

    Attributes
    ----------
    n_members : int
        Ensemble size.
    seed : int
        Seed of the random streams.
    params : StepsParams
        Ensemble parameters.
    flow : FlowParams
        Motion estimation parameters.
    n_frames : int
        Frames used for the motion (at least 3, since AR(2) needs three).
    """

    name: ClassVar[str] = "steps"
    min_frames: ClassVar[int] = 3
    ensemble: ClassVar[bool] = True

    n_members: int = 20
    seed: int = 0
    params: StepsParams = field(default_factory=StepsParams)
    flow: FlowParams = field(default_factory=FlowParams)
    n_frames: int = 3

    def __post_init__(self) -> None:
        if self.n_members < 1:
            raise DimensionError(f"n_members: expected at least 1 member, got {self.n_members}")
        if self.n_frames < 3:
            raise DimensionError(f"n_frames: STEPS needs at least 3 frames, got {self.n_frames}")

    def motion(self, frames: torch.Tensor) -> torch.Tensor:
        """``(batch, time, y, x)`` mm h-1 → ``(batch, 2, y, x)`` pixels per step."""
        return estimate_motion(frames[:, -self.n_frames :], self.flow)

    def __call__(self, frames: torch.Tensor, n_steps: int, *, velocity: torch.Tensor | None = None) -> torch.Tensor:
        """Ensemble nowcast of the last frames: :meth:`iter_members` with the chunks joined.

        Parameters
        ----------
        frames : Tensor
            ``(time, y, x)`` or ``(batch, time, y, x)`` rain rate in mm h-1, ``time >= 3``.
        n_steps : int
            Lead steps.
        velocity : Tensor, optional
            ``(batch, 2, y, x)`` motion to use instead of estimating it.

        Returns
        -------
        Tensor
            ``(member, lead, y, x)`` or ``(batch, member, lead, y, x)`` mm h-1.

        Raises
        ------
        DimensionError
            Fewer than 3 frames, shapes that do not fit, or a frame used (the last
            ``max(n_frames, 3)``) with no data at all (every pixel NaN).
        """
        return concat_members(self.iter_members(frames, n_steps, velocity=velocity))

    def iter_members(
        self, frames: torch.Tensor, n_steps: int, *, velocity: torch.Tensor | None = None
    ) -> Iterator[tuple[slice, torch.Tensor]]:
        """The ensemble nowcast chunk by chunk of members (see :func:`iter_steps_members`).

        The frames are checked and the motion estimated when this is called; each chunk is
        computed as it is asked for, so a caller that writes each chunk out and drops it holds
        one chunk (``params.member_chunk`` members, or as many as ``params.max_memory_gib``
        allows) however large the ensemble.

        Parameters
        ----------
        frames, n_steps, velocity
            As for :meth:`__call__`.

        Returns
        -------
        iterator of (slice, Tensor)
            ``(members, rate)``: the members of the chunk, in order, and their rain rate in
            mm h-1, ``(chunk, lead, y, x)`` or ``(batch, chunk, lead, y, x)`` like ``frames``.

        Raises
        ------
        DimensionError
            As for :meth:`__call__`, when called (not when iterated).
        """
        x, squeeze = batched_frames(frames, self.min_frames, "STEPS")
        # Checked here rather than only in estimate_motion/iter_steps_members, so the message
        # indexes the frames the caller passed (those see only their last frames).
        used = min(x.shape[1], max(self.n_frames, 3) if velocity is None else 3)
        require_data(x[:, -used:], "frames", ("batch", "time"), purpose="STEPS", offset=x.shape[1] - used)
        v = self.motion(x) if velocity is None else velocity
        chunks = iter_steps_members(x, v, n_steps, self.n_members, seed=self.seed, params=self.params)
        return ((members, rate[0]) for members, rate in chunks) if squeeze else chunks
