"""KQI warehouse benchmark: report queries against DuckDB over raw records, and ingest rate.

    python -m benchmarks.bench_warehouse [--groups 8000] [--customers 2000] [--days 365]
                                         [--cache /tmp/cemkit-bench/warehouse-year]
                                         [--raw-records 20000000] [--ingest-records 200000]

Query part. A warehouse (the real Delta table of :mod:`cemkit.warehouse`) holds ``--days`` days
(the year before 2027-01-01) of 15-minute and day rows of ``--groups`` node groups (20 regions
and their switches; a region's counters are its switches' sums, as :func:`cemkit.kqi.rollup`
writes ancestors) and ``--customers`` modeled customers: 10,000 objects x 96 x 365 = 350.4M
15-minute rows and 3.65M day rows. Counters are random (Poisson attempts); rows carry real KLL
(PDD, duration) and HLL (customers) sketches drawn from pools of serialized sketches (256 of 1-7
values for 15-minute rows, 512 of 5-400 values for day rows; building 1G distinct sketches would
take days; merging them costs the same). Each day is one commit: its 15-minute partition as
``cemkit warehouse compact`` leaves it (:func:`cemkit.warehouse.compact.merged` and
:func:`cemkit.warehouse.table.write_rows`), its day rows as an ingest writes them; the real
``Warehouse.compact`` then merges each month's day rows. The build runs newest day first in
``--processes`` processes for at most ``--build-minutes`` and is cached in ``--cache`` (a rerun
reuses it, an unfinished one resumes); what was built is printed.

Queries (warm, best of 5 after one unmeasured run), each the whole
:meth:`cemkit.warehouse.Warehouse.kqi` call (table log, pruning, DuckDB sums, sketch merges,
formulas, suppression): the nightly report, the last 30 days, per day, per region, ASR, ACD, PDD
p50/p95, distinct customers and k = 10; the same per month over the year; per hour over the last
day. The baseline is what a user would otherwise run: DuckDB over the raw records of the same
30 days (``--raw-records`` records in Parquet, joined to the switch->region map), computing the
same figures with exact quantiles and ``count(DISTINCT customer)``.

Ingest part. ``cemkit watch --once`` equivalent (the real :class:`cemkit.warehouse.watch.Watcher`)
over rotated Asterisk files of a synthetic world (``--ingest-records`` records in
``--ingest-files`` files, micro-batches of ``--batch`` files, ``--workers`` processes), warm
(small files counted first so that this process and every worker have compiled their kernels),
records/s against 10x the brief's 13.3K records/s, and the CPU seconds of every process
(this one and the workers: records per CPU-second, less distorted than wall time by a loaded
shared machine). Then the CPU of one file in one process (large and 500-record files: the fixed
cost of a file), and two live runs, the watcher running while files land:

* one writer, the same files one by one at ``--live-rate`` records/s (a 24.8K-record file every
  0.186 s: a file interval shorter than one file's processing); its warehouse is checked equal
  to the one-micro-batch ingest of the same files;
* ``--sources`` writers, each rotating a file every ``--rotate-s`` seconds, out of phase, for
  ``--intervals`` intervals, together ``--live-rate`` records/s: consecutive slices of the
  Asterisk file of a cached world (``--live-world``, read, never changed). Every worker first
  counts one file of the live files' size (as in a watch that has run a while: its memory at
  the working set), and the files are written before the run and renamed in when they land
  (a writer's bytes are not counted with cemkit's CPU).

A file's lag is the time from its landing to the end of the commit that counted it; a run keeps
up when every file's lag is under its writer's rotation interval.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.common import machine, versions

REGIONS = 20
BRIEF_RATE = 4000 / 0.3  # records/s of the brief's reference system


def _pool(
    rng: np.random.Generator, n: int, lo: int, hi: int
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """``n`` serialized KLL (PDD, duration) and HLL (customers) sketches of ``lo..hi`` values."""
    from cemkit.warehouse import sketches

    def sizes() -> np.ndarray:
        return rng.integers(lo, hi, n)

    pdd = [sketches.kll_of(rng.lognormal(7.5, 0.5, m)) for m in sizes()]
    dur = [sketches.kll_of(rng.lognormal(4.5, 1.0, m)) for m in sizes()]
    cust = [sketches.hll_of(f"tok-{x}" for x in rng.integers(0, 2_000_000, m)) for m in sizes()]
    return pa.array(pdd, pa.binary()), pa.array(dur, pa.binary()), pa.array(cust, pa.binary())


def _repeat_strings(names: list[str], times: int) -> pa.Array:
    """``names``, each repeated ``times`` times in a row, as one Arrow string array."""
    data = b"".join(name.encode() * times for name in names)
    lengths = np.repeat([len(name.encode()) for name in names], times)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    return pa.StringArray.from_buffers(len(lengths), pa.py_buffer(offsets), pa.py_buffer(data))


class World:
    """The benchmark's objects, in the warehouse's sort order (kind, then name).

    ``customers`` modeled customers, then the node groups: :data:`REGIONS` regions and
    ``groups - REGIONS`` switches (switch ``i`` is in region ``i * REGIONS // switches``; a
    region's counters are the sums of its switches', as :func:`cemkit.kqi.rollup` writes
    ancestors).
    """

    def __init__(self, groups: int, customers: int) -> None:
        self.switches = groups - REGIONS
        self.customers = customers
        names = [*(f"cust-{i:06d}" for i in range(customers)),
                 *(f"region-{i:02d}" for i in range(REGIONS)),
                 *(f"sw-{i:05d}" for i in range(self.switches))]  # fmt: skip
        self.objects = pa.array(names, pa.string())
        self.kind_index = np.r_[np.zeros(customers, np.int64), np.ones(groups, np.int64)]
        self.kinds = pa.array(["customer", "group"], pa.string())
        self.region_of = np.arange(self.switches) * REGIONS // self.switches
        rng = np.random.default_rng(7)
        self.small = _pool(rng, 256, 1, 8)  # a 15-minute bucket holds a few calls
        self.large = _pool(rng, 512, 5, 400)  # a day holds ~96 times more
        # the columns that are the same every day, built once: objects, kinds, and twice a
        # day's draws of sketches (a day takes a window of them at its own offset)
        self._fixed: dict[int, dict[str, pa.Array]] = {}
        for nb, pool in ((96, self.small), (1, self.large)):
            obj = np.repeat(np.arange(len(self)), nb)
            fixed = {"object_kind": self.kinds.take(pa.array(self.kind_index[obj])),
                     "object": _repeat_strings(names, nb)}  # fmt: skip
            for c, sketches in zip(("pdd_kll", "duration_kll", "customers_hll"), pool,
                                   strict=True):  # fmt: skip
                fixed[c] = sketches.take(pa.array(rng.integers(0, len(sketches), 2 * len(obj))))
            self._fixed[nb] = fixed

    def __len__(self) -> int:
        return len(self.objects)

    def counters(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The voice counters of one day: arrays of (objects, 96 buckets)."""
        sw, cu = (self.switches, 96), (self.customers, 96)
        attempts = np.concatenate([rng.poisson(0.4, cu), rng.poisson(3, sw)])
        answered = rng.binomial(attempts, 0.7)
        out = {"attempts": attempts, "answered": answered,
               "user_determined": answered + rng.binomial(attempts - answered, 0.5),
               "conversation_ms": answered * rng.integers(30_000, 200_000, attempts.shape),
               "pdd_count": attempts,
               "pdd_us": attempts * rng.integers(1_000_000, 3_000_000, attempts.shape)}  # fmt: skip
        c = self.customers
        firsts = np.searchsorted(self.region_of, np.arange(REGIONS))  # switches are by region
        for name, value in out.items():  # regions between customers and switches
            regions = np.add.reduceat(value[c:], firsts, axis=0)
            out[name] = np.concatenate([value[:c], regions, value[c:]]).astype(np.int64)
        return out

    def rows(
        self,
        day: pd.Timestamp,
        freq: str,
        counters: dict[str, np.ndarray],
        rng: np.random.Generator,
        source: str | None,
    ) -> pa.Table:
        """Warehouse rows (:data:`KQI_SCHEMA`) of one day, sorted as the writer sorts them."""
        from cemkit.kqi import formulas
        from cemkit.warehouse.table import KQI_SCHEMA, SKETCH_COLUMNS

        nb = 96 if freq == "15min" else 1
        n = len(self) * nb
        fixed = self._fixed[nb]
        buckets = (day + pd.to_timedelta(np.arange(nb) * 15, unit="min")).as_unit("us")
        zero = pa.array(np.zeros(n, np.int64))
        cols: dict[str, pa.Array] = {
            "freq": pa.repeat(freq, n),
            "period": pa.repeat(day.strftime("%Y-%m-01" if freq == "day" else "%Y-%m-%d"), n),
            "bucket": pa.array(np.tile(buckets.asi8, len(self)), pa.timestamp("us", tz="UTC")),
            "object_kind": fixed["object_kind"],
            "object": fixed["object"],
        }
        for c in formulas.COUNTERS:
            value = counters.get(c)
            if value is None:
                cols[c] = zero
            else:
                cols[c] = pa.array(value.reshape(-1) if nb == 96 else value.sum(axis=1))
        offset = int(rng.integers(0, n))
        for c in SKETCH_COLUMNS:
            cols[c] = fixed[c].slice(offset, n)
        cols["source"] = pa.repeat(pa.scalar(source, pa.string()), n)
        return pa.table(cols, schema=KQI_SCHEMA)


