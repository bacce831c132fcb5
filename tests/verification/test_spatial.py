"""Spatial scores against pysteps (FSS, SAL, RAPSD), OpenCV and known shifts (displacement)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from verification_factories import make_rain

from engine.errors import DimensionError
from verification import displacement, fss, power_spectrum, sal

RTOL = 1e-6


@pytest.fixture(scope="module")
def ps_spatial() -> Any:
    """``pysteps.verification.spatialscores``, the reference implementation; only the tests comparing with it skip without it."""
    return pytest.importorskip("pysteps.verification.spatialscores")


@pytest.fixture(scope="module")
def ps_spectral() -> Any:
    """``pysteps.utils.spectral``, the reference implementation; only the tests comparing with it skip without it."""
    return pytest.importorskip("pysteps.utils.spectral")


def _da(a: np.ndarray) -> xr.DataArray:
    return xr.DataArray(a, dims=["y", "x"])


def _crop(radar_pair):
    f, o = radar_pair
    return f[150:450, 200:520], o[150:450, 200:520]  # 300 x 320 km around the convection


# ---------------------------------------------------------------- FSS


@pytest.mark.parametrize("window", [1, 2, 5, 16])
@pytest.mark.parametrize("thr", [0.1, 1.0, 5.0])
def test_fss_matches_pysteps_on_real_radar(radar_pair, thr, window, ps_spatial: Any):
    f, o = _crop(radar_pair)  # NaN outside the radar range: non-events in both
    ours = float(fss(f, o, threshold=thr, window=window))
    ref = ps_spatial.fss(f.values, o.values, thr, window)
    np.testing.assert_allclose(ours, ref, rtol=RTOL)


def test_fss_pools_batch_dims_like_pysteps_accum(ps_spatial: Any):
    fields_f = [make_rain(seed=s, ny=40, nx=50) for s in range(3)]
    fields_o = [make_rain(seed=s + 10, ny=40, nx=50) for s in range(3)]
    obj = ps_spatial.fss_init(1.0, 7)
    for a, b in zip(fields_f, fields_o, strict=True):
        ps_spatial.fss_accum(obj, a, b)
    f = xr.DataArray(np.stack(fields_f), dims=["time", "y", "x"])
    o = xr.DataArray(np.stack(fields_o), dims=["time", "y", "x"])
    np.testing.assert_allclose(float(fss(f, o, threshold=1.0, window=7)), ps_spatial.fss_compute(obj), rtol=RTOL)
    per_time = fss(f, o, threshold=1.0, window=7, preserve_dims="time")
    for t in range(3):
        ref = ps_spatial.fss(fields_f[t], fields_o[t], 1.0, 7)
        np.testing.assert_allclose(float(per_time[t]), ref, rtol=RTOL)


def test_fss_sequences_add_dims():
    f, o = _da(make_rain(seed=1)), _da(make_rain(seed=2))
    out = fss(f, o, threshold=[0.5, 2.0], window=[1, 3, 9])
    assert set(out.dims) == {"threshold", "window"} and out.shape == (2, 3) or out.shape == (3, 2)
    np.testing.assert_allclose(
        float(out.sel(threshold=2.0, window=9)), float(fss(f, o, threshold=2.0, window=9)), rtol=1e-12
    )
    # skill grows with scale for displaced rain
    assert float(out.sel(threshold=0.5, window=9)) > float(out.sel(threshold=0.5, window=1))


def _fss_by_filter(f: np.ndarray, o: np.ndarray, thr: float, n: int, w: np.ndarray | float = 1.0) -> float:
    """Weighted FSS straight from the definition, with scipy's moving average (the pysteps way)."""
    p_f = ndimage.uniform_filter((f >= thr).astype(float), size=n, mode="constant", cval=0.0, axes=(-2, -1))
    p_o = ndimage.uniform_filter((o >= thr).astype(float), size=n, mode="constant", cval=0.0, axes=(-2, -1))
    p_o = np.broadcast_to(p_o, p_f.shape)
    return 1.0 - np.sum(w * (p_f - p_o) ** 2) / np.sum(w * (p_f**2 + p_o**2))


