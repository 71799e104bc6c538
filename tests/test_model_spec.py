import pickle

import pytest

from cemkit.errors import ModelError
from cemkit.model.spec import ServiceModel, expand_prefix, load_model

BASE = """
name: t
groups:
  - {name: uk, match: {prefixes: ["+44"]}}
  - {name: london, parent: uk, match: {prefixes: ["+4420"]}}
"""


def test_loads_and_hierarchy():
    m = ServiceModel.from_yaml_text(BASE)
    assert m.ancestors("london") == ["uk"]
    assert m.depth("uk") == 1 and m.depth("london") == 2


def test_unknown_key_names_the_rule():
    text = BASE.replace('match: {prefixes: ["+4420"]}', 'match: {prefixs: ["+4420"]}')
    with pytest.raises(ModelError) as err:
        ServiceModel.from_yaml_text(text, source="m.yaml")
    msg = str(err.value)
    assert "m.yaml" in msg and "groups[1] ('london').match.prefixs" in msg and "unknown key" in msg


def test_unknown_top_level_key():
    with pytest.raises(ModelError, match="grups: unknown key"):
        ServiceModel.from_yaml_text("name: t\ngrups: []\n")


def test_unknown_indicator_lists_known():
    text = BASE + "thresholds: [{indicator: asrr, absolute: 0.5}]\n"
    with pytest.raises(ModelError, match="unknown indicator 'asrr'; known: .*asr"):
        ServiceModel.from_yaml_text(text)


def test_threshold_needs_exactly_one_kind():
    with pytest.raises(ModelError, match="exactly one"):
        ServiceModel.from_yaml_text(BASE + "thresholds: [{indicator: asr}]\n")
    with pytest.raises(ModelError, match="exactly one"):
        ServiceModel.from_yaml_text(
            BASE + "thresholds: [{indicator: asr, absolute: 0.5, relative: 2}]\n"
        )


def test_missing_parent_and_cycle():
    with pytest.raises(ModelError, match="parent 'eu' is not a group"):
        ServiceModel.from_yaml_text(BASE.replace("parent: uk", "parent: eu"))
    cyc = """
name: t
groups:
  - {name: a, parent: b, match: {nodes: [x]}}
  - {name: b, parent: a, match: {nodes: [y]}}
"""
    with pytest.raises(ModelError, match="cycle"):
        ServiceModel.from_yaml_text(cyc)


def test_duplicate_group():
    with pytest.raises(ModelError, match="repeated: \\['uk'\\]"):
        ServiceModel.from_yaml_text(BASE + '  - {name: uk, match: {nodes: ["a"]}}\n')


def test_prefix_longer_than_kept_digits_is_an_error():
    text = BASE + "numbers: {kept_prefix_digits: 3}\n"
    with pytest.raises(ModelError, match="longer than the 3 digits"):
        ServiceModel.from_yaml_text(text)


def test_bad_prefix_and_range():
    with pytest.raises(ModelError, match="neither a prefix"):
        ServiceModel.from_yaml_text(BASE.replace("+4420", "+44-20x"))
    assert expand_prefix("+441610..+441613") == ["+441610", "+441611", "+441612", "+441613"]
    assert expand_prefix("0200-0201") == ["0200", "0201"]
    with pytest.raises(ValueError, match="same form"):
        expand_prefix("+4410..+44100")


def test_attribute_rules_need_a_table():
    text = "name: t\ngroups: [{name: gold, match: {attributes: {plan: [gold]}}}]\n"
    with pytest.raises(ModelError, match="customer_table"):
        ServiceModel.from_yaml_text(text)


def test_customer_needs_identity():
    with pytest.raises(ModelError, match="pseudonyms"):
        ServiceModel.from_yaml_text("name: t\ncustomers: [{name: acme}]\n")


def test_not_yaml_and_not_mapping(tmp_path):
    with pytest.raises(ModelError, match="not valid YAML"):
        ServiceModel.from_yaml_text("name: [unclosed\n")
    with pytest.raises(ModelError, match="a mapping"):
        ServiceModel.from_yaml_text("- a\n- b\n")
    with pytest.raises(ModelError, match="cannot read"):
        load_model(tmp_path / "absent.yaml")


def test_error_pickles():
    try:
        ServiceModel.from_yaml_text("name: t\ngrups: []\n")
    except ModelError as err:
        again = pickle.loads(pickle.dumps(err))
        assert str(again) == str(err)


def test_thresholds_fallback():
    text = (
        BASE
        + """
thresholds: [{indicator: asr, absolute: 0.5}]
customers:
  - name: acme
    pseudonyms: ["tok_1"]
    thresholds: [{indicator: ner, absolute: 0.9, severity: critical}]
"""
    )
    m = ServiceModel.from_yaml_text(text)
    assert [t.indicator for t in m.thresholds_for_group("london")] == ["asr"]
    assert [t.severity for t in m.thresholds_for_customer("acme")] == ["critical"]


def test_shipped_models_load():
    from pathlib import Path

    models = sorted((Path(__file__).parents[1] / "models").glob("*.yaml"))
    assert models, "example models are shipped"
    for path in models:
        m = load_model(path)
        assert m.groups


def test_errors_do_not_echo_long_numbers():
    text = BASE.replace('"+4420"', '"+4420796012345x"')
    with pytest.raises(ModelError) as err:
        ServiceModel.from_yaml_text(text)
    assert "4420796012345" not in str(err.value) and "not shown" in str(err.value)
