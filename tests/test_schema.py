import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from cemkit import schema
from cemkit.errors import SchemaError


def good_frame(n: int = 3) -> pd.DataFrame:
    t0 = pd.Timestamp("2026-03-02 10:00:00", tz="UTC")
    df = pd.DataFrame(
        {
            "record_id": [f"t:{i}" for i in range(n)],
            "source": "asterisk",
            "record_kind": "cdr",
            "service": "voice",
            "a_number": "+441632960961",
            "b_number": "+441632960962",
            "start": [t0 + pd.Timedelta(seconds=i) for i in range(n)],
            "end": [t0 + pd.Timedelta(seconds=i + 30) for i in range(n)],
            "duration_s": 30.0,
            "billsec_s": 20.0,
            "outcome": "answered",
        }
    )
    return schema.conform(df)


def test_good_frame_is_valid():
    assert schema.validate(good_frame()) == []
    assert schema.validate(schema.empty_frame()) == []


def test_conform_adds_missing_columns_in_order():
    df = good_frame()
    assert list(df.columns) == [c.name for c in schema.COLUMNS]
    assert df["answer"].isna().all()
    assert str(df["cause_q850"].dtype) == "Int16"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.drop(columns=["outcome"]), "column 'outcome' is missing"),
        (lambda d: d.assign(duration_s=d["duration_s"].astype("int64")), "has dtype int64"),
        (lambda d: d.assign(extra=1), "column 'extra' is not in the canonical schema"),
        (
            lambda d: d.assign(
                outcome=pd.array(["answered", "lost", "answered"], dtype="string[pyarrow]")
            ),
            "column 'outcome' has values ['lost']",
        ),
        (
            lambda d: d.assign(source=pd.array([None, "x", "x"], dtype="string[pyarrow]")),
            "column 'source' is null in 1 row(s), first at index 0",
        ),
        (lambda d: d.assign(billsec_s=[-1.0, 2.0, 3.0]), "column 'billsec_s' is negative"),
        (
            lambda d: d.assign(end=d["start"] - pd.Timedelta(seconds=1)),
            "'end' is before 'start' in 3",
        ),
    ],
)
def test_validate_names_each_problem(mutate, expected):
    bad = mutate(good_frame())
    problems = schema.validate(bad, raise_=False)
    assert any(expected in p for p in problems), problems
    with pytest.raises(SchemaError, match="do not match the canonical schema"):
        schema.validate(bad)


def test_validate_never_shows_pii_values():
    df = good_frame()
    df["a_number"] = df["a_number"].astype(object)  # wrong dtype
    df["b_number"] = pd.array([None, None, None], dtype="string[pyarrow]")
    df.loc[0, "end"] = df.loc[0, "start"] - pd.Timedelta(seconds=5)
    problems = schema.validate(df, raise_=False)
    text = " ".join(problems)
    assert "a_number" in text and "before 'start'" in text
    assert "1632960961" not in text and "1632960962" not in text


def test_extension_columns():
    col = schema.extension_field("src_clid", pa.string(), schema.PII.FREE_TEXT, "caller id text")
    df = good_frame().assign(src_clid=pd.array(["x"] * 3, dtype="string[pyarrow]"))
    assert schema.validate(df, [col]) == []
    with pytest.raises(SchemaError, match="must start with 'src_'"):
        schema.extension_field("clid", pa.string(), schema.PII.FREE_TEXT, "x")
    full = schema.arrow_schema([col])
    assert full.field("src_clid").metadata[b"pii"] == b"free_text"


def test_pii_classes_cover_every_column():
    tn = schema.pii_columns(schema.CANONICAL)
    assert tn == ["a_number", "b_number", "msisdn"]
    for f in schema.CANONICAL:
        assert f.metadata[b"pii"].decode() in {p.value for p in schema.PII}
        assert f.metadata[b"meaning"]
    assert len(schema.describe()) == len(schema.COLUMNS)


def test_empty_frame_dtypes_match_arrow_schema():
    df = schema.empty_frame()
    table = pa.Table.from_pandas(df, preserve_index=False)
    for f in schema.CANONICAL:
        got = table.schema.field(f.name).type
        assert got == f.type or (pa.types.is_string(f.type) and pa.types.is_large_string(got)), (
            f.name,
            got,
            f.type,
        )
    assert np.dtype("float64") == df["mos"].dtype
