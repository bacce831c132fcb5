r"""Spatial verification of gridded fields: FSS, SAL, power spectra and displacement.

These scores look at whole 2-D fields rather than at points, so each takes ``spatial_dims``
(default ``("y", "x")`` when both exist, else ``("lat", "lon")``): the two grid dims a score
works across. Every other dim (``lead_time``, ``member``, ...) is a batch dim, handled by
``reduce_dims`` / ``preserve_dims`` / ``weights`` as in the point-wise metrics.

Modules: :mod:`~verification.metrics.spatial.neighbourhood` (FSS),
:mod:`~verification.metrics.spatial.objects` (SAL), :mod:`~verification.metrics.spatial.fourier`
(power spectrum, displacement).

Public API: ``fss``, ``sal``, ``power_spectrum``, ``displacement``.

References
----------
Roberts, N. M. and Lean, H. W. (2008): Scale-selective verification of rainfall accumulations
from high-resolution forecasts of convective events. Mon. Wea. Rev., 136, 78-97.
Wernli, H., Paulat, M., Hagen, M. and Frei, C. (2008): SAL - a novel quality measure for the
verification of quantitative precipitation forecasts. Mon. Wea. Rev., 136, 4470-4487.
Wernli, H., Hofmann, C. and Zimmer, M. (2009): Spatial forecast verification methods
intercomparison project: application of the SAL technique. Wea. Forecasting, 24, 1472-1484.
Pulkkinen, S. et al. (2019): Pysteps: an open-source Python library for probabilistic
precipitation nowcasting (v1.0). Geosci. Model Dev., 12, 4185-4219.
"""

from __future__ import annotations

from verification.metrics.spatial.fourier import displacement, power_spectrum
from verification.metrics.spatial.neighbourhood import fss
from verification.metrics.spatial.objects import sal

__all__ = ["displacement", "fss", "power_spectrum", "sal"]
