"""Foehn diagnosis inputs: constants, thermodynamics, station frames and the valley/crest pair."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from engine.errors import WxError

#: Columns a station frame carries (canonical names of :mod:`engine.lexicon`).
STATION_COLUMNS: tuple[str, ...] = ("t2m", "wind_dir", "wind_speed", "rh2m")

#: Short names accepted for concomitants (foehnix spelling) → canonical column.
CONCOMITANT_ALIASES: dict[str, str] = {
    "rh": "rh2m",
    "ff": "wind_speed",
    "dd": "wind_dir",
    "t": "t2m",
    "p": "sp",
    "rh2m": "rh2m",
    "wind_speed": "wind_speed",
    "wind_dir": "wind_dir",
    "t2m": "t2m",
    "sp": "sp",
}

#: Poisson's constant R_d / c_p for dry air (R_d = 287.05 J kg-1 K-1, c_p = 1004.6 J kg-1 K-1).
KAPPA = 287.05 / 1004.6
#: Reference pressure of the potential temperature (Pa).
P0 = 100_000.0


class FoehnError(WxError, ValueError):
    """Station data or options given to the Foehn diagnosis are unusable."""


# --------------------------------------------------------------------------------------------------
# thermodynamics
# --------------------------------------------------------------------------------------------------


def standard_atmosphere_pressure(elevation: float | np.ndarray) -> float | np.ndarray:
    r"""Pressure of the ICAO standard atmosphere at ``elevation``.

    .. math:: p = p_0 \left(1 - \frac{\Gamma z}{T_0}\right)^{g / (R_d \Gamma)}

    with :math:`p_0 = 101325` Pa, :math:`T_0 = 288.15` K, :math:`\Gamma = 0.0065` K m-1,
    :math:`g/(R_d\Gamma) = 5.25588` (valid in the troposphere, below 11 km).

    Parameters
    ----------
    elevation : float or ndarray
        Height above mean sea level (m).

    Returns
    -------
    float or ndarray
        Pressure (Pa).

    References
    ----------
    ICAO (1993): Manual of the ICAO Standard Atmosphere, Doc 7488/3.
    """
    z = np.asarray(elevation, dtype="float64")
    if np.any(z > 11_000) or np.any(z < -500):
        raise FoehnError(f"elevation {elevation} m is outside the tropospheric standard atmosphere (-500 to 11000 m)")
    p = 101_325.0 * (1.0 - 0.0065 * z / 288.15) ** 5.25588
    return float(p) if p.ndim == 0 else p


def potential_temperature(t: np.ndarray | float, p: np.ndarray | float) -> np.ndarray:
    r"""Potential temperature :math:`\theta = T (p_0 / p)^{R_d/c_p}` with :math:`p_0 = 1000` hPa.

    Parameters
    ----------
    t : array_like
        Air temperature (K).
    p : array_like
        Air pressure (Pa), broadcastable against ``t``.

    Returns
    -------
    ndarray
        Potential temperature (K).
    """
    return np.asarray(t, dtype="float64") * (P0 / np.asarray(p, dtype="float64")) ** KAPPA


# --------------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------------


def station_frame(data: pd.DataFrame | xr.Dataset, *, name: str = "station") -> pd.DataFrame:
    """Turn station data (observations or model output at a point) into a tidy hourly frame.

    Parameters
    ----------
    data : DataFrame or Dataset
        A Dataset with a ``time`` dimension (readers' station layout; a length-1 ``station`` dim
        is squeezed), or a DataFrame indexed by time or with a ``time`` column. Canonical columns:
        ``t2m`` (K), ``wind_dir`` (degree, direction the wind blows from), ``wind_speed``
        (m s-1), ``rh2m`` (%), optional ``sp`` (station pressure, Pa).
    name : str
        What to call the data in error messages (a file name or "valley"/"crest").

    Returns
    -------
    DataFrame
        Indexed by a sorted, unique, timezone-naive UTC ``DatetimeIndex`` named ``time``. A record
        repeated with identical values (the same line written twice) is kept once; gaps (missing
        hours) are left as they are, the pair is aligned on common time stamps later.

    Raises
    ------
    FoehnError
        If there is no time axis, ``t2m`` is missing, temperatures are not in kelvin, or one time
        stamp carries two different records (the error names the first such time).
    """
    if isinstance(data, xr.Dataset):
        if "station" in data.dims:
            if data.sizes["station"] != 1:
                raise FoehnError(
                    f"{name}: expected one station, got {data.sizes['station']}; select one with .sel(station=...)"
                )
            data = data.squeeze("station", drop=True)
        if "time" not in data.dims:
            raise FoehnError(f"{name}: dataset has no 'time' dimension (dims: {dict(data.sizes)})")
        keep = [v for v in (*STATION_COLUMNS, "sp") if v in data.data_vars]
        frame = data[keep].to_dataframe() if keep else pd.DataFrame(index=data.indexes["time"])
        frame = frame[[c for c in keep]]
    elif isinstance(data, pd.DataFrame):
        frame = data.copy()
        if "time" in frame.columns:
            frame = frame.set_index("time")
        if not isinstance(frame.index, pd.DatetimeIndex):
            raise FoehnError(f"{name}: a DataFrame needs a DatetimeIndex or a 'time' column")
    else:
        raise FoehnError(f"{name}: expected a pandas DataFrame or xarray Dataset, got {type(data).__name__}")
    if "t2m" not in frame.columns:
        raise FoehnError(f"{name}: missing column 't2m' (K); has {', '.join(map(str, frame.columns)) or '(none)'}")
    idx = pd.DatetimeIndex(frame.index)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    frame.index = idx.rename("time")
    frame = _drop_repeated_records(frame, name).sort_index()
    t = frame["t2m"].to_numpy(dtype="float64")
    if np.nanmedian(t) < 150:  # a degC column that slipped past a reader: refuse rather than guess
        raise FoehnError(f"{name}: t2m median {np.nanmedian(t):.1f} looks like degC; t2m must be in K")
    return frame.astype("float64")


def _drop_repeated_records(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Keep one of each identically repeated record; refuse time stamps with conflicting records.

    A repeated line is harmless, but two different records for one hour mean the file mixes
    sources or time zones, and picking one of them silently would bias the fit.
    """
    dup = frame.index.duplicated(keep=False)
    if not dup.any():
        return frame
    repeated = frame[dup]
    # nunique(dropna=False) counts NaN as a value, so NaN == NaN for this purpose.
    differing = repeated.groupby(level=0).nunique(dropna=False).gt(1).any(axis=1)
    if differing.any():
        first = differing.index[differing.to_numpy()].min()
        raise FoehnError(
            f"{name}: {int(differing.sum())} time stamp(s) with different records, first at "
            f"{first:%Y-%m-%d %H:%M} UTC; remove the duplicates (or average them) first"
        )
    return frame[~frame.index.duplicated(keep="first")]


