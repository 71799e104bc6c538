"""The whole pipeline end to end: cemkit vs the same pipeline in plain pandas and in DuckDB SQL.

    python -m benchmarks.bench_pipeline [--size 2000000] [--batches 1000] [--ooc-size 4000000]
                                        [--ooc-memory 700MB] [--ooc-factor F] [--only NAME,...]

One synthetic world (``cemkit.synth``, ``--size`` records, seed 1) is generated once (not timed)
into ``--work``; it holds canonical Parquet (``records/``: CDRs with legs and partials, SIP xDRs)
and the voice CDRs as an Asterisk ``Master.csv`` (Europe/London local time, GB national numbers).

Contenders, each in its own child process (imports not timed, everything else is):

* ``cemkit-{csv,parquet}-{threads,local,sync,default}``: ``cemkit.run`` (load → protect with
  the default policy → correlate → KQIs → outputs) with Dask's threaded scheduler (2 threads),
  an embedded LocalCluster (2 single-threaded worker processes, started inside the timed part:
  a user's ``cemkit run`` pays for it), the synchronous scheduler, or no ``scheduler`` at all
  (what ``cemkit run`` picks by default);
* ``pandas-{csv,parquet}``: what a user writes: ``read_csv`` of all 18 columns (or
  ``read_parquet``), numbers normalized with vectorized string rules (``00`` → ``+``, leading
  ``0`` → ``+44``), ``hmac.new(key, number, sha256)`` per value over both number columns, caller-id
  text dropped, local time → UTC, ``groupby(node, hour)`` attempts and answered → ASR, protected
  records and KQIs written to Parquet;
* ``duckdb-{csv,parquet}``: the same in one DuckDB SQL script (``read_csv``/``read_parquet``,
  ``sha256(key || number)``, ``AT TIME ZONE``, ``GROUP BY``, ``COPY ... TO`` Parquet), 2 threads;
* ``duckdb-full-parquet`` / ``polars-full-parquet``: cemkit's work as far as SQL / polars can
  (two-rule E.164, sha256 of key and number, partials stitched by GROUP BY, legs paired and xDRs
  matched by ASOF JOIN / ``join_asof`` within 5 s, intents by window functions, GROUP BY node and
  15-min bucket, records and KQIs written); their counts (records out, legs paired, xDRs
  matched, intents) must equal cemkit's from Parquet;
* ``io-floor-{csv,parquet}``: the floor of an end-to-end run: the input read by pyarrow alone
  (with its files' sha256) and the records, KQI and alert tables a ``cemkit-<fmt>-*`` contender
  of this invocation wrote, written again with cemkit's Parquet options (two threads, each
  file's sha256); list it after that contender. Its records/s is the most any pipeline that
  reads this input and writes these outputs can reach on this machine;
* ``microbatch``: ``cemkit.process_batch`` on ``--batches`` consecutive batches of
  ``--batch-size`` canonical records (raw numbers), warm (5 batches first), p50/p99 latency;
* ``ooc``: ``cemkit.run`` from Parquet on a LocalCluster of 2 workers whose ``memory_limit`` is
  ``--ooc-memory`` each, over a world of ``--ooc-size`` records re-written with 100K-row row groups
  (one partition each); it must complete with no worker restarted, and each worker's peak resident
  memory (``VmHWM``) is reported against its limit. ``--ooc-factor F`` sizes that world so that
  its canonical frames hold F x one worker's limit instead; ``ooc-reference`` runs the same world
  in one process (sync, no limit; ``--ooc-reference-memory M``: on the same 2-worker cluster with
  M each, for a world whose in-memory run would not fit the machine), and the records, KQI and
  alert tables of both must be identical (order-independent digests of their rows).

Cross-checks (the benchmark fails when they do not hold): rows loaded are equal for every
contender on the same input; attempts and answered per UTC day are equal for pandas and DuckDB,
and from CSV also equal to cemkit's (the Asterisk CSV has no leg or call-id fields, so cemkit
correlates nothing away there); from Parquet cemkit stitches partials, pairs legs and matches
xDRs, so it reports fewer, correlated attempts, and the records each correlated row absorbed
add up to the rows loaded.

Peak memory: ``VmHWM`` of the child process; for LocalCluster runs also the largest ``VmHWM`` of
the worker processes. CPU seconds (``cpu_s``): user + system time of the whole child (imports and
every thread included; LocalCluster workers too), what compares on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import machine, versions

TZ = "Europe/London"
REGION = "GB"
CEMKIT = (
    "cemkit-csv-threads",
    "cemkit-csv-local",
    "cemkit-parquet-threads",
    "cemkit-parquet-local",
)
BASELINES = ("pandas-csv", "duckdb-csv", "pandas-parquet", "duckdb-parquet")
#: The same work as cemkit's as far as SQL / DataFrame code can (stitch, pair, match, intents).
FULL = ("duckdb-full-parquet", "polars-full-parquet")
#: Canonical pandas bytes per record of the synthetic world (2,434 MiB for 7,005,253 records,
#: session 12; 285.5 before, which sized --ooc-factor 2 at 2.55x).
OOC_BYTES_PER_RECORD = 364.0
#: Counts that cemkit and the FULL contenders must agree on.
CORRELATION_COUNTS = ("rows_loaded", "records_out", "legs_paired", "xdrs_matched", "intents")


def vmhwm_mib() -> float:
    """Peak resident memory of this process (``VmHWM``), MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- the world --------------------------------------------------------------------------------
def world(work: Path, size: int, seed: int = 1) -> Path:
    """Generate (once) the synthetic world of ``size`` records."""
    from cemkit import synth

    out = work / f"world-{size}-{seed}"
    if not (out / "truth.json").exists():
        t0 = time.perf_counter()
        synth.generate(out, records=size, seed=seed)
        print(f"# generated {size:,} records in {time.perf_counter() - t0:.1f} s: {out}")
    return out


