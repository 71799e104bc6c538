import dask.dataframe as dd
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit.kqi.sizes import distinct, group_sizes, run_lengths
from cemkit.model.spec import load_model


def naive_sizes(records, model):
    from cemkit.model.assign import Assigner

    a = Assigner(model)
    groups = a.assign(records)["group"].astype(object)
    pairs = set()
    for g, c in zip(groups, records[model.numbers.column], strict=True):
        chain = ["(unassigned)"] if pd.isna(g) else [g, *model.ancestors(g)]
        for x in chain:
            pairs.add((x, c))
    out = pd.Series([p[0] for p in pairs]).value_counts()
    return out.sort_index()


def test_group_sizes_exact_and_partition_independent(small_world):
    out, _ = small_world
    records = pd.read_parquet(out / "records", columns=["a_number", "node"])
    model = load_model(out / "model.yaml")
    got = group_sizes(records, model).set_index("group")["customers"].sort_index()
    want = naive_sizes(records, model)
    assert got.to_dict() == want.to_dict()
    many = group_sizes(dd.from_pandas(records, npartitions=5), model)
    assert many.set_index("group")["customers"].sort_index().to_dict() == want.to_dict()
    top = [g.name for g in model.groups if g.parent is None]
    assert got[top].sum() >= records["a_number"].nunique()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(2**40), 2**40), max_size=300), st.integers(1, 7))
def test_distinct_and_run_lengths_equal_numpy_unique(values, spread):
    # the one-sort replacements of np.unique used by the group sizes give its very arrays
    arr = np.asarray(values, dtype=np.int64) // spread
    assert np.array_equal(distinct(arr), np.unique(arr))
    ordered = np.sort(arr)
    found, counts = run_lengths(ordered)
    want_found, want_counts = np.unique(ordered, return_counts=True)
    assert np.array_equal(found, want_found) and np.array_equal(counts, want_counts)
    assert counts.dtype == np.int64


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=60), st.booleans())
def test_dense_distinct_and_factorize_equal_numpy(values, wide):
    """Dense marks (a small space) and the sort (a wide one) give numpy's distinct values."""
    from cemkit.kqi.sizes import distinct_below
    from cemkit.model.assign import _factorize

    arr = np.array(values, dtype=np.int64)
    space = max(values, default=-1) + 1 + (10**7 if wide else 0)
    np.testing.assert_array_equal(distinct_below(arr, space), np.unique(arr))
    codes, uniques = _factorize(arr, space)
    np.testing.assert_array_equal(uniques, np.unique(arr))
    np.testing.assert_array_equal(uniques[codes], arr)


def test_ancestors_held_warm_equal_the_index_of_the_hierarchy(small_world):
    """The hierarchy index a warm assigner holds: the one ancestor_index builds, read-only."""
    import pytest

    from cemkit.kqi.sizes import ancestor_index, ancestors_of, hierarchy_of, own_index
    from cemkit.model.assign import Assigner

    out, _ = small_world
    assigner = Assigner(load_model(out / "model.yaml"))
    held = ancestors_of(assigner)
    want = ancestor_index(len(assigner.group_names), hierarchy_of(assigner))
    assert all(h.tobytes() == w.tobytes() for h, w in zip(held, want, strict=True))
    assert ancestors_of(assigner)[1] is held[1]  # built once
    with pytest.raises(ValueError):
        held[1][0] = 0  # shared by every batch: not writable
    own = own_index(3)
    assert [a.tolist() for a in own] == [a.tolist() for a in ancestor_index(3, {})]
