"""The KQI warehouse: exactly once, late files, merges, sketches, k, maintenance, privacy."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from warehouse_helpers import KEY, REGION, TZ, gzip_copy, rotated_files

import cemkit
from cemkit import warehouse
from cemkit.kqi import formulas
from cemkit.kqi.sizes import group_sizes
from cemkit.model.assign import GROUP_COLUMN, Assigner
from cemkit.model.spec import load_model
from cemkit.warehouse import sketches
from cemkit.warehouse.batch import Settings, ingest_files

KEYS = ["object_kind", "object", "bucket"]
COUNTERS = list(formulas.COUNTERS)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """Three rotated Asterisk files and one `cemkit run` over them (the reference)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CEMKIT_KEY", KEY)
        out = tmp_path_factory.mktemp("wh-world")
        files = rotated_files(out, 3)
        ref = cemkit.run([str(f) for f in files], format="asterisk", policy="default",
                         model=str(out / "model.yaml"), out=str(out / "run"), tz=TZ,
                         default_region=REGION, scheduler="sync")  # fmt: skip
        yield out, files, ref


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEMKIT_KEY", KEY)


def _settings(out: Path, fmt: str = "asterisk") -> Settings:
    return Settings(fmt, "default", str(out / "model.yaml"), TZ, REGION)


def _norm(frame: pd.DataFrame) -> pd.DataFrame:
    f = frame[KEYS + COUNTERS].astype({"object_kind": object, "object": object})
    f = f.assign(bucket=pd.to_datetime(f["bucket"], utc=True).astype("datetime64[us, UTC]"))
    return f.sort_values(KEYS).reset_index(drop=True).astype(dict.fromkeys(COUNTERS, "int64"))


def _ref(ref: cemkit.pipeline.RunResult, freq: str) -> pd.DataFrame:
    return _norm(ref.kqi[ref.kqi["freq"] == freq])


PERIOD = ("2026-03-01", "2026-04-01")


def test_each_file_counted_once_and_equal_to_one_run(world, tmp_path):
    out, files, ref = world
    twice = tmp_path / "Master-00-again.csv"
    shutil.copy(files[0], twice)
    offered = [str(files[0]), str(twice), str(gzip_copy(files[1], tmp_path / "m1.csv.gz")),
               str(files[1]), str(files[2])]  # fmt: skip
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    first = ingest_files(wh.store, offered, _settings(out))
    assert (len(first.counted), first.skipped) == (3, 2)
    again = ingest_files(wh.store, offered, _settings(out))
    assert (again.counted, again.skipped) == ([], 5)
    assert first.records == ref.manifest["load"]["totals"]["rows_loaded"]
    for freq in ("15min", "hour", "day"):
        got = _norm(wh.counters(*PERIOD, freq=freq))
        pd.testing.assert_frame_equal(got, _ref(ref, freq))
    month = wh.counters(*PERIOD, freq="month")
    day = _ref(ref, "day")
    expect = day.assign(bucket=day["bucket"].dt.tz_localize(None).dt.to_period("M")
                        .dt.to_timestamp().dt.tz_localize("UTC"))  # fmt: skip
    expect = expect.groupby(KEYS, as_index=False)[COUNTERS].sum()
    pd.testing.assert_frame_equal(_norm(month), _norm(expect))


def test_indicators_come_from_the_formulas(world, tmp_path):
    out, files, ref = world
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    ingest_files(wh.store, [str(f) for f in files], _settings(out))
    got = wh.kqi(*PERIOD, freq="day", k=2, indicators=["asr", "ner", "acd_s", "attempts"])
    want = ref.kqi[ref.kqi["freq"] == "day"].set_index(["object", "bucket"])
    shown = got[~got["suppressed"]]
    assert len(shown) > 0
    for row in shown.itertuples():
        w = want.loc[(row.object, row.bucket)]
        assert row.attempts == w["attempts"]
        assert row.asr == pytest.approx(w["asr"], nan_ok=True)
        assert row.acd_s == pytest.approx(w["acd_s"], nan_ok=True)
    with pytest.raises(ValueError, match="unknown indicator"):
        wh.kqi(*PERIOD, indicators=["asr2"])


