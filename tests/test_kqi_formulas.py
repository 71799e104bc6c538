import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit.kqi import formulas as f

T0 = pd.Timestamp("2026-01-01 10:00", tz="UTC")


def hand_records():
    """13 records whose indicators are worked out by hand in the tests below."""
    rows = [
        # service, kind, outcome, billsec, cause, partial, sip, pdd, mos, loss, jitter, intent
        ("voice", "cdr", "answered", 30.0, 16, None, None, 1000.0, 4.0, None, None, "i1"),
        ("voice", "cdr", "answered", 5.0, 41, None, None, 3000.0, None, 0.02, 10.0, "i2"),
        ("voice", "cdr", "busy", 0.0, 17, None, None, 2000.0, None, None, None, "i1"),
        ("voice", "cdr", "congestion", 0.0, 34, None, None, None, None, None, None, "i3"),
        ("voice", "cdr", "no_answer", 0.0, 19, None, None, None, None, None, None, "i1"),
        ("voice", "cdr", "answered", 1800.0, None, 1, None, None, None, None, None, "i4"),
        ("voice", "cdr", "answered", 600.0, 16, 2, None, None, None, None, None, "i4"),
        ("sms", "cdr", "answered", 0.0, None, None, None, None, None, None, None, None),
        ("voice", "xdr", "answered", 0.0, 16, None, 200, None, None, None, None, None),
        ("voice", "xdr", "busy", 0.0, None, None, 486, None, None, None, None, None),
        ("voice", "xdr", "failed", 0.0, None, None, 302, None, None, None, None, None),
        ("voice", "xdr", "congestion", 0.0, None, None, 503, None, None, None, None, None),
        ("voice", "xdr", "answered", 0.0, 38, None, 200, None, None, None, None, None),
    ]
    cols = [
        "service",
        "record_kind",
        "outcome",
        "billsec_s",
        "cause_q850",
        "partial_seq",
        "sip_status",
        "pdd_ms",
        "mos",
        "loss_ratio",
        "jitter_ms",
        "src_intent_id",
    ]
    df = pd.DataFrame(rows, columns=cols)
    df["cause_q850"] = df["cause_q850"].astype("Int16")
    df["partial_seq"] = df["partial_seq"].astype("Int32")
    df["sip_status"] = df["sip_status"].astype("Int16")
    for c in ("pdd_ms", "mos", "loss_ratio", "jitter_ms"):
        df[c] = df[c].astype(float)
    df["start"] = T0 + pd.to_timedelta(np.arange(len(df)) * 60, unit="s")
    return df


def sums_of(df):
    return f.contributions(df).sum().to_frame().T


def test_counters_by_hand():
    s = sums_of(hand_records()).iloc[0]
    assert s["attempts"] == 6  # rows 1-6; the 2nd partial, the SMS and the xDRs are no attempts
    assert s["answered"] == 3
    assert s["user_determined"] == 5  # congestion is the network's fault
    assert s["drops"] == 1  # cause 41 after answer
    assert s["short_calls"] == 1
    assert s["conversation_ms"] == (30 + 5 + 1800 + 600) * 1000
    assert s["pdd_count"] == 3 and s["pdd_us"] == 6_000_000
    assert s["invites"] == 5 and s["invites_2xx"] == 2 and s["invites_3xx"] == 1
    assert s["invites_effective"] == 3 and s["invites_ineffective"] == 1
    assert s["sessions_completed"] == 1
    assert s["mos_count"] == 2


def test_indicators_by_hand():
    ind = f.indicators(sums_of(hand_records())).iloc[0]
    assert ind["attempts"] == 6
    assert ind["asr"] == pytest.approx(3 / 6)  # E.411
    assert ind["ner"] == pytest.approx(5 / 6)  # E.425
    assert ind["ser"] == pytest.approx(2 / 4)  # RFC 6076: 2xx / (INVITEs - 3xx)
    assert ind["seer"] == pytest.approx(3 / 4)  # 200, 486, 200
    assert ind["isa"] == pytest.approx(1 / 5)  # 503
    assert ind["scr"] == pytest.approx(1 / 5)  # one 200 released normally
    assert ind["acd_s"] == pytest.approx(2435 / 3)
    assert ind["pdd_mean_ms"] == pytest.approx(2000.0)
    assert ind["drop_ratio"] == pytest.approx(1 / 3)
    assert ind["short_call_ratio"] == pytest.approx(1 / 3)
    r = 93.2 - 95 * 2 / (2 + 25.1)  # G.107: Ppl = 2 %, Ta = 40 + 2 * 10 ms -> Idd = 0
    mos2 = 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6
    assert ind["mos"] == pytest.approx((4.0 + mos2) / 2, abs=1e-6)
    quality = ((4.0 + mos2) / 2 - 1) / 3.5
    expected = 100 * (0.35 * 5 / 6 + 0.25 * 2 / 3 + 0.2 * quality + 0.1 * 1.0 + 0.1 * 2 / 3)
    assert ind["experience_score"] == pytest.approx(expected, abs=1e-4)
    assert math.isnan(ind["pdd_p50_ms"])  # percentiles come from the rollup


