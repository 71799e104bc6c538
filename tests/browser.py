"""Open an HTML file in headless Chromium with the network off: the rendered DOM and a PNG."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Network off: every host resolves nowhere, so nothing can be fetched at view time.
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
    "--virtual-time-budget=10000", "--window-size=1280,2000",
]  # fmt: skip


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    return exe


def render(html: Path, screenshot_name: str) -> str:
    """Rendered DOM of ``html``; also saves a screenshot under test-artifacts/."""
    exe = chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    url = html.resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [exe, *_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [exe, *_FLAGS, f"--user-data-dir={profile}",
             f"--screenshot={ARTIFACTS / screenshot_name}", url],
            capture_output=True, timeout=120, check=True,
        )  # fmt: skip
    return dom
