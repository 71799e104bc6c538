"""Several sources in one run: Asterisk CDRs and SIP captures of the same calls, one key."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cemkit import synth
from cemkit.cli import main
from cemkit.io.sip.capgen import calls_for_xdrs, write_calls
from cemkit.runs import read_manifest, read_records, read_sources_file

KEY = "7f3a9c2e5b8d1f4a6c0e3b7d9a2f5c8e1b4d7a0c3f6e9b2d5a8c1f4e7b0a3d6c"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("sworld")
    truth = synth.generate(out, records=2_000, seed=3, incidents=0)
    recs = pd.read_parquet(out / "records")
    xdrs = recs[(recs["record_kind"] == "xdr") & (recs["service"] == "voice")]
    (out / "captures").mkdir()
    with open(out / "captures" / "probe.pcap", "wb") as fh:
        write_calls(fh, calls_for_xdrs(xdrs))
    return out, truth, recs


def test_cdrs_and_captures_are_correlated_in_one_run(world, tmp_path, monkeypatch, capsys):
    out, truth, recs = world
    monkeypatch.setenv("CEMKIT_KEY", KEY)
    run = tmp_path / "run"
    rc = main(["run", "--input", f"asterisk:{out / 'formats' / 'asterisk'}",
               "--input", f"sip-pcap:{out / 'captures'}", "--tz", truth["timezone"],
               "--region", "GB", "--model", str(out / "model.yaml"), "--out", str(run),
               "--scheduler", "threads"])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert f"{truth['counts']['xdr_only_attempts']} xDR-only attempt(s)" in printed
    manifest = read_manifest(run)
    load = manifest["load"]
    assert [s["format"] for s in load["sources"]] == ["asterisk", "sip-pcap"]
    t = load["totals"]
    assert t["rows_read"] == t["rows_loaded"] + t["rows_quarantined"]
    assert t["rows_loaded"] == truth["counts"]["voice_cdrs_in_formats"] + truth["counts"]["xdr"]
    assert manifest["correlate"]["matches"]["matched"] == truth["counts"]["xdr_with_cdr"]
    got = read_records(run).compute()
    assert (got["src_match"] == "xdr_only").sum() == truth["counts"]["xdr_only_attempts"]
    # a matched CDR carries its xDR's PDD (Asterisk CSV has none of its own)
    assert got.loc[got["src_match"] == "matched", "pdd_ms"].notna().all()
    # one key: the CDR and the capture of a call carry the same pseudonyms, never the numbers
    raw = set(recs["a_number"].dropna()) | set(recs["b_number"].dropna())
    blob = b"".join(p.read_bytes() for p in run.rglob("*") if p.is_file()).decode("latin-1")
    assert [n for n in raw if n in blob or n.lstrip("+") in blob] == []
    assert manifest["protect"]["key"]["id"] == "cemkit-default-2026"


def test_sources_file(tmp_path):
    (tmp_path / "sources.yaml").write_text(
        "sources:\n"
        "  - {format: asterisk, paths: [cdr/], tz: Europe/London, region: GB}\n"
        "  - {format: sip-pcap, paths: captures/}\n"
    )
    a, b = read_sources_file(tmp_path / "sources.yaml")
    assert (a.format, a.paths, a.tz, a.default_region) == (
        "asterisk",
        [str(tmp_path / "cdr")],
        "Europe/London",
        "GB",
    )
    assert (b.format, b.paths, b.tz) == ("sip-pcap", [str(tmp_path / "captures")], "UTC")
    (tmp_path / "bad.yaml").write_text(json.dumps({"sources": [{"format": "x", "path": "y"}]}))
    from cemkit.errors import InputError

    with pytest.raises(InputError, match="source 1"):
        read_sources_file(tmp_path / "bad.yaml")
