"""`cemkit policy check`: lint of every shipped policy, broken policies, checks against data."""

import pandas as pd
import pytest

from cemkit import schema
from cemkit.cli import main
from cemkit.privacy.check import check_policy, small_groups
from cemkit.privacy.policy import POLICY_DIR, load_policy

SHIPPED = sorted(p.stem for p in POLICY_DIR.glob("*.yaml"))


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_policies_pass(name, capsys):
    findings = check_policy(name)
    assert not [f for f in findings if f.severity in ("error", "warning")], findings
    assert main(["policy", "check", name, "--strict"]) == 0
    assert f"policy {name}: 0 error(s), 0 warning(s)" in capsys.readouterr().out


def test_strict_names_every_column_correlation_needs():
    # record_id (a log line) was left to the default and dropped, and the pipeline then failed
    notes = [f for f in check_policy("strict") if f.severity == "note"]
    assert not any("record_id" in f.message for f in notes)
    rules = {where: rule for where, rule in load_policy("strict").rules()}
    assert rules["columns.record_id"].action == "tokenize"
    assert rules["columns.end"].action == "keep" and rules["columns.start"].action == "keep"


def test_unknown_column_is_an_error_naming_it(tmp_path, capsys):
    path = write(tmp_path, "name: t\nversion: 1\ncolumns: {a_numbr: {action: drop}}\n")
    assert main(["policy", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "ERROR" in out and "columns.a_numbr: unknown column; did you mean 'a_number'?" in out


def test_personal_data_kept_in_clear_and_default_keep_are_errors(tmp_path):
    path = write(tmp_path, "name: t\nversion: 1\ndefault: keep\n"
                 "columns:\n  a_number: {action: keep}\n  outcome: {action: keep}\n"
                 "quarantine: {raw: {action: keep}}\n")  # fmt: skip
    errors = {f.where for f in check_policy(path) if f.severity == "error"}
    assert {"default", "columns.a_number", "quarantine.raw"} <= errors
    assert "columns.outcome" not in errors


def test_long_prefix_and_small_k_are_warnings(tmp_path, capsys):
    path = write(tmp_path, "name: t\nversion: 1\nkey: {id: k, env: CEMKIT_KEY}\n"
                 "report: {min_group_size: 3}\n"
                 "columns: {a_number: {action: tokenize, keep_digits: 8}}\n")  # fmt: skip
    warnings = {f.where for f in check_policy(path) if f.severity == "warning"}
    assert warnings == {"columns.a_number", "report.min_group_size"}
    assert main(["policy", "check", str(path)]) == 0  # warnings only
    assert main(["policy", "check", str(path), "--strict"]) == 1


def test_small_groups_counts_distinct_numbers_per_prefix():
    import pyarrow as pa

    values = pa.array(["+442079460001"] * 5 + [f"+44207946{i:04d}" for i in range(12)]
                      + ["+33123456789", "+33123456780", None, "100"])  # fmt: skip
    assert small_groups(values, 3, 10) == {
        "groups": 2,
        "small_groups": 1,
        "numbers": 14,
        "numbers_in_small": 2,
    }
    assert small_groups(values, 2, 2)["small_groups"] == 0
    assert small_groups(values, 2, 3)["small_groups"] == 1
    assert small_groups(values, 12, 2)["numbers"] == 0  # nothing long enough to keep 12


@pytest.fixture
def data_dir(tmp_path):
    # 40 London numbers and 3 in one small Paris range: 4 kept digits leave a group of 3.
    a = [f"+4420794{i:05d}" for i in range(40)] + ["+33142000001", "+33142000002", "+33142000003"]
    df = pd.DataFrame({"a_number": a, "b_number": a[::-1], "outcome": "answered",
                       "src_extra": "x"})  # fmt: skip
    for name, dtype in schema.pandas_dtypes(schema.CANONICAL).items():
        if name in df:
            df[name] = df[name].astype(dtype)
    (tmp_path / "run" / "records").mkdir(parents=True)
    df.to_parquet(tmp_path / "run" / "records" / "part-00000.parquet", index=False)
    return tmp_path / "run"


def test_prefix_groups_under_k_in_data_are_warnings_without_values(data_dir, capsys):
    assert main(["policy", "check", "default", "--data", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert (
        "WARNING columns.a_number: keeping 4 digits leaves 1 of 2 prefix group(s) with fewer "
        "than k = 10 distinct numbers in the data (3 of 43 numbers, 7.0%)" in out
    )
    assert "keep_digits 2 or less would leave every group with 10 or more" not in out
    assert "no kept prefix passes; keep none" in out  # +33 alone holds 3 numbers
    assert "+3314" not in out and "+33142000001" not in out  # counts only, never values
    assert "columns.start: named by the policy but not in the data" in out
    assert "left to the default and therefore dropped: src_extra" in out
    assert main(["policy", "check", "default", "--data", str(data_dir), "--strict"]) == 1


def test_strict_policy_has_no_prefix_to_measure(data_dir):
    findings = check_policy("strict", data_dir)
    assert not any("prefix group" in f.message for f in findings)


def test_missing_data_dir_is_an_input_error(tmp_path, capsys):
    assert main(["policy", "check", "default", "--data", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_policies_against_synthetic_data(name, small_world):
    world, _ = small_world
    findings = check_policy(name, world)
    assert not [f for f in findings if f.severity == "error"], findings
    if name == "default":  # 4 kept digits: every prefix group of the synthetic world is large
        assert any("prefix group(s) of 4 digits holds at least k = 10" in f.message
                   for f in findings)  # fmt: skip


def test_several_policies_at_once_for_pre_commit(tmp_path, capsys):
    bad = write(tmp_path, "name: t\nversion: 1\ncolumns: {a_number: {action: keep}}\n")
    assert main(["policy", "check", "default", "strict", "research"]) == 0
    assert main(["policy", "check", "default", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "policy default: 0 error(s)" in out and "policy " + str(bad) + ": 1 error(s)" in out


def test_a_kept_src_column_is_judged_by_what_its_loader_declares(tmp_path):
    # declared not personal by the sip-pcap loader: no warning; declared personal (the caller's
    # address): an error; declared by no loader: a warning to confirm it holds nothing personal
    path = write(tmp_path, "name: t\nversion: 1\ncolumns:\n"
                 "  src_sip_clock_adjusted: {action: keep}\n"
                 "  src_sip_caller_addr: {action: keep}\n"
                 "  src_made_up: {action: keep}\n")  # fmt: skip
    found = {(f.where, f.severity) for f in check_policy(str(path))}
    assert not {s for w, s in found if w == "columns.src_sip_clock_adjusted"} & {"error", "warning"}
    assert ("columns.src_sip_caller_addr", "error") in found
    assert ("columns.src_made_up", "warning") in found
