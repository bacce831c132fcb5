"""Eulerian persistence: the last observed frame, unchanged, at every lead time.

The baseline every nowcast must beat (Germann & Zawadzki 2002 compare Lagrangian persistence,
i.e. :mod:`.extrapolation`, against it).

Public API: ``persistence``, ``Persistence``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from engine.errors import DimensionError
from engine.models.nowcast.checks import require_data


def persistence(frames: torch.Tensor, n_steps: int) -> torch.Tensor:
    """Repeat the last frame ``n_steps`` times.

    Parameters
    ----------
    frames : Tensor
        ``(time, y, x)`` or ``(batch, time, y, x)`` rain rate in mm h-1; NaN = no data.
    n_steps : int
        Number of lead steps.

    Returns
    -------
    Tensor
        ``(lead, y, x)`` or ``(batch, lead, y, x)`` float32 copies of the last frame.

    Raises
    ------
    DimensionError
        If ``frames`` is not 3-D/4-D or empty in time, ``n_steps < 1``, or the last frame has no
        data at all (every pixel NaN), which would make an all-NaN forecast.
    """
    if frames.dim() not in (3, 4) or frames.shape[-3] < 1:
        raise DimensionError(
            f"frames: expected (time, y, x) or (batch, time, y, x) with time >= 1, got shape {tuple(frames.shape)}"
        )
    if n_steps < 1:
        raise DimensionError(f"n_steps: expected at least 1 lead step, got {n_steps}")
    last = frames[..., -1:, :, :].to(torch.float32)
    dims = ("batch", "time") if frames.dim() == 4 else ("time",)
    require_data(last, "frames", dims, purpose="persistence", offset=frames.shape[-3] - 1)
    return last.expand(*last.shape[:-3], n_steps, *last.shape[-2:]).clone()


@dataclass(frozen=True)
class Persistence:
    """Nowcaster: Eulerian persistence (see :func:`persistence`)."""

    name: ClassVar[str] = "persistence"
    min_frames: ClassVar[int] = 1
    ensemble: ClassVar[bool] = False

    def __call__(self, frames: torch.Tensor, n_steps: int) -> torch.Tensor:
        """``(batch, time, y, x)`` mm h-1 → ``(batch, lead, y, x)`` mm h-1 (3-D in → 3-D out)."""
        return persistence(frames, n_steps)
