"""KQI warehouse benchmark: report queries against DuckDB over raw records, and ingest rate.

    python -m benchmarks.bench_warehouse [--groups 10000] [--days 365] [--days-15min 30]
                                         [--raw-records 20000000] [--ingest-records 200000]

Query part. A warehouse (the real Delta table of :mod:`cemkit.warehouse`) holds ``--days`` days
of day rows and ``--days-15min`` days of 15-minute rows for ``--groups`` switch groups under 20
regions (regions are stored objects too, as :func:`cemkit.kqi.rollup` writes ancestors). Counters
are random; day rows carry real KLL (PDD, duration) and HLL (customers) sketches drawn from a
pool of 512 serialized sketches of each kind (building 3.65M distinct sketches would take longer
than the whole benchmark; merging costs the same). 15-minute rows carry counters only. The query
is the nightly report: the last 30 days, per day, per region, ASR, ACD, PDD p50/p95, distinct
customers and k-suppression, through :meth:`cemkit.warehouse.Warehouse.kqi` (the whole call:
table log, pruning, DuckDB sums, sketch merges, formulas, suppression). The baseline is what a
user would otherwise run: DuckDB over the raw records of the same 30 days (``--raw-records``
records in Parquet, joined to the switch→region map), computing the same figures with exact
quantiles and ``count(DISTINCT customer)``. Both warm (best of 5, after one unmeasured run).

Ingest part. ``cemkit watch --once`` equivalent (the real :class:`cemkit.warehouse.watch.Watcher`)
over rotated Asterisk files of a synthetic world (``--ingest-records`` records in
``--ingest-files`` files, micro-batches of ``--batch`` files, ``--workers`` processes), warm
(small files counted first so that this process and every worker have compiled their kernels),
records/s against 10x the brief's 13.3K records/s. Then the CPU of one file in one process
(large and 500-record files: the fixed cost of a file), and a live run: the same files land one
by one at ``--live-rate`` records/s while the watcher runs; the lag of each file (landing to
commit) against the file interval.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import machine, versions

REGIONS = 20
BRIEF_RATE = 4000 / 0.3  # records/s of the brief's reference system


def _pool(rng: np.random.Generator, n: int = 512) -> tuple[list[bytes], list[bytes], list[bytes]]:
    from cemkit.warehouse import sketches

    pdd = [sketches.kll_of(rng.lognormal(7.5, 0.5, rng.integers(5, 400))) for _ in range(n)]
    dur = [sketches.kll_of(rng.lognormal(4.5, 1.0, rng.integers(5, 400))) for _ in range(n)]
    cust = [sketches.hll_of(f"tok-{x}" for x in rng.integers(0, 2_000_000, rng.integers(20, 300)))
            for _ in range(n)]  # fmt: skip
    return pdd, dur, cust  # type: ignore[return-value]


def _rows(
    day: pd.Timestamp,
    freq: str,
    objects: np.ndarray,
    kinds: np.ndarray,
    rng: np.random.Generator,
    pool: tuple[list[bytes], ...] | None,
) -> pa.RecordBatch:
    from cemkit.kqi import formulas
    from cemkit.warehouse.table import KQI_SCHEMA

    if freq == "15min":
        buckets = day + pd.to_timedelta(np.arange(96) * 15, unit="min")
    else:
        buckets = pd.DatetimeIndex([day])
    nb, no = len(buckets), len(objects)
    n = nb * no
    scale = 1 if freq == "15min" else 96
    attempts = rng.poisson(3 * scale, n)
    answered = rng.binomial(attempts, 0.7)
    cols: dict[str, object] = {
        "freq": pa.array(np.full(n, freq, dtype=object), pa.string()),
        "period": pa.array(
            np.full(n, day.strftime("%Y-%m-01" if freq == "day" else "%Y-%m-%d"), dtype=object),
            pa.string(),
        ),
        "bucket": pa.array(
            np.repeat(buckets.as_unit("us").to_numpy(), no), pa.timestamp("us", tz="UTC")
        ),
        "object_kind": pa.array(np.tile(kinds, nb), pa.string()),
        "object": pa.array(np.tile(objects, nb), pa.string()),
    }
    for c in formulas.COUNTERS:
        cols[c] = pa.array(np.zeros(n, dtype=np.int64))
    cols["attempts"] = pa.array(attempts)
    cols["answered"] = pa.array(answered)
    cols["user_determined"] = pa.array(answered + rng.binomial(attempts - answered, 0.5))
    cols["conversation_ms"] = pa.array(answered * rng.integers(30_000, 200_000, n))
    cols["pdd_count"] = pa.array(attempts)
    cols["pdd_us"] = pa.array(attempts * rng.integers(1_000_000, 3_000_000, n))
    for i, c in enumerate(("pdd_kll", "duration_kll", "customers_hll")):
        if pool is None:
            cols[c] = pa.nulls(n, pa.binary())
        else:
            cols[c] = pa.array([pool[i][j] for j in rng.integers(0, len(pool[i]), n)], pa.binary())
    cols["source"] = pa.array(np.full(n, "bench", dtype=object), pa.string())
    return pa.RecordBatch.from_pydict(cols, schema=KQI_SCHEMA)


def build_warehouse(path: Path, groups: int, days: int, days_15: int, end: pd.Timestamp) -> dict:
    """Write the benchmark warehouse; returns its row counts."""
    from cemkit.warehouse import Warehouse
    from cemkit.warehouse.compact import merged
    from cemkit.warehouse.table import KQI_SCHEMA, write_rows

    rng = np.random.default_rng(7)
    pool = _pool(rng)
    switches = np.array([f"sw-{i:05d}" for i in range(groups)], dtype=object)
    regions = np.array([f"region-{i:02d}" for i in range(REGIONS)], dtype=object)
    objects = np.concatenate([switches, regions])
    kinds = np.full(len(objects), "group", dtype=object)
    wh = Warehouse.create(path)
    first = end - pd.Timedelta(days=days)
    counts = {"day_rows": 0, "rows_15min": 0}

    def write(batches: list[pa.RecordBatch]) -> None:
        # each partition as `cemkit warehouse compact` leaves it: merged rows sorted by object,
        # split into files of contiguous objects (the real compaction's merge and writer)
        rows = merged(pa.Table.from_batches(batches, schema=KQI_SCHEMA))
        write_rows(wh.store.table(), rows, mode="append")

    month: list[pa.RecordBatch] = []
    for d in range(days):
        day = first + pd.Timedelta(days=d)
        if month and day.day == 1:
            write(month)
            month = []
        b = _rows(day, "day", objects, kinds, rng, pool)
        counts["day_rows"] += b.num_rows
        month.append(b)
        if d >= days - days_15:
            b = _rows(day, "15min", objects, kinds, rng, None)
            counts["rows_15min"] += b.num_rows
            write([b])
    if month:
        write(month)
    wh.compact()  # checkpoint (one write per partition: nothing to merge)
    return counts


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
    t, c = time.perf_counter(), time.process_time()
    progress = watcher.run(once=True)
    elapsed, cpu = time.perf_counter() - t, time.process_time() - c
    n, n_files = progress.records, progress.files_counted
    return {"records": n, "files": n_files, "seconds": elapsed, "cpu_main": cpu,
            "rate": n / elapsed, "per_file_s": elapsed / n_files,
            "records_per_file": n / n_files, "batches": progress.batches}  # fmt: skip


def live_bench(tmp: Path, w: dict, rate: float, batch: int, workers: int) -> dict:
    """Files land at ``rate`` records/s while the watcher runs: lag of each file, kept up or not.

    A producer thread moves the rotated files into the landing directory one by one (written as
    ``*.part`` and renamed, as writers rotate), one every ``records_per_file / rate`` seconds;
    the watcher (:meth:`Watcher.run`, the real loop: file-system events, settle 0, overlapping
    micro-batches, commits) counts them. A file's lag is
    the time from its landing to the end of the commit that counted it.
    """
    import threading

    from cemkit.warehouse import Warehouse
    from cemkit.warehouse.watch import Watcher

    files = sorted(w["landing"].iterdir(), key=lambda f: int(f.stem.split("-")[1]))
    per_file = sum(1 for _ in files[0].open("rb"))
    interval = per_file / rate
    landing = tmp / "live"
    landing.mkdir()
    wh = Warehouse.create(tmp / "wh-live")
    quiet = io.StringIO()
    Watcher(w["warm"], wh.store, w["settings"], settle=0, out=quiet, batch=batch,
            workers=workers).run(once=True)  # fmt: skip
    watcher = Watcher(landing, wh.store, w["settings"], settle=0, poll=0.01, batch=batch,
                      out=quiet, workers=workers)  # fmt: skip
    landed: dict[str, float] = {}

    def produce() -> None:
        t0 = time.perf_counter()
        for i, f in enumerate(files):
            target = landing / f.name
            shutil.copy(f, landing / (f.name + ".part"))
            os.rename(landing / (f.name + ".part"), target)
            landed[str(target)] = time.perf_counter()
            time.sleep(max(0.0, t0 + (i + 1) * interval - time.perf_counter()))

    producer = threading.Thread(target=produce)
    follower = threading.Thread(target=watcher.run)  # the real loop (overlapping micro-batches)
    counted: dict[str, float] = {}
    follower.start()
    producer.start()
    while len(counted) < len(files):
        time.sleep(0.005)
        now = time.perf_counter()
        for path in list(watcher._done):
            counted.setdefault(path, now)
    watcher.stop()
    producer.join()
    follower.join()
    lags = np.array([counted[p] - landed[p] for p in landed])
    span = max(counted.values()) - min(landed.values())
    return {"interval_s": interval, "records_per_file": per_file,
            "lag_p50_s": float(np.median(lags)), "lag_max_s": float(lags.max()),
            "rate": per_file * len(files) / span, "files": len(files),
            "batches": watcher.progress.batches}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--days-15min", type=int, default=30)
    ap.add_argument("--raw-records", type=int, default=20_000_000)
    ap.add_argument("--ingest-records", type=int, default=280_000)
    ap.add_argument("--ingest-files", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8, help="files per micro-batch (commit)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--live-rate", type=float, default=10 * BRIEF_RATE,
                    help="records/s at which files land in the live lag run")  # fmt: skip
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-query", action="store_true")
    args = ap.parse_args()
    from cemkit.warehouse import open as open_warehouse

    print(machine())
    print(versions(("cemkit", "pandas", "pyarrow", "deltalake", "datasketches", "duckdb")))
    print(f"load average at start: {os.getloadavg()}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-warehouse-"))
    try:
        if not args.skip_query:
            end = pd.Timestamp("2027-01-01", tz="UTC")
            t = time.perf_counter()
            counts = build_warehouse(tmp / "wh", args.groups, args.days, args.days_15min, end)
            built = time.perf_counter() - t
            print(f"warehouse: {counts['day_rows']:,} day rows ({args.days} days), "
                  f"{counts['rows_15min']:,} 15-min rows ({args.days_15min} days), "
                  f"{args.groups + REGIONS:,} objects; built in {built:.1f} s")  # fmt: skip
            t0, t1 = end - pd.Timedelta(days=30), end
            raw = tmp / "raw.parquet"
            t = time.perf_counter()
            raw_records(raw, args.raw_records, args.groups, t0, 30)
            mib = raw.stat().st_size / 2**20
            print(f"raw records: {args.raw_records:,} over 30 days, written in "
                  f"{time.perf_counter() - t:.1f} s ({mib:.0f} MiB)")  # fmt: skip
            wh = open_warehouse(tmp / "wh")
            regions = [f"region-{i:02d}" for i in range(REGIONS)]
            names = ["attempts", "asr", "acd_s", "pdd_p50_ms", "pdd_p95_ms"]

            def report():
                return wh.kqi(t0, t1, groups=regions, indicators=names, freq="day", k=10)

            t_wh, res = best_of(report)
            c_wh = cpu_of(report)
            t_15, _ = best_of(lambda: wh.counters(t0, t1, groups=regions, freq="hour"), repeat=3)
            t_db, res_db = best_of(lambda: duckdb_raw_query(raw, args.groups, t0, t1), repeat=3)
            c_db = cpu_of(lambda: duckdb_raw_query(raw, args.groups, t0, t1), repeat=2)
            assert len(res) == len(res_db) == REGIONS * 30, (len(res), len(res_db))  # type: ignore[arg-type]
            print(f"30 days x per day x per region ({len(res)} rows):")  # type: ignore[arg-type]
            print(f"  warehouse.kqi (day rows, sketches, k):      {t_wh * 1e3:8.1f} ms "
                  f"(CPU {c_wh * 1e3:.1f} ms)")  # fmt: skip
            print(f"  warehouse.counters, hour (15-min rows):      {t_15 * 1e3:8.1f} ms")
            print(f"  DuckDB over {args.raw_records:,} raw records: {t_db * 1e3:8.1f} ms "
                  f"(CPU {c_db * 1e3:.1f} ms)")  # fmt: skip
            print(
                f"  ratio DuckDB raw / warehouse: {t_db / t_wh:.1f}x wall, {c_db / c_wh:.1f}x CPU"
            )
        if not args.skip_ingest:
            w = _ingest_world(tmp / "ingest", args.ingest_records, args.ingest_files, args.workers)
            for name, size in (("landing", args.batch), ("small", 16)):
                ing = ingest_bench(tmp / "ingest", w, size, args.workers, name)
                print(f"ingest: {ing['records']:,} records in {ing['files']} files, "
                      f"{ing['batches']} micro-batch(es) of <= {size} files, {args.workers} "
                      f"worker(s): {ing['seconds']:.2f} s: {ing['rate']:,.0f} records/s "
                      f"({ing['rate'] / (10 * BRIEF_RATE):.2f}x of 10x the brief's rate, "
                      f"{10 * BRIEF_RATE:,.0f}/s), {ing['per_file_s'] * 1e3:.0f} ms per file; "
                      f"parent CPU {ing['cpu_main']:.2f} s")  # fmt: skip
            cpu = file_cpu(tmp / "ingest", w)
            (big_s, big_n), (small_s, small_n) = cpu["large"], cpu["small"]
            print(f"  CPU per file, one process (process + commit): {big_s * 1e3:.0f} ms per "
                  f"{big_n:,.0f}-record file ({big_n / big_s:,.0f} records per CPU-second), "
                  f"{small_s * 1e3:.0f} ms per {small_n:,.0f}-record file; fixed cost "
                  f"{cpu['fixed_s'] * 1e3:.0f} ms per file + "
                  f"{cpu['per_record_s'] * 1e6:.1f} us per record")  # fmt: skip
            live = live_bench(tmp / "ingest", w, args.live_rate, args.batch, args.workers)
            kept = "kept up" if live["lag_max_s"] < live["interval_s"] else "did NOT keep up"
            print(f"  live: {live['files']} files of {live['records_per_file']:,} records landing "
                  f"every {live['interval_s']:.3f} s ({args.live_rate:,.0f} records/s offered): "
                  f"counted at {live['rate']:,.0f} records/s in {live['batches']} batches, lag "
                  f"p50 {live['lag_p50_s']:.2f} s, max {live['lag_max_s']:.2f} s: {kept} "
                  f"(lag < one file interval)")  # fmt: skip
        print(f"load average at end: {os.getloadavg()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
