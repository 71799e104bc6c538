"""The real-time path: a warm BatchProcessor gives, batch after batch, what the batch path gives.

Records come from the real pipeline over a small synthetic world (synth → Parquet → `cemkit.run`
with the sync scheduler, one partition) and the same canonical records given to a warm
:class:`cemkit.BatchProcessor`: the records (byte for byte, as the runner writes a part) and
every KQI of the bucket must be the same, on the first call and on the warm calls after it.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from realtime_helpers import alerting_model, one_part_world

import cemkit
from cemkit import schema
from cemkit.correlate import _frames
from cemkit.runs import read_records, write_part

KEY = "7f3a9c2e5b8d1f4a6c0e3b7d9a2f5c8e1b4d7a0c3f6e9b2d5a8c1f4e7b0a3d6c"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("rtworld")
    source = one_part_world(out, seed=17)
    mp = pytest.MonkeyPatch()
    mp.setenv("CEMKIT_KEY", KEY)
    run = cemkit.run(source, format="parquet", model=out / "model.yaml",
                     out=out / "run", scheduler="sync", freqs=("15min",))  # fmt: skip
    records = schema.conform(pd.read_parquet(source))
    yield out, run, records
    mp.undo()


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _kqi(table: pd.DataFrame) -> pd.DataFrame:
    keys = ["freq", "object_kind", "object", "bucket"]
    return table.sort_values(keys).reset_index(drop=True)


def test_warm_batches_equal_the_batch_path(world, tmp_path):
    out, run, records = world
    recs = run_records = read_records(run.out).compute()
    # the world exercises every correlation step: stitched partials, paired legs, matched xDRs
    assert (recs["src_partials"] > 1).any() and recs["src_paired"].any()
    assert (recs["src_match"] == "matched").any() and (recs["src_attempt"] > 1).any()
    proc = cemkit.BatchProcessor("default", model=out / "model.yaml")
    proc(records.iloc[: len(records) // 3].reset_index(drop=True))  # warm on another batch
    (run_part,) = sorted((run.out / "records").glob("*.parquet"))
    for i in range(2):  # warm calls, same answer
        batch = proc(records)
        # the column arrays are the records; the frame is built once, when first read
        arrays = batch.columns.frame()
        assert batch.records is batch.records
        pd.testing.assert_frame_equal(arrays, batch.records)
        (tmp_path / str(i)).mkdir()
        info = write_part(batch.records, tmp_path / str(i), 0)
        assert info["sha256"] == _sha(run_part), f"call {i}: records differ from cemkit.run's"
        back = pd.read_parquet(tmp_path / str(i) / "part-00000.parquet")
        pd.testing.assert_frame_equal(back, pd.read_parquet(run_part))
        pd.testing.assert_frame_equal(_kqi(batch.kqi), _kqi(run.kqi), check_dtype=False)
        pd.testing.assert_frame_equal(batch.alerts, run.alerts)
        assert set(batch.timings_ms) == {"protect", "correlate", "kqi", "alerts"}
    assert len(run_records) == len(batch.records)


def test_warm_batches_raise_the_alerts_of_the_batch_path(world, tmp_path):
    # the world's own thresholds raise nothing on 4,000 records: absolute ones that do, so the
    # alerts of the real-time path are compared with cemkit.run's on alerts that exist
    out, _, records = world
    model = alerting_model(out / "model.yaml", tmp_path / "model.yaml")
    run = cemkit.run(out / "one" / "records.parquet", format="parquet", model=model,
                     out=tmp_path / "run", scheduler="sync", freqs=("15min",))  # fmt: skip
    assert len(run.alerts) >= 2 and run.alerts["severity"].nunique() == 2
    proc = cemkit.BatchProcessor("default", model=model)
    proc(records.iloc[: len(records) // 3].reset_index(drop=True))  # warm on another batch
    for _ in range(2):
        batch = proc(records)
        pd.testing.assert_frame_equal(batch.alerts, run.alerts)
        pd.testing.assert_frame_equal(_kqi(batch.kqi), _kqi(run.kqi), check_dtype=False)


def test_batch_records_equal_the_one_by_one_correlators(world):
    # the array-level stitch / correlate_calls / signaling fill against main's correlators run
    # one after the other on frames (tests/naive.py), on the same protected records
    import naive

    out, _, records = world
    proc = cemkit.BatchProcessor("default", model=out / "model.yaml")
    got = proc(records).records
    protected = cemkit.protect(records, "default")
    want = naive.ref_correlate(protected)
    pd.testing.assert_frame_equal(got, want)


def test_warm_protector_equals_protect(world):
    from cemkit.privacy.engine import Protector

    _, _, records = world
    want = cemkit.protect(records, "default")
    for threads in (1, 2):  # 2: the HMACs of the batch's dictionary split over two threads
        protector = Protector("default", threads=threads)
        for _ in range(2):
            got = protector(records)
            pd.testing.assert_frame_equal(got, want)
            assert got.attrs == want.attrs
            # the real-time path's column arrays: the same columns, dtypes and values
            cols = protector.columns(records)
            pd.testing.assert_frame_equal(cols.frame(), want)
            assert list(cols.columns) == list(want.columns) and len(cols) == len(want)
            # protect's codes of the tokenized columns: equal codes exactly where equal tokens
            assert {"a_number", "b_number", "call_id"} <= set(cols.codes)
            for c, codes in cols.codes.items():
                by_token = pd.factorize(want[c], use_na_sentinel=True)[0]
                by_code = pd.factorize(np.where(codes < 0, np.nan, codes))[0]
                np.testing.assert_array_equal(by_code, by_token)
    # copy-on-write holds: changing the protected frame leaves the caller's records alone
    before = records["duration_s"].copy()
    got.loc[got.index[0], "duration_s"] = -1.0
    pd.testing.assert_series_equal(records["duration_s"], before)


def test_columns_give_the_frames_series(world):
    # the real-time path's column arrays: each column as the frame gives it, and the frame again
    from cemkit.columnar import Columns

    _, _, records = world
    cols = Columns.of(records)
    assert list(cols.columns) == list(records.columns) and len(cols) == len(records)
    for c in records.columns:
        pd.testing.assert_series_equal(cols[c], records[c])
        assert cols[c] is cols[c]  # made once
    pd.testing.assert_frame_equal(cols.frame(), records)
    assert cols.attrs == {} and "a_number" in cols and "nope" not in cols


def test_batch_records_share_no_memory_with_the_input(world):
    out, _, records = world
    proc = cemkit.BatchProcessor("default", model=out / "model.yaml")
    mine = records.copy()
    res = proc(mine)
    res.records.loc[res.records.index[0], "duration_s"] = -5.0
    res.records.loc[res.records.index[0], "mos"] = -5.0
    pd.testing.assert_frame_equal(mine, records)
    # and the other way: the records are gathered when read (from the protected arrays, the
    # keep columns the caller's own), yet a change to the caller's frame made before they are
    # read leaves them as the call saw the frame
    want = proc(records).records
    later = proc(mine)
    mine.loc[:, "pdd_ms"] = -7.0  # also the source of src_term_pdd_ms, src_xdr_pdd_ms
    mine.loc[mine.index[:50], "duration_s"] = -7.0
    mine.loc[mine.index[:50], "outcome"] = "changed"
    mine.iloc[:50, mine.columns.get_loc("start")] = pd.Timestamp("2000-01-01", tz="UTC")
    pd.testing.assert_frame_equal(later.records, want)


def test_hmac_words_on_threads_equal_hmac_digest():
    from cemkit.privacy._hmac import THREAD_MIN_VALUES, hmac_words

    key = bytes(range(32))
    values = [f"+4420{i:07d}" for i in range(THREAD_MIN_VALUES + 37)] + ["", "x" * 130]
    arr = pa.array(values, pa.large_string()).slice(3)  # an offset into the buffers too
    one, two = hmac_words(arr, key), hmac_words(arr, key, threads=2)
    np.testing.assert_array_equal(one, two)
    want = [hmac.digest(key, v.encode(), hashlib.sha256) for v in values[3:]]
    assert [w.astype(">u4").tobytes() for w in two] == want


def test_a_batch_hashes_its_dictionary_on_the_calling_thread(world, monkeypatch):
    # a 4,000-record batch's dictionary (up to 12,000 values: caller, callee, call id) is hashed
    # on the calling thread even when the protector may use two: handing half of it to the pool
    # and waiting for it was slower than hashing it all on a 2-core machine
    from cemkit.correlate import _kernels
    from cemkit.privacy._hmac import hmac_words
    from cemkit.privacy.engine import Protector

    def no_pool(threads):
        raise AssertionError(f"a batch's HMACs handed to a pool of {threads} threads")

    _, _, records = world
    protector = Protector("default", threads=2)
    want = protector(records)  # (before the pool is refused: the frame path may use it)
    monkeypatch.setattr(_kernels, "_pool", no_pool)
    pd.testing.assert_frame_equal(protector.columns(records).frame(), want)
    # the most three columns of 4,000 rows can hold (a 4,000-record batch of the 1M benchmark
    # world holds ~8,100-8,400, which the old threshold of 8,192 split)
    most = pa.array([f"+4420{i:07d}" for i in range(12_000)], pa.large_string())
    key = bytes(range(32))
    np.testing.assert_array_equal(hmac_words(most, key, threads=2), hmac_words(most, key))


_floats = st.one_of(st.none(), st.floats(allow_nan=False, width=64))
_small = st.one_of(st.none(), st.integers(-(2**15), 2**15 - 1))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_floats, _floats, _small, _small), max_size=30))
def test_fill_nulls_equals_fillna(rows):
    # what with_signaling did on main: Series.fillna of the other column cast to the dtype
    a = pd.Series([r[0] for r in rows], dtype="float64")
    b = pd.Series([r[1] for r in rows], dtype="float64")
    got = _frames.fill_nulls(a.array, b.array)
    pd.testing.assert_series_equal(pd.Series(got), a.fillna(b.astype(a.dtype)))
    ia = pd.Series([r[2] for r in rows], dtype="Int16")
    ib = pd.Series([r[3] for r in rows], dtype="Int16")
    got = _frames.fill_nulls(ia.array, ib.array)
    pd.testing.assert_series_equal(pd.Series(got), ia.fillna(ib.astype(ia.dtype)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["cdr", "xdr", "", "orig"])), max_size=40),
       st.data())  # fmt: skip
def test_column_arrays_select_take_equal_pandas(values, data):
    import naive

    n = len(values)
    df = pd.DataFrame({
        "s": pd.array(values, dtype="string[pyarrow]"),
        "f": np.arange(n, dtype="float64"),
        "i": pd.array(range(n), dtype="Int16"),
        "t": pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
        "b": np.arange(n) % 2 == 0,
    })  # fmt: skip
    arrays = _frames.column_arrays(df)
    assert list(arrays) == list(df.columns)
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    got = pd.DataFrame(_frames.select_arrays(arrays, keep), index=df.index[keep])
    pd.testing.assert_frame_equal(got, df[keep])
    idx = np.array(data.draw(st.lists(st.integers(-1, max(n - 1, -1)), max_size=20)), np.int64)
    if n == 0:
        idx = np.full(idx.size, -1, np.int64)
    for c in df.columns:
        for missing in (False, True):
            got_c = _frames.take_array(arrays[c], idx, as_if_missing=missing)
            want = naive.ref_take(df[c], idx, pd.RangeIndex(idx.size), as_if_missing=missing)
            pd.testing.assert_series_equal(pd.Series(got_c, name=c, dtype=want.dtype), want)
            via = _frames.take(df[c], idx, pd.RangeIndex(idx.size), as_if_missing=missing)
            pd.testing.assert_series_equal(via, want)
    assert (_frames.equals(df["s"], "cdr") == _frames.as_bool(df["s"] == "cdr")).all()


def _mixed_frame(rows: list, wide: bool = True) -> pd.DataFrame:
    """Columns of every kind a batch carries (strings, floats, nullable ints, times, booleans)."""
    n = len(rows)
    cols = {
        "s": pd.array([r[0] for r in rows], dtype="string[pyarrow]"),
        "s2": pd.array([r[0] and r[0] + "x" for r in rows], dtype="string[pyarrow]"),
        "f": pd.array([r[2] for r in rows], dtype="float64"),
        "f2": np.arange(n, dtype="float64"),
        "i": pd.array([r[1] for r in rows], dtype="Int16"),
        "i2": pd.array([None if r[1] is None else r[1] // 2 for r in rows], dtype="Int16"),
        "n": np.arange(n, dtype="int64"),
        "t": pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
        "b": pd.array([r[1] is None for r in rows], dtype="boolean"),
        "o": np.arange(n) % 2 == 0,
    }
    if not wide:
        del cols["f2"], cols["i2"]
    return pd.DataFrame(cols)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.sampled_from(["cdr", "", "orig"])), _small,
                          _floats), max_size=30), st.data())  # fmt: skip
def test_block_gathers_equal_the_column_gathers(rows, data):
    # the micro-batch's one gather per dtype against select_arrays / take_array per column
    from cemkit.columnar import gather_blocks as _gather_blocks

    n = len(rows)
    df = _mixed_frame(rows)
    arrays = _frames.column_arrays(df)
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    got = _gather_blocks(arrays, list(arrays), np.flatnonzero(keep), missing=False)
    want = _frames.select_arrays(arrays, keep)
    pd.testing.assert_frame_equal(pd.DataFrame(got), pd.DataFrame(want))
    idx = np.array(data.draw(st.lists(st.integers(-1, max(n - 1, -1)), max_size=20)), np.int64)
    if n == 0:
        idx = np.full(idx.size, -1, np.int64)
    got = _gather_blocks(arrays, list(arrays), idx, missing=True)
    for c in df.columns:
        want_c = _frames.take_array(arrays[c], idx, as_if_missing=True)
        pd.testing.assert_series_equal(pd.Series(got[c]), pd.Series(want_c), check_names=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.sampled_from(["cdr", "", "orig"])), _small,
                          _floats), min_size=1, max_size=30), st.data())  # fmt: skip
def test_pending_columns_equal_the_gathers_one_after_the_other(rows, data):
    # columns left pending by a selection, then by a take with missing rows (what stitch and
    # correlate_calls do in turn), gathered when read, one at a time or all at once, against
    # the two gathers done one after the other
    from cemkit.columnar import Columns

    n = len(rows)
    df = _mixed_frame(rows, wide=False)
    arrays = _frames.column_arrays(df)
    keep = np.flatnonzero(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    m = keep.size
    idx = np.array(data.draw(st.lists(st.integers(-1, m - 1), max_size=20)), np.int64)
    first = Columns(Columns.of(df).pending(list(df.columns), keep), pd.RangeIndex(m))
    second = Columns(first.pending(list(df.columns), idx, missing=True), pd.RangeIndex(idx.size))
    one_by_one = {c: _frames.take_array(arrays[c].take(keep) if m else arrays[c][:0], idx,
                                        as_if_missing=True) for c in df.columns}  # fmt: skip
    want = pd.DataFrame(one_by_one)
    read_first = data.draw(st.sampled_from(list(df.columns)))
    pd.testing.assert_series_equal(second[read_first], want[read_first], check_names=False)
    second.gather(["f", "i", "s"])
    pd.testing.assert_frame_equal(second.frame(), want)
    assert all(a is not arrays[c] for c, a in second.arrays.items())  # gathered: new arrays


def test_frame_of_blocks_equals_the_concatenated_frames(world):
    # the KQI table's one block manager against a frame per block concatenated (what the table
    # was built as), on the KQI table of real records; the fast constructor is the one in use
    from cemkit import columnar

    _, run, _ = world
    table = run.kqi
    assert columnar._frame_of_blocks is columnar._internal_frame
    ints = table.select_dtypes("int64")
    floats = table.select_dtypes("float64")
    keys = [table[c].array for c in table.columns[:5]]
    names = [*table.columns[:5], *ints.columns, *floats.columns]
    got = columnar.frame_of_blocks([*keys, ints.to_numpy().T.copy(), floats.to_numpy().T.copy()],
                                   names)  # fmt: skip
    key_frame = pd.DataFrame({c: a for c, a in zip(names, keys, strict=False)})
    want = pd.concat([key_frame, ints.reset_index(drop=True), floats.reset_index(drop=True)],
                     axis=1)  # fmt: skip
    pd.testing.assert_frame_equal(got, want)
    pd.testing.assert_index_equal(got.columns, want.columns, exact=True)
    pd.testing.assert_frame_equal(got, table[names].reset_index(drop=True))
    blocks = [*keys, ints.to_numpy().T, floats.to_numpy().T]
    pd.testing.assert_frame_equal(columnar._public_frame(blocks, pd.Index(names)), want)


# measurements (durations, bytes, levels): finite and far from overflow (pandas' compensated
# sum of two values near the float maximum gives NaN where a plain sum gives inf)
_values = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300),
    st.sampled_from([1e16, -1e16, 1.0, 0.1, 3.0, -0.0, 1e-300]),
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            _values,
            st.one_of(st.none(), st.integers(-5, 2**40)),
            st.one_of(st.none(), st.integers(0, 10**6)),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_partial_reductions_equal_their_definitions(rows):
    # a call's partials reduced column by column in one linear pass: datetimes' min / max and
    # Int64 sums as pandas' groupby gives them; float64 sums and means the Kahan sum in row
    # order (tests/naive.py), whatever the rows' order (pandas 3.1's groupby sums sorted groups
    # without nulls pairwise: its last bit depended on the order, and so did the old results)
    import naive

    stitch_module = __import__("cemkit.correlate.stitch", fromlist=["_Partials"])
    n = len(rows)
    group = np.array([g for g, *_ in rows], np.int64)
    sizes = np.bincount(group, minlength=4)
    records = pd.DataFrame({
        "mos": pd.array([v for _, v, _, _ in rows], dtype="float64"),
        "duration_s": pd.array([v for _, v, _, _ in rows], dtype="float64"),
        "volume_up_bytes": pd.array([i for _, _, i, _ in rows], dtype="Int64"),
        "start": pd.to_datetime([t for *_, t in rows], unit="s", utc=True),
    })  # fmt: skip
    multi = sizes > 1
    if not multi.any():
        return
    many = stitch_module._Partials(group, multi)
    first = np.array([np.flatnonzero(group == g)[0] if sizes[g] else 0 for g in range(4)])
    like = {c: records[c].array.take(first) for c in records.columns}
    got = many.reduce_columns(records, [("mos", "mean"), ("duration_s", "sum")], like)
    totals, counts = naive.kahan_sums(records["mos"].to_numpy(), many.rows, many.sub,
                                      many.groups.size)  # fmt: skip
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)
    sums = np.where(counts > 0, totals, np.nan)
    for c, want in (("mos", means), ("duration_s", sums)):
        expected = like[c].copy()
        expected[many.groups] = want
        np.testing.assert_array_equal(got[c], expected)
    small = records.iloc[many.rows].reset_index(drop=True)
    by = small.groupby(many.sub, sort=True)
    for c, agg in [("volume_up_bytes", "sum"), ("start", "min"), ("start", "max")]:
        value = many.reduce_columns(records, [(c, agg)], like)[c]
        r = getattr(by[c], agg)()
        if agg == "sum":
            r = r.where(by[c].count() > 0)  # pandas sums an all-null group to 0
        expected = like[c].copy()
        expected[many.groups] = pd.Series(r.array).astype(records[c].dtype).array
        pd.testing.assert_extension_array_equal(pd.array(value), pd.array(expected))
    assert n == len(records)


def test_warm_processor_freezes_the_collector_once_per_load(world, tmp_path, monkeypatch):
    # gc.freeze after the first call: the objects alive then are out of every later collection
    # (a full collection of a warm process walked ~220K objects); a reload freezes again
    import gc

    out, _, records = world
    gc.unfreeze()
    try:
        proc = cemkit.BatchProcessor("default", model=out / "model.yaml")
        first = proc(records)
        assert gc.get_freeze_count() > 0
        gc.unfreeze()
        lean = cemkit.BatchProcessor("default", model=out / "model.yaml", freeze_gc=False)
        pd.testing.assert_frame_equal(lean(records).records, first.records)
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
    freezes = []
    monkeypatch.setattr(gc, "freeze", lambda: freezes.append(1))
    model = tmp_path / "model.yaml"
    model.write_text((out / "model.yaml").read_text())
    proc = cemkit.BatchProcessor("default", model=model)
    for _ in range(3):
        proc(records)
    assert len(freezes) == 1  # once warm, not on every call
    model.write_text(model.read_text() + "\n# changed\n")  # size changes: reloaded
    proc(records)
    proc(records)
    assert proc.reloads == 3 and len(freezes) == 2


def test_warm_processor_still_conforms_a_frame_of_other_dtypes(world):
    # the canonical dtypes seen last are remembered by identity; a frame with others after them
    # (nullable ints read back as float, as pd.read_parquet gives them) is still conformed
    out, _, records = world
    proc = cemkit.BatchProcessor("default", model=out / "model.yaml")
    want = proc(records).records
    assert proc(records).records.equals(want)
    floats = records.astype({"cause_q850": "float64", "partial_seq": "float64"})
    assert not schema.conformed(floats)
    pd.testing.assert_frame_equal(proc(floats).records, want)
    pd.testing.assert_frame_equal(proc(records).records, want)


def test_column_arrays_by_block_equal_the_frames_columns(world):
    # the block walk of column_arrays against pandas' own per-column arrays, on the records of
    # the real pipeline (many blocks, some 2-D) and on a slice of them; it is the one in use
    from cemkit import columnar

    _, run, records = world
    assert columnar._arrays_of is columnar._arrays_by_block
    for frame in (records, records.iloc[100:900], run.kqi, records.assign(extra=1.5)):
        got = columnar.column_arrays(frame)
        want = dict(zip(frame.columns, frame._iter_column_arrays(), strict=True))
        assert list(got) == list(want)
        for c, a in got.items():
            assert type(a) is type(want[c]) and a.dtype == want[c].dtype
            pd.testing.assert_extension_array_equal(pd.array(a), pd.array(want[c]))
            pd.testing.assert_series_equal(pd.Series(a, name=c, index=frame.index), frame[c])
