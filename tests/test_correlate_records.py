"""stitch, pair_legs, match and sessionize on canonical records: pandas wrappers and Dask path."""

from __future__ import annotations

import dask
import dask.dataframe as dd
import naive
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit import schema
from cemkit.correlate import (
    INTENT_COLUMNS,
    MATCH_COLUMNS,
    PAIR_COLUMNS,
    STITCH_COLUMNS,
    _frames,
    match,
    pair_legs,
    sessionize,
    stitch,
)
from cemkit.correlate import _kernels as K
from cemkit.correlate.match import match_positions
from cemkit.correlate.pair_legs import pair_positions
from cemkit.correlate.sessionize import session_labels
from cemkit.correlate.stitch import stitch_labels
from cemkit.errors import PrivacyWarning

T0 = pd.Timestamp("2026-01-01", tz="UTC")
S = pd.Timedelta("1s")


def records(**cols):
    n = max(len(v) for v in cols.values() if not isinstance(v, str))
    base = {"record_id": [f"r{i:03d}" for i in range(n)], "source": "test", "record_kind": "cdr",
            "service": "voice", "outcome": "answered"}  # fmt: skip
    base.update(cols)
    df = schema.conform(pd.DataFrame(base))
    # null start times are generated on purpose (the schema requires them, loaders may not)
    assert not [p for p in schema.validate(df, raise_=False) if "'start' is null" not in p]
    return df


@st.composite
def record_frames(draw, max_n=14):
    n = draw(st.integers(0, max_n))

    def col(elements):
        return draw(st.lists(elements, min_size=n, max_size=n))

    start = col(st.one_of(st.integers(0, 40), st.none()))
    dur = col(st.integers(0, 12))
    return records(
        record_id=[f"r{i:03d}" for i in range(n)],
        record_kind=col(st.sampled_from(["cdr", "cdr", "xdr"])),
        service=col(st.sampled_from(["voice", "voice", "sms"])),
        a_number=col(st.sampled_from(["+4411", "+4412", None])),
        b_number=col(st.sampled_from(["+4421", "+4422"])),
        leg=col(st.sampled_from(["orig", "term", None])),
        node=col(st.sampled_from(["lon-sw1", "man-sw2"])),
        call_id=col(st.sampled_from(["c1", "c2", None, None])),
        partial_seq=pd.array(col(st.sampled_from([1, 2, 3, None])), dtype="Int32"),
        outcome=col(st.sampled_from(["answered", "busy", "no_answer"])),
        start=[None if s is None else T0 + s * S for s in start],
        end=[None if s is None else T0 + (s + d) * S for s, d in zip(start, dur, strict=True)],
        duration_s=[float(d) for d in dur],
    )


def ns(s):
    return s.array.asi8


@settings(max_examples=80, deadline=None)
@given(df=record_frames())
def test_stitch_wrapper(df):
    label, _rank, _flags = stitch_labels(df, gap="2s")
    out = stitch(df, gap="2s")
    reps = np.flatnonzero(label == np.arange(len(df)))
    assert out["record_id"].tolist() == df["record_id"].iloc[reps].tolist()
    assert int(out["src_partials"].sum()) == len(df)
    # durations are summed per call
    sums = pd.Series(df["duration_s"].to_numpy()).groupby(label).sum()
    np.testing.assert_allclose(out["duration_s"].to_numpy(), sums.loc[reps].to_numpy())
    assert set(STITCH_COLUMNS) <= set(out.columns)
    assert not [p for p in schema.validate(out, raise_=False) if "'start' is null" not in p]


def test_stitch_call_reference_out_of_order_and_missing():
    df = records(
        call_id=["c", "c", "c", "d", None, None, None],
        partial_seq=pd.array([3, 1, 4, 1, None, None, None], dtype="Int32"),
        node="sw1", a_number="+1", b_number=["+2"] * 4 + ["+3"] * 3,
        start=[T0 + 3600 * S, T0, T0 + 1800 * S, T0, T0, T0 + 60 * S, T0 + 500 * S],
        end=[T0 + 5400 * S, T0 + 1800 * S, T0 + 3600 * S, T0 + 10 * S,
             T0 + 60 * S, T0 + 90 * S, T0 + 510 * S],
        duration_s=[1800.0, 1800.0, 1800.0, 10.0, 60.0, 30.0, 10.0],
        outcome=["busy", "answered", "answered", "answered", "answered", "no_answer", "busy"],
    )  # fmt: skip
    out = stitch(df).set_index("record_id")
    assert out.index.tolist() == ["r001", "r003", "r004", "r006"]
    c = out.loc["r001"]
    assert c["src_partials"] == 3 and c["duration_s"] == 5400.0
    assert c["start"] == T0 and c["end"] == T0 + 5400 * S
    assert bool(c["src_partials_missing"])  # partial 2 is missing
    assert bool(c["src_partials_out_of_order"])  # partial 3 starts after 4
    assert not bool(c["src_partials_duplicate"])
    assert c["outcome"] == "answered"  # of the last partial (seq 4)
    assert pd.isna(c["partial_seq"])
    # no call reference: chained by end == next start, the 500 s one stays alone
    assert out.loc["r004", "src_partials"] == 2 and out.loc["r004", "duration_s"] == 90.0
    assert out.loc["r004", "outcome"] == "no_answer"
    assert out.loc["r006", "src_partials"] == 1
    assert not out.loc["r003", "src_partials_missing"]


