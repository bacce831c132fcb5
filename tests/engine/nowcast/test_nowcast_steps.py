"""STEPS ensemble: spread, closeness to the deterministic nowcast, seeding, no-data handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import DimensionError
from engine.models.base import EnsembleNowcaster
from engine.models.nowcast import Steps, StepsParams, estimate_motion, extrapolate, steps_ensemble
from engine.models.nowcast.steps import concat_members, iter_steps_members

N_STEPS = 4


@pytest.fixture(scope="module")
def inputs(mch_crop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    frames = mch_crop[None, -3:]
    return frames, estimate_motion(frames)


@pytest.fixture(scope="module")
def ensemble(inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    frames, v = inputs
    return steps_ensemble(frames, v, N_STEPS, 8, seed=11)


def test_shape_spread_and_intensity(inputs: tuple[torch.Tensor, torch.Tensor], ensemble: torch.Tensor) -> None:
    frames, _ = inputs
    assert ensemble.shape == (1, 8, N_STEPS, *frames.shape[-2:])
    spread = ensemble[0].std(dim=0)
    assert float(torch.nanmean(spread[0])) > 0
    # Spread grows with lead time as small scales lose memory.
    assert float(torch.nanmean(spread[-1])) > float(torch.nanmean(spread[0]))
    # Spread: members differ pixel by pixel.
    assert not torch.allclose(ensemble[0, 0, 0], ensemble[0, 1, 0], equal_nan=True)


def test_probability_matching_keeps_observed_intensities(inputs: tuple[torch.Tensor, torch.Tensor]) -> None:
    # Without motion (no interpolation), every member's wet values are the observed top values.
    frames, _ = inputs
    out = steps_ensemble(frames, torch.zeros(1, 2, *frames.shape[-2:]), 1, 2, seed=5)
    obs = torch.sort(frames[0, -1].reshape(-1)).values
    for member in out[0, :, 0]:
        wet = torch.sort(member[member > 0]).values
        assert 0 < wet.numel() <= (obs > 0.1).sum()
        torch.testing.assert_close(wet, obs[-wet.numel() :], atol=1e-3, rtol=1e-4)


def test_ensemble_mean_close_to_deterministic(
    inputs: tuple[torch.Tensor, torch.Tensor], ensemble: torch.Tensor
) -> None:
    frames, v = inputs
    det = extrapolate(frames[:, -1], v, N_STEPS)[0]
    mean = ensemble[0].mean(dim=0)
    for k in range(N_STEPS):
        ok = torch.isfinite(mean[k]) & torch.isfinite(det[k])
        corr = np.corrcoef(mean[k][ok].numpy(), det[k][ok].numpy())[0, 1]
        assert corr > (0.9 if k == 0 else 0.8), (k, corr)
        # Averaging removes the members' independent noise: the mean is closer to the
        # deterministic nowcast than any single member is.
        rmse_mean = float((mean[k][ok] - det[k][ok]).square().mean().sqrt())
        rmse_members = [float((m[k][ok] - det[k][ok]).square().mean().sqrt()) for m in ensemble[0]]
        assert rmse_mean < min(rmse_members), (k, rmse_mean, rmse_members)
        # Same rain amount within 25 % (the ensemble mean is smoother but not biased).
        assert float(mean[k][ok].sum()) == pytest.approx(float(det[k][ok].sum()), rel=0.25)


def test_same_seed_same_ensemble_other_seed_differs(
    inputs: tuple[torch.Tensor, torch.Tensor], ensemble: torch.Tensor
) -> None:
    frames, v = inputs
    again = steps_ensemble(frames, v, N_STEPS, 8, seed=11)
    torch.testing.assert_close(again, ensemble, rtol=0, atol=0, equal_nan=True)  # bitwise
    other = steps_ensemble(frames, v, N_STEPS, 8, seed=12)
    assert not torch.allclose(other, ensemble, equal_nan=True)


def test_member_chunking_does_not_change_members(
    inputs: tuple[torch.Tensor, torch.Tensor], ensemble: torch.Tensor
) -> None:
    frames, v = inputs
    chunked = steps_ensemble(frames, v, N_STEPS, 8, seed=11, params=StepsParams(member_chunk=3))
    assert_same_ensemble(chunked, ensemble)


def assert_same_ensemble(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal up to float32 round-off. Batched FFTs sum in a different order, which can swap the
    ranks of two nearly tied pixels in the probability matching; such a swap moves a value to the
    neighbouring rank's, so a handful of pixels (< 1e-4 of them) may differ by more."""
    assert a.shape == b.shape
    assert torch.equal(torch.isnan(a), torch.isnan(b))
    ok = torch.isfinite(a)
    close = torch.isclose(a[ok], b[ok], atol=1e-4, rtol=1e-4)
    assert float((~close).float().mean()) < 1e-4
    assert float(a[ok].sum()) == pytest.approx(float(b[ok].sum()), rel=1e-5)


