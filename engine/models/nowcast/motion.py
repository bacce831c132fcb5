r"""Dense optical flow of radar rain fields: a coarse-to-fine combined local-global method in torch.

The motion field is the minimiser of a combined local-global (CLG) energy (Bruhn, Weickert &
Schnörr 2005): the Lucas-Kanade data term, i.e. the optical-flow constraint averaged over a
Gaussian window (the structure tensor), plus a Horn-Schunck smoothness term

.. math::
    E(\mathbf{w}) = \sum_{\mathbf x} \big[\mathbf{w}^\top J_\rho \mathbf w + 2\mathbf b_\rho^\top \mathbf w
    \big] + \alpha \sum_{\mathbf x} |\nabla u|^2 + |\nabla v|^2 ,

solved by Jacobi iterations of its Euler-Lagrange equations on an image pyramid with warping
(coarse-to-fine, so that displacements of many pixels are found). Why this shape for radar:

* Rain fields have no texture where it does not rain. The local (Lucas-Kanade) term is zero
  there, and the smoothness term fills the gap by interpolating the motion of the surrounding
  rain: the dense interpolation that pysteps' Lucas-Kanade does with radial basis functions
  comes out of the same minimisation here, with no feature detection.
* Every consecutive pair of the last frames contributes to one structure tensor (constant motion
  over the window), which averages out radar noise and growth/decay.
* Images are rain rates in dBR, floored at the rain threshold (continuous, so the rain edge is
  not an artificial step). Pixels without data (NaN) and warped pixels that left the domain get
  zero weight in the data term, so domain edges and radar gaps do not create spurious motion;
  the smoothness term uses reflecting boundaries.
* The finest pyramid level can be skipped (``finest_level``): motion of rain systems is smooth at
  a few kilometres, and solving at half resolution is four times cheaper.

Velocities are in pixels per time step between consecutive frames, ``(u, v)`` = (along ``x``
columns, along ``y`` rows), the pysteps convention.

Public API: ``FlowParams``, ``estimate_motion``, ``rain_to_dbr_image``.

References
----------
Bruhn, A., Weickert, J., Schnörr, C. (2005): Lucas/Kanade meets Horn/Schunck: combining local and
global optic flow methods. Int. J. Comput. Vision 61, 211-231.
Germann, U., Zawadzki, I. (2002): Scale-dependence of the predictability of precipitation from
continental radar images. Part I. Mon. Wea. Rev. 130, 2859-2873 (motion from radar images for
Lagrangian persistence).
Pulkkinen, S. et al. (2019): Pysteps v1.0. Geosci. Model Dev. 12, 4185-4219 (sect. 2.1, optical flow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.errors import DimensionError
from engine.models.nowcast.checks import require_data


@dataclass(frozen=True)
class FlowParams:
    """Parameters of :func:`estimate_motion`, with defaults tuned on the sample radar events.

    Attributes
    ----------
    alpha : float
        Weight of the smoothness term relative to the data term (dB² per pixel², per pyramid
        level). Larger is smoother; the motion of rain systems is smooth, so it is large.
    window_sigma : float
        Standard deviation (pixels of each pyramid level) of the Gaussian window of the
        structure tensor (the Lucas-Kanade window).
    threshold : float
        Rain rate (mm h-1) below which a pixel counts as dry; the image is floored there.
    finest_level : int
        Pyramid level of the finest solve (0 = full resolution, 1 = half...). The result is
        upsampled to the input grid.
    min_size : int
        The coarsest level is the last with both sides at least this many pixels.
    warps : int
        Warping (re-linearisation) passes per level.
    iterations : int
        Jacobi iterations per warp at the finest solved level; coarser levels, which are cheap,
        get proportionally more (``iterations * 2**depth``, at most 4x), since smoothness must
        travel further there in pixels.
    """

    alpha: float = 150.0
    window_sigma: float = 4.0
    threshold: float = 0.1
    finest_level: int = 1
    min_size: int = 24
    warps: int = 2
    iterations: int = 40

    def __post_init__(self) -> None:
        for name in ("alpha", "window_sigma", "threshold"):
            if not getattr(self, name) > 0:
                raise DimensionError(f"{name}: expected a positive value, got {getattr(self, name)}")
        for name in ("warps", "iterations", "min_size"):
            if getattr(self, name) < 1:
                raise DimensionError(f"{name}: expected at least 1, got {getattr(self, name)}")
        if self.finest_level < 0:
            raise DimensionError(f"finest_level: expected >= 0, got {self.finest_level}")


def rain_to_dbr_image(frames: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rain rate to a flow image: dBR floored at the rain threshold, and a validity mask.

    Parameters
    ----------
    frames : Tensor
        ``(..., y, x)`` rain rate in mm h-1; NaN = no data.
    threshold : float
        Rain threshold in mm h-1; smaller rates (and 0) map to ``10 log10(threshold)``.

    Returns
    -------
    image : Tensor
        ``(..., y, x)`` float32 dBR, finite everywhere (no-data pixels at the floor).
    valid : Tensor
        ``(..., y, x)`` float32, 1 where the input was finite, else 0.
    """
    valid = torch.isfinite(frames)
    img = torch.where(valid, frames, torch.zeros((), dtype=frames.dtype, device=frames.device))
    img = 10.0 * torch.log10(img.clamp_min(threshold))
    return img.to(torch.float32), valid.to(torch.float32)