def csv_path(w: Path) -> Path:
    return w / "formats" / "asterisk" / "Master.csv"


def per_day(start: pd.Series, answered: pd.Series) -> dict[str, list[int]]:
    """Attempts and answered per UTC day: {day: [attempts, answered]}."""
    day = start.dt.tz_convert("UTC").dt.strftime("%Y-%m-%d")
    g = (
        pd.DataFrame({"day": day, "a": answered.astype(bool)})
        .groupby("day")["a"]
        .agg(["size", "sum"])
    )
    return {d: [int(r["size"]), int(r["sum"])] for d, r in g.iterrows()}


# -- contenders (run in the child) ------------------------------------------------------------
def run_cemkit(w: Path, fmt: str, sched: str, out: Path, memory_limit: str | None = None,
               digests: bool = False) -> dict:  # fmt: skip
    import cemkit

    inputs = csv_path(w) if fmt == "csv" else w / "records"
    kwargs: dict[str, Any] = {"tz": TZ, "default_region": REGION} if fmt == "csv" else {}
    workers_peak = None
    workers_peaks: list[float] = []
    restarted = None

    def run_with(scheduler: Any) -> Any:
        return cemkit.run(inputs, format="asterisk" if fmt == "csv" else "parquet",
                          policy="default", model=w / "model.yaml", out=out,
                          scheduler=scheduler, overwrite=True, **kwargs)  # fmt: skip

    t0 = time.perf_counter()
    cpu0 = time.process_time()
    workers_cpu = 0.0
    if sched == "local":
        from distributed import Client, LocalCluster

        ckw: dict[str, Any] = {
            "n_workers": 2,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": ":0",
        }
        if memory_limit:
            ckw["memory_limit"] = memory_limit
        import dask

        from cemkit.cluster import spill_config

        spill = spill_config(memory_limit) if memory_limit else {}
        with dask.config.set(spill), LocalCluster(**ckw) as lc, Client(lc) as client:
            before = set(client.scheduler_info()["workers"])
            res = run_with(client)
            seconds = time.perf_counter() - t0
            peaks = client.run(vmhwm_mib)
            workers_cpu = sum(client.run(time.process_time).values())  # workers started here
            workers_peak = max(peaks.values())
            workers_peaks = sorted(peaks.values())
            restarted = set(client.scheduler_info()["workers"]) != before
    else:  # "default": what `cemkit run` picks without --scheduler
        res = run_with(None if sched == "default" else sched)
        seconds = time.perf_counter() - t0
    cpu_s = time.process_time() - cpu0 + workers_cpu
    recs = pd.read_parquet(
        out / "records",
        columns=["start", "outcome", "src_partials", "src_paired", "src_xdr_record_id",
                 "src_intent_id"],
    )  # fmt: skip
    absorbed = (
        recs["src_partials"].fillna(1).astype(int).clip(lower=1)
        + recs["src_paired"].fillna(False).astype(int)
        + recs["src_xdr_record_id"].notna().astype(int)
        - 1
    )
    represented = int(len(recs) + absorbed.sum())
    return {
        "seconds": seconds,
        # the run alone (this process and the workers, no imports); the parent replaces cpu_s by
        # the whole child's rusage (imports included), kept here for in-process callers
        "run_cpu_s": cpu_s,
        "cpu_s": cpu_s,
        "rows_loaded": res.manifest["load"]["totals"]["rows_loaded"],
        "rows_quarantined": res.manifest["load"]["totals"]["rows_quarantined"],
        "records_out": len(recs),
        "rows_represented": represented,
        "per_day": per_day(recs["start"], recs["outcome"] == "answered"),
        "legs_paired": int(recs["src_paired"].fillna(False).astype(bool).sum()),
        "xdrs_matched": int(recs["src_xdr_record_id"].notna().sum()),
        "intents": int(recs["src_intent_id"].nunique()),
        "timings_s": res.manifest["timings_s"],
        "kqi_rows": len(res.kqi),
        "alerts": len(res.alerts),
        "workers_peak_mib": workers_peak,
        "workers_peaks_mib": workers_peaks,
        "worker_restarted": restarted,
        "records_digest": table_digest(out / "records") if digests else None,
        "kqi_digest": table_digest(out / "kqi" / "kqi.parquet") if digests else None,
        "alerts_digest": table_digest(out / "alerts.parquet") if digests else None,
    }