def test_no_data_stays_nan(mch_full: np.ndarray) -> None:
    # The real composite: NaN outside the radar range must stay NaN, rain must stay finite.
    # An awkward width (253 = 11 x 23) also exercises the padding to a fast FFT size.
    frames = torch.from_numpy(mch_full[None, -3:, 150:406, 60:313].copy())
    assert torch.isnan(frames[0, -1]).any() and (frames[0, -1] > 0.1).any()
    v = torch.zeros(1, 2, *frames.shape[-2:])
    out = steps_ensemble(frames, v, 2, 2, seed=0)
    nodata = torch.isnan(frames[0]).any(dim=0)
    assert torch.isnan(out[0, :, :, nodata]).all()
    assert torch.isfinite(out[0, :, :, ~nodata]).all()


def test_method_class_and_batch(inputs: tuple[torch.Tensor, torch.Tensor]) -> None:
    frames, v = inputs
    two = torch.cat([frames, frames.flip(-1)])
    out = Steps(n_members=2, seed=3)(two, 2)
    assert out.shape == (2, 2, 2, *frames.shape[-2:])
    alone = Steps(n_members=2, seed=3)(frames, 2)
    assert_same_ensemble(out[:1], alone)


def test_bad_input(inputs: tuple[torch.Tensor, torch.Tensor]) -> None:
    frames, v = inputs
    with pytest.raises(DimensionError, match="n_members"):
        steps_ensemble(frames, v, 2, 0)
    with pytest.raises(DimensionError, match="n_steps"):
        steps_ensemble(frames, v, 0, 2)
    with pytest.raises(DimensionError, match="at least 3 frames"):
        steps_ensemble(frames[:, :2], v, 2, 2)
    with pytest.raises(DimensionError, match="velocity"):
        steps_ensemble(frames, v[:, :1], 2, 2)
    with pytest.raises(DimensionError, match="n_cascade_levels"):
        StepsParams(n_cascade_levels=2)


def test_iter_members_yields_the_ensemble_chunk_by_chunk(
    inputs: tuple[torch.Tensor, torch.Tensor], ensemble: torch.Tensor
) -> None:
    frames, v = inputs
    method = Steps(n_members=8, seed=11, params=StepsParams(member_chunk=3))
    chunks = list(method.iter_members(frames, N_STEPS, velocity=v))
    assert [m for m, _ in chunks] == [slice(0, 3), slice(3, 6), slice(6, 8)]
    assert [tuple(c.shape) for _, c in chunks] == [(1, n, N_STEPS, *frames.shape[-2:]) for n in (3, 3, 2)]
    # __call__ is the same generator with the chunks joined: equal bit for bit (NaN included).
    assert same_bits(concat_members(chunks), method(frames, N_STEPS, velocity=v))
    assert same_bits(
        concat_members(chunks), steps_ensemble(frames, v, N_STEPS, 8, seed=11, params=StepsParams(member_chunk=3))
    )
    assert_same_ensemble(concat_members(chunks), ensemble)  # other chunking, same members
    # Frames without a batch dimension give chunks without one, like __call__.
    (members, alone), *_ = method.iter_members(frames[0], N_STEPS, velocity=v)
    assert members == slice(0, 3) and same_bits(alone, chunks[0][1][0])
    assert isinstance(method, EnsembleNowcaster)


def test_iter_members_checks_inputs_when_called(inputs: tuple[torch.Tensor, torch.Tensor]) -> None:
    # Errors come at once, not at the first chunk (which a job computes while writing its store).
    frames, v = inputs
    with pytest.raises(DimensionError, match="time >= 3"):
        Steps(n_members=2).iter_members(frames[:, :2], 2)
    with pytest.raises(DimensionError, match="n_steps"):
        iter_steps_members(frames, v, 0, 2)
    with pytest.raises(DimensionError, match="velocity"):
        iter_steps_members(frames, v[:, :1], 2, 2)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit for bit: NaN where NaN, -0.0 apart from 0.0."""
    return a.shape == b.shape and torch.equal(a.view(torch.int32), b.view(torch.int32))
