r"""Radar-forecast quality analysis beyond single scores (RadarQA-style ratings and text).

A precipitation nowcast is compared with the observed radar field and judged on physical
attributes, each measured by a documented number and rated 1 (poor) to 5 (excellent) by fixed
breakpoints on a "badness" (0 = perfect):

=================  ==========================================================  ==========================
attribute          number (badness)                                            breakpoints 5 / 4 / 3 / 2
=================  ==========================================================  ==========================
``coverage``       frequency bias B at the light threshold (:math:`|\log_2 B|`)  0.1 / 0.25 / 0.5 / 1
``misses``         POD at the moderate threshold (1 - POD)                      0.1 / 0.25 / 0.5 / 0.75
``false_alarms``   FAR at the moderate threshold (FAR)                          0.1 / 0.25 / 0.5 / 0.75
``intensity``      SAL amplitude A (:math:`|A|`)                                0.1 / 0.25 / 0.5 / 1
``high_values``    ratio r of the wet high quantiles (:math:`|\log_2 r|`)       0.1 / 0.25 / 0.5 / 1
``location``       shift d in FSS windows, SAL location L (max(d, L / 0.4))     0.1 / 0.25 / 0.5 / 1
``structure``      SAL structure S (:math:`|S|`)                                0.1 / 0.25 / 0.5 / 1
``sharpness``      ratio p of short-wave power shares (:math:`|\log_2 p|`)      0.2 / 0.5 / 1 / 2
``scale_skill``    FSS at the moderate threshold and window (1 - FSS)           0.1 / 0.25 / 0.5 / 0.75
``evolution``      FSS at the last / first lead, sequences only (1 - ratio)     0.1 / 0.25 / 0.5 / 0.75
=================  ==========================================================  ==========================

A badness at or below the first breakpoint rates 5, above the last 1. The breakpoints put a
factor-2 error in area, intensity or peak values at rating 2 and halve the allowed error per
rating step. Sharpness compares powers, squares of amplitudes, so its breakpoints on
:math:`|\log_2 p|` are twice the amplitude ones (a factor-2 loss of amplitude at short
wavelengths is rating 2), and it compares each field's *share* of power at short wavelengths,
so a forecast that is uniformly too weak or too strong is rated on intensity, not on
sharpness. Location takes the worse of two displacement measures: the best-matching shift
(phase correlation) in units of the FSS window, so a shift by one window is rating 2 (the
neighbourhood scale at which skill is asked for is also the scale a placement error must stay
well below), and SAL L, which also sees objects misplaced in different directions (divided by
0.4, its breakpoints are 0.04 / 0.1 / 0.2 / 0.4 of the domain diagonal). Without the shift term
a pure displacement of a few kilometres hardly moves L, which is relative to the domain, while
misses, false alarms and FSS pay for it twice (the double penalty): the displaced forecast
would be rated worse on everything but its location. ``docs/radar_quality.md`` shows the
ratings of displaced, blurred, scaled and inflated copies of an observed radar sequence. The overall grade is the mean of the available ratings (equal weights), and the
written assessment has one sentence per attribute that quotes the number behind its rating,
so every statement is traceable. Sequence reports pool the counts over lead times with
:class:`~verification.metrics.categorical.ContingencyTable` and the FSS sums, rather than
averaging per-frame scores.

Public API: ``QualityConfig``, ``QualityReport``, ``ATTRIBUTES``, ``rate``, ``assess_frame``,
``assess_sequence``.

References
----------
RadarQA: multi-modal quality analysis of weather radar forecasts (attribute-wise ratings and
explanations of radar nowcasts, the inspiration for the attribute list).
Wernli, H. et al. (2008): SAL - a novel quality measure for the verification of quantitative
precipitation forecasts. Mon. Wea. Rev., 136, 4470-4487.
Roberts, N. M. and Lean, H. W. (2008): Scale-selective verification of rainfall accumulations
from high-resolution forecasts of convective events. Mon. Wea. Rev., 136, 78-97.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from engine.errors import DimensionError
from verification.metrics.categorical import ContingencyTable, scores_from_table
from verification.metrics.spatial import displacement, fss, power_spectrum, sal

__all__ = ["ATTRIBUTES", "QualityConfig", "QualityReport", "assess_frame", "assess_sequence", "rate"]


@dataclass(frozen=True)
class Attribute:
    """A rated attribute: what it measures and the badness breakpoints of ratings 5, 4, 3, 2."""

    name: str
    description: str
    breakpoints: tuple[float, float, float, float]


#: The rating rules, in report order (see the module docstring).
ATTRIBUTES: dict[str, Attribute] = {
    a.name: a
    for a in (
        Attribute("coverage", "rain area, frequency bias at the light threshold", (0.1, 0.25, 0.5, 1.0)),
        Attribute("misses", "observed rain that is forecast, POD at the moderate threshold", (0.1, 0.25, 0.5, 0.75)),
        Attribute("false_alarms", "forecast rain that is not observed, FAR", (0.1, 0.25, 0.5, 0.75)),
        Attribute("intensity", "domain-mean rain, SAL amplitude", (0.1, 0.25, 0.5, 1.0)),
        Attribute("high_values", "retention of the heaviest rain, ratio of high quantiles", (0.1, 0.25, 0.5, 1.0)),
        Attribute("location", "placement of the rain, best-matching shift and SAL location", (0.1, 0.25, 0.5, 1.0)),
        Attribute("structure", "size and peakedness of rain objects, SAL structure", (0.1, 0.25, 0.5, 1.0)),
        Attribute("sharpness", "small-scale detail, share of power at short wavelengths", (0.2, 0.5, 1.0, 2.0)),
        Attribute("scale_skill", "neighbourhood skill, FSS", (0.1, 0.25, 0.5, 0.75)),
        Attribute("evolution", "skill kept over the lead times, last / first FSS", (0.1, 0.25, 0.5, 0.75)),
    )
}


def rate(badness: float, breakpoints: tuple[float, float, float, float]) -> int | None:
    """Rating 1-5 of a badness (0 = perfect): 5 at or below ``breakpoints[0]``, 1 above the last.

    Returns ``None`` for NaN (the attribute could not be measured, e.g. no rain at all).
    """
    if badness is None or not np.isfinite(badness):
        return None
    return 5 - int(np.searchsorted(np.asarray(breakpoints, dtype=float), badness, side="left"))


@dataclass(frozen=True)
class QualityConfig:
    """Parameters of the quality analysis.

    Attributes
    ----------
    light_threshold : float
        Rain / no-rain threshold in mm h-1 (coverage).
    moderate_threshold : float
        Threshold in mm h-1 for misses, false alarms and FSS.
    high_quantile : float
        Quantile of the wet values (>= ``light_threshold``) compared for high-value retention.
    fss_window : int
        FSS neighbourhood in grid points.
    spacing_km : float
        Grid spacing in km (for the text and the sharpness cut-off).
    sharp_wavelength_km : float
        Wavelengths below this count as "small scale" for sharpness.
    """

    light_threshold: float = 0.1
    moderate_threshold: float = 1.0
    high_quantile: float = 0.99
    fss_window: int = 9
    spacing_km: float = 1.0
    sharp_wavelength_km: float = 16.0

    def __post_init__(self) -> None:
        if not 0 <= self.light_threshold < self.moderate_threshold:
            raise ValueError(
                f"need 0 <= light_threshold < moderate_threshold, got {self.light_threshold}, {self.moderate_threshold}"
            )
        if not 0 < self.high_quantile < 1:
            raise ValueError(f"high_quantile must be in (0, 1), got {self.high_quantile}")
        if int(self.fss_window) != self.fss_window or self.fss_window < 1:
            raise ValueError(f"fss_window must be a positive integer, got {self.fss_window}")
        if not self.spacing_km > 0 or not self.sharp_wavelength_km > 2 * self.spacing_km:
            raise ValueError(
                f"need spacing_km > 0 and sharp_wavelength_km > 2 * spacing_km (the shortest resolved wave), "
                f"got {self.spacing_km}, {self.sharp_wavelength_km}"
            )


@dataclass(frozen=True)
class QualityReport:
    """Ratings, grade and written assessment of one frame or one sequence.

    Attributes
    ----------
    scope : {"frame", "sequence"}
    lead_time : pandas.Timedelta or None
        The frame's lead time; ``None`` for sequences.
    ratings : dict
        Attribute name -> ``{"rating": 1-5 or None, "badness": float, ...the numbers behind it}``.
    grade : float or None
        Mean of the available ratings, 1-5.
    text : str
        The written assessment, one sentence per attribute plus the grade.
    """

    scope: Literal["frame", "sequence"]
    lead_time: pd.Timedelta | None
    ratings: dict[str, dict[str, Any]] = field(default_factory=dict)
    grade: float | None = None
    text: str = ""

    def to_record(self) -> dict[str, Any]:
        """Keyword arguments for ``Catalog.insert_quality_report`` (besides run and reference)."""
        return {
            "scope": self.scope,
            "lead_time": self.lead_time,
            "ratings": _finite(self.ratings),
            "grade": self.grade,
            "text": self.text,
        }


def _finite(obj: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, recursively (JSON without NaN)."""
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------


