"""protect / reveal on pandas and Dask frames: properties, partitions, quarantine, errors."""

import dask
import dask.dataframe as dd
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cemkit
from cemkit import schema
from cemkit.errors import KeyMaterialError, PolicyError
from cemkit.io.base import empty_quarantine
from cemkit.privacy import parse_policy, protect, reveal
from cemkit.privacy.keys import Key

KEY = Key.from_material(bytes(range(32)), key_id="test-2026")
OTHER = Key.from_material(bytes(range(1, 33)), key_id="test-2026")
STR = "string[pyarrow]"

POLICY = parse_policy("""
name: test
version: 1
key: {id: test-2026, env: CEMKIT_TEST_KEY_UNSET}
columns:
  record_id: {action: keep}
  a_number: {action: tokenize, keep_digits: 4}
  b_number: {action: fpe, keep_digits: 3, too_short: tokenize}
  call_id: {action: tokenize}
  start: {action: generalize, every: 1min}
  node: {action: generalize, digits: 2}
  src_clid: {action: scan_text, replace_with: token}
  outcome: {action: keep}
quarantine:
  line: {action: keep}
  raw: {action: scan_text}
""")


def frame(a, b, clid=None):
    n = len(a)
    df = pd.DataFrame({
        "record_id": [f"t:f:{i}" for i in range(n)],
        "source": ["test"] * n, "record_kind": ["cdr"] * n, "service": ["voice"] * n,
        "a_number": a, "b_number": b,
        "start": pd.date_range("2024-05-01 10:00:07", periods=n, freq="17s", tz="UTC"),
        "outcome": ["answered"] * n, "call_id": [f"c{i % 3}@10.0.0.1" for i in range(n)],
        "node": ["lon-sw1"] * n,
        "src_clid": clid if clid is not None else ['"Ann Lee" <+441632960961>'] * n,
    })  # fmt: skip
    return schema.conform(df).assign(src_clid=lambda d: d["src_clid"].astype(STR))


e164 = st.integers(8, 15).flatmap(
    lambda n: st.from_regex(rf"\A\+[1-9][0-9]{{{n - 1}}}\Z", fullmatch=True)
)
national = st.from_regex(r"\A0[1-9][0-9]{8,10}\Z", fullmatch=True)
extension = st.from_regex(r"\A[1-9][0-9]{2,4}\Z", fullmatch=True)
numbers = st.one_of(e164, national, extension, st.none(), st.sampled_from(["anonymous", ""]))
columns = st.lists(numbers, min_size=1, max_size=30)


def test_cemkit_protect_is_the_engine():
    assert cemkit.protect is protect


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(columns, columns)
def test_properties(a, b):
    n = min(len(a), len(b))
    df = frame(a[:n], b[:n])
    out = protect(df, POLICY, key=KEY)
    # unlisted columns dropped; listed ones kept in order
    assert list(out.columns) == [c for c in df.columns if c in POLICY.columns]
    # determinism (and independence from row order)
    again = protect(df.iloc[::-1], POLICY, key=KEY).iloc[::-1]
    pd.testing.assert_frame_equal(out, again)
    # key separation: every non-null token differs under another key
    other = protect(df, POLICY, key=OTHER)
    for col in ("a_number", "b_number", "call_id"):
        both = out[col].notna() & other[col].notna() & (out[col] != "")
        assert (out[col][both] != other[col][both]).all()
    # no raw value survives in a TN column, nulls stay null
    for col in ("a_number", "b_number"):
        raw, new = df[col], out[col]
        assert (raw.isna() <= new.isna()).all()
        has = raw.notna() & (raw != "") & new.notna()
        assert (raw[has] != new[has]).all()
    # kept prefix preserved for tokens
    for raw, tok in zip(df["a_number"], out["a_number"], strict=True):
        if pd.notna(raw) and raw == "":
            assert tok == ""
        elif pd.notna(raw):
            digits = raw.lstrip("+")
            if digits.isdigit() and len(digits) >= 8:
                assert tok.startswith(raw[: len(raw) - len(digits) + 4] + "#")
            else:
                assert tok.startswith("#")
    # fpe: same length and shape, kept prefix, round trip
    back = reveal(out, POLICY, key=KEY)
    for raw, enc, rev in zip(df["b_number"], out["b_number"], back["b_number"], strict=True):
        if pd.isna(raw):
            assert pd.isna(enc)
            continue
        digits = raw.lstrip("+")
        if digits.isdigit() and len(digits) >= 3 + 6:
            kept = len(raw) - len(digits) + 3
            assert len(enc) == len(raw) and enc[:kept] == raw[:kept]
            assert enc.lstrip("+").isdigit()
            assert rev == raw
        elif raw == "":
            assert enc == rev == ""  # nothing to protect
        else:
            assert enc.startswith("#") and rev == enc  # too short: tokenized, not revealable
    pd.testing.assert_series_equal(back["a_number"], out["a_number"])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.from_regex(r"\Asrc_[a-z]{1,8}\Z", fullmatch=True), min_size=1, max_size=5,
                unique=True))  # fmt: skip
