"""Shared fixtures: paths to the third-party samples, small synthetic worlds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def _samples() -> Path:
    """The third-party samples: $CEMKIT_SAMPLES, else ../shared/data/samples beside the checkout
    (or beside its parent, for worktrees), else /work/shared/data/samples."""
    if os.environ.get("CEMKIT_SAMPLES"):
        return Path(os.environ["CEMKIT_SAMPLES"])
    repo = Path(__file__).resolve().parents[1]
    candidates = [p / "shared" / "data" / "samples" for p in (repo.parent, repo.parent.parent)]
    candidates.append(Path("/work/shared/data/samples"))
    return next((p for p in candidates if p.is_dir()), candidates[0])


#: Where the samples are; test modules import it (``from conftest import SAMPLES``).
SAMPLES = _samples()


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The third-party samples (read in place, never copied); tests skip when absent."""
    if not SAMPLES.is_dir():
        pytest.skip(f"third-party samples not present at {SAMPLES}")
    return SAMPLES


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A 20,000-record synthetic world with two incidents (generated once per session)."""
    from cemkit import synth

    out = tmp_path_factory.mktemp("world")
    synth.generate(out, records=20_000, seed=11, incidents=2)
    return out, json.loads((out / "truth.json").read_text())