def _check_fields(fcst: xr.DataArray, obs: xr.DataArray, spatial: tuple[Hashable, Hashable]) -> None:
    for name, arr in (("fcst", fcst), ("obs", obs)):
        if not isinstance(arr, xr.DataArray):
            raise TypeError(f"{name} must be an xarray.DataArray of rain rate (mm h-1), got {type(arr).__name__}")
        missing = [d for d in spatial if d not in arr.dims]
        if missing:
            raise DimensionError(f"{name} lacks the spatial dim(s) {missing}; its dims are {arr.dims}")


def _spatial(arr: xr.DataArray) -> tuple[Hashable, Hashable]:
    for cand in (("y", "x"), ("lat", "lon")):
        if all(d in arr.dims for d in cand):
            return cand
    raise DimensionError(f"cannot find the spatial dims ('y', 'x') or ('lat', 'lon') in {arr.dims}")


def _numbers(fcst: xr.DataArray, obs: xr.DataArray, table: xr.Dataset, cfg: QualityConfig) -> dict[str, float]:
    """Every number behind the ratings, from fields (one frame or a stack pooled over lead time)."""
    thr_l, thr_m = cfg.light_threshold, cfg.moderate_threshold
    scores = scores_from_table(table)
    b_light = float(scores.frequency_bias.sel(threshold=thr_l))
    pod_m = float(scores.pod.sel(threshold=thr_m))
    far_m = float(scores.far.sel(threshold=thr_m))
    # NaN outside the radar range: no rain, as in the FSS, SAL and the spectra
    f0, o0 = fcst.fillna(0.0), obs.fillna(0.0)
    valid = fcst.notnull() & obs.notnull()
    mean_f, mean_o = float(fcst.where(valid).mean()), float(obs.where(valid).mean())
    amplitude = (mean_f - mean_o) / (0.5 * (mean_f + mean_o)) if (mean_f + mean_o) > 0 else np.nan
    sal_out = sal(f0, o0)  # S and L averaged over frames for a sequence
    wet_f = fcst.values[np.isfinite(fcst.values) & (fcst.values >= thr_l)]
    wet_o = obs.values[np.isfinite(obs.values) & (obs.values >= thr_l)]
    q_f = float(np.quantile(wet_f, cfg.high_quantile)) if wet_f.size else np.nan
    q_o = float(np.quantile(wet_o, cfg.high_quantile)) if wet_o.size else np.nan
    spec_f = power_spectrum(f0, spacing=cfg.spacing_km)
    spec_o = power_spectrum(o0, spacing=cfg.spacing_km)
    short = spec_f.wavelength < cfg.sharp_wavelength_km

    def short_share(spec: xr.DataArray) -> float:
        # share of the (radially averaged) power at short wavelengths: a scale-free measure of
        # small-scale detail, unchanged when the whole field is multiplied by a constant
        total = float(spec.sum())
        return float(spec.where(short).sum()) / total if total > 0 else np.nan

    share_f, share_o = short_share(spec_f), short_share(spec_o)
    power_ratio = share_f / share_o if share_o > 0 else np.nan
    shift = displacement(f0, o0, spacing=cfg.spacing_km)
    return {
        "frequency_bias": b_light,
        "pod": pod_m,
        "far": far_m,
        "mean_fcst": mean_f,
        "mean_obs": mean_o,
        "amplitude": amplitude,
        "structure": float(sal_out.structure),
        "location": float(sal_out.location),
        "quantile_fcst": q_f,
        "quantile_obs": q_o,
        "power_ratio": power_ratio,
        "short_share_fcst": share_f,
        "short_share_obs": share_o,
        "fss": float(fss(f0, o0, threshold=thr_m, window=cfg.fss_window)),
        "dx_km": float(shift.dx_km),
        "dy_km": float(shift.dy_km),
    }