def test_fss_windows_beyond_the_domain_match_pysteps(ps_spatial: Any):
    # the summed-area table caps its padding at the grid size; windows wider than the grid
    # (even and odd) must still equal the zero-padded moving average
    f, o = make_rain(seed=5, ny=23, nx=31), make_rain(seed=6, ny=23, nx=31)
    for n in (24, 31, 32, 47, 62, 63, 200):
        np.testing.assert_allclose(float(fss(_da(f), _da(o), threshold=1.0, window=n)), ps_spatial.fss(f, o, 1.0, n))


def test_fss_members_against_one_observation_and_weights(ps_spatial: Any):
    # a forecast with members pairs every member with the same observation (xarray
    # broadcasting), pooled over members and grid; weights weight both sums
    members = np.stack([make_rain(seed=s, ny=40, nx=50) for s in range(3)])
    o = make_rain(seed=30, ny=40, nx=50)
    f_da = xr.DataArray(members, dims=["member", "y", "x"], coords={"member": [0, 1, 2]})
    np.testing.assert_allclose(float(fss(f_da, _da(o), threshold=1.0, window=7)), _fss_by_filter(members, o, 1.0, 7))
    per_member = fss(f_da, _da(o), threshold=1.0, window=7, preserve_dims="member")
    assert per_member.dims == ("member",)
    np.testing.assert_allclose(per_member.values, [ps_spatial.fss(m, o, 1.0, 7) for m in members], rtol=RTOL)
    cos_lat = np.cos(np.deg2rad(np.linspace(40, 60, 40)))  # area weights along y
    weights = xr.DataArray(cos_lat, dims=["y"])
    np.testing.assert_allclose(
        float(fss(f_da, _da(o), threshold=1.0, window=7, weights=weights)),
        _fss_by_filter(members, o, 1.0, 7, cos_lat[:, None]),
    )


def test_fss_perfect_and_errors():
    f = _da(make_rain(seed=3))
    assert float(fss(f, f, threshold=1.0, window=5)) == pytest.approx(1.0)
    assert np.isnan(float(fss(f * 0, f * 0, threshold=1.0, window=5)))  # no events anywhere: 0/0
    with pytest.raises(DimensionError, match="spatial"):
        fss(f, f, threshold=1.0, window=3, preserve_dims="y")
    with pytest.raises(ValueError, match="window"):
        fss(f, f, threshold=1.0, window=0)
    with pytest.raises(DimensionError, match="size"):
        fss(f, f[:-1], threshold=1.0, window=3)
    with pytest.raises(DimensionError, match="spatial dims"):
        fss(f.rename(y="a", x="b"), f.rename(y="a", x="b"), threshold=1.0, window=3)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.05, 10), st.integers(1, 12))
def test_fss_in_unit_interval(seed, thr, window):
    rng = np.random.default_rng(seed)
    f = _da(rng.gamma(0.5, 2.0, size=(17, 19)))
    o = _da(rng.gamma(0.5, 2.0, size=(17, 19)))
    v = float(fss(f, o, threshold=thr, window=window))
    assert np.isnan(v) or 0.0 <= v <= 1.0 + 1e-12


# ---------------------------------------------------------------- SAL


