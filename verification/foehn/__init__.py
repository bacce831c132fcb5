r"""Objective Foehn diagnosis from a valley/crest station pair (the foehnix method).

A two-component Gaussian mixture is fitted to the crest-to-valley potential temperature difference
:math:`\Delta\theta = \theta_\mathrm{crest} - \theta_\mathrm{valley}` (K). During Foehn the air between
crest and valley is well mixed (dry adiabatic descent), so :math:`\Delta\theta` is small; without
Foehn the valley is decoupled and usually stably stratified, so :math:`\Delta\theta` is large and
variable. The probability of the Foehn component depends on concomitant variables (relative
humidity, wind speed...) through a logistic regression, estimated inside the M-step of the EM
algorithm by iteratively re-weighted least squares (IWLS). Hours whose wind directions lie outside
the given sectors are excluded from the fit and get probability 0, as in foehnix.

The method is that of Plavcan, Mayr & Zeileis (2014) and its R implementation foehnix
(Stauffer, Mayr, Plavcan & Zeileis 2018). The same functions diagnose observations and model
output extracted at two stations: both only need the canonical columns ``t2m`` (K), ``wind_dir``
(degree), ``wind_speed`` (m s-1), ``rh2m`` (%) and optionally ``sp`` (station pressure, Pa).

Modules: :mod:`~verification.foehn.pair` (constants, thermodynamics, station frames and the
valley/crest pair), :mod:`~verification.foehn.mixture` (the mixture model and its EM fit),
:mod:`~verification.foehn.events` (episodes and statistics).

Public API: ``FoehnError``, ``FoehnFit``, ``potential_temperature``,
``standard_atmosphere_pressure``, ``station_frame``, ``prepare_pair``, ``fit_foehn``,
``foehn_events``, ``foehn_statistics``.

References
----------
Plavcan, D., G. J. Mayr and A. Zeileis (2014): Automatic and probabilistic foehn diagnosis with a
statistical mixture model. J. Appl. Meteor. Climatol. 53, 652-659, doi:10.1175/JAMC-D-13-0267.1.

Stauffer, R., D. Plavcan, G. J. Mayr and A. Zeileis (2018): foehnix: Toolbox for automated foehn
classification based on mixture models. R package, https://github.com/retostauffer/Rfoehnix.
"""

from __future__ import annotations

from verification.foehn.events import foehn_events, foehn_statistics
from verification.foehn.mixture import FoehnFit, fit_foehn
from verification.foehn.pair import (
    CONCOMITANT_ALIASES,
    KAPPA,
    P0,
    STATION_COLUMNS,
    FoehnError,
    potential_temperature,
    prepare_pair,
    standard_atmosphere_pressure,
    station_frame,
)

__all__ = [
    "CONCOMITANT_ALIASES",
    "KAPPA",
    "P0",
    "STATION_COLUMNS",
    "FoehnError",
    "FoehnFit",
    "fit_foehn",
    "foehn_events",
    "foehn_statistics",
    "potential_temperature",
    "prepare_pair",
    "standard_atmosphere_pressure",
    "station_frame",
]
