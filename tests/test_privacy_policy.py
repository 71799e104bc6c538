"""Policy loading: shipped policies, load-time errors naming the rule and fix, JSON Schema."""

import json
from pathlib import Path

import pytest

from cemkit.errors import PolicyError
from cemkit.privacy.policy import (
    POLICY_DIR,
    RULES,
    Policy,
    json_schema,
    load_policy,
    parse_policy,
)
from cemkit.schema import BY_NAME

HEAD = "name: t\nversion: 1\nkey: {id: k1, env: CEMKIT_KEY}\n"


def test_shipped_policies_load_and_drop_by_default():
    shipped = sorted(POLICY_DIR.glob("*.yaml"))
    assert shipped
    for path in shipped:
        policy = load_policy(path)
        assert policy.default == "drop"
        assert policy.key is not None and policy.key.env == "CEMKIT_KEY"


def test_default_policy_protects_every_tn_column_and_names_every_canonical_column():
    policy = load_policy("default")
    for name, col in BY_NAME.items():
        rule = policy.rule_for(name)
        if col.pii.value == "tn":
            assert rule.action in ("tokenize", "fpe", "drop")
        assert name in policy.columns, f"default.yaml does not say what happens to {name}"
    assert policy.rule_for("raw", quarantine=True).action in ("scan_text", "drop")
    assert policy.rule_for("src_anything").action == "drop"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("columns: {a_numbr: {action: keep}}",
         "columns.a_numbr: unknown column; did you mean 'a_number'"),
        ("columns: {a_number: {action: tokenise}}",
         "unknown action 'tokenise'; known actions: keep, drop"),
        ("columns: {a_number: {action: tokenize, keep_digit: 4}}",
         "columns.a_number: unknown parameter 'keep_digit'; allowed: note, keep_digits, length"),
        ("columns: {a_number: {action: tokenize, keep_digits: 40}}",
         "columns.a_number.keep_digits"),
        ("columns: {start: {action: tokenize}}", "does not apply to a time column"),
        ("columns: {a_number: {action: generalize, every: 1h}}",
         "does not apply to a string column"),
        ("columns: {a_number: {action: generalize, digits: 3, every: 1h}}", "exactly one of"),
        ("columns: {a_number: {action: fpe, tweak: xyz}}", "columns.a_number.tweak"),
        ("columns: {a_number: {}}", "has no `action:`"),
        ("columns: {a_number: {action: scan_text, entities: [SSN]}}", "entities"),
        ("columns: {src_x: {action: scan_text, regions: [UK]}}", "unknown region(s) UK"),
        ("columns: {src_x: {action: scan_text, entities: []}}", "columns.src_x.entities"),
        ("quarantine: {rawline: {action: drop}}", "quarantine.rawline: unknown quarantine column"),
        ("colums: {}", "unknown parameter 'colums'"),
        ("default: pass", "default"),
        ("columns: [a_number]", "columns"),
    ],
)  # fmt: skip
def test_load_time_errors_name_the_rule_and_fix(body, expected):
    with pytest.raises(PolicyError) as err:
        parse_policy(HEAD + body)
    assert expected in str(err.value)
    assert "policies/default.yaml" in str(err.value)


def test_key_needed_and_key_sources():
    with pytest.raises(PolicyError, match="need a key"):
        parse_policy("name: t\nversion: 1\ncolumns: {a_number: {action: tokenize}}")
    with pytest.raises(PolicyError, match="exactly one key source"):
        parse_policy("name: t\nversion: 1\nkey: {id: k, env: A, file: /x}")
    with pytest.raises(PolicyError, match="material|unknown parameter 'secret'"):
        parse_policy("name: t\nversion: 1\nkey: {id: k, secret: 00112233}")
    # labels need no key
    parse_policy("name: t\nversion: 1\ncolumns: {src_clid: {action: scan_text}}")


def test_yaml_errors_and_unsafe_yaml():
    with pytest.raises(PolicyError, match="not valid YAML at line"):
        parse_policy("name: t\n  version: : 1\n")
    with pytest.raises(PolicyError):
        parse_policy("!!python/object/apply:os.system ['true']")
    with pytest.raises(PolicyError, match="not a YAML mapping"):
        parse_policy("- a\n- b\n")


def test_missing_policy_lists_shipped(tmp_path):
    with pytest.raises(PolicyError, match="default"):
        load_policy(tmp_path / "nope.yaml")


def test_sha256_is_of_the_text_and_changes_with_it():
    a = parse_policy(HEAD)
    b = parse_policy(HEAD + "# a comment\n")
    assert a.sha256 != b.sha256 and len(a.sha256) == 64
    assert parse_policy(HEAD).sha256 == a.sha256
    assert load_policy("default").summary()["key_id"] == "cemkit-default-2026"


def test_rules_are_introspectable():
    policy = parse_policy(
        HEAD
        + """columns:
  a_number: {action: fpe, keep_digits: 4}
  b_number: {action: tokenize, keep_digits: 2}
  call_id: {action: drop}
  start: {action: generalize, every: 1h}
  src_clid: {action: scan_text, replace_with: token}
"""
    )
    props = {n: r.properties() for n, r in policy.rules()}
    fpe = props["columns.a_number"]
    assert fpe["action"] == "fpe" and fpe["params"]["keep_digits"] == 4
    assert fpe["linkable"] and fpe["reversible_by"] == "key holders" and fpe["needs_key"]
    assert "first 4 digit" in fpe["reveals"]
    tok = props["columns.b_number"]
    assert tok["linkable"] and tok["reversible_by"] == "nobody"
    assert props["columns.call_id"]["linkable"] is False
    assert "1h" in props["columns.start"]["reveals"]
    assert props["columns.src_clid"]["linkable"] and props["columns.src_clid"]["needs_key"]
    assert props["quarantine.raw"]["action"] == "drop"  # the built-in default
    assert set(RULES) == {"keep", "drop", "tokenize", "fpe", "generalize", "scan_text", "grid",
                          "bin"}  # fmt: skip
    json.dumps(props)  # plain data
    whole = policy.properties()
    assert whole["key"] == {"id": "k1", "source": "env:CEMKIT_KEY"}
    assert whole["default"]["action"] == "drop"
    assert whole["columns"]["a_number"] == fpe
    assert whole["sha256"] == policy.sha256
    json.dumps(whole)


def test_json_schema_file_is_current():
    on_disk = json.loads((POLICY_DIR / "policy.schema.json").read_text())
    assert on_disk == json.loads(json.dumps(json_schema(), sort_keys=True)), (
        "regenerate policies/policy.schema.json from cemkit.privacy.policy.json_schema()"
    )
    assert set(on_disk["properties"]) == set(Policy.model_fields)


def test_policy_dir_is_the_repo_policies():
    assert (Path(__file__).resolve().parents[1] / "policies").resolve() == POLICY_DIR.resolve()
