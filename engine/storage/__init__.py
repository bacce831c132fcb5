"""Storage: zarr run stores and the DuckDB catalogue.

Modules: :mod:`engine.storage.zarr_store` (``write_run_store``, ``open_run_store``,
``read_provenance``), :mod:`engine.storage.catalog` (``Catalog``, ``RunRecord``, migrations),
:mod:`engine.storage.jsonable` (strict JSON for attributes and parameters).
Nothing here imports torch.
"""