def _log2_ratio(a: float, b: float) -> float:
    return abs(float(np.log2(a / b))) if a > 0 and b > 0 else np.nan


def _worst(*values: float) -> float:
    """Largest of the finite values; NaN when none is finite."""
    finite = [v for v in values if np.isfinite(v)]
    return max(finite) if finite else np.nan


def _ratings(n: dict[str, float], cfg: QualityConfig) -> dict[str, dict[str, Any]]:
    """Badness, rating and the numbers behind each attribute."""
    q_ratio = n["quantile_fcst"] / n["quantile_obs"] if n["quantile_obs"] > 0 else np.nan
    shift_km = float(np.hypot(n["dx_km"], n["dy_km"]))
    window_km = cfg.fss_window * cfg.spacing_km
    badness = {
        "coverage": (_log2_ratio(n["frequency_bias"], 1.0), {"frequency_bias": n["frequency_bias"]}),
        "misses": (1.0 - n["pod"], {"pod": n["pod"]}),
        "false_alarms": (n["far"], {"far": n["far"]}),
        "intensity": (
            abs(n["amplitude"]),
            {"amplitude": n["amplitude"], "mean_fcst": n["mean_fcst"], "mean_obs": n["mean_obs"]},
        ),
        "high_values": (
            _log2_ratio(n["quantile_fcst"], n["quantile_obs"]),
            {"ratio": q_ratio, "quantile_fcst": n["quantile_fcst"], "quantile_obs": n["quantile_obs"]},
        ),
        "location": (
            _worst(shift_km / window_km, n["location"] / 0.4),
            {
                "location": n["location"],
                "shift_km": shift_km,
                "window_km": window_km,
                "dx_km": n["dx_km"],
                "dy_km": n["dy_km"],
            },
        ),
        "structure": (abs(n["structure"]), {"structure": n["structure"]}),
        "sharpness": (
            _log2_ratio(n["power_ratio"], 1.0),
            {
                "power_ratio": n["power_ratio"],
                "short_share_fcst": n["short_share_fcst"],
                "short_share_obs": n["short_share_obs"],
            },
        ),
        "scale_skill": (1.0 - n["fss"], {"fss": n["fss"]}),
    }
    out = {}
    for name, (bad, numbers) in badness.items():
        out[name] = {"rating": rate(bad, ATTRIBUTES[name].breakpoints), "badness": bad, **numbers}
    return out


