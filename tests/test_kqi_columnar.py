"""The KQI stage on NumPy arrays equals the pandas code it replaced, kernel by kernel.

References in tests/naive.py: ``contributions_pandas`` (the per-record counters as pandas
computed them), ``indicators_pandas`` / ``experience_score_pandas``, ``first_start``; the
percentiles against ``numpy.quantile`` of the repeated values. Compared exactly on
hypothesis-generated frames (every input column, Arrow / object / categorical strings, missing
columns) and on records of the real pipeline.
"""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cemkit.arrowstr import buffers
from cemkit.kqi import _kernels, formulas
from cemkit.kqi.columns import RecordColumns
from tests import naive
from tests.test_kqi_fastpath import pipeline_records  # noqa: F401 - a fixture

_S = "string[pyarrow]"
OUTCOMES = ["answered", "busy", "failed", "no_answer", "cancelled", "rejected", "registered",
            "registered_after_challenge", "registration_failed", "registration_unknown",
            "x"]  # fmt: skip
FLOATS = st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0, 2.0, 4.5, 30.0, 1999.6]),
                   st.floats(-10, 1e5, allow_nan=False))  # fmt: skip
FIELDS = {
    "service": st.sampled_from(["voice", "voice", "sms", "data", "fax", None]),
    "record_kind": st.sampled_from(["cdr", "cdr", "xdr", "registration", None]),
    "outcome": st.sampled_from([*OUTCOMES, None]),
    "billsec_s": FLOATS,
    "cause_q850": st.sampled_from([16, 17, 31, 41, 127, None]),
    "partial_seq": st.sampled_from([1, 2, 3, None]),
    "pdd_ms": FLOATS,
    "sip_status": st.sampled_from([180, 200, 202, 302, 408, 480, 486, 503, 603, None]),
    "mos": st.one_of(st.none(), st.floats(1, 4.5)),
    "loss_ratio": st.one_of(st.none(), st.floats(0, 0.3)),
    "jitter_ms": st.one_of(st.none(), st.floats(0, 80)),
    "delay_ms": st.one_of(st.none(), st.floats(0, 400)),
    "src_match": st.sampled_from(["matched", "xdr_only", "cdr_only", None]),
    "leg": st.sampled_from(["orig", "term", None]),
    "duration_s": FLOATS,
    "closing_cause": st.sampled_from([0, 4, 16, None]),
    "rat": st.sampled_from(["geran", "utran", "eutran", "nr", "wlan", None]),
    "volume_up_bytes": st.one_of(st.none(), st.integers(0, 2**62)),
    "volume_down_bytes": st.one_of(st.none(), st.integers(0, 10**6)),
    "first_of_intent": st.sampled_from([True, False, None]),
}  # fmt: skip
ROW = st.fixed_dictionaries(FIELDS)
_LABEL_COLUMNS = ("service", "record_kind", "outcome", "src_match", "leg", "rat")
_INT_COLUMNS = {"cause_q850": "Int16", "partial_seq": "Int32", "sip_status": "Int16",
                "closing_cause": "Int16", "volume_up_bytes": "Int64",
                "volume_down_bytes": "Int64"}  # fmt: skip


def records_of(rows, strings, drop):
    cols = {k: [r[k] for r in rows] for k in FIELDS} if rows else {k: [] for k in FIELDS}
    out = {}
    for name, values in cols.items():
        if name in _LABEL_COLUMNS:
            if strings == "arrow":
                out[name] = pd.array(values, dtype=_S)
            elif strings == "object":
                out[name] = pd.Series(values, dtype=object)
            else:
                out[name] = pd.Categorical(values)
        elif name in _INT_COLUMNS:
            out[name] = pd.array(values, dtype=_INT_COLUMNS[name])
        elif name == "first_of_intent":
            out[name] = pd.array(values, dtype="boolean")
        else:
            out[name] = np.array([np.nan if v is None else v for v in values], dtype=float)
    frame = pd.DataFrame(out)
    return frame.drop(columns=[c for c in drop if c in frame.columns])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ROW, max_size=40), st.sampled_from(["arrow", "arrow", "object", "category"]),
       st.sets(st.sampled_from([*FIELDS, "none"]), max_size=4))  # fmt: skip
