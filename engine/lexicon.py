"""The one lexicon of canonical variable names and units.

Readers translate native names and units into these; nothing downstream guesses. Upper-air
variables carry their pressure level in hPa in the name (``z500``, ``t850``, ``u200``); the
base quantity (``z``, ``t``, ``u``...) defines the units.

Public API: ``Variable``, ``VARIABLES``, ``lookup``, ``level_name``, ``is_level_name``, ``attrs_for``,
``convert_units``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from engine.errors import UnknownNameError


@dataclass(frozen=True)
class Variable:
    """A canonical variable: its name, units (UDUNITS spelling), CF standard name and a label."""

    name: str
    units: str
    standard_name: str
    long_name: str


def _v(name: str, units: str, standard_name: str, long_name: str) -> Variable:
    return Variable(name, units, standard_name, long_name)


#: Surface, radar and static variables, plus the base quantities of upper-air variables.
VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        # upper air: the base of z500, t850... (level in hPa appended)
        _v("z", "m2 s-2", "geopotential", "Geopotential"),
        _v("gh", "m", "geopotential_height", "Geopotential height"),
        _v("t", "K", "air_temperature", "Temperature"),
        _v("u", "m s-1", "eastward_wind", "Eastward wind"),
        _v("v", "m s-1", "northward_wind", "Northward wind"),
        _v("q", "kg kg-1", "specific_humidity", "Specific humidity"),
        _v("r", "%", "relative_humidity", "Relative humidity"),
        _v("vo", "s-1", "atmosphere_relative_vorticity", "Relative vorticity"),
        # surface
        _v("t2m", "K", "air_temperature", "2 m temperature"),
        _v("d2m", "K", "dew_point_temperature", "2 m dew point"),
        _v("rh2m", "%", "relative_humidity", "2 m relative humidity"),
        _v("u10", "m s-1", "eastward_wind", "10 m eastward wind"),
        _v("v10", "m s-1", "northward_wind", "10 m northward wind"),
        _v("wind_speed", "m s-1", "wind_speed", "Wind speed"),
        _v("wind_dir", "degree", "wind_from_direction", "Wind direction (from)"),
        _v("wind_gust", "m s-1", "wind_speed_of_gust", "Wind gust"),
        _v("msl", "Pa", "air_pressure_at_mean_sea_level", "Mean sea-level pressure"),
        _v("sp", "Pa", "surface_air_pressure", "Surface pressure"),
        _v("visibility", "m", "visibility_in_air", "Visibility"),
        _v("tp", "mm", "precipitation_amount", "Total precipitation"),
        # radar
        _v("precip_rate", "mm h-1", "rainfall_rate", "Precipitation rate"),
        _v("reflectivity", "dBZ", "equivalent_reflectivity_factor", "Radar reflectivity"),
        # static
        _v("orography", "m", "surface_altitude", "Terrain height"),
        _v("land_sea_mask", "1", "land_binary_mask", "Land-sea mask"),
        _v("land_sea_fraction", "1", "land_area_fraction", "Land fraction"),
        # NCL landsea.nc classes: 0 ocean, 1 land, 2 lake, 3 small island, 4 ice shelf (flag_values in attrs)
        _v("land_sea_class", "1", "area_type", "Land-sea class"),
    )
}

_LEVEL_RE = re.compile(r"^(z|gh|t|u|v|q|r|vo)(\d{2,4})$")


def level_name(base: str, level_hpa: float) -> str:
    """Canonical name of an upper-air variable, e.g. ``level_name("z", 500) == "z500"``."""
    if base not in VARIABLES or not _LEVEL_RE.match(f"{base}{int(level_hpa)}"):
        raise UnknownNameError("upper-air variable", base, [b for b in VARIABLES if _LEVEL_RE.match(b + "500")])
    return f"{base}{int(round(level_hpa))}"


def is_level_name(name: str) -> bool:
    """Whether ``name`` is a canonical upper-air name with its level (``z500``, ``t850``)."""
    return _LEVEL_RE.match(name) is not None


def lookup(name: str) -> Variable:
    """Return the :class:`Variable` for a canonical name (``z500`` resolves through ``z``).

    Raises
    ------
    UnknownNameError
        If ``name`` is not canonical.
    """
    if name in VARIABLES:
        return VARIABLES[name]
    m = _LEVEL_RE.match(name)
    if m:
        base = VARIABLES[m.group(1)]
        level = m.group(2)
        return Variable(name, base.units, base.standard_name, f"{base.long_name} at {level} hPa")
    raise UnknownNameError("variable", name, VARIABLES)


def attrs_for(name: str, **extra: object) -> dict[str, object]:
    """CF attributes (``units``, ``standard_name``, ``long_name``) for a canonical variable."""
    v = lookup(name)
    return {"units": v.units, "standard_name": v.standard_name, "long_name": v.long_name, **extra}


# Multiplicative/additive conversions into canonical units, keyed by (from, to).
_CONVERSIONS: dict[tuple[str, str], tuple[float, float]] = {
    ("degC", "K"): (1.0, 273.15),
    ("celsius", "K"): (1.0, 273.15),
    ("hPa", "Pa"): (100.0, 0.0),
    ("mb", "Pa"): (100.0, 0.0),
    ("kt", "m s-1"): (0.514444, 0.0),
    ("knots", "m s-1"): (0.514444, 0.0),
    ("m", "mm"): (1000.0, 0.0),
    ("mm/h", "mm h-1"): (1.0, 0.0),
    ("m/s", "m s-1"): (1.0, 0.0),
    ("m**2 s**-2", "m2 s-2"): (1.0, 0.0),
    ("gpm", "m"): (1.0, 0.0),
    ("km", "m"): (1000.0, 0.0),
}


def convert_units(values: np.ndarray, from_units: str, to_units: str) -> np.ndarray:
    """Convert ``values`` from ``from_units`` to ``to_units`` (only the pairs meteolens meets).

    Raises
    ------
    UnknownNameError
        If the conversion is not known.
    """
    if from_units == to_units:
        return values
    try:
        scale, offset = _CONVERSIONS[(from_units, to_units)]
    except KeyError:
        known = [f"{a}->{b}" for a, b in _CONVERSIONS]
        raise UnknownNameError("unit conversion", f"{from_units}->{to_units}", known) from None
    return values * scale + offset
