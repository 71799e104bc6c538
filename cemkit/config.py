"""Numba flags and tunable thresholds, in one place (the stumpy ``config.py`` pattern)."""

from __future__ import annotations

import os

#: Numba compile options shared by every kernel.
NUMBA_CACHE: bool = os.environ.get("CEMKIT_NUMBA_CACHE", "1") != "0"
NUMBA_FASTMATH: bool = False  # exact results matter more than a few percent
NUMBA_NOGIL: bool = True  # kernels release the GIL so Dask threads run them in parallel

#: Seconds after which a long call is cut into partial records by the synthetic generator
#: (3GPP "partial record" / Asterisk does not cut, switches do).
PARTIAL_RECORD_INTERVAL_S: int = 1800

#: Calls answered for less than this many seconds count as "short calls" (KQI short-call ratio).
SHORT_CALL_S: float = 10.0

#: Default size of the pandas chunks that loaders hand to Dask (bytes of input per partition).
DEFAULT_BLOCKSIZE: int = 64 * 2**20

#: Q.850 causes that end an answered call normally (16 normal clearing, 31 normal unspecified).
NORMAL_RELEASE_CAUSES: frozenset[int] = frozenset({16, 31})

#: Threads the correlation kernels may use in one call (the asof join splits its work by key
#: range). Dask partitions always run the kernels single-threaded.
CORRELATE_THREADS: int = int(os.environ.get("CEMKIT_CORRELATE_THREADS", "2"))

#: Peak memory of an in-memory run per byte of input (measured: ~6x for Asterisk CSV); below
#: the machine's free memory the runner shuffles in memory (Dask ``tasks``) instead of on disk.
RUN_MEMORY_PER_INPUT_BYTE: int = 8
#: The same per record of canonical Parquet input, whose files hold ~40 bytes per record
#: (measured: peak 1.9 GB at 1M records, over 8 GB at 10M with the in-memory shuffle).
RUN_MEMORY_PER_PARQUET_RECORD: int = 1600
#: Most memory a run holds for its sinks: the columns the KQI sink reads, kept from the write
#: tasks instead of read back from the parts (:class:`cemkit.runs.runner.Sink`). They take
#: about a tenth of the run's estimated peak (measured: 141 MB of a 1.9 GB peak at 1M Parquet
#: records), so runs up to ~3M records keep them; larger runs read the parts back one at a time.
#: Only for a sink that cannot reduce each partition in its write task (no ``Sink.partial``, or
#: a cluster): ``cemkit run``'s KQI sink does, at any size, and keeps nothing.
SINK_KEEP_BYTES: int = 512 * 2**20
#: The kept columns' share of a run's estimated peak (:func:`cemkit.runs.runner.run_memory`).
SINK_KEEP_SHARE: float = 0.1

#: Correlation settings (the ``cemkit correlate`` and ``cemkit run`` defaults): largest
#: end-to-start gap between partials, start differences for pairing legs and matching xDRs,
#: largest pause between retries of one intent.
CORRELATE_DEFAULTS: dict[str, str] = {
    "gap": "1s",
    "pair_tolerance": "5s",
    "match_tolerance": "5s",
    "window": "120s",
}

#: Share of a file's rows that may be quarantined before a load fails (``--max-quarantine``):
#: a file of another format, or one read with the wrong options, otherwise looks like success.
DEFAULT_MAX_QUARANTINE: float = 0.5

#: Largest dense (object x 15-minute bucket x counter) table the KQI rollup sums into (int64
#: values); beyond it the rollup sums over the sorted distinct cells instead.
KQI_DENSE_MAX_VALUES: int = 4_000_000