def test_sal_matches_pysteps_on_real_radar(radar_pair):
    pytest.importorskip("skimage")  # pysteps' SAL needs scikit-image
    ps_sal = pytest.importorskip("pysteps.verification.salscores")
    # Zeros outside the radar range: pysteps gives objects whose bounding box holds NaN a NaN
    # centroid (see verification.sal Notes), so both get the same complete fields.
    f, o = (x.fillna(0.0) for x in radar_pair)
    ours = sal(f, o)
    ref = ps_sal.sal(f.values, o.values)
    np.testing.assert_allclose([float(ours.structure), float(ours.amplitude), float(ours.location)], ref, rtol=RTOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sal_matches_pysteps_on_synthetic_cells(seed):
    pytest.importorskip("skimage")
    ps_sal = pytest.importorskip("pysteps.verification.salscores")
    f = make_rain(seed=seed, n_cells=3, ny=120, nx=140)
    o = make_rain(seed=seed + 50, n_cells=3, ny=120, nx=140)
    ours = sal(_da(f), _da(o))
    np.testing.assert_allclose(
        [float(ours.structure), float(ours.amplitude), float(ours.location)], ps_sal.sal(f, o), rtol=RTOL
    )


def test_sal_scaled_forecast_worked_example():
    # Wernli et al. (2008), section 2: multiplying the forecast by k leaves the objects unchanged
    # (the threshold scales too); the domain mean scales by k, so A = 2 (k - 1) / (k + 1), while
    # the scaled volumes V_n = R_n / R_n^max are scale-free, so S = 0 (S measures shape only), L = 0.
    o = _da(make_rain(seed=4))
    k = 2.0
    out = sal(k * o, o)
    assert float(out.amplitude) == pytest.approx(2 * (k - 1) / (k + 1), rel=1e-12)
    assert float(out.structure) == pytest.approx(0.0, abs=1e-12)
    assert float(out.location) == pytest.approx(0.0, abs=1e-12)
    # widening the cells (same peak, larger objects) raises V: a positive structure error
    wide = _da(ndimage.gaussian_filter(o.values, 4) * o.values.max() / ndimage.gaussian_filter(o.values, 4).max())
    assert float(sal(wide, o).structure) > 0
    perfect = sal(o, o)
    assert [float(perfect[v]) for v in ("structure", "amplitude", "location")] == [0.0, 0.0, 0.0]


def test_sal_batch_dims_and_ranges():
    fields = xr.DataArray(np.stack([make_rain(seed=s) for s in range(4)]), dims=["time", "y", "x"])
    obs = xr.DataArray(np.stack([make_rain(seed=s + 20) for s in range(4)]), dims=["time", "y", "x"])
    per = sal(fields, obs, preserve_dims="time")
    assert per.structure.dims == ("time",)
    assert (np.abs(per.structure) <= 2).all() and (np.abs(per.amplitude) <= 2).all()
    assert ((per.location >= 0) & (per.location <= 2)).all()
    xr.testing.assert_allclose(sal(fields, obs), per.mean("time"))
    with pytest.raises(DimensionError, match="weights"):
        sal(fields, obs, weights=xr.DataArray(np.ones(fields.sizes["x"]), dims=["x"]))


# ---------------------------------------------------------------- power spectrum


@pytest.mark.parametrize("shape", [(32, 32), (31, 40), (45, 33)])
def test_power_spectrum_matches_pysteps_rapsd(shape, ps_spectral: Any):
    rng = np.random.default_rng(sum(shape))
    field = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    spec = power_spectrum(_da(field), spacing=2.0)
    ref, freq = ps_spectral.rapsd(field, fft_method=np.fft, return_freq=True, d=2.0)
    np.testing.assert_allclose(spec.values, ref, rtol=RTOL)
    np.testing.assert_allclose(spec.wavenumber.values, freq, rtol=1e-12)
    np.testing.assert_allclose(spec.wavelength.values[1:], 1.0 / freq[1:], rtol=1e-12)
    assert np.isinf(spec.wavelength.values[0])
    norm = power_spectrum(_da(field), normalize=True)
    np.testing.assert_allclose(norm.values, ps_spectral.rapsd(field, fft_method=np.fft, normalize=True), rtol=RTOL)


def test_power_spectrum_real_radar_and_blurring(radar_pair, ps_spectral: Any):
    f, _ = radar_pair
    f = f.fillna(0.0)
    spec = power_spectrum(f, spacing=1.0)
    ref = ps_spectral.rapsd(f.values, fft_method=np.fft, d=1.0)
    np.testing.assert_allclose(spec.values, ref, rtol=RTOL)
    # a blurred forecast loses power at short wavelengths (< 8 km) but keeps the mean (k = 0)
    blurred = power_spectrum(f.copy(data=ndimage.uniform_filter(f.values, 5)), spacing=1.0)
    short = spec.wavelength < 8
    assert (blurred.where(short, drop=True) < spec.where(short, drop=True)).all()
    np.testing.assert_allclose(float(blurred[0]), float(spec[0]), rtol=1e-6)


def test_power_spectrum_batch_and_errors():
    stack = xr.DataArray(np.random.default_rng(0).normal(size=(3, 16, 16)), dims=["time", "y", "x"])
    per = power_spectrum(stack, preserve_dims="time")
    xr.testing.assert_allclose(power_spectrum(stack), per.mean("time"))
    with pytest.raises(ValueError, match="NaN"):
        power_spectrum(stack.where(stack > 0))
    with pytest.raises(ValueError, match="spacing"):
        power_spectrum(stack, spacing=0)


# ---------------------------------------------------------------- displacement


@pytest.mark.parametrize("method", ["cross", "phase"])
def test_displacement_recovers_known_integer_shift(radar_pair, method):
    _, o = _crop(radar_pair)
    o = o.fillna(0.0)
    # forecast = observation moved 5 rows down and 7 columns left (zeros shifted in)
    f = o.copy(data=ndimage.shift(o.values, (5, -7), order=0, mode="constant"))
    out = displacement(f, o, method=method, spacing=1.0)
    assert float(out.dy) == pytest.approx(5.0, abs=0.05)
    assert float(out.dx) == pytest.approx(-7.0, abs=0.05)
    assert float(out.dx_km) == pytest.approx(float(out.dx))
    # OpenCV's phaseCorrelate(src1, src2) returns the (x, y) shift of src2 relative to src1:
    # an independent implementation with the same sign convention
    cv2 = pytest.importorskip("cv2")
    (cx, cy), _ = cv2.phaseCorrelate(o.values, f.values)
    assert float(out.dx) == pytest.approx(cx, abs=0.5) and float(out.dy) == pytest.approx(cy, abs=0.5)


def _cells(cy: float, cx: float, ny: int = 120, nx: int = 130) -> np.ndarray:
    """Two Gaussian rain cells (mm h-1) well inside the domain, the pair centred at (cy, cx)."""
    yy, xx = np.mgrid[0:ny, 0:nx]
    return 12 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 6.0**2)) + 5 * np.exp(
        -((yy - cy - 20) ** 2 + (xx - cx + 25) ** 2) / (2 * 9.0**2)
    )


