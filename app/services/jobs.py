"""Run a forecast: job forms derived from the job specs, form parsing with paths confined to the
data and store folders, and running a job in the server process.

Public API: ``FormField``, ``job_forms``, ``unavailable_job_modules``, ``device_choices``,
``readable_roots``, ``confined_path``, ``parse_form``, ``submit_job``, ``INPUT_FIELDS``,
``PATH_FIELDS``, ``FORM_LIMITS``.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from app.services.store import catalog, settings
from engine import datasets


def _spec_classes() -> dict[str, type]:
    from app.demo import spec_classes

    return spec_classes()


@dataclass(frozen=True)
class FormField:
    """One input of a job form, derived from a field of the job's spec dataclass.

    ``kind`` is ``"text"``, ``"int"``, ``"float"``, ``"bool"`` or ``"list"`` (typed by ``item``:
    ``"text"``, ``"int"`` or ``"float"``); ``optional`` fields may be left empty (``None``).
    """

    name: str
    kind: str
    default: Any
    required: bool
    optional: bool = False
    item: str = "text"


_SCALARS: dict[Any, str] = {bool: "bool", int: "int", float: "float", str: "text"}


def _field_kind(tp: Any) -> tuple[str, str, bool]:
    """``(kind, item kind, optional)`` of a spec field's type annotation."""
    args = typing.get_args(tp)
    optional = type(None) in args
    if optional:
        rest = [a for a in args if a is not type(None)]
        tp = rest[0] if len(rest) == 1 else str
        args = typing.get_args(tp)
    if tp in _SCALARS:
        return _SCALARS[tp], "text", optional
    origin = typing.get_origin(tp)
    if origin in (tuple, list) or tp in (tuple, list):
        items = [a for a in args if a is not Ellipsis]
        return "list", _SCALARS.get(items[0], "text") if items else "text", optional
    return "text", "text", optional


@st.cache_resource(show_spinner="Loading the job kinds…")
def job_forms() -> dict[str, list[FormField]]:
    """Registered job kinds and the form fields of their specs (kinds without a spec class are left out)."""
    from engine.jobs.kinds import load_job_kinds

    kinds = load_job_kinds()
    classes = _spec_classes()
    forms: dict[str, list[FormField]] = {}
    for kind in kinds:
        cls = classes.get(kind)
        if cls is None:
            continue
        hints = typing.get_type_hints(cls)
        fields = []
        for f in dataclasses.fields(cls):
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            default = (
                f.default
                if f.default is not dataclasses.MISSING
                else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            )
            field_kind, item, optional = _field_kind(hints.get(f.name, str))
            fields.append(FormField(f.name, field_kind, default, not has_default, optional, item))
        forms[kind] = fields
    return forms


def unavailable_job_modules() -> dict[str, str]:
    """Job families that could not load, with the reason (a missing optional dependency)."""
    from engine.jobs.kinds import unavailable_job_modules as _unavailable

    return _unavailable()


#: Spec fields that name input files: resolved from globs and sample dataset names.
INPUT_FIELDS: frozenset[str] = frozenset({"inputs", "init"})
#: Spec fields holding one file or folder (or a sample dataset name, or a built-in model name):
#: the downscaling input and DEM, the global climatology, the global model (an adapter spec file).
PATH_FIELDS: frozenset[str] = frozenset({"input", "dem", "climatology", "model"})
#: Numeric fields the app bounds, ``(kind, field) → (lowest, highest)``. Jobs launched from the
#: page run inside the server process while the user waits, so their size is capped at what a CPU
#: finishes in a few minutes; the CLI (``meteolens nowcast``...) has no such cap.
FORM_LIMITS: dict[tuple[str, str], tuple[int, int]] = {
    ("nowcast", "lead_steps"): (1, 72),  # 6 h of 5-minute radar frames
    ("nowcast", "members"): (1, 50),
    ("global", "lead_hours"): (1, 240),  # 10 days
}


def device_choices() -> list[str]:
    """Device names a job spec accepts (``auto``, ``cpu``, ``cuda``...)."""
    from engine.device import DEVICE_CHOICES

    return list(DEVICE_CHOICES)


def readable_roots() -> tuple[Path, ...]:
    """The folders the app may read files from: the sample-data folder and the store (symlinks resolved)."""
    s = settings()
    return tuple(Path(os.path.realpath(p)) for p in (s.data_root, s.store_root) if p is not None)


