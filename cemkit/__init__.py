"""cemkit: privacy-aware telecom customer-experience analytics.

Load usage records (CDRs, signaling xDRs) into one canonical schema, pseudonymize them by a
reviewed policy, correlate them with Numba kernels, model customers as node groups and compute
experience indicators, then report through parameterized notebooks.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "guard", "load", "protect", "unguard"]


def __getattr__(name: str) -> Any:
    # Heavy imports (dask, pyarrow) only when the API is first used.
    if name == "load":
        from cemkit.io.api import load

        return load
    if name == "protect":
        from cemkit.privacy.engine import protect

        return protect
    if name == "guard":
        # The module is callable: ``cemkit.guard()`` installs the guard (see cemkit/guard.py).
        import cemkit.guard

        return cemkit.guard
    if name == "unguard":
        from cemkit.guard import unguard

        return unguard
    raise AttributeError(f"module 'cemkit' has no attribute {name!r}")


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext cemkit``: install the notebook output guard (see :mod:`cemkit.guard`)."""
    from cemkit.guard import guard

    guard(ipython)


def unload_ipython_extension(ipython: object) -> None:
    """``%unload_ext cemkit``: remove the notebook output guard."""
    from cemkit.guard import unguard

    unguard()
