"""CPU and CUDA give the same nowcasts (skipped without CUDA).

Tolerances: motion within 1e-3 px/step; extrapolation within 1e-4 mm/h relative 1e-4 (float32
bilinear interpolation differs only in rounding); STEPS members, with the white noise drawn
on the CPU (the default ``noise_device="cpu"``), agree on all but < 0.1 % of pixels within 1e-3
relative (rounding can swap the ranks of nearly tied pixels in the probability matching) and
their rain totals within 1e-4.
"""

from __future__ import annotations

import pytest
import torch

from engine.models.nowcast import estimate_motion, extrapolate, steps_ensemble

pytestmark = pytest.mark.gpu


def test_motion_and_extrapolation_cpu_equals_cuda(mch_crop: torch.Tensor) -> None:
    frames = mch_crop[None, -3:]
    v_cpu = estimate_motion(frames)
    v_gpu = estimate_motion(frames.cuda()).cpu()
    torch.testing.assert_close(v_gpu, v_cpu, atol=1e-3, rtol=1e-3)
    out_cpu = extrapolate(frames[:, -1], v_cpu, 6)
    out_gpu = extrapolate(frames[:, -1].cuda(), v_cpu.cuda(), 6).cpu()
    torch.testing.assert_close(out_gpu, out_cpu, atol=1e-4, rtol=1e-4, equal_nan=True)


def test_steps_cpu_equals_cuda(mch_crop: torch.Tensor) -> None:
    frames = mch_crop[None, -3:]
    v = estimate_motion(frames)
    cpu = steps_ensemble(frames, v, 4, 4, seed=9)
    gpu = steps_ensemble(frames.cuda(), v.cuda(), 4, 4, seed=9).cpu()
    assert torch.equal(torch.isnan(cpu), torch.isnan(gpu))
    ok = torch.isfinite(cpu)
    close = torch.isclose(gpu[ok], cpu[ok], atol=1e-3, rtol=1e-3)
    assert float((~close).float().mean()) < 1e-3
    assert float(gpu[ok].sum()) == pytest.approx(float(cpu[ok].sum()), rel=1e-4)
