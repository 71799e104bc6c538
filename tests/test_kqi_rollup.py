import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from cemkit.kqi import rollup
from cemkit.kqi.rollup import UNASSIGNED
from cemkit.model import ServiceModel

MODEL = ServiceModel.from_yaml_text("""
name: r
groups:
  - {name: uk, match: {prefixes: ["+44"]}}
  - {name: london, parent: uk, match: {prefixes: ["+4420"]}}
  - {name: lon-sw1, parent: london, match: {switches: ["lon-sw1"]}}
  - {name: man, parent: uk, match: {prefixes: ["+44161"]}}
customers:
  - {name: vip, pseudonyms: ["+4420tok00001"]}
""")

OUTCOMES = ["answered", "no_answer", "busy", "failed", "cancelled", "congestion"]


def random_records(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    prefix = rng.choice(["+4420", "+44161", "+44131", "+33"], n)
    cust = rng.integers(0, 300, n)
    a = pd.array(
        [f"{p}tok{c:05d}" for p, c in zip(prefix, cust, strict=True)], dtype="string[pyarrow]"
    )
    kind = rng.choice(["cdr", "cdr", "cdr", "xdr"], n)
    outcome = rng.choice(OUTCOMES, n, p=[0.6, 0.1, 0.1, 0.1, 0.05, 0.05])
    answered = outcome == "answered"
    df = pd.DataFrame(
        {
            "record_id": pd.array([f"r{i}" for i in range(n)], dtype="string[pyarrow]"),
            "service": pd.array(rng.choice(["voice"] * 9 + ["sms"], n), dtype="string[pyarrow]"),
            "record_kind": pd.array(kind, dtype="string[pyarrow]"),
            "a_number": a,
            "start": pd.Timestamp("2026-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 2 * 86400, n), unit="s"),
            "outcome": pd.array(outcome, dtype="string[pyarrow]"),
            "billsec_s": np.where(answered, rng.exponential(90, n).round(3), 0.0),
            "cause_q850": pd.array(rng.choice([16, 16, 16, 31, 41, 17], n), dtype="Int16"),
            "sip_status": pd.array(
                np.where(kind == "xdr", rng.choice([200, 486, 503, 302, 408], n), 0), dtype="Int16"
            ),
            "leg": pd.array(rng.choice(["orig", "term", None], n), dtype="string[pyarrow]"),
            "partial_seq": pd.array(rng.choice([1, 1, 1, 2], n), dtype="Int32"),
            "node": pd.array(
                rng.choice(["lon-sw1", "lon-sw2", "man-sw1"], n), dtype="string[pyarrow]"
            ),
            "pdd_ms": np.where(rng.random(n) < 0.7, rng.gamma(4, 500, n), np.nan),
            "mos": np.where(rng.random(n) < 0.3, rng.uniform(1, 4.5, n), np.nan),
            "loss_ratio": np.where(rng.random(n) < 0.3, rng.uniform(0, 0.1, n), np.nan),
            "jitter_ms": np.where(rng.random(n) < 0.3, rng.uniform(0, 60, n), np.nan),
            "src_intent_id": pd.array(rng.integers(0, 1500, n), dtype="Int64"),
        }
    )
    df.loc[df["sip_status"] == 0, "sip_status"] = pd.NA
    return df


def _sorted(t):
    return t.sort_values(["object_kind", "object", "freq", "bucket"]).reset_index(drop=True)


@pytest.mark.parametrize("nparts", [3, 11])
def test_identical_for_any_partitioning(nparts):
    df = random_records()
    base = rollup(df, MODEL, top_n=15)
    shuffled = df.sample(frac=1.0, random_state=nparts)
    with dask.config.set(scheduler="threads"):
        other = rollup(dd.from_pandas(shuffled, npartitions=nparts, sort=False), MODEL, top_n=15)
    pd.testing.assert_frame_equal(_sorted(base.table), _sorted(other.table), check_exact=True)
    pd.testing.assert_frame_equal(base.worst_customers, other.worst_customers, check_exact=True)
    assert base.customer_count == other.customer_count


def test_hierarchy_and_buckets_add_up():
    df = random_records()
    t = rollup(df, MODEL).table
    day = t[t["freq"] == "day"].set_index(["object", "bucket"])
    for b in day.index.get_level_values("bucket").unique():
        uk = day.loc[("uk", b), "attempts"]
        children = sum(
            day.loc[(g, b), "attempts"] for g in ("london", "lon-sw1", "man") if (g, b) in day.index
        )
        # uk's own leaf records (+44131) plus its descendants; lon-sw1 is inside london already
        own = day.loc[("london", b), "attempts"] + day.loc[("man", b), "attempts"]
        assert uk >= own and children >= own
    groups = t[(t["object_kind"] == "group") & (t["freq"] == "15min")]
    hour = t[(t["object_kind"] == "group") & (t["freq"] == "hour")]
    assert groups["attempts"].sum() == hour["attempts"].sum()
    assert UNASSIGNED in set(t["object"])  # the +33 numbers


def test_attempts_and_asr_match_naive_pandas():
    df = random_records()
    t = rollup(df, MODEL, freqs=("hour",)).table
    got = t[t["object"] == "man"].set_index("bucket")[["attempts", "asr"]]
    man = df[df["a_number"].str.startswith("+44161")]
    att = man[
        (man["service"] == "voice")
        & (man["record_kind"] == "cdr")
        & (man["partial_seq"].fillna(1) <= 1)
    ]
    hb = att["start"].dt.floor("1h")
    naive = att.groupby(hb).agg(
        attempts=("outcome", "size"), answered=("outcome", lambda s: (s == "answered").sum())
    )
    naive.index.name = "bucket"
    assert (got["attempts"] == naive["attempts"]).all()
    np.testing.assert_allclose(got["asr"], naive["answered"] / naive["attempts"])


def test_pdd_percentiles_exact():
    df = random_records()
    t = rollup(df, MODEL, freqs=("day",)).table
    row = t[(t["object"] == "uk")].iloc[0]
    sel = df[
        df["a_number"].str.startswith("+44")
        & (df["service"] == "voice")
        & df["pdd_ms"].notna()
        & (
            ((df["record_kind"] == "cdr") & (df["partial_seq"].fillna(1) <= 1))
            | (df["record_kind"] == "xdr")
        )
        & (df["start"].dt.floor("1D") == row["bucket"])
    ]
    vals = np.rint(sel["pdd_ms"].to_numpy())
    assert row["pdd_p50_ms"] == np.quantile(vals, 0.5)
    assert row["pdd_p95_ms"] == np.quantile(vals, 0.95)


def test_modeled_customer_and_worst_customers():
    df = random_records()
    res = rollup(df, MODEL, top_n=5)
    vip = res.table[res.table["object_kind"] == "customer"]
    assert set(vip["object"]) == {"vip"}
    mine = df[
        (df["a_number"] == "+4420tok00001")
        & (df["leg"].fillna("orig") != "term")
        & (df["service"] == "voice")
        & (df["record_kind"] == "cdr")
        & (df["partial_seq"].fillna(1) <= 1)
    ]
    assert vip[vip["freq"] == "day"]["attempts"].sum() == len(mine)
    w = res.worst_customers
    assert len(w) == 5 and w["experience_score"].is_monotonic_increasing
    assert (w["reason"].str.len() > 0).all() and (w["attempts"] >= 5).all()


def test_repeat_rate_uses_global_first_attempt():
    t0 = pd.Timestamp("2026-01-01 10:14:00", tz="UTC")
    df = pd.DataFrame(
        {
            "a_number": pd.array(["+4420a"] * 3, dtype="string[pyarrow]"),
            "service": "voice",
            "record_kind": "cdr",
            "outcome": "failed",
            "start": [t0, t0 + pd.Timedelta("2min"), t0 + pd.Timedelta("3min")],
            "src_intent_id": [7, 7, 7],
        }
    )
    t = rollup(dd.from_pandas(df, npartitions=3, sort=False), MODEL, freqs=("15min",)).table
    london = t[t["object"] == "london"].set_index("bucket")["repeat_attempt_rate"]
    # the first attempt is in the 10:00 bucket; both attempts of 10:15 are repeats
    assert list(london) == [0.0, 1.0]


def test_term_legs_count_for_groups_not_customers():
    t0 = pd.Timestamp("2026-01-01 10:00", tz="UTC")
    df = pd.DataFrame(
        {
            "a_number": pd.array(["+4420tok00001"] * 2, dtype="string[pyarrow]"),
            "service": "voice",
            "record_kind": "cdr",
            "outcome": "answered",
            "billsec_s": 60.0,
            "leg": ["orig", "term"],
            "node": ["lon-sw1", "man-sw1"],
            "start": [t0, t0],
        }
    )
    t = rollup(df, MODEL, freqs=("day",)).table.set_index("object")
    assert t.loc["lon-sw1", "attempts"] == 1 and t.loc["london", "attempts"] == 2
    assert t.loc["vip", "attempts"] == 1


def test_rank_customers_off_keeps_group_table():
    df = random_records(1500)
    full = rollup(df, MODEL, freqs=("hour",), worst_min_attempts=1)
    lean = rollup(df, MODEL, freqs=("hour",), rank_customers=False)
    pd.testing.assert_frame_equal(_sorted(full.table), _sorted(lean.table))
    assert lean.worst_customers.empty and lean.customer_count == 0
    assert len(full.worst_customers) > 0


def test_node_only_model_needs_no_numbers():
    m = ServiceModel.from_yaml_text("name: n\ngroups: [{name: sw1, match: {nodes: [lon-sw1]}}]\n")
    df = random_records(1000)
    with_numbers = rollup(df, m, freqs=("day",), rank_customers=False).table
    without = rollup(df.drop(columns=["a_number"]), m, freqs=("day",), rank_customers=False).table
    pd.testing.assert_frame_equal(_sorted(with_numbers), _sorted(without))
    assert with_numbers.set_index("object").loc["sw1", "attempts"].sum() > 0


@pytest.mark.slow
def test_identical_on_a_local_cluster():
    from distributed import Client, LocalCluster

    df = random_records(3000)
    base = rollup(df, MODEL)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster),
    ):
        other = rollup(dd.from_pandas(df, npartitions=5, sort=False), MODEL)
    pd.testing.assert_frame_equal(_sorted(base.table), _sorted(other.table), check_exact=True)
    pd.testing.assert_frame_equal(base.worst_customers, other.worst_customers, check_exact=True)