# --------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------


def _r(entry: Mapping[str, Any]) -> str:
    return "not rated" if entry["rating"] is None else f"rating {entry['rating']}/5"


def _sentences(ratings: Mapping[str, Mapping[str, Any]], cfg: QualityConfig) -> list[str]:
    """One sentence per attribute, each quoting the number its rating comes from."""
    out: list[str] = []
    thr_l, thr_m = f"{cfg.light_threshold:g}", f"{cfg.moderate_threshold:g}"
    c = ratings["coverage"]
    b = c["frequency_bias"]
    if not np.isfinite(b):
        out.append(f"No rain of at least {thr_l} mm/h is observed, so coverage is not rated.")
    elif c["rating"] == 5:
        out.append(f"The rain area matches the observation (frequency bias {b:.2f} at {thr_l} mm/h; {_r(c)}).")
    else:
        word = "overestimated" if b > 1 else "underestimated"
        out.append(
            f"The rain area is {word}: the forecast rains on {b:.2f} times the observed area at {thr_l} mm/h ({_r(c)})."
        )
    m = ratings["misses"]
    if np.isfinite(m["pod"]):
        out.append(
            f"{m['pod']:.0%} of the observed rain of at least {thr_m} mm/h is forecast (POD {m['pod']:.2f}; {_r(m)})."
        )
    fa = ratings["false_alarms"]
    if np.isfinite(fa["far"]):
        out.append(
            f"{fa['far']:.0%} of the forecast rain of at least {thr_m} mm/h is a false alarm (FAR {fa['far']:.2f}; {_r(fa)})."
        )
    i = ratings["intensity"]
    if np.isfinite(i["amplitude"]):
        word = "about right" if i["rating"] == 5 else "too high" if i["amplitude"] > 0 else "too low"
        out.append(
            f"The domain-mean rain is {word}: {i['mean_fcst']:.2f} mm/h forecast against {i['mean_obs']:.2f} mm/h "
            f"observed (SAL amplitude {i['amplitude']:+.2f}; {_r(i)})."
        )
    h = ratings["high_values"]
    if np.isfinite(h["ratio"]):
        word = "retained" if h["rating"] == 5 else "exaggerated" if h["ratio"] > 1 else "weakened"
        q = f"{cfg.high_quantile:.0%}"
        out.append(
            f"The heaviest rain is {word}: the {q} quantile of wet pixels is {h['quantile_fcst']:.1f} mm/h forecast "
            f"against {h['quantile_obs']:.1f} mm/h observed (ratio {h['ratio']:.2f}; {_r(h)})."
        )
    loc = ratings["location"]
    if loc["rating"] is not None:
        word = "well placed" if loc["rating"] == 5 else "displaced"
        out.append(
            f"The rain is {word}: the best-matching shift of the forecast is {loc['dx_km']:+.0f} km along x and "
            f"{loc['dy_km']:+.0f} km along y, {loc['shift_km'] / loc['window_km']:.2f} FSS windows of "
            f"{loc['window_km']:g} km (SAL location {loc['location']:.2f}; {_r(loc)})."
        )
    s = ratings["structure"]
    if np.isfinite(s["structure"]):
        word = (
            "realistic"
            if s["rating"] == 5
            else "too large or too flat"
            if s["structure"] > 0
            else "too small or too peaked"
        )
        out.append(f"Rain objects are {word} (SAL structure {s['structure']:+.2f}; {_r(s)}).")
    sh = ratings["sharpness"]
    if np.isfinite(sh["power_ratio"]):
        word = (
            "preserved"
            if sh["rating"] == 5
            else "lost (the forecast is too smooth)"
            if sh["power_ratio"] < 1
            else "exaggerated (the forecast is too noisy)"
        )
        out.append(
            f"Small-scale detail is {word}: {sh['short_share_fcst']:.1%} of the forecast's power is at wavelengths "
            f"below {cfg.sharp_wavelength_km:g} km against {sh['short_share_obs']:.1%} of the observed "
            f"(ratio {sh['power_ratio']:.2f}; {_r(sh)})."
        )
    sk = ratings["scale_skill"]
    if np.isfinite(sk["fss"]):
        km = cfg.fss_window * cfg.spacing_km
        out.append(f"At the {km:g} km scale the fractions skill score for {thr_m} mm/h is {sk['fss']:.2f} ({_r(sk)}).")
    ev = ratings.get("evolution")
    if ev is not None and np.isfinite(ev["fss_first"]):
        word = "holds up" if ev["rating"] == 5 else "decays"
        out.append(
            f"Skill {word} over the sequence: the FSS goes from {ev['fss_first']:.2f} at {ev['lead_first']} to "
            f"{ev['fss_last']:.2f} at {ev['lead_last']} ({_r(ev)})."
        )
    return out