def test_late_file_updates_only_its_buckets(world, tmp_path):
    out, files, ref = world
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    ingest_files(wh.store, [str(files[1]), str(files[2])], _settings(out))
    before = _norm(wh.counters(*PERIOD, freq="15min"))
    ingest_files(wh.store, [str(files[0])], _settings(out))  # the late one: the earliest day
    after = _norm(wh.counters(*PERIOD, freq="15min"))
    late_day = pd.Timestamp("2026-03-02", tz="UTC")
    touched = after["bucket"].dt.floor("1D") == late_day
    assert touched.any() and not (before["bucket"].dt.floor("1D") == late_day).any()
    pd.testing.assert_frame_equal(after[~touched].reset_index(drop=True), before)
    pd.testing.assert_frame_equal(after, _ref(ref, "15min"))


def test_customers_and_k_suppression(world, tmp_path):
    out, files, _ = world
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    ingest_files(wh.store, [str(f) for f in files], _settings(out))
    records = pd.read_parquet(out / "run" / "records")
    day = pd.Timestamp("2026-03-03", tz="UTC")
    on_day = records[records["start"].dt.floor("1D") == day]
    exact = group_sizes(on_day, load_model(out / "model.yaml")).set_index("group")["customers"]
    got = wh.kqi(day, day + pd.Timedelta("1D"), freq="day", k=2, indicators=["attempts"])
    counts = got.set_index("object")["customers"]
    assert counts.to_dict() == exact[counts.index].to_dict()  # small sets: HLL is exact
    k = int(np.median(exact)) + 1
    masked = wh.kqi(day, day + pd.Timedelta("1D"), freq="day", k=k, indicators=["asr"])
    small = masked["object"].map(exact) < k
    assert small.any() and (~small).any()
    assert masked.loc[small, "asr"].isna().all() and masked.loc[small, "suppressed"].all()
    assert masked.loc[~small, "asr"].notna().all()
    assert "fewer than" in masked.attrs["cemkit_suppression"]


def test_pdd_percentiles_within_the_sketch_bound(tmp_path):
    files = rotated_files(tmp_path, 1, records=6000, fmt="parquet")
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    ingest_files(wh.store, [str(files[0])], _settings(tmp_path, "parquet"))
    got = wh.kqi(*PERIOD, freq="day", k=2, indicators=["pdd_p50_ms", "pdd_p95_ms"])
    run = cemkit.pipeline.process_batch(pd.read_parquet(files[0]), policy="default",
                                        model=str(tmp_path / "model.yaml"))  # fmt: skip
    calls = Assigner(load_model(tmp_path / "model.yaml")).assign(run.records)
    has = formulas.contributions(calls)["pdd_count"].to_numpy() > 0
    eps = sketches.rank_error()
    checked = 0
    for name in calls[GROUP_COLUMN].cat.categories:  # leaf groups: one group per record
        values = np.sort(np.rint(calls.loc[has & (calls[GROUP_COLUMN] == name), "pdd_ms"]))
        row = got[got["object"] == name]
        if len(values) < 30 or row.empty or bool(row["suppressed"].iloc[0]):
            continue
        for col, q in formulas.PDD_QUANTILES.items():
            v = float(row[col].iloc[0])
            lo = np.searchsorted(values, v, "left") / len(values)
            hi = np.searchsorted(values, v, "right") / len(values)
            assert lo - eps <= q <= hi + eps, (name, col, v, lo, hi)
            checked += 1
    assert checked >= 4


def test_two_writers_of_the_same_file_count_it_once(world, tmp_path):
    out, files, _ = world
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    barrier = threading.Barrier(2)
    reports = []

    def worker() -> None:
        barrier.wait()
        reports.append(ingest_files(wh.store, [str(files[0])], _settings(out)))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r.counted) for r in reports) == [0, 1]
    assert len(wh.files()) == 1
    one = warehouse.Warehouse.create(tmp_path / "wh1")
    ingest_files(one.store, [str(files[0])], _settings(out))
    pd.testing.assert_frame_equal(_norm(wh.counters(*PERIOD, freq="15min")),
                                  _norm(one.counters(*PERIOD, freq="15min")))  # fmt: skip


