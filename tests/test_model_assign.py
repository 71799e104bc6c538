import numpy as np
import pandas as pd
import pytest

from cemkit.errors import ModelError
from cemkit.model import Assigner, ServiceModel

MODEL = """
name: t
customer_table: {path: unused.parquet}
groups:
  - {name: uk, match: {prefixes: ["+44"]}}
  - {name: london, parent: uk, match: {prefixes: ["+4420"]}}
  - {name: lon-sw1, parent: london, match: {switches: ["lon-sw1"]}}
  - {name: lon-trunks, parent: london, match: {trunks: ["lon-tk*"]}}
  - {name: manchester, parent: uk, match: {prefixes: ["+441610..+441619"]}}
  - {name: uk-gold, parent: uk, match: {plans: [gold]}}
  - {name: fr, match: {prefixes: ["+33"]}}
  - {name: europe}
customers:
  - {name: acme, pseudonyms: ["+4420tokACME"]}
  - {name: leased, attributes: {segment: [leased-line]}}
"""

TABLE = pd.DataFrame(
    {
        "customer": ["+4420tokGOLD", "+441612000000", "+4420tokLEASE"],
        "plan": ["gold", "gold", "basic"],
        "segment": ["consumer", "consumer", "leased-line"],
    }
)


def _assign(numbers, nodes):
    a = Assigner(ServiceModel.from_yaml_text(MODEL), TABLE)
    recs = pd.DataFrame(
        {
            "a_number": pd.array(numbers, dtype="string[pyarrow]"),
            "node": pd.array(nodes, dtype="string[pyarrow]"),
        }
    )
    out = a.assign(recs)
    return list(out["group"].astype(object)), list(out["customer_object"].astype(object))


def test_rules_read_on_distinct_numbers_give_the_same_codes():
    """Numbers given dictionary-encoded: prefixes, attributes, pseudonyms read once per value."""
    import pyarrow as pa

    from cemkit.arrowstr import dictionary_codes as encode

    a = Assigner(ServiceModel.from_yaml_text(MODEL), TABLE)
    base = ["+442071234567", "+4420tokGOLD", "+441612000000", "+4420tokLEASE", "+4420tokACME",
            "+33123456789", "+15551234567", None, "x"]  # fmt: skip
    rng = np.random.default_rng(3)
    numbers = [base[i] for i in rng.integers(0, len(base), 300)]
    nodes = pd.Series([["lon-sw1", "lon-tk3", "man-sw1", None][i] for i in
                       rng.integers(0, 4, 300)], dtype="string[pyarrow]")  # fmt: skip
    series = pd.Series(numbers, dtype="string[pyarrow]")
    want = a._codes(series, nodes)
    got = a._codes(series, nodes, encoded=encode(pa.array(numbers, pa.string())))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert (want[1] >= 0).sum() > 0 and (want[0] >= 0).sum() > 0


def test_most_specific_group_wins():
    groups, _ = _assign(
        [
            "+442071234567",
            "+442071234567",
            "+442071234567",
            "+441612345678",
            "+441512345678",
            "+33123456789",
            "+15551234567",
            None,
        ],
        ["lon-sw1", "lon-tk3", "man-sw1", "lon-sw1", "x", "par", "x", "lon-sw1"],
    )
    assert groups == ["lon-sw1", "lon-trunks", "london", "manchester", "uk", "fr", np.nan, np.nan]


def test_attribute_groups_and_modeled_customers():
    groups, custs = _assign(
        ["+4420tokGOLD", "+441612000000", "+4420tokLEASE", "+4420tokACME"],
        ["x", "x", "lon-sw1", "x"],
    )
    # gold customer in London: uk-gold (depth 2, attribute) vs london (depth 2, prefix 4 digits):
    # same depth, longer matched prefix wins -> london
    assert groups == ["london", "manchester", "lon-sw1", "london"]
    assert custs == [np.nan, np.nan, "leased", "acme"]


def test_attribute_group_wins_when_more_specific():
    m = ServiceModel.from_yaml_text(
        MODEL.replace("{name: uk-gold, parent: uk,", "{name: uk-gold, parent: manchester,")
    )
    a = Assigner(m, TABLE)
    g = a.group_codes(pd.Series(["+441612000000", "+441613000000"], dtype="string[pyarrow]"))
    assert [a.group_names[i] for i in g] == ["uk-gold", "manchester"]


