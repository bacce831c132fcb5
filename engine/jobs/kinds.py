"""Where job kinds come from: the job module of each model family.

Each family's job module registers its kind(s) in :data:`engine.jobs.runner.job_kinds` when
imported. Importing them all at start-up would load torch and every model for a command that
only lists runs, so :func:`load_job_kinds` imports them on first need (the executor calls it
when a spec names a kind that is not registered yet).

Adding a family: append its module to :data:`JOB_MODULES` (one line per family).

Public API: ``JOB_MODULES``, ``load_job_kinds``, ``unavailable_job_modules``.
"""

from __future__ import annotations

import importlib

from engine.errors import MissingDependencyError

#: Modules that register job kinds on import, one per model family.
JOB_MODULES: tuple[str, ...] = (
    "engine.jobs.downscale_job",
    "engine.jobs.global_job",
    "engine.jobs.nowcast_job",
)

# Modules that could not be imported for want of an optional dependency, with the reason, so
# that "unknown job kind" errors can say why a kind is missing rather than just that it is.
_unavailable: dict[str, str] = {}
_loaded = False


def load_job_kinds() -> list[str]:
    """Import every module in :data:`JOB_MODULES` so their job kinds register.

    A module whose optional dependency is missing (``MissingDependencyError`` or a
    ``ModuleNotFoundError`` for a third-party package) is skipped and remembered in
    :func:`unavailable_job_modules`; any other import error is a bug and propagates.
    Calling it again is cheap.

    Returns
    -------
    list of str
        The registered job kinds, sorted.
    """
    global _loaded
    from engine.jobs.runner import job_kinds

    if not _loaded:
        for name in JOB_MODULES:
            try:
                importlib.import_module(name)
            except MissingDependencyError as err:
                _unavailable[name] = str(err)
            except ModuleNotFoundError as err:
                # Only a missing *third-party* package is an optional dependency; a missing
                # meteolens module is a typo in JOB_MODULES and must fail loudly.
                if err.name and err.name.split(".")[0] in {"engine", "app", "verification"}:
                    raise
                _unavailable[name] = f"{err.name} is not installed"
        _loaded = True
    return job_kinds.names()


def unavailable_job_modules() -> dict[str, str]:
    """Job modules skipped by :func:`load_job_kinds`, with the reason (missing dependency)."""
    return dict(_unavailable)
