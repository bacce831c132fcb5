"""Device selection: CUDA where there is one, else the CPU.

Public API: ``resolve_device``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.errors import JobError, MissingDependencyError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N"`` into a :class:`torch.device`.

    Raises
    ------
    JobError
        If ``name`` is not a device name, or CUDA is asked for where there is none.
    """
    try:
        import torch
    except ImportError as err:
        raise MissingDependencyError("torch", "models", "forecasts") from err
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise JobError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
        return torch.device(name)
    raise JobError(f"--device {name!r}: expected one of {', '.join(DEVICE_CHOICES)} or cuda:N")