def run_io_floor(w: Path, fmt: str, out: Path, ref: Path) -> dict:
    """What no pipeline can go below: read the input and write cemkit's outputs, nothing between.

    Timed, two threads: the input read by pyarrow alone, a piece at a time as a partitioned run
    reads it (each Parquet file by ``pyarrow.parquet.read_table``; the Asterisk CSV in blocks of
    ~64 MiB cut at line ends, each by ``pyarrow.csv.read_csv``), each piece dropped once read,
    with the sha256 of every input file (the manifest records it); then the records, KQI and
    alert tables a cemkit run of the same input wrote (``ref``, its run directory: read back
    beforehand, untimed, and prepared with cemkit's own ``narrow_table``) written again with
    the same Parquet options, each file's sha256 computed. No load checks, no protect, no
    correlation, no KQIs: the floor of an end-to-end run, against which a records/s target is
    measured.
    """
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from cemkit.runs import store

    records = sorted((ref / "records").glob("*.parquet"))
    outputs = [*records, *sorted(ref.glob("kqi/*.parquet")), ref / "alerts.parquet"]
    prepared = [store.narrow_table(pq.read_table(f)) for f in outputs]
    inputs = [csv_path(w)] if fmt == "csv" else sorted((w / "records").glob("*.parquet"))
    headerless = pacsv.ReadOptions(autogenerate_column_names=True, use_threads=False)

    def digest(path: Path) -> str:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()

    def parquet_rows(path: Path) -> int:
        rows = pq.read_table(path, use_threads=False).num_rows
        digest(path)
        return rows

    def csv_block(span: tuple[int, int]) -> int:
        with open(inputs[0], "rb") as fh:
            fh.seek(span[0])
            data = fh.read(span[1] - span[0])
        return pacsv.read_csv(pa.py_buffer(data), read_options=headerless).num_rows

    def csv_spans(path: Path, block: int = 64 << 20) -> list[tuple[int, int]]:
        size, spans, lo = path.stat().st_size, [], 0
        with open(path, "rb") as fh:
            while lo < size:
                fh.seek(min(lo + block, size))
                fh.readline()  # to the end of the line the cut falls in
                hi = min(fh.tell(), size)
                spans.append((lo, hi))
                lo = hi
        return spans

    def write(i: int) -> str:
        table, options = prepared[i]
        path = out / f"part-{i:05d}.parquet"
        with pq.ParquetWriter(path, table.schema, **options) as writer:
            writer.write_table(table)
        return digest(path)

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    with ThreadPoolExecutor(2) as pool:
        if fmt == "csv":  # the file's checksum on one thread while both parse
            whole = pool.submit(digest, inputs[0])
            input_rows = sum(pool.map(csv_block, csv_spans(inputs[0])))
            whole.result()
        else:
            input_rows = sum(pool.map(parquet_rows, inputs))
        read_s = time.perf_counter() - t0
        list(pool.map(write, range(len(prepared))))
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "read_s": read_s,
        "write_s": seconds - read_s,
        "cpu_s": time.process_time() - cpu0,
        # the reference run's count, so that records/s divide the same number
        "rows_loaded": store.read_manifest(ref)["load"]["totals"]["rows_loaded"],
        "input_rows": input_rows,
        "records_out": sum(t.num_rows for t, _ in prepared[: len(records)]),
        "reference": ref.name,
    }


def table_digest(path: Path) -> str:
    """SHA-256 of a Parquet table's rows as a multiset (row order and partitioning ignored).

    A directory is read a file at a time (a row's hash depends on its values only: a run of
    tens of millions of records is never held whole), the dtypes must agree between files.
    """
    import hashlib

    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    hashes, cols = [], None
    for f in files:
        frame = pd.read_parquet(f)
        names = ",".join(f"{c}:{t}" for c, t in frame.dtypes.astype(str).items())
        if cols is not None and names != cols and len(frame):
            raise ValueError(f"{f}: columns {names} differ from the first file's {cols}")
        cols = names if cols is None or len(frame) else cols
        hashes.append(pd.util.hash_pandas_object(frame, index=False).to_numpy())
        del frame
    rows = np.sort(np.concatenate(hashes)) if hashes else np.empty(0, np.uint64)
    return hashlib.sha256((cols or "").encode() + rows.tobytes()).hexdigest()


def _hmac_column(s: pd.Series, key: bytes) -> pd.Series:
    import hashlib
    import hmac

    return s.map(
        lambda v: hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:16], na_action="ignore"
    )


def _normalize(s: pd.Series) -> pd.Series:
    s = s.fillna("")
    return pd.Series(
        np.where(
            s.str.startswith("00"),
            "+" + s.str[2:],
            np.where(s.str.startswith("0"), "+44" + s.str[1:], s),
        ),
        index=s.index,
        dtype="string[pyarrow]",
    )


def run_pandas(w: Path, fmt: str, out: Path) -> dict:
    from cemkit.io.asterisk import LAYOUTS

    key = bytes.fromhex(os.environ["CEMKIT_KEY"])
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if fmt == "csv":
        df = pd.read_csv(
            csv_path(w), header=None, names=list(LAYOUTS[18]), dtype=str, keep_default_na=False
        )
        df["a_number"] = _hmac_column(_normalize(df.pop("src")), key)
        df["b_number"] = _hmac_column(_normalize(df.pop("dst")), key)
        df = df.drop(columns=["clid"])
        df["node"] = df["channel"].str.extract(r"^[^/]+/(.+)-[0-9a-fA-F]+$", expand=False)
        for c in ("start", "answer", "end"):
            t = pd.to_datetime(df[c].replace("", None), format="%Y-%m-%d %H:%M:%S")
            df[c] = t.dt.tz_localize(TZ, ambiguous="NaT", nonexistent="shift_forward")
            df[c] = df[c].dt.tz_convert("UTC")
        answered = df["disposition"] == "ANSWERED"
    else:
        df = pd.read_parquet(w / "records")
        df["a_number"] = _hmac_column(df["a_number"], key)
        df["b_number"] = _hmac_column(df["b_number"], key)
        answered = df["outcome"] == "answered"
    df["hour"] = df["start"].dt.floor("h")
    kqi = (
        df.assign(answered_=answered)
        .groupby(["node", "hour"])
        .agg(attempts=("answered_", "size"), answered=("answered_", "sum"))
    )
    kqi["asr"] = kqi["answered"] / kqi["attempts"]
    df.drop(columns=["hour"]).to_parquet(out / "records.parquet", index=False)
    kqi.reset_index().to_parquet(out / "kqi.parquet", index=False)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "rows_loaded": len(df),
        "per_day": per_day(df["start"], answered),
        "kqi_rows": len(kqi),
    }


