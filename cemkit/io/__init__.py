"""Loaders: every source format behind one registry, plus the run writer.

Importing this package registers the built-in formats. ``cemkit.load`` is
:func:`cemkit.io.api.load`.
"""

from __future__ import annotations

import importlib

from cemkit.io.base import Loader, Part, registry

#: Format modules registered on import; optional ones may be absent from a checkout.
_FORMAT_MODULES = ("asterisk", "freeswitch", "cucm", "generic", "parquet")
_OPTIONAL_MODULES = ("sip_pcap",)

for _name in _FORMAT_MODULES:
    importlib.import_module(f"cemkit.io.{_name}")
for _name in _OPTIONAL_MODULES:
    try:
        importlib.import_module(f"cemkit.io.{_name}")
    except ModuleNotFoundError as _exc:  # only the module itself may be missing
        if _exc.name != f"cemkit.io.{_name}":
            raise

from cemkit.io.api import expand_paths, load, load_quarantine, plan  # noqa: E402
from cemkit.io.output import read_records, write_run  # noqa: E402

__all__ = [
    "Loader",
    "Part",
    "expand_paths",
    "load",
    "load_quarantine",
    "plan",
    "read_records",
    "registry",
    "write_run",
]
