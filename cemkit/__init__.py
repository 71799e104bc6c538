"""cemkit: privacy-aware telecom customer-experience analytics.

Load usage records (CDRs, signaling xDRs) into one canonical schema, pseudonymize them by a
reviewed policy, correlate them with Numba kernels, model customers as node groups and compute
experience indicators, then report through parameterized notebooks.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