def test_unlisted_columns_are_dropped(extra):
    df = frame(["+441632960961"], ["+15551230000"])
    for name in extra:
        df[name] = pd.Series(["+441632960961"], dtype=STR)
    out = protect(df, POLICY, key=KEY)
    for name in extra:
        assert (name in out.columns) == (name in POLICY.columns)
    assert set(out.columns) <= set(POLICY.columns)


def test_pinned_fpe_output_under_test_key():
    out = protect(frame(["+441632960961"], ["+441632960961"]), POLICY, key=KEY)
    assert out["b_number"].tolist() == [PINNED_FPE]
    assert reveal(out, POLICY, key=KEY)["b_number"].tolist() == ["+441632960961"]


PINNED_FPE = "+441305634836"


def test_fpe_column_follows_the_documented_derivation():
    import hashlib
    import hmac

    from ff3 import FF3Cipher

    material = bytes(range(32))
    aes_key = hmac.digest(material, b"cemkit/v1/fpe/test-2026", hashlib.sha256)
    tweak = hmac.digest(material, b"cemkit/v1/fpe-tweak/test-2026", hashlib.sha256)[:7]
    # keep_digits: 3 keeps "+441"; the 9 digits after it are FF3-1 encrypted
    assert "+441" + FF3Cipher(aes_key.hex(), tweak.hex()).encrypt("632960961") == PINNED_FPE


def test_same_number_same_pseudonym_across_columns_and_text():
    policy = parse_policy("""
name: t
version: 1
key: {id: test-2026, env: X}
columns:
  a_number: {action: tokenize}
  b_number: {action: tokenize}
  src_clid: {action: scan_text, replace_with: token}
""")
    df = frame(["+441632960961", "+15551230000"], ["+15551230000", "+441632960961"])
    out = protect(df, policy, key=KEY)
    assert out["a_number"][0] == out["b_number"][1] and out["a_number"][1] == out["b_number"][0]
    # the number inside the caller-id text gets the very same token
    assert f"<PHONE_NUMBER{out['a_number'][0]}>" in out["src_clid"][0]
    assert "Ann Lee" not in out["src_clid"][0] and "<PERSON#" in out["src_clid"][0]


def test_generalize_and_scan_text_labels():
    df = frame(
        ["+441632960961"] * 2,
        [None, None],
        clid=['"Bob" <01632 960961> bob@example.org', "no personal data here"],
    )
    out = protect(df, POLICY.model_copy(update={"columns": {
        **POLICY.columns,
        "src_clid": POLICY.quarantine["raw"]}}), key=KEY)  # fmt: skip
    assert out["start"].tolist() == list(pd.to_datetime(
        ["2024-05-01 10:00:00", "2024-05-01 10:00:00"], utc=True))  # fmt: skip
    assert out["node"].isna().all()  # 'lon-sw1' is not a number: generalized away
    assert out["src_clid"].tolist() == [
        '"<PERSON>" <<PHONE_NUMBER>> <EMAIL_ADDRESS>',
        "no personal data here",
    ]


def test_dask_equals_pandas_on_any_partitioning():
    nums = [f"+4416329609{i:02d}" for i in range(40)] * 5
    df = frame(nums, nums[::-1])
    expected = protect(df, POLICY, key=KEY)
    for parts in (1, 3, 7):
        ddf = dd.from_pandas(df, npartitions=parts)
        lazy = protect(ddf, POLICY, key=KEY)
        assert list(lazy.columns) == list(expected.columns)
        got = lazy.compute(scheduler="threads")
        pd.testing.assert_frame_equal(got, expected)
    back = reveal(protect(dd.from_pandas(df, npartitions=4), POLICY, key=KEY), POLICY, key=KEY)
    assert back["b_number"].compute().tolist() == df["b_number"].tolist()


@pytest.mark.slow
def test_dask_processes_give_same_pseudonyms():
    nums = [f"+4416329609{i:02d}" for i in range(50)]
    df = frame(nums, nums)
    expected = protect(df, POLICY, key=KEY)
    with dask.config.set(scheduler="processes", num_workers=2):
        got = protect(dd.from_pandas(df, npartitions=4), POLICY, key=KEY).compute()
    pd.testing.assert_frame_equal(got, expected)


