"""Where cemkit computes: an existing Dask cluster, or an embedded one sized to this machine.

Every command and API entry point takes a ``scheduler``:

* a :class:`distributed.Client` you created (used as is, never closed by cemkit);
* an address such as ``tcp://10.0.0.5:8786`` or ``tls://...`` (Dask's TLS settings from the Dask
  configuration or a :class:`distributed.security.Security` passed as ``security=`` apply);
* ``"local"``: an embedded :class:`distributed.LocalCluster`, one single-threaded worker process
  per core (worker memory limits, spilling to disk: the way to run over more data than memory);
* ``"threads"`` / ``"sync"``: Dask's threaded or synchronous scheduler, without a cluster;
  ``"threads"`` (one thread per core) is the default (:data:`DEFAULT_SCHEDULER`); these never
  import distributed;
* a Dask ``get`` function (e.g. the one :func:`connect` set for a block), used as is.

When ``scheduler`` is None the environment variable ``CEMKIT_SCHEDULER`` is read, then the
default given by the caller applies.

Quiet by default: Dask's own loggers (``distributed.*``) stay at WARNING — its shuffle chatter
and the connection errors of a cluster shutting down after success at ERROR — unless cemkit runs
verbose (``cemkit -v``: the root logger at INFO). The dashboard link of an embedded cluster is
printed only when bokeh (the ``dashboard`` extra) is installed: without it the dashboard answers
with an error page.

Trust model: the workers pseudonymize, so while they work they hold the key (it travels inside
the task graph, never in logs or outputs). Whoever controls the scheduler or a worker can read the
key and the raw records it processes: run cemkit only on clusters whose operators may see raw
data, and secure their traffic with TLS (``tls://`` addresses and Dask's ``distributed.comm.tls``
settings) when it crosses a network.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from cemkit.errors import CemkitError

ENV_VAR = "CEMKIT_SCHEDULER"
#: The scheduler when neither the caller nor ``$CEMKIT_SCHEDULER`` names one. Chosen by
#: measurement (benchmarks/RESULTS.md, "Session 15/16, lead"; ``bench_pipeline``, 2 cores,
#: quiet machine, 2026-12-06): ``threads`` against ``sync``, wall seconds, the same digests of
#: every output: 1M Parquet (one part, one partition: the same work) 3.32-3.37 vs 3.16-3.36 s;
#: 1M CSV 3.00-3.30 vs 3.41-3.78; 2M (two parts) Parquet 4.75-4.82 vs 6.12-6.28, CSV 4.67-4.78
#: vs 5.90-6.22; 10M Parquet (7 parts) 21.6-22.6 vs 31.5-36.0, CSV 23.0-24.9 vs 30.2-41.2:
#: 1.14-1.46x faster on every input of several parts, for 0-18 % more CPU and 2-36 % more peak
#: memory (two partitions in memory at once). Sync was the default
#: before (session 7: threads 6 % more CPU at 2M, measured on a machine at load 1-20 when the
#: stages' glue held the GIL; the stages' hot loops have since moved to Numba ``nogil`` kernels
#: and Arrow). The embedded LocalCluster and ``processes`` spent 3.4-4.6x the CPU then
#: (serialization, worker start-up). ``sync`` (one core, one partition at a time) and a
#: cluster stay one ``--scheduler`` away, same results.
DEFAULT_SCHEDULER = "threads"
#: What :func:`connect` sets Dask's ``scheduler`` to while a Client is in use (Dask's own name).
CLIENT_SCHEDULER = "dask.distributed"
_LOCAL_NAMES = {"threads", "threading", "sync", "synchronous", "single-threaded", "processes"}
#: A worker's p2p shuffle buffers as fractions of its memory limit (:func:`spill_config`):
#: outgoing shards up to limit / 32, received shards up to limit / 64 before they go to disk.
P2P_COMM_SHARE = 32
P2P_STORAGE_SHARE = 64
#: Loggers of Dask and the libraries under it that cemkit keeps quiet.
_DASK_LOGGERS = ("distributed", "tornado", "bokeh")
#: Loggers whose warnings are noise for a cemkit user (a shuffle starting, a comm closing).
_NOISY_LOGGERS = ("distributed.shuffle", "distributed.comm", "distributed.core",
                  "distributed.batched", "distributed.worker", "distributed.nanny")  # fmt: skip


def verbose() -> bool:
    """Whether the process logs at INFO (``cemkit -v``)."""
    return logging.getLogger().getEffectiveLevel() <= logging.INFO


def quiet_logs(be_verbose: bool | None = None) -> int:
    """Dask loggers at INFO when verbose, else WARNING (noisy ones ERROR); returns the level."""
    loud = verbose() if be_verbose is None else be_verbose
    level = logging.INFO if loud else logging.WARNING
    for name in _DASK_LOGGERS:
        logging.getLogger(name).setLevel(level)
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level if loud else logging.ERROR)
    return level


@contextlib.contextmanager
def _shutting_down() -> Iterator[None]:
    """A cluster closing after success: its connection errors are not the user's business."""
    if verbose():
        yield
        return
    loggers = [logging.getLogger(n) for n in (*_DASK_LOGGERS, *_NOISY_LOGGERS, "asyncio")]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, lvl in zip(loggers, saved, strict=True):
            lg.setLevel(lvl)


