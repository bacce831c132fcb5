"""The small protocols every model family satisfies.

Models map tensors described by their coordinates; rollouts, device placement, batching and
storage live in the job layer (:mod:`engine.jobs`), never in model files.

Public API: ``ForecastModel``, ``Nowcaster``, ``EnsembleNowcaster``, ``Downscaler``, ``models``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

import numpy as np

from engine.registry import Registry

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Self

    import torch

Coords = OrderedDict[str, np.ndarray]


@runtime_checkable
class ForecastModel(Protocol):
    """Advance a global state by one model step (dynamical core or pretrained network)."""

    def input_coords(self) -> Coords:
        """Coordinates of the state the model expects (``variable``, ``lat``, ``lon``...)."""
        ...

    def output_coords(self, input_coords: Coords) -> Coords:
        """Coordinates of one step's output; raises ``CoordError`` if ``input_coords`` do not fit."""
        ...

    def __call__(self, x: torch.Tensor, coords: Coords) -> tuple[torch.Tensor, Coords]:
        """One step: state ``x`` with ``coords`` → next state and its coords."""
        ...

    def to(self, device: torch.device) -> Self: ...


@runtime_checkable
class Nowcaster(Protocol):
    """Extrapolate the last radar frames ``(time, y, x)`` in mm/h to ``n_steps`` future frames.

    Attributes: ``name`` (registry key), ``min_frames`` (input frames needed), ``ensemble``
    (whether the output has a member dim).
    """

    name: ClassVar[str]
    min_frames: ClassVar[int]
    ensemble: ClassVar[bool]

    def __call__(self, frames: torch.Tensor, n_steps: int) -> torch.Tensor:
        """``frames``: ``(time, y, x)`` (or ``(batch, time, y, x)``) → ``(n_steps, y, x)`` (plus member/batch dims)."""
        ...


@runtime_checkable
class EnsembleNowcaster(Nowcaster, Protocol):
    """A nowcaster whose members can be had chunk by chunk, so an ensemble never has to fit in memory."""

    def iter_members(self, frames: torch.Tensor, n_steps: int) -> Iterator[tuple[slice, torch.Tensor]]:
        """``(members, rate)`` per chunk, members in order; ``rate`` is ``__call__``'s output for those members.

        Inputs are checked when called; each chunk is computed when it is asked for.
        """
        ...


@runtime_checkable
class Downscaler(Protocol):
    """Map a coarse field onto a fine grid, using fine-grid terrain."""

    def __call__(self, coarse: torch.Tensor, coarse_coords: Coords, fine_coords: Coords) -> torch.Tensor: ...


#: Every model that a job can name, by family-qualified name (``"nowcast/steps"``, ``"global/swm"``).
models: Registry[type] = Registry("model")
