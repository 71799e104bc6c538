"""The privacy-budget ledger: an append-only JSON-lines file every release goes through.

Each line is one event, chained to the line before by its sha256 (a line removed or edited
breaks the chain, and :meth:`Ledger.entries` says where):

* ``reserve`` — written and fsynced **before any noise is drawn**: release id, data set, the
  periods it touches and what it spends in each, policy name/sha256, key id, who, host, when;
* ``commit`` — written after the release's outputs are in place.

A reservation without its commit (a release that crashed) still counts as spent: the budget can
only be over-counted, never under-counted. The check of the remaining budget and the reservation
happen under an exclusive ``flock`` of the ledger, so concurrent processes cannot both spend the
last of a budget.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import hashlib
import json
import os
import socket
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cemkit.errors import InputError, OutputError, PolicyError

GENESIS = "0" * 64


class BudgetExceeded(PolicyError):
    """A release would spend more than the period's budget; nothing was drawn or written."""


def _line_hash(prev: str, body: Mapping[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev + text).encode()).hexdigest()


class Ledger:
    """The ledger file at ``path`` (created on first use, never rewritten)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Any]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the lock
        except OSError as exc:
            raise OutputError(f"cannot open the privacy ledger {str(self.path)!r}: "
                              f"{exc.strerror}", hint="choose a writable ledger location"
                              ) from None  # fmt: skip
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            yield fh
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()

    def entries(self) -> list[dict[str, Any]]:
        """Every event, oldest first; a broken chain is an error naming the line."""
        if not self.path.exists():
            return []
        return self._read(self.path.read_text(encoding="utf-8"))

    def _read(self, text: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        prev = GENESIS
        lines = text.split("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines) or (number == len(lines) - 1 and not lines[-1]):
                    # a torn last line: the write it belonged to never completed (its release
                    # drew no noise, see reserve), so it spends nothing
                    continue
                raise InputError(
                    f"{self.path}: line {number}: not a ledger event",
                    hint="the ledger was edited; restore it from backup",
                ) from None
            digest = event.pop("sha256", None)
            if event.get("prev") != prev or digest != _line_hash(prev, event):
                raise InputError(f"{self.path}: line {number}: the hash chain is broken",
                                 hint="the ledger was edited or truncated; restore it")  # fmt: skip
            event["sha256"] = digest
            prev = digest
            out.append(event)
        return out

    def _load(self, fh: Any) -> tuple[str, list[dict[str, Any]]]:
        """The locked file's text and its verified events (read once per locked operation)."""
        fh.seek(0)
        text = fh.read()
        return text, self._read(text)

    def _append(self, fh: Any, event: dict[str, Any],
                loaded: tuple[str, list[Any]] | None = None) -> dict[str, Any]:  # fmt: skip
        text, events = loaded if loaded is not None else self._load(fh)
        if text and not text.endswith("\n"):
            # the torn tail of a write that never completed: not an event, cut it off
            fh.truncate(text.rfind("\n") + 1)
        prev = events[-1]["sha256"] if events else GENESIS
        body = {**event, "prev": prev}
        body["sha256"] = _line_hash(prev, body)
        fh.seek(0, os.SEEK_END)
        fh.write(json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
        return body

    def spent(self, data_set: str, measure: str) -> dict[str, float]:
        """Spent per period of a data set (reservations included, committed or not)."""
        return _spent(self.entries(), data_set, measure)

    def reserve(self, *, data_set: str, measure: str, spend: Mapping[str, float],
                budget: float, details: Mapping[str, Any]) -> str:  # fmt: skip
        """Check the budget of every period and record the spend; returns the release id.

        Raises :class:`BudgetExceeded` (and records nothing) when any period would go over.
        """
        with self._locked() as fh:
            loaded = self._load(fh)
            done = _spent(loaded[1], data_set, measure)
            over = {p: done.get(p, 0.0) for p, s in spend.items()
                    if done.get(p, 0.0) + s > budget * (1 + 1e-12)}  # fmt: skip
            if over:
                worst = ", ".join(
                    f"{p}: {v:g} of {budget:g} spent" for p, v in sorted(over.items())
                )
                raise BudgetExceeded(
                    f"release refused: data set {data_set!r} has not enough {measure} left "
                    f"({worst}; this release needs {max(spend.values()):g})",
                    hint="release fewer levels or indicators, wait for the next period, or ask "
                    "the privacy officer; nothing was released",
                )
            release_id = uuid.uuid4().hex
            self._append(fh, {
                "event": "reserve", "release_id": release_id, "data_set": data_set,
                "measure": measure, "spend": dict(spend), "budget": budget,
                "who": _who(), "host": socket.gethostname(),
                "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **details,
            }, loaded)  # fmt: skip
        return release_id

    def commit(self, release_id: str, details: Mapping[str, Any]) -> None:
        """Record that a reserved release was completed and where its outputs are."""
        with self._locked() as fh:
            self._append(fh, {
                "event": "commit", "release_id": release_id,
                "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **details,
            })  # fmt: skip


def _spent(events: list[dict[str, Any]], data_set: str, measure: str) -> dict[str, float]:
    total: dict[str, float] = {}
    for e in events:
        if e.get("event") == "reserve" and e.get("data_set") == data_set \
                and e.get("measure") == measure:  # fmt: skip
            for period, value in e.get("spend", {}).items():
                total[period] = total.get(period, 0.0) + float(value)
    return total


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def summary(ledger: Ledger) -> list[dict[str, Any]]:
    """One row per release: when, who, data set, periods and spend, status (for ``ledger show``)."""
    rows: dict[str, dict[str, Any]] = {}
    for e in ledger.entries():
        rid = e["release_id"]
        if e["event"] == "reserve":
            rows[rid] = {
                "release": rid[:12], "when": e["when"], "who": e["who"], "host": e["host"],
                "data_set": e["data_set"], "measure": e["measure"],
                "spend": e["spend"], "budget": e["budget"], "policy": e.get("policy", {}),
                "levels": e.get("levels"), "status": "reserved (not completed)",
            }  # fmt: skip
        elif rid in rows:
            rows[rid]["status"] = "committed"
            rows[rid]["out"] = e.get("out")
    return list(rows.values())
