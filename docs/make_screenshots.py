"""Regenerate docs/screenshots/: every shipped notebook's report, first screen, in Chromium.

    make screenshots            # or: python docs/make_screenshots.py [NAME ...]

Each notebook runs at its default parameters (what a new user gets) into a temporary report
directory; headless Chromium (network off) opens the HTML and saves the first 1280 x 1400 pixels
as docs/screenshots/<name>.png, and the whole page as docs/screenshots/<name>-full.png.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from cemkit.report import browser, runner

HERE = Path(__file__).resolve().parent / "screenshots"


def main(names: list[str]) -> int:
    """Regenerate the screenshots of ``names`` (default: every shipped notebook)."""
    if browser.chromium() is None:
        print("make screenshots: headless Chromium is not installed (apt-get install chromium)",
              file=sys.stderr)  # fmt: skip
        return 1
    shipped = sorted(p.stem for p in runner.NOTEBOOK_DIR.glob("*.ipynb"))
    for name in names or shipped:
        with tempfile.TemporaryDirectory(prefix="cemkit-screenshot-") as tmp:
            os.environ.pop("CEMKIT_KEY", None)  # generated data: the notebooks' one-off demo key
            paths = runner.report(name, {}, Path(tmp) / "report", progress=False)
            first = browser.screenshot(paths["html"], HERE / f"{name}.png", height=1400)
            full = browser.screenshot(paths["html"], HERE / f"{name}-full.png", height=5000)
            print(f"make screenshots: {first.relative_to(HERE.parent.parent)}, "
                  f"{full.relative_to(HERE.parent.parent)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
