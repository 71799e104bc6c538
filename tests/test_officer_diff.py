"""`cemkit policy diff`: changes in a reviewer's words, on every shipped pair and edge cases."""

import itertools

import pytest

from cemkit.cli import main
from cemkit.privacy.diff import diff_policies, format_diff
from cemkit.privacy.policy import POLICY_DIR, load_policy

SHIPPED = sorted(p.stem for p in POLICY_DIR.glob("*.yaml"))
BASE = """name: p
version: {version}
key: {{id: {key}, env: CEMKIT_KEY}}
default: {default}
report: {{min_group_size: {k}}}
columns:
  a_number: {a_number}
  outcome: {{action: keep}}
"""


def policy(tmp_path, name, version=1, key="k1", default="drop", k=10,
           a_number="{action: tokenize, keep_digits: 2}"):  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(BASE.format(version=version, key=key, default=default, k=k,
                                a_number=a_number))  # fmt: skip
    return path


@pytest.mark.parametrize("old,new", list(itertools.permutations(SHIPPED, 2)))
def test_every_shipped_pair(old, new, capsys):
    assert main(["policy", "diff", old, new]) == 0
    text = capsys.readouterr().out
    v_old, v_new = load_policy(old).version, load_policy(new).version
    assert text.startswith(f"# Policy changes: {old} v{v_old} -> {new} v{v_new}")
    assert load_policy(old).sha256 in text and load_policy(new).sha256 in text
    assert "`key`" in text  # every shipped policy has its own key id


@pytest.mark.parametrize("name", SHIPPED)
def test_policy_against_itself_has_no_change(name):
    assert diff_policies(name, name) == []
    assert "No change in what the policy does." in format_diff(name, name)


def test_default_to_strict_reads_as_stronger():
    changes = {c.where: c for c in diff_policies("default", "strict")}
    assert changes["columns.a_number"].verdict == "stronger"
    assert "4 fewer digit(s) readable" in changes["columns.a_number"].why
    assert changes["report.min_group_size"].verdict == "stronger"
    assert changes["quarantine.raw"].verdict == "stronger"
    assert changes["columns.record_id"].verdict == "stronger"  # a code, no longer in clear
    assert not [c for c in changes.values() if c.verdict == "weaker"]


def test_default_to_research_flags_reversibility_as_weaker():
    changes = {c.where: c for c in diff_policies("default", "research")}
    assert changes["columns.a_number"].verdict == "weaker"
    assert "now reversible by key holders" in changes["columns.a_number"].why
    assert "Protection gets weaker in places" in format_diff("default", "research")


def test_weakening_edits_are_caught(tmp_path):
    old = policy(tmp_path, "old")
    new = policy(tmp_path, "new", version=2, default="keep", k=5,
                 a_number="{action: tokenize, keep_digits: 6}")  # fmt: skip
    changes = {c.where: c for c in diff_policies(old, new)}
    assert changes["default"].verdict == "weaker"
    assert "pass through unprotected" in changes["default"].why
    assert changes["report.min_group_size"].verdict == "weaker"
    assert changes["columns.a_number"].verdict == "weaker"
    assert "4 more digit(s) readable" in changes["columns.a_number"].why
    assert "version" not in changes  # raised


def test_keep_and_key_change_and_unraised_version(tmp_path):
    old = policy(tmp_path, "old")
    new = policy(tmp_path, "new", key="k2", a_number="{action: keep}")
    changes = {c.where: c for c in diff_policies(old, new)}
    assert changes["columns.a_number"].verdict == "weaker"
    assert "now kept in clear" in changes["columns.a_number"].why
    assert changes["key"].verdict == "different"
    assert "do not link with old outputs" in changes["key"].why
    assert changes["version"].why == "the content changed but the version was not raised"