def test_repeat_attempts_from_first_of_intent():
    df = hand_records()
    first = ~df["src_intent_id"].duplicated() | df["src_intent_id"].isna()
    df[f.FIRST_OF_INTENT_COLUMN] = first
    s = sums_of(df).iloc[0]
    assert s["repeat_attempts"] == 2  # rows 3 and 5 repeat intent i1
    assert f.indicators(sums_of(df))["repeat_attempt_rate"].iloc[0] == pytest.approx(2 / 6)


def test_no_data_gives_nan_not_error():
    empty = pd.DataFrame({c: [0] for c in f.COUNTERS})
    ind = f.indicators(empty).iloc[0]
    assert ind["attempts"] == 0
    assert math.isnan(ind["asr"]) and math.isnan(ind["mos"]) and math.isnan(ind["experience_score"])


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.95, 0.99, 1.0])
def test_weighted_quantile_equals_numpy(q):
    rng = np.random.default_rng(1)
    values = np.unique(rng.integers(0, 5000, 300)).astype(float)
    counts = rng.integers(1, 20, len(values))
    assert f.weighted_quantile(values, counts, q) == np.quantile(np.repeat(values, counts), q)


def test_emodel_known_points():
    # no loss, no jitter, default delay: R is G.107's default 93.2
    assert f.emodel_r(np.array([0.0]), np.array([0.0]), np.array([40.0]))[0] == pytest.approx(93.2)
    # Ta = 200 ms: X = 1, Idd = 25 * (2^(1/6) - 3 * (1 + 3^-6)^(1/6) + 2)
    idd = 25 * (2 ** (1 / 6) - 3 * (1 + (1 / 3) ** 6) ** (1 / 6) + 2)
    assert f.emodel_r(np.array([0.0]), np.array([0.0]), np.array([200.0]))[0] == pytest.approx(
        93.2 - idd
    )
    assert f.mos_from_r(np.array([93.2]))[0] == pytest.approx(4.40929, abs=1e-5)


def test_measured_mos_wins_over_estimate():
    df = pd.DataFrame(
        {
            "mos": [3.1, np.nan, np.nan],
            "loss_ratio": [0.5, 0.0, np.nan],
            "jitter_ms": [0.0, 0.0, np.nan],
        }
    )
    got = f.record_mos(df)
    assert got[0] == 3.1 and got[1] == pytest.approx(4.40929, abs=1e-5) and np.isnan(got[2])


def test_every_indicator_documented():
    for ind in f.INDICATORS.values():
        assert ind.definition and ind.source and ind.direction in (1, -1)
    assert abs(sum(f.SCORE_WEIGHTS.values()) - 1.0) < 1e-12


def test_grouped_weighted_quantile_equals_numpy_per_group():
    rng = np.random.default_rng(3)
    gids, vals, cnts = [], [], []
    for g in (0, 2, 3, 9):
        v = np.unique(rng.integers(0, 3000, rng.integers(1, 40))).astype(float)
        gids.append(np.full(len(v), g))
        vals.append(v)
        cnts.append(rng.integers(1, 9, len(v)))
    gid, values, counts = map(np.concatenate, (gids, vals, cnts))
    for q in (0.0, 0.5, 0.95, 1.0):
        ids, got = f.grouped_weighted_quantile(gid, values, counts, q)
        assert ids.tolist() == [0, 2, 3, 9]
        for i, g in enumerate(ids):
            sel = gid == g
            assert got[i] == np.quantile(np.repeat(values[sel], counts[sel]), q)


