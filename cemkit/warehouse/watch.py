"""Follow a landing directory and count every file into a warehouse, in micro-batches.

Switches and probes rotate their files every few minutes, often compressed, sometimes late or
twice. The watcher lists the directory (recursively) whenever the file-system watcher
(``watchdog``) reports a change, and at least every ``poll`` seconds (the polling fallback: on
network file systems events may never come). A file is taken once it has not changed for
``settle`` seconds (a writer may still be appending); hidden files and ``*.tmp``/``*.part`` are
never taken. Point the watcher at rotated files, not at a file a writer keeps appending to: a
file whose content changes after it was counted is new content and is counted again (the
watcher says so on stderr). Files are counted in micro-batches of at most ``batch`` files, one
Delta commit each (:class:`cemkit.warehouse.batch.Batch`), the files of a micro-batch
processed side by side by ``workers`` processes; up to ``workers`` micro-batches are in flight
at once (the next is submitted while one is processed or committed).

There is no checkpoint file of its own: the warehouse's commit log *is* the checkpoint (each
file's content checksum is recorded in the same commit as its rows), so a restarted watcher
re-lists the directory, skips what the warehouse already counted and loses nothing.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cemkit.errors import CemkitError
from cemkit.warehouse.batch import Batch, Settings, ingest_files
from cemkit.warehouse.table import Store

#: Names never taken: hidden files and files still being written by convention.
IGNORED = (".*", "*.tmp", "*.part", "*.partial", "*~")


@dataclass
class Progress:
    """What the watcher has done so far (printed after every micro-batch)."""

    batches: int = 0
    files_counted: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    records: int = 0
    pending: int = 0
    lag_s: float = 0.0  #: age of the oldest file not yet counted (0 when none)
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        """One human-readable line."""
        rate = self.records / max(time.monotonic() - self.started, 1e-9)
        return (f"batch {self.batches}: {self.files_counted} file(s) counted, "
                f"{self.files_skipped} already counted, {self.files_failed} failed, "
                f"{self.records} records ({rate:,.0f}/s); pending {self.pending}, "
                f"lag {self.lag_s:.1f} s")  # fmt: skip


class Watcher:
    """Follows ``directory`` into the warehouse ``store``; see the module docstring."""

    def __init__(
        self,
        directory: str | Path,
        store: Store,
        settings: Settings,
        *,
        batch: int = 8,
        settle: float = 2.0,
        poll: float = 2.0,
        pattern: str = "*",
        out: TextIO | None = None,
        clock: Callable[[], float] = time.time,
        workers: int = 1,
    ) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise CemkitError(f"{self.directory}: not a directory to watch")
        self.store = store
        self.settings = settings
        self.batch = max(1, batch)
        self.settle = settle
        self.poll = poll
        self.pattern = pattern
        self.out = out or sys.stdout
        self.clock = clock
        self.workers = max(1, workers)
        self.progress = Progress()
        #: (size, mtime_ns) of each path already counted or skipped in this process
        self._done: dict[str, tuple[int, int]] = {}
        self._failed: dict[str, tuple[int, int]] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()

    # --- listing -------------------------------------------------------------------------------
    def _candidates(self) -> list[tuple[float, str, tuple[int, int]]]:
        found = []
        for root, dirs, files in os.walk(self.directory):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if any(fnmatch.fnmatch(name, pat) for pat in IGNORED):
                    continue
                if not fnmatch.fnmatch(name, self.pattern):
                    continue
                path = os.path.join(root, name)
                try:
                    st = os.stat(path)
                except OSError:  # rotated away between listing and stat
                    continue
                sig = (st.st_size, st.st_mtime_ns)
                if self._done.get(path) == sig or self._failed.get(path) == sig:
                    continue
                found.append((st.st_mtime, path, sig))
        found.sort()
        return found

    def pending(self) -> tuple[list[tuple[str, tuple[int, int]]], float]:
        """Files ready to count (oldest first) and the lag (age of the oldest not counted)."""
        now = self.clock()
        cands = self._candidates()
        lag = now - cands[0][0] if cands else 0.0
        ready = [(p, sig) for mtime, p, sig in cands if now - mtime >= self.settle]
        return ready, max(lag, 0.0)

    # --- running -------------------------------------------------------------------------------
    def _submit(
        self, busy: set[str]
    ) -> tuple[Batch | None, list[tuple[str, tuple[int, int]]]] | None:
        """Start the next micro-batch of ready files not in ``busy``; None when none is ready."""
        ready, lag = self.pending()
        ready = [(p, sig) for p, sig in ready if p not in busy]
        self.progress.pending, self.progress.lag_s = len(ready), lag
        if not ready:
            return None
        chunk = ready[: self.batch]
        for p, _ in chunk:
            if p in self._done:
                print(f"cemkit watch: {Path(p).name}: changed after it was counted; its new "
                      "content is counted as a new file", file=sys.stderr)  # fmt: skip
        try:
            batch = Batch(self.store, [p for p, _ in chunk], self.settings,
                          workers=self.workers, background=True)  # fmt: skip
        except CemkitError:
            batch = None  # counted one by one in _finish, naming the bad file
        return batch, chunk

    def _finish(self, batch: Batch | None, chunk: list[tuple[str, tuple[int, int]]]) -> None:
        """Commit a micro-batch (one by one when one of its files is bad) and print progress."""
        report = None
        if batch is not None:
            try:
                report = batch.commit()
            except CemkitError:
                report = None
        if report is None:
            # one bad file must not stop the others: retry them one by one, naming the bad one
            for p, sig in chunk:
                try:
                    r = ingest_files(self.store, [p], self.settings)
                except CemkitError as err:
                    self._failed[p] = sig
                    self.progress.files_failed += 1
                    print(f"cemkit watch: {Path(p).name}: not counted: {err}", file=sys.stderr)
                    continue
                self._account(r)
                self._done[p] = sig
        else:
            self._account(report)
            for p, sig in chunk:
                self._done[p] = sig
        self.progress.batches += 1
        ready_after, lag_after = self.pending()
        self.progress.pending, self.progress.lag_s = len(ready_after), lag_after
        print(self.progress.line(), file=self.out, flush=True)

    def step(self) -> bool:
        """Count one micro-batch, waiting for it; False when nothing was ready."""
        started = self._submit(set())
        if started is None:
            return False
        self._finish(*started)
        return True

    def _account(self, report: Any) -> None:
        self.progress.files_counted += len(report.counted)
        self.progress.files_skipped += report.skipped
        self.progress.records += report.records

    def run(self, *, once: bool = False, max_batches: int | None = None) -> Progress:
        """Count files until stopped (``once``: until nothing is ready, then return).

        Micro-batches overlap: while one is processed by the workers, the next ready files are
        submitted as another (up to one batch per worker in flight), and a batch is committed as
        soon as its rows are ready, so the workers are not idle during a commit or while a
        batch's last file finishes.
        """
        observer = None if once else self._observe()
        flight: list[tuple[Batch | None, list[tuple[str, tuple[int, int]]]]] = []
        # the directory is listed when something may have changed (an event, a batch submitted
        # or committed, the poll interval), not on every pass while workers are busy
        look, listed = True, time.monotonic()
        try:
            while not self._stop.is_set():
                started = self.progress.batches + len(flight)
                if max_batches is not None and started >= max_batches and not flight:
                    break
                room = len(flight) < self.workers and (max_batches is None or started < max_batches)
                due = look or self._wake.is_set() or time.monotonic() - listed >= self.poll
                if room and due:
                    self._wake.clear()
                    listed = time.monotonic()
                    new = self._submit({p for _, chunk in flight for p, _ in chunk})
                    look = new is not None  # more may be ready: list again at once
                    if new is not None:
                        flight.append(new)
                        continue
                ready = [f for f in flight if f[0] is None or f[0].done()]
                for item in ready:
                    flight.remove(item)
                    self._finish(*item)
                if ready:
                    look = True
                    continue
                if flight:  # wait for a worker, or for new files to submit
                    # only tasks still running: a finished one would end the wait at once (a
                    # busy loop taking a core from the workers until its batch's last task ends)
                    futures = [f for b, _ in flight if b is not None for f in b.futures()
                               if not f.done()]  # fmt: skip
                    wait(futures, timeout=min(self.poll, 0.05), return_when=FIRST_COMPLETED)
                    continue
                look = True
                if once:
                    # files not yet settled are waited for: --once means "what is there"
                    if self._candidates():
                        time.sleep(min(self.settle, 0.5))
                        continue
                    break
                self._wake.wait(self.poll)
            for item in flight:  # stopped: what the workers are doing is still counted
                self._finish(*item)
        finally:
            if observer is not None:
                observer.stop()
                observer.join(timeout=5)
        return self.progress

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current micro-batch."""
        self._stop.set()
        self._wake.set()

    def _observe(self) -> Any:
        """Start a watchdog observer that wakes the loop; None when none can start."""
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a dependency
            return None
        wake = self._wake

        class _Wake(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                wake.set()

        observer = Observer()
        try:
            observer.schedule(_Wake(), str(self.directory), recursive=True)
            observer.start()
        except OSError:  # e.g. inotify watches exhausted: polling alone still works
            return None
        return observer
