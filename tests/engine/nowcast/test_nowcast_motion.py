"""Optical flow: known shifts of a real radar frame are recovered, also sub-pixel."""

from __future__ import annotations

import pytest
import torch
from nowcast_helpers import shift_field

from engine.errors import DimensionError
from engine.models.nowcast.motion import FlowParams, estimate_motion

# Tolerance (pixels per step) for the motion over rainy pixels away from the crop edges.
MEDIAN_TOL = 0.1
MEAN_ABS_TOL = 0.2


def _rain_interior(frame: torch.Tensor, margin: int = 24) -> torch.Tensor:
    m = frame > 0.5
    inner = torch.zeros_like(m)
    inner[margin:-margin, margin:-margin] = True
    return m & inner


@pytest.mark.parametrize(("dx", "dy"), [(3.0, -2.0), (1.4, 0.6), (-0.3, 0.25), (7.0, 4.0)])
def test_recovers_known_shift(mch_crop: torch.Tensor, dx: float, dy: float) -> None:
    base = mch_crop[-1]
    frames = torch.stack([base, shift_field(base, dx, dy), shift_field(base, 2 * dx, 2 * dy)])
    v = estimate_motion(frames)
    assert v.shape == (2, *base.shape)
    m = _rain_interior(frames[-1])
    assert m.sum() > 1000
    for comp, truth in ((v[0], dx), (v[1], dy)):
        err = comp[m] - truth
        assert abs(float(err.median())) < MEDIAN_TOL, (truth, float(comp[m].median()))
        assert float(err.abs().mean()) < MEAN_ABS_TOL


def test_identical_frames_give_zero_motion(mch_crop: torch.Tensor) -> None:
    frames = mch_crop[-1].expand(3, -1, -1).clone()
    v = estimate_motion(frames)
    assert float(v.abs().max()) < 1e-4


def test_no_data_regions_and_dry_areas_stay_finite_and_smooth(mch_crop: torch.Tensor) -> None:
    # A radar gap (NaN) and dry areas: the motion there is interpolated, finite, and close to
    # the motion of the surrounding rain (no spurious vectors at the gap's edge).
    base = mch_crop[-1]
    frames = torch.stack([base, shift_field(base, 2.0, 1.0), shift_field(base, 4.0, 2.0)])
    frames[:, 100:140, 100:160] = float("nan")
    v = estimate_motion(frames)
    assert torch.isfinite(v).all()
    gap = v[:, 100:140, 100:160]
    assert float((gap[0] - 2.0).abs().mean()) < 0.3 and float((gap[1] - 1.0).abs().mean()) < 0.3


def test_batch_equals_single(mch_crop: torch.Tensor) -> None:
    a = mch_crop[:3]
    b = torch.stack([mch_crop[-1], shift_field(mch_crop[-1], 1.0, 1.0), shift_field(mch_crop[-1], 2.0, 2.0)])
    both = estimate_motion(torch.stack([a, b]))
    torch.testing.assert_close(both[0], estimate_motion(a), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(both[1], estimate_motion(b), atol=1e-4, rtol=1e-4)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(DimensionError, match="at least 2 frames"):
        estimate_motion(torch.zeros(1, 32, 32))
    with pytest.raises(DimensionError, match="frames"):
        estimate_motion(torch.zeros(32, 32))
    with pytest.raises(DimensionError, match="alpha"):
        FlowParams(alpha=0.0)