def confined_path(text: str, what: str) -> Path:
    """A path typed into a form, made absolute and checked to lie inside :func:`readable_roots`.

    Relative paths are taken relative to the sample-data folder (the server's working directory
    means nothing to a user in a browser). The check resolves ``..`` and symbolic links, also in
    the fixed part of a glob pattern, so neither can reach outside the allowed folders.

    Parameters
    ----------
    text : str
        What the user typed: a file, a folder or a glob pattern.
    what : str
        The form field, for the message.

    Returns
    -------
    Path
        The absolute path (or pattern), unresolved so that glob characters survive.

    Raises
    ------
    JobError
        The path lies outside the data and store folders, or is relative without a data folder.
    """
    from engine.errors import JobError

    roots = readable_roots()
    path = Path(text).expanduser()
    if not path.is_absolute():
        data_root = settings().data_root
        if data_root is None:
            raise JobError(f"{what}: relative path {text!r} needs a sample-data folder (set METEOLENS_DATA)")
        path = data_root / path
    # realpath works on patterns too: a wildcard component is a name that does not exist, and a
    # '..' after it removes it, which is what the glob would do.
    real = Path(os.path.realpath(path))
    if not any(real.is_relative_to(root) for root in roots):
        raise JobError(
            f"{what}: {text!r} is outside the folders this app reads "
            f"({' and '.join(str(r) for r in roots)}); give a sample dataset name or a path inside them"
        )
    return path


def _check_limits(kind: str, name: str, value: Any) -> None:
    """Refuse a number outside :data:`FORM_LIMITS` with a message that gives the allowed range."""
    from engine.errors import JobError

    bounds = FORM_LIMITS.get((kind, name))
    if bounds is None or value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return
    low, high = bounds
    if not low <= value <= high:
        raise JobError(
            f"{kind}: {name.replace('_', ' ')} = {value:g} is out of range: {low} to {high} for a job run from "
            f"the app (the `meteolens {kind}` command has no such limit)"
        )


def _typed_path(kind: str, name: str, item: str) -> str:
    """A value of a path field: sample dataset and built-in model names pass, paths are confined."""
    from engine.errors import JobError

    if item.lower() in datasets.load_catalogue():
        return item
    if kind == "global" and name == "model":
        from engine.jobs.global_job import GLOBAL_MODELS

        if item in GLOBAL_MODELS:
            return item
    path = confined_path(item, name)
    if not any(ch in item for ch in "*?[") and not path.exists():
        raise JobError(
            f"{kind}: {name}: no such file, folder or sample dataset {item!r} "
            f"(relative paths are read from the data folder {settings().data_root})"
        )
    return str(path)


def parse_form(kind: str, raw: dict[str, Any]) -> Any:
    """Build the job spec of ``kind`` from form values (text lists split on commas).

    File names are confined to the data and store folders (:func:`confined_path`), numbers to
    :data:`FORM_LIMITS`, before the spec validates the rest.

    Raises
    ------
    JobError
        A path outside the allowed folders, a file that does not exist, a number out of range, or
        a value the spec rejects (its message says which and why).
    ReaderError
        An input pattern that matches no file.
    """
    from engine.errors import JobError

    cls = _spec_classes()[kind]
    fields = {f.name: f for f in job_forms()[kind]}
    casts: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "text": str}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        f = fields[name]
        empty = value is None or (isinstance(value, str) and not value.strip())
        if empty and f.kind in ("text", "list"):
            if f.required:
                raise JobError(f"{kind}: {name.replace('_', ' ')} is required")
            values[name] = None if f.optional else f.default
        elif f.kind == "list":
            items = [v.strip() for v in str(value).replace("\n", ",").split(",") if v.strip()]
            if name in INPUT_FIELDS:
                # Files, globs, folders or sample dataset names → the files (as the CLI does), each
                # confined to the allowed folders before and after globbing (a match may be a link).
                typed = [_typed_path(kind, name, item) for item in items]
                files = datasets.resolve_inputs(typed, settings().data_root)
                values[name] = tuple(str(confined_path(str(p), name)) for p in files)
                continue
            try:
                values[name] = tuple(casts[f.item](v) for v in items)
            except ValueError as err:
                raise JobError(f"{kind}: {name.replace('_', ' ')}: expected {f.item} values, got {value!r}") from err
        elif name in PATH_FIELDS and isinstance(value, str):
            values[name] = _typed_path(kind, name, value.strip())
        else:
            _check_limits(kind, name, value)
            values[name] = value
    try:
        return cls(**values)
    except TypeError as err:
        raise JobError(f"{kind}: {err}") from err


def submit_job(spec: Any, progress: Callable[[float, str], None]) -> Any:
    """Run a job to completion in this process with the local executor; returns its ``RunResult``.

    Raises
    ------
    WxError
        The job failed (the run is catalogued as failed with the same message).
    """
    from engine.jobs.runner import LocalExecutor

    try:
        return LocalExecutor(settings(), catalog()).submit(spec, progress=progress)
    finally:
        # A new run, succeeded or failed (catalogued with its error): every listing must see it.
        st.cache_data.clear()
