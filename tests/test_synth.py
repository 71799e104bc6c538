import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cemkit import config, schema, synth


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path):
    synth.generate(tmp_path / "a", records=5_000, seed=3, incidents=1)
    synth.generate(tmp_path / "b", records=5_000, seed=3, incidents=1)
    synth.generate(tmp_path / "c", records=5_000, seed=4, incidents=1)
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert a == b
    assert set(a) == set(c) and a["records/part-00000.parquet"] != c["records/part-00000.parquet"]
    assert {
        "truth.json",
        "truth/part-00000.parquet",
        "formats/asterisk/Master.csv",
        "formats/freeswitch/Master.csv",
    } <= set(a)


@pytest.fixture(scope="module")
def world(small_world):
    out, truth = small_world
    records = schema.conform(pd.read_parquet(out / "records"))
    gt = pd.read_parquet(out / "truth")
    return out, truth, records, gt


def test_exact_count_and_valid_schema(world):
    _, truth, records, gt = world
    assert len(records) == truth["records"] == 20_000
    assert schema.validate(records) == []
    assert records["record_id"].is_unique
    assert (gt["record_id"].to_numpy() == records["record_id"].to_numpy()).all()


def test_counts_match_records(world):
    _, truth, records, gt = world
    c = truth["counts"]
    assert c["cdr"] == (records["record_kind"] == "cdr").sum()
    assert c["xdr"] == (records["record_kind"] == "xdr").sum()
    assert c["sms"] == (records["service"] == "sms").sum()
    assert c["cdr"] + c["xdr"] == truth["records"]
    cdr = records["record_kind"] == "cdr"
    xdr_keys = set(gt.loc[~cdr, "call_key"])
    cdr_keys = set(gt.loc[cdr, "call_key"])
    assert len(xdr_keys - cdr_keys) == c["xdr_only_attempts"]
    assert len(xdr_keys & cdr_keys) == c["xdr_with_cdr"]
    term = records["leg"] == "term"
    assert term.groupby(gt["call_key"]).any().sum() == c["two_leg_calls"]
    assert c["voice_cdrs_in_formats"] == (cdr & (records["service"] == "voice")).sum()


def test_partial_records_tile_the_call(world):
    _, truth, records, gt = world
    part = records[records["partial_seq"].notna()].assign(call_key=gt["call_key"])
    assert part["call_id"].nunique() >= truth["counts"]["partial_calls"] > 0
    for _, g in part.groupby("call_id"):
        g = g.sort_values("partial_seq")
        assert list(g["partial_seq"]) == list(range(1, len(g) + 1))
        # Consecutive partials: one ends where the next starts, each at most the interval long.
        assert (g["start"].iloc[1:].to_numpy() == g["end"].iloc[:-1].to_numpy()).all()
        assert (g["billsec_s"] <= config.PARTIAL_RECORD_INTERVAL_S).all()
        assert g["cause_q850"].iloc[:-1].isna().all() and g["cause_q850"].iloc[-1] is not pd.NA


def test_two_legs_share_parties_and_start_within_two_seconds(world):
    _, _, records, gt = world
    voice = records.assign(call_key=gt["call_key"])
    voice = voice[
        (voice["record_kind"] == "cdr")
        & voice["leg"].notna()
        & voice["partial_seq"].fillna(1).eq(1)
    ]
    both = voice.groupby("call_key").filter(lambda g: set(g["leg"]) == {"orig", "term"})
    assert len(both) > 0
    for _, g in list(both.groupby("call_key"))[:200]:
        o, t = g[g["leg"] == "orig"].iloc[0], g[g["leg"] == "term"].iloc[0]
        assert (o["a_number"], o["b_number"]) == (t["a_number"], t["b_number"])
        assert o["node"] != t["node"]
        assert pd.Timedelta(0) <= t["start"] - o["start"] <= pd.Timedelta(seconds=2)


def test_incidents_in_truth_are_visible_in_records(world):
    _, truth, records, _ = world
    assert len(truth["incidents"]) == 2
    voice = records[
        (records["record_kind"] == "cdr")
        & (records["service"] == "voice")
        & (records["leg"].fillna("") != "term")
    ]
    for inc in truth["incidents"]:
        start, end = pd.Timestamp(inc["start"]), pd.Timestamp(inc["end"])
        node = voice["node"] == inc["group"]
        inside = node & (voice["start"] >= start) & (voice["start"] < end)
        outside = node & ~inside
        asr_in = (voice.loc[inside, "outcome"] == "answered").mean()
        asr_out = (voice.loc[outside, "outcome"] == "answered").mean()
        assert inside.sum() > 5
        assert asr_in < asr_out - 0.15, (inc, asr_in, asr_out)
        assert inc["group"] in synth.SWITCHES