def _finish(
    scope: Literal["frame", "sequence"], lead: pd.Timedelta | None, ratings: dict, cfg: QualityConfig
) -> QualityReport:
    values = [v["rating"] for v in ratings.values() if v["rating"] is not None]
    grade = round(float(np.mean(values)), 2) if values else None
    text = _sentences(ratings, cfg)
    text.append(
        f"Overall grade {grade:.1f}/5, the mean of {len(values)} attribute ratings."
        if grade is not None
        else "No attribute could be rated (no rain in either field), so there is no overall grade."
    )
    return QualityReport(scope=scope, lead_time=lead, ratings=ratings, grade=grade, text=" ".join(text))


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


def _table(fcst: xr.DataArray, obs: xr.DataArray, cfg: QualityConfig) -> ContingencyTable:
    acc = ContingencyTable([cfg.light_threshold, cfg.moderate_threshold])
    return acc.update(fcst, obs)


def _lead_label(leads: np.ndarray, k: int) -> str:
    """'+15 min' / '+2 h' for timedelta leads, 'step k' otherwise."""
    if not np.issubdtype(np.asarray(leads).dtype, np.timedelta64):
        return f"step {k}"
    minutes = pd.Timedelta(leads[k]).total_seconds() / 60.0
    return f"+{minutes:g} min" if minutes < 120 else f"+{minutes / 60:g} h"


def assess_frame(
    fcst: xr.DataArray, obs: xr.DataArray, *, config: QualityConfig | None = None, lead_time: Any = None
) -> QualityReport:
    """Quality report of one forecast frame against the observed radar frame.

    Parameters
    ----------
    fcst, obs : xarray.DataArray
        Rain rate (mm h-1) on the same grid, dims ``(y, x)`` or ``(lat, lon)``; NaN outside
        the radar range is treated as no rain for the spatial measures and excluded from the
        contingency counts.
    config : QualityConfig, optional
        Thresholds, window and grid spacing; defaults for a 1 km radar composite.
    lead_time : timedelta-like, optional
        Recorded in the report.

    Returns
    -------
    QualityReport
        ``scope="frame"``; ratings of every attribute but ``evolution``.

    Raises
    ------
    DimensionError
        If the fields lack spatial dims or have extra dims.
    """
    cfg = config or QualityConfig()
    sdims = _spatial(fcst)
    _check_fields(fcst, obs, sdims)
    extra = [d for d in set(fcst.dims) | set(obs.dims) if d not in sdims]
    if extra:
        raise DimensionError(f"assess_frame takes single 2-D frames; extra dims {extra} (use assess_sequence)")
    table = _table(fcst, obs, cfg).table
    assert table is not None  # update() was called
    ratings = _ratings(_numbers(fcst, obs, table, cfg), cfg)
    lead = None if lead_time is None else pd.Timedelta(lead_time)
    return _finish("frame", lead, ratings, cfg)