def spill_config(memory_limit: Any) -> dict[str, Any]:
    """Dask settings that keep a worker of ``memory_limit`` bytes alive through a p2p shuffle.

    The peer-to-peer shuffle buffers up to ``distributed.p2p.comm.buffer`` (1 GiB by default)
    of outgoing shards per worker and ``distributed.p2p.storage.buffer`` (100 MiB) before
    writing to disk: on a worker limited to less than that, the buffers alone exceed the limit
    and the nanny restarts the worker again and again. Both are memory Dask cannot spill
    (unmanaged), on top of a worker's floor (~400 MiB of libraries and kernels after a run) and
    one task's working set, and both are counted by the shards' sizes, not by what the many
    small shards of a shuffle into hundreds of partitions hold. Scaled to a thirty-second (a
    sixty-fourth) of the limit (an eighth and a sixteenth before: 2 x 1 GB workers paused on
    771-801 MiB of unmanaged memory over 27M records and never resumed), the shuffle writes
    to disk sooner instead. Apply them before the workers start (a LocalCluster's nannies hand
    their configuration to the worker processes).

    Examples
    --------
    >>> spill_config("800MB")["distributed.p2p.comm.buffer"]
    25000000
    """
    from dask.utils import parse_bytes

    limit = parse_bytes(memory_limit) if isinstance(memory_limit, str) else int(memory_limit)
    return {"distributed.p2p.comm.buffer": max(limit // P2P_COMM_SHARE, 2**20),
            "distributed.p2p.storage.buffer": max(limit // P2P_STORAGE_SHARE, 2**20)}  # fmt: skip


def has_dashboard() -> bool:
    """True when bokeh is installed (Dask's dashboard needs it)."""
    return importlib.util.find_spec("bokeh") is not None


class SchedulerError(CemkitError):
    """The scheduler could not be reached or is not understood."""


def add_scheduler_option(parser: Any) -> None:
    """Add ``--scheduler`` to an argparse (sub)parser."""
    parser.add_argument(
        "--scheduler",
        default=None,
        help="Dask scheduler: tcp://HOST:PORT, tls://..., 'local' (embedded cluster of worker "
        f"processes), 'threads' or 'sync'; default ${ENV_VAR} or '{DEFAULT_SCHEDULER}'",
    )


def resolve(scheduler: Any = None, default: str = DEFAULT_SCHEDULER) -> Any:
    """The scheduler cemkit will use: the argument, else ``$CEMKIT_SCHEDULER``, else ``default``."""
    if scheduler is None:
        scheduler = os.environ.get(ENV_VAR) or default
    return scheduler


def _is_client(obj: Any) -> bool:
    """True for a :class:`distributed.Client`, without importing distributed for a sync run."""
    distributed = sys.modules.get("distributed")  # a Client exists only once it was imported
    return distributed is not None and isinstance(obj, distributed.Client)


def _local_get(name: str) -> Any:
    """The ``get`` function of one of Dask's local schedulers (``threads``, ``sync``, ...)."""
    if name in {"sync", "synchronous", "single-threaded"}:
        from dask.local import get_sync

        return get_sync
    if name == "processes":
        from dask.multiprocessing import get

        return get
    from dask.threaded import get as threaded_get

    return threaded_get


def check(scheduler: Any = None, default: str = DEFAULT_SCHEDULER) -> Any:
    """The scheduler :func:`connect` would use, refused early (without connecting) if unknown."""
    chosen = resolve(scheduler, default)
    if chosen == CLIENT_SCHEDULER:  # the Client in use (inside :func:`connect`)
        from distributed import Client

        try:
            return Client.current()
        except ValueError:
            raise SchedulerError(f"scheduler {chosen!r} but no Client is in use") from None
    if _is_client(chosen) or callable(chosen):  # a Client, or a Dask get function in use
        return chosen
    if not isinstance(chosen, str):
        raise SchedulerError(
            f"scheduler must be a distributed.Client or a string, got {type(chosen).__name__}"
        )
    if chosen not in _LOCAL_NAMES and chosen != "local" and "://" not in chosen:
        raise SchedulerError(
            f"unknown scheduler {chosen!r}",
            hint="use an address like tcp://HOST:8786 or tls://HOST:8786, 'local', "
            "'threads' or 'sync'",
        )
    return chosen


@contextlib.contextmanager
def connect(
    scheduler: Any = None,
    *,
    default: str = DEFAULT_SCHEDULER,
    security: Any = None,
    **cluster_kwargs: Any,
) -> Iterator[Any]:
    """Use a scheduler for the duration of a block; yields the Client (or None without a cluster).

    Examples
    --------
    >>> from cemkit import cluster
    >>> with cluster.connect("sync"):
    ...     import dask
    ...     dask.compute(dask.delayed(sum)([1, 2]))[0]
    3
    """
    chosen = check(scheduler, default)
    import dask  # here, not at module level: every command module imports this one

    level = quiet_logs()
    if _is_client(chosen):
        # by name, not the Client object: a nanny pickles the global configuration into every
        # worker process it (re)starts, and a Client cannot be pickled, so a worker restarted
        # during a run (killed over its memory limit) never came back and the run stalled
        from cemkit import memory

        # Arrow through glibc on its workers too: memory freed to Arrow's mimalloc stayed in
        # the workers and read as unmanaged memory (~175 MiB of a paused 1 GB worker that
        # never resumed); glibc hands it back (the nanny's MALLOC_TRIM_THRESHOLD_)
        memory.register_on(chosen)
        with chosen.as_current(), dask.config.set(scheduler=CLIENT_SCHEDULER):
            yield chosen
        return
    if callable(chosen):  # a local scheduler's get function (the one a caller is in)
        with dask.config.set(scheduler=chosen):
            yield None
        return
    if chosen in _LOCAL_NAMES:
        # the scheduler's function, not its name: dask resolves a name by importing
        # distributed first (to look for a Client), ~0.3 CPU-s of every sync command
        with dask.config.set(scheduler=_local_get(chosen)):
            yield None
        return
    # a cluster from here on (sync runs never import distributed); its import sets its loggers'
    # levels from its configuration, so they are quieted again after it
    from distributed import Client

    level = quiet_logs()
    if chosen == "local":
        from distributed import LocalCluster

        dashboard = has_dashboard()
        kwargs = {"n_workers": os.cpu_count() or 1, "threads_per_worker": 1,
                  "processes": True, "dashboard_address": ":0",
                  "silence_logs": level, **cluster_kwargs}  # fmt: skip
        limit = kwargs.get("memory_limit")
        spill = spill_config(limit) if isinstance(limit, str | int) and limit else {}
        with dask.config.set(spill):  # handed to the worker processes as they start
            lc = LocalCluster(**kwargs)
        try:
            client = Client(lc)
        except BaseException:
            with _shutting_down():
                lc.close()
            raise
        from cemkit import progress

        if dashboard and client.dashboard_link and progress.enabled():  # not inside a report
            print(f"cemkit: Dask dashboard at {client.dashboard_link}", file=sys.stderr)
        try:
            from cemkit import memory

            memory.register_on(client)  # Arrow allocates through glibc in the workers too
            yield client
        finally:
            with _shutting_down():
                client.close()
                lc.close()
        return
    try:
        client = Client(chosen, security=security, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise SchedulerError(
            f"cannot reach the Dask scheduler at {chosen}: {exc}",
            hint=f"check the address (or ${ENV_VAR}) and that the scheduler is running",
        ) from None
    try:
        yield client
    finally:
        with _shutting_down():
            client.close()


def compute_each(tasks: list[Any]) -> list[Any]:
    """The results of Dask ``tasks``, in their order: ``dask.compute(*tasks)``, gathered as done.

    On a distributed Client each result is fetched as soon as its task finishes and released on
    its worker: no worker holds every result of its share until the last task ends, nor ships
    them all in one gather at the end (on workers near their memory limit that final gather
    killed them: the out-of-core run's ``Couldn't gather 77 keys`` then ``KilledWorker``).
    Elsewhere (sync, threads, processes) it is ``dask.compute``. The same results either way.
    """
    import dask
    from dask.base import get_scheduler

    client: Any = getattr(get_scheduler(), "__self__", None)
    if not _is_client(client):
        return list(dask.compute(*tasks))
    from distributed import as_completed

    futures: list[Any] = client.compute(tasks)  # (a Client: _is_client)
    at = {id(f): i for i, f in enumerate(futures)}
    out: list[Any] = [None] * len(futures)
    for future, result in as_completed(futures, with_results=True):
        i = at[id(future)]
        out[i] = result
        futures[i] = None  # this call's last reference: the worker may drop the result
        future.release()
    return out