def _gaussian_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    radius = max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)`` with reflecting edges."""
    c = x.shape[1]
    r = kernel.numel() // 2
    kx = kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    ky = kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    # Reflect padding needs the radius to be smaller than the grid; tiny coarse levels replicate.
    mode = "reflect" if r < min(x.shape[-2:]) else "replicate"
    x = F.pad(x, (r, r, r, r), mode=mode)
    x = F.conv2d(x, kx, groups=c)
    return F.conv2d(x, ky, groups=c)


def _masked_downsample(img: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Halve the resolution, averaging only valid pixels (a coarse pixel is valid if any child is)."""
    h, w = img.shape[-2] // 2 * 2, img.shape[-1] // 2 * 2
    img, valid = img[..., :h, :w], valid[..., :h, :w]
    num = F.avg_pool2d(img * valid, 2)
    den = F.avg_pool2d(valid, 2)
    floor = img.amin()
    out = torch.where(den > 0, num / den.clamp_min(1e-6), floor)
    return out, (den > 0).to(img.dtype)


def _base_grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    """``(1, h, w, 2)`` pixel coordinates ``(x, y)``."""
    ys = torch.arange(h, dtype=torch.float32, device=device)
    xs = torch.arange(w, dtype=torch.float32, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy), dim=-1).unsqueeze(0)


def _warp(img: torch.Tensor, flow: torch.Tensor, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``img`` (N, C, H, W) at ``x - flow`` (flow (N, 2, H, W) pixels); also return in-domain mask."""
    h, w = img.shape[-2:]
    pos = base - flow.permute(0, 2, 3, 1)
    grid = torch.stack((2.0 * pos[..., 0] / max(w - 1, 1) - 1.0, 2.0 * pos[..., 1] / max(h - 1, 1) - 1.0), dim=-1)
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)
    inside = (pos[..., 0] >= 0) & (pos[..., 0] <= w - 1) & (pos[..., 1] >= 0) & (pos[..., 1] <= h - 1)
    return out, inside.unsqueeze(1).to(img.dtype)


def _gradients(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences (one-sided at the edges) of ``(N, C, H, W)``, in units per pixel."""
    p = F.pad(img, (1, 1, 1, 1), mode="replicate")
    gx = 0.5 * (p[..., 1:-1, 2:] - p[..., 1:-1, :-2])
    gy = 0.5 * (p[..., 2:, 1:-1] - p[..., :-2, 1:-1])
    return gx, gy


def _neighbour_mean(flow: torch.Tensor) -> torch.Tensor:
    """Mean of the 4 neighbours of every pixel, reflecting (Neumann) boundaries."""
    p = F.pad(flow, (1, 1, 1, 1), mode="replicate")
    return 0.25 * (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:])


def _solve_level(
    img: torch.Tensor, valid: torch.Tensor, flow: torch.Tensor, params: FlowParams, iterations: int
) -> torch.Tensor:
    """Refine ``flow`` (B, 2, H, W) on one pyramid level of ``img``/``valid`` (B, T, H, W)."""
    b, t, h, w = img.shape
    base = _base_grid(h, w, img.device)
    kernel = _gaussian_kernel(params.window_sigma, img.device)
    prev, nxt = img[:, :-1], img[:, 1:]
    alpha = params.alpha
    for _ in range(params.warps):
        flow0 = flow
        prev_w, inside = _warp(prev, flow0, base)
        valid_w, _ = _warp(valid[:, :-1], flow0, base)
        weight = valid[:, 1:] * (valid_w > 0.999).to(img.dtype) * inside
        gx, gy = _gradients(0.5 * (prev_w + nxt))
        gt = nxt - prev_w
        # Structure tensor of all frame pairs at once (constant motion over the window).
        prods = torch.stack((gx * gx, gx * gy, gy * gy, gx * gt, gy * gt), dim=1) * weight.unsqueeze(1)
        prods = prods.sum(dim=2)  # sum over frame pairs -> (B, 5, H, W)
        jxx, jxy, jyy, jxt, jyt = _blur(prods, kernel).unbind(dim=1)
        # (J + alpha I) w = alpha * mean(w) + J w0 - b, solved per pixel (2x2) in every Jacobi
        # sweep: w = P mean(w) + q with P = alpha (J + alpha I)^-1 and q = (J + alpha I)^-1 (J w0 - b).
        a11, a22 = jxx + alpha, jyy + alpha
        inv_det = 1.0 / (a11 * a22 - jxy * jxy)
        u0, v0 = flow0[:, 0], flow0[:, 1]
        c1 = jxx * u0 + jxy * v0 - jxt
        c2 = jxy * u0 + jyy * v0 - jyt
        p11, p12, p22 = alpha * a22 * inv_det, -alpha * jxy * inv_det, alpha * a11 * inv_det
        q1 = (a22 * c1 - jxy * c2) * inv_det
        q2 = (a11 * c2 - jxy * c1) * inv_det
        for _ in range(iterations):
            wbar = _neighbour_mean(flow)
            ubar, vbar = wbar[:, 0], wbar[:, 1]
            flow = torch.stack(
                (
                    torch.addcmul(torch.addcmul(q1, p11, ubar), p12, vbar),
                    torch.addcmul(torch.addcmul(q2, p12, ubar), p22, vbar),
                ),
                dim=1,
            )
    return flow


