"""RadarQA-style quality reports: ratings follow their documented rules and the text quotes them."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import ndimage
from verification_factories import make_rain

from engine.errors import DimensionError
from verification import contingency_table, fss, scores_from_table
from verification.radar_quality import ATTRIBUTES, QualityConfig, assess_frame, assess_sequence, rate


def _da(a: np.ndarray) -> xr.DataArray:
    return xr.DataArray(a, dims=["y", "x"])


OBS = make_rain(seed=7, ny=96, nx=110, n_cells=7)


def test_rate_breakpoints():
    bp = (0.1, 0.25, 0.5, 1.0)
    assert [rate(b, bp) for b in (0.0, 0.1, 0.11, 0.25, 0.4, 0.5, 0.9, 1.0, 1.01, 50.0)] == [
        5,
        5,
        4,
        4,
        3,
        3,
        2,
        2,
        1,
        1,
    ]
    assert rate(np.nan, bp) is None


def test_perfect_forecast_rates_five_everywhere():
    report = assess_frame(_da(OBS), _da(OBS), lead_time="10min")
    assert report.grade == 5.0
    assert all(v["rating"] == 5 for v in report.ratings.values())
    assert "evolution" not in report.ratings
    assert report.lead_time == pd.Timedelta("10min") and report.scope == "frame"


def test_doubled_rain_is_too_intense():
    report = assess_frame(_da(2 * OBS), _da(OBS))
    # SAL amplitude of a doubled field: 2 (2 - 1) / (2 + 1) = 0.667, badness in (0.5, 1]: rating 2
    assert report.ratings["intensity"]["amplitude"] == pytest.approx(2 / 3)
    assert report.ratings["intensity"]["rating"] == 2
    # doubling also lifts values in [0.05, 0.1) mm/h into the wet set, so the ratio is just below 2;
    # |log2 r| is just below 1: rating 2
    assert report.ratings["high_values"]["ratio"] == pytest.approx(2.0, rel=0.03)
    assert report.ratings["high_values"]["rating"] == 2
    assert report.ratings["location"]["rating"] == 5 and report.ratings["structure"]["rating"] == 5
    assert "too high" in report.text and "exaggerated" in report.text


def test_blurred_forecast_loses_sharpness_and_peaks():
    blurred = ndimage.gaussian_filter(OBS, 3)
    report = assess_frame(_da(blurred), _da(OBS))
    assert report.ratings["sharpness"]["power_ratio"] < 0.75  # smooth cells already: little short-wave power
    assert report.ratings["sharpness"]["rating"] < 5 and report.ratings["high_values"]["rating"] < 5
    assert "lost (the forecast is too smooth)" in report.text and "weakened" in report.text


def test_displaced_forecast_rates_location_lower_and_reports_shift():
    obs = np.pad(OBS, 20)  # margins, so no rain leaves the domain when shifted
    shifted = ndimage.shift(obs, (0, 12), order=0, mode="constant")
    report = assess_frame(_da(shifted), _da(obs), config=QualityConfig(spacing_km=2.0))
    loc = report.ratings["location"]
    assert loc["rating"] < 5
    assert loc["dx_km"] == pytest.approx(24.0, abs=1.0) and loc["dy_km"] == pytest.approx(0.0, abs=1.0)
    assert "+24 km along x" in report.text


def test_numbers_agree_with_the_metrics():
    f, o = _da(make_rain(seed=8, ny=96, nx=110)), _da(OBS)
    cfg = QualityConfig(moderate_threshold=2.0, fss_window=5)
    report = assess_frame(f, o, config=cfg)
    s = scores_from_table(contingency_table(f, o, threshold=[0.1, 2.0]))
    assert report.ratings["coverage"]["frequency_bias"] == pytest.approx(float(s.frequency_bias.sel(threshold=0.1)))
    assert report.ratings["misses"]["pod"] == pytest.approx(float(s.pod.sel(threshold=2.0)))
    assert report.ratings["false_alarms"]["far"] == pytest.approx(float(s.far.sel(threshold=2.0)))
    assert report.ratings["scale_skill"]["fss"] == pytest.approx(float(fss(f, o, threshold=2.0, window=5)))
    for name, entry in report.ratings.items():
        assert entry["rating"] == rate(entry["badness"], ATTRIBUTES[name].breakpoints)
    assert report.grade == pytest.approx(np.mean([v["rating"] for v in report.ratings.values()]), abs=0.01)


def test_every_sentence_quotes_a_number_and_record_is_json():
    report = assess_frame(_da(make_rain(seed=9, ny=96, nx=110)), _da(OBS))
    sentences = [s for s in re.split(r"(?<=\.)\s+(?=[A-Z0-9])", report.text) if s]
    assert len(sentences) == len(report.ratings) + 1  # one per attribute plus the grade
    assert all(re.search(r"\d", s) for s in sentences)
    record = report.to_record()
    json.dumps(record["ratings"], allow_nan=False)  # storable in the catalogue as is
    assert set(record) == {"scope", "lead_time", "ratings", "grade", "text"}


def test_dry_fields_are_not_rated():
    zero = _da(np.zeros((40, 40)))
    report = assess_frame(zero, zero)
    assert report.grade is None
    assert "no overall grade" in report.text
    json.dumps(report.to_record()["ratings"], allow_nan=False)


def test_sequence_of_drifting_forecast_decays():
    leads = pd.to_timedelta([10, 20, 30], "min")
    obs = xr.DataArray(np.stack([OBS] * 3), dims=["lead_time", "y", "x"], coords={"lead_time": leads})
    fc = obs.copy(data=np.stack([ndimage.shift(OBS, (0, s), order=0, mode="constant") for s in (1, 5, 12)]))
    seq, frames = assess_sequence(fc, obs)
    assert seq.scope == "sequence" and seq.lead_time is None and len(frames) == 3
    assert [f.lead_time for f in frames] == list(leads)
    ev = seq.ratings["evolution"]
    assert ev["fss_last"] < ev["fss_first"] and ev["rating"] < 5
    assert "+10 min" in seq.text and "+30 min" in seq.text
    assert frames[0].grade >= frames[-1].grade
    # the pooled counts are the sum over lead times
    pooled = scores_from_table(contingency_table(fc, obs, threshold=1.0))
    assert seq.ratings["misses"]["pod"] == pytest.approx(float(pooled.pod))


def test_persistence_nowcast_on_real_radar(data_root):
    io = pytest.importorskip("pysteps.io")
    utils = pytest.importorskip("pysteps.utils")
    files = sorted((data_root / "pysteps-data/radar/mch/20160711").glob("AQC*.gif"))[10:14]
    frames = []
    for path in files:
        r, _, meta = io.import_mch_gif(str(path), product="AQC", unit="mm", accutime=5.0)
        frames.append(utils.to_rainrate(r, meta)[0][200:400, 250:450])  # 200 km x 200 km
    leads = pd.to_timedelta([5, 10, 15], "min")
    obs = xr.DataArray(np.stack(frames[1:]), dims=["lead_time", "y", "x"], coords={"lead_time": leads})
    fc = obs.copy(data=np.stack([frames[0]] * 3))  # persistence of the 21:35 frame
    seq, per_frame = assess_sequence(fc, obs)
    assert seq.grade is not None and 1 <= seq.grade <= 5
    assert seq.ratings["evolution"]["fss_last"] < seq.ratings["evolution"]["fss_first"]
    # persistence keeps the observed intensities: sharpness and amplitude stay good
    assert seq.ratings["sharpness"]["rating"] >= 4 and seq.ratings["intensity"]["rating"] >= 4
    assert len(per_frame) == 3


def test_bad_inputs():
    f = _da(OBS)
    with pytest.raises(DimensionError, match="assess_sequence"):
        assess_frame(f.expand_dims(lead_time=2), f.expand_dims(lead_time=2))
    with pytest.raises(DimensionError, match="lead dim"):
        assess_sequence(f, f)
    with pytest.raises(ValueError, match="light_threshold"):
        QualityConfig(light_threshold=2.0, moderate_threshold=1.0)
    with pytest.raises(ValueError, match="sharp_wavelength_km"):
        QualityConfig(spacing_km=10.0)


# ---------------------------------------------------------------- orderings on real radar

#: Attribute groups of DESIGN.md ("intensity and high-value retention", "structure and
#: sharpness"): a uniformly weaker field is weaker in its mean and in its peaks alike.
ORDERINGS = {
    "displaced": {"location"},
    "blurred": {"structure", "sharpness"},
    "scaled_down": {"intensity", "high_values"},
    "inflated": {"false_alarms"},
}


def _inflate(rain: np.ndarray) -> np.ndarray:
    """Light rain (0.1-1 mm/h) within 6 km of moderate rain raised to 1.2 mm/h: too much moderate rain."""
    moderate = ndimage.binary_dilation(rain >= 1.0, iterations=6)
    return np.where(moderate & (rain >= 0.1) & (rain < 1.0), 1.2, rain)


@pytest.fixture(scope="module")
def observed_sequence(data_root) -> xr.DataArray:
    """Two observed MeteoSwiss frames, 2016-07-11 21:40 and 21:45, 200 km x 200 km of convection."""
    io = pytest.importorskip("pysteps.io")
    utils = pytest.importorskip("pysteps.utils")
    files = sorted((data_root / "pysteps-data/radar/mch/20160711").glob("AQC*.gif"))[11:13]
    frames = []
    for path in files:
        r, _, meta = io.import_mch_gif(str(path), product="AQC", unit="mm", accutime=5.0)
        frames.append(np.nan_to_num(utils.to_rainrate(r, meta)[0][200:400, 250:450]))
    leads = pd.to_timedelta([5, 10], "min")
    obs = xr.DataArray(np.stack(frames), dims=["lead_time", "y", "x"], coords={"lead_time": leads})
    perfect, _ = assess_sequence(obs, obs)
    assert all(v["rating"] == 5 for v in perfect.ratings.values())  # so a drop below is 5 - rating
    return obs


@pytest.mark.parametrize("kind", sorted(ORDERINGS))
def test_each_degradation_drops_its_own_attribute_the_most(observed_sequence, kind):
    obs = observed_sequence
    degrade = {
        "displaced": lambda a: ndimage.shift(a, (0, 12), order=0, mode="constant"),  # 12 km east
        "blurred": lambda a: ndimage.gaussian_filter(a, 1.0),  # 1 km Gaussian
        "scaled_down": lambda a: 0.5 * a,
        "inflated": _inflate,
    }[kind]
    fcst = obs.copy(data=np.stack([degrade(a) for a in obs.values]))
    report, _ = assess_sequence(fcst, obs)
    drop = {name: 5 - entry["rating"] for name, entry in report.ratings.items() if entry["rating"] is not None}
    own = max(drop[name] for name in ORDERINGS[kind])
    others = {name: d for name, d in drop.items() if name not in ORDERINGS[kind]}
    assert own > max(others.values()), f"{kind}: {drop}"
    # and the text names the error in the right direction
    expected = {
        "displaced": "+12 km along x",
        "blurred": "lost (the forecast is too smooth)",
        "scaled_down": "The domain-mean rain is too low",
        "inflated": "is a false alarm",
    }[kind]
    assert expected in report.text
