"""protect on distinct values (issue 15): the shared dictionary, the kernels, the same tokens.

Every tokenized column of a partition shares one dictionary and each distinct value is hashed
once; the tokens must equal, value for value, the slow reference (one ``hmac.digest`` and one
regex per value: :func:`naive.token`, which is how ``main`` computed them).
"""

import itertools
from unittest import mock

import naive
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit import arrowstr
from cemkit.io.api import plan as load_plan
from cemkit.privacy import _parties, load_policy, protect
from cemkit.privacy.keys import Key
from cemkit.privacy.operators.tokenize import tokenize_columns
from cemkit.privacy.policy import TokenizeRule

KEY = Key.from_material(bytes(range(32)), key_id="cemkit-default-2026")
PURPOSE = KEY.derive("tokenize")
STR = "string[pyarrow]"

digits = st.text("0123456789", min_size=0, max_size=20)
number = st.builds(lambda plus, d: ("+" if plus else "") + d, st.booleans(), digits)
other = st.text("0123456789+#:-@ aé.x\n", max_size=24)
value = st.one_of(number, other, st.none(), st.sampled_from(["", "+", "0", "00", "anonymous"]))
column = st.lists(value, min_size=0, max_size=40)
rule = st.builds(lambda k, n: TokenizeRule(action="tokenize", keep_digits=k, length=n),
                 st.integers(0, 6), st.integers(12, 64))  # fmt: skip


def _reference(values, r):
    return [naive.token(v, PURPOSE, r.keep_digits, r.length) for v in values]


def _tokenize(cols, rules):
    series = {n: pd.Series(v, dtype=STR) for n, v in cols.items()}
    return {n: s.tolist() for n, s in tokenize_columns(series, rules, KEY).items()}


def _none(values):
    return [None if v is pd.NA else v for v in values]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(column, rule), min_size=1, max_size=4), st.booleans())
def test_shared_dictionary_tokens_equal_the_reference(cols, all_rows_distinct):
    names = [f"c{i}" for i in range(len(cols))]
    data = {n: v for n, (v, _) in zip(names, cols, strict=True)}
    rules = {n: r for n, (_, r) in zip(names, cols, strict=True)}
    # small thresholds: the near-distinct path (rows as their own dictionary) runs too
    small = {"_SAMPLE_MIN_ROWS": 1, "_SAMPLE": 4, "_NEARLY_DISTINCT": 0.0}
    with mock.patch.multiple(_parties, **small) if all_rows_distinct else mock.MagicMock():
        got = _tokenize(data, rules)
    for n in names:
        assert _none(got[n]) == _reference(data[n], rules[n])


def test_a_number_in_two_columns_is_hashed_once_and_gets_one_token():
    a = ["+441632960961", "+441632960962", None, "100"]
    b = ["+441632960962", "+441632960961", "+441632960961", ""]
    rules = {"a": TokenizeRule(action="tokenize", keep_digits=4),
             "b": TokenizeRule(action="tokenize", keep_digits=4)}  # fmt: skip
    dictionary, codes = _parties.build([pa.array(a), pa.array(b)])
    assert sorted(dictionary.to_pylist()) == sorted(["+441632960961", "+441632960962", "100", ""])
    assert codes[0][0] == codes[1][1] and codes[0][2] == -1
    got = _tokenize({"a": a, "b": b}, rules)
    assert got["a"][0] == got["b"][1] == got["b"][2] == naive.token(a[0], PURPOSE, 4, 16)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(number, other), max_size=30))
def test_number_keys_pack_and_format_back_exactly(values):
    arr = pa.array(values, pa.string())
    keys = _parties._number_keys(*arrowstr.buffers(arr))
    for v, k in zip(values, keys, strict=True):
        body = v.removeprefix("+")
        packable = 1 <= len(body) <= 17 and body.isascii() and body.isdigit()
        assert (k >= 0) == packable
    packed = keys[keys >= 0]
    offsets, data = _parties._format_number_keys(packed)
    back = [bytes(data[offsets[i] : offsets[i + 1]]).decode() for i in range(packed.size)]
    assert back == [v for v, k in zip(values, keys, strict=True) if k >= 0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.one_of(number, other, st.none()), max_size=40), min_size=1,
                max_size=4), st.integers(1, 5))  # fmt: skip
def test_number_codes_equal_the_reference_across_columns(columns, repeat):
    """The fused table: one numbering of the numbers over every column, grown as it fills."""
    columns = [c * repeat for c in columns]
    want, distinct = naive.number_codes(columns)
    slot_key, slot_code = np.empty(4, np.int64), np.full(4, -1, np.int64)  # grows at once
    uniques = np.empty(sum(len(c) for c in columns), np.int64)
    m = 0
    for values, codes in zip(columns, want, strict=True):
        keys = _parties._number_keys(*arrowstr.buffers(pa.array(values, pa.string())))
        got, slot_key, slot_code, m = _parties._number_codes(keys, slot_key, slot_code,
                                                             uniques, m)  # fmt: skip
        assert got.tolist() == codes
    offsets, data = _parties._format_number_keys(uniques[:m])
    assert [bytes(data[offsets[i] : offsets[i + 1]]).decode() for i in range(m)] == distinct


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(st.one_of(number, other, st.none()), max_size=40),
                          st.booleans()), min_size=1, max_size=4),
       st.integers(1, 3), st.integers(0, 3))  # fmt: skip
