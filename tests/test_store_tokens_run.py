"""A run whose parts store token columns as int64 bits reads back exactly as one stored as strings.

The real pipeline (synthetic world -> cemkit.run: load, protect, correlate, KQIs) is run twice,
with :data:`cemkit.runs.store.TOKEN_BITS` off and on; every output read through cemkit's readers
(records, quarantine, KQIs, group sizes, alerts) is the same, tokens in their readable form.
"""

import pandas as pd
import pyarrow.parquet as pq
import pytest

import cemkit
from cemkit import synth
from cemkit.privacy import tokens
from cemkit.runs import read_records, store

KEY = "5b8d1f4a6c0e3b7d9a2f5c8e1b4d7a0c3f6e9b2d5a8c1f4e7b0a3d6c7f3a9c2e"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    world = tmp_path_factory.mktemp("tworld")
    synth.generate(world, records=6_000, seed=5, incidents=1)
    mp = pytest.MonkeyPatch()
    mp.setenv("CEMKIT_KEY", KEY)
    out = {}
    for bits in (False, True):
        mp.setattr(store, "TOKEN_BITS", bits)
        out[bits] = cemkit.run(world / "records", format="parquet", policy="default",
                               model=world / "model.yaml", scheduler="sync",
                               out=tmp_path_factory.mktemp(f"trun{bits}") / "run")  # fmt: skip
    mp.undo()
    return out


def test_run_outputs_identical_with_token_bits(runs):
    strings, bits = runs[False], runs[True]
    part = store.part_files(bits.out)[0]
    assert {"a_number", "b_number"} <= set(store._stored_tokens(pq.read_schema(part)))
    assert not store._stored_tokens(pq.read_schema(store.part_files(strings.out)[0]))
    a = read_records(strings.out).compute().reset_index(drop=True)
    b = read_records(bits.out).compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert b["a_number"].dropna().str.fullmatch(r"\+?\d*#[0-9a-f]{16}").all()
    assert tokens.is_token_struct(pq.read_schema(part).field("a_number").type)  # no strings
    pd.testing.assert_frame_equal(strings.kqi, bits.kqi, check_exact=True)
    pd.testing.assert_frame_equal(strings.group_sizes, bits.group_sizes, check_exact=True)
    for name in ("kqi/kqi.parquet", "alerts.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(strings.out / name),
                                      pd.read_parquet(bits.out / name))  # fmt: skip
