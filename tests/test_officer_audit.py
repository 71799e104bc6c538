"""`cemkit audit DIR`: the audit trail of protect and reveal runs, and of other runs' sections."""

import json

import pandas as pd
import pytest

from cemkit.cli import main
from cemkit.privacy.audit import audit_section, find_runs, format_audit, read_audit
from cemkit.privacy.keys import Key
from cemkit.privacy.policy import load_policy

try:  # tests as a package or as top-level modules (both layouts exist)
    from privacy_leaks import canonical, write_load_run
except ImportError:
    from privacy_leaks import canonical, write_load_run  # type: ignore[no-redef]

KEY_HEX = bytes(range(32)).hex()


@pytest.fixture
def protected(tmp_path, monkeypatch):
    monkeypatch.setenv("CEMKIT_KEY", KEY_HEX)
    df = pd.DataFrame({"src": ["+441632960961", "+15551230000", "+441632960961"],
                       "dst": ["+15551230000", "100", "+33123456789"]})  # fmt: skip
    run = tmp_path / "load"
    write_load_run(run, canonical(df, "test", "src", "dst"), ["garbage 020 7946 0958"], "t.csv")
    out = tmp_path / "runs" / "protected"
    assert main(["protect", str(run), "--policy", "research", "--out", str(out)]) == 0
    return out


def test_audit_prints_policy_key_columns_counts_and_versions(protected, capsys):
    capsys.readouterr()
    assert main(["audit", str(protected)]) == 0
    out = capsys.readouterr().out
    policy = load_policy("research")
    assert "policy          research version 2" in out
    assert f"policy sha256   {policy.sha256}" in out
    assert "key             id cemkit-research-2026, fingerprint " in out
    assert "counts          quarantine 1, records 3" in out
    assert "    fpe        a_number, b_number" in out
    assert "    scan_text  raw" in out
    assert "cemkit version  0." in out and "host " in out and "when " in out
    assert "re-identifications: none recorded" in out
    assert KEY_HEX not in out and "1632960961" not in out


def test_reveals_are_listed_and_outputs_verified(protected, tmp_path, capsys):
    assert main(["reveal", str(protected), "--policy", "research", "--reason", "case 17",
                 "--out", str(tmp_path / "runs" / "revealed")]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["audit", str(tmp_path / "runs"), "--verify"]) == 0
    out = capsys.readouterr().out
    assert out.count("Run ") == 2 and "(reveal)" in out and "(protect)" in out
    assert "re-identifications (1):" in out and "reason: 'case 17'" in out
    assert out.count("outputs verified: all match") == 2
    part = next((protected / "records").glob("*.parquet"))
    part.write_bytes(part.read_bytes() + b"tampered")
    assert main(["audit", str(protected), "--verify"]) == 1
    assert "sha256 differs from the manifest" in capsys.readouterr().out


def test_audit_section_of_other_runs_reads_the_same(tmp_path):
    key = Key.from_material(bytes(range(32)), key_id="cemkit-strict-2026")
    section = audit_section("report", load_policy("strict"), key=key,
                            columns={"a_number": "tokenize", "node": "keep"},
                            counts={"rows": 40, "suppressed_groups": 3})  # fmt: skip
    assert section["policy"]["min_group_size"] == 20
    assert section["key"] == {"id": "cemkit-strict-2026", "fingerprint": key.fingerprint}
    assert KEY_HEX not in json.dumps(section)
    run = tmp_path / "report-1"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"kind": "report", "audit": section}))
    record = read_audit(run)
    assert record.kind == "report" and record.counts == {"rows": 40, "suppressed_groups": 3}
    text = format_audit(record)
    assert "smallest group  20 customers in reports" in text
    assert "    tokenize   a_number" in text and "policy          strict version 2" in text


def test_missing_or_broken_manifests(tmp_path, capsys):
    assert main(["audit", str(tmp_path)]) == 1
    assert "no manifest.json here or one level below" in capsys.readouterr().err
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "manifest.json").write_text("{")
    assert find_runs(tmp_path) == [tmp_path / "r"]
    assert main(["audit", str(tmp_path)]) == 1
    assert "manifest cannot be read" in capsys.readouterr().err


def test_load_run_directories_show_as_raw_data(tmp_path, capsys):
    # The layout of cemkit.io.output.RunDir manifests (as `cemkit load` writes them).
    manifest = {"created_utc": "2026-11-26T11:43:54+00:00", "stages": ["load"],
                "load": {"format": "asterisk", "totals": {"rows_loaded": 7, "rows_read": 8}},
                "versions": {"cemkit": "0.1.0"}, "manifest_version": 1}  # fmt: skip
    run = tmp_path / "load-1"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert main(["audit", str(run), "--verify"]) == 1  # nothing to verify is not a pass
    out = capsys.readouterr().out
    assert "(load)" in out and "when            2026-11-26T11:43:54+00:00" in out
    assert "NONE recorded: treat the records as raw" in out
    assert "counts          rows_loaded 7, rows_read 8" in out
    assert "none listed with a checksum" in out
    # A stage of such a run directory that records an audit section is read from it.
    manifest["stages"].append("kqi")
    manifest["kqi"] = {"audit": audit_section("kqi", load_policy("default"), counts={"rows": 3})}
    (run / "manifest.json").write_text(json.dumps(manifest))
    record = read_audit(run)
    assert record.kind == "kqi" and record.policy["name"] == "default"
