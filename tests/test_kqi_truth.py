"""KQIs of the real pipeline (synth → cemkit.run → KQIs) equal counts from the generator's truth.

The expected figures are computed here from the generator's own output, not from the pipeline:
the canonical records it wrote (``records/``) joined with its per-record truth (``truth/``:
``call_key`` says which records are one call). A call is counted once, at the switch of its
originating (or only) leg; a signaling xDR whose call has no CDR is an attempt billing never saw;
every xDR is one INVITE transaction, its final response its ``sip_status``. Every shipped policy
is run.
"""

import json

import numpy as np
import pandas as pd
import pytest

import cemkit
from cemkit import config, synth
from cemkit.kqi import formulas
from cemkit.model import load_model

KEY = "7f3a9c2e5b8d1f4a6c0e3b7d9a2f5c8e1b4d7a0c3f6e9b2d5a8c1f4e7b0a3d6c"
SIP_COUNTERS = ["invites", "invites_2xx", "invites_3xx", "invites_effective",
                "invites_ineffective", "sessions_completed"]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("tworld")
    # one day: the "day" bucket holds the whole world, its ratios are those of the world
    synth.generate(out, records=8_000, seed=31, incidents=1, days=1, formats=False, workers=1)
    return out, json.loads((out / "truth.json").read_text())


def _node_model(out, truth):
    """The world's regions and switches without country prefixes (for a policy keeping no digit)."""
    lines = ["name: nodes-only", "groups:"]
    for reg in truth["world"]["regions"]:
        lines.append(f"  - {{name: {reg['name']}, match: {{switches: {reg['switches']}}}}}")
        for sw in reg["switches"]:
            lines.append(f"  - {{name: {sw}, parent: {reg['name']}, match: {{switches: [{sw}]}}}}")
    path = out / "nodes-only.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


#: Every shipped policy, with the model that fits it: `strict` keeps no digit of a number, so
#: only node groups can be formed (its own header says so).
POLICIES = ["default", "research", "strict"]


@pytest.fixture(scope="module", params=POLICIES)
def policy_run(request, world, tmp_path_factory):
    out, truth = world
    model = _node_model(out, truth) if request.param == "strict" else out / "model.yaml"
    mp = pytest.MonkeyPatch()
    mp.setenv("CEMKIT_KEY", KEY)
    res = cemkit.run(out / "records", format="parquet", policy=request.param, model=model,
                     out=tmp_path_factory.mktemp("trun") / "run", scheduler="threads",
                     freqs=("day",))  # fmt: skip
    mp.undo()
    day = res.kqi[(res.kqi["freq"] == "day") & (res.kqi["object_kind"] == "group")]
    assert not day["object"].duplicated().any()
    return day.set_index("object"), load_model(model)


@pytest.fixture(scope="module")
def run_kqi(policy_run):
    return policy_run[0]


def _expected_per_switch(out):
    """Counters per switch from the generator's records and truth (no cemkit code involved)."""
    rec = pd.read_parquet(out / "records")
    truth = pd.read_parquet(out / "truth")
    assert (truth["record_id"].to_numpy() == rec["record_id"].to_numpy()).all()
    rec["call_key"] = truth["call_key"].to_numpy()
    voice = rec[rec["service"] == "voice"]
    cdr = voice[(voice["record_kind"] == "cdr") & (voice["leg"].fillna("orig") == "orig")]
    xdr = voice[voice["record_kind"] == "xdr"]
    parts = cdr.sort_values("partial_seq").groupby("call_key")
    calls = pd.DataFrame({"node": parts["node"].first(), "cause": parts["cause_q850"].last()})
    xdr_only = xdr[~xdr["call_key"].isin(calls.index)]
    matched = xdr[xdr["call_key"].isin(calls.index)]
    invites = pd.DataFrame({
        "node": np.r_[calls.loc[matched["call_key"], "node"].to_numpy(),
                      xdr_only["node"].to_numpy()],
        "status": np.r_[matched["sip_status"].to_numpy(float),
                        xdr_only["sip_status"].to_numpy(float)],
        "cause": np.r_[calls.loc[matched["call_key"], "cause"].to_numpy(float),
                       xdr_only["cause_q850"].to_numpy(float)],
    })  # fmt: skip
    st = invites["status"]
    ok = (st >= 200) & (st < 300)
    normal = invites["cause"].isna() | invites["cause"].isin(sorted(config.NORMAL_RELEASE_CAUSES))
    exp = pd.DataFrame({
        "node": invites["node"], "invites": st >= 200, "invites_2xx": ok,
        "invites_3xx": (st >= 300) & (st < 400),
        "invites_effective": st.isin(sorted(formulas.SEER_RESPONSES)),
        "invites_ineffective": st.isin(sorted(formulas.ISA_RESPONSES)),
        "sessions_completed": ok & normal,
    }).groupby("node").sum()  # fmt: skip
    exp["xdr_only_attempts"] = xdr_only.groupby("node").size()
    exp["attempts"] = calls.groupby("node").size() + exp["xdr_only_attempts"]
    return exp.fillna(0).astype("int64")


@pytest.fixture(scope="module")
def expected(world, policy_run):
    out, _ = world
    model = policy_run[1]
    per_switch = _expected_per_switch(out)
    rows = []
    for switch, row in per_switch.iterrows():
        for group in (switch, *model.ancestors(switch)):
            rows.append(row.rename(group))
    return pd.DataFrame(rows).groupby(level=0).sum()


def test_world_totals_equal_truth(run_kqi, world):
    _, truth = world
    counts = truth["counts"]
    switches = [s for r in truth["world"]["regions"] for s in r["switches"]]
    kqi = run_kqi.loc[switches]
    assert counts["xdr_only_attempts"] > 0
    assert kqi["xdr_only_attempts"].sum() == counts["xdr_only_attempts"]
    assert kqi["attempts"].sum() == counts["voice_attempts"] + counts["xdr_only_attempts"]
    assert kqi["invites"].sum() == counts["xdr"]  # every xDR is an INVITE with a final response


def test_attempts_and_invites_per_group_equal_truth(run_kqi, expected):
    columns = ["attempts", "xdr_only_attempts", *SIP_COUNTERS]
    assert "(unassigned)" not in run_kqi.index  # every record found its switch's group
    got = run_kqi.loc[expected.index, columns].rename_axis(None)
    pd.testing.assert_frame_equal(got, expected[columns], check_dtype=False, check_index_type=False)


@pytest.mark.parametrize("name", ["ser", "seer", "isa", "scr"])
def test_rfc6076_ratios_per_group_equal_truth(run_kqi, expected, name):
    e = expected
    den_not_3xx = e["invites"] - e["invites_3xx"]
    want = {
        "ser": e["invites_2xx"] / den_not_3xx,
        "seer": e["invites_effective"] / den_not_3xx,
        "isa": e["invites_ineffective"] / e["invites"],
        "scr": e["sessions_completed"] / e["invites"],
    }[name]
    assert (e["invites"] > 0).all()
    got = run_kqi.loc[e.index, name]
    np.testing.assert_allclose(got.to_numpy(float), want.to_numpy(float), rtol=0, atol=1e-12)
