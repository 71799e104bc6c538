"""`cemkit policy explain`: golden documents for every shipped policy, notebook display."""

import os
from pathlib import Path

import pytest

from cemkit.cli import main
from cemkit.privacy.explain import explain_html, explain_markdown, explanation
from cemkit.privacy.policy import POLICY_DIR, load_policy, parse_policy

GOLDEN = Path(__file__).parent / "golden"
SHIPPED = sorted(p.stem for p in POLICY_DIR.glob("*.yaml"))
UPDATE = os.environ.get("CEMKIT_UPDATE_GOLDEN") == "1"


def test_three_reviewed_policies_ship():
    assert {"default", "strict", "research"} <= set(SHIPPED)


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path}; run with CEMKIT_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs from the golden file; if the policy or the document changed on "
        "purpose, regenerate with CEMKIT_UPDATE_GOLDEN=1 and review the diff"
    )


@pytest.mark.parametrize("name", SHIPPED)
def test_markdown_matches_golden(name):
    _golden(f"explain_{name}.md", explain_markdown(load_policy(name)))


@pytest.mark.parametrize("name", SHIPPED)
def test_html_matches_golden(name):
    _golden(f"explain_{name}.html", explain_html(load_policy(name)))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_named_column_is_explained_with_key_id(name):
    policy = load_policy(name)
    doc = explain_markdown(policy)
    for column in [*policy.columns, *policy.quarantine]:
        assert f"| `{column}` |" in doc
    assert policy.sha256 in doc
    if policy.key:
        assert f"id {policy.key.id}" in doc


def test_document_says_what_a_recipient_learns():
    strict = explain_markdown(load_policy("strict"))
    default = explain_markdown(load_policy("default"))
    research = explain_markdown(load_policy("research"))
    assert "Kept number prefixes (digits): none" in strict
    assert "Kept number prefixes (digits): a_number (4), b_number (4)" in default
    assert "the first 4 digit(s) of each number (country code" in default
    assert "Reversible by key holders: a_number, b_number" in research
    assert "yes, by holders of key cemkit-research-2026 (`cemkit reveal`" in research
    assert "20 customers" in strict and "10 customers" in default


def test_caution_for_personal_data_kept_in_clear():
    policy = parse_policy(
        "name: lax\nversion: 1\ncolumns:\n  a_number: {action: keep}\n  outcome: {action: keep}\n"
    )
    doc = explanation(policy)
    rows = {r.column: r for r in doc["columns"]}
    assert rows["a_number"].caution and not rows["outcome"].caution
    assert "Personal data kept in clear: a_number" in explain_markdown(policy)
    assert 'class="caution"' in explain_html(policy)


def test_html_escapes_policy_text():
    policy = parse_policy(
        "name: x\nversion: 1\ndescription: '<script>alert(1)</script>'\n"
        "columns: {outcome: {action: keep, note: 'a < b & c'}}\n"
    )
    page = explain_html(policy)
    assert "<script>" not in page and "&lt;script&gt;" in page and "a &lt; b &amp; c" in page


def test_policy_rich_display_in_notebooks():
    policy = load_policy("default")
    assert policy._repr_markdown_() == explain_markdown(policy)
    fragment = policy._repr_html_()
    assert "<html" not in fragment and '<div class="cemkit-policy">' in fragment


def test_cli_explain_to_stdout_and_file(tmp_path, capsys):
    assert main(["policy", "explain", "strict"]) == 0
    assert capsys.readouterr().out == explain_markdown(load_policy("strict"))
    out = tmp_path / "strict.html"
    assert main(["policy", "explain", "strict", "--out", str(out)]) == 0
    assert out.read_text() == explain_html(load_policy("strict"))
    assert main(["policy", "explain", "nonexistent-policy"]) == 1
    assert "cannot be read" in capsys.readouterr().err