def _sector_mask(direction: np.ndarray, sector: tuple[float, float], what: str) -> np.ndarray:
    """True where ``direction`` (degree) lies in the clockwise sector ``from → to`` (inclusive)."""
    lo, hi = (float(s) for s in sector)
    for v in (lo, hi):
        if not (0.0 <= v <= 360.0) or not math.isfinite(v):
            raise FoehnError(f"{what} sector {sector}: bounds must lie in [0, 360] degrees")
    if lo == hi:
        raise FoehnError(f"{what} sector {sector}: empty sector (from == to)")
    d = np.mod(direction, 360.0)
    lo, hi = lo % 360.0, hi % 360.0 if hi != 360.0 else 360.0
    # Sectors are read clockwise from `lo` to `hi`, so (300, 60) wraps through north.
    return (d >= lo) & (d <= hi) if lo < hi else (d >= lo) | (d <= hi)


def prepare_pair(
    valley: pd.DataFrame | xr.Dataset,
    crest: pd.DataFrame | xr.Dataset,
    *,
    valley_elevation: float,
    crest_elevation: float,
    names: tuple[str, str] = ("valley", "crest"),
) -> pd.DataFrame:
    r"""Align a valley and a crest station and compute :math:`\Delta\theta`.

    Parameters
    ----------
    valley, crest : DataFrame or Dataset
        Station data in the layout of :func:`station_frame`.
    valley_elevation, crest_elevation : float
        Station heights above mean sea level (m). Used for the standard-atmosphere station
        pressure when a station has no ``sp`` column (a warning says so).
    names : (str, str)
        Labels of the two inputs for error messages (e.g. their file names).

    Returns
    -------
    DataFrame
        Indexed by the common hourly times, with valley columns under their canonical names,
        crest columns prefixed ``crest_``, and ``theta_valley``, ``theta_crest``, ``dtheta`` (K).
        ``attrs`` holds ``valley_hours`` and ``crest_hours``, the record lengths before alignment.

    Raises
    ------
    FoehnError
        If the crest is not above the valley, or the records do not overlap in time.
    """
    if not (math.isfinite(valley_elevation) and math.isfinite(crest_elevation)):
        raise FoehnError("station elevations must be finite numbers (m)")
    if crest_elevation <= valley_elevation:
        raise FoehnError(f"crest elevation {crest_elevation} m must be above the valley elevation {valley_elevation} m")
    v = station_frame(valley, name=names[0])
    c = station_frame(crest, name=names[1])
    if v.index.max() < c.index.min() or c.index.max() < v.index.min():
        raise FoehnError(
            f"{names[0]} ({v.index.min()} to {v.index.max()}) and {names[1]} "
            f"({c.index.min()} to {c.index.max()}) do not overlap in time"
        )
    pair = v.join(c.add_prefix("crest_"), how="inner")
    if pair.empty:
        raise FoehnError(f"{names[0]} and {names[1]} share no time stamps (different time steps?)")
    # Records with gaps are aligned on their common time stamps; the counts travel with the
    # frame so that the fit can report how many hours each step kept.
    pair.attrs.update(valley_hours=len(v), crest_hours=len(c))
    pressures = {}
    for label, prefix, z in (("valley", "", valley_elevation), ("crest", "crest_", crest_elevation)):
        col = f"{prefix}sp"
        if col in pair.columns and pair[col].notna().any():
            pressures[label] = pair[col].to_numpy()
        else:
            warnings.warn(
                f"no station pressure for the {label} station: using the standard-atmosphere pressure "
                f"{standard_atmosphere_pressure(z) / 100:.1f} hPa at {z:g} m",
                UserWarning,
                stacklevel=2,
            )
            pressures[label] = np.full(len(pair), standard_atmosphere_pressure(z))
    pair["theta_valley"] = potential_temperature(pair["t2m"].to_numpy(), pressures["valley"])
    pair["theta_crest"] = potential_temperature(pair["crest_t2m"].to_numpy(), pressures["crest"])
    pair["dtheta"] = pair["theta_crest"] - pair["theta_valley"]
    return pair
