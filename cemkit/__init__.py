"""cemkit: privacy-aware telecom customer-experience analytics.

Load usage records (CDRs, signaling xDRs) into one canonical schema, pseudonymize them by a
reviewed policy, correlate them with Numba kernels, model customers as node groups and compute
experience indicators, then report through parameterized notebooks.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "BatchProcessor",
    "__version__",
    "guard",
    "load",
    "process_batch",
    "protect",
    "release",
    "run",
    "unguard",
]

#: Public API name → module that defines it (imported on first use: dask, pyarrow and numba
#: load only when the API is used).
_LAZY = {
    "load": "cemkit.io.api",
    "protect": "cemkit.privacy.engine",
    "run": "cemkit.pipeline",
    "process_batch": "cemkit.pipeline",
    "release": "cemkit.dp.api",
    "BatchProcessor": "cemkit.pipeline",
    # After `import cemkit.guard` the name is the (callable) module; cemkit.guard() works both ways.
    "guard": "cemkit.guard",
    "unguard": "cemkit.guard",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cemkit' has no attribute {name!r}")


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext cemkit``: install the notebook output guard (see :mod:`cemkit.guard`)."""
    from cemkit.guard import guard

    guard(ipython)


def unload_ipython_extension(ipython: object) -> None:
    """``%unload_ext cemkit``: remove the notebook output guard."""
    from cemkit.guard import unguard

    unguard()
