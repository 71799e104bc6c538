"""Small-group suppression: no aggregate row may stand for fewer than k customers."""

import dask.dataframe as dd
import pandas as pd
import pytest

from cemkit.errors import SchemaError
from cemkit.privacy import protect
from cemkit.privacy.keys import Key
from cemkit.privacy.policy import DEFAULT_MIN_GROUP_SIZE, load_policy, parse_policy
from cemkit.privacy.suppress import ATTRS_KEY, FLAG, min_group_size, suppress_small_groups


@pytest.fixture
def kqi():
    return pd.DataFrame({
        "node": ["lon-sw1", "lon-sw2", "man-sw1", "edi-sw1"],
        "customers": [120, 4, 37, 9],
        "calls": [900, 11, 300, 40],
        "asr": [0.61, 0.25, 0.58, 0.5],
    })  # fmt: skip


def test_k_comes_from_the_policy_and_cannot_be_lowered():
    assert min_group_size() == DEFAULT_MIN_GROUP_SIZE == 10
    assert min_group_size("default") == 10 and min_group_size("strict") == 20
    assert min_group_size("strict", k=50) == 50
    with pytest.raises(ValueError, match="never lower it"):
        min_group_size("strict", k=10)
    policy = parse_policy("name: p\nversion: 1\nreport: {min_group_size: 7}\n")
    assert policy.report.min_group_size == 7 and min_group_size(policy) == 7


def test_report_section_is_validated():
    from cemkit.errors import PolicyError

    with pytest.raises(PolicyError, match="report.min_group_size"):
        parse_policy("name: p\nversion: 1\nreport: {min_group_size: 1}\n")
    with pytest.raises(PolicyError, match="unknown parameter 'k'"):
        parse_policy("name: p\nversion: 1\nreport: {k: 10}\n")


def test_mask_hides_values_and_says_so(kqi):
    r = suppress_small_groups(kqi, "customers", k=10, group_columns=["node"])
    f = r.frame
    assert f["node"].tolist() == kqi["node"].tolist()  # labels stay
    assert f[FLAG].tolist() == [False, True, False, True]
    small = f[f[FLAG]]
    assert small[["customers", "calls", "asr"]].isna().all().all()
    assert f.loc[~f[FLAG], "customers"].min() >= 10
    assert r.note == ("2 of 4 group(s) stood for fewer than 10 customers and are masked "
                      "(values hidden).")  # fmt: skip
    assert f.attrs[ATTRS_KEY] == r.note and r.suppressed_groups == 2 and r.groups == 4


def test_drop_removes_small_groups(kqi):
    r = suppress_small_groups(kqi, "customers", policy="strict", how="drop")
    assert r.k == 20 and r.frame["node"].tolist() == ["lon-sw1", "man-sw1"]
    assert "2 of 4 group(s) stood for fewer than 20 customers and are removed" in r.note


def test_merge_sums_counts_and_blanks_ratios(kqi):
    r = suppress_small_groups(kqi, "customers", k=10, how="merge", group_columns=["node"],
                              sum_columns=["calls"])  # fmt: skip
    f = r.frame
    assert f["node"].tolist() == ["lon-sw1", "man-sw1", "(other groups)"]
    other = f.iloc[-1]
    assert other["customers"] == 13 and other["calls"] == 51 and pd.isna(other["asr"])
    assert bool(other[FLAG]) and "merged into one row" in r.note


def test_merged_row_still_under_k_is_masked(kqi):
    r = suppress_small_groups(kqi, "customers", k=40, how="merge", group_columns=["node"],
                              sum_columns=["calls"])  # fmt: skip
    # 4 + 37 + 9 = 50 >= 40 is shown; with k=60 it would not be.
    assert r.frame.iloc[-1]["customers"] == 50
    r = suppress_small_groups(kqi, "customers", k=60, how="merge", group_columns=["node"],
                              sum_columns=["calls"])  # fmt: skip
    assert pd.isna(r.frame.iloc[-1]["customers"]) and pd.isna(r.frame.iloc[-1]["calls"])
    assert "Together they still stood for fewer than 60" in r.note


def test_unknown_count_is_treated_as_small_and_nothing_small_says_so(kqi):
    kqi.loc[0, "customers"] = None
    r = suppress_small_groups(kqi, "customers", k=2, group_columns=["node"])
    assert r.frame[FLAG].tolist() == [True, False, False, False]
    big = kqi.iloc[[2]]
    r = suppress_small_groups(big, "customers", k=10)
    assert r.note == "Every group stands for at least 10 customers; nothing suppressed."


def test_index_labels_and_dask_frames(kqi):
    indexed = kqi.set_index("node")
    r = suppress_small_groups(dd.from_pandas(indexed, npartitions=2), "customers", k=10)
    assert sorted(r.frame.index) == sorted(indexed.index)
    assert pd.isna(r.frame.loc["lon-sw2", "customers"]) and pd.isna(r.frame.loc["lon-sw2", "calls"])
    assert r.frame.loc["lon-sw1", "calls"] == 900


def test_missing_count_column_is_a_schema_error(kqi):
    with pytest.raises(SchemaError, match="no column 'users'"):
        suppress_small_groups(kqi, "users", k=10)
    with pytest.raises(ValueError, match="how must be"):
        suppress_small_groups(kqi, "customers", k=10, how="round")  # type: ignore[arg-type]


def test_report_on_data_with_small_groups_shows_no_group_under_k(small_world):
    """A per-prefix, per-switch, per-hour table from protected synthetic records: nothing under
    the policy's k is shown."""
    world, _ = small_world
    records = pd.read_parquet(world / "records")
    key = Key.from_material(bytes(range(32)), key_id="cemkit-default-2026")
    protected = protect(records, "default", key=key)
    voice = protected[protected["service"] == "voice"].copy()
    voice["prefix"] = voice["a_number"].str.split("#").str[0]
    voice["prefix"] = voice["prefix"].where(voice["prefix"] != "", "(none kept)")
    voice["hour"] = voice["start"].dt.floor("h")
    table = voice.groupby(["prefix", "node", "hour"]).agg(
        customers=("a_number", "nunique"),
        calls=("a_number", "size"),
        answered=("outcome", lambda s: float((s == "answered").mean())),
    ).reset_index()  # fmt: skip
    k = load_policy("default").report.min_group_size
    assert (table["customers"] < k).any(), "the synthetic data should have small prefix groups"
    assert (table["customers"] >= k).any(), "and groups large enough to show"
    result = suppress_small_groups(table, "customers", policy="default",
                                   group_columns=["prefix", "node", "hour"])  # fmt: skip
    shown = result.frame[~result.frame[FLAG]]
    hidden = result.frame[result.frame[FLAG]]
    assert (shown["customers"] >= k).all()
    assert hidden[["customers", "calls", "answered"]].isna().all().all()
    assert len(hidden) == int((table["customers"] < k).sum()) > 0
    assert f"fewer than {k} customers" in result.note


def test_notebook_display_carries_the_note(kqi):
    r = suppress_small_groups(kqi, "customers", k=10)
    assert r._repr_html_().endswith(f"<p><em>{r.note}</em></p>") and "<table" in r._repr_html_()
