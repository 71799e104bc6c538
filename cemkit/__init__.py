"""cemkit: privacy-aware telecom customer-experience analytics.

Load usage records (CDRs, signaling xDRs) into one canonical schema, pseudonymize them by a
reviewed policy, correlate them with Numba kernels, model customers as node groups and compute
experience indicators, then report through parameterized notebooks.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load", "protect"]


def __getattr__(name: str) -> Any:
    # Heavy imports (dask, pyarrow) only when the API is first used.
    if name == "load":
        from cemkit.io.api import load

        return load
    if name == "protect":
        from cemkit.privacy.engine import protect

        return protect
    raise AttributeError(f"module 'cemkit' has no attribute {name!r}")
