"""Progress of long steps: a line when a step starts and ends, and a bar while Dask computes.

A step prints ``cemkit: <what> ...`` and, when done, its duration (and records/s when the
step says how many records it handled). While the step computes on a local Dask scheduler, a
bar shows tasks done, their rate and the time left (tqdm), where somebody watches: in a
terminal, and in JupyterLab (drawn by tqdm's notebook front end). Written to a file or a pipe
(a scheduler's log, ``cemkit run ... 2> run.log``) a bar would be carriage-return redraws in
the log: only the two lines are written, unless ``CEMKIT_PROGRESS=1`` asks for bars anyway. A
report run (papermill) sets ``CEMKIT_PROGRESS=0`` so nothing of this reaches the published
report: reports carry results, not progress lines.

Examples
--------
>>> import io
>>> out = io.StringIO()
>>> with step("counting", stream=out, bar=False) as s:
...     s.records = 4_000
>>> out.getvalue().splitlines()[0]
'cemkit: counting ...'
>>> "records/s" in out.getvalue()
True
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

#: Environment variable that turns progress off (``0``) or on, bars included (``1``); unset:
#: the step lines, and bars where somebody watches (:func:`bars_for`).
ENV_VAR = "CEMKIT_PROGRESS"
_OFF = {"0", "false", "no", "off"}
_ON = {"1", "true", "yes", "on"}


def enabled() -> bool:
    """Whether progress is shown (``$CEMKIT_PROGRESS`` is not ``0``)."""
    return os.environ.get(ENV_VAR, "").strip().lower() not in _OFF


def bars_for(stream: TextIO) -> bool:
    """Whether bars are drawn on ``stream``: progress on, and a terminal, a notebook or asked for.

    Unset ``$CEMKIT_PROGRESS``: only on a terminal or in a notebook kernel, not in a log file or
    a pipe; ``1``: everywhere; ``0``: nowhere.
    """
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value in _OFF:
        return False
    if value in _ON or _in_notebook():
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (OSError, ValueError):  # a closed or detached stream
        return False


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")  # a kernel has imported it; a command need not
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _tqdm() -> Any:
    if _in_notebook():
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm

            return tqdm
        except ImportError:
            pass
    from tqdm import tqdm

    return tqdm


@dataclass
class Step:
    """What a running step knows; set ``records`` to have its rate reported."""

    what: str
    records: int | None = None


def bar(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
        unit: str = "records", stream: TextIO | None = None) -> Any:  # fmt: skip
    """A progress bar (rate and ETA) over an iterable, or updated by hand with ``.update(n)``.

    Disabled (but still iterable and updatable) where no bar is drawn (:func:`bars_for`).
    """
    tqdm = _tqdm()
    out = stream or sys.stderr
    return tqdm(iterable, total=total, desc=desc, unit=unit, unit_scale=True, leave=True,
                disable=not bars_for(out), file=out, dynamic_ncols=True)  # fmt: skip


@contextlib.contextmanager
def _dask_bar(what: str, stream: TextIO) -> Iterator[None]:
    """A bar of Dask tasks done on local schedulers (threads, sync, processes)."""
    try:
        from tqdm.dask import TqdmCallback
    except ImportError:  # pragma: no cover - tqdm ships with papermill
        yield
        return
    with TqdmCallback(desc=what, unit="task", leave=True, file=stream, tqdm_class=_tqdm(),
                      dynamic_ncols=True, mininterval=0.5):  # fmt: skip
        yield


@contextlib.contextmanager
def step(what: str, *, stream: TextIO | None = None, bar: bool = True) -> Iterator[Step]:
    """Announce a long step on stderr, show a bar while Dask computes, report its duration.

    ``bar=False``, or a stream nobody watches (:func:`bars_for`): the two lines only.
    """
    state = Step(what)
    if not enabled():
        yield state
        return
    out = stream or sys.stderr
    print(f"cemkit: {what} ...", file=out, flush=True)
    t0 = time.perf_counter()
    with _dask_bar(what, out) if bar and bars_for(out) else contextlib.nullcontext():
        yield state
    seconds = time.perf_counter() - t0
    rate = ""
    if state.records:
        rate = f" ({state.records:,} records, {state.records / max(seconds, 1e-9):,.0f} records/s)"
    print(f"cemkit: {what}: done in {seconds:.1f} s{rate}", file=out, flush=True)
