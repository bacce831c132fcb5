"""Semi-Lagrangian extrapolation: identity under zero motion, no-data handling, mass budget."""

from __future__ import annotations

import math

import pytest
import torch

from engine.errors import DimensionError
from engine.models.nowcast.extrapolation import Extrapolation, departure_grids, extrapolate, growth_decay_rate
from engine.models.nowcast.persistence import Persistence, persistence


def _blob(h: int = 96, w: int = 128, x0: float = 40.0, y0: float = 48.0, r: float = 9.0) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return 20.0 * torch.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * r * r))


def test_zero_motion_is_identity(mch_crop: torch.Tensor) -> None:
    field = mch_crop[-1]
    out = extrapolate(field, torch.zeros(2, *field.shape), 4)
    assert out.shape == (4, *field.shape)
    # Exact up to float32 round-off of the normalised sampling coordinates (~1e-7 of the grid).
    for k in range(4):
        torch.testing.assert_close(out[k], field, atol=1e-4, rtol=1e-4)


def test_integer_shift_is_exact() -> None:
    field = _blob()
    v = torch.zeros(2, *field.shape)
    v[0] = 2.0  # 2 px per step along x
    v[1] = -1.0
    out = extrapolate(field, v, 3)
    expect = torch.roll(field, shifts=(-3, 6), dims=(0, 1))
    torch.testing.assert_close(out[2][10:-10, 10:-10], expect[10:-10, 10:-10], atol=1e-4, rtol=1e-4)


def test_mass_is_conserved_inside_the_domain() -> None:
    # Sub-pixel translation with a slight rotation-free shear: rain stays inside the domain,
    # so total rain may change only through interpolation (well below 1 %).
    field = _blob()
    v = torch.zeros(2, *field.shape)
    v[0] = 1.37
    v[1] = 0.61 + 0.002 * torch.arange(field.shape[1], dtype=torch.float32)[None, :]
    out = extrapolate(field, v, 12)
    total = float(field.sum())
    for k in range(12):
        assert math.isclose(float(torch.nansum(out[k])), total, rel_tol=0.01)


def test_outside_domain_is_nan_not_zero() -> None:
    field = _blob()
    v = torch.zeros(2, *field.shape)
    v[0] = 3.0  # rain moves east: the western columns have upstream points outside the domain
    out = extrapolate(field, v, 4)
    assert torch.isnan(out[3][:, :11]).all()
    assert torch.isfinite(out[3][:, 13:]).all()


def test_rain_is_not_lost_at_no_data_edges() -> None:
    # A no-data block next to the rain: rain next to it keeps its value (normalised
    # convolution), the block moves with the flow and stays NaN.
    field = _blob(x0=60.0)
    field[:, 20:40] = float("nan")
    v = torch.zeros(2, *field.shape)
    v[0] = 0.5
    out = extrapolate(field, v, 2)
    assert torch.isnan(out[1][:, 22:40]).all()
    finite = torch.isfinite(out[1])
    assert float(out[1][finite].sum()) == pytest.approx(float(torch.nansum(field)), rel=0.01)


def test_batch_and_channels() -> None:
    f = torch.stack([_blob(), _blob(x0=70.0)])
    v = torch.zeros(2, 2, *f.shape[-2:])
    v[:, 0] = 1.5
    out = extrapolate(f, v, 3)
    assert out.shape == (2, 3, *f.shape[-2:])
    torch.testing.assert_close(out[1], extrapolate(f[1], v[1], 3), equal_nan=True)
    members = extrapolate(f[:, None].expand(-1, 3, -1, -1), v, 3)
    assert members.shape == (2, 3, 3, *f.shape[-2:])
    torch.testing.assert_close(members[:, 2], out, equal_nan=True)


def test_departure_points_follow_rotation() -> None:
    # Solid-body rotation: the midpoint rule keeps the departure radius (first order would spiral out).
    h = w = 101
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float32) - 50, torch.arange(w, dtype=torch.float32) - 50, indexing="ij"
    )
    omega = 0.05
    v = torch.stack((-omega * yy, omega * xx))
    grid = list(departure_grids(v, 10, n_iter=2))[-1][0]
    px = (grid[..., 0] + 1) * (w - 1) / 2 - 50
    py = (grid[..., 1] + 1) * (h - 1) / 2 - 50
    r0 = torch.hypot(xx, yy)[50, 80]
    assert float(torch.hypot(px[50, 80], py[50, 80])) == pytest.approx(float(r0), rel=0.01)


def test_growth_decay_follows_the_trend() -> None:
    field = _blob()
    frames = torch.stack([field, field * 0.5])[None]  # decaying by 3 dB per step
    v = torch.zeros(1, 2, *field.shape)
    rate = growth_decay_rate(frames, v)
    core = rate[0, 0, 40:56, 32:48]
    assert float(core.mean()) == pytest.approx(-3.0, abs=0.2)
    out = extrapolate(frames[:, -1], v, 3, growth_rate=rate)
    assert float(out[0, 2].max()) < float(frames[0, -1].max())


def test_persistence_equals_last_frame(mch_crop: torch.Tensor) -> None:
    out = persistence(mch_crop, 5)
    assert out.shape == (5, *mch_crop.shape[-2:])
    for k in range(5):
        assert torch.equal(out[k], mch_crop[-1])
    assert torch.equal(Persistence()(mch_crop[None], 2)[0, 1], mch_crop[-1])


def test_extrapolation_method_runs_on_real_frames(mch_crop: torch.Tensor) -> None:
    out = Extrapolation()(mch_crop[None], 3)
    assert out.shape == (1, 3, *mch_crop.shape[-2:])
    assert float(torch.nanmean(out[0, 0])) == pytest.approx(float(mch_crop[-1].mean()), rel=0.1)


def test_bad_input() -> None:
    with pytest.raises(DimensionError, match="n_steps"):
        list(departure_grids(torch.zeros(2, 8, 8), 0))
    with pytest.raises(DimensionError, match="velocity"):
        extrapolate(torch.zeros(8, 8), torch.zeros(3, 8, 8), 2)
    with pytest.raises(DimensionError, match="n_steps"):
        persistence(torch.zeros(2, 8, 8), 0)
