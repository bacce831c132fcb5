"""Cascade, noise and STEPS building blocks, checked against pysteps as the independent reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import DimensionError
from engine.models.nowcast.cascade import (
    compact_covariance,
    compact_levels,
    compact_moments,
    decompose,
    gaussian_bandpass_filters,
    recompose,
    spectral_moments,
)
from engine.models.nowcast.noise import member_generators, nonparametric_filter, white_noise_spectrum
from engine.models.nowcast.steps import ar2_parameters, incremental_mask, probability_match

pysteps = pytest.importorskip("pysteps")


@pytest.mark.parametrize("shape", [(64, 80), (81, 64)])
def test_filters_match_pysteps(shape: tuple[int, int]) -> None:
    from pysteps.cascade.bandpass_filters import filter_gaussian

    ours = gaussian_bandpass_filters(shape, 6)
    ref = filter_gaussian(shape, 6)
    np.testing.assert_allclose(ours.weights.numpy(), ref["weights_2d"], atol=1e-6)
    np.testing.assert_allclose(ours.central_wavenumbers, ref["central_wavenumbers"], rtol=1e-12)
    torch.testing.assert_close(ours.weights.sum(dim=0), torch.ones(shape[0], shape[1] // 2 + 1))


def test_decompose_recompose_roundtrip_and_pysteps_levels(mch_crop: torch.Tensor) -> None:
    from pysteps.cascade.bandpass_filters import filter_gaussian
    from pysteps.cascade.decomposition import decomposition_fft

    field = torch.log1p(mch_crop[-1])
    f = gaussian_bandpass_filters(tuple(field.shape), 6)
    levels, mean, std = decompose(field, f)
    torch.testing.assert_close(recompose(levels, mean, std), field, atol=1e-4, rtol=1e-4)
    spec_levels, _, _ = decompose(field, f, spectral=True)
    torch.testing.assert_close(recompose(spec_levels, mean, std, shape=tuple(field.shape)), field, atol=1e-4, rtol=1e-4)
    ref = decomposition_fft(field.double().numpy(), filter_gaussian(field.shape, 6), normalize=True, compute_stats=True)
    np.testing.assert_allclose(mean.numpy(), ref["means"], atol=1e-4)
    np.testing.assert_allclose(std.numpy(), ref["stds"], rtol=1e-3)
    np.testing.assert_allclose(levels.numpy(), ref["cascade_levels"], atol=2e-3)


def test_parseval_moments_and_compact_levels(mch_crop: torch.Tensor) -> None:
    field = torch.log1p(mch_crop[-1])
    h, w = field.shape
    spec = torch.fft.rfft2(field)
    mean, std = spectral_moments(spec, w)
    assert float(mean) == pytest.approx(float(field.mean()), rel=1e-5)
    assert float(std) == pytest.approx(float(field.std(unbiased=False)), rel=1e-4)
    f = gaussian_bandpass_filters((h, w), 6)
    levels = compact_levels(f)
    # The compact levels still partition every wavenumber, and keep few coefficients.
    total = torch.zeros(h * (w // 2 + 1))
    for lev in levels:
        lev.scatter_add(total, lev.weight)
    torch.testing.assert_close(total, torch.ones_like(total))
    assert sum(lev.weight.numel() for lev in levels) < 3.5 * total.numel()
    assert levels[0].index is not None and levels[0].index.numel() < 0.01 * total.numel()
    dense, dmean, dstd = decompose(field, f, normalize=False)
    flat = spec.reshape(-1)
    for k, lev in enumerate(levels):
        coeffs = lev.gather(flat)
        m, s = compact_moments(coeffs, lev, h * w)
        assert float(m) == pytest.approx(float(dense[k].mean()), abs=1e-4)
        assert float(s) == pytest.approx(float(dense[k].std(unbiased=False)), rel=2e-3)
        assert float(compact_covariance(coeffs, coeffs, lev, h * w)) == pytest.approx(float(s) ** 2, rel=1e-4)


def test_ar2_parameters_match_pysteps() -> None:
    from pysteps.timeseries.autoregression import adjust_lag2_corrcoef2, estimate_ar_params_yw

    for g1, g2 in [(0.999, 0.994), (0.96, 0.86), (0.82, 0.56), (0.45, 0.14), (0.05, 0.01), (0.9, 0.3)]:
        g2a = adjust_lag2_corrcoef2(g1, g2)
        ref = estimate_ar_params_yw([g1, g2a])
        ours = ar2_parameters(torch.tensor(g1, dtype=torch.float64), torch.tensor(g2, dtype=torch.float64)).numpy()
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)


def test_probability_matching_matches_pysteps() -> None:
    from pysteps.postprocessing.probmatching import nonparam_match_empirical_cdf

    rng = np.random.default_rng(3)
    target = np.where(rng.random((40, 50)) < 0.3, rng.gamma(2.0, 5.0, (40, 50)) - 10, -15.0).astype(np.float32)
    field = np.where(rng.random((40, 50)) < 0.2, rng.normal(0, 4, (40, 50)), -20.0).astype(np.float32)
    ref = nonparam_match_empirical_cdf(field.astype(float), target.astype(float))
    ours = probability_match(torch.from_numpy(field)[None], torch.sort(torch.from_numpy(target).reshape(-1)).values)
    np.testing.assert_allclose(ours[0].numpy(), ref, atol=1e-5)


def test_incremental_mask_matches_pysteps() -> None:
    from pysteps.nowcasts.utils import compute_dilated_mask
    from scipy.ndimage import generate_binary_structure, iterate_structure

    rng = np.random.default_rng(0)
    rain = rng.random((60, 70)) > 0.995
    struct = iterate_structure(generate_binary_structure(2, 1), 2)
    ref = compute_dilated_mask(rain, struct, 10)
    ours = incremental_mask(torch.from_numpy(rain)[None, None], 2, 10)[0, 0]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6)


def test_noise_has_the_observed_spectrum_and_is_seeded(mch_crop: torch.Tensor) -> None:
    field = 10 * torch.log10(mch_crop[-1].clamp_min(0.1))
    filt = nonparametric_filter(field[None, None])
    g1 = member_generators(7, 0, range(4))
    g2 = member_generators(7, 0, range(4))
    a = white_noise_spectrum(g1, filt.shape, device=torch.device("cpu")) * filt.amplitude
    b = white_noise_spectrum(g2, filt.shape, device=torch.device("cpu")) * filt.amplitude
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])
    # Averaged over members, the noise power spectrum follows the observed one (log-log correlation).
    noise_power = (a.abs() ** 2).mean(dim=0)
    obs_power = filt.amplitude[0] ** 2
    k = obs_power > 0
    corr = np.corrcoef(np.log(noise_power[k].numpy()), np.log(obs_power[k].numpy()))[0, 1]
    assert corr > 0.8


def test_bad_cascade_input() -> None:
    with pytest.raises(DimensionError, match="n_levels"):
        gaussian_bandpass_filters((32, 32), 2)
    f = gaussian_bandpass_filters((32, 32), 4)
    with pytest.raises(DimensionError, match="grid"):
        decompose(torch.zeros(16, 16), f)
