"""Readers for every supported format; importing this package registers them all.

Public API: ``open_any``, ``open_many``, ``detect``, ``readers``.
"""

from engine.readers.base import detect, open_any, open_many, readers

__all__ = ["detect", "open_any", "open_many", "readers"]
