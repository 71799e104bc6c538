"""The Dask shuffle of the correlators spreads keys evenly over the partitions.

``tag_and_shuffle`` used to store ``hash % n`` as the bucket and let Dask hash that bucket
again: with only ``n`` distinct buckets re-hashed modulo ``n``, partition sizes came out
[0, 1/3, 2/3] for n = 3 and 58 of 160 partitions were empty. Each test here fails on that code.
"""

from __future__ import annotations

import dask
import dask.dataframe as dd
import naive
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit import schema
from cemkit.correlate import _frames


@pytest.fixture(scope="module")
def records(small_world):
    out, _ = small_world
    return schema.conform(pd.read_parquet(out / "records"))


def partition_sizes(ddf, bucket_of, n):
    shuffled = _frames.tag_and_shuffle(ddf, bucket_of, n)
    with dask.config.set(scheduler="sync"):
        return np.asarray(shuffled.map_partitions(len).compute(), dtype=np.int64)


@pytest.mark.parametrize("n", [3, 8, 160])
def test_parties_shuffle_is_balanced(records, n):
    ddf = dd.from_pandas(records, npartitions=4)
    sizes = partition_sizes(ddf, _frames.parties_key, n)
    assert sizes.sum() == len(records)
    assert (sizes > 0).all(), f"empty partitions: {int((sizes == 0).sum())} of {n}"
    # distinct (a, b) pairs of the world number in the thousands: a fair hash keeps the
    # largest partition near the mean (bound loose enough for 160 partitions of ~125 rows)
    assert sizes.max() / sizes.mean() < 1.6, sizes


def test_equal_keys_meet_in_one_partition(records):
    """Two frames shuffled to the same count put each key in the same partition of both."""
    n = 8
    left = dd.from_pandas(records.iloc[::2], npartitions=3)
    right = dd.from_pandas(records.iloc[1::2], npartitions=5)

    def where(ddf):
        shuffled = _frames.tag_and_shuffle(ddf, _frames.parties_key, n)

        def label(df, partition_info=None):
            return pd.DataFrame(
                {"a": df["a_number"].astype(object), "b": df["b_number"].astype(object),
                 "p": int(partition_info["number"])}
            )  # fmt: skip

        meta = pd.DataFrame({"a": pd.Series([], dtype=object), "b": pd.Series([], dtype=object),
                             "p": pd.Series([], dtype="int64")})  # fmt: skip
        with dask.config.set(scheduler="sync"):
            got = shuffled.map_partitions(label, meta=meta).compute()
        return got.drop_duplicates().set_index(["a", "b"])["p"]

    lp, rp = where(left), where(right)
    assert not lp.index.has_duplicates and not rp.index.has_duplicates
    both = lp.index.intersection(rp.index)
    assert len(both) > 100
    assert (lp.loc[both].to_numpy() == rp.loc[both].to_numpy()).all()


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3).flatmap(lambda k: st.lists(
    st.tuples(*[st.one_of(st.none(), st.text(max_size=12))] * k), max_size=30)))  # fmt: skip
def test_bucket_hash_equals_the_reference(rows):
    """The jitted hash of the shuffle's key columns equals FNV-1a/splitmix64 in Python ints."""
    k = len(rows[0]) if rows else 1
    columns = [[r[j] for r in rows] for j in range(k)]
    frame = pd.DataFrame({f"k{j}": pd.array(c, dtype="string[pyarrow]")
                          for j, c in enumerate(columns)})  # fmt: skip
    got = _frames.bucket_hash(frame)
    assert got.dtype == np.uint64
    assert got.tolist() == naive.bucket_hash(columns)


def test_bucket_hash_of_other_dtypes_hashes_their_text(records):
    """Non-string keys hash as their text; slices and chunked columns as their values."""
    ids = pd.Series([3, 14, None], dtype="Int64")
    assert _frames.bucket_hash(ids).tolist() == naive.bucket_hash([["3", "14", None]])
    parties = records[["a_number", "b_number"]]
    whole = _frames.bucket_hash(parties)
    tail = _frames.bucket_hash(parties.iloc[100:])
    assert (tail == whole[100:]).all()


def _stitch_text(ref, a, b):
    """The text stitch's bucket hashes (as built before, one string per row)."""
    return "c" + ref if ref is not None else "p" + (a or "") + "\x1f" + (b or "")


_maybe_text = st.one_of(st.none(), st.text(max_size=10))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_maybe_text, _maybe_text, _maybe_text), max_size=30),
       st.sampled_from(["string[pyarrow]", "large"]))  # fmt: skip
def test_stitch_bucket_equals_the_hash_of_its_text(rows, storage):
    """Stitch's bucket, hashed over the pieces, equals the reference hash of the built text."""
    from cemkit.correlate.stitch import _stitch_bucket

    def column(values):
        if storage == "large":
            return pd.Series(pd.arrays.ArrowStringArray(pa.array(values, pa.large_string())))
        return pd.Series(pd.array(values, dtype="string[pyarrow]"))

    frame = pd.DataFrame({c: column([r[j] for r in rows])
                          for j, c in enumerate(["call_id", "a_number", "b_number"])})  # fmt: skip
    got = _stitch_bucket(frame)
    assert got.dtype == np.uint64
    assert _frames.bucket_hash(got) is got  # a hash is taken as it is
    assert got.tolist() == naive.bucket_hash([[_stitch_text(*r) for r in rows]])


def test_stitch_bucket_on_the_real_records(records):
    """On the pipeline's records (sliced too): the reference hash of the text, row by row."""
    from cemkit.correlate.stitch import _stitch_bucket

    part = records.iloc[37:2000].copy()
    # the world's records all carry a call reference: every third one without, for the parties
    part.loc[part.index[::3], "call_id"] = None
    cols = [part[c].astype(object).where(part[c].notna(), None).tolist()
            for c in ("call_id", "a_number", "b_number")]  # fmt: skip
    text = [_stitch_text(*r) for r in zip(*cols, strict=True)]
    assert _stitch_bucket(part).tolist() == naive.bucket_hash([text])
    assert any(t.startswith("p") for t in text) and any(t.startswith("c") for t in text)


@pytest.mark.parametrize("n", [3, 8])
def test_stitch_shuffle_is_balanced(records, n):
    from cemkit.correlate.stitch import _stitch_bucket

    sizes = partition_sizes(dd.from_pandas(records, npartitions=4), _stitch_bucket, n)
    assert sizes.sum() == len(records)
    assert (sizes > 0).all() and sizes.max() / sizes.mean() < 1.3, sizes
