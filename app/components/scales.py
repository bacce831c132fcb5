"""Colour scales and display units that forecasters know, per canonical variable.

The map shows each variable in the units forecasters read, converted from the canonical units of
:mod:`engine.lexicon`:

* precipitation rate (mm h-1): a *discrete* scale with the classes 0.1, 0.5, 1, 2, 5, 10, 20, 50,
  100 mm/h, light blue → blue → green → yellow → orange → red → purple; below 0.1 mm/h is dry
  (transparent) and a gap in the radar data is grey, so "no rain" and "no data" differ;
* temperatures (K → °C): a diverging blue-white-red scale centred on 0 °C;
* geopotential (m2 s-2 → dam, divided by g0 = 9.80665 m s-2 and by 10): contour lines every
  6 dam at 500 hPa (4 dam at 850 hPa and below), labelled;
* mean sea-level pressure (Pa → hPa): isobars every 4 hPa;
* winds (m s-1): diverging; terrain (m): a terrain scale; differences: diverging around 0.

Public API: ``Scale``, ``scale_for``, ``PRECIP_LEVELS``, ``PRECIP_COLOURS``, ``precip_classes``,
``G0``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from engine.errors import UnknownNameError
from engine.lexicon import lookup

#: Standard gravity (m s-2), WMO: geopotential height = geopotential / g0.
G0 = 9.80665

#: Class boundaries of the precipitation-rate scale (mm h-1).
PRECIP_LEVELS: tuple[float, ...] = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
#: One colour per class [0.1, 0.5), [0.5, 1), ..., [50, 100), [100, ∞).
PRECIP_COLOURS: tuple[str, ...] = (
    "#b4d7f0",  # 0.1-0.5  light blue
    "#5aa0e6",  # 0.5-1    blue
    "#1e5ac8",  # 1-2      dark blue
    "#28b43c",  # 2-5      green
    "#96dc28",  # 5-10     yellow-green
    "#ffe11e",  # 10-20    yellow
    "#ff8c00",  # 20-50    orange
    "#e6141e",  # 50-100   red
    "#a01eb4",  # >= 100   purple
)


@dataclass(frozen=True)
class Scale:
    """How one variable is drawn.

    Attributes
    ----------
    kind : {"discrete", "continuous", "contour"}
        Discrete classes (precipitation), a continuous colour scale, or labelled contour lines.
    units : str
        Display units (after :meth:`convert`), written on every label.
    label : str
        Human name of the variable, e.g. "Temperature at 850 hPa".
    factor, offset : float
        ``display = value * factor + offset``.
    colorscale : str or list
        Plotly colour scale (continuous kinds).
    zmid : float or None
        Centre of a diverging scale, in display units.
    contour_step : float or None
        Contour interval in display units (contour kind).
    """

    kind: str
    units: str
    label: str
    factor: float = 1.0
    offset: float = 0.0
    colorscale: str | list[list[object]] = "Viridis"
    zmid: float | None = None
    contour_step: float | None = None

    def convert(self, values: np.ndarray) -> np.ndarray:
        """Canonical units → display units."""
        return values * self.factor + self.offset


_LEVEL = re.compile(r"^([a-z]+?)(\d{2,4})$")


def _label(name: str) -> str:
    try:
        return lookup(name).long_name
    except UnknownNameError:
        return name


def scale_for(name: str, units: str, *, difference: bool = False) -> Scale:
    """The display scale of variable ``name`` stored in ``units``.

    Parameters
    ----------
    name : str
        Canonical variable name (``precip_rate``, ``t2m``, ``z500``...).
    units : str
        The units the data carry (canonical ones, from the store or reader).
    difference : bool
        Whether a difference of two fields is drawn: then always a diverging scale centred on 0
        (temperature differences in K, geopotential in dam, precipitation in mm/h).

    Returns
    -------
    Scale
    """
    label = _label(name)
    m = _LEVEL.match(name)
    base = m.group(1) if m else name
    level = int(m.group(2)) if m else None
    if difference:
        if base == "z" and units == "m2 s-2":
            height = label.replace("Geopotential", "Geopotential height")
            return Scale(
                "continuous", "dam", f"{height} difference", factor=1 / (G0 * 10), colorscale="RdBu_r", zmid=0.0
            )
        if base == "msl" and units == "Pa":
            return Scale("continuous", "hPa", f"{label} difference", factor=0.01, colorscale="RdBu_r", zmid=0.0)
        scale = "BrBG" if name in ("precip_rate", "tp") else "RdBu_r"
        shown = "K" if units == "K" else units
        return Scale("continuous", shown, f"{label} difference", colorscale=scale, zmid=0.0)
    if name == "precip_rate":
        return Scale("discrete", "mm h⁻¹", label)
    if name == "reflectivity":
        return Scale("continuous", "dBZ", label, colorscale="Turbo")
    if units == "K" and base in ("t", "t2m", "d2m"):
        return Scale("continuous", "°C", label, offset=-273.15, colorscale="RdBu_r", zmid=0.0)
    if base == "z" and units == "m2 s-2":
        step = 6.0 if (level or 500) <= 700 else 4.0
        return Scale(
            "contour",
            "dam",
            label.replace("Geopotential", "Geopotential height"),
            factor=1 / (G0 * 10),
            contour_step=step,
        )
    if base == "gh" and units == "m":
        return Scale("contour", "dam", label, factor=0.1, contour_step=6.0)
    if name in ("msl", "sp") and units == "Pa":
        return Scale("contour", "hPa", label, factor=0.01, contour_step=4.0)
    if base in ("u", "v", "u10", "v10"):
        return Scale("continuous", "m s⁻¹", label, colorscale="PuOr_r", zmid=0.0)
    if name in ("wind_speed", "wind_gust"):
        return Scale("continuous", "m s⁻¹", label, colorscale="YlGnBu")
    if name == "orography":
        return Scale("continuous", "m", label, colorscale="earth")
    if base in ("r", "rh2m"):
        return Scale("continuous", "%", label, colorscale="BuGn")
    return Scale("continuous", units.replace("-1", "⁻¹").replace("-2", "⁻²"), label)


def precip_classes(values: np.ndarray) -> np.ndarray:
    """Class index of precipitation rates (mm h-1) on :data:`PRECIP_LEVELS`.

    Returns
    -------
    ndarray
        float32: 1 for [0.1, 0.5) ... 9 for ≥ 100; NaN below 0.1 mm/h (dry, drawn transparent)
        and where the input is NaN (no data).
    """
    v = np.asarray(values, dtype="float64")
    cls = np.digitize(np.nan_to_num(v, nan=-1.0), PRECIP_LEVELS).astype("float32")
    cls[(cls == 0) | np.isnan(v)] = np.nan
    return cls


def precip_colorscale() -> list[list[object]]:
    """Plotly stepped colour scale for class indices 1-9 drawn with ``zmin=0.5, zmax=9.5``."""
    stops: list[list[object]] = []
    n = len(PRECIP_COLOURS)
    for i, colour in enumerate(PRECIP_COLOURS):
        stops.append([i / n, colour])
        stops.append([(i + 1) / n, colour])
    return stops
