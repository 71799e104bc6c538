"""Lazy package attributes, so ``cemkit --help`` does not import pandas, Dask or Numba.

A package ``__init__`` calls :func:`exports` with a mapping of attribute name → the module that
defines it; the attribute is imported on first access (PEP 562 module ``__getattr__``). Where a
function and its submodule share a name (``cemkit.correlate.match``), the function wins, as it
did when the package imported it eagerly: the import system's ``setattr(package, "match",
<module>)`` is ignored for exported names.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Mapping
from typing import Any


class _LazyPackage(types.ModuleType):
    """A package whose exported names are never shadowed by their submodules."""

    def __setattr__(self, name: str, value: Any) -> None:
        exported = self.__dict__.get("_cemkit_exports", {})
        submodule = (
            isinstance(value, types.ModuleType) and value.__name__ == f"{self.__name__}.{name}"
        )
        if name in exported and submodule:
            return  # a submodule being imported: the function of that name stays the attribute
        super().__setattr__(name, value)


def exports(package: str, names: Mapping[str, str]) -> None:
    """Make ``names`` (attribute → defining module) lazy attributes of ``package``."""
    module = sys.modules[package]

    def __getattr__(name: str) -> Any:
        source = names.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        module.__dict__[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(module.__dict__) | set(names))

    module.__dict__["_cemkit_exports"] = dict(names)
    module.__dict__["__getattr__"] = __getattr__
    module.__dict__["__dir__"] = __dir__
    module.__class__ = _LazyPackage