@settings(max_examples=80, deadline=None)
@given(
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.sampled_from([3, 1000, 2**40]),
    st.booleans(),
)
def test_indicator_arrays_of_a_block_or_by_name_equal_the_per_name_reference(n, seed, high,
                                                                             missing):  # fmt: skip
    """One computation of the indicators: a (counter, row) block as it is or counters by name.

    Both give the very bits of the per-indicator reference (tests/naive.py); ``missing``: the
    counters as float64 with NaN (a frame's counter with missing values).
    """
    from tests import naive

    rng = np.random.default_rng(seed)
    block = rng.integers(0, high, size=(len(f.COUNTERS), n), dtype=np.int64)
    block[:, rng.random(n) < 0.3] = 0  # empty rows: NaN ratios
    if n:  # a derived denominator below zero (invites < invites_3xx): NaN, as per name
        block[f.COUNTERS.index("invites_3xx"), 0] = block[f.COUNTERS.index("invites"), 0] + 1
    if missing:
        block = block.astype(np.float64)
        block[rng.random(block.shape) < 0.1] = np.nan
        block[f.COUNTERS.index("attempts")] = np.nan_to_num(block[0])  # an int64 column
    names = [n for n in f.INDICATORS if f.counters_needed([n]) is not None]
    sums = dict(zip(f.COUNTERS, block, strict=True))
    want = naive.indicator_arrays_per_name(sums, names)
    by_name = f.indicator_arrays({c: sums[c] for c in f.counters_needed(names)}, names)
    for got in ([f.indicator_arrays(block, names)] if not missing else []) + [by_name]:
        assert list(got) == names
        for name in names:
            assert got[name].dtype == want[name].dtype, name
            assert got[name].tobytes() == want[name].tobytes(), name
    # a few names, in any order; the table's columns from the block equal a frame's
    some = list(rng.permutation(names)[: rng.integers(1, len(names))])
    got = f.indicator_arrays({c: sums[c] for c in f.counters_needed(some)}, some)
    assert list(got) == some
    if not missing:
        table = f.indicator_columns(block, n, {"pdd_p50_ms": rng.random(n)})
        frame = f.indicators(pd.DataFrame(sums).assign(pdd_p50_ms=table["pdd_p50_ms"]))
        assert list(table) == list(frame.columns)
        for name in table:
            assert table[name].tobytes() == frame[name].to_numpy().tobytes(), name


def test_indicator_arrays_refuses_what_is_not_a_counter_block_or_a_counter_formula():
    with pytest.raises(ValueError, match="rows"):
        f.indicator_arrays(np.zeros((3, 2), dtype=np.int64), ["asr"])
    with pytest.raises(ValueError, match="pdd_p50_ms is not a function of counters"):
        f.indicator_arrays({"attempts": np.zeros(2)}, ["asr", "pdd_p50_ms"])
    with pytest.raises(ValueError, match="experience_score is not a function of counters"):
        f.indicator_arrays(np.zeros((len(f.COUNTERS), 2), dtype=np.int64), ["experience_score"])


SCORE_INPUTS = ("ner", "drop_ratio", "mos", "pdd_mean_ms", "short_call_ratio")
_SCORE_VALUE = st.one_of(st.just(np.nan), st.sampled_from([0.0, 1.0, 0.5, 1 / 3]),
                         st.floats(0.0, 1.0))  # fmt: skip
_SCORE_FIELDS = {"ner": _SCORE_VALUE, "drop_ratio": _SCORE_VALUE,
                 "mos": st.one_of(st.just(np.nan), st.floats(0.5, 5.0)),
                 "pdd_mean_ms": st.one_of(st.just(np.nan), st.sampled_from([2000.0, 8000.0]),
                                          st.floats(0.0, 20000.0)),
                 "short_call_ratio": _SCORE_VALUE}  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(st.lists(st.fixed_dictionaries(_SCORE_FIELDS), max_size=30))
def test_score_arrays_equal_the_per_component_reference(rows):
    """The score as one (component, row) block: the very bits of the per-component sums."""
    from tests import naive

    ind = {c: np.array([r[c] for r in rows], dtype=np.float64) for c in SCORE_INPUTS}
    want_score, want_reason = naive.score_arrays_per_component(ind)
    score, reason = f.score_arrays(ind)
    assert score.tobytes() == want_score.tobytes()
    assert reason is not None and reason.tolist() == want_reason.tolist()
    only, none = f.score_arrays(ind, reasons=False)  # the KQI table's: no reasons worked out
    assert none is None and only.tobytes() == want_score.tobytes()


def test_bad_share_reads_a_frame_or_arrays_by_name_alike():
    """One definition of a share's bad outcomes and trials: the alerts read it on arrays."""
    sums = pd.DataFrame({c: np.arange(4, dtype=np.int64) * (i + 1)
                         for i, c in enumerate(f.COUNTERS)})  # fmt: skip
    for name in ("asr", "drop_ratio", "ser", "isa"):
        bad, den = f.bad_share(sums, name)
        by_name = {c: sums[c].to_numpy() for c in f.counters_needed([name]) or []}
        bad_a, den_a = f.bad_share(by_name, name)
        assert bad_a.dtype == den_a.dtype == np.int64
        assert bad_a.tolist() == bad.tolist() and den_a.tolist() == den.tolist()