def test_compact_and_retain(world, tmp_path):
    out, files, _ = world
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    lines = files[0].read_text().splitlines(keepends=True)
    halves = [tmp_path / "a.csv", tmp_path / "b.csv"]  # two files of one day: two commits
    halves[0].write_text("".join(lines[: len(lines) // 2]))
    halves[1].write_text("".join(lines[len(lines) // 2 :]))
    for f in [*halves, *files[1:]]:
        ingest_files(wh.store, [str(f)], _settings(out))
    shutil.copy(halves[0], tmp_path / "again.csv")
    before = {f: _norm(wh.counters(*PERIOD, freq=f)) for f in ("15min", "day")}
    pdd_before = wh.kqi(*PERIOD, freq="day", k=2)
    rows_before = wh.show()["rows"]
    msg = wh.compact(vacuum=True)
    assert msg.startswith("compacted 2 partition(s)")  # the 15min and day rows of 03-02
    assert wh.show()["rows"] < rows_before
    for f, frame in before.items():
        pd.testing.assert_frame_equal(_norm(wh.counters(*PERIOD, freq=f)), frame)
    pd.testing.assert_frame_equal(wh.kqi(*PERIOD, freq="day", k=2), pdd_before)
    # after compaction, a file already counted is still recognized
    assert ingest_files(wh.store, [str(tmp_path / "again.csv")], _settings(out)).skipped == 1
    import datetime as dt

    wh.retain(2, now=dt.datetime(2026, 3, 6, tzinfo=dt.UTC))  # keep 03-04 and later
    left = _norm(wh.counters(*PERIOD, freq="15min"))
    assert left["bucket"].min() >= pd.Timestamp("2026-03-04", tz="UTC")
    kept = before["15min"][before["15min"]["bucket"] >= pd.Timestamp("2026-03-04", tz="UTC")]
    pd.testing.assert_frame_equal(left, kept.reset_index(drop=True))


def _raw_numbers(files: list[Path]) -> set[str]:
    numbers = set()
    for f in files:
        for line in f.read_text().splitlines()[:200]:
            fields = [x.strip('"') for x in line.split('","')]
            for x in fields[1:3]:
                if x.isdigit() and len(x) >= 8:
                    numbers.add(x.lstrip("0"))
    return numbers


def test_watch_once_cli_quarantine_and_no_raw_numbers(world, tmp_path, capsys):
    from cemkit.cli import main

    out, files, _ = world
    landing = tmp_path / "landing"
    landing.mkdir()
    shutil.copy(files[0], landing / "Master-00.csv")
    gzip_copy(files[1], landing / "Master-01.csv.gz")
    (landing / ".Master.csv.tmp").write_text("being written\n")
    broken = landing / "Master-02.csv"
    broken.write_text(files[2].read_text() + '"not","a","cdr"\n')
    wh_dir = tmp_path / "wh"
    argv = ["watch", str(landing), "--into", str(wh_dir), "--format", "asterisk",
            "--model", str(out / "model.yaml"), "--tz", TZ, "--region", REGION, "--once",
            "--settle", "0", "--batch", "2"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "lag" in printed and "3 file(s) counted" in printed
    assert main(argv) == 0
    assert "0 file(s) counted" in capsys.readouterr().out
    assert main(["warehouse", "show", str(wh_dir)]) == 0
    assert "files: 3" in capsys.readouterr().out
    assert main(["warehouse", "compact", str(wh_dir)]) == 0
    assert "compacted" in capsys.readouterr().out
    assert main(["warehouse", "retain", str(wh_dir), "--days", "100000"]) == 0
    assert "removed 0 file(s) of buckets before" in capsys.readouterr().out
    ledger = warehouse.open(wh_dir).files()
    assert (ledger["rows_read"] == ledger["rows_loaded"] + ledger["rows_quarantined"]).all()
    assert ledger["rows_quarantined"].sum() == 1
    quarantine = pq.read_table(wh_dir / "quarantine").to_pandas()
    assert len(quarantine) == 1 and quarantine["file"].iloc[0] == "Master-02.csv"
    assert int(quarantine["line"].iloc[0]) == len(files[2].read_text().splitlines()) + 1
    # no raw number anywhere in the warehouse: table cells, commit log, printed output
    raw = _raw_numbers(files)
    assert raw
    texts = [printed]
    for root, _, names in os.walk(wh_dir):
        for name in names:
            path = Path(root) / name
            if name.endswith(".parquet"):
                frame = pq.read_table(path).to_pandas()
                for col in frame.columns:
                    if frame[col].dtype == object or str(frame[col].dtype).startswith("str"):
                        # log checkpoints hold structs (dicts): scanned as their text
                        texts.extend({str(v) for v in frame[col].dropna()})
            elif name.endswith((".json", ".crc")):
                texts.append(path.read_text(errors="replace"))
    blob = "\n".join(texts)
    leaked = [n for n in raw if n in blob]
    assert not leaked, f"{len(leaked)} raw number(s) found in the warehouse"


def test_one_policy_key_and_model_per_warehouse(world, tmp_path):
    from cemkit.errors import InputError

    out, files, _ = world
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    ingest_files(wh.store, [str(files[0])], _settings(out))
    other = Settings("asterisk", "strict", str(out / "model.yaml"), TZ, REGION)
    with pytest.raises(InputError, match="another policy"):
        ingest_files(wh.store, [str(files[1])], other)
    assert len(wh.files()) == 1
    ingest_files(wh.store, [str(files[1])], _settings(out))  # the same settings still work
    assert len(wh.files()) == 2


def test_query_indicators_equal_the_rollup_table(world, tmp_path):
    # the query computes indicators from summed counters with NumPy (formulas.indicator_arrays,
    # the one definition the rollup's formulas.indicators uses too): the same values
    out, files, _ = world
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    ingest_files(wh.store, [str(f) for f in files], _settings(out))
    sums = wh.counters(*PERIOD, freq="hour")
    assert len(sums) > 50
    want = formulas.indicators(sums)
    names = [n for n in formulas.INDICATORS if formulas.counters_needed([n]) is not None]
    assert {"asr", "ner", "acd_s", "pdd_mean_ms", "mos", "data_volume_mb", "ser"} <= set(names)
    got = formulas.indicator_arrays({c: sums[c].to_numpy() for c in COUNTERS}, names)
    for n in names:  # bit for bit, NaN where the formulas give NaN
        np.testing.assert_array_equal(got[n], want[n].to_numpy(), err_msg=n)
    assert formulas.counters_needed(["asr", "experience_score"]) is None
    # kqi() through the counters-only path and through the whole formulas give the same frame
    fast = wh.kqi(*PERIOD, freq="day", k=2, indicators=["asr", "acd_s", "pdd_p95_ms"])
    slow = wh.kqi(*PERIOD, freq="day", k=2,
                  indicators=["asr", "acd_s", "pdd_p95_ms", "experience_score"])  # fmt: skip
    pd.testing.assert_frame_equal(fast, slow.drop(columns="experience_score"))


def test_a_query_on_few_objects_opens_only_their_files(tmp_path, monkeypatch):
    from cemkit.warehouse import table

    files = rotated_files(tmp_path, 1, records=6000, fmt="parquet")
    monkeypatch.setattr(table, "TARGET_FILE_SIZE", 1)  # files of ~1K rows (writer's minimum)
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    ingest_files(wh.store, [str(files[0])], _settings(tmp_path, "parquet"))
    every = wh.kqi(*PERIOD, freq="hour", k=2)
    t0, t1 = pd.Timestamp(PERIOD[0], tz="UTC"), pd.Timestamp(PERIOD[1], tz="UTC")
    all_files = wh._files("15min", t0, t1)
    names = sorted(every["object"].unique())
    few = names[:2]
    some = wh._files("15min", t0, t1, "group", few)
    assert len(all_files) >= 2 and 0 < len(some) < len(all_files), (len(some), len(all_files))
    got = wh.kqi(*PERIOD, freq="hour", k=2, groups=few)
    want = every[every["object"].isin(few)].reset_index(drop=True)
    assert len(want) > 0
    pd.testing.assert_frame_equal(got, want)
    assert wh._files("15min", t0, t1, "customer", ["no-such-object"]) == []
    # statistics may be truncated prefixes: a longer name that starts with max still matches
    assert table._may_hold("a", "lon", ["london-sw1"])
    assert not table._may_hold("a", "lon", ["paris"])


def test_period_totals_are_the_sum_of_the_days(world, tmp_path):
    out, files, ref = world
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    ingest_files(wh.store, [str(f) for f in files], _settings(out))
    total = wh.kqi(*PERIOD, freq="period", k=2, indicators=["attempts", "asr"], counters=True)
    day = _ref(ref, "day").groupby(["object_kind", "object"], as_index=False)[COUNTERS].sum()
    got = total.set_index("object")
    assert (total["bucket"] == pd.Timestamp(PERIOD[0], tz="UTC")).all()
    assert (total["bucket_end"] == pd.Timestamp(PERIOD[1], tz="UTC")).all()
    for row in day[day["object_kind"] == "group"].itertuples():
        if not got.loc[row.object, "suppressed"]:
            assert got.loc[row.object, "attempts"] == row.attempts
            assert got.loc[row.object, "asr"] == pytest.approx(row.answered / row.attempts)


def test_a_key_changed_during_a_long_watch_is_noticed(world, tmp_path, monkeypatch):
    # one process (a worker, a watch) keeps its pipeline warm across files; a key rotated
    # meanwhile must be applied to the next file and refused by the warehouse of the old key
    # (pseudonyms under two keys would not match), not silently ignored
    from cemkit.errors import InputError

    out, files, _ = world
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    ingest_files(wh.store, [str(files[0])], _settings(out))
    monkeypatch.setenv("CEMKIT_KEY", "7a" * 32)
    with pytest.raises(InputError, match="another key"):
        ingest_files(wh.store, [str(files[1])], _settings(out))
    assert len(wh.files()) == 1
    other = warehouse.Warehouse.create(tmp_path / "wh-new-key")
    ingest_files(other.store, [str(files[1])], _settings(out))  # the new key, its own warehouse
    keys = [w.store.table().metadata().configuration["cemkit.key"] for w in (wh, other)]
    assert keys[0] != keys[1]


def test_batch_processor_without_alerts(world):
    out, files, _ = world
    raw = cemkit.load(str(files[0]), format="asterisk", tz=TZ, default_region=REGION).compute()
    model = str(out / "model.yaml")
    full = cemkit.BatchProcessor("default", model=model)(raw)
    lean = cemkit.BatchProcessor("default", model=model, alerts=False)(raw)
    pd.testing.assert_frame_equal(lean.kqi, full.kqi)
    pd.testing.assert_frame_equal(lean.records, full.records)
    from cemkit.kqi.alerts import empty_alerts

    pd.testing.assert_frame_equal(lean.alerts, empty_alerts())


def test_worker_tasks_balance_bytes(tmp_path):
    from cemkit.warehouse.batch import _tasks

    sizes = [900, 100, 500, 400, 300, 200, 100]
    files = []
    for i, n in enumerate(sizes):
        (tmp_path / f"f{i}").write_bytes(b"x" * n)
        files.append((str(tmp_path / f"f{i}"), f"sha{i}"))
    tasks = _tasks(files, 2)
    assert sorted(f for t in tasks for f in t) == sorted(files)  # each file in one task
    loads = sorted(sum(sizes[int(Path(p).name[1:])] for p, _ in t) for t in tasks)
    assert loads == [1200, 1300]
    assert len(_tasks(files[:1], 4)) == 1


def test_a_files_rows_do_not_depend_on_the_files_sharing_its_task(world):
    # a worker builds the rows of the files of one task in one pass: each file's rows (counters
    # and sketches: HLL estimates depend on the order customers are fed in) must be those of
    # the file alone, so that batch sizes, workers and restarts cannot change the table
    import pyarrow as pa

    from cemkit.warehouse.batch import process_file, task_rows

    out, files, _ = world
    results = [process_file(f, _settings(out), f"sha-{i}") for i, f in enumerate(files)]
    together = task_rows(results)
    alone = pa.concat_tables([task_rows([r]) for r in results])
    order = [(k, "ascending") for k in ("source", "freq", "object_kind", "object", "bucket")]
    together, alone = together.sort_by(order), alone.sort_by(order)
    assert set(together["source"].to_pylist()) == {"sha-0", "sha-1", "sha-2"}
    kll = ["pdd_kll", "duration_kll"]  # KLL compaction is randomized: compare which rows have one
    assert together.drop_columns(kll).equals(alone.drop_columns(kll))
    for c in kll:
        assert together[c].is_null().equals(alone[c].is_null())


def test_counter_rows_are_the_rollups_counters(world):
    # the warehouse's counters-only path (no KQI table) gives the rollup's rows and counters,
    # on records of the real pipeline (load, protect, correlate), groups and customers alike
    from cemkit.kqi.rollup import UNASSIGNED, _mark_first_of_intent, counter_rows, rollup

    out, files, _ = world
    raw = cemkit.load(str(files[1]), format="asterisk", tz=TZ, default_region=REGION).compute()
    model = str(out / "model.yaml")
    lean = cemkit.BatchProcessor("default", model=model, freqs=(), alerts=False)(raw)
    assert lean.kqi.empty and len(lean.records) > 100
    assigner = lean.assigner
    table = rollup(lean.records, assigner, freqs=("15min", "day"), rank_customers=False).table
    got = counter_rows(lean.records, assigner, ("15min", "day"))
    assert {k for k, _ in got.rows} == set(table["object_kind"])
    frames = []
    for (kind, freq), (code, bucket, sums) in got.rows.items():
        names = np.array([*(assigner.group_names if kind == "group" else assigner.customer_names),
                          UNASSIGNED], dtype=object)  # fmt: skip
        frame = pd.DataFrame({c: sums[i] for i, c in enumerate(COUNTERS)})
        frames.append(frame.assign(object_kind=kind, object=names[code], freq=freq,
                                   bucket=pd.to_datetime(bucket, utc=True)))  # fmt: skip
    mine = pd.concat(frames, ignore_index=True)
    for freq in ("15min", "day"):
        pd.testing.assert_frame_equal(_norm(mine[mine["freq"] == freq]),
                                      _norm(table[table["freq"] == freq]))  # fmt: skip
    # and each record's own counters are the formulas' contributions (the sketches read them),
    # repeat attempts counted from the intents as the rollup counts them
    want = formulas.contributions(_mark_first_of_intent(lean.records))
    np.testing.assert_array_equal(got.block, want.to_numpy())


def test_quarantine_of_a_micro_batch_is_one_commit_once_per_file(world, tmp_path):
    # a micro-batch's quarantine rows go in one Delta commit (each file's transaction in it),
    # and a retry of that commit (a run killed before its counters' commit) adds nothing
    from deltalake import DeltaTable

    from cemkit.warehouse.batch import content_sha256, process_file

    out, files, _ = world
    bad = []
    for i in (0, 1):
        path = tmp_path / f"bad-{i}.csv"
        path.write_text(files[i].read_text() + '"not","a","cdr"\n')
        bad.append(str(path))
    wh = warehouse.Warehouse.create(tmp_path / "wh")
    assert ingest_files(wh.store, bad, _settings(out)).quarantined == 2
    table = DeltaTable(str(tmp_path / "wh" / "quarantine"))
    assert table.version() == 0
    assert sorted(table.to_pandas()["file"]) == ["bad-0.csv", "bad-1.csv"]
    again = [process_file(p, _settings(out), content_sha256(p)) for p in bad]
    wh.store.commit_quarantine([(r.quarantine, r.sha256) for r in again])
    table = DeltaTable(str(tmp_path / "wh" / "quarantine"))
    assert table.version() == 0 and len(table.to_pandas()) == 2


def test_each_worker_runs_on_its_share_of_the_cores(monkeypatch):
    # one worker per core: a worker's threaded steps (protect's HMACs, the correlators) run on
    # one thread, not on config.CORRELATE_THREADS threads each (more CPU per file for nothing)
    from cemkit import config
    from cemkit.warehouse.batch import _pool, worker_threads

    with monkeypatch.context() as mp:
        mp.setattr(config, "CORRELATE_THREADS", 2)
        mp.setattr(os, "cpu_count", lambda: 2)
        assert [worker_threads(n) for n in (1, 2, 4)] == [2, 1, 1]
    expect = worker_threads(2)
    got = _pool(2).submit(eval, "__import__('cemkit.config').config.CORRELATE_THREADS").result()
    assert got == expect


def test_workers_exit_when_the_process_owning_them_is_killed(tmp_path):
    # a `cemkit watch` killed -9 (scheduler, OOM killer) must not leave its workers running:
    # their task queue holds both ends of its pipe, so only a watch on the owner ends them
    import os
    import signal
    import subprocess
    import sys
    import time

    code = (
        "import os, sys, time\n"
        "from cemkit.warehouse.batch import _pool\n"
        "pool = _pool(2)\n"
        "pids = {pool.submit(os.getpid).result() for _ in range(20)}\n"
        "print(' '.join(map(str, sorted(pids))), flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert pids
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # an exited child of the (orphaned) fork server is reaped by init, not a zombie for long
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"

    deadline = time.monotonic() + 20
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in pids), "pool workers outlived the process that owned them"


def test_large_files_get_a_task_each(tmp_path, monkeypatch):
    # a task of several large files keeps the batch waiting on one worker while the other idles
    from cemkit.warehouse import batch

    monkeypatch.setattr(batch, "TASK_BYTES", 1000)
    files = []
    for i, n in enumerate([1500, 1200, 1100, 300, 200]):
        (tmp_path / f"f{i}").write_bytes(b"x" * n)
        files.append((str(tmp_path / f"f{i}"), f"sha{i}"))
    tasks = batch._tasks(files, 2)
    assert sorted(f for t in tasks for f in t) == sorted(files)
    assert len(tasks) == 5  # 4,300 bytes: five tasks of at most 1,000 wanted, one file each
    assert len(batch._tasks(files[3:], 2)) == 2  # small files: one task per worker


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=0, max_size=300),
       st.sampled_from([1, 1 << 12, 1 << 17, 1 << 33, -(1 << 20)]))  # fmt: skip
def test_stable_order_is_a_stable_argsort(digits, scale):
    from cemkit.warehouse.batch import stable_order

    key = np.array(digits, dtype=np.int64) * scale + (7 if scale > 0 else 0)
    got = stable_order(key)
    assert got.dtype.kind == "i"
    np.testing.assert_array_equal(got, np.argsort(key, kind="stable"))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=120), st.data())
def test_hll_sketches_equal_one_update_per_item(items, data):
    from naive import hll_sketches

    cuts = sorted(data.draw(st.lists(st.integers(1, len(items)), max_size=5, unique=True)))
    bounds = np.array([0, *[c for c in cuts if c < len(items)], len(items)])
    got = sketches.hll_sketches_of(np.array(items, dtype=object), bounds)
    want = hll_sketches(items, bounds.tolist(), sketches.HLL_LG_K)
    assert [bytes(s.serialize_compact()) for s in got] == \
        [bytes(s.serialize_compact()) for s in want]  # fmt: skip


def test_worker_processes_keep_memory():
    from cemkit.memory import backend
    from cemkit.warehouse.batch import _pool

    assert _pool(2).submit(backend).result() == "system"