@pytest.mark.parametrize("shift", [(2.3, -4.6), (-0.45, 0.8), (7.05, 3.5)])
def test_displacement_subpixel_on_smooth_cells(shift):
    o = _cells(60, 70)
    f = _cells(60 + shift[0], 70 + shift[1])  # the forecast is displaced by `shift`
    ours = displacement(_da(f), _da(o))
    assert float(ours.dy) == pytest.approx(shift[0], abs=0.051)  # 1/20 grid point refinement
    assert float(ours.dx) == pytest.approx(shift[1], abs=0.051)
    assert float(ours.peak) == pytest.approx(1.0, abs=1e-3)


def test_displacement_real_motion_is_consistent_with_optical_flow(data_root):
    io = pytest.importorskip("pysteps.io")
    utils = pytest.importorskip("pysteps.utils")
    motion = pytest.importorskip("pysteps.motion")
    files = sorted((data_root / "pysteps-data/radar/mch/20160711").glob("AQC*.gif"))[10:14]
    frames = []
    for path in files:
        r, _, meta = io.import_mch_gif(str(path), product="AQC", unit="mm", accutime=5.0)
        frames.append(np.nan_to_num(utils.to_rainrate(r, meta)[0]))
    # later frame as "forecast" of the first: displacement = advection over 5 and 15 minutes
    d5 = displacement(_da(frames[1]), _da(frames[0]))
    d15 = displacement(_da(frames[3]), _da(frames[0]))
    assert float(d15.dx) == pytest.approx(3 * float(d5.dx), abs=2.0)
    assert float(d15.dy) == pytest.approx(3 * float(d5.dy), abs=2.0)
    # same direction as the mean Lucas-Kanade motion (pixels per frame; u along x, v along y)
    uv = motion.get_method("LK")(np.stack(frames[:2]))
    u, v = np.nanmean(uv[0]), np.nanmean(uv[1])
    assert np.sign(float(d5.dx)) == np.sign(u) and abs(float(d5.dx) - u) < 1.5
    assert np.sign(float(d5.dy)) == np.sign(v) and abs(float(d5.dy) - v) < 1.5


def test_displacement_errors_and_empty():
    f = _da(make_rain(seed=5))
    with pytest.raises(ValueError, match="method"):
        displacement(f, f, method="optical")
    with pytest.raises(ValueError, match="max_shift"):
        displacement(f, f, max_shift=0)
    assert np.isnan(float(displacement(f * 0, f).dy))