@settings(max_examples=80, deadline=None)
@given(df=record_frames())
def test_pair_and_match_positions_equal_naive(df):
    (key,), _, _ = _frames.key_codes([[df["service"], df["a_number"], df["b_number"]]])
    start = ns(df["start"])
    cdr = (df["record_kind"] == "cdr").to_numpy()
    side = np.full(len(df), 2, np.int8)
    side[cdr & (df["leg"] == "orig").fillna(False).to_numpy()] = 0
    side[cdr & (df["leg"] == "term").fillna(False).to_numpy()] = 1
    tol = 3 * 10**9
    np.testing.assert_array_equal(
        pair_positions(df, "3s"), naive.nearest_pairs(key, start, side, tol)
    )
    side = np.where(cdr, 1, 0).astype(np.int8)
    np.testing.assert_array_equal(
        match_positions(df, "3s"), naive.nearest_pairs(key, start, side, tol)
    )


def test_pair_legs_one_to_one_nearest():
    df = records(
        a_number="+1", b_number="+2",
        leg=["orig", "term", "orig", "term", "term", None],
        node=["sw1", "sw2", "sw1", "sw2", "sw2", "sw1"],
        start=[T0, T0 + 1 * S, T0 + 4 * S, T0 + 5 * S, T0 + 60 * S, T0],
    )  # fmt: skip
    out = pair_legs(df, tolerance="2s").set_index("record_id")
    assert out.index.tolist() == ["r000", "r002", "r004", "r005"]
    assert out.loc["r000", "src_term_record_id"] == "r001"
    assert out.loc["r002", "src_term_record_id"] == "r003"
    assert out.loc["r002", "src_term_node"] == "sw2"
    assert out.loc["r002", "src_term_start"] == T0 + 5 * S
    assert out["src_paired"].tolist() == [True, True, False, False]
    assert pd.isna(out.loc["r004", "src_term_record_id"])
    assert set(PAIR_COLUMNS) <= set(out.columns)
    schema.validate(out.reset_index())


def test_match_flags():
    df = records(
        record_kind=["cdr", "xdr", "xdr", "cdr", "registration"],
        outcome=["answered"] * 4 + ["registered"],
        a_number="+1", b_number="+2",
        start=[T0, T0 + 1 * S, T0 + 100 * S, T0 + 300 * S, T0],
    )  # fmt: skip
    df["sip_status"] = pd.array([None, 200, 486, None, None], dtype="Int16")
    out = match(df).set_index("record_id")
    assert out["src_match"].fillna("-").tolist() == ["matched", "xdr_only", "cdr_only", "-"]
    assert out.loc["r000", "src_xdr_record_id"] == "r001"
    assert out.loc["r000", "src_xdr_sip_status"] == 200
    assert set(MATCH_COLUMNS) <= set(out.columns)
    schema.validate(out.reset_index())


@settings(max_examples=80, deadline=None)
@given(df=record_frames(), window=st.sampled_from([0, 5, 20]), close=st.booleans())
def test_sessionize_wrapper(df, window, close):
    label, rank = session_labels(df, window, close)
    (key,), _, _ = _frames.key_codes([[df["service"], df["a_number"], df["b_number"]]])
    answered = (df["outcome"] == "answered").to_numpy()
    want = naive.sessions(key, ns(df["start"]), ns(df["end"]), answered, window * 10**9, close)
    np.testing.assert_array_equal(label, want[0])
    np.testing.assert_array_equal(rank, want[1])
    out = sessionize(df, window=window, close_on_answer=close)
    assert list(out.columns) == list(INTENT_COLUMNS)
    assert int(out["attempts"].sum()) == len(df)
    heads = np.flatnonzero(label == np.arange(len(df)))
    assert out["intent_id"].tolist() == df["record_id"].iloc[heads].tolist()


