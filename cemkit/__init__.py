"""cemkit: privacy-aware telecom customer-experience analytics.

Load usage records (CDRs, signaling xDRs) into one canonical schema, pseudonymize them by a
reviewed policy, correlate them with Numba kernels, model customers as node groups and compute
experience indicators, then report through parameterized notebooks.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "protect"]


def __getattr__(name: str):
    if name == "protect":
        from cemkit.privacy.engine import protect

        return protect
    raise AttributeError(f"module 'cemkit' has no attribute {name!r}")
