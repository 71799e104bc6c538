"""Time buckets of KQI counters, apart from the model's schema.

The CLI's help names them without importing pydantic (:mod:`cemkit.model.spec` re-exports them).
"""

from __future__ import annotations

#: Bucket sizes KQI counters are computed at, finest first.
BUCKETS: tuple[str, ...] = ("15min", "hour", "day")
