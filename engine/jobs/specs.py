"""Job specifications: frozen, validated descriptions of one run.

A job spec says *what* to compute (a model, its inputs, its parameters, a device); the
executor in :mod:`engine.jobs.runner` decides *how* (catalogue rows, store writing, progress).
Specs are parsed once at the edge (CLI, app form, TOML file), validated in ``__post_init__``
and passed down unchanged; nothing mutates them afterwards.

Writing a spec family
---------------------
Each family subclasses :class:`JobSpec` as a frozen dataclass and names its kind in a
``ClassVar``. The base declares one field, ``device``, as *keyword-only* with a default, so a
subclass may declare fields with or without defaults in any order::

    @dataclass(frozen=True)
    class NowcastSpec(JobSpec):
        kind: ClassVar[str] = "nowcast"
        inputs: tuple[str, ...] = ()
        method: str = "extrapolation"
        n_steps: int = 12

        def __post_init__(self) -> None:
            super().__post_init__()          # validates ``device``; keep this call
            if self.n_steps < 1:
                raise JobError(f"n_steps={self.n_steps}: expected a positive number of steps")

    spec = NowcastSpec(inputs=("a.gif", "b.gif"), device="cpu")
    spec.to_params()  # {'device': 'cpu', 'inputs': ['a.gif', 'b.gif'], 'method': ..., 'n_steps': 12}

Use tuples (not lists) and ``Path`` or ``str`` for field values so specs stay hashable;
:meth:`JobSpec.to_params` turns them into JSON-able values for the catalogue and the run store.

Public API: ``JobSpec``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from engine.device import DEVICE_CHOICES
from engine.errors import JobError
from engine.storage.jsonable import jsonable

_CUDA_INDEX_RE = re.compile(r"^cuda:\d+$")


@dataclass(frozen=True)
class JobSpec:
    """Base class of every job spec (a frozen dataclass).

    Attributes
    ----------
    kind : ClassVar[str]
        The job kind, the key of :data:`engine.jobs.runner.job_kinds`; each subclass sets it.
    device : str
        ``"auto"`` (CUDA where there is one, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        Keyword-only, so subclasses may declare fields without defaults.

    Raises
    ------
    JobError
        From ``__post_init__``: the class sets no ``kind`` or ``device`` is not a device name.
    """

    kind: ClassVar[str] = ""
    device: str = field(default="auto", kw_only=True)

    def __post_init__(self) -> None:
        if not self.kind:
            raise JobError(f"{type(self).__name__} sets no `kind`; subclass JobSpec and set kind: ClassVar[str]")
        if not isinstance(self.device, str) or not (self.device in DEVICE_CHOICES or _CUDA_INDEX_RE.match(self.device)):
            raise JobError(f"device={self.device!r}: expected one of {', '.join(DEVICE_CHOICES)} or cuda:N")

    def to_params(self) -> dict[str, Any]:
        """The spec's fields as a JSON-able dict (Paths → str, tuples → lists, datetimes → ISO).

        Raises
        ------
        JobError
            If a field holds a value with no JSON representation.
        """
        params: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            try:
                params[f.name] = jsonable(getattr(self, f.name))
            except TypeError as err:
                raise JobError(f"{type(self).__name__}.{f.name}: {err}") from err
        return params

    def model_name(self) -> str:
        """Name of the model this job runs, recorded in the catalogue; defaults to :attr:`kind`."""
        return self.kind