def estimate_motion(frames: torch.Tensor, params: FlowParams | None = None) -> torch.Tensor:
    """Dense motion field of the last radar frames.

    Parameters
    ----------
    frames : Tensor
        ``(time, y, x)`` or ``(batch, time, y, x)`` rain rate in mm h-1 at a constant time step,
        oldest first, ``time >= 2``; NaN = no data. Batches (e.g. several start times) are solved
        together.
    params : FlowParams, optional
        Solver parameters; defaults when omitted.

    Returns
    -------
    Tensor
        ``(2, y, x)`` or ``(batch, 2, y, x)`` float32 velocity in pixels per time step:
        index 0 along ``x`` (columns), 1 along ``y`` (rows). On the frames' device.

    Raises
    ------
    DimensionError
        If ``frames`` is not 3-D or 4-D, has fewer than 2 times, a grid smaller than 8x8, or a
        frame with no data at all (every pixel NaN: the flow would silently be zero).

    Notes
    -----
    Frames without rain (all below ``params.threshold``, e.g. all 0) give exactly zero motion:
    the image is flat, so the data term vanishes and the smoothness term keeps the zero first
    guess. That is the sensible answer (nothing moves) and it is finite, so a nowcast from it is
    a finite, dry forecast.

    Examples
    --------
    >>> import torch
    >>> yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    >>> blob = lambda x0: 10 * torch.exp(-((xx - x0) ** 2 + (yy - 32) ** 2) / 50)
    >>> v = estimate_motion(torch.stack([blob(30), blob(31), blob(32)]))
    >>> abs(float(v[0, 32, 31]) - 1.0) < 0.1  # 1 pixel per step, within 10 % (about 0.95)
    True
    """
    params = params or FlowParams()
    if frames.dim() not in (3, 4):
        raise DimensionError(f"frames: expected (time, y, x) or (batch, time, y, x), got shape {tuple(frames.shape)}")
    squeeze = frames.dim() == 3
    x = frames.unsqueeze(0) if squeeze else frames
    if x.shape[1] < 2:
        raise DimensionError(f"frames: motion needs at least 2 frames, got {x.shape[1]}")
    if min(x.shape[-2:]) < 8:
        raise DimensionError(f"frames: grid {tuple(x.shape[-2:])} is too small for optical flow (min 8x8)")
    require_data(x, "frames", ("batch", "time"), purpose="motion estimation")
    height, width = x.shape[-2:]
    img, valid = rain_to_dbr_image(x, params.threshold)
    pyramid = [(img, valid)]
    while min(pyramid[-1][0].shape[-2:]) // 2 >= params.min_size:
        pyramid.append(_masked_downsample(*pyramid[-1]))
    finest = min(params.finest_level, len(pyramid) - 1)
    coarsest = len(pyramid) - 1
    flow: torch.Tensor | None = None
    for level in range(coarsest, finest - 1, -1):
        im, va = pyramid[level]
        h, w = im.shape[-2:]
        if flow is None:
            flow = torch.zeros((im.shape[0], 2, h, w), dtype=torch.float32, device=im.device)
        else:
            flow = 2.0 * F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
        depth = level - finest
        iters = params.iterations * min(2**depth, 4)
        flow = _solve_level(im, va, flow, params, iters)
    assert flow is not None
    if flow.shape[-2:] != (height, width):
        scale = torch.tensor([width / flow.shape[-1], height / flow.shape[-2]], device=flow.device).view(1, 2, 1, 1)
        flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False) * scale
    return flow[0] if squeeze else flow
