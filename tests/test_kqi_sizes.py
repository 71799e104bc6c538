import dask.dataframe as dd
import pandas as pd

from cemkit.kqi.sizes import group_sizes
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