def test_contributions_equal_pandas_reference(rows, strings, drop):
    records = records_of(rows, strings, drop)
    got = formulas.contributions(records)
    pd.testing.assert_frame_equal(got, naive.contributions_pandas(records))
    np.testing.assert_array_equal(formulas.record_mos(records), naive.record_mos_pandas(records))
    inputs = formulas.counter_inputs(RecordColumns(records, formulas.LABELS))
    attempts, has_pdd = formulas.record_flags(inputs)
    np.testing.assert_array_equal(attempts, got["attempts"].to_numpy() > 0)
    np.testing.assert_array_equal(has_pdd, got["pdd_count"].to_numpy() > 0)
    # the fused pass sums exactly what the per-record counters sum, cell by cell
    rng = np.random.default_rng(len(rows))
    cells = rng.integers(-1, 4, size=(2, len(records)))
    n_cells = np.array([4, 4], dtype=np.int64)
    every = np.tile(np.arange(_kernels.N_COUNTERS, dtype=np.int64), (2, 1))
    n_every = np.full(2, _kernels.N_COUNTERS, dtype=np.int64)
    sums, count = _kernels.sum_counters(cells, n_cells, every, n_every, *inputs,
                                        *formulas.COUNTER_CONSTANTS)  # fmt: skip
    sums = sums.reshape(-1, _kernels.N_COUNTERS)
    block = got.to_numpy(dtype=np.int64).T
    for k in range(2):
        want, want_count = naive.sum_by_cell(cells[k], block, -1, np.zeros(0, np.int64), 4)
        np.testing.assert_array_equal(sums[4 * k : 4 * k + 4].T, want)
        np.testing.assert_array_equal(count[4 * k : 4 * k + 4], want_count)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ROW, max_size=40), st.lists(st.integers(0, 5), min_size=1, max_size=3),
       st.data())  # fmt: skip
def test_sum_counters_equals_naive(rows, sizes, data):
    """Each celling sums only its picked counters (any subset, any order, or all of them)."""
    records = records_of(rows, "arrow", ())
    inputs = formulas.counter_inputs(RecordColumns(records, formulas.LABELS))
    block = formulas.contributions(records).to_numpy(dtype=np.int64)
    n = len(records)
    n_cells = np.array(sizes, dtype=np.int64)
    cells = np.array([data.draw(st.lists(st.integers(-1, max(s - 1, -1)), min_size=n,
                                         max_size=n)) for s in sizes],
                     dtype=np.int64).reshape(len(sizes), n)  # fmt: skip
    every = list(range(_kernels.N_COUNTERS))
    picks = np.zeros((len(sizes), _kernels.N_COUNTERS), dtype=np.int64)
    n_picks = np.zeros(len(sizes), dtype=np.int64)
    for j in range(len(sizes)):
        chosen = data.draw(st.one_of(st.just(every), st.permutations(every).flatmap(
            lambda p: st.integers(0, len(p)).map(lambda k, p=p: p[:k]))))  # fmt: skip
        picks[j, : len(chosen)] = chosen
        n_picks[j] = len(chosen)
    got = _kernels.sum_counters(cells, n_cells, picks, n_picks, *inputs,
                                *formulas.COUNTER_CONSTANTS)  # fmt: skip
    want = naive.sum_counters(cells, n_cells, picks, n_picks, block)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_contributions_on_pipeline_records_equal_reference(pipeline_records):  # noqa: F811
    calls, _ = pipeline_records
    pd.testing.assert_frame_equal(formulas.contributions(calls),
                                  naive.contributions_pandas(calls))  # fmt: skip
    part = calls.iloc[123:4123]  # a slice: Arrow chunks with an offset
    pd.testing.assert_frame_equal(formulas.contributions(part), naive.contributions_pandas(part))


