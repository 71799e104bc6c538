"""Shared fixtures: paths to the third-party samples, small synthetic worlds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "samples"
if not SAMPLES.is_dir():  # a git worktree of the checkout: the samples sit beside the main one
    SAMPLES = Path(os.environ.get("CEMKIT_SAMPLES", "/work/shared/data/samples"))


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
