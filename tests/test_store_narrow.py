"""Part files written narrow (issue 15): dictionary-encoded low-cardinality strings, zstd,
and readers get the very same values and dtypes back."""

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cemkit.io.api import plan as load_plan
from cemkit.privacy import protect
from cemkit.privacy.keys import Key
from cemkit.runs import store

KEY = Key.from_material(bytes(range(32)), key_id="cemkit-default-2026")


def _protected(world):
    files = [str(p) for p in sorted((world / "records").glob("*.parquet"))]
    the_plan = load_plan(files, format="parquet")
    records = pd.concat([the_plan.loader.read_part(p)[0] for p in the_plan.parts],
                        ignore_index=True)  # fmt: skip
    return protect(records, "default", key=KEY)


def test_protected_records_round_trip_narrow(small_world, tmp_path):
    df = _protected(small_world[0])
    marker = {b"cemkit_protected": b'{"policy": "default"}'}
    schema = pa.Schema.from_pandas(df, preserve_index=False).with_metadata(marker)
    written = store.write_part(df, tmp_path, 3, schema)
    path = tmp_path / written["file"]
    assert written == {"file": "part-00003.parquet", "rows": len(df),
                       "sha256": store.sha256_of(path)}  # fmt: skip

    back = store.read_part(str(path))
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert dict(back.dtypes) == dict(df.dtypes)
    assert pq.read_schema(path).metadata[b"cemkit_protected"] == marker[b"cemkit_protected"]
    lazy = store.read_parts([str(path)]).compute()  # the Dask reader: same frame, same meta
    pd.testing.assert_frame_equal(lazy.reset_index(drop=True), df)

    meta = pq.ParquetFile(path).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    chunks = {n: meta.row_group(0).column(i) for i, n in enumerate(names)}
    assert all(c.compression == "ZSTD" for c in chunks.values())
    assert "RLE_DICTIONARY" in chunks["node"].encodings
    assert "RLE_DICTIONARY" in chunks["outcome"].encodings
    # random tokens carry no min/max statistics (they would be as long as the tokens, useless)
    assert not chunks["call_id"].is_stats_set
    assert chunks["start"].is_stats_set
    # Parquet's dictionary is not tried where every value differs (it would fill its page and
    # fall back after hashing them all); numbers that repeat keep it
    for name in ("record_id", "call_id", "a_number", "start", "end"):
        assert not chunks[name].has_dictionary_page, name
    assert chunks["duration_s"].has_dictionary_page


def test_columns_parquet_cannot_type_keep_the_arrow_schema(tmp_path):
    df = pd.DataFrame({"wait": pd.to_timedelta([1, 2], unit="s"), "kind": ["a", "a"]})
    df["kind"] = df["kind"].astype("string[pyarrow]")
    written = store.write_part(df, tmp_path)
    back = store.read_part(str(tmp_path / written["file"]))
    assert back["wait"].dtype == df["wait"].dtype and back["wait"].tolist() == df["wait"].tolist()
    assert back["kind"].dtype == df["kind"].dtype


def test_empty_and_all_null_frames_round_trip(tmp_path):
    df = pd.DataFrame({"a": pd.Series([], dtype="string[pyarrow]"),
                       "n": pd.Series([], dtype="Int64")})  # fmt: skip
    back = store.read_part(str(tmp_path / store.write_part(df, tmp_path)["file"]))
    assert dict(back.dtypes) == dict(df.dtypes) and len(back) == 0
    nulls = pd.DataFrame({"a": pd.Series([None] * 3, dtype="string[pyarrow]")})
    back = store.read_part(str(tmp_path / store.write_part(nulls, tmp_path, 1)["file"]))
    assert back["a"].isna().all() and back["a"].dtype == nulls["a"].dtype


def test_token_columns_stored_as_bits_read_back_as_the_strings(small_world, tmp_path, monkeypatch):
    from cemkit.privacy import tokens

    monkeypatch.setattr(store, "TOKEN_BITS", True)
    df = _protected(small_world[0])
    marker = {b"cemkit_protected": b'{"policy": "default"}'}
    schema = pa.Schema.from_pandas(df, preserve_index=False).with_metadata(marker)
    # a second part whose call_id is partly not a token: stored as strings there
    other = df.iloc[:50].copy()
    other.loc[other.index[0], "call_id"] = "not-a-token"
    paths = [tmp_path / store.write_part(df, tmp_path, 0, schema)["file"],
             tmp_path / store.write_part(other, tmp_path, 1, schema)["file"]]  # fmt: skip

    stored = pq.read_schema(paths[0])
    names = {"a_number", "b_number", "call_id"}
    assert names <= set(store._stored_tokens(stored))
    assert "record_id" not in store._stored_tokens(stored)
    for n in names:
        assert tokens.is_token_struct(stored.field(n).type)
        assert pa.types.is_int64(stored.field(n).type.field("bits").type)
    assert stored.metadata[b"cemkit_protected"] == marker[b"cemkit_protected"]
    assert "call_id" not in store._stored_tokens(pq.read_schema(paths[1]))

    back = store.read_part(str(paths[0]))
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert back["a_number"].str.contains("#").all()
    some = store.read_part(str(paths[0]), columns=["record_id", "b_number"])
    pd.testing.assert_frame_equal(some, df[["record_id", "b_number"]], check_exact=True)
    lazy = store.read_parts([str(p) for p in paths])
    assert dict(lazy._meta.dtypes) == dict(df.dtypes)
    both = pd.concat([df, other], ignore_index=True)
    pd.testing.assert_frame_equal(lazy.compute().reset_index(drop=True), both, check_exact=True)
    assert lazy["a_number"].compute().reset_index(drop=True).equals(both["a_number"])


def test_token_bits_layout_is_smaller_than_the_strings(small_world, tmp_path):
    df = _protected(small_world[0])[["a_number", "b_number", "call_id"]]
    table = pa.Table.from_pandas(df, preserve_index=False)
    sizes = {}
    for bits in (False, True):
        narrowed, options = store.narrow_table(table, token_bits=bits)
        pq.write_table(narrowed, tmp_path / f"{bits}.parquet", **options)
        sizes[bits] = (tmp_path / f"{bits}.parquet").stat().st_size
    assert sizes[True] < sizes[False]
