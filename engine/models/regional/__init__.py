"""Terrain-aware regional downscaling in torch (any global run + a DEM → a fine lat/lon grid).

One module per method:

- :mod:`.grid`: regular lat/lon target grids, projected source grids (radar, nowcasts) and their
  resampling onto lat/lon, bilinear interpolation (the baseline), block means, DEM area-averaging
  onto any grid.
- :mod:`.temperature`: lapse-rate downscaling with a lapse rate regressed locally from the coarse
  field (inversions give cold valleys).
- :mod:`.wind`: mass-consistent adjustment of 10 m winds (Sherman 1978), Jacobi-PCG in torch.
- :mod:`.precip`: Smith-Barstad (2004) linear orographic precipitation and a mass-conserving
  precipitation downscaler (``factor x factor`` blocks or any source grid).
- :mod:`.neural_field`: physics-guided coordinate network fitted per case (PhyDL-NWP style).
- :mod:`.downscale`: the xarray-level entry point :func:`~.downscale.downscale_dataset`.

The models register in :data:`engine.models.base.models` as ``regional/lapse_rate``,
``regional/mass_consistent``, ``regional/orographic_precip`` and ``regional/neural_field``.

Public API: ``downscale_dataset``, ``LapseRateDownscaler``, ``MassConsistentWind``,
``OrographicPrecipDownscaler``, ``NeuralFieldDownscaler``, ``METHODS``.
"""

from __future__ import annotations

from engine.models.regional.downscale import METHODS, downscale_dataset
from engine.models.regional.neural_field import NeuralFieldDownscaler
from engine.models.regional.precip import OrographicPrecipDownscaler
from engine.models.regional.temperature import LapseRateDownscaler
from engine.models.regional.wind import MassConsistentWind

__all__ = [
    "METHODS",
    "LapseRateDownscaler",
    "MassConsistentWind",
    "NeuralFieldDownscaler",
    "OrographicPrecipDownscaler",
    "downscale_dataset",
]
