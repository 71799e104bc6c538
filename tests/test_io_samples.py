"""Every CSV sample in ../shared/data/samples/ loads with the right counts and values."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import SAMPLES

import cemkit
from cemkit import schema
from cemkit.io import load_quarantine, plan

pytestmark = [
    pytest.mark.samples,
    pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared samples absent"),
]


def _load(path, fmt, **kw):
    p = plan(str(path), fmt, **kw)
    df = p.records().compute()
    q = p.quarantine().compute()
    schema.validate(df, p.loader.extension_columns())
    return df.reset_index(drop=True), q


def test_asterisk_master():
    df, q = _load(SAMPLES / "asterisk/lab-pbx-Master.csv", "asterisk", tz="Europe/Madrid")
    assert len(df) == 105 and len(q) == 0
    assert df.outcome.value_counts().to_dict() == {
        "answered": 94, "no_answer": 7, "failed": 2, "busy": 2,
    }  # fmt: skip
    first = df.iloc[0]
    # "2015-03-24 15:44:40" in Madrid (CET, UTC+1 before the March 29 switch) is 14:44:40 UTC.
    assert first.start == pd.Timestamp("2015-03-24 14:44:40", tz="UTC")
    assert first.end == pd.Timestamp("2015-03-24 14:44:43", tz="UTC")
    assert first.duration_s == 3.0 and first.billsec_s == 3.0
    assert first.a_number == "100" and first.a_number_kind == "extension"
    assert first.b_number == "700"
    assert first.call_id == "1427211880.0"
    assert first.src_clid == '"NOMBREUSUARIO" <100>'
    assert first.record_id == "asterisk:lab-pbx-Master.csv:1"
    assert df.record_id.is_unique
    assert df.answer[df.outcome != "answered"].isna().all()


def test_asterisk_per_accountcode_file():
    df, q = _load(SAMPLES / "asterisk/lab-pbx-100.csv", "asterisk", tz="Europe/Madrid")
    assert len(df) == 5 and len(q) == 0
    assert (df.src_accountcode == "100").all()
    assert df.b_number.iloc[0] == "s" and df.b_number_kind.iloc[0] == "unparsed"
    row = df.iloc[2]
    assert row.duration_s == 15 and row.billsec_s == 10
    # April: CEST, UTC+2.
    assert row.answer == pd.Timestamp("2015-04-07 13:27:05", tz="UTC")


def test_freeswitch_master():
    df, q = _load(SAMPLES / "freeswitch/Master.csv", "freeswitch", tz="UTC")
    assert len(df) == 273 and len(q) == 0
    assert df.src_hangup_cause.value_counts().to_dict() == {
        "NORMAL_CLEARING": 256, "RECOVERY_ON_TIMER_EXPIRE": 12, "ORIGINATOR_CANCEL": 5,
    }  # fmt: skip
    first = df.iloc[0]
    assert first.call_id == "bc522aa3-a544-4614-8c74-5318461b3779"
    assert first.outcome == "answered" and first.cause_q850 == 16
    assert first.start == pd.Timestamp("2013-05-30 21:29:32", tz="UTC")
    assert first.src_read_codec == "G722"
    second = df.iloc[1]
    assert pd.isna(second.answer) and second.outcome == "cancelled"
    timer = df[df.src_hangup_cause == "RECOVERY_ON_TIMER_EXPIRE"]
    assert (timer.cause_q850 == 102).all()
    assert (df[df.src_hangup_cause == "ORIGINATOR_CANCEL"].outcome == "cancelled").all()


def test_cucm_cdr_and_cmr():
    df, q = _load(SAMPLES / "cucm", "cucm", default_region="US")
    assert len(df) == 3 and len(q) == 0
    df = df.set_index("call_id")
    answered = df.loc["2-25447"]
    assert answered.outcome == "answered" and answered.cause_q850 == 16
    assert answered.released_by == "caller"
    assert answered.start == pd.Timestamp(1744993928, unit="s", tz="UTC")
    assert answered.answer == pd.Timestamp(1744993930, unit="s", tz="UTC")
    assert answered.billsec_s == 11 and answered.duration_s == 13
    assert answered.a_number == "+15033466594" and answered.a_number_kind == "e164"
    assert answered.src_orig_ip == "10.248.64.14" and answered.src_dest_ip == "10.248.64.17"
    # Two CMRs (one per phone): no packet lost, jitter 0 and 0, CCR 0.0000 and 0.0011.
    assert answered.loss_ratio == 0.0 and answered.jitter_ms == 0.0
    assert answered.src_concealment_ratio == pytest.approx(0.0011)
    assert pd.isna(answered.mos)  # these phones report no MLQK
    failed = df.loc["2-25449"]
    assert failed.outcome == "failed" and pd.isna(failed.answer)
    assert pd.isna(failed.loss_ratio)


def test_cucm_counts_in_run(tmp_path):
    from cemkit.errors import ResultWarning
    from cemkit.io.run import load_to_dir

    with pytest.warns(ResultWarning, match="stay unparsed"):  # no --region for the lab's numbers
        section = load_to_dir(plan(str(SAMPLES / "cucm"), "cucm"), tmp_path / "run")
    by_file = {Path(f["path"]).name: f for f in section["inputs"]}
    assert by_file["cdr.txt"]["rows_loaded"] == 3
    # CMR rows become quality metrics of their CDRs, not records: attached, not loaded
    cmr = by_file["cmr.txt"]
    assert cmr["rows_read"] == 2 and cmr["rows_loaded"] == 0 and cmr["rows_attached"] == 2


@pytest.mark.parametrize(
    ("name", "rows", "outcomes"),
    [("calls", 3600, {"answered": 3234, "no_answer": 366}), ("sms", 24333, {"answered": 24333})],
)
def test_copenhagen(name, rows, outcomes):
    df, q = _load(SAMPLES / f"copenhagen/{name}.csv", "generic", mapping=f"copenhagen-{name}")
    assert len(df) == rows and len(q) == 0
    assert df.outcome.value_counts().to_dict() == outcomes
    assert (df.source == "copenhagen").all()
    assert df.record_id.iloc[0] == f"copenhagen:{name}.csv:2"  # line 1 is the header
    raw = pd.read_csv(SAMPLES / f"copenhagen/{name}.csv")
    origin = pd.Timestamp("2013-01-01", tz="UTC")
    assert (df.start == origin + pd.to_timedelta(raw.timestamp, unit="s")).all()
    assert (df.a_number == raw["from"].astype(str)).all()
    if name == "calls":
        answered = raw.duration >= 0
        assert (df.duration_s[answered] == raw.duration[answered]).all()
        assert df.duration_s[~answered].isna().all()


def test_cemkit_load_is_the_api():
    ddf = cemkit.load(str(SAMPLES / "asterisk/lab-pbx-100.csv"), format="asterisk")
    assert len(ddf.compute()) == 5
    assert len(load_quarantine(str(SAMPLES / "asterisk"), "asterisk").compute()) == 0
