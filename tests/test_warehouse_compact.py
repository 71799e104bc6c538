"""Warehouse maintenance: compaction merges, leaves compacted partitions alone, keeps roll-ups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from warehouse_helpers import KEY, REGION, TZ, rotated_files

from cemkit import warehouse
from cemkit.kqi import formulas
from cemkit.warehouse import sketches
from cemkit.warehouse.batch import Settings, ingest_files
from cemkit.warehouse.compact import merged
from cemkit.warehouse.table import KQI_SCHEMA, SKETCH_COLUMNS, SORT_KEYS

PERIOD = ("2026-03-01", "2026-04-01")
KEYS = ["object_kind", "object", "bucket"]
COUNTERS = list(formulas.COUNTERS)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEMKIT_KEY", KEY)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory):
    """Three rotated files, the first split in two halves (one day, two commits)."""
    out = tmp_path_factory.mktemp("wh-compact")
    rotated = rotated_files(out, 3, records=600)
    lines = rotated[0].read_text().splitlines(keepends=True)
    halves = [out / "a.csv", out / "b.csv"]
    halves[0].write_text("".join(lines[: len(lines) // 2]))
    halves[1].write_text("".join(lines[len(lines) // 2 :]))
    return out, halves, rotated[1:]


def _settings(out) -> Settings:
    return Settings("asterisk", "default", str(out / "model.yaml"), TZ, REGION)


def _ingest(tmp_path, files) -> warehouse.Warehouse:
    """Days 2 and 3 first, then the two halves of day 1 (late, in two commits)."""
    out, halves, others = files
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    for group in (others, halves[:1], halves[1:]):
        ingest_files(wh.store, [str(f) for f in group], _settings(out))
    return wh


def _adds(wh: warehouse.Warehouse) -> pa.Table:
    return pa.table(DeltaTable(str(wh.store.kqi_path)).get_add_actions(flatten=True))


def test_a_compacted_partition_is_not_rewritten_again(tmp_path, monkeypatch):
    from cemkit.warehouse import table

    big = rotated_files(tmp_path, 1, records=6000, fmt="parquet")
    monkeypatch.setattr(table, "TARGET_FILE_SIZE", 1)  # files of ~1K rows (writer's minimum)
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    ingest_files(
        wh.store,
        [str(big[0])],
        Settings("parquet", "default", str(tmp_path / "model.yaml"), TZ, REGION),
    )
    assert wh.compact().startswith("compacted 1 partition(s)")  # its 15min rows (2+ files)
    adds = _adds(wh)
    # the log tells compacted files (no source) from ingested ones
    assert "null_count.source" in adds.column_names
    parts = adds.to_pandas().groupby(["partition.freq", "partition.period"]).ngroups
    assert len(adds) > parts  # a compacted partition spans several files
    before = adds["path"].to_pylist()
    assert wh.compact().startswith("compacted 0 partition(s)")
    assert sorted(_adds(wh)["path"].to_pylist()) == sorted(before)
    # no statistics of the counters in the log (nothing reads them)
    assert "min.attempts" not in adds.column_names


def test_an_older_table_gets_the_statistics_it_needs(files, tmp_path):
    from cemkit.warehouse import table

    out, _, others = files
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    dt = wh.store.table()
    dt.alter.set_table_properties({table.STATS_COLUMNS_KEY: "object_kind,object"})
    ingest_files(wh.store, [str(others[0])], _settings(out))
    assert "null_count.source" not in _adds(wh).column_names
    wh.compact(min_files=1)
    assert "null_count.source" in _adds(wh).column_names
    assert wh.compact(min_files=2).startswith("compacted 0 partition(s)")


def _rows_of(wh: warehouse.Warehouse) -> pa.Table:
    return wh.store.table().to_pyarrow_dataset().to_table().cast(KQI_SCHEMA)


def test_merged_equals_summing_and_merging_each_key(files, tmp_path):
    wh = _ingest(tmp_path, files)
    rows = _rows_of(wh)
    rng = np.random.default_rng(3)
    # every row once more, some a third time, in a random order
    twice = pa.concat_tables([rows, rows, rows.take(pa.array(rng.choice(len(rows), 50)))])
    shuffled = twice.take(pa.array(rng.permutation(len(twice))))
    got = merged(shuffled)
    assert got.equals(got.sort_by([(k, "ascending") for k in SORT_KEYS]))
    frame = shuffled.to_pandas()
    keys = ["freq", "period", *KEYS]
    want = frame.groupby(keys, sort=True, as_index=False)[COUNTERS].sum()
    have = got.to_pandas()
    pd.testing.assert_frame_equal(have[keys + COUNTERS], want[keys + COUNTERS],
                                  check_dtype=False)  # fmt: skip
    assert have["source"].isna().all()
    groups = frame.groupby(keys, sort=True)
    for (_, blobs), (pdd, customers) in zip(groups, zip(have["pdd_kll"], have["customers_hll"],
                                                         strict=True), strict=True):  # fmt: skip
        want_pdd = sketches.merge_kll(blobs["pdd_kll"].tolist())
        if want_pdd is None:
            assert pdd is None
        else:
            assert sketches.kll_quantile_rows([[pdd]], [0.5, 0.95]).tolist() == \
                sketches.kll_quantile_rows([[want_pdd]], [0.5, 0.95]).tolist()  # fmt: skip
        assert sketches.hll_count([customers]) == sketches.hll_count(
            [b for b in blobs["customers_hll"] if b is not None]
        )
    # rows in order and each key once: handed back as they are (no source)
    again = merged(got)
    assert again.equals(got)


def _merged_day_of(wh: warehouse.Warehouse) -> pd.DataFrame:
    """Day totals merged from the stored 15-minute rows: counters summed, sketches merged."""
    quarter = wh.counters(*PERIOD, freq="15min", sketch_columns=list(SKETCH_COLUMNS))
    quarter["bucket"] = quarter["bucket"].dt.floor("1D")
    return quarter.groupby(KEYS, as_index=False).agg(
        {**dict.fromkeys(COUNTERS, "sum"), **dict.fromkeys(SKETCH_COLUMNS, "sum")}
    )


@pytest.mark.parametrize("compact", [False, True])
def test_day_rows_equal_merging_the_15min_rows(files, tmp_path, compact):
    wh = _ingest(tmp_path, files)  # a late day, ingested in two commits
    if compact:
        wh.compact()
    want = _merged_day_of(wh)
    day = wh.counters(*PERIOD, freq="day", sketch_columns=list(SKETCH_COLUMNS))
    assert len(day) == len(want) > 0
    pd.testing.assert_frame_equal(day[KEYS + COUNTERS], want[KEYS + COUNTERS])
    # month and period buckets are merges of the same day rows
    month = wh.counters(*PERIOD, freq="month")
    by_month = want.groupby(["object_kind", "object"], as_index=False)[COUNTERS].sum()
    pd.testing.assert_frame_equal(month[COUNTERS], by_month[COUNTERS])
    qs = [0.5, 0.95]
    eps = sketches.rank_error()
    for got_row, want_row in zip(day.itertuples(), want.itertuples(), strict=True):
        assert sketches.hll_count(got_row.customers_hll) == sketches.hll_count(
            want_row.customers_hll
        )  # small sets: exact in both
        if not want_row.pdd_kll:
            assert not got_row.pdd_kll
            continue
        got_q = sketches.kll_quantile_rows([got_row.pdd_kll], qs)[0]
        want_q = sketches.kll_quantile_rows([want_row.pdd_kll], qs)[0]
        n = got_row.pdd_count
        if n <= sketches.KLL_K:  # both sketches hold every value: the same quantiles
            assert got_q.tolist() == want_q.tolist()
        else:  # both within the rank error of the true quantile
            merged_sk = sketches._merged_kll(want_row.pdd_kll)
            for q, value in zip(qs, got_q, strict=True):
                assert abs(merged_sk.get_rank(value) - q) <= 2 * eps