def test_legs_and_probe_copies_are_not_repeats():
    t0 = pd.Timestamp("2026-01-01 10:00:00", tz="UTC")
    sec = pd.Timedelta("1s")
    df = pd.DataFrame(
        {
            "a_number": pd.array(["+4420a"] * 4, dtype="string[pyarrow]"),
            "service": "voice",
            "record_kind": ["xdr", "cdr", "cdr", "cdr"],
            "outcome": "failed",
            "leg": [None, "orig", "term", "orig"],
            "start": [t0 - 0.2 * sec, t0, t0 + sec, t0 + 40 * sec],
            "src_intent_id": [1, 1, 1, 1],
        }
    )
    t = rollup(df, MODEL, freqs=("day",)).table.set_index("object")
    assert t.loc["london", "attempts"] == 3 and t.loc["london", "repeat_attempts"] == 1


def test_ranking_needs_numbers():
    from cemkit.errors import SchemaError

    m = ServiceModel.from_yaml_text("name: n\ngroups: [{name: sw1, match: {nodes: [lon-sw1]}}]\n")
    with pytest.raises(SchemaError, match="rank_customers=False"):
        rollup(random_records(100).drop(columns=["a_number"]), m)


def test_parent_equals_its_whole_subtree():
    df = random_records()
    t = rollup(df, MODEL, freqs=("day",)).table.set_index(["object", "bucket"])["attempts"]
    att = df[
        (df["service"] == "voice")
        & (df["record_kind"] == "cdr")
        & (df["partial_seq"].fillna(1) <= 1)
    ]
    day = att["start"].dt.floor("1D")
    for group, prefix in (("uk", "+44"), ("london", "+4420")):
        naive = att[att["a_number"].str.startswith(prefix)].groupby(day).size()
        got = t.xs(group, level="object")
        assert got.to_dict() == naive.to_dict()


def test_every_bucket_size_at_once_equals_each_alone():
    """The leaf rows expanded over the hierarchy once for every bucket size (_roll): each
    size's rows, counters and percentiles are those of a rollup of that size alone."""
    from cemkit.kqi.rollup import counter_rows
    from cemkit.model.assign import Assigner

    df = random_records()
    assigner = Assigner(MODEL)
    both = rollup(df, assigner).table
    keys = ["object_kind", "object", "bucket"]
    for f in ("15min", "hour", "day"):
        alone = rollup(df, assigner, freqs=(f,)).table.reset_index(drop=True)
        part = both[both["freq"] == f].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, alone, check_exact=True)
        assert not part.duplicated(keys).any()
    rows, one = counter_rows(df, assigner).rows, counter_rows(df, assigner, ("hour",)).rows
    for i in range(3):
        assert rows[("group", "hour")][i].tobytes() == one[("group", "hour")][i].tobytes()
