"""3GPP records through the real pipeline: load (lazy) → protect (default policy) → stitch →
KQI counters, against the generator's truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import cemkit.io as cio
from cemkit.correlate import stitch
from cemkit.kqi import formulas
from cemkit.privacy import load_policy, protect
from cemkit.privacy.keys import Key
from cemkit.synth_3gpp import generate_3gpp

KEY = Key.from_material(bytes(range(32)), key_id="cemkit-default-2026")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("3gpp-pipe")
    truth = generate_3gpp(out, calls=60, sms=40, sessions=60, customers=40, seed=11)
    paths = [str(truth["files"]["msc.ber"]), str(truth["files"]["pgw.ber"])]
    records = cio.load(paths, "3gpp-cdr", default_region="GB").compute()
    quarantine = cio.load_quarantine(paths, "3gpp-cdr", default_region="GB").compute()
    protected = protect(records, load_policy("default"), key=KEY)
    stitched = stitch(protected)
    return {"truth": truth, "records": records, "quarantine": quarantine,
            "protected": protected, "stitched": stitched}  # fmt: skip


def test_counts_reconcile(pipeline: dict) -> None:
    assert len(pipeline["records"]) == len(pipeline["truth"]["records"])
    assert pipeline["quarantine"].empty


def test_identities_are_tokenized(pipeline: dict) -> None:
    p = pipeline["protected"]
    ids = set(pipeline["truth"]["identities"])
    for col in ("imsi", "imei", "msisdn", "a_number", "b_number"):
        values = set(p[col].dropna().astype(str))
        assert values and not values & ids, col
    assert "pdp_address" not in p.columns
    # cells are network elements: kept (as for device measurements), never an identity
    assert not set(p["cell"].dropna().astype(str)) & ids
    # the same subscriber gets the same token as MSISDN and as calling party
    mo = p[p["leg"].eq("orig") & p["service"].eq("voice")]
    assert (mo["msisdn"] == mo["a_number"]).all()


def test_partials_stitched_into_one_session_each(pipeline: dict) -> None:
    s = pipeline["stitched"]
    truth = pipeline["truth"]
    data = s[s["service"] == "data"].copy()
    sessions = truth["sessions"]
    assert len(data) == len(sessions)
    assert int(data["src_partials"].sum()) == int(sessions["partials"].sum())
    # stitched volumes and durations equal the sessions' totals (order by total volume)
    got = data[["volume_up_bytes", "volume_down_bytes", "duration_s"]].astype(float)
    want = sessions[["volume_up_bytes", "volume_down_bytes", "duration_s"]].astype(float)
    key = ["volume_up_bytes", "volume_down_bytes"]
    got = got.sort_values(key).reset_index(drop=True)
    want = want.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    assert int((data["closing_cause"] == 4).sum()) == int(sessions["abnormal"].sum())
    voice = s[(s["service"] == "voice")]
    calls = truth["calls"]
    assert len(voice) == len(calls)
    assert int(voice["src_partials"].sum()) == int(calls["partials"].sum())
    answered = voice[voice["outcome"] == "answered"]
    assert np.isclose(answered["billsec_s"].sum(), calls.loc[calls["outcome"] == "answered",
                                                             "billsec_s"].sum())  # fmt: skip


def test_kqi_counters_equal_truth(pipeline: dict) -> None:
    s = pipeline["stitched"]
    truth = pipeline["truth"]
    sums = formulas.contributions(s).sum()
    sessions = truth["sessions"]
    assert sums["data_sessions"] == len(sessions)
    assert sums["data_abnormal"] == int(sessions["abnormal"].sum())
    assert sums["data_up_bytes"] == int(sessions["volume_up_bytes"].sum())
    assert sums["data_down_bytes"] == int(sessions["volume_down_bytes"].sum())
    assert sums["data_duration_ms"] == int(sessions["duration_s"].sum() * 1000)
    for rat in ("eutran", "nr", "utran"):
        assert sums[f"data_sessions_{rat}"] == int((sessions["rat"] == rat).sum())
    assert sums["data_sessions_geran"] == 0
    assert sums["sms_attempts"] == len(truth["sms"])
    assert sums["sms_failures"] == int(truth["sms"]["failed"].sum())
    calls = truth["calls"]
    mo = calls[calls["leg"] == "moCallRecord"]
    assert sums["attempts"] == len(calls)  # each leg is an attempt at its MSC
    assert sums["drops"] == int(calls["dropped"].sum())
    # the same counters unstitched (partials counted once as sessions) and per customer
    raw = formulas.contributions(pipeline["protected"]).sum()
    for c in ("data_sessions", "data_abnormal", "data_up_bytes", "sms_attempts", "attempts"):
        assert raw[c] == sums[c], c
    per_customer = formulas.contributions(s).groupby(s["a_number"].to_numpy()).sum()
    assert int(per_customer["data_sessions"].sum()) == len(sessions)
    ind = formulas.indicators(per_customer)
    shares = ind[[f"data_share_{r}" for r in formulas.DATA_RATS]].sum(axis=1)
    assert np.allclose(shares[per_customer["data_sessions"] > 0], 1.0)
    assert ind["data_share_eutran"].notna().sum() == (per_customer["data_sessions"] > 0).sum()
    total = formulas.indicators(sums.to_frame().T)
    assert total["sms_failure_ratio"].iloc[0] == pytest.approx(truth["sms"]["failed"].mean())
    assert len(mo) > 0


def test_rollup_per_node_group_and_customer(pipeline: dict) -> None:
    from cemkit.kqi.rollup import rollup
    from cemkit.model.spec import ServiceModel

    s = pipeline["stitched"]
    sessions = pipeline["truth"]["sessions"]
    data = s[s["service"] == "data"]
    token = data["a_number"].value_counts().index[0]  # the busiest data customer's pseudonym
    nodes = sorted(data["node"].unique())  # the two PGWs, as protected (IP addresses coded)
    assert len(nodes) == 2
    model = ServiceModel.from_yaml_text(f"""
name: mobile
groups:
  - {{name: pgw1, match: {{switches: ["{nodes[0]}"]}}}}
  - {{name: pgw2, match: {{switches: ["{nodes[1]}"]}}}}
customers:
  - {{name: busiest, pseudonyms: ["{token}"]}}
""")  # fmt: skip
    table = rollup(s, model, freqs=["day"]).table
    day = table.groupby(["object_kind", "object"])[["data_sessions", "data_up_bytes",
                                                    "sms_attempts"]].sum()  # fmt: skip
    for name, node in (("pgw1", nodes[0]), ("pgw2", nodes[1])):
        on = data[data["node"] == node]
        assert day.loc[("group", name), "data_sessions"] == len(on)
        assert day.loc[("group", name), "data_up_bytes"] == int(on["volume_up_bytes"].sum())
    assert day.loc[[("group", "pgw1"), ("group", "pgw2")], "data_up_bytes"].sum() == int(
        sessions["volume_up_bytes"].sum()
    )
    busiest = data[data["a_number"] == token]
    assert day.loc[("customer", "busiest"), "data_sessions"] == len(busiest)
    assert "data_abnormal_release_ratio" in table.columns
