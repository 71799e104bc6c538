"""How cemkit's processes allocate: memory freed by one stage is kept for the next.

A run allocates and frees the same few hundred MB per partition (or per file, in a warehouse
worker). By default both allocators under it hand freed memory back to the kernel at once:
Arrow's default pool (mimalloc) purges freed pages after ~10 ms, and glibc unmaps every block
over its ``mmap`` threshold and trims the heap's free top. The next partition then faults the
same memory in again, page by page. On a virtual machine whose host reclaims the guest's free
pages (virtio-balloon free page reporting: cemkit's benchmark machine) each such fault costs a
host fault too. Measured (``benchmarks/RESULTS.md``, session 7): ``cemkit run`` over 1M Parquet
records, sync scheduler, 21.0 s of which 12.5 s kernel time; with Arrow allocating through glibc
11.7 s (2.2 s kernel); with glibc also keeping its freed blocks 9.4 s (1.4 s kernel). In a
warehouse worker, kernel time was half of its CPU per 166K-record file.

:func:`keep_memory` sets both: Arrow's default pool becomes the system allocator
(:func:`pyarrow.set_memory_pool`) and glibc keeps freed blocks in its heap (``mallopt``), so the
process's RSS stays at its high-water mark and later partitions reuse it. cemkit applies it
once per process it computes in (:func:`apply`): ``cemkit.run`` and the stage commands, a
:class:`~cemkit.pipeline.BatchProcessor`, warehouse workers. Set ``CEMKIT_KEEP_MEMORY=0`` to
leave the allocators as they are (e.g. a notebook that must give memory back between runs).

Dask workers get only the Arrow half (:func:`arrow_pool`): their memory manager spills and
restarts by RSS and Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_`` so that freed memory shows; a
heap that never shrinks would read as unmanaged memory. :func:`cemkit.cluster.connect`
registers it on the workers of every Client it uses (embedded ``local`` cluster or one passed
in): memory freed to mimalloc stayed in a worker as unmanaged memory (a paused 1 GB worker held
~175 MiB of it and never resumed). ``--preload cemkit.memory`` sets it as a worker starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

#: Environment variable that turns :func:`apply` off (``0``).
ENV_VAR = "CEMKIT_KEEP_MEMORY"
#: glibc ``mallopt`` parameters (malloc.h) and what :func:`keep_memory` sets them to: no
#: ``mmap`` per large block, no trimming of the heap's free top below 1 GiB.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
KEEP_MMAP_THRESHOLD = 1 << 30
KEEP_TRIM_THRESHOLD = 1 << 30

_applied = False


def enabled() -> bool:
    """Whether cemkit sets the allocators (``$CEMKIT_KEEP_MEMORY`` is not ``0``)."""
    return os.environ.get(ENV_VAR, "1") != "0"


def arrow_pool() -> str:
    """Arrow allocates through the system allocator (glibc); returns the pool's backend name."""
    pa.set_memory_pool(pa.system_memory_pool())
    return backend()


def keep_memory() -> bool:
    """Arrow through glibc, and glibc keeps what is freed; returns whether glibc took it.

    Not glibc (musl, macOS): only Arrow's pool is changed, and False is returned.
    """
    arrow_pool()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to set
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, KEEP_MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, KEEP_TRIM_THRESHOLD))  # fmt: skip


def apply() -> bool:
    """:func:`keep_memory` once per process, unless turned off; returns whether it is in force."""
    global _applied
    if not enabled():
        return False
    if not _applied:
        keep_memory()
        _applied = True
    return True


def backend() -> str:
    """The allocator behind Arrow's default pool in this process (``system`` once applied)."""
    return str(pa.default_memory_pool().backend_name)


def register_on(client: Any) -> None:
    """Arrow's half of :func:`keep_memory` on every worker of ``client``, now and after restarts."""
    if not enabled():
        return
    from distributed.diagnostics.plugin import WorkerPlugin

    class ArrowPool(WorkerPlugin):
        name = "cemkit-arrow-pool"

        def setup(self, worker: Any) -> None:
            arrow_pool()

    client.register_plugin(ArrowPool())


def dask_setup(worker: Any) -> None:
    """``dask worker --preload cemkit.memory``: Arrow's half of :func:`keep_memory`."""
    if enabled():
        arrow_pool()


@contextlib.contextmanager
def heap_frozen() -> Iterator[None]:
    """Keep the objects alive now out of the garbage collector's walks for the block.

    A run's partitions allocate few container objects but many of the collector's full
    collections happen during it, and each walks every tracked object of the process (~200K:
    modules, classes, functions; ~0.1 s each on the benchmark machine); frozen
    (:func:`gc.freeze`), a collection walks only what the run allocated since. Unfrozen at the
    end (their cycles, if any, collectable again); left alone when the caller froze objects
    itself (a :class:`~cemkit.pipeline.BatchProcessor`'s process).
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