def test_plan_is_validated_before_data_is_touched():
    bad = parse_policy("""
name: t
version: 1
key: {id: test-2026, env: X}
columns:
  src_when: {action: tokenize}
""")
    df = pd.DataFrame({"src_when": pd.to_datetime(["2024-01-01"], utc=True)})
    with pytest.raises(PolicyError, match="src_when.*does not apply to a time column"):
        protect(df, bad, key=KEY)
    ddf = dd.from_pandas(df, npartitions=1)
    with pytest.raises(PolicyError):
        protect(ddf, bad, key=KEY)  # raised while building the graph


def test_key_from_policy_source(monkeypatch):
    df = frame(["+441632960961"], ["+441632960961"])
    monkeypatch.delenv("CEMKIT_TEST_KEY_UNSET", raising=False)
    with pytest.raises(KeyMaterialError, match="CEMKIT_TEST_KEY_UNSET is not set"):
        protect(df, POLICY)
    monkeypatch.setenv("CEMKIT_TEST_KEY_UNSET", bytes(range(32)).hex())
    pd.testing.assert_frame_equal(protect(df, POLICY), protect(df, POLICY, key=KEY))
    with pytest.raises(PolicyError, match="names key"):
        protect(df, POLICY, key=Key.from_material(bytes(32), key_id="another"))


def test_reveal_only_fpe_columns():
    out = protect(frame(["+441632960961"], ["+441632960961"]), POLICY, key=KEY)
    with pytest.raises(PolicyError, match="only fpe columns"):
        reveal(out, POLICY, columns=["a_number"], key=KEY)


def test_quarantine_raw_is_scanned():
    q = empty_quarantine()
    q = pd.concat([q, pd.DataFrame({
        "file": ["Master.csv"], "line": [3], "field": ["start"], "reason": ["bad time"],
        "raw": ['"","+441632960961","07700 900123","x","""Ann Lee"" <100>","2015-03-24 15:44:40"'],
    }).astype(q.dtypes.to_dict())])  # fmt: skip
    out = protect(q, POLICY, key=KEY, quarantine=True)
    assert list(out.columns) == ["line", "raw"]  # file/field/reason follow `default: drop`
    raw = out["raw"][0]
    for secret in ("441632960961", "07700 900123", "Ann Lee"):
        assert secret not in raw
    assert "2015-03-24" in raw  # dates are not phone numbers
    default = parse_policy("name: t\nversion: 1\n")
    assert list(protect(q, default, quarantine=True).columns) == []  # raw dropped by default


def test_new_key_id_gives_new_pseudonyms():
    df = frame(["+441632960961"], ["+441632960961"])
    policy_b = POLICY.model_copy(update={"key": POLICY.key.model_copy(update={"id": "test-2027"})})
    same_material = Key.from_material(bytes(range(32)), key_id="test-2027")
    a = protect(df, POLICY, key=KEY)
    b = protect(df, policy_b, key=same_material)
    for col in ("a_number", "b_number", "call_id", "src_clid"):
        assert a[col][0] != b[col][0]


def test_default_policy_keeps_node_names_and_codes_device_addresses():
    df = frame(["+441632960961"] * 3, ["+441632960962"] * 3)
    df["node"] = pd.Series(["lon-sw1", "212.242.33.35:5060", "212.242.33.35:5060"], dtype=STR)
    default_key = Key.from_material(bytes(range(32)), key_id="cemkit-default-2026")
    out = protect(df, "default", key=default_key)
    assert out["node"][0] == "lon-sw1"
    assert out["node"][1] == out["node"][2] and "212.242" not in out["node"][1]
    assert out["node"][1].startswith("<IP_ADDRESS#") and out["node"][1].endswith(">:5060")


def test_scan_text_with_nothing_to_replace_passes_the_column_through():
    """Node names hold nothing personal: the column comes back as it is, not a copy."""
    from cemkit.privacy.engine import plan

    df = frame(["+441632960961"] * 3, [None] * 3)
    df["node"] = pd.array(["lon-sw1", "lon-sw1", None], dtype="string[pyarrow]")
    policy = POLICY.model_copy(update={"columns": {**POLICY.columns,
        "node": POLICY.quarantine["raw"]}})  # fmt: skip
    op = dict(plan(df.dtypes, policy, KEY))["node"]
    node = df["node"]
    assert op.apply(node) is node
    changed = pd.Series(["lon-sw1", "call 01632 960961"], dtype="string[pyarrow]")
    assert op.apply(changed).tolist() == ["lon-sw1", "call <PHONE_NUMBER>"]
