"""Operators' own ASN.1 modules (``-o schema=vendor.asn``), compiled by pycrate at load time.

An operator's CDR module is usually the TS 32.298 module with vendor components added (extra
tags in the record SETs, vendor diagnostics). pycrate's compiler turns the text into Python
source once per process (cached by the files' contents); the records are then decoded with it.
Several files may be given (``schema=a.asn,b.asn``) when the module imports others.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from cemkit.errors import FormatError

_LOCK = threading.Lock()
_CACHE: dict[str, list[Any]] = {}


def compile_modules(paths: tuple[str, ...]) -> list[Any]:
    """Compile ASN.1 files with pycrate and return their module classes."""
    texts = []
    for p in paths:
        try:
            texts.append(Path(p).read_text(encoding="utf-8", errors="replace"))
        except OSError as exc:
            raise FormatError(f"cannot read ASN.1 schema {p}: {exc.strerror}") from None
    digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
    with _LOCK:
        if digest in _CACHE:
            return _CACHE[digest]
        from pycrate_asn1c.asnproc import GLOBAL, PycrateGenerator, compile_text, generate_modules

        GLOBAL.clear()
        try:
            compile_text(texts)
            out = Path(tempfile.gettempdir()) / f"cemkit_asn1_{digest}.py"
            tmp = out.with_suffix(f".{os.getpid()}.tmp")
            generate_modules(PycrateGenerator, str(tmp))
            os.replace(tmp, out)
            names = list(GLOBAL.MOD.keys())
        except Exception as exc:  # noqa: BLE001 - the compiler raises many types
            raise FormatError(
                f"the ASN.1 schema {', '.join(paths)} does not compile: {type(exc).__name__}",
                hint="give every module it imports (schema=a.asn,b.asn) and check its syntax",
            ) from None
        finally:
            GLOBAL.clear()
        spec = importlib.util.spec_from_file_location(f"cemkit_asn1_{digest}", out)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        classes = [getattr(mod, n.replace("-", "_")) for n in names if not n.startswith("_")
                   and hasattr(mod, n.replace("-", "_"))]  # fmt: skip
        _CACHE[digest] = classes
        return classes