def run_duckdb(w: Path, fmt: str, out: Path) -> dict:
    import duckdb

    from cemkit.io.asterisk import LAYOUTS

    key = os.environ["CEMKIT_KEY"]
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE MACRO norm(s) AS CASE WHEN s LIKE '00%' THEN '+' || substr(s, 3) "
        "WHEN s LIKE '0%' THEN '+44' || substr(s, 2) ELSE s END"
    )
    con.execute(f"CREATE MACRO tok(s) AS substr(sha256('{key}' || s), 1, 16)")
    if fmt == "csv":
        cols = ", ".join(f"'{c}': 'VARCHAR'" for c in LAYOUTS[18])
        local = "strptime({c}, '%Y-%m-%d %H:%M:%S') AT TIME ZONE '" + TZ + "'"
        end_local = local.format(c="nullif(\"end\", '')")
        con.execute(f"""
            CREATE TEMP TABLE r AS
            SELECT * EXCLUDE (src, dst, clid, start, answer, "end"),
                   tok(norm(src)) AS a_number, tok(norm(dst)) AS b_number,
                   regexp_extract(channel, '^[^/]+/(.+)-[0-9a-fA-F]+$', 1) AS node,
                   {local.format(c="nullif(start, '')")} AS start,
                   {local.format(c="nullif(answer, '')")} AS answer,
                   {end_local} AS "end",
                   disposition = 'ANSWERED' AS answered_
            FROM read_csv('{csv_path(w)}', header = false, columns = {{{cols}}},
                          quote = '"', escape = '"', all_varchar = true)
        """)
    else:
        con.execute(f"""
            CREATE TEMP TABLE r AS
            SELECT * REPLACE (tok(a_number) AS a_number, tok(b_number) AS b_number),
                   outcome = 'answered' AS answered_
            FROM read_parquet('{w / "records"}/*.parquet')
        """)
    con.execute(
        f"COPY (SELECT * EXCLUDE (answered_) FROM r) TO '{out / 'records.parquet'}' "
        "(FORMAT parquet)"
    )
    con.execute(f"""
        COPY (SELECT node, date_trunc('hour', start) AS hour, count(*) AS attempts,
                     count(*) FILTER (WHERE answered_) AS answered,
                     count(*) FILTER (WHERE answered_) / count(*) AS asr
              FROM r GROUP BY ALL) TO '{out / "kqi.parquet"}' (FORMAT parquet)
    """)
    seconds = time.perf_counter() - t0
    rows = con.execute("SELECT count(*) FROM r").fetchone()[0]
    days = con.execute(
        "SELECT strftime(start, '%Y-%m-%d') AS d, count(*), "
        "count(*) FILTER (WHERE answered_) FROM r GROUP BY d ORDER BY d"
    ).fetchall()
    kqi_rows = con.execute(f"SELECT count(*) FROM '{out / 'kqi.parquet'}'").fetchone()[0]
    return {
        "seconds": seconds,
        "rows_loaded": rows,
        "kqi_rows": kqi_rows,
        "per_day": {d: [int(a), int(b)] for d, a, b in days},
    }


# -- the same work as far as SQL / DataFrame code can: DuckDB and polars on canonical Parquet -----
#: Correlation settings shared with cemkit's defaults (cemkit.pipeline.CORRELATE_DEFAULTS).
PAIR_TOL_S, MATCH_TOL_S, WINDOW_S = 5, 5, 120

FULL_SQL = """
CREATE TEMP TABLE r AS
SELECT row_number() OVER () AS rid,
       * REPLACE (tok(norm(a_number)) AS a_number, tok(norm(b_number)) AS b_number)
FROM read_parquet('{records}/*.parquet');
-- stitch: partial records of one call (call_id, parties) become one record
CREATE TEMP TABLE s AS
SELECT * EXCLUDE (partial_seq), 1 AS partials FROM r WHERE partial_seq IS NULL
UNION ALL BY NAME
SELECT min(rid) AS rid, call_id, a_number, b_number, any_value(record_kind) AS record_kind,
       any_value(service) AS service, any_value(leg) AS leg, any_value(node) AS node,
       min(start) AS start, min(answer) AS answer, max("end") AS "end",
       sum(duration_s) AS duration_s, sum(billsec_s) AS billsec_s,
       arg_max(outcome, partial_seq) AS outcome, count(*) AS partials
FROM r WHERE partial_seq IS NOT NULL GROUP BY call_id, a_number, b_number;
-- pair legs: each term leg takes the nearest earlier-or-equal orig leg of the same parties
CREATE TEMP TABLE paired AS
SELECT o.rid, t.rid AS term_rid
FROM (SELECT rid, a_number, b_number, start FROM s WHERE leg = 'term') t
ASOF JOIN (SELECT rid, a_number, b_number, start FROM s WHERE leg = 'orig') o
  ON t.a_number = o.a_number AND t.b_number = o.b_number AND t.start >= o.start
WHERE t.start <= o.start + INTERVAL {pair} SECOND;
CREATE TEMP TABLE calls AS
SELECT s.*, p.term_rid IS NOT NULL AS paired FROM s LEFT JOIN paired p USING (rid)
WHERE s.rid NOT IN (SELECT term_rid FROM paired);
-- match: each CDR takes the nearest earlier-or-equal xDR of the same parties (probes see the
-- INVITE first)
CREATE TEMP TABLE matched AS
SELECT x.rid AS xdr_rid, c.rid AS cdr_rid
FROM (SELECT rid, a_number, b_number, start FROM calls WHERE record_kind = 'cdr') c
ASOF JOIN (SELECT rid, a_number, b_number, start FROM calls WHERE record_kind = 'xdr') x
  ON c.a_number = x.a_number AND c.b_number = x.b_number AND c.start >= x.start
WHERE c.start <= x.start + INTERVAL {match} SECOND;
CREATE TEMP TABLE out AS
SELECT calls.*, m.xdr_rid FROM calls LEFT JOIN matched m ON calls.rid = m.cdr_rid
WHERE calls.rid NOT IN (SELECT xdr_rid FROM matched);
-- intents: a new attempt starts a new intent after an answer or a gap of more than the window
CREATE TEMP TABLE labelled AS
SELECT *, sum(new_intent::INT) OVER (ORDER BY a_number, b_number, start, rid) AS intent_id
FROM (SELECT *, coalesce(lag(outcome) OVER w = 'answered'
                         OR start > lag("end") OVER w + INTERVAL {window} SECOND,
                         true) AS new_intent
      FROM out WINDOW w AS (PARTITION BY a_number, b_number ORDER BY start, rid));
COPY (SELECT * EXCLUDE (new_intent) FROM labelled) TO '{out}/records.parquet' (FORMAT parquet);
COPY (SELECT node, time_bucket(INTERVAL 15 MINUTE, start) AS bucket, count(*) AS attempts,
             count(*) FILTER (WHERE outcome = 'answered') AS answered,
             count(*) FILTER (WHERE outcome = 'answered') / count(*) AS asr,
             count(*) FILTER (WHERE new_intent) AS intents
      FROM labelled GROUP BY ALL) TO '{out}/kqi.parquet' (FORMAT parquet);
"""


