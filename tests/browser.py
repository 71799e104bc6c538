"""Open an HTML file in headless Chromium with the network off: the rendered DOM and a PNG."""

from __future__ import annotations

from pathlib import Path

import pytest

from cemkit.report import browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def chromium() -> str:
    exe = browser.chromium()
    if exe is None:
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    return exe


def render(html: Path, screenshot_name: str) -> str:
    """Rendered DOM of ``html``; also saves a screenshot under test-artifacts/."""
    chromium()
    dom = browser.dom(html)
    browser.screenshot(html, ARTIFACTS / screenshot_name)
    return dom
