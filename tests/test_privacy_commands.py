"""`cemkit protect` / `cemkit reveal` sub-commands: run directories, manifests, atomic output."""

import argparse
import hashlib
import json

import pandas as pd
import pytest
from privacy_leaks import canonical, write_load_run

from cemkit.cli import main
from cemkit.errors import OutputError
from cemkit.privacy import commands
from cemkit.privacy.keys import Key

KEY_HEX = bytes(range(32)).hex()
RESEARCH = """
name: research-test
version: 3
key: {id: research-2026, env: CEMKIT_KEY}
columns:
  record_id: {action: keep}
  a_number: {action: fpe, keep_digits: 2}
  b_number: {action: tokenize, keep_digits: 2}
  start: {action: generalize, every: 1h}
"""


@pytest.fixture(autouse=True)
def threads(monkeypatch):
    monkeypatch.setenv("CEMKIT_SCHEDULER", "threads")  # no cluster start-up in unit tests


def cli(*argv):
    return main(list(argv))


def test_registered_with_argparse():
    parser = argparse.ArgumentParser(prog="cemkit")
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["protect", "IN", "--policy", "default", "--out", "OUT"])
    assert args.func is commands._cmd_protect
    with pytest.raises(SystemExit):
        parser.parse_args(["reveal", "IN", "--policy", "p", "--out", "o"])  # --reason required


@pytest.fixture
def run(tmp_path):
    df = pd.DataFrame({"src": ["+441632960961", "+15551230000", "+441632960961"],
                       "dst": ["+15551230000", "100", "+33123456789"],
                       "name": ["Ann", "Bob", "Ann"]})  # fmt: skip
    records = canonical(df, "test", "src", "dst")
    path = tmp_path / "load"
    write_load_run(path, records, ['"Ann" <+441632960961>,x', "garbage 020 7946 0958"], "t.csv")
    return path