def run_duckdb_full(w: Path, out: Path) -> dict:
    import duckdb

    key = os.environ["CEMKIT_KEY"]
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE MACRO norm(s) AS CASE WHEN s LIKE '00%' THEN '+' || substr(s, 3) "
        "WHEN s LIKE '0%' THEN '+44' || substr(s, 2) ELSE s END"
    )
    con.execute(f"CREATE MACRO tok(s) AS substr(sha256('{key}' || s), 1, 16)")
    sql = FULL_SQL.format(records=w / "records", out=out, pair=PAIR_TOL_S, match=MATCH_TOL_S,
                          window=WINDOW_S)  # fmt: skip
    for stmt in [s for s in sql.split(";") if s.strip()]:
        con.execute(stmt)
    seconds = time.perf_counter() - t0
    one = lambda q: con.execute(q).fetchone()[0]  # noqa: E731
    return {
        "seconds": seconds,
        "rows_loaded": one("SELECT count(*) FROM r"),
        "records_out": one("SELECT count(*) FROM labelled"),
        "xdrs_matched": one("SELECT count(*) FROM matched"),
        "legs_paired": one("SELECT count(*) FROM paired"),
        "intents": one("SELECT count(*) FILTER (WHERE new_intent) FROM labelled"),
        "kqi_rows": one(f"SELECT count(*) FROM '{out / 'kqi.parquet'}'"),
    }


def run_polars(w: Path, out: Path) -> dict:
    import hashlib

    import polars as pl

    key = os.environ["CEMKIT_KEY"]
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    r = pl.read_parquet(str(w / "records" / "*.parquet")).with_row_index("rid")

    def norm(c: str) -> pl.Expr:
        s = pl.col(c)
        return (
            pl.when(s.str.starts_with("00")).then("+" + s.str.slice(2))
            .when(s.str.starts_with("0")).then("+44" + s.str.slice(1))
            .otherwise(s).alias(c)
        )  # fmt: skip

    r = r.with_columns(norm("a_number"), norm("b_number"))
    # sha256 of key || number once per distinct number (polars has no keyed hash of its own)
    distinct = pl.concat([r["a_number"], r["b_number"]]).drop_nulls().unique()
    digests = [hashlib.sha256((key + v).encode()).hexdigest()[:16] for v in distinct.to_list()]
    tokens = pl.DataFrame({"number": distinct, "token": digests})
    for c in ("a_number", "b_number"):
        r = r.join(tokens.rename({"number": c}), on=c, how="left", maintain_order="left")
        r = r.with_columns(pl.col("token").alias(c)).drop("token")
    partial = pl.col("partial_seq").is_not_null()
    s = pl.concat([
        r.filter(~partial).drop("partial_seq").with_columns(pl.lit(1, pl.UInt32).alias("partials")),
        r.filter(partial).sort("partial_seq").group_by(["call_id", "a_number", "b_number"]).agg(
            pl.col("rid").min(), pl.col("record_kind", "service", "leg", "node").first(),
            pl.col("start").min(), pl.col("answer").min(), pl.col("end").max(),
            pl.col("duration_s", "billsec_s").sum(), pl.col("outcome").last(),
            pl.len().alias("partials")),
    ], how="diagonal_relaxed")  # fmt: skip

    def nearest(left: pl.DataFrame, right: pl.DataFrame, tol_s: int) -> pl.DataFrame:
        cols = ["rid", "a_number", "b_number", "start"]
        return left.select(cols).sort("start").join_asof(
            right.select(cols).sort("start"), on="start", by=["a_number", "b_number"],
            strategy="backward", tolerance=f"{tol_s}s", check_sortedness=False,
        ).filter(pl.col("rid_right").is_not_null()).select("rid", "rid_right")  # fmt: skip

    # the later record looks back for the earlier one: a term leg for its orig leg, a CDR for
    # its xDR (probes see the INVITE first)
    paired = nearest(s.filter(pl.col("leg") == "term"), s.filter(pl.col("leg") == "orig"),
                     PAIR_TOL_S)  # fmt: skip
    calls = s.filter(~pl.col("rid").is_in(paired["rid"].implode()))
    matched = nearest(calls.filter(pl.col("record_kind") == "cdr"),
                      calls.filter(pl.col("record_kind") == "xdr"), MATCH_TOL_S)  # fmt: skip
    calls = calls.filter(~pl.col("rid").is_in(matched["rid_right"].implode())).join(
        matched.rename({"rid_right": "xdr_rid"}), on="rid", how="left"
    )
    by = ["a_number", "b_number"]
    labelled = calls.sort([*by, "start", "rid"]).with_columns(
        (
            (pl.col("outcome").shift(1).over(by) == "answered")
            | (pl.col("start") > pl.col("end").shift(1).over(by) + pl.duration(seconds=WINDOW_S))
        ).fill_null(True).alias("new_intent")
    ).with_columns(pl.col("new_intent").cast(pl.Int64).cum_sum().alias("intent_id"))  # fmt: skip
    labelled.drop("new_intent").write_parquet(out / "records.parquet")
    answered = pl.col("outcome") == "answered"
    kqi = labelled.group_by("node", pl.col("start").dt.truncate("15m").alias("bucket")).agg(
        pl.len().alias("attempts"), answered.sum().alias("answered"),
        (answered.sum() / pl.len()).alias("asr"),
        pl.col("new_intent").sum().alias("intents"),
    )  # fmt: skip
    kqi.write_parquet(out / "kqi.parquet")
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "rows_loaded": len(r),
        "records_out": len(labelled),
        "xdrs_matched": len(matched),
        "legs_paired": len(paired),
        "intents": int(labelled["new_intent"].sum()),
        "kqi_rows": len(kqi),
    }


