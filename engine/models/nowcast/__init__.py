"""Radar nowcasting in torch: optical flow, semi-Lagrangian extrapolation, STEPS ensembles.

One module per method, as in pysteps:

- :mod:`.motion`: dense optical flow (coarse-to-fine combined local-global method).
- :mod:`.extrapolation`: semi-Lagrangian backward advection, optional growth/decay.
- :mod:`.cascade`: Gaussian band-pass cascade decomposition/recomposition.
- :mod:`.noise`: spatially correlated noise with the observed power spectrum.
- :mod:`.steps`: the STEPS ensemble (AR(2) per cascade level, probability matching, masks).
- :mod:`.persistence`: Eulerian persistence.

Every method is a frozen dataclass satisfying :class:`engine.models.base.Nowcaster`, with class
attributes ``name``, ``min_frames`` (frames the method needs) and ``ensemble`` (whether the
output has a member dimension); the ensemble method also satisfies
:class:`engine.models.base.EnsembleNowcaster` (``iter_members``: the members chunk by chunk, so
a job can write them out without holding the whole ensemble). :data:`nowcast_methods` maps
names to them; they are also in :data:`engine.models.base.models` as ``"nowcast/<name>"``. All
tensors are rain rates in mm h-1 with NaN for no data, on ``(batch, time, y, x)`` inputs; any
device.

Public API: ``nowcast_methods``, ``Persistence``, ``Extrapolation``, ``Steps``, ``FlowParams``,
``StepsParams``, ``estimate_motion``, ``extrapolate``, ``steps_ensemble``, ``persistence``.
"""

from __future__ import annotations

from engine.models.base import Nowcaster, models
from engine.models.nowcast.extrapolation import Extrapolation, extrapolate
from engine.models.nowcast.motion import FlowParams, estimate_motion
from engine.models.nowcast.persistence import Persistence, persistence
from engine.models.nowcast.steps import Steps, StepsParams, steps_ensemble
from engine.registry import Registry

#: Nowcast method name → method class (``persistence``, ``extrapolation``, ``steps``).
nowcast_methods: Registry[type[Nowcaster]] = Registry("nowcast method")

for _cls in (Persistence, Extrapolation, Steps):
    nowcast_methods.register(_cls.name)(_cls)
    models.register(f"nowcast/{_cls.name}")(_cls)

__all__ = [
    "Extrapolation",
    "FlowParams",
    "Persistence",
    "Steps",
    "StepsParams",
    "estimate_motion",
    "extrapolate",
    "nowcast_methods",
    "persistence",
    "steps_ensemble",
]
