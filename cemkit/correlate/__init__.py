"""Correlation: re-join what the network split apart.

* :func:`asof` — as-of join by key and time (equals :func:`pandas.merge_asof`, unsorted inputs);
* :func:`stitch` — partial records of one call become one record;
* :func:`pair_legs` — originating and terminating legs of one call become one call;
* :func:`match` — signaling xDRs matched one-to-one with CDRs; unmatched ones flagged;
* :func:`sessionize` — repeated attempts of a customer to one destination become one intent;
* :func:`correlate_calls` — pair_legs, match and sessionize in one pass (one key, one sort, the
  records gathered once): what the runner's correlate stage runs after stitch.

Each takes pandas or Dask frames. Numba kernels (NumPy arrays only) live in
:mod:`cemkit.correlate._kernels`; the Dask path shuffles records by key hash so each partition
holds every record of a key, restores the input order inside each partition and calls the same
kernel, so results do not depend on the partitioning.

Columns added to records are named under the schema's ``src_`` prefix and documented in
:data:`STITCH_COLUMNS`, :data:`PAIR_COLUMNS`, :data:`MATCH_COLUMNS` and
:data:`RECORD_INTENT_COLUMNS`; the intents table's columns in :data:`INTENT_COLUMNS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cemkit import _lazy

if TYPE_CHECKING:
    from cemkit.correlate.asof import asof
    from cemkit.correlate.calls import correlate_calls
    from cemkit.correlate.match import MATCH_COLUMNS, match
    from cemkit.correlate.pair_legs import PAIR_COLUMNS, pair_legs
    from cemkit.correlate.sessionize import INTENT_COLUMNS, RECORD_INTENT_COLUMNS, sessionize
    from cemkit.correlate.stitch import STITCH_COLUMNS, stitch

_lazy.exports(
    __name__,
    {
        "asof": "cemkit.correlate.asof",
        "correlate_calls": "cemkit.correlate.calls",
        "MATCH_COLUMNS": "cemkit.correlate.match",
        "match": "cemkit.correlate.match",
        "PAIR_COLUMNS": "cemkit.correlate.pair_legs",
        "pair_legs": "cemkit.correlate.pair_legs",
        "INTENT_COLUMNS": "cemkit.correlate.sessionize",
        "RECORD_INTENT_COLUMNS": "cemkit.correlate.sessionize",
        "sessionize": "cemkit.correlate.sessionize",
        "STITCH_COLUMNS": "cemkit.correlate.stitch",
        "stitch": "cemkit.correlate.stitch",
    },
)


__all__ = [
    "INTENT_COLUMNS",
    "MATCH_COLUMNS",
    "PAIR_COLUMNS",
    "RECORD_INTENT_COLUMNS",
    "STITCH_COLUMNS",
    "asof",
    "correlate_calls",
    "match",
    "pair_legs",
    "sessionize",
    "stitch",
]