def test_clean_world_has_no_incidents(tmp_path):
    truth = synth.generate(tmp_path, records=3_000, seed=5, incidents=0, formats=False)
    assert truth["incidents"] == []
    assert not (tmp_path / "formats").exists()
    on_disk = json.loads((tmp_path / "truth.json").read_text())
    assert on_disk == json.loads(json.dumps(truth))


def test_numbers_belong_to_the_numbering_plans(world):
    _, truth, records, _ = world
    prefixes = tuple(r["prefix"] for r in truth["world"]["regions"])
    a = records["a_number"].astype(str)
    assert a.str.fullmatch(r"\+\d{8,15}").all()
    assert a.str.startswith(prefixes).all()
    import phonenumbers

    for number in a.drop_duplicates().head(300):
        assert phonenumbers.is_possible_number(phonenumbers.parse(number)), "impossible number"


def test_asterisk_file_has_cdr_csv_shape(world, samples_dir):
    out = world[0]
    ours = (out / "formats" / "asterisk" / "Master.csv").read_text().splitlines()
    theirs = (samples_dir / "asterisk" / "lab-pbx-Master.csv").read_text().splitlines()
    import csv
    import re

    text = r'"(?:[^"]|"")*"'
    time = r'"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"'
    shape = re.compile(
        "^"
        + ",".join([text] * 9)
        + f",{time},(?:{time})?,{time},"
        + r'\d+,\d+,"(?:ANSWERED|NO ANSWER|BUSY|FAILED|CONGESTION)","DOCUMENTATION","[\d.]+",""$'
    )
    assert all(shape.match(line) for line in theirs), "the pattern describes the real sample"
    bad = [i for i, line in enumerate(ours) if not shape.match(line)]
    assert bad == [], ours[bad[0]] if bad else None
    rows = list(csv.reader(ours))
    assert {len(r) for r in rows} == {18}
    unanswered = [line for line in ours if '"NO ANSWER"' in line]
    assert unanswered and all('",,"' in line for line in unanswered)


def test_freeswitch_file_has_example_template_shape(world, samples_dir):
    out, _, _, _ = world
    import csv

    ours = list(csv.reader((out / "formats" / "freeswitch" / "Master.csv").open()))
    theirs = list(csv.reader((samples_dir / "freeswitch" / "Master.csv").open()))
    assert {len(r) for r in ours} == {len(r) for r in theirs} == {15}
    raw = (out / "formats" / "freeswitch" / "Master.csv").read_text().splitlines()
    assert all(line.startswith('"') and line.endswith('"') for line in raw)
    assert all(line.count('","') == 14 for line in raw if '""' not in line.strip('"'))
    causes = {r[9] for r in ours}
    assert "NORMAL_CLEARING" in causes and causes <= set(synth.outcomes.FREESWITCH_CAUSE_CODES)


def test_xdr_carry_pdd_and_sip_status(world):
    _, _, records, _ = world
    x = records[records["record_kind"] == "xdr"]
    assert x["sip_status"].notna().all()
    assert x.loc[x["outcome"] == "answered", "pdd_ms"].notna().all()
    assert np.isin(
        x["sip_status"].astype(int), [200, 480, 408, 486, 487, 603, 404, 484, 500, 502, 504, 503]
    ).all()


def test_chunked_generation_is_identical_for_any_worker_count(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "CHUNK_RECORDS", 2_000)
    one = synth.generate(tmp_path / "one", records=6_000, seed=9, days=3, workers=1)
    two = synth.generate(tmp_path / "two", records=6_000, seed=9, days=3, workers=2)
    assert one == two
    assert digest(tmp_path / "one") == digest(tmp_path / "two")
    assert len(list((tmp_path / "one" / "records").glob("*.parquet"))) == 3
    records = pd.read_parquet(tmp_path / "one" / "records")
    assert len(records) == 6_000 and records["record_id"].is_unique
    gt = pd.read_parquet(tmp_path / "one" / "truth")
    # Keys of different chunks never collide.
    assert gt.groupby("call_key")["record_id"].count().max() < 20
    lines = (tmp_path / "one" / "formats" / "asterisk" / "Master.csv").read_text().splitlines()
    assert len(lines) == one["counts"]["voice_cdrs_in_formats"]
    uniqueids = [line.rsplit(",", 2)[1] for line in lines]
    assert len(set(uniqueids)) == len(uniqueids)
