"""On the synthetic workload, stitch / pair_legs / match recover exactly the injected calls.

The generator's ground truth (truth/ parts) gives each record a ``call_key`` (partials, both
legs and the signaling xDR of one real call share it) and an ``intent_key`` (retries of one
customer to one destination share it). Each record is followed through the correlators to the
output row it ends in; the records of one output row must be exactly the records of one call_key.

Note on the generator (cemkit.synth at the time of writing): for an off-net callee it draws a new
external b_number for every *record*, so the partials, the xDR and the retries of one off-net
call do not share their called number, unlike real records. The correlators match parties, so
the main test gives every off-net record the one external number its intent would have dialled
(derived from the intent key) before correlating; a second test runs on the records as generated
and checks that nothing is merged wrongly and that only such off-net calls are split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cemkit import schema
from cemkit.correlate import match, pair_legs, sessionize, stitch
from cemkit.correlate.sessionize import session_labels
from cemkit.correlate.stitch import stitch_labels


@pytest.fixture(scope="module")
def world(small_world):
    out, _ = small_world
    records = schema.conform(pd.read_parquet(out / "records"))
    truth = pd.read_parquet(out / "truth").set_index("record_id").loc[records["record_id"]]
    return records, truth.reset_index()


def follow(records):
    """Record id → record id of the output call row it ends in; and the final call rows."""
    label, _, _ = stitch_labels(records)
    rid = records["record_id"].to_numpy()
    final = pd.Series(rid[label], index=rid)
    calls = pair_legs(stitch(records))
    m = calls["src_term_record_id"].notna()
    into = dict(zip(calls.loc[m, "src_term_record_id"], calls.loc[m, "record_id"], strict=True))
    calls = match(calls)
    m = calls["src_xdr_record_id"].notna()
    into.update(zip(calls.loc[m, "src_xdr_record_id"], calls.loc[m, "record_id"], strict=True))
    return final.map(lambda r: into.get(r, r)), calls


def split_and_merged(truth_key, group):
    df = pd.DataFrame({"truth": np.asarray(truth_key), "group": np.asarray(group)})
    split = int((df.groupby("truth")["group"].nunique() > 1).sum())
    merged = int((df.groupby("group")["truth"].nunique() > 1).sum())
    return split, merged


def consistent_off_net(records, truth):
    off = (truth["b_customer"] < 0).to_numpy()
    b = records["b_number"].to_numpy(dtype=object).copy()
    b[off] = ("+999" + truth["intent_key"].astype(str)).to_numpy()[off]
    return records.assign(b_number=pd.array(b, dtype=records["b_number"].dtype))


def test_calls_recovered_exactly(world):
    records, truth = world
    records = consistent_off_net(records, truth)
    group, calls = follow(records)
    assert split_and_merged(truth["call_key"], group) == (0, 0)
    assert len(calls) == truth["call_key"].nunique()
    # what the generator injected, by kind
    assert calls["src_partials"].gt(1).sum() > 0
    assert (
        calls["src_paired"].sum()
        == truth.loc[records["leg"].eq("term").fillna(False).to_numpy(dtype=bool)][
            "call_key"
        ].nunique()
    )
    kinds = calls["src_match"].value_counts()
    assert kinds["xdr_only"] > 0 and kinds["matched"] > 0
    assert not calls["src_partials_missing"].any() and not calls["src_partials_duplicate"].any()


def test_intents_recovered_exactly(world):
    records, truth = world
    records = consistent_off_net(records, truth)
    group, calls = follow(records)
    # the generator retries 15-90 s after the previous attempt started
    label, _ = session_labels(calls, window="90s")
    head = pd.Series(calls["record_id"].to_numpy()[label], index=calls["record_id"].to_numpy())
    assert split_and_merged(truth["intent_key"], group.map(head)) == (0, 0)
    intents = sessionize(calls, window="90s")
    assert len(intents) == truth["intent_key"].nunique()
    assert intents["attempts"].max() > 1


def test_records_as_generated_only_off_net_calls_split(world):
    records, truth = world
    group, _ = follow(records)
    df = pd.DataFrame({"call": truth["call_key"], "group": group.to_numpy(),
                       "off_net": truth["b_customer"] < 0})  # fmt: skip
    per_call = df.groupby("call").agg(groups=("group", "nunique"), off_net=("off_net", "any"))
    assert split_and_merged(df["call"], df["group"])[1] == 0  # nothing merged wrongly
    assert per_call.loc[per_call["groups"] > 1, "off_net"].all()  # only off-net calls split


def test_dask_pipeline_equals_pandas_on_synthetic_records(world):
    import dask
    import dask.dataframe as dd

    records, truth = world
    records = consistent_off_net(records, truth)
    want = match(pair_legs(stitch(records)))
    ddf = dd.from_pandas(records, npartitions=4)
    with dask.config.set(scheduler="threads"):
        got = match(pair_legs(stitch(ddf), npartitions=3), npartitions=5).compute()
    key = "record_id"
    pd.testing.assert_frame_equal(
        got.sort_values(key).reset_index(drop=True), want.sort_values(key).reset_index(drop=True)
    )