def run_microbatch(w: Path, batches: int, size: int) -> dict:
    import pyarrow.parquet as pq

    import cemkit

    files = sorted((w / "records").glob("*.parquet"))
    frame = pq.read_table(files[0]).to_pandas(types_mapper=None)
    from cemkit import schema

    frame = schema.conform(frame)
    n = len(frame) // size
    chunks = [frame.iloc[i * size : (i + 1) * size].reset_index(drop=True) for i in range(n)]
    model = w / "model.yaml"
    for c in chunks[:5]:
        cemkit.process_batch(c, model=model)
    lat, cpu, stages, out_rows = [], [], [], 0
    for i in range(batches):
        c = chunks[i % n]
        t0, c0 = time.perf_counter(), time.process_time()
        res = cemkit.process_batch(c, model=model)
        lat.append(time.perf_counter() - t0)
        # CPU seconds of the process (all its threads): on a shared machine, the work done
        # apart from the time spent waiting for a core
        cpu.append(time.process_time() - c0)
        stages.append(res.timings_ms)
        out_rows += len(res.records)
    ms = np.array(lat) * 1e3
    st = pd.DataFrame(stages)
    return {
        "batches": batches,
        "batch_size": size,
        "distinct_batches": n,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "mean_ms": float(ms.mean()),
        "records_per_s": batches * size / float(np.sum(lat)),
        "stage_p50_ms": {k: float(st[k].median()) for k in st.columns},
        "stage_p99_ms": {k: float(st[k].quantile(0.99)) for k in st.columns},
        "cpu_p50_ms": float(np.percentile(np.array(cpu) * 1e3, 50)),
        "cpu_p99_ms": float(np.percentile(np.array(cpu) * 1e3, 99)),
        "load_1min": os.getloadavg()[0],  # the machine is shared: how busy it was
        "records_out_per_batch": out_rows / batches,
    }


def ooc_world(work: Path, size: int, rows_per_group: int = 100_000,
              files: int | None = None) -> Path:  # fmt: skip
    """The out-of-core world: records re-written with small row groups (one partition each).

    ``files``: only the world's first ``files`` record files (a smaller input from a cached
    world; the in-memory reference runs the same files).
    """
    import pyarrow.parquet as pq

    w = world(work, size)
    small = work / (f"ooc-{size}-{rows_per_group}" + (f"-{files}files" if files else ""))
    if not (small / "model.yaml").exists():
        (small / "records").mkdir(parents=True, exist_ok=True)
        for f in sorted((w / "records").glob("*.parquet"))[:files]:
            pq.write_table(
                pq.read_table(f), small / "records" / f.name, row_group_size=rows_per_group
            )
        (small / "model.yaml").write_text((w / "model.yaml").read_text())
    return small


def in_memory_mib(records: Path) -> float:
    """Size of the input records as canonical pandas frames (deep ``memory_usage``), MiB."""
    import pyarrow.parquet as pq

    from cemkit import schema

    total = 0
    for f in sorted(records.glob("*.parquet")):
        frame = schema.conform(pq.read_table(f).to_pandas())
        total += int(frame.memory_usage(deep=True).sum())
        del frame
    return total / 2**20


def child(args: argparse.Namespace) -> None:
    name, w, out = args.child, Path(args.world), Path(args.out)
    if name.startswith("cemkit-"):
        _, fmt, sched = name.split("-")
        result = run_cemkit(w, fmt, sched, out)
    elif name.startswith("pandas-"):
        result = run_pandas(w, name.split("-")[1], out)
    elif name.startswith("io-floor-"):
        result = run_io_floor(w, name.split("-")[2], out, Path(args.floor_of))
    elif name == "duckdb-full-parquet":
        result = run_duckdb_full(w, out)
    elif name == "polars-full-parquet":
        result = run_polars(w, out)
    elif name.startswith("duckdb-"):
        result = run_duckdb(w, name.split("-")[1], out)
    elif name == "microbatch":
        result = run_microbatch(w, args.batches, args.batch_size)
    elif name == "ooc":
        result = run_cemkit(w, "parquet", "local", out, memory_limit=args.ooc_memory,
                            digests=True)  # fmt: skip
    elif name == "ooc-reference":  # the same world in one process, no memory limit
        if args.ooc_reference_memory:  # or on the same cluster with ample memory per worker
            result = run_cemkit(w, "parquet", "local", out,
                                memory_limit=args.ooc_reference_memory, digests=True)  # fmt: skip
        else:
            result = run_cemkit(w, "parquet", "sync", out, digests=True)
    else:
        raise SystemExit(f"unknown contender {name}")
    result["peak_mib"] = vmhwm_mib()
    t = os.times()  # this process and its threads (imports included), not its workers
    result["self_user_s"], result["self_sys_s"] = round(t.user, 2), round(t.system, 2)
    print("RESULT " + json.dumps(result))