def test_a_value_outside_the_vocabulary_is_refused():
    cols = RecordColumns(pd.DataFrame({"service": pd.array(["voice"], dtype=_S)}),
                         {"service": ("voice",)})  # fmt: skip
    with pytest.raises(ValueError, match="vocabulary"):
        cols.is_in("service", {"sms"})


COUNTS = st.integers(0, 5)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")  # a null attempts count
@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries({c: COUNTS for c in formulas.COUNTERS}), max_size=30),
       st.booleans(), st.booleans())  # fmt: skip
def test_indicators_and_score_equal_pandas_reference(rows, with_quantiles, nulls):
    sums = pd.DataFrame(rows, columns=list(formulas.COUNTERS)).astype(np.int64)
    if nulls and len(sums):
        sums = sums.astype("Int64")
        sums.iloc[0, 0] = pd.NA
    if with_quantiles:
        sums["pdd_p50_ms"] = np.linspace(0, 9000, len(sums))
        sums["pdd_p95_ms"] = np.nan
    got = formulas.indicators(sums)
    pd.testing.assert_frame_equal(got, naive.indicators_pandas(sums))
    score, reason = formulas.experience_score(got)
    want_score, want_reason = naive.experience_score_pandas(got)
    pd.testing.assert_series_equal(score, want_score)
    pd.testing.assert_series_equal(reason, want_reason)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from([0.0, 1.0, 2.0, 7.5, 100.0]),
                          st.integers(1, 3)), max_size=40),
       st.lists(st.lists(st.integers(0, 6), max_size=3), min_size=6,
                max_size=6))  # fmt: skip
def test_grouped_quantiles_equal_numpy_quantile(entries, targets_of_row):
    entries = sorted(entries, key=lambda e: e[1])  # the kernel reads values in order
    row = np.array([e[0] for e in entries], dtype=np.int64)
    value = np.array([e[1] for e in entries], dtype=np.float64)
    count = np.array([e[2] for e in entries], dtype=np.int64)
    reps = np.array([len(t) for t in targets_of_row], dtype=np.int64)
    start = np.cumsum(reps) - reps
    target = np.array([t for ts in targets_of_row for t in ts], dtype=np.int64)
    qs = np.array([0.0, 0.5, 0.95, 1.0])
    got = _kernels.grouped_quantiles(row, value, count, start, reps, target, 7, qs)
    for t in range(7):
        # a row listing a target twice sends its values there twice
        mine = [np.repeat(v, c * targets_of_row[r].count(t)) for r, v, c in entries
                if t in targets_of_row[r]]  # fmt: skip
        values = np.concatenate(mine) if mine else np.zeros(0)
        for qi, q in enumerate(qs):
            want = np.quantile(values, q) if len(values) else np.nan
            np.testing.assert_array_equal(got[qi, t], want)


TEXT = st.sampled_from(["", "a", "ab", "abc", "voice", "voicemail", "vo", "é", None])


@settings(max_examples=100, deadline=None)
@given(st.lists(TEXT, max_size=30), st.lists(TEXT.filter(lambda v: v is not None), unique=True,
                                             max_size=5), st.integers(0, 3))  # fmt: skip
def test_match_labels_equals_string_equality(values, candidates, skip):
    arr = pa.array(values, pa.string()).slice(min(skip, len(values)))
    offsets, data, valid = buffers(arr)
    packed = [c.encode() for c in candidates]
    cand_offsets = np.cumsum([0, *(len(c) for c in packed)]).astype(np.int64)
    cand_data = np.frombuffer(b"".join(packed), dtype=np.uint8) if packed else np.zeros(0, np.uint8)
    got = _kernels.match_labels(offsets, data, valid, cand_offsets, cand_data)
    want = [candidates.index(v) if v in candidates else -1 for v in arr.to_pylist()]
    assert got.tolist() == want


@settings(max_examples=100, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=30), st.data(),
       st.lists(TEXT.filter(lambda v: v is not None), unique=True, max_size=5))  # fmt: skip