def _day_stream(world: World, iso: str) -> tuple[pd.Timestamp, np.random.Generator, dict]:
    """A day's own random stream and its counters (the same whichever grain is written)."""
    day = pd.Timestamp(iso, tz="UTC")
    rng = np.random.default_rng([11, day.value // 86_400_000_000_000])
    return day, rng, world.counters(rng)


def _build_days(
    path: str,
    groups: int,
    customers: int,
    daily: list[str],
    quarter: list[str],
    until: float,
    nice: int,
) -> None:
    """Write the day rows of ``daily`` and the 15-minute rows of ``quarter`` (ISO dates).

    Day rows first, a month per commit, then each day of ``quarter`` in its own commit, until
    the clock reads ``until``; each partition as ``cemkit warehouse compact`` leaves it (the
    real :func:`~cemkit.warehouse.compact.merged` and writer).
    """
    from cemkit.warehouse import Warehouse
    from cemkit.warehouse.compact import merged
    from cemkit.warehouse.table import write_rows

    os.nice(max(0, nice - os.nice(0)))  # the machine is shared
    world = World(groups, customers)
    wh = Warehouse(path)
    months: dict[str, list[str]] = {}
    for iso in daily:
        months.setdefault(iso[:7], []).append(iso)
    for month in months.values():
        rows = []
        for iso in sorted(month):
            day, rng, counters = _day_stream(world, iso)
            rows.append(world.rows(day, "day", counters, rng, f"bench-day:{iso}"))
        write_rows(wh.store.table(), merged(pa.concat_tables(rows)), mode="append")
    for iso in quarter:
        if time.time() > until:
            break
        day, rng, counters = _day_stream(world, iso)
        rows = merged(world.rows(day, "15min", counters, rng, None))
        write_rows(wh.store.table(), rows, mode="append")
        if len(quarter) > 20 and iso.endswith("-15"):
            print(f"  {iso} written", flush=True)


def _days_with_day_rows(wh: Any) -> set[str]:
    """The days whose day rows are in the warehouse."""
    import pyarrow.dataset as pads

    files = wh.store.files_for("day", sorted({p["period"] for p in wh.store.table().partitions()
                                              if p["freq"] == "day"}), "group")  # fmt: skip
    if not files:
        return set()
    buckets = pads.dataset(files, format="parquet").to_table(columns=["bucket"])["bucket"]
    return {str(b)[:10] for b in pc.unique(buckets).to_pylist()}


def build_warehouse(
    path: Path,
    groups: int,
    customers: int,
    days: int,
    end: pd.Timestamp,
    processes: int = 2,
    minutes: float = float("inf"),
    nice: int = 10,
) -> dict:
    """The benchmark warehouse at ``path`` (reused when it was built with the same parameters).

    Every day of ``days`` before ``end`` holds 15-minute and day rows of every object; the days
    are written newest first by ``processes`` processes (disjoint partitions, concurrent Delta
    appends) for at most ``minutes``, then the real ``Warehouse.compact`` merges each month's
    day rows and checkpoints. A build that was interrupted or ran out of time holds the most
    recent days; the next run resumes at the days it has not written.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from cemkit.warehouse import Warehouse

    params = {"groups": groups, "customers": customers, "days": days, "end": end.isoformat(),
              "layout": 3}  # fmt: skip
    marker = path / "bench-build.json"
    if marker.exists():
        done = json.loads(marker.read_text())
        spent = done["built_s"]
        complete = done["counts"]["days"] == done["counts"]["days_daily"] == days
        if done["params"] == params and complete:
            return {**done["counts"], "built_s": done["built_s"], "reused": True}
        if done["params"] != params:
            raise SystemExit(f"{path} holds another benchmark warehouse ({done['params']}); "
                             "remove it or give another --cache")  # fmt: skip
    else:
        spent = 0.0
    t = time.perf_counter()
    wh = Warehouse.create(path)
    have = {p["period"] for p in wh.store.table().partitions() if p["freq"] == "15min"}
    have_daily = _days_with_day_rows(wh)
    first = end - pd.Timedelta(days=days)
    every = [d.strftime("%Y-%m-%d") for d in pd.date_range(first, end, freq="1D", inclusive="left")]
    quarter = [d for d in reversed(every) if d not in have]  # newest first
    daily = [d for d in every if d not in have_daily]
    print(f"building day rows of {len(daily)} days, 15-minute rows of {len(quarter)} of "
          f"{days} days into {path} ({processes} process(es), at most {minutes} min)",
          flush=True)  # fmt: skip
    month_of = sorted({d[:7] for d in daily})
    spawn = multiprocessing.get_context("spawn")  # deltalake's runtime does not survive a fork
    until = time.time() + minutes * 60
    with ProcessPoolExecutor(processes, mp_context=spawn) as pool:
        jobs = [pool.submit(_build_days, str(path), groups, customers,
                            [d for d in daily if month_of.index(d[:7]) % processes == i],
                            quarter[i::processes], until, nice)
                for i in range(processes)]  # fmt: skip
        for job in jobs:
            job.result()
    print(f"  {wh.compact(vacuum=True)}", flush=True)  # months of day rows; a checkpoint
    adds = pa.table(wh.store.table().get_add_actions(flatten=True)).to_pydict()
    counts = {"rows_15min": 0, "day_rows": 0}
    for freq, rows in zip(adds["partition.freq"], adds["num_records"], strict=True):
        counts["rows_15min" if freq == "15min" else "day_rows"] += int(rows)
    counts["days"] = len({p for f, p in zip(adds["partition.freq"], adds["partition.period"],
                                            strict=True) if f == "15min"})  # fmt: skip
    counts["days_daily"] = len(_days_with_day_rows(wh))
    counts["data_files"] = len(adds["path"])
    counts["bytes"] = int(sum(adds["size_bytes"]))
    built = spent + time.perf_counter() - t
    marker.write_text(json.dumps({"params": params, "counts": counts, "built_s": built}))
    return {**counts, "built_s": built, "reused": False}


def raw_records(path: Path, n: int, groups: int, start: pd.Timestamp, days: int) -> None:
    """``n`` raw records over ``days`` days in Parquet (what DuckDB would otherwise scan)."""
    rng = np.random.default_rng(11)
    writer = None
    chunk = 2_000_000
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        t = np.sort(rng.integers(0, days * 86_400_000_000, m)) + start.value // 1000
        answered = rng.random(m) < 0.7
        table = pa.table({
            "node": pa.array(rng.integers(0, groups, m).astype(np.int32)),
            "start": pa.array(t, pa.timestamp("us", tz="UTC")),
            "answered": pa.array(answered),
            "billsec_s": pa.array(np.where(answered, rng.lognormal(4.5, 1.0, m), 0.0)),
            "pdd_ms": pa.array(rng.lognormal(7.5, 0.5, m)),
            "customer": pa.array(rng.integers(0, 2_000_000, m)),
        })  # fmt: skip
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=500_000)
    assert writer is not None
    writer.close()


def duckdb_raw_query(raw: Path, groups: int, t0: pd.Timestamp, t1: pd.Timestamp) -> pd.DataFrame:
    """The same report with DuckDB over the raw records (exact quantiles and distinct counts)."""
    import duckdb

    mapping = pd.DataFrame({"node": np.arange(groups, dtype=np.int32),
                            "region": [f"region-{i * REGIONS // groups:02d}"
                                       for i in range(groups)]})  # fmt: skip
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("mapping", mapping)
    sql = f"""
        SELECT m.region, date_trunc('day', r.start) AS day, count(*) AS attempts,
               avg(r.answered::INT) AS asr,
               sum(r.billsec_s) / nullif(sum(r.answered::INT), 0) AS acd_s,
               quantile_cont(r.pdd_ms, 0.5) AS pdd_p50_ms,
               quantile_cont(r.pdd_ms, 0.95) AS pdd_p95_ms,
               count(DISTINCT r.customer) AS customers
        FROM read_parquet('{raw}') r JOIN mapping m USING (node)
        WHERE r.start >= TIMESTAMPTZ '{t0.isoformat()}' AND r.start < TIMESTAMPTZ '{t1.isoformat()}'
        GROUP BY ALL
    """  # fmt: skip
    out = con.execute(sql).df()
    con.close()
    return out


def best_of(fn, repeat: int = 5) -> tuple[float, object]:
    """Best wall time of ``repeat`` warm runs (one unmeasured run first), and the result."""
    fn()
    best, res = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t)
    return best, res


def cpu_of(fn, repeat: int = 5) -> float:
    """Best CPU time (all threads of this process) of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        c = time.process_time()
        fn()
        best = min(best, time.process_time() - c)
    return best


def _ingest_world(tmp: Path, records: int, n_files: int, workers: int) -> dict:
    """Rotated Asterisk files of one synthetic world: ``n_files`` slices, and small warm files."""
    from cemkit import synth
    from cemkit.warehouse.batch import Settings

    os.environ.setdefault("CEMKIT_KEY", "5e" * 32)
    world = tmp / "world"
    synth.generate(world, records=records, seed=5, days=1, incidents=0)
    lines = (world / "formats" / "asterisk" / "Master.csv").read_bytes().splitlines(keepends=True)
    warm, landing, small = tmp / "warm", tmp / "landing", tmp / "small"
    for d in (warm, landing, small):
        d.mkdir()
    for i in range(max(2, workers)):  # warms this process and every worker (compiled kernels)
        (warm / f"w{i}.csv").write_bytes(b"".join(lines[i * 500 : (i + 1) * 500]))
    size = len(lines) // n_files
    for i in range(n_files):  # rotation: consecutive time slices of one switch's file
        (landing / f"Master-{i}.csv").write_bytes(b"".join(lines[i * size : (i + 1) * size]))
    for i in range(32):  # small files (500 records): the fixed cost of a file
        (small / f"Small-{i}.csv").write_bytes(b"".join(lines[i * 500 : (i + 1) * 500]))
    settings = Settings("asterisk", "default", str(world / "model.yaml"), synth.DEFAULT_TIMEZONE,
                        synth.DEFAULT_REGION)  # fmt: skip
    return {"settings": settings, "warm": warm, "landing": landing, "small": small}


def file_cpu(tmp: Path, w: dict) -> dict:
    """CPU per file in this process, large and small files, each set as one micro-batch.

    What one worker does for a file plus this process's share of the commit (one per set);
    ``cpu = fixed + per_record * records``: the two sizes give the fixed cost of a file.
    """
    from cemkit.warehouse import Warehouse
    from cemkit.warehouse.batch import ingest_files

    wh = Warehouse.create(tmp / "wh-cpu")
    ingest_files(wh.store, [str(p) for p in sorted(w["warm"].iterdir())], w["settings"])
    out = {}
    for name in ("landing", "small"):
        files = sorted(w[name].iterdir())
        c = time.process_time()
        n = ingest_files(wh.store, [str(f) for f in files], w["settings"]).records
        out[name] = ((time.process_time() - c) / len(files), n / len(files))
    (big_s, big_n), (small_s, small_n) = out["landing"], out["small"]
    per_record = (big_s - small_s) / (big_n - small_n)
    return {"large": out["landing"], "small": out["small"], "per_record_s": per_record,
            "fixed_s": small_s - per_record * small_n}  # fmt: skip


def ingest_bench(tmp: Path, w: dict, batch: int, workers: int, name: str = "landing") -> dict:
    """Records/s of the watcher over rotated synthetic Asterisk files (warm process and pool)."""
    from cemkit.warehouse import Warehouse
    from cemkit.warehouse.watch import Watcher

    wh = Warehouse.create(tmp / f"wh-{name}")
    quiet = io.StringIO()
    Watcher(w["warm"], wh.store, w["settings"], settle=0, out=quiet, batch=batch,
            workers=workers).run(once=True)  # fmt: skip
    watcher = Watcher(w[name], wh.store, w["settings"], settle=0, batch=batch, out=quiet,
                      workers=workers)  # fmt: skip
    t, c, c_all = time.perf_counter(), time.process_time(), _cpu_all()
    progress = watcher.run(once=True)
    elapsed, cpu = time.perf_counter() - t, time.process_time() - c
    cpu_all = _cpu_all() - c_all
    n, n_files = progress.records, progress.files_counted
    return {"records": n, "files": n_files, "seconds": elapsed, "cpu_main": cpu,
            "cpu_all": cpu_all, "rate": n / elapsed, "per_file_s": elapsed / n_files,
            "records_per_file": n / n_files, "batches": progress.batches,
            "warehouse": wh}  # fmt: skip


def _cpu_all() -> float:
    """CPU seconds of this process and of the warehouse's worker processes so far."""
    return float(sum(_cpu_parts()))


def _cpu_parts() -> np.ndarray:
    """CPU seconds so far: this process; the workers' user time; the workers' system time."""
    import psutil

    from cemkit.warehouse import batch as wbatch

    out = np.array([time.process_time(), 0.0, 0.0])
    for pool in wbatch._POOLS.values():
        for proc in list(getattr(pool, "_processes", {}).values()):
            try:
                t = psutil.Process(proc.pid).cpu_times()
            except psutil.Error:  # a worker that ended
                continue
            out[1:] += (t.user, t.system)
    return out


def live_bench(
    tmp: Path, w: dict, schedule: list[tuple[float, Path, float]], batch: int, workers: int,
    name: str = "live",
) -> dict:  # fmt: skip
    """Files land on ``schedule`` while the watcher runs: each file's lag against its interval.

    ``schedule``: (seconds after the start, file, the interval of the file's source). Each file
    is written beside the landing directory first (not timed: a switch writes on its own
    machine) and a producer thread renames it into the landing directory at its time, as
    writers rotate; the watcher (:meth:`Watcher.run`, the real
    loop: file-system events, settle 0, overlapping micro-batches, commits) counts them. A
    file's lag is the time from its landing to the end of the commit that counted it; the
    figure is met when every file's lag is under its source's rotation interval.
    """
    import threading

    from cemkit.warehouse import Warehouse
    from cemkit.warehouse.watch import Watcher

    landing = tmp / name
    landing.mkdir(parents=True)
    wh = Warehouse.create(tmp / f"wh-{name}")
    quiet = io.StringIO()
    Watcher(w["warm"], wh.store, w["settings"], settle=0, out=quiet, batch=batch,
            workers=workers).run(once=True)  # fmt: skip
    watcher = Watcher(landing, wh.store, w["settings"], settle=0, poll=0.01, batch=batch,
                      out=quiet, workers=workers)  # fmt: skip
    landed: dict[str, float] = {}
    interval_of = {str(landing / f.name): every for _, f, every in schedule}
    # A switch writes its current file over the interval (on its own machine) and rotates it
    # by a rename: the files are written beside the landing directory before the run, so the
    # CPU counted is cemkit's, not the benchmark's copying of the writers' bytes.
    staged = tmp / f"{name}-written"
    staged.mkdir(parents=True)
    for _, f, _ in schedule:
        shutil.copy(f, staged / f.name)

    def produce() -> None:
        t0 = time.perf_counter()
        for at, f, _ in sorted(schedule, key=lambda x: x[0]):
            time.sleep(max(0.0, t0 + at - time.perf_counter()))
            target = landing / f.name
            os.rename(staged / f.name, target)
            landed[str(target)] = time.perf_counter()

    producer = threading.Thread(target=produce)
    follower = threading.Thread(target=watcher.run)  # the real loop (overlapping micro-batches)
    counted: dict[str, float] = {}
    cpu = _cpu_parts()
    follower.start()
    producer.start()
    while len(counted) < len(schedule):
        time.sleep(0.005)
        now = time.perf_counter()
        for path in list(watcher._done):
            counted.setdefault(path, now)
    parts = _cpu_parts() - cpu
    cpu = float(parts.sum())
    watcher.stop()
    producer.join()
    follower.join()
    lags = np.array([counted[p] - landed[p] for p in landed])
    over = np.array([counted[p] - landed[p] - interval_of[p] for p in landed])
    span = max(counted.values()) - min(landed.values())
    records = watcher.progress.records
    return {"records": records, "files": len(schedule), "lag_p50_s": float(np.median(lags)),
            "lag_max_s": float(lags.max()), "worst_margin_s": float(over.max()),
            "kept_up": bool((over < 0).all()), "rate": records / span, "cpu_s": cpu,
            "cpu_parent_s": float(parts[0]), "cpu_workers_system_s": float(parts[2]),
            "batches": watcher.progress.batches, "warehouse": wh}  # fmt: skip


def _rotations(source: Path, out: Path, sources: int, every: float, rate: float,
               intervals: int) -> list[tuple[float, Path, float]]:  # fmt: skip
    """``sources`` writers, each rotating a file every ``every`` s, together ``rate`` records/s.

    Consecutive slices of ``source`` (an Asterisk ``Master.csv`` of a cached synthetic world,
    read line by line, never changed), dealt round robin to the sources: file ``i`` of source
    ``k`` lands at ``(i + 1) * every + k * every / sources`` (the sources out of phase, as
    switches are). Each file holds ``rate * every / sources`` records.
    """
    per_file = int(rate * every / sources)
    out.mkdir(parents=True, exist_ok=True)
    schedule = []
    with open(source, "rb") as fh:
        for i in range(intervals):
            for k in range(sources):
                target = out / f"src{k}-Master-{i:03d}.csv"
                with open(target, "wb") as dst:
                    for _ in range(per_file):
                        line = fh.readline()
                        if not line:
                            raise SystemExit(f"{source}: too few records for the schedule")
                        dst.write(line)
                schedule.append(((i + 1) * every + k * every / sources, target, every))
    return schedule


def _same_counters(a: Any, b: Any) -> bool:
    """Whether two warehouses hold the same counters (every stored bucket, groups, customers)."""
    from cemkit.kqi import formulas

    keys = ["object_kind", "object", "bucket"]
    for freq, kind in (("15min", "group"), ("day", "group"), ("day", "customer")):
        x, y = (wh.counters(pd.Timestamp("2000-01-01", tz="UTC"),
                            pd.Timestamp("2100-01-01", tz="UTC"), freq=freq, kind=kind)
                for wh in (a, b))  # fmt: skip
        x, y = (f.sort_values(keys).reset_index(drop=True) for f in (x, y))
        cols = [*keys, *formulas.COUNTERS]
        if not x[cols].astype(str).equals(y[cols].astype(str)):
            return False
    return True


def _world_settings(world: Path) -> Any:
    """How the files of a cached synthetic world are read (its model, synth's zone and region)."""
    from cemkit import synth
    from cemkit.warehouse.batch import Settings

    os.environ.setdefault("CEMKIT_KEY", "5e" * 32)
    return Settings("asterisk", "default", str(world / "model.yaml"), synth.DEFAULT_TIMEZONE,
                    synth.DEFAULT_REGION)  # fmt: skip


def _warm_files(out: Path, source: Path, workers: int, records: int = 500) -> Path:
    """Files of ``records`` records from the end of ``source`` (records no schedule uses), one
    per worker: compiled kernels, and, at the size of the live files, each worker's memory at
    its working set, as in a ``cemkit watch`` that has run for a while (a worker keeps the
    memory it frees; the first file of a new size faults it in, page by page)."""
    out.mkdir(parents=True)
    n = max(2, workers)
    with open(source, "rb") as fh:
        fh.seek(max(0, source.stat().st_size - (records * n + 2) * 400))
        lines = fh.read().splitlines(keepends=True)[1:]
    if len(lines) < records * n:
        raise SystemExit(f"{source}: too few records for {n} warm files of {records:,}")
    for i in range(n):
        (out / f"w{i}.csv").write_bytes(b"".join(lines[i * records : (i + 1) * records]))
    return out


def _print_live(what: str, live: dict, rate: float, same: bool | None) -> None:
    kept = "kept up" if live["kept_up"] else "did NOT keep up"
    check = "" if same is None else (", warehouse equal to the one-batch ingest of the same "
                                     f"files: {'yes' if same else 'NO'}")  # fmt: skip
    print(f"  live, {what} ({rate:,.0f} records/s offered): {live['records']:,} records in "
          f"{live['files']} files counted at {live['rate']:,.0f} records/s in {live['batches']} "
          f"batches; lag p50 {live['lag_p50_s']:.2f} s, max {live['lag_max_s']:.2f} s (worst "
          f"file {live['worst_margin_s']:+.2f} s against its interval): {kept} (lag < one file "
          f"interval); CPU {live['cpu_s']:.1f} s in all processes "
          f"({live['records'] / live['cpu_s']:,.0f} records per CPU-second; this process, "
          f"the watcher and the benchmark's renames, {live['cpu_parent_s']:.1f} s; the "
          f"workers' kernel time {live['cpu_workers_system_s']:.1f} s){check}")  # fmt: skip


def query_bench(args: argparse.Namespace) -> None:
    """Build (or reuse) the year warehouse and time the report queries against DuckDB raw."""
    from cemkit.warehouse import open as open_warehouse

    end = pd.Timestamp("2027-01-01", tz="UTC")
    counts = build_warehouse(args.cache, args.groups, args.customers, args.days, end,
                             args.processes, args.build_minutes)  # fmt: skip
    rows = counts["rows_15min"] + counts["day_rows"]
    print(f"warehouse {args.cache}: {counts['rows_15min']:,} 15-min rows ({counts['days']} of "
          f"{args.days} days) + {counts['day_rows']:,} day rows ({counts['days_daily']} days) of "
          f"{args.groups + args.customers:,} objects ({args.groups:,} node groups, "
          f"{args.customers:,} customers); {counts['data_files']:,} data files, "
          f"{counts['bytes'] / 2**30:.2f} GiB ({counts['bytes'] / 2**20 / (rows / 1e6):.1f} MiB "
          f"per million rows); {'reused, ' if counts['reused'] else ''}built in "
          f"{counts['built_s'] / 60:.1f} min")  # fmt: skip
    t0, t1 = end - pd.Timedelta(days=30), end
    switches = args.groups - REGIONS
    raw = args.cache.parent / f"warehouse-year-raw-{args.raw_records}-{switches}.parquet"
    if not raw.exists():
        t = time.perf_counter()
        raw_records(raw.with_suffix(".tmp"), args.raw_records, switches, t0, 30)
        raw.with_suffix(".tmp").rename(raw)
        print(f"raw records written in {time.perf_counter() - t:.1f} s")
    print(f"raw records: {args.raw_records:,} over the 30 days in {raw} "
          f"({raw.stat().st_size / 2**20:.0f} MiB)")  # fmt: skip
    wh = open_warehouse(args.cache)
    regions = [f"region-{i:02d}" for i in range(REGIONS)]
    names = ["attempts", "asr", "acd_s", "pdd_p50_ms", "pdd_p95_ms"]

    def query(freq: str, start: pd.Timestamp, stop: pd.Timestamp):
        return lambda: wh.kqi(start, stop, groups=regions, indicators=names, freq=freq, k=10)

    report = query("day", t0, t1)
    t_wh, res = best_of(report)
    c_wh = cpu_of(report)
    t_db, res_db = best_of(lambda: duckdb_raw_query(raw, switches, t0, t1), repeat=3)
    c_db = cpu_of(lambda: duckdb_raw_query(raw, switches, t0, t1), repeat=2)
    assert len(res) == len(res_db) == REGIONS * 30, (len(res), len(res_db))  # type: ignore[arg-type]
    print(f"30 days x per day x per region ({len(res)} rows):")  # type: ignore[arg-type]
    print(f"  warehouse.kqi (day rows, sketches, k):      {t_wh * 1e3:8.1f} ms "
          f"(CPU {c_wh * 1e3:.1f} ms)")  # fmt: skip
    print(f"  DuckDB over {args.raw_records:,} raw records: {t_db * 1e3:8.1f} ms "
          f"(CPU {c_db * 1e3:.1f} ms)")  # fmt: skip
    print(f"  ratio DuckDB raw / warehouse: {t_db / t_wh:.1f}x wall, {c_db / c_wh:.1f}x CPU")
    for label, freq, start in (("the year x per month", "month", end - pd.DateOffset(years=1)),
                               ("the last day x per hour", "hour", end - pd.Timedelta(days=1)),
                               ("30 days x per hour", "hour", t0)):  # fmt: skip
        fn = query(freq, start, end)
        t_q, out = best_of(fn)
        c_q = cpu_of(fn)
        print(f"  {label} x per region ({len(out)} rows): {t_q * 1e3:8.1f} ms "  # type: ignore[arg-type]
              f"(CPU {c_q * 1e3:.1f} ms)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=8_000, help="node groups, 20 regions included")
    ap.add_argument("--customers", type=int, default=2_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/cemkit-bench/warehouse-year"))
    ap.add_argument("--build-minutes", type=float, default=float("inf"))
    ap.add_argument("--processes", type=int, default=2, help="processes building the warehouse")
    ap.add_argument("--raw-records", type=int, default=20_000_000)
    ap.add_argument("--ingest-records", type=int, default=280_000)
    ap.add_argument("--ingest-files", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8, help="files per micro-batch (commit)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--live-rate", type=float, default=10 * BRIEF_RATE,
                    help="records/s at which files land in the live lag run")  # fmt: skip
    ap.add_argument(
        "--sources",
        type=int,
        default=4,
        help="realistic live run: writers rotating files (0: skip it)",
    )
    ap.add_argument(
        "--rotate-s",
        type=float,
        default=10.0,
        help="realistic live run: seconds between two files of one writer",
    )
    ap.add_argument("--intervals", type=int, default=3, help="realistic live run: files per writer")
    ap.add_argument(
        "--live-world",
        type=Path,
        default=Path("/tmp/cemkit-bench/pipeline/world-10000000-1"),
        help="cached synthetic world whose Asterisk file the writers slice",
    )
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-query", action="store_true")
    args = ap.parse_args()

    print(machine())
    print(versions(("cemkit", "pandas", "pyarrow", "deltalake", "datasketches", "duckdb")))
    print(f"load average at start: {os.getloadavg()}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-warehouse-"))
    try:
        if not args.skip_query:
            query_bench(args)
        if not args.skip_ingest:
            w = _ingest_world(tmp / "ingest", args.ingest_records, args.ingest_files, args.workers)
            for name, size in (("landing", args.batch), ("small", 16)):
                ing = ingest_bench(tmp / "ingest", w, size, args.workers, name)
                if name == "landing":
                    landing = ing
                print(f"ingest: {ing['records']:,} records in {ing['files']} files, "
                      f"{ing['batches']} micro-batch(es) of <= {size} files, {args.workers} "
                      f"worker(s): {ing['seconds']:.2f} s: {ing['rate']:,.0f} records/s "
                      f"({ing['rate'] / (10 * BRIEF_RATE):.2f}x of 10x the brief's rate, "
                      f"{10 * BRIEF_RATE:,.0f}/s), {ing['per_file_s'] * 1e3:.0f} ms per file; "
                      f"CPU {ing['cpu_all']:.2f} s in all processes "
                      f"({ing['records'] / ing['cpu_all']:,.0f} records per CPU-second), of "
                      f"which parent {ing['cpu_main']:.2f} s")  # fmt: skip
            cpu = file_cpu(tmp / "ingest", w)
            (big_s, big_n), (small_s, small_n) = cpu["large"], cpu["small"]
            print(f"  CPU per file, one process (process + commit): {big_s * 1e3:.0f} ms per "
                  f"{big_n:,.0f}-record file ({big_n / big_s:,.0f} records per CPU-second), "
                  f"{small_s * 1e3:.0f} ms per {small_n:,.0f}-record file; fixed cost "
                  f"{cpu['fixed_s'] * 1e3:.0f} ms per file + "
                  f"{cpu['per_record_s'] * 1e6:.1f} us per record")  # fmt: skip
            files = sorted(w["landing"].iterdir(), key=lambda f: int(f.stem.split("-")[1]))
            per_file = sum(1 for _ in files[0].open("rb"))
            every = per_file / args.live_rate  # one writer, a file as soon as it has per_file
            harsh = [((i + 1) * every, f, every) for i, f in enumerate(files)]
            live = live_bench(tmp / "ingest", w, harsh, args.batch, args.workers, "live")
            same = _same_counters(live["warehouse"], landing["warehouse"])
            _print_live(f"one writer, a {per_file:,}-record file every {every:.3f} s", live,
                        args.live_rate, same)  # fmt: skip
        if args.sources:
            world = args.live_world
            real = {
                "settings": _world_settings(world),
                "warm": _warm_files(
                    tmp / "real-warm",
                    world / "formats" / "asterisk" / "Master.csv",
                    args.workers,
                    int(args.live_rate * args.rotate_s / args.sources),
                ),
            }
            schedule = _rotations(world / "formats" / "asterisk" / "Master.csv",
                                  tmp / "real-files", args.sources, args.rotate_s,
                                  args.live_rate, args.intervals)  # fmt: skip
            live = live_bench(tmp / "ingest-real", real, schedule, args.batch, args.workers,
                              "real")  # fmt: skip
            per_file = int(args.live_rate * args.rotate_s / args.sources)
            _print_live(f"{args.sources} writers, each a {per_file:,}-record file every "
                        f"{args.rotate_s:g} s, {args.intervals} intervals", live,
                        args.live_rate, None)  # fmt: skip
        print(f"load average at end: {os.getloadavg()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
