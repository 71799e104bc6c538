"""Headless Chromium with the network off: a report's rendered DOM, a screenshot, a PDF.

Used by the tests (the charts must draw offline), by ``make screenshots`` (docs/screenshots/)
and for printing a report to PDF. Every host resolves nowhere and no proxy answers, so a page that
tried to fetch anything at view time would show it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

#: Chromium switches: headless, no first-run work, network off.
FLAGS: tuple[str, ...] = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
    "--virtual-time-budget=15000",
)  # fmt: skip


def chromium() -> str | None:
    """The Chromium executable, or None when not installed (``apt-get install chromium``)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(html: Path, *args: str, capture: bool = False, timeout: float = 180) -> str:
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("headless Chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [exe, *FLAGS, f"--user-data-dir={profile}", *args, Path(html).resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout, check=True,
        )  # fmt: skip
    return done.stdout if capture else ""


def dom(html: Path, *, width: int = 1280, height: int = 2000) -> str:
    """The DOM after scripts ran (charts drawn)."""
    return _run(html, f"--window-size={width},{height}", "--dump-dom", capture=True)


def screenshot(html: Path, png: Path, *, width: int = 1280, height: int = 2000) -> Path:
    """A PNG of the first ``width`` x ``height`` pixels of the page."""
    png.parent.mkdir(parents=True, exist_ok=True)
    _run(html, f"--window-size={width},{height}", f"--screenshot={png}")
    return png


def pdf(html: Path, out: Path) -> Path:
    """The page printed to PDF (what ``--print-to-pdf`` of Chromium gives)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(html, "--no-pdf-header-footer", f"--print-to-pdf={out}")
    return out
