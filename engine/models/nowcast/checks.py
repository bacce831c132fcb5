"""Input checks shared by the nowcast methods.

Radar frames routinely have missing pixels (NaN: outside radar range, a radar down), and every
method handles those: the nowcast is NaN where no upstream observation exists. A frame in which
*every* pixel is missing is different: optical flow from it finds no motion at all (the data term
is zero everywhere, so the solver returns its zero first guess), and a nowcast started from it is
all NaN. Either would be passed on silently as a valid-looking result, so the methods reject
such frames with an error that names the frame.

Public API: ``require_data``, ``batched_frames``.
"""

from __future__ import annotations

import torch

from engine.errors import DimensionError


def require_data(fields: torch.Tensor, name: str, dims: tuple[str, ...], *, purpose: str, offset: int = 0) -> None:
    """Raise if any 2-D field of ``fields`` has no finite pixel.

    Parameters
    ----------
    fields : Tensor
        ``(..., y, x)`` fields; NaN (or inf) = no data.
    name : str
        Name of the argument, for the message (e.g. ``"frames"``).
    dims : tuple of str
        Names of the leading dimensions of ``fields`` (e.g. ``("batch", "time")``), for the
        message; must have ``fields.dim() - 2`` entries.
    purpose : str
        What the fields are used for (e.g. ``"motion estimation"``), for the message.
    offset : int
        Added to the index of the last leading dimension in the message, when ``fields`` is a
        slice of the caller's tensor (e.g. the last three of ``time`` frames: ``time - 3``), so
        the message indexes what the caller passed.

    Raises
    ------
    DimensionError
        Naming the index of the first field with no data at all, e.g.
        ``frames: batch 0, time 2 has no data (every pixel is NaN); motion estimation needs
        data in every frame it uses``.
    """
    if len(dims) != fields.dim() - 2:
        raise DimensionError(f"dims: expected {fields.dim() - 2} names for {name} of shape {tuple(fields.shape)}")
    if fields.numel() == 0:
        return
    # One reduction and a single host sync, whatever the batch size.
    has_data = torch.isfinite(fields).flatten(-2).any(dim=-1)
    if bool(has_data.all()):
        return
    first = (~has_data).nonzero()[0].tolist()
    if first:
        first[-1] += offset
    where = ", ".join(f"{d} {i}" for d, i in zip(dims, first, strict=True)) or "the field"
    raise DimensionError(
        f"{name}: {where} has no data (every pixel is NaN); {purpose} needs data in every frame it uses"
    )


def batched_frames(frames: torch.Tensor, min_frames: int, what: str) -> tuple[torch.Tensor, bool]:
    """``(time, y, x)`` or ``(batch, time, y, x)`` frames as a batch, and whether one was added.

    Raises
    ------
    DimensionError
        Not 3-D or 4-D, or fewer than ``min_frames`` frames for the method ``what``.
    """
    squeeze = frames.dim() == 3
    x = frames.unsqueeze(0) if squeeze else frames
    if x.dim() != 4 or x.shape[1] < min_frames:
        raise DimensionError(
            f"frames: {what} needs (batch, time >= {min_frames}, y, x), got shape {tuple(frames.shape)}"
        )
    return x, squeeze
