"""The generator's source formats load back to the canonical records they were written from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cemkit.io import plan
from cemkit.outcomes import ASTERISK_DISPOSITION, OUTCOME_TO_ASTERISK


@pytest.fixture(scope="module")
def world(small_world):
    out, truth = small_world
    p = plan(str(out / "records"), "parquet")
    canon = p.records().compute()
    assert len(p.quarantine().compute()) == 0
    voice = canon[(canon.record_kind == "cdr") & (canon.service == "voice")].reset_index(drop=True)
    return out, truth, canon, voice


def _load(path, fmt, truth):
    p = plan(str(path), fmt, tz=truth["timezone"], default_region=truth["default_region"])
    return p.records().compute().reset_index(drop=True), p.quarantine().compute()


def _seconds(s: pd.Series) -> np.ndarray:
    return s.dt.floor("s").to_numpy()


def test_canonical_parquet_loads_whole(world):
    _, truth, canon, voice = world
    assert len(canon) == truth["records"]
    assert len(voice) == truth["counts"]["voice_cdrs_in_formats"]


@pytest.mark.parametrize("fmt", ["asterisk", "freeswitch"])
def test_source_format_matches_canonical(world, fmt):
    out, truth, _, voice = world
    df, q = _load(out / "formats" / fmt / "Master.csv", fmt, truth)
    assert len(q) == 0
    assert len(df) == len(voice)
    assert (df.a_number.to_numpy() == voice.a_number.to_numpy()).all()
    assert (df.b_number.to_numpy() == voice.b_number.to_numpy()).all()
    assert set(df.a_number_kind) == {"e164"}
    for col in ("start", "end"):
        assert (_seconds(df[col]) == _seconds(voice[col])).all(), col
    answered = voice.answer.notna().to_numpy()
    assert (df.answer.notna().to_numpy() == answered).all()
    assert (_seconds(df.answer[answered]) == _seconds(voice.answer[answered])).all()
    assert (df.duration_s.to_numpy() == np.floor(voice.duration_s.to_numpy())).all()
    if fmt == "asterisk":
        expected = voice.outcome.map(lambda o: ASTERISK_DISPOSITION[OUTCOME_TO_ASTERISK[o]])
        assert (df.outcome.to_numpy() == expected.to_numpy()).all()
    else:
        assert (df.outcome[answered] == "answered").all()
        assert (df.outcome[~answered] != "answered").all()
