"""A tiny name → object registry, used for readers, datasets, models and nowcast methods.

Names are case-insensitive; unknown names raise :class:`~engine.errors.UnknownNameError`
listing what is available. Third-party plugins enter through the entry-point group
``meteolens.<kind>s`` (e.g. ``meteolens.readers``), loaded lazily on first lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from engine.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Map names to objects (usually classes or factories).

    Parameters
    ----------
    kind : str
        What is registered, used in error messages and for the plugin entry-point group.

    Examples
    --------
    >>> methods = Registry[type]("method")
    >>> @methods.register("persistence")
    ... class Persistence: ...
    >>> methods.get("Persistence") is Persistence
    True
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._plugins_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Return a decorator that registers its argument under ``name``."""
        key = name.lower()

        def decorator(obj: T) -> T:
            if key in self._items and self._items[key] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[key] = obj
            return obj

        return decorator

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=f"meteolens.{self.kind}s"):
            self._items.setdefault(ep.name.lower(), ep.load())

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` (case-insensitive)."""
        self._load_plugins()
        try:
            return self._items[name.lower()]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._items) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._load_plugins()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        """``(name, object)`` pairs in registration order."""
        self._load_plugins()
        return iter(list(self._items.items()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __len__(self) -> int:
        return len(self._items)
