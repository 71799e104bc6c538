"""Former home of the atomic file writers; they live in :mod:`cemkit.runs.store` now."""

from __future__ import annotations

from cemkit.runs.store import atomic_directory, atomic_file, atomic_write_text

__all__ = ["atomic_directory", "atomic_file", "atomic_write_text"]