def test_sessionize_retries():
    df = records(
        a_number="+1", b_number=["+2", "+2", "+2", "+2", "+3"],
        outcome=["busy", "no_answer", "answered", "busy", "busy"],
        start=[T0, T0 + 30 * S, T0 + 70 * S, T0 + 80 * S, T0 + 31 * S],
        end=[T0 + 5 * S, T0 + 60 * S, T0 + 75 * S, T0 + 81 * S, T0 + 32 * S],
    )  # fmt: skip
    out = sessionize(df, window="30s")
    assert out["attempts"].tolist() == [3, 1, 1]
    assert out["final_outcome"].tolist() == ["answered", "busy", "busy"]
    assert out["answered"].tolist() == [True, False, False]
    assert out["last_record_id"].tolist() == ["r002", "r003", "r004"]
    labelled = sessionize(df, window="30s", output="records")
    assert labelled["src_intent_id"].tolist() == ["r000", "r000", "r000", "r003", "r004"]
    assert labelled["src_attempt"].tolist() == [1, 2, 3, 1, 1]
    assert labelled.index.equals(df.index)
    schema.validate(labelled)
    # without closing on answer the busy retry after the answer joins the intent
    assert sessionize(df, window="30s", close_on_answer=False)["attempts"].tolist() == [4, 1]


def _sorted(df, by="record_id"):
    return df.sort_values(by).reset_index(drop=True)


@pytest.mark.parametrize("nparts", [1, 3, 8])
def test_dask_results_identical_for_any_partitioning(nparts):
    rng = np.random.default_rng(11)
    n = 600
    start = rng.integers(0, 3000, n)
    df = records(
        record_id=[f"r{i:04d}" for i in range(n)],
        record_kind=rng.choice(["cdr", "cdr", "xdr"], n),
        a_number=rng.choice([f"+44{i}" for i in range(8)], n),
        b_number=rng.choice([f"+33{i}" for i in range(8)], n),
        leg=rng.choice(["orig", "term", None], n),
        node=rng.choice(["sw1", "sw2"], n),
        call_id=rng.choice(["c1", "c2", "c3", None, None, None], n),
        partial_seq=pd.array(rng.choice([1, 2, 3], n), dtype="Int32"),
        outcome=rng.choice(["answered", "busy"], n),
        start=T0 + pd.to_timedelta(start, unit="s"),
        end=T0 + pd.to_timedelta(start + rng.integers(0, 30, n), unit="s"),
        duration_s=rng.integers(0, 30, n).astype(float),
    )  # fmt: skip
    ddf = dd.from_pandas(df, npartitions=nparts)
    with dask.config.set(scheduler="sync"):
        for fn, kw in ((stitch, {}), (pair_legs, {"tolerance": "20s"}),
                       (match, {"tolerance": "20s"})):  # fmt: skip
            want = _sorted(fn(df, **kw))
            got = _sorted(fn(ddf, **kw).compute())
            pd.testing.assert_frame_equal(got, want)
        want = _sorted(sessionize(df, window="40s"), "intent_id")
        got = _sorted(sessionize(ddf, window="40s").compute(), "intent_id")
        pd.testing.assert_frame_equal(got, want)
        want = _sorted(sessionize(df, window="40s", output="records"))
        got = _sorted(sessionize(ddf, window="40s", output="records").compute())
        pd.testing.assert_frame_equal(got, want)


def test_empty_records():
    df = schema.empty_frame()
    assert len(stitch(df)) == 0 and "src_partials" in stitch(df).columns
    assert len(pair_legs(df)) == 0
    assert len(match(df)) == 0
    assert list(sessionize(df).columns) == list(INTENT_COLUMNS)


def test_single_record():
    df = records(a_number=["+1"], b_number=["+2"], leg=["orig"], start=[T0], end=[T0 + S],
                 call_id=["c"], partial_seq=pd.array([2], dtype="Int32"))  # fmt: skip
    out = stitch(df)
    assert out["src_partials"].tolist() == [1] and out["src_partials_missing"].tolist() == [True]
    assert pair_legs(df)["src_paired"].tolist() == [False]
    assert match(df)["src_match"].tolist() == ["cdr_only"]
    assert sessionize(df)["attempts"].tolist() == [1]
    assert np.iinfo(np.int64).min == K.NULL_TIME


def test_command_writes_a_run_of_calls_with_intents(tmp_path):
    import argparse

    from cemkit.correlate import commands
    from cemkit.io.output import write_run
    from cemkit.runs import read_records

    df = records(
        record_kind=["cdr", "cdr", "xdr", "cdr"], a_number="+1", b_number="+2",
        leg=["orig", "term", None, "orig"], start=[T0, T0 + S, T0, T0 + 30 * S],
        end=[T0 + 5 * S, T0 + 6 * S, T0 + 5 * S, T0 + 40 * S],
        outcome=["busy", "busy", "busy", "answered"],
    )  # fmt: skip
    write_run(tmp_path / "in", df)
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    # hand-made raw records: a data owner's own, hence --allow-raw
    args = parser.parse_args(["correlate", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                              "--allow-raw", "--scheduler", "sync"])  # fmt: skip
    with pytest.warns(PrivacyWarning, match="RAW"):
        assert args.func(args) == 0
    calls = read_records(tmp_path / "out").compute()
    assert sorted(calls["record_id"]) == ["r000", "r003"]
    assert calls["src_intent_id"].nunique() == 1  # the retry belongs to the first attempt
    with pytest.raises(Exception, match="exists"), pytest.warns(PrivacyWarning):
        args.func(args)
