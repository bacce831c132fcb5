"""Semi-Lagrangian (backward) extrapolation of rain fields along a motion field.

For lead step :math:`n` the value at grid point :math:`\\mathbf x` is the initial field at the
departure point :math:`\\mathbf x_n`, found by backtracking the trajectory through the (steady)
velocity field one step at a time with the implicit midpoint rule

.. math:: \\mathbf x_{n} = \\mathbf x_{n-1} - \\mathbf v\\big(\\mathbf x_{n-1} - \\tfrac12 \\boldsymbol\\delta\\big),
    \\qquad \\boldsymbol\\delta \\leftarrow \\mathbf v(\\cdot) \\text{ iterated } ``n_iter`` \\text{ times},

(Germann & Zawadzki 2002, appendix; pysteps ``extrapolation.semilagrangian``). The field is always
sampled from the *initial* frame with the accumulated displacement, never re-interpolated step
after step, so bilinear interpolation smooths it once and not ``n`` times.

Edges and missing data (why it is done this way):

* A departure point outside the domain has no upstream observation: its value is NaN (no data),
  never zero rain, otherwise rain entering the domain would be forecast as dry.
* NaN pixels of the input are excluded from the interpolation by normalised convolution: the
  sample is :math:`\\sum_i w_i v_i f_i / \\sum_i w_i v_i` over the four neighbours (bilinear weights
  :math:`w_i`, validity :math:`v_i`), and it is NaN where less than half of the weight is valid.
  So rain next to a radar gap or the domain edge is neither smeared into zeros nor lost.
* Velocities are sampled with nearest-edge extension outside the domain (as pysteps does).

Optional Lagrangian growth/decay: a rate in dB per step, estimated as the smoothed change of the
dBR field along the trajectories between the last two frames, carried with the rain and damped
exponentially with lead time (Lagrangian persistence of the trend, cf. Germann & Zawadzki 2002).

Public API: ``departure_grids``, ``advect``, ``extrapolate``, ``growth_decay_rate``, ``Extrapolation``.

References
----------
Germann, U., Zawadzki, I. (2002): Scale-dependence of the predictability of precipitation from
continental radar images. Part I: Description of the methodology. Mon. Wea. Rev. 130, 2859-2873.
Pulkkinen, S. et al. (2019): Pysteps v1.0. Geosci. Model Dev. 12, 4185-4219 (sect. 2.2).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from engine.errors import DimensionError
from engine.models.nowcast.checks import batched_frames, require_data
from engine.models.nowcast.motion import FlowParams, estimate_motion


def _check_velocity(velocity: torch.Tensor) -> torch.Tensor:
    if velocity.dim() == 3:
        velocity = velocity.unsqueeze(0)
    if velocity.dim() != 4 or velocity.shape[1] != 2:
        raise DimensionError(f"velocity: expected (2, y, x) or (batch, 2, y, x), got shape {tuple(velocity.shape)}")
    if not bool(torch.isfinite(velocity).all()):
        raise DimensionError("velocity: contains NaN or infinite values")
    return velocity


def departure_grids(velocity: torch.Tensor, n_steps: int, *, n_iter: int = 1) -> Iterator[torch.Tensor]:
    """Departure points of the backward trajectories, one lead step after another.

    Parameters
    ----------
    velocity : Tensor
        ``(batch, 2, y, x)`` (or ``(2, y, x)``) motion in pixels per step, index 0 along ``x``.
    n_steps : int
        Number of lead steps.
    n_iter : int
        Fixed-point iterations of the midpoint rule per step. With 1 (pysteps' default), the
        midpoint velocity is sampled half a step back along the previous step's displacement,
        which is already second-order accurate for steady flow; 2 refines it.

    Yields
    ------
    Tensor
        ``(batch, y, x, 2)`` departure points for lead steps 1..n_steps in the normalised
        ``[-1, 1]`` coordinates of :func:`torch.nn.functional.grid_sample`
        (``align_corners=True``; last axis = (x, y)). Points outside ``[-1, 1]`` left the domain.
    """
    velocity = _check_velocity(velocity)
    if n_steps < 1:
        raise DimensionError(f"n_steps: expected at least 1 lead step, got {n_steps}")
    if n_iter < 1:
        raise DimensionError(f"n_iter: expected at least 1, got {n_iter}")
    b, _, h, w = velocity.shape
    # Work in normalised coordinates: velocity (pixels/step) -> grid units/step.
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=velocity.device, dtype=torch.float32)
    vel = velocity.to(torch.float32) * scale.view(1, 2, 1, 1)
    ys = torch.linspace(-1.0, 1.0, h, device=velocity.device)
    xs = torch.linspace(-1.0, 1.0, w, device=velocity.device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pos = torch.stack((gx, gy), dim=-1).unsqueeze(0).expand(b, h, w, 2).contiguous()
    step = vel.permute(0, 2, 3, 1).contiguous()  # velocity at the arrival point, first guess
    for _ in range(n_steps):
        for _ in range(n_iter):
            mid = pos - 0.5 * step
            step = F.grid_sample(vel, mid, mode="bilinear", padding_mode="border", align_corners=True).permute(
                0, 2, 3, 1
            )
        pos = pos - step
        yield pos


def advect(
    field: torch.Tensor, grid: torch.Tensor, *, valid: torch.Tensor | None = None, min_weight: float = 0.5
) -> torch.Tensor:
    """Sample fields at departure points, keeping no-data and out-of-domain points NaN.

    Parameters
    ----------
    field : Tensor
        ``(batch, channel, y, x)`` fields (e.g. rain rate in mm h-1, or several members sharing
        one motion field as channels); NaN = no data.
    grid : Tensor
        ``(batch, y, x, 2)`` departure points from :func:`departure_grids`.
    valid : Tensor, optional
        ``(batch, 1, y, x)`` or ``(batch, channel, y, x)`` validity (1/0); ``isfinite(field)``
        when omitted. Giving a shared ``(batch, 1, ...)`` mask saves one interpolation per channel.
    min_weight : float
        Fraction of the bilinear weight that must fall on valid pixels for a valid output.

    Returns
    -------
    Tensor
        ``(batch, channel, y, x)``: the normalised-convolution sample, NaN where it has no support.
    """
    if field.dim() != 4 or grid.dim() != 4 or grid.shape[0] != field.shape[0] or grid.shape[-1] != 2:
        raise DimensionError(
            f"field/grid: expected (B, C, y, x) and (B, y, x, 2), got {tuple(field.shape)} and {tuple(grid.shape)}"
        )
    if valid is None:
        valid = torch.isfinite(field).to(field.dtype)
    valid = valid.to(field.dtype)
    filled = torch.where(valid > 0, field, torch.zeros((), dtype=field.dtype, device=field.device))
    if valid.shape[1] == 1 and field.shape[1] > 1:
        # Validity shared by all channels (ensemble members): interpolate it once.
        num = F.grid_sample(filled, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        den = F.grid_sample(valid, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    else:
        # One interpolation for the values and their validity weights (shared grid arithmetic).
        both = F.grid_sample(
            torch.cat((filled, valid), dim=1), grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )
        num, den = both[:, : field.shape[1]], both[:, field.shape[1] :]
    ok = den >= min_weight
    return torch.where(
        ok, num / den.clamp_min(1e-6), torch.full((), float("nan"), dtype=field.dtype, device=field.device)
    )


def growth_decay_rate(
    frames: torch.Tensor, velocity: torch.Tensor, *, threshold: float = 0.1, sigma: float = 8.0, max_rate: float = 3.0
) -> torch.Tensor:
    """Lagrangian growth/decay rate of the last two frames, in dB per step.

    The change of dBR along trajectories, :math:`10\\log_{10} R_t(\\mathbf x) - 10\\log_{10}
    R_{t-1}(\\mathbf x - \\mathbf v)`, on rainy pixels only, smoothed with a normalised Gaussian
    of ``sigma`` pixels (growth and decay are organised on scales of tens of kilometres; pixel
    changes are mostly noise) and clipped to ``±max_rate``.

    Parameters
    ----------
    frames : Tensor
        ``(batch, time, y, x)`` rain rate (mm h-1), ``time >= 2``.
    velocity : Tensor
        ``(batch, 2, y, x)`` pixels per step.
    threshold : float
        Rain threshold (mm h-1) of the pixels used.
    sigma : float
        Smoothing scale in pixels.
    max_rate : float
        Bound on the rate (dB per step).

    Returns
    -------
    Tensor
        ``(batch, 1, y, x)`` float32 rate in dB per step, 0 where there is no rain nearby.
    """
    velocity = _check_velocity(velocity)
    prev = frames[:, -2:-1]
    last = frames[:, -1:]
    grid = next(departure_grids(velocity, 1))
    prev_adv = advect(prev, grid)
    rain = torch.isfinite(prev_adv) & torch.isfinite(last) & ((prev_adv >= threshold) | (last >= threshold))
    db = lambda r: 10.0 * torch.log10(torch.nan_to_num(r, nan=0.0).clamp_min(threshold))  # noqa: E731
    change = torch.where(rain, db(last) - db(prev_adv), torch.zeros_like(last))
    weight = rain.to(torch.float32)
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=frames.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()

    def blur(z: torch.Tensor) -> torch.Tensor:
        z = F.conv2d(F.pad(z, (radius, radius, 0, 0)), k.view(1, 1, 1, -1))
        return F.conv2d(F.pad(z, (0, 0, radius, radius)), k.view(1, 1, -1, 1))

    num, den = blur(change), blur(weight)
    rate = torch.where(den > 1e-3, num / den.clamp_min(1e-3), torch.zeros_like(num))
    return rate.clamp(-max_rate, max_rate)


def extrapolate(
    field: torch.Tensor,
    velocity: torch.Tensor,
    n_steps: int,
    *,
    n_iter: int = 1,
    growth_rate: torch.Tensor | None = None,
    growth_timescale: float = 6.0,
    threshold: float = 0.1,
) -> torch.Tensor:
    """Extrapolate rain fields ``n_steps`` ahead along a steady motion field.

    Parameters
    ----------
    field : Tensor
        ``(y, x)``, ``(batch, y, x)`` or ``(batch, channel, y, x)`` rain rate in mm h-1 at the
        start time; NaN = no data.
    velocity : Tensor
        ``(2, y, x)`` or ``(batch, 2, y, x)`` motion in pixels per step (see
        :func:`engine.models.nowcast.motion.estimate_motion`).
    n_steps : int
        Number of lead steps.
    n_iter : int
        Midpoint-rule iterations per step (:func:`departure_grids`).
    growth_rate : Tensor, optional
        ``(batch, 1, y, x)`` dB per step from :func:`growth_decay_rate`; advected with the rain
        and damped as :math:`e^{-n/\\tau}` (lead step :math:`n`, ``tau = growth_timescale``).
    growth_timescale : float
        e-folding time of the growth/decay trend in steps.
    threshold : float
        Rain threshold (mm h-1): with growth/decay, rates that decay below it become 0.

    Returns
    -------
    Tensor
        ``field``'s leading dims followed by ``(lead, y, x)``: ``(lead, y, x)``,
        ``(batch, lead, y, x)`` or ``(batch, channel, lead, y, x)``, float32 mm h-1.

    Raises
    ------
    DimensionError
        If the shapes do not fit, or a field has no data at all (every pixel NaN), which would
        give an all-NaN nowcast.
    """
    ndim = field.dim()
    if ndim == 2:
        x = field[None, None]
    elif ndim == 3:
        x = field[:, None]
    elif ndim == 4:
        x = field
    else:
        raise DimensionError(f"field: expected 2 to 4 dims ending in (y, x), got shape {tuple(field.shape)}")
    require_data(field, "field", ("batch", "channel")[: ndim - 2], purpose="extrapolation")
    velocity = _check_velocity(velocity)
    if velocity.shape[0] != x.shape[0] or velocity.shape[-2:] != x.shape[-2:]:
        raise DimensionError(f"velocity: shape {tuple(velocity.shape)} does not fit field {tuple(field.shape)}")
    x = x.to(torch.float32)
    valid = torch.isfinite(x).to(torch.float32)
    shared = bool((valid == valid[:, :1]).all())
    valid_arg = valid[:, :1] if shared else valid
    out = torch.empty((x.shape[0], x.shape[1], n_steps, *x.shape[-2:]), dtype=torch.float32, device=x.device)
    decay_sum = 0.0
    for n, grid in enumerate(departure_grids(velocity, n_steps, n_iter=n_iter)):
        adv = advect(x, grid, valid=valid_arg)
        if growth_rate is not None:
            # The trend belongs to the rain parcel: the parcel arriving at x after n steps started
            # at the departure point, and has grown by rate * sum_k exp(-k / tau) dB since.
            decay_sum += math.exp(-(n + 1) / growth_timescale)
            rate_n = advect(growth_rate, grid, valid=torch.ones_like(growth_rate)).nan_to_num(0.0)
            adv = adv * torch.pow(10.0, rate_n * (decay_sum / 10.0))
            adv = torch.where(adv < threshold, torch.zeros_like(adv), adv)
        out[:, :, n] = adv
    if ndim == 2:
        return out[0, 0]
    if ndim == 3:
        return out[:, 0]
    return out


@dataclass(frozen=True)
class Extrapolation:
    """Nowcaster: optical flow of the last frames + semi-Lagrangian extrapolation of the last one.

    Attributes
    ----------
    flow : FlowParams
        Motion estimation parameters (:func:`engine.models.nowcast.motion.estimate_motion`).
    n_frames : int
        How many of the last frames the motion is estimated from (at least 2).
    n_iter : int
        Midpoint iterations of the backtracking.
    growth_decay : bool
        Apply the Lagrangian growth/decay trend of the last two frames (:func:`growth_decay_rate`).
    growth_timescale : float
        e-folding time (steps) of that trend.
    """

    name: ClassVar[str] = "extrapolation"
    min_frames: ClassVar[int] = 2
    ensemble: ClassVar[bool] = False

    flow: FlowParams = field(default_factory=FlowParams)
    n_frames: int = 3
    n_iter: int = 1
    growth_decay: bool = False
    growth_timescale: float = 6.0

    def __post_init__(self) -> None:
        if self.n_frames < 2:
            raise DimensionError(f"n_frames: motion needs at least 2 frames, got {self.n_frames}")

    def motion(self, frames: torch.Tensor) -> torch.Tensor:
        """``(batch, time, y, x)`` mm h-1 → ``(batch, 2, y, x)`` pixels per step."""
        return estimate_motion(frames[:, -self.n_frames :], self.flow)

    def __call__(self, frames: torch.Tensor, n_steps: int, *, velocity: torch.Tensor | None = None) -> torch.Tensor:
        """Extrapolate the last frame.

        Parameters
        ----------
        frames : Tensor
            ``(time, y, x)`` or ``(batch, time, y, x)`` rain rate in mm h-1, ``time >= 2``.
        n_steps : int
            Lead steps.
        velocity : Tensor, optional
            ``(batch, 2, y, x)`` motion to use instead of estimating it.

        Returns
        -------
        Tensor
            ``(lead, y, x)`` or ``(batch, lead, y, x)`` mm h-1.

        Raises
        ------
        DimensionError
            Fewer than 2 frames, a velocity that does not fit the grid, or a frame used (the
            last ``n_frames`` for the motion, the last one for the extrapolation) with no data
            at all. Frames without rain give zero motion and an all-zero nowcast (NaN only
            where the input has no data).
        """
        x, squeeze = batched_frames(frames, self.min_frames, "extrapolation")
        # Checked here rather than only in estimate_motion, so the message indexes the frames
        # the caller passed (the motion sees only the last n_frames).
        used = min(x.shape[1], self.n_frames if velocity is None else 1)
        require_data(x[:, -used:], "frames", ("batch", "time"), purpose="extrapolation", offset=x.shape[1] - used)
        v = self.motion(x) if velocity is None else _check_velocity(velocity)
        rate = growth_decay_rate(x, v) if self.growth_decay else None
        out = extrapolate(
            x[:, -1], v, n_steps, n_iter=self.n_iter, growth_rate=rate, growth_timescale=self.growth_timescale
        )
        return out[0] if squeeze else out