def test_protect_writes_records_quarantine_and_manifest(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CEMKIT_KEY", KEY_HEX)
    out = tmp_path / "protected"
    assert cli("protect", str(run), "--policy", "default", "--out", str(out)) == 0
    assert "protected 3 record(s) and 2 quarantined row(s)" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"] == ["load", "protect"] and manifest["load"]["format"] == "test"
    section = manifest["protect"]
    assert section["policy"]["name"] == "default" and len(section["policy"]["sha256"]) == 64
    assert section["key"]["id"] == "cemkit-default-2026" and "fingerprint" in section["key"]
    assert KEY_HEX not in (out / "manifest.json").read_text()
    assert section["columns"]["a_number"] == "tokenize"
    assert section["columns"]["src_name"] == "drop"
    assert section["counts"] == {"records": 3, "quarantine": 2}
    assert manifest["upstream"]["path"] == str(run)
    records = pd.read_parquet(out / "records")
    assert "src_name" not in records.columns and len(records) == 3
    assert records["a_number"][0] == records["a_number"][2] != records["a_number"][1]
    assert records["a_number"][1] == records["b_number"][0]  # same number, same token
    quarantine = pd.read_parquet(out / "quarantine")
    assert quarantine["raw"].tolist() == ['"<PERSON>" <<PHONE_NUMBER>>,x', "garbage <PHONE_NUMBER>"]
    assert not list(tmp_path.glob(".protected.*"))


def test_protect_errors_leave_no_output(run, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CEMKIT_KEY", raising=False)
    out = tmp_path / "protected"
    assert cli("protect", str(run), "--policy", "default", "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert "CEMKIT_KEY is not set" in err
    assert not out.exists() and not list(tmp_path.glob(".protected.*"))
    monkeypatch.setenv("CEMKIT_KEY", KEY_HEX)
    assert cli("protect", str(tmp_path), "--policy", "default", "--out", str(out)) == 1
    assert "is not a complete run directory" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nversion: 1\ncolumns: {a_number: {action: hash}}\n")
    assert cli("protect", str(run), "--policy", str(bad), "--out", str(out)) == 1
    assert "unknown action 'hash'" in capsys.readouterr().err


def test_reveal_decrypts_fpe_and_is_recorded(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CEMKIT_KEY", KEY_HEX)
    policy = tmp_path / "research.yaml"
    policy.write_text(RESEARCH)
    protected, revealed = tmp_path / "p", tmp_path / "r"
    assert cli("protect", str(run), "--policy", str(policy), "--out", str(protected)) == 0
    sealed = (protected / "manifest.json").read_bytes()
    enc = pd.read_parquet(protected / "records")["a_number"].tolist()
    assert enc[0] != "+441632960961" and len(enc[0]) == 13 and enc[0].startswith("+44")
    assert cli("reveal", str(protected), "--policy", str(policy), "--reason", "case 17",
               "--out", str(revealed)) == 0  # fmt: skip
    got = pd.read_parquet(revealed / "records")
    assert got["a_number"].tolist() == ["+441632960961", "+15551230000", "+441632960961"]
    assert got["b_number"].tolist() == pd.read_parquet(protected / "records")["b_number"].tolist()
    manifest = json.loads((revealed / "manifest.json").read_text())
    event = manifest["reveal"]
    assert event["reason"] == "case 17" and event["columns"] == ["a_number"] and event["by"]
    assert manifest["stages"] == ["load", "protect", "reveal"]
    # the protected run's manifest is sealed: the event goes to its append-only log
    assert (protected / "manifest.json").read_bytes() == sealed
    assert "reveals" not in json.loads(sealed)
    logged = [json.loads(line) for line in (protected / "reveals.jsonl").read_text().splitlines()]
    keep = ("time_utc", "by", "host", "reason", "columns", "key", "input", "out")
    assert logged == [{k: event[k] for k in keep}]
    # the revealed run records the checksum of the manifest it read, and it still holds
    assert manifest["upstream"]["manifest_sha256"] == hashlib.sha256(sealed).hexdigest()
    # a different policy text cannot be used to reveal
    policy.write_text(RESEARCH + "# changed\n")
    assert cli("reveal", str(protected), "--policy", str(policy), "--reason", "x",
               "--out", str(tmp_path / "r2")) == 1  # fmt: skip
    assert "not with the policy given" in capsys.readouterr().err


def test_run_protect_python_api(run, tmp_path):
    key = Key.from_material(bytes(range(32)), key_id="cemkit-default-2026")
    section = commands.run_protect(run, "default", tmp_path / "o", key=key, scheduler="sync")
    assert section["outputs"][0]["path"] == "records/part-00000.parquet"
    with pytest.raises(OutputError, match="already exists"):
        commands.run_protect(run, "default", tmp_path / "o", key=key, scheduler="sync")
    again = commands.run_protect(run, "default", tmp_path / "o", key=key, scheduler="sync",
                                 overwrite=True)  # fmt: skip
    assert again["outputs"] == section["outputs"]


@pytest.mark.slow
def test_protect_on_a_real_cluster_same_pseudonyms_and_clean_logs(run, tmp_path):
    import loopback_cluster as loopback

    key = Key.from_material(bytes(range(32)), key_id="cemkit-default-2026")
    local = commands.run_protect(run, "default", tmp_path / "local", key=key, scheduler="sync")
    (tmp_path / "cluster").mkdir()
    real = loopback.start(tmp_path / "cluster")
    try:
        remote = commands.run_protect(run, "default", tmp_path / "remote", key=key,
                                      scheduler=real.address)  # fmt: skip
        logs = "\n".join(real.logs().values())
    finally:
        real.stop()
    assert [o["sha256"] for o in remote["outputs"]] == [o["sha256"] for o in local["outputs"]]
    for secret in (KEY_HEX, "441632960961", "15551230000"):
        assert secret not in logs