def assess_sequence(
    fcst: xr.DataArray,
    obs: xr.DataArray,
    *,
    lead_dim: Hashable = "lead_time",
    config: QualityConfig | None = None,
) -> tuple[QualityReport, list[QualityReport]]:
    """Quality reports of a forecast sequence: one for the whole sequence and one per frame.

    The sequence report pools the contingency counts (a :class:`ContingencyTable` updated
    frame by frame), the FSS sums, the wet-value quantiles and the domain means over all
    lead times; SAL structure and location, spectra and displacement are averaged over the
    frames. It adds ``evolution``: the FSS at the last lead time relative to the first.

    Parameters
    ----------
    fcst, obs : xarray.DataArray
        Rain rate (mm h-1) with dims ``(lead_dim, y, x)`` (or ``lat, lon``), aligned on
        ``lead_dim``.
    lead_dim : str
        Name of the lead-time dim.
    config : QualityConfig, optional
        Thresholds, window and grid spacing.

    Returns
    -------
    (QualityReport, list of QualityReport)
        The sequence report and the frame reports in lead-time order.

    Raises
    ------
    DimensionError
        If ``lead_dim`` is missing or the lead times differ.
    """
    cfg = config or QualityConfig()
    sdims = _spatial(fcst)
    _check_fields(fcst, obs, sdims)
    for name, arr in (("fcst", fcst), ("obs", obs)):
        if lead_dim not in arr.dims:
            raise DimensionError(f"{name} has no lead dim {lead_dim!r}; its dims are {arr.dims}")
    extra = [d for d in set(fcst.dims) | set(obs.dims) if d not in (*sdims, lead_dim)]
    if extra:
        raise DimensionError(f"unexpected dims {extra}; select one member / init time first")
    if fcst.sizes[lead_dim] != obs.sizes[lead_dim] or (
        lead_dim in fcst.coords
        and lead_dim in obs.coords
        and not np.array_equal(fcst[lead_dim].values, obs[lead_dim].values)
    ):
        raise DimensionError(f"fcst and obs have different {lead_dim!r} coordinates")
    fcst, obs = fcst.transpose(lead_dim, *sdims), obs.transpose(lead_dim, *sdims)
    leads = fcst[lead_dim].values if lead_dim in fcst.coords else np.arange(fcst.sizes[lead_dim])
    frames: list[QualityReport] = []
    accumulated = ContingencyTable([cfg.light_threshold, cfg.moderate_threshold])
    for k in range(fcst.sizes[lead_dim]):
        f_k, o_k = fcst.isel({lead_dim: k}, drop=True), obs.isel({lead_dim: k}, drop=True)
        accumulated.update(f_k, o_k)
        lead = pd.Timedelta(leads[k]) if np.issubdtype(np.asarray(leads).dtype, np.timedelta64) else None
        frames.append(assess_frame(f_k, o_k, config=cfg, lead_time=lead))
    assert accumulated.table is not None
    ratings = _ratings(_numbers(fcst, obs, accumulated.table, cfg), cfg)
    per_lead = fss(
        fcst.fillna(0.0),
        obs.fillna(0.0),
        threshold=cfg.moderate_threshold,
        window=cfg.fss_window,
        preserve_dims=[lead_dim],
    )
    first, last = float(per_lead[0]), float(per_lead[-1])
    ratio = last / first if first > 0 else np.nan
    ratings["evolution"] = {
        "rating": rate(1.0 - ratio, ATTRIBUTES["evolution"].breakpoints) if len(per_lead) > 1 else None,
        "badness": 1.0 - ratio,
        "fss_first": first,
        "fss_last": last,
        "lead_first": _lead_label(leads, 0),
        "lead_last": _lead_label(leads, len(leads) - 1),
    }
    return _finish("sequence", None, ratings, cfg), frames
