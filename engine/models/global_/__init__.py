"""Global medium-range models: a spectral shallow-water dynamical core, baselines and adapters.

Modules (imported on demand, so that importing the package does not load torch):

- :mod:`~engine.models.global_.spectral`: spherical-harmonic operators (torch-harmonics).
- :mod:`~engine.models.global_.shallow_water`: the semi-implicit shallow-water model.
- :mod:`~engine.models.global_.testcases`: Williamson et al. (1992) test cases 2 and 6.
- :mod:`~engine.models.global_.initial`: initial states from analyses (regridding, balance, ensembles).
- :mod:`~engine.models.global_.baselines`: persistence and climatology.
- :mod:`~engine.models.global_.adapters`: pretrained ONNX / TorchScript models (FengWu contract).

The rollout and the ``global`` job kind live in :mod:`engine.jobs.global_job`.
"""