def spawn(name: str, w: Path, out: Path, args: argparse.Namespace,
          extra: tuple[str, ...] = ()) -> dict:  # fmt: skip
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.bench_pipeline",
        "--child",
        name,
        "--world",
        str(w),
        "--out",
        str(out),
        "--batches",
        str(args.batches),
        "--batch-size",
        str(args.batch_size),
        "--ooc-memory",
        args.ooc_memory,
        *(
            ["--ooc-reference-memory", args.ooc_reference_memory]
            if args.ooc_reference_memory
            else []
        ),
        *extra,
    ]
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        proc = subprocess.run(
            cmd, check=False, capture_output=True, text=True, timeout=args.timeout
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        print(err[-4000:], file=sys.stderr)
        return {"error": f"timeout after {args.timeout} s", "wall_s": time.perf_counter() - t0}
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
        return {"error": f"exit {proc.returncode}", "wall_s": time.perf_counter() - t0}
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT ") :])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the whole child (imports, every thread; LocalCluster workers it waited for): on a shared
    # machine CPU seconds compare where wall seconds swing with the load
    result["user_s"] = after.ru_utime - before.ru_utime
    result["sys_s"] = after.ru_stime - before.ru_stime  # page faults, mostly (see cemkit.memory)
    result["cpu_s"] = result["user_s"] + result["sys_s"]
    result["child_wall_s"] = time.perf_counter() - t0
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=2_000_000)
    p.add_argument("--work", default="/tmp/cemkit-bench/pipeline")
    p.add_argument("--batches", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=4000)
    p.add_argument("--ooc-size", type=int, default=4_000_000)
    p.add_argument("--ooc-memory", default="700MB")
    p.add_argument(
        "--ooc-reference-memory",
        default=None,
        help="ooc-reference on the same 2-worker cluster with this limit each (default: sync, "
        "one process, no limit: ~1.1 KB per record, too much for a 10x world of 1 GB workers)",
    )
    p.add_argument(
        "--ooc-factor",
        type=float,
        default=None,
        help="size the ooc world to FACTOR x one worker's memory (not --ooc-size)",
    )
    p.add_argument("--ooc-rows-per-group", type=int, default=100_000)
    p.add_argument(
        "--ooc-files", type=int, default=None, help="only the first N record files (ooc world)"
    )
    p.add_argument("--only", default=None, help="comma-separated contenders")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per contender")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--world", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--floor-of", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    if "CEMKIT_KEY" not in os.environ:
        import secrets

        os.environ["CEMKIT_KEY"] = secrets.token_hex(32)
    work = Path(args.work)
    names = args.only.split(",") if args.only else [*CEMKIT, *BASELINES, *FULL, "microbatch", "ooc"]
    w = world(work, args.size)
    truth = json.loads((w / "truth.json").read_text())
    ooc_size = args.ooc_size
    if args.ooc_factor:  # records whose canonical frames hold FACTOR x one worker's limit
        from dask.utils import parse_bytes

        ooc_size = int(args.ooc_factor * parse_bytes(args.ooc_memory) / OOC_BYTES_PER_RECORD)
        print(f"# out of core: {ooc_size:,} records for {args.ooc_factor} x {args.ooc_memory}")
    print(f"# machine: {machine()}; nproc {os.cpu_count()}; load {os.getloadavg()}")
    print(
        f"# {versions(('cemkit', 'pandas', 'pyarrow', 'dask', 'distributed', 'numba', 'duckdb'))}"
    )
    print(
        f"# world: {args.size:,} records; Asterisk CSV "
        f"{csv_path(w).stat().st_size / 2**20:,.0f} MiB, "
        f"{truth['counts']['voice_cdrs_in_formats']:,} rows"
    )
    results: dict[str, dict] = {}
    for name in names:
        if name in ("ooc", "ooc-reference"):
            ow = ooc_world(work, ooc_size, args.ooc_rows_per_group, args.ooc_files)
            results[name] = spawn(name, ow, work / "out" / name, args)
            results[name]["input_in_memory_mib"] = in_memory_mib(ow / "records")
            results[name]["memory_limit"] = (
                args.ooc_reference_memory or "none (sync)"
                if name == "ooc-reference"
                else args.ooc_memory
            )
        elif name.startswith("io-floor-"):  # the outputs of this invocation's last such run
            fmt = name.split("-")[2]
            done = [
                n for n in results if n.startswith(f"cemkit-{fmt}-") and "seconds" in results[n]
            ]
            ref = done[-1] if done else None
            results[name] = (
                spawn(name, w, work / "out" / name, args, ("--floor-of", str(work / "out" / ref)))
                if ref
                else {"error": f"list a cemkit-{fmt}-* contender before it"}
            )
        else:
            results[name] = spawn(name, w, work / "out" / name, args)
        r = results[name]
        brief = {k: v for k, v in r.items() if k not in ("per_day",)}
        print(f"{name}: {json.dumps(brief)}", flush=True)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    report(results)


