"""Privacy on every path (issue 16): one enforcement point, protection markers, the key rule,
source names, protect/reveal refusals and complete audits — on runs made by the real commands."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from privacy_leaks import leaks, number_forms

import cemkit
from cemkit.cli import main
from cemkit.errors import InputError, KeyMaterialError, PolicyError, PrivacyWarning
from cemkit.privacy.check import check_policy
from cemkit.privacy.enforce import (
    ONE_OFF_KEY_ID,
    enforce_policy,
    is_generated,
    is_protected,
    run_key,
    source_name,
)
from cemkit.privacy.keys import Key
from cemkit.privacy.policy import POLICY_DIR

KEY_HEX = bytes(range(32)).hex()
KEY = Key.from_material(bytes(range(32)), key_id="cemkit-default-2026")
#: An Asterisk account code that is a telephone number: the name of its per-account CDR file.
ACCOUNT = "441632960123"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from cemkit import synth

    out = tmp_path_factory.mktemp("enforce-world")
    truth = synth.generate(out, records=1500, seed=3, incidents=0)
    return out, truth


@pytest.fixture(scope="module")
def numbered(world, tmp_path_factory):
    """The world's Asterisk CDRs under a number-like file name, outside the world (real-looking
    input: not generated), with one broken line so that the quarantine has a row."""
    src, truth = world
    root = tmp_path_factory.mktemp("acct")
    path = root / "acct" / f"{ACCOUNT}.csv"
    path.parent.mkdir()
    text = (src / "formats" / "asterisk" / "Master.csv").read_text()
    path.write_text(text + '"broken","line"\n')
    return path, truth


def _bad_policy(tmp_path: Path) -> Path:
    data = yaml.safe_load((POLICY_DIR / "default.yaml").read_text())
    data["columns"]["a_number"] = {"action": "keep"}
    path = tmp_path / "keeps-numbers.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _load(path: Path, truth: dict, run: Path) -> None:
    code = main(["load", "asterisk", str(path), "--out", str(run),
                 "--tz", truth["timezone"], "--region", truth["default_region"],
                 "--scheduler", "sync"])  # fmt: skip
    assert code == 0


# --- case 1: the policy check is enforced on every path ------------------------------------------


def test_every_protect_path_refuses_a_policy_that_check_rejects(tmp_path, world, numbered,
                                                                monkeypatch, capsys):  # fmt: skip
    monkeypatch.setenv("CEMKIT_KEY", KEY_HEX)
    bad = _bad_policy(tmp_path)
    assert any(f.severity == "error" for f in check_policy(bad))
    records = pd.DataFrame({"a_number": ["+441632960961"]}, dtype="string[pyarrow]")
    with pytest.raises(PolicyError, match=r"fails `cemkit policy check` with 1 error"):
        cemkit.protect(records, bad)
    with pytest.raises(PolicyError, match="columns.a_number"):
        cemkit.protect(__import__("dask.dataframe").dataframe.from_pandas(records, 1), bad)
    path, truth = numbered
    _load(path, truth, tmp_path / "load")
    capsys.readouterr()
    assert main(["protect", str(tmp_path / "load"), "--policy", str(bad),
                 "--out", str(tmp_path / "p"), "--scheduler", "sync"]) == 1  # fmt: skip
    assert "fails `cemkit policy check`" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
    with pytest.raises(PolicyError, match="policy check"):
        cemkit.run(str(path), format="asterisk", policy=bad, model=world[0] / "model.yaml",
                   out=tmp_path / "run", scheduler="sync")  # fmt: skip
    assert not (tmp_path / "run").exists()
    with pytest.raises(PolicyError, match="policy check"):
        cemkit.process_batch(records, policy=bad, model=world[0] / "model.yaml")
    assert enforce_policy("default").name == "default"
    # a policy object edited after it passed is checked again
    from cemkit.privacy.policy import KeepRule, load_policy

    edited = load_policy("default")
    edited.columns["a_number"] = KeepRule(action="keep")
    with pytest.raises(PolicyError, match="columns.a_number"):
        cemkit.protect(records, edited, key=KEY)


def test_audit_names_a_modified_shipped_policy(tmp_path, numbered, monkeypatch, capsys):
    monkeypatch.setenv("CEMKIT_KEY", KEY_HEX)
    data = yaml.safe_load((POLICY_DIR / "default.yaml").read_text())
    data["columns"]["a_number"]["keep_digits"] = 3  # passes the check; still not "default"
    changed = tmp_path / "default.yaml"
    changed.write_text(yaml.safe_dump(data))
    path, truth = numbered
    _load(path, truth, tmp_path / "load")
    for name, policy in (("shipped", "default"), ("changed", str(changed))):
        assert main(["protect", str(tmp_path / "load"), "--policy", policy,
                     "--out", str(tmp_path / name), "--scheduler", "sync"]) == 0  # fmt: skip
    capsys.readouterr()
    main(["audit", str(tmp_path / "changed")])
    out = capsys.readouterr().out
    assert "default version 1  (modified: sha256 differs from the shipped policy)" in out
    main(["audit", str(tmp_path / "shipped")])
    assert "differs from the shipped" not in capsys.readouterr().out


# --- case 2: a one-off key for generated data only -----------------------------------------------


def test_one_off_key_only_for_generated_worlds(world, numbered, monkeypatch):
    monkeypatch.delenv("CEMKIT_KEY", raising=False)
    src, _ = world
    assert is_generated(src / "records") and not is_generated(numbered[0])
    assert json.loads((src / "manifest.json").read_text())["generated"]["by"] == "cemkit.synth"
    with pytest.raises(KeyMaterialError, match="CEMKIT_KEY is not set"):
        run_key("default", numbered[0])
    key = run_key("default", src / "records")
    assert key is not None and key.id == ONE_OFF_KEY_ID
    monkeypatch.setenv("CEMKIT_KEY", KEY_HEX)
    assert run_key("default", numbered[0]) == KEY


def test_run_on_generated_data_records_the_one_off_key_honestly(world, tmp_path, monkeypatch):
    monkeypatch.delenv("CEMKIT_KEY", raising=False)
    src, _ = world
    result = cemkit.run(
        str(src / "records"),
        format="parquet",
        policy="default",
        model=src / "model.yaml",
        out=tmp_path / "run",
        scheduler="sync",
    )
    key = result.manifest["protect"]["key"]
    assert key["id"] == ONE_OFF_KEY_ID and "one_off" in key
    assert key["fingerprint"] != KEY.fingerprint
    with pytest.raises(KeyMaterialError):  # the same records outside a generated world
        shutil.copytree(src / "records", tmp_path / "real")
        cemkit.run(
            str(tmp_path / "real"),
            format="parquet",
            policy="default",
            model=src / "model.yaml",
            out=tmp_path / "run2",
            scheduler="sync",
        )


@pytest.mark.slow
def test_usage_mining_notebook_fails_on_real_input_without_the_key(world, tmp_path, monkeypatch):
    import papermill

    from cemkit.report.runner import resolve_notebook

    monkeypatch.delenv("CEMKIT_KEY", raising=False)
    src, _ = world
    shutil.copytree(src / "records", tmp_path / "real")
    with pytest.raises(papermill.PapermillExecutionError, match="CEMKIT_KEY is not set"):
        papermill.execute_notebook(
            str(resolve_notebook("02_usage_mining")), str(tmp_path / "out.ipynb"),
            parameters={"input": str(tmp_path / "real"), "format": "parquet",
                        "model": str(src / "model.yaml"), "workdir": str(tmp_path / "w"),
                        "scheduler": "sync"},
            progress_bar=False, cwd=str(tmp_path),
        )  # fmt: skip


# --- cases 3, 4, 5, 9 on a number-named file through every command -------------------------------


def test_number_named_file_through_every_command_leaks_nothing(tmp_path, world, numbered,
                                                              monkeypatch, capsys):  # fmt: skip
    monkeypatch.setenv("CEMKIT_KEY", KEY_HEX)
    path, truth = numbered
    secrets = number_forms(ACCOUNT, "GB")
    load, prot, run = tmp_path / "load", tmp_path / "protected", tmp_path / "run"
    model = str(world[0] / "model.yaml")
    _load(path, truth, load)
    assert leaks(load, secrets), "the search must find the number where it is: the raw run"
    capsys.readouterr()
    code = main(["policy", "check", "default", "--data", str(load)])
    out = capsys.readouterr()
    assert code == 0 and "1 input file name(s) look like telephone or account numbers" in out.out
    said = out.out + out.err
    commands = [
        ["protect", str(load), "--policy", "default", "--out", str(prot), "--scheduler", "sync"],
        ["run", str(path), "--format", "asterisk", "--model", model, "--out", str(run),
         "--tz", truth["timezone"], "--region", truth["default_region"], "--scheduler", "sync"],
        ["correlate", str(prot / "records"), "--out", str(tmp_path / "calls"),
         "--scheduler", "sync"],
        ["kqi", str(prot), "--model", model, "--out", str(tmp_path / "kqi"),
         "--scheduler", "sync"],
        # a stage after a stage after protect: the marker travels with the outputs
        ["kqi", str(tmp_path / "calls"), "--model", model, "--out",
         str(tmp_path / "kqi2"), "--scheduler", "sync"],
        ["audit", str(prot), "--verify"],
        ["audit", str(run), "--verify"],
        ["policy", "check", "default", "--data", str(prot)],
    ]  # fmt: skip
    for argv in commands:
        assert main(argv) == 0, argv
        out = capsys.readouterr()
        said += out.out + out.err
    ids = pd.read_parquet(prot / "records")["record_id"]
    assert ids.str.startswith("asterisk:acct/#").all() or ids.str.startswith("asterisk:#").all()
    assert pd.read_parquet(prot / "quarantine")["file"].str.contains("#").all()
    assert is_protected(prot) and is_protected(prot / "records") and is_protected(run)
    for out_dir in (prot, run, tmp_path / "calls", tmp_path / "kqi", tmp_path / "kqi2"):
        found = leaks(out_dir, secrets)
        assert not found, f"{out_dir.name}: {sorted(set(found))[:5]}"
    assert not [s for s in secrets if s in said], "a command printed the number"


def test_stages_after_protect_refuse_raw_input(tmp_path, world, numbered, monkeypatch, capsys):
    monkeypatch.setenv("CEMKIT_KEY", KEY_HEX)
    path, truth = numbered
    load = tmp_path / "load"
    _load(path, truth, load)
    model = str(world[0] / "model.yaml")
    capsys.readouterr()
    assert main(["kqi", str(load), "--model", model, "--out", str(tmp_path / "k")]) == 1
    err = capsys.readouterr().err
    assert "never protected" in err and "--allow-raw" in err and ACCOUNT not in err
    assert not (tmp_path / "k" / "kqi" / "worst_customers.parquet").exists()
    assert main(["correlate", str(load / "records"), "--out", str(tmp_path / "c")]) == 1
    assert "never protected" in capsys.readouterr().err
    with pytest.warns(PrivacyWarning, match="RAW, unprotected data"):
        code = main(["kqi", str(load), "--model", model, "--out", str(tmp_path / "k"),
                     "--allow-raw", "--scheduler", "sync"])  # fmt: skip
    assert code == 0
    # generated worlds hold nobody's data: they pass without --allow-raw
    assert main(["kqi", str(world[0]), "--model", model, "--out", str(tmp_path / "g"),
                 "--scheduler", "sync"]) == 0  # fmt: skip


def test_protect_refuses_protected_input_and_reveal_what_it_cannot_reveal(
    tmp_path, numbered, monkeypatch, capsys
):
    monkeypatch.setenv("CEMKIT_KEY", KEY_HEX)
    path, truth = numbered
    _load(path, truth, tmp_path / "load")
    assert main(["protect", str(tmp_path / "load"), "--policy", "default",
                 "--out", str(tmp_path / "p"), "--scheduler", "sync"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["protect", str(tmp_path / "p"), "--policy", "default",
                 "--out", str(tmp_path / "pp"), "--scheduler", "sync"]) == 1  # fmt: skip
    assert "already protected (policy 'default')" in capsys.readouterr().err
    assert not (tmp_path / "pp").exists()
    before = (tmp_path / "p" / "manifest.json").read_text()
    assert main(["reveal", str(tmp_path / "p"), "--policy", "default", "--reason", "case 1",
                 "--out", str(tmp_path / "r"), "--scheduler", "sync"]) == 1  # fmt: skip
    assert "nothing to reveal" in capsys.readouterr().err
    assert (tmp_path / "p" / "manifest.json").read_text() == before  # no re-identification
    assert not (tmp_path / "r").exists()
    protected = cemkit.protect(pd.read_parquet(tmp_path / "load" / "records"), "default", key=KEY)
    with pytest.raises(InputError, match="already protected"):
        cemkit.protect(protected.head(), "default", key=KEY)


def test_revealed_runs_are_raw_again(tmp_path, world, numbered, monkeypatch):
    monkeypatch.setenv("CEMKIT_KEY", KEY_HEX)
    path, truth = numbered
    _load(path, truth, tmp_path / "load")
    research_key = bytes(range(32)).hex()
    monkeypatch.setenv("CEMKIT_KEY", research_key)
    assert main(["protect", str(tmp_path / "load"), "--policy", "research",
                 "--out", str(tmp_path / "p"), "--scheduler", "sync"]) == 0  # fmt: skip
    assert is_protected(tmp_path / "p")
    assert main(["reveal", str(tmp_path / "p"), "--policy", "research", "--reason", "case 7",
                 "--out", str(tmp_path / "r"), "--scheduler", "sync"]) == 0  # fmt: skip
    assert not is_protected(tmp_path / "r")
    from cemkit.kqi.api import run

    with pytest.raises(InputError, match="never protected"):
        run(tmp_path / "r", world[0] / "model.yaml")


def test_source_names_are_tokenized_with_the_key_and_masked_without():
    name = f"acct/{ACCOUNT}.csv"
    token = source_name(name, KEY)
    assert ACCOUNT not in token and token == source_name(name, KEY)  # stable: ids stay unique
    other = Key.from_material(bytes(32), key_id="cemkit-default-2026")
    assert source_name(name, other) != token
    assert source_name("cdr-20261126.csv", KEY) == "cdr-20261126.csv"  # a date, not a number
    assert source_name("Master.csv", KEY) == "Master.csv"
    assert source_name(name, None) == "acct/[number].csv"


# --- case 9: audit of `cemkit run` as complete as of `cemkit protect`; --verify fails ------------


def test_audit_of_a_run_directory_is_complete_and_verify_fails_unverified(
    tmp_path, world, numbered, monkeypatch, capsys
):
    monkeypatch.setenv("CEMKIT_KEY", KEY_HEX)
    path, truth = numbered
    run = tmp_path / "run"
    cemkit.run(str(path), format="asterisk", policy="default", model=world[0] / "model.yaml",
               out=run, tz=truth["timezone"], default_region=truth["default_region"],
               scheduler="sync")  # fmt: skip
    capsys.readouterr()
    assert main(["audit", str(run), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "host            not recorded" not in out
    assert "counts          " in out and "rows_loaded" in out
    assert "columns, by action applied:" in out and "tokenize   a_number, b_number" in out
    assert "quarantine columns, by action applied:" in out and "scan_text  raw" in out
    assert "key             id cemkit-default-2026" in out and "all match" in out
    manifest = json.loads((run / "manifest.json").read_text())
    part = next(o for o in manifest["outputs"] if o["path"].startswith("records/"))
    with (run / part["path"]).open("ab") as fh:
        fh.write(b"x")
    assert main(["audit", str(run), "--verify"]) == 1
    for where in (manifest, *(v for v in manifest.values() if isinstance(v, dict))):
        where.pop("outputs", None)  # a manifest that lists no checksum at all
    (run / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["audit", str(run), "--verify"]) == 1
    assert "NOT VERIFIED" in capsys.readouterr().out


def test_policy_review_lists_every_column_kept_in_clear_with_its_class():
    from cemkit.privacy.explain import explanation

    summary = "\n".join(explanation(cemkit.privacy.load_policy("default"))["summary"])
    line = next(s for s in summary.splitlines() if s.startswith("Every column kept in clear"))
    quasi = line.split("quasi (indirect identifier): ")[1].split(";")[0]
    for column in ("record_id", "start", "answer", "end", "quarantine.file"):
        assert column in quasi, column
    assert "none (not personal): source, record_kind" in line and "tokenized" in line
    assert "Personal data kept in clear: none" in summary  # no tn, direct id or free text


def test_protect_tokenizes_numbers_in_record_id_file_tags_only():
    ids = [f"asterisk:{ACCOUNT}.csv:1", f"asterisk:{ACCOUNT}:2", "asterisk:Master.csv:1234567",
           f"sip-pcap:{ACCOUNT}.pcap:12:0a0b0c0d", f"mapped{ACCOUNT}", None]  # fmt: skip
    records = pd.DataFrame({"record_id": ids, "a_number": "+441632960961"}, dtype="string[pyarrow]")
    out = cemkit.protect(records, "default", key=KEY)["record_id"].astype(object).tolist()
    token = source_name(ACCOUNT, KEY)
    assert out == [f"asterisk:{token}.csv:1", f"asterisk:{token}:2", "asterisk:Master.csv:1234567",
                   f"sip-pcap:{token}.pcap:12:0a0b0c0d", f"mapped{token}", pd.NA]  # fmt: skip
    assert len(set(out[:5])) == 5


def test_record_id_row_positions_are_positions_not_numbers():
    """``source:position`` ids (synthetic worlds): the position is kept, the source treated.

    Before, every id past ``synth:999999`` went through the number parser one row at a time
    (70 % of a 2M-record Parquet run) and came out as ``synth:#…``.
    """
    ids = ["synth:1234567", "synth:7", f"{ACCOUNT}:12", "synth:01632960961", "synth:2025550123",
           f"synth:{ACCOUNT}", "synth:1234567:9"]  # fmt: skip
    records = pd.DataFrame({"record_id": ids, "a_number": "+441632960961"}, dtype="string[pyarrow]")
    out = cemkit.protect(records, "default", key=KEY)["record_id"].astype(object).tolist()
    token = source_name(ACCOUNT, KEY)
    assert out[:3] == ["synth:1234567", "synth:7", f"{token}:12"]
    # a leading 0, ten or more digits: may be a number (not a row position), treated whole
    assert [out[3], out[4], out[5]] == [source_name(v, KEY) for v in ids[3:6]]
    assert ACCOUNT not in out[5] and out[3] != ids[3]
    assert out[6] == source_name("1234567", KEY).join(["synth:", ":9"])
