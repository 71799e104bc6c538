"""Where cemkit computes: an existing Dask cluster, or an embedded one sized to this machine.

Every command and API entry point takes a ``scheduler``:

* a :class:`distributed.Client` you created (used as is, never closed by cemkit);
* an address such as ``tcp://10.0.0.5:8786`` or ``tls://...`` (Dask's TLS settings from the Dask
  configuration or a :class:`distributed.security.Security` passed as ``security=`` apply);
* ``"local"``: an embedded :class:`distributed.LocalCluster`, one single-threaded worker process
  per core (the default of the command line);
* ``"threads"`` / ``"sync"``: Dask's threaded or synchronous scheduler, without a cluster.

When ``scheduler`` is None the environment variable ``CEMKIT_SCHEDULER`` is read, then the
default given by the caller applies.

Trust model: the workers pseudonymize, so while they work they hold the key (it travels inside
the task graph, never in logs or outputs). Whoever controls the scheduler or a worker can read the
key and the raw records it processes: run cemkit only on clusters whose operators may see raw
data, and secure their traffic with TLS (``tls://`` addresses and Dask's ``distributed.comm.tls``
settings) when it crosses a network.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from cemkit.errors import CemkitError

ENV_VAR = "CEMKIT_SCHEDULER"
_LOCAL_NAMES = {"threads", "threading", "sync", "synchronous", "single-threaded", "processes"}


class SchedulerError(CemkitError):
    """The scheduler could not be reached or is not understood."""


def add_scheduler_option(parser: Any) -> None:
    """Add ``--scheduler`` to an argparse (sub)parser."""
    parser.add_argument(
        "--scheduler",
        default=None,
        help="Dask scheduler: tcp://HOST:PORT, tls://..., 'local' (embedded cluster, default), "
        f"'threads' or 'sync'; default ${ENV_VAR} or 'local'",
    )


def resolve(scheduler: Any = None, default: str = "local") -> Any:
    """The scheduler cemkit will use: the argument, else ``$CEMKIT_SCHEDULER``, else ``default``."""
    if scheduler is None:
        scheduler = os.environ.get(ENV_VAR) or default
    return scheduler


def check(scheduler: Any = None, default: str = "local") -> Any:
    """The scheduler :func:`connect` would use, refused early (without connecting) if unknown."""
    chosen = resolve(scheduler, default)
    from distributed import Client

    if isinstance(chosen, Client):
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
    scheduler: Any = None, *, default: str = "local", security: Any = None, **cluster_kwargs: Any
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
    from distributed import Client

    if isinstance(chosen, Client):
        with dask.config.set(scheduler=chosen):
            yield chosen
        return
    if chosen in _LOCAL_NAMES:
        with dask.config.set(scheduler=chosen):
            yield None
        return
    if chosen == "local":
        from distributed import LocalCluster

        kwargs = {"n_workers": os.cpu_count() or 1, "threads_per_worker": 1,
                  "processes": True, "dashboard_address": ":0", **cluster_kwargs}  # fmt: skip
        with LocalCluster(**kwargs) as lc, Client(lc) as client:
            yield client
        return
    try:
        client = Client(chosen, security=security, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise SchedulerError(
            f"cannot reach the Dask scheduler at {chosen}: {exc}",
            hint=f"check the address (or ${ENV_VAR}) and that the scheduler is running",
        ) from None
    with client:
        yield client
