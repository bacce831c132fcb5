"""Smith-Barstad orographic precipitation and the precipitation downscaler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import CoordError
from engine.models.regional.grid import block_mean
from engine.models.regional.precip import OrographicPrecipDownscaler, smith_barstad

N, DX = 96, 2000.0
Y, X = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
HILL = torch.from_numpy(1000.0 * np.exp(-(((X - 48) / 6.0) ** 2 + ((Y - 48) / 6.0) ** 2)))


def test_flat_terrain_gives_no_orographic_precipitation() -> None:
    p = smith_barstad(torch.zeros(32, 32), DX, DX, 10.0, 5.0)
    assert float(p.abs().max()) < 1e-12


@pytest.mark.parametrize(("u", "v", "upwind"), [(10.0, 0.0, "west"), (0.0, 10.0, "south"), (-10.0, 0.0, "east")])
def test_rain_on_the_windward_side_and_shadow_in_the_lee(u: float, v: float, upwind: str) -> None:
    p = smith_barstad(HILL, DX, DX, u, v).numpy()  # rows run north to south
    iy, ix = np.unravel_index(np.argmax(p), p.shape)
    jy, jx = np.unravel_index(np.argmin(p), p.shape)
    if upwind == "west":
        assert ix < 48 < jx
    elif upwind == "east":
        assert jx < 48 < ix
    else:
        assert iy > 48 > jy
    assert p.max() > 0.3 and p.min() < 0  # mm/h for a 1 km hill in a 10 m/s flow


def test_linearity_in_terrain_height() -> None:
    # The model is linear in h: doubling the terrain doubles the signed precipitation.
    p1 = smith_barstad(HILL, DX, DX, 8.0, 3.0)
    p2 = smith_barstad(2 * HILL, DX, DX, 8.0, 3.0)
    np.testing.assert_allclose(p2.numpy(), 2 * p1.numpy(), rtol=1e-9, atol=1e-12)


def test_downscaler_conserves_coarse_means_and_keeps_constants_on_flat_ground() -> None:
    model = OrographicPrecipDownscaler(HILL, DX, DX, 8, (10.0, 0.0))
    rng = np.random.default_rng(0)
    coarse = torch.from_numpy(rng.gamma(0.8, 2.0, (2, N // 8, N // 8)))
    fine = model(coarse)
    assert fine.shape == (2, N, N)
    assert float(fine.min()) >= 0
    np.testing.assert_allclose(block_mean(fine, 8).numpy(), coarse.numpy(), rtol=1e-9)
    # Windward slope wetter than the lee at equal coarse input.
    const = torch.full((N // 8, N // 8), 2.0, dtype=torch.float64)
    out = model(const).numpy()
    assert out[48, 40] > out[48, 56]
    flat = OrographicPrecipDownscaler(torch.zeros(N, N), DX, DX, 8, (10.0, 0.0))
    np.testing.assert_allclose(flat(const).numpy(), 2.0, rtol=1e-9)
    # No rain is created where the coarse field has none.
    dry = const.clone()
    dry[:4] = 0.0
    assert float(model(dry)[: 4 * 8 - 8].max()) == 0.0


def test_modulate_applies_the_pattern_to_a_stochastic_field() -> None:
    model = OrographicPrecipDownscaler(HILL, DX, DX, 8, (10.0, 0.0))
    coarse = torch.full((N // 8, N // 8), 3.0, dtype=torch.float64)
    noise = torch.from_numpy(np.random.default_rng(1).gamma(1.0, 3.0, (N, N)))
    out = model.modulate(noise, coarse)
    np.testing.assert_allclose(block_mean(out, 8).numpy(), 3.0, rtol=1e-9)


def test_bad_inputs() -> None:
    with pytest.raises(CoordError, match="divisible"):
        OrographicPrecipDownscaler(torch.zeros(30, 30), DX, DX, 8, (1.0, 0.0))
    with pytest.raises(CoordError, match="factor"):
        OrographicPrecipDownscaler(torch.zeros(32, 32), DX, DX, 1, (1.0, 0.0))
    model = OrographicPrecipDownscaler(torch.zeros(32, 32), DX, DX, 8, (1.0, 0.0))
    with pytest.raises(CoordError, match="coarse grid"):
        model(torch.zeros(3, 3))
    with pytest.raises(CoordError, match="non-negative"):
        model(torch.full((4, 4), -1.0))
