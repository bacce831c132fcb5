"""The persistence baseline: the id of its catalogued baseline run and its registration."""

from __future__ import annotations

from engine.storage.catalog import Catalog, RunRecord
from verification.pipeline.options import VerificationError

#: Suffix of the catalogued baseline run holding the persistence scores of a run.
PERSISTENCE_SUFFIX = ".persistence"


def baseline_run_id(run_id: str) -> str:
    """Id of the catalogued persistence baseline of ``run_id`` (see the module docstring)."""
    return f"{run_id}{PERSISTENCE_SUFFIX}"


def _baseline(catalog: Catalog, rec: RunRecord, reference: str) -> str:
    """Register (once) the baseline run that holds the persistence scores of ``rec``."""
    bid = baseline_run_id(rec.run_id)
    if catalog.has_run(bid):
        existing = catalog.get_run(bid)
        if existing.parameters.get("baseline_of") != rec.run_id:
            raise VerificationError(f"run {bid} exists and is not the persistence baseline of {rec.run_id}")
        return bid
    catalog.register_run(
        bid,
        "persistence",
        rec.kind,
        rec.domain,
        rec.init_time,
        {
            "baseline_of": rec.run_id,
            "method": "the reference at the run's init time, held over every lead time",
            "reference": reference,
        },
        status="succeeded",
    )
    return bid
