"""Physics-guided neural-field downscaling: fit, coarse consistency, resolution-free evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import CoordError
from engine.models.regional.grid import LatLonGrid, block_mean, target_grid
from engine.models.regional.neural_field import NeuralFieldDownscaler
from engine.models.regional.temperature import LapseRateDownscaler


def _case() -> tuple[np.ndarray, torch.Tensor, LatLonGrid, LatLonGrid, np.ndarray]:
    fine = target_grid(46.0, 46.8, 10.0, 10.8, 0.05)  # 16 x 16
    coarse = LatLonGrid(fine.lat.reshape(-1, 4).mean(1), fine.lon.reshape(-1, 4).mean(1))
    rng = np.random.default_rng(0)
    y, x = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    z = 800 + 600 * np.sin(x / 2.3) * np.cos(y / 3.1) + rng.uniform(0, 100, (16, 16))
    truth = np.stack([280 + k - 0.0065 * z + 0.5 * np.sin(x / 5.0 + k) for k in range(4)])
    t_c = block_mean(torch.from_numpy(truth), 4)
    return z, t_c, coarse, fine, truth


def test_fit_reduces_the_loss_and_matches_coarse_cell_means() -> None:
    z, t_c, coarse, fine, _ = _case()
    cc, fc = {"lat": coarse.lat, "lon": coarse.lon}, {"lat": fine.lat, "lon": fine.lon}
    z_c = block_mean(torch.from_numpy(z), 4).numpy()
    model = NeuralFieldDownscaler(z, z_c, steps=60, batch_times=4, hidden=16, layers=2, n_fourier=4, lr=1e-2)
    out = model(t_c, cc, fc)
    assert out.shape == (4, 16, 16)
    assert model.loss_history[-1] < 0.5 * model.loss_history[0]
    base = LapseRateDownscaler(z, z_c)(t_c, cc, fc)
    # The data term is the coarse-cell mean: the neural field moves closer to it than the
    # reduce-interpolate-restore lapse-rate field it starts from.
    err_nf = (block_mean(out, 4) - t_c).abs().mean()
    err_lr = (block_mean(base, 4) - t_c).abs().mean()
    assert err_nf < err_lr


def test_resolution_free_evaluation() -> None:
    z, t_c, coarse, fine, _ = _case()
    model = NeuralFieldDownscaler(z, steps=5, batch_times=2, hidden=8, layers=1, n_fourier=2)
    with pytest.raises(CoordError, match="not been fitted"):
        model.evaluate(np.array([46.4]), np.array([10.4]), np.array([900.0]), np.array([0.0]))
    model(t_c, {"lat": coarse.lat, "lon": coarse.lon}, {"lat": fine.lat, "lon": fine.lon})
    # Any points, any density: here 1000 random points between the grid nodes.
    rng = np.random.default_rng(1)
    pts = [rng.uniform(46.0, 46.8, 1000), rng.uniform(10.0, 10.8, 1000), rng.uniform(200, 1500, 1000),
           rng.uniform(0, 3, 1000)]
    g = model.evaluate(*pts)
    assert g.shape == (1000,) and torch.isfinite(g).all()


def test_bad_input() -> None:
    z, t_c, coarse, fine, _ = _case()
    with pytest.raises(CoordError, match="time, ny, nx"):
        NeuralFieldDownscaler(z, steps=1)(t_c[0], {"lat": coarse.lat, "lon": coarse.lon}, {"lat": fine.lat, "lon": fine.lon})
    with pytest.raises(CoordError, match="positive"):
        NeuralFieldDownscaler(z, steps=0)
