"""Progress for long steps: a line when a step starts and when it ends, with its duration."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TextIO


@contextlib.contextmanager
def step(what: str, *, stream: TextIO | None = None) -> Iterator[None]:
    """Announce a long step on stderr and report its duration when done."""
    out = stream or sys.stderr
    print(f"cemkit: {what} ...", file=out, flush=True)
    t0 = time.perf_counter()
    yield
    print(f"cemkit: {what}: done in {time.perf_counter() - t0:.1f} s", file=out, flush=True)