def test_party_dictionary_equals_the_reference(columns, repeat, cut):
    """numbers, then the other values (one jitted table over the columns) in first-seen order."""
    values = [v * repeat for v, _ in columns]
    want, want_codes = naive.party_dictionary(values)
    # string and large_string columns, some sliced (offsets not starting at 0)
    arrays = [pa.array(["pad"] * cut + v, pa.large_string() if large else pa.string())[cut:]
              for v, (_, large) in zip(values, columns, strict=True)]  # fmt: skip
    dictionary, codes = _parties.build(arrays)
    assert dictionary.type == pa.large_string() and dictionary.null_count == 0
    assert dictionary.to_pylist() == want
    assert [c.tolist() for c in codes] == want_codes


@settings(max_examples=200, deadline=None)
@given(st.lists(value, min_size=1, max_size=40), st.integers(0, 9))
def test_tokens_of_16_hex_digits_equal_the_reference(values, keep_digits):
    """The default token's kernel (prefix written as one word) and the general one (keep 8+)."""
    r = TokenizeRule(action="tokenize", keep_digits=keep_digits, length=16)
    got = _tokenize({"c": values}, {"c": r})["c"]
    assert _none(got) == _reference(values, r)


record_id_text = st.text("0123456789 .()/-:ab\n+é", max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.lists(record_id_text, min_size=1, max_size=20))
def test_record_id_prefilter_flags_every_id_the_regexes_flag(values):
    _assert_prefilter_as_the_regexes(values)


def _assert_prefilter_as_the_regexes(values: list[str]) -> None:
    arr = pa.array(values, pa.string())
    flags = _parties._digit_run_flags(*arrowstr.buffers(arr), 7, 2)
    for v, flag in zip(values, flags, strict=True):
        ref = naive.record_id_may_hold_numbers(v)
        assert flag or not ref  # never misses one
        if "\n" not in v:
            assert bool(flag) == ref, v


def _loaded(paths, fmt, **kw):
    the_plan = load_plan([str(p) for p in paths], format=fmt, **kw)
    frames = [the_plan.loader.read_part(p)[0] for p in the_plan.parts]
    return pd.concat(frames, ignore_index=True)


def _check_against_reference(records):
    policy = load_policy("default")
    out = protect(records, policy, key=KEY)
    tokenized = [n for n, r in policy.columns.items() if r.action == "tokenize" and n in records]
    assert tokenized
    for name in tokenized:
        r = policy.columns[name]
        want = _reference([None if v is pd.NA else v for v in records[name]], r)
        assert _none(out[name].tolist()) == want, name
        assert out[name].dtype == STR
    return out, tokenized


def test_protect_equals_the_reference_on_the_synthetic_world(small_world):
    world, _ = small_world
    records = _loaded(sorted((world / "records").glob("*.parquet")), "parquet")
    out, tokenized = _check_against_reference(records)
    raw = set(records["a_number"].dropna()) | set(records["b_number"].dropna())
    for name in out.columns:
        if out[name].dtype == STR:
            assert not raw & set(out[name].dropna()), name  # no raw number survives
    # the same on any split into partitions (one dictionary per partition, same tokens)
    cuts = np.linspace(0, len(records), 4).astype(int)
    parts = [protect(records.iloc[a:b], "default", key=KEY) for a, b in itertools.pairwise(cuts)]
    assert pd.concat(parts)[tokenized].equals(out[tokenized])


@pytest.mark.samples
@pytest.mark.parametrize(("fmt", "files", "options"), [
    ("asterisk", ["asterisk/lab-pbx-Master.csv", "asterisk/lab-pbx-100.csv"], {}),
    ("freeswitch", ["freeswitch/Master.csv"], {}),
    ("cucm", ["cucm/cdr.txt", "cucm/cmr.txt"], {}),
])  # fmt: skip
def test_protect_equals_the_reference_on_real_samples(samples_dir, fmt, files, options):
    records = _loaded([samples_dir / f for f in files], fmt, default_region="US", **options)
    assert len(records)
    out, _ = _check_against_reference(records)
    raw = {v for c in ("a_number", "b_number") for v in records[c].dropna() if len(v) >= 7}
    text = "\n".join(out[c].astype(str).str.cat(sep="\n") for c in out.columns)
    assert not [v for v in raw if v in text]


def test_record_ids_of_a_file_named_after_a_number_are_tokenized(samples_dir, tmp_path):
    src = samples_dir / "asterisk" / "lab-pbx-Master.csv"
    named = tmp_path / "acct-4416329609.csv"  # a per-account file, as Asterisk writes them
    named.write_bytes(src.read_bytes())
    records = _loaded([named], "asterisk")
    assert records["record_id"].str.contains("4416329609").all()
    out = protect(records, "default", key=KEY)
    assert not out["record_id"].str.contains("4416329609").any()
    assert out["record_id"].str.contains("acct-").all()


_heads = st.sampled_from(["asterisk:f0.csv", "asterisk:acct-4420 7946 0958.csv", "synth",
                          "cdr:2026:01", "a\nb:c", "src:0201234567", ""])  # fmt: skip
_tails = st.one_of(st.sampled_from(["1", "0", "123456789", "1234567890", "012", "7\n"]),
                   record_id_text)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_heads, _tails), min_size=1, max_size=30))
def test_record_id_prefilter_remembers_a_shared_head_correctly(pairs):
    """Ids of one file share ``source:tag``: the remembered head gives the regexes' answers."""
    _assert_prefilter_as_the_regexes([f"{h}:{t}" for h, t in pairs])