def test_labels_and_codes_at_rows_equal_string_equality(values, data, candidates):
    # the few-rows forms (no take of the strings first): the label index of each row given and
    # the first-appearance codes of the values there (a null a value of its own)
    from cemkit.correlate import _hash
    from cemkit.labels import label_codes

    arr = pa.array(values, pa.string())
    rows = np.array(data.draw(st.lists(st.integers(0, len(values) - 1), max_size=40)), np.int64)
    got = label_codes(pd.arrays.ArrowStringArray(arr), tuple(candidates), rows=rows)
    want = [candidates.index(values[r]) if values[r] in candidates else -1 for r in rows]
    assert got.tolist() == want
    assert label_codes(pd.Categorical(values), tuple(candidates), rows=rows).tolist() == want
    codes, k = _hash.codes_at(*buffers(arr), rows)
    want_codes, want_k = naive.codes_at(values, rows)
    assert codes.tolist() == want_codes.tolist() and k == want_k


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["i1", "i2", "i22", "", "x:1", None]),
                          st.one_of(st.none(), st.integers(-5, 5)), st.booleans()), max_size=30),
       st.booleans())  # fmt: skip
def test_first_start_by_string_equals_naive(rows, all_rows):
    keys = pa.array([r[0] for r in rows], pa.string())
    time = np.array([naive.NULL if r[1] is None else r[1] for r in rows], dtype=np.int64)
    use = np.array([r[2] for r in rows], dtype=bool)
    codes, uniques = pd.factorize(pd.Series([r[0] for r in rows], dtype=object))
    first = naive.first_start(codes.astype(np.int64), time, use, len(uniques))
    want = np.where(codes >= 0, first[np.maximum(codes, 0)] if len(uniques) else naive.NULL,
                    naive.NULL)  # fmt: skip
    if not all_rows:
        want = np.where(use, want, naive.NULL)
    got = _kernels.first_start_by_string(*buffers(keys), time, use, all_rows)
    np.testing.assert_array_equal(got, want)


NUMBERED = st.one_of(
    st.integers(0, 10**19).map(str),
    st.sampled_from(["", "x", "01", "synth:", "0"]),
    st.tuples(st.sampled_from(["synth:", "s:", "synth:0", "a1b", ""]),
              st.integers(0, 10**6)).map(lambda p: f"{p[0]}{p[1]}"),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), NUMBERED), max_size=30))
def test_numbered_strings_equal_naive(values):
    got, ok = _kernels.numbered_strings(*buffers(pa.array(values, pa.string())))
    want, want_ok = naive.numbered_strings(values)
    assert ok == want_ok
    if ok:
        np.testing.assert_array_equal(got, want)


INTENT_ROWS = st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 40)),
                                 st.one_of(st.none(), st.integers(0, 20)), st.booleans()),
                       max_size=30)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(INTENT_ROWS, st.sampled_from(["numbered", "strings", "Int64", "int64", "sparse"]),
       st.booleans())  # fmt: skip
def test_first_of_intent_equals_naive(rows, form, attempts_only):
    """Every form of intent id (numbered strings, other strings, integers, sparse integers)."""
    from cemkit.kqi.rollup import _first_of_intent

    if form == "int64":
        rows = [(0 if k is None else k, t, a) for k, t, a in rows]
    ids = [None if k is None else
           {"numbered": f"synth:{k}", "strings": f"id-{k}x", "sparse": k * 10**12}.get(form, k)
           for k, _, _ in rows]  # fmt: skip
    dtype = {"numbered": _S, "strings": _S, "Int64": "Int64", "sparse": "Int64", "int64": "int64"}
    frame = pd.DataFrame({formulas.INTENT_COLUMN: pd.array(ids, dtype=dtype[form])})
    step = 10**9
    time = np.array([naive.NULL if t is None else t * step for _, t, _ in rows], dtype=np.int64)
    attempts = np.array([a for _, _, a in rows], dtype=bool)
    got = _first_of_intent(frame, attempts, time, attempts_only=attempts_only)
    want = naive.first_of_intent(ids, time, attempts, int(formulas.SAME_ATTEMPT_WINDOW_S * 1e9))
    if attempts_only:  # only the attempts' flags are asked for (the others are True)
        got, want = got[attempts], want[attempts]
    np.testing.assert_array_equal(got, want)