def test_protected_numbers_use_kept_prefix_only():
    m = ServiceModel.from_yaml_text("""
name: p
numbers: {kept_prefix_digits: 4}
groups:
  - {name: uk, match: {prefixes: ["+44"]}}
  - {name: london, parent: uk, match: {prefixes: ["+4420"]}}
  - {name: inner, parent: uk, match: {prefixes: ["+4421"]}}
  - {name: sub, parent: london, match: {prefixes: ["+4420"], nodes: ["n1"]}}
""")
    a = Assigner(m)
    # tokens after the kept prefix may start with digits: they must never extend the match
    values = pd.Series(
        ["+4420" + "7f3a9c", "+4421" + "0000", "+4499abc", "+4420"], dtype="string[pyarrow]"
    )
    assert [a.group_names[i] for i in a.group_codes(values)] == ["london", "inner", "uk", "london"]


def test_plus_is_significant():
    m = ServiceModel.from_yaml_text("""
name: p
groups:
  - {name: intl, match: {prefixes: ["+1"]}}
  - {name: ext, match: {prefixes: ["1"]}}
""")
    a = Assigner(m)
    g = a.group_codes(pd.Series(["+15551234", "1001", "2001"], dtype="string[pyarrow]"))
    assert list(g) == [0, 1, -1]


def _naive_lpm(values, prefixes, max_digits):
    out = []
    for v in values:
        best = None
        if v is not None:
            plus = v.startswith("+")
            digits = ""
            for ch in v[1:] if plus else v:
                if not ch.isdigit() or len(digits) == max_digits:
                    break
                digits += ch
            for p in prefixes:
                fits = p.startswith("+") == plus and digits.startswith(p.lstrip("+"))
                if fits and (best is None or len(p) > len(best)):
                    best = p
        out.append(best)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_longest_prefix_equals_naive_reference(seed):
    rng = np.random.default_rng(seed)
    prefixes = sorted(
        {
            ("+" if rng.random() < 0.8 else "")
            + "".join(rng.choice(list("0123456789"), rng.integers(1, 6)))
            for _ in range(60)
        }
    )
    values = []
    for _ in range(3000):
        r = rng.random()
        if r < 0.05:
            values.append(None)
        elif r < 0.6:
            p = prefixes[rng.integers(len(prefixes))]
            values.append(p + "".join(rng.choice(list("0123456789ab~"), rng.integers(0, 10))))
        else:
            values.append(
                ("+" if rng.random() < 0.7 else "")
                + "".join(rng.choice(list("0123456789"), rng.integers(0, 14)))
            )
    yaml_groups = "\n".join(
        f"  - {{name: g{i}, match: {{prefixes: ['{p}']}}}}" for i, p in enumerate(prefixes)
    )
    m = ServiceModel.from_yaml_text(f"name: r\ngroups:\n{yaml_groups}\n")
    a = Assigner(m)
    got = a.group_codes(pd.Series(values, dtype="string[pyarrow]"))
    expected = _naive_lpm(values, prefixes, 15)
    assert [prefixes[i] if i >= 0 else None for i in got] == expected


def test_assign_customers_table():
    m = ServiceModel.from_yaml_text(MODEL)
    a = Assigner(m, TABLE)
    out = a.assign_customers()
    assert list(out["customer"]) == list(TABLE["customer"])
    assert list(out["group"].astype(object)) == ["london", "manchester", "london"]
    assert list(out["customer_object"].astype(object)) == [np.nan, np.nan, "leased"]


def test_customer_table_missing_columns():
    with pytest.raises(ModelError, match="lacks column"):
        Assigner(ServiceModel.from_yaml_text(MODEL), TABLE.drop(columns=["segment"]))


def test_dask_assign_matches_pandas():
    import dask.dataframe as dd

    a = Assigner(ServiceModel.from_yaml_text(MODEL), TABLE)
    recs = pd.DataFrame(
        {
            "a_number": pd.array(["+442071234567", "+441612345678"] * 50, dtype="string[pyarrow]"),
            "node": pd.array(["lon-sw1", "x"] * 50, dtype="string[pyarrow]"),
        }
    )
    got = a.assign_dask(dd.from_pandas(recs, npartitions=4)).compute()
    pd.testing.assert_frame_equal(got, a.assign(recs))


def test_shipped_example_model_assigns():
    from pathlib import Path

    from cemkit.model import load_model

    m = load_model(Path(__file__).parents[1] / "models" / "example.yaml")
    a = Assigner(m)  # reads models/customers-example.csv next to the model
    recs = pd.DataFrame(
        {
            "a_number": pd.array(
                ["+4420#1a7f3c9e2b4d6f80", "+4416#2c55e0a41d7b3f92", "+4420#zz", "+3531#q"],
                dtype="string[pyarrow]",
            ),
            "node": pd.array(["lon-sw1", "man-sw1", "lon-tk12", "dub-x"], dtype="string[pyarrow]"),
        }
    )
    out = a.assign(recs)
    assert list(out["group"].astype(object)) == ["lon-sw1", "man-sw1", "lon-trunks", "dublin"]
    assert list(out["customer_object"].astype(object)) == [
        "acme-hq",
        "leased-lines",
        np.nan,
        np.nan,
    ]