def report(results: dict[str, dict]) -> None:
    ok = True
    print(
        "\n| contender | input rows | seconds | records/s | CPU s (child) | "
        "peak MiB (process / worker) | vs cemkit threads |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for fmt in ("csv", "parquet"):
        ref = results.get(f"cemkit-{fmt}-threads", {})
        group = [n for n in results if f"-{fmt}" in n and n not in ("ooc",)]
        for n in group:
            r = results[n]
            if "error" in r:
                print(f"| {n} | — | failed ({r['error']}) | | | | |")
                ok = False
                continue
            rate = r["rows_loaded"] / r["seconds"]
            ratio = r["seconds"] / ref["seconds"] if ref.get("seconds") else float("nan")
            wk = r.get("workers_peak_mib")
            peak = f"{r['peak_mib']:,.0f}" + (f" / {wk:,.0f}" if wk else "")
            cpu = f"{r['cpu_s']:.1f}" if "cpu_s" in r else "—"
            print(
                f"| {n} | {r['rows_loaded']:,} | {r['seconds']:.2f} | {rate:,.0f} | {cpu} | "
                f"{peak} | {ratio:.2f}x |"
            )
        rows = {results[n]["rows_loaded"] for n in group if "rows_loaded" in results[n]}
        if len(rows) > 1:
            print(f"CROSS-CHECK FAILED ({fmt}): rows loaded differ: {rows}")
            ok = False
        days = {
            n: results[n]["per_day"]
            for n in group
            if "per_day" in results[n] and (fmt == "csv" or not n.startswith("cemkit"))
        }
        if len({json.dumps(d, sort_keys=True) for d in days.values()}) > 1:
            print(
                f"CROSS-CHECK FAILED ({fmt}): attempts/answered per day differ between {list(days)}"
            )
            ok = False
        for n in group:
            r = results[n]
            if (
                n.startswith("cemkit")
                and "rows_represented" in r
                and r["rows_represented"] != r["rows_loaded"]
            ):
                print(
                    f"NOTE ({n}): correlated rows represent {r['rows_represented']:,} of "
                    f"{r['rows_loaded']:,} loaded"
                )
    # the cemkit run the full baselines are compared with: threads, else sync, default, local
    ref_name = next((f"cemkit-parquet-{s}" for s in ("threads", "sync", "default", "local")
                     if "seconds" in results.get(f"cemkit-parquet-{s}", {})),
                    "cemkit-parquet-threads")  # fmt: skip
    ref = results.get(ref_name, {})
    for n in FULL:
        r = results.get(n)
        if not r or "error" in r or "seconds" not in ref:
            continue
        got = {c: r.get(c) for c in CORRELATION_COUNTS}
        want = {c: ref.get(c) for c in CORRELATION_COUNTS}
        cpu = ""
        if "cpu_s" in r and "cpu_s" in ref:
            cpu = f" (CPU seconds of the whole child: {r['cpu_s'] / ref['cpu_s']:.2f}x)"
        print(f"\n{n}: {r['seconds']:.2f} s, {r['rows_loaded'] / r['seconds']:,.0f} records/s, "
              f"{ref_name} is {r['seconds'] / ref['seconds']:.2f}x faster{cpu}; "
              f"counts {got}")  # fmt: skip
        if got != want:
            print(f"CROSS-CHECK FAILED ({n}): counts differ from cemkit's {want}")
            ok = False
    for fmt in ("csv", "parquet"):
        floor = results.get(f"io-floor-{fmt}", {})
        if "error" in floor or "reference" not in floor:
            continue
        of = results.get(floor["reference"], {})
        if "seconds" in of:
            print(f"\nio-floor-{fmt}: read {floor['read_s']:.2f} s + write "
                  f"{floor['write_s']:.2f} s = {floor['seconds']:.2f} s, at most "
                  f"{floor['rows_loaded'] / floor['seconds']:,.0f} records/s; "
                  f"{floor['reference']} takes {of['seconds'] / floor['seconds']:.2f}x the "
                  f"floor")  # fmt: skip
    if "microbatch" in results and "error" not in results["microbatch"]:
        m = results["microbatch"]
        print(
            f"\nmicro-batch {m['batch_size']} records x {m['batches']}: p50 {m['p50_ms']:.1f} ms, "
            f"p99 {m['p99_ms']:.1f} ms, max {m['max_ms']:.1f} ms, {m['records_per_s']:,.0f} "
            f"records/s, peak {m['peak_mib']:,.0f} MiB, load {m.get('load_1min', 0):.1f}; "
            f"CPU per batch p50 {m.get('cpu_p50_ms', 0):.1f}, p99 {m.get('cpu_p99_ms', 0):.1f} ms"
        )
        for q in ("p50", "p99"):
            stages = m.get(f"stage_{q}_ms") or {}
            print(f"  stages {q}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in stages.items()))
    if "error" in results.get("ooc", {}):
        print(f"\nout-of-core: FAILED ({results['ooc']['error']})")
        ok = False
    if "ooc" in results and "error" not in results["ooc"]:
        o = results["ooc"]
        from dask.utils import parse_bytes

        factor = o["input_in_memory_mib"] * 2**20 / parse_bytes(o["memory_limit"])
        print(f"\nout-of-core: the input holds {factor:.2f} x one worker's memory limit; "
              f"CPU {o.get('cpu_s', float('nan')):.1f} s (client + workers)")  # fmt: skip
        print(
            f"\nout-of-core: {o['rows_loaded']:,} rows ({o['input_in_memory_mib']:,.0f} MiB in "
            f"memory, workers limited to 2 x {o['memory_limit']}) in {o['seconds']:.1f} s "
            f"({o['rows_loaded'] / o['seconds']:,.0f}/s), worker peak {o['workers_peak_mib']:,.0f} "
            f"MiB (each: {o.get('workers_peaks_mib')}), restarted {o['worker_restarted']}"
        )
        ref = results.get("ooc-reference")
        if ref and "error" not in ref:
            keys = ("records_digest", "kqi_digest", "alerts_digest")
            same = all(o.get(k) == ref.get(k) for k in keys)
            print(f"out-of-core vs reference ({ref['memory_limit']}, {ref['seconds']:.1f} s, "
                  f"worker peaks {ref.get('workers_peaks_mib')}): records, KQIs and alerts "
                  f"{'identical' if same else 'DIFFER'}")  # fmt: skip
            ok = ok and same
    print("\ncross-checks:", "OK" if ok else "FAILED")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
