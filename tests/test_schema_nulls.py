"""Canonical floats: a missing value is null, one way (no NaN beside nulls)."""

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from cemkit import synth


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("nanworld")
    truth = synth.generate(out, records=4_000, seed=11, incidents=1, days=1, formats=False,
                           workers=1)  # fmt: skip
    return out, truth


def test_no_nan_in_any_float_column_of_generated_records(world):
    out, truth = world
    assert truth["counts"]["xdr_only_attempts"] > 0  # the records that had NaN PDDs
    table = pq.read_table(out / "records")
    for field in table.schema:
        if pa.types.is_floating(field.type):
            nans = pc.sum(pc.is_nan(table[field.name])).as_py() or 0
            nulls = table[field.name].null_count
            assert nans == 0, f"{field.name}: {nans} NaN beside {nulls} nulls"
