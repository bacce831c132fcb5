"""Helpers shared by the nowcast tests (a uniquely named module: every test folder has a conftest)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

MCH_EVENT = Path("pysteps-data/radar/mch/20150515")


def mch_files(data_root: Path, start: int, n: int) -> list[Path]:
    """``n`` consecutive MeteoSwiss frames from index ``start`` (skips the test if absent)."""
    files = sorted((data_root / MCH_EVENT).glob("AQC*.gif"))
    if len(files) < start + n:
        pytest.skip(f"MeteoSwiss sample frames not found under {data_root / MCH_EVENT}")
    return files[start : start + n]


def shift_field(field: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """Translate ``(y, x)`` by ``(dx, dy)`` pixels (bilinear); what enters from outside is 0."""
    h, w = field.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    grid = torch.stack((2 * (xs - dx) / (w - 1) - 1, 2 * (ys - dy) / (h - 1) - 1), dim=-1)[None]
    out = torch.nn.functional.grid_sample(field[None, None], grid, align_corners=True, padding_mode="zeros")
    return out[0, 0]
