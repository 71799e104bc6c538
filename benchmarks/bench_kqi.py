"""Service modeling and KQI throughput: cemkit vs plain pandas vs DuckDB SQL, same run.

Two benchmarks, each contender in its own child process (so that peak memory is its own):

1. **modeling**: assign N customers (protected numbers: a kept 6-digit prefix, then a token)
   to the most specific group of a country -> region -> area model by longest-prefix match.
   cemkit ``Assigner.assign_customers`` vs a pandas loop over prefix lengths (``str.slice`` +
   ``map``) vs DuckDB SQL (one equi-join on ``substr`` per prefix length, ``coalesce``).
2. **kqi**: over R synthetic records (``cemkit.synth``), per switch and 15-minute bucket:
   attempts, answered, user-determined, drops, conversation time, PDD count/sum and exact PDD
   p50/p95. cemkit ``kqi.rollup`` (Dask, threads; it also computes the per-customer sums for
   the worst-customer ranking) vs the same aggregation in pandas vs DuckDB SQL.

Results are cross-checked (identical assignments; identical counters, PDD percentiles within
1e-9). Run: ``python -m benchmarks.bench_kqi --customers 10000000 --size 5000000``.

3. **stage** (``--stage N``): the KQI stage on the N-record world of ``bench_pipeline`` (cached
   under ``--work``), in one process on one in-memory pandas frame, each contender timed in the
   same run: the stage (``cemkit.kqi.rollup``: every counter of ``formulas.COUNTERS``, 15 min /
   hour / day, the group hierarchy, PDD percentiles, modeled customers) next to its floor (one
   ``numpy.bincount`` of group x 15-min cells) and next to the pandas implementation it replaced
   (``tests/naive.rollup_pandas``, same table: cross-checked identical); then the aggregation
   alone over the same per-record counter block: cemkit's Numba pass vs pandas ``groupby.sum``
   vs DuckDB ``GROUP BY`` (sums cross-checked equal). Run:
   ``python -m benchmarks.bench_kqi --stage 1000000 --work /tmp/cemkit-bench/pipeline``.
   With ``--records DIR`` (e.g. ``/tmp/cemkit-bench/pipeline/out/cemkit-parquet-sync/records``,
   the correlated records of a ``bench_pipeline`` run) the stage reads those instead; the
   stage also reports its first call in the process (kernels loaded from Numba's cache), its
   CPU seconds, and the micro-batch path (4,000-record batches: 15-minute KQIs, then alerts).

4. **A/B** (``--ab CHECKOUT``): the KQI stage of this checkout against another (e.g. main's)
   in the same minutes, in CPU seconds (user + system, ``time.process_time``; the machine is
   shared), next to the stage table's floor (two ``bincount`` of node x 15-minute cells):
   the records of the N-record world loaded, protected and correlated once (by this checkout,
   cached under ``--work``), then in alternating child processes (``PYTHONPATH`` one checkout,
   then the other), best of ``--repeat``: ``rollup`` as the stage table times it, ``rollup`` as
   ``cemkit run``'s KQI sink calls it (worst customers, group sizes), and ``counter_rows`` of a
   166,666-record slice (one warehouse file). Results are checked equal between checkouts.
   Run: ``python -m benchmarks.bench_kqi --ab /work/main --size 1000000``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import machine, peak_rss_mib, versions

MODEL_YAML = """
name: bench
numbers: {kept_prefix_digits: 6}
groups:
  - {name: GB, match: {prefixes: ["+44"]}}
  - {name: London, parent: GB, match: {prefixes: ["+4420"]}}
  - {name: London-central, parent: London, match: {prefixes: ["+44207"]}}
  - {name: Manchester, parent: GB, match: {prefixes: ["+44161"]}}
  - {name: Liverpool, parent: GB, match: {prefixes: ["+441510..+441519"]}}
  - {name: DE, match: {prefixes: ["+49"]}}
  - {name: Berlin, parent: DE, match: {prefixes: ["+4930"]}}
  - {name: Munich, parent: DE, match: {prefixes: ["+4989"]}}
  - {name: US, match: {prefixes: ["+1"]}}
  - {name: New-York, parent: US, match: {prefixes: ["+1212", "+1646"]}}
  - {name: FR, match: {prefixes: ["+33"]}}
  - {name: Paris, parent: FR, match: {prefixes: ["+331"]}}
"""
AREAS = ["+4420", "+44207", "+44161", "+44151", "+44131", "+4930", "+4989", "+4940",
         "+1212", "+1646", "+1415", "+331", "+336", "+3912"]  # fmt: skip

KQI_COUNTERS = ["attempts", "answered", "user_determined", "drops", "conversation_ms",
                "pdd_count", "pdd_us"]  # fmt: skip


# --- data --------------------------------------------------------------------------------------
def make_customers(n: int, path: Path, seed: int = 1) -> None:
    """N protected customer numbers: a kept prefix of 6 digits then a hex token."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    area = pa.array(AREAS).take(pa.array(rng.integers(0, len(AREAS), n)))
    tail = pc.utf8_lpad(pa.array(rng.integers(0, 10**6, n)).cast(pa.string()), 6, "0")
    kept = pc.utf8_slice_codeunits(pc.binary_join_element_wise(area, tail, ""), 0, 7)
    token = pc.utf8_lpad(
        pa.array([f"{v:x}" for v in rng.integers(0, 2**40, n)], pa.string()), 10, "0"
    )
    numbers = pc.binary_join_element_wise(kept, "~", token, "")
    pq.write_table(pa.table({"customer": numbers}), path)


def _prefix_table() -> pd.DataFrame:
    from cemkit.model import ServiceModel

    m = ServiceModel.from_yaml_text(MODEL_YAML)
    rows = [(p, g.name) for g in m.groups for p in g.match.expanded_prefixes()]
    return pd.DataFrame(rows, columns=["prefix", "grp"])


# --- modeling contenders -----------------------------------------------------------------------
def model_cemkit(path: Path) -> tuple[float, pd.Series]:
    from cemkit.model import Assigner, ServiceModel

    customers = pd.read_parquet(path)
    customers["customer"] = customers["customer"].astype(pd.StringDtype("pyarrow"))
    assigner = Assigner(ServiceModel.from_yaml_text(MODEL_YAML))
    assigner.group_codes(customers["customer"].head(10))  # load the compiled kernels first
    t0 = time.perf_counter()
    codes = assigner.group_codes(customers["customer"])
    elapsed = time.perf_counter() - t0
    names = np.array([*assigner.group_names, None], dtype=object)
    return elapsed, pd.Series(names[codes])


def model_pandas(path: Path) -> tuple[float, pd.Series]:
    customers = pd.read_parquet(path)
    prefixes = _prefix_table()
    t0 = time.perf_counter()
    numbers = customers["customer"]
    best = pd.Series(np.full(len(numbers), None, dtype=object))
    for length in sorted(prefixes["prefix"].str.len().unique(), reverse=True):
        sub = prefixes[prefixes["prefix"].str.len() == length]
        hit = numbers.str.slice(0, int(length)).map(dict(zip(sub["prefix"], sub["grp"],
                                                             strict=True)))  # fmt: skip
        best = best.where(best.notna(), hit.astype(object))
    elapsed = time.perf_counter() - t0
    return elapsed, best


def model_duckdb(path: Path) -> tuple[float, pd.Series]:
    import duckdb

    prefixes = _prefix_table()
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute(f"CREATE TABLE customers AS SELECT row_number() OVER () AS rid, customer "
                f"FROM read_parquet('{path}')")  # fmt: skip
    con.register("prefixes_df", prefixes)
    con.execute("CREATE TABLE prefixes AS SELECT prefix, grp, length(prefix) AS len "
                "FROM prefixes_df")  # fmt: skip
    lengths = sorted(prefixes["prefix"].str.len().unique(), reverse=True)
    joins = "\n".join(
        f"LEFT JOIN (SELECT prefix, grp FROM prefixes WHERE len = {n}) p{n} "
        f"ON substr(c.customer, 1, {n}) = p{n}.prefix"
        for n in lengths
    )
    sql = (f"SELECT c.rid, coalesce({', '.join(f'p{n}.grp' for n in lengths)}) AS grp "
           f"FROM customers c {joins} ORDER BY c.rid")  # fmt: skip
    t0 = time.perf_counter()
    out = con.execute(sql).df()
    elapsed = time.perf_counter() - t0
    return elapsed, out["grp"].astype(object).where(out["grp"].notna(), None)


# --- KQI contenders ---------------------------------------------------------------------------
def _switch_model_yaml(records_dir: Path) -> str:
    from cemkit import synth

    groups = "\n".join(f"  - {{name: {s}, match: {{switches: [{s}]}}}}" for s in synth.SWITCHES)
    return f"name: switches\ngroups:\n{groups}\n"


def kqi_cemkit(records_dir: Path) -> tuple[float, pd.DataFrame]:
    return _kqi_cemkit(records_dir, rank_customers=False)


def kqi_cemkit_full(records_dir: Path) -> tuple[float, pd.DataFrame]:
    return _kqi_cemkit(records_dir, rank_customers=True)


def _kqi_cemkit(records_dir: Path, rank_customers: bool) -> tuple[float, pd.DataFrame]:
    import dask
    import dask.dataframe as dd

    from cemkit.kqi import rollup
    from cemkit.model import ServiceModel

    model = ServiceModel.from_yaml_text(_switch_model_yaml(records_dir))
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=2):
        files = sorted(str(p) for p in records_dir.glob("*.parquet"))
        res = rollup(dd.read_parquet(files), model, freqs=("15min",),
                     rank_customers=rank_customers)  # fmt: skip
    elapsed = time.perf_counter() - t0
    t = res.table[res.table["object_kind"] == "group"]
    t = t[t["object"] != "(unassigned)"]
    out = t[["object", "bucket", *KQI_COUNTERS, "pdd_p50_ms", "pdd_p95_ms"]]
    return elapsed, out.rename(columns={"object": "grp"})


def kqi_pandas(records_dir: Path) -> tuple[float, pd.DataFrame]:
    cols = ["service", "record_kind", "partial_seq", "outcome", "billsec_s", "cause_q850",
            "node", "start", "pdd_ms"]  # fmt: skip
    t0 = time.perf_counter()
    df = pd.read_parquet(records_dir, columns=cols)
    voice = df["service"] == "voice"
    cdr = voice & (df["record_kind"] == "cdr")
    xdr = voice & (df["record_kind"] == "xdr")
    attempt = cdr & (df["partial_seq"].isna() | (df["partial_seq"] <= 1))
    answered_rec = cdr & (df["outcome"] == "answered")
    cause = df["cause_q850"]
    abnormal = cause.notna() & ~cause.isin([16, 31])
    has_pdd = (attempt | xdr) & df["pdd_ms"].notna()
    work = pd.DataFrame({
        "grp": df["node"],
        "bucket": df["start"].dt.floor("15min"),
        "attempts": attempt.astype("int64"),
        "answered": (attempt & (df["outcome"] == "answered")).astype("int64"),
        "user_determined": (attempt & df["outcome"].isin(
            ["answered", "no_answer", "busy", "cancelled", "rejected"])).astype("int64"),
        "drops": (answered_rec & abnormal).fillna(False).astype("int64"),
        "conversation_ms": np.where(answered_rec, np.rint(df["billsec_s"].fillna(0) * 1000), 0)
        .astype("int64"),
        "pdd_count": has_pdd.astype("int64"),
        "pdd_us": np.where(has_pdd, np.rint(df["pdd_ms"].fillna(0) * 1000), 0).astype("int64"),
    })  # fmt: skip
    sums = work.groupby(["grp", "bucket"], observed=True)[KQI_COUNTERS].sum()
    pdd = pd.DataFrame({"grp": df["node"][has_pdd], "bucket": work["bucket"][has_pdd],
                        "pdd": np.rint(df["pdd_ms"][has_pdd])})  # fmt: skip
    q = pdd.groupby(["grp", "bucket"])["pdd"].quantile([0.5, 0.95]).unstack()
    q.columns = ["pdd_p50_ms", "pdd_p95_ms"]
    out = sums.join(q, how="left").reset_index()
    elapsed = time.perf_counter() - t0
    return elapsed, out


def kqi_duckdb(records_dir: Path) -> tuple[float, pd.DataFrame]:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute("SET TimeZone = 'UTC'")
    sql = f"""
    WITH r AS (
      SELECT node AS grp, time_bucket(INTERVAL '15 minutes', start) AS bucket,
        service = 'voice' AND record_kind = 'cdr' AND coalesce(partial_seq, 1) <= 1 AS attempt,
        service = 'voice' AND record_kind = 'xdr' AS xdr,
        service = 'voice' AND record_kind = 'cdr' AND outcome = 'answered' AS answered_rec,
        outcome, billsec_s, cause_q850,
        CASE WHEN isnan(pdd_ms) THEN NULL ELSE pdd_ms END AS pdd_ms  -- NaN counts as missing
      FROM read_parquet('{records_dir}/*.parquet')
    )
    SELECT grp, bucket,
      count(*) FILTER (WHERE attempt) AS attempts,
      count(*) FILTER (WHERE attempt AND outcome = 'answered') AS answered,
      count(*) FILTER (WHERE attempt AND outcome IN
        ('answered', 'no_answer', 'busy', 'cancelled', 'rejected')) AS user_determined,
      count(*) FILTER (WHERE answered_rec AND cause_q850 IS NOT NULL
        AND cause_q850 NOT IN (16, 31)) AS drops,
      coalesce(sum(round_even(billsec_s * 1000, 0)::BIGINT) FILTER (WHERE answered_rec), 0)
        AS conversation_ms,
      count(*) FILTER (WHERE (attempt OR xdr) AND pdd_ms IS NOT NULL) AS pdd_count,
      coalesce(sum(round_even(pdd_ms * 1000, 0)::BIGINT)
        FILTER (WHERE (attempt OR xdr) AND pdd_ms IS NOT NULL), 0) AS pdd_us,
      quantile_cont(round_even(pdd_ms, 0), 0.5)
        FILTER (WHERE (attempt OR xdr) AND pdd_ms IS NOT NULL) AS pdd_p50_ms,
      quantile_cont(round_even(pdd_ms, 0), 0.95)
        FILTER (WHERE (attempt OR xdr) AND pdd_ms IS NOT NULL) AS pdd_p95_ms
    FROM r GROUP BY grp, bucket
    """
    t0 = time.perf_counter()
    out = con.execute(sql).df()
    elapsed = time.perf_counter() - t0
    return elapsed, out


CONTENDERS = {
    "model-cemkit": model_cemkit, "model-pandas": model_pandas, "model-duckdb": model_duckdb,
    "kqi-cemkit": kqi_cemkit, "kqi-cemkit-full": kqi_cemkit_full,
    "kqi-pandas": kqi_pandas, "kqi-duckdb": kqi_duckdb,
}  # fmt: skip


def worker(name: str, data: Path, result: Path) -> None:
    elapsed, out = CONTENDERS[name](data)
    frame = out.to_frame("grp") if isinstance(out, pd.Series) else out
    frame.to_parquet(result)
    print(json.dumps({"seconds": round(elapsed, 3), "peak_rss_mib": _own_peak_mib()}))


def _own_peak_mib() -> float:
    """Peak resident memory of this process's own address space (VmHWM).

    ``getrusage`` is not used here: Linux carries ``ru_maxrss`` across ``execve``, so a child
    would report its parent's peak.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(peak_rss_mib(), 1)


def run_child(name: str, data: Path, result: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_kqi", "--worker", name, "--data", str(data),
         "--result", str(result)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _normalize_kqi(frame: pd.DataFrame) -> pd.DataFrame:
    f = frame.copy()
    f["grp"] = f["grp"].astype(str)
    f["bucket"] = pd.to_datetime(f["bucket"], utc=True)
    f = f[f["attempts"].astype("int64") + f["pdd_count"].astype("int64") > 0]
    for c in KQI_COUNTERS:
        f[c] = f[c].astype("int64")
    return f.sort_values(["grp", "bucket"]).reset_index(drop=True)


def _best(fn: Any, repeat: int = 3) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def stage(size: int, work: Path, records_dir: Path | None = None) -> dict[str, Any]:
    """The KQI stage, its floor, the pandas stage it replaced, and GROUP BYs of its counters.

    ``records_dir``: Parquet records to use instead of the world's (e.g. the correlated records
    a ``bench_pipeline`` run wrote: the records the KQI stage of ``cemkit run`` reads).
    """
    import duckdb
    import pyarrow as pa

    from benchmarks.bench_pipeline import world
    from cemkit.correlate._frames import time_ns
    from cemkit.kqi import _kernels, formulas
    from cemkit.kqi.alerts import find_alerts
    from cemkit.kqi.rollup import rollup
    from cemkit.model.assign import Assigner
    from cemkit.model.spec import load_model
    from tests.naive import rollup_pandas

    w = world(work, size)
    where = records_dir or (w / "records")
    records = pd.concat([pd.read_parquet(f) for f in sorted(where.glob("*.parquet"))],
                        ignore_index=True)  # fmt: skip
    assigner = Assigner(load_model(w / "model.yaml"))
    out: dict[str, Any] = {"records": len(records), "groups": len(assigner.group_names),
                           "records_from": str(where)}  # fmt: skip
    # the first call of a process loads the kernels (Numba's cache): what a one-shot run pays
    t0, c0 = time.perf_counter(), time.process_time()
    rollup(records, assigner, rank_customers=False)
    out["cemkit_rollup_first_call_s"] = time.perf_counter() - t0
    out["cemkit_rollup_first_call_cpu_s"] = time.process_time() - c0
    secs, new = _best(lambda: rollup(records, assigner, rank_customers=False))
    out["cemkit_rollup_s"] = secs
    c0 = time.process_time()
    rollup(records, assigner, rank_customers=False)
    out["cemkit_rollup_cpu_s"] = time.process_time() - c0
    # the micro-batch path: 4,000-record batches, 15-minute KQIs then alerts (as BatchProcessor)
    batches = [records.iloc[i : i + 4000] for i in range(0, min(len(records), 400_000), 4000)]
    kqi_ms, alerts_ms, kqi_cpu, alerts_cpu = [], [], [], []
    for i, b in enumerate(batches):
        t0, c0 = time.perf_counter(), time.process_time()
        r = rollup(b, assigner, freqs=("15min",), rank_customers=False)
        t1, c1 = time.perf_counter(), time.process_time()
        find_alerts(r.table, assigner.model)
        if i >= 5:  # warm
            kqi_ms.append((t1 - t0) * 1e3)
            alerts_ms.append((time.perf_counter() - t1) * 1e3)
            kqi_cpu.append((c1 - c0) * 1e3)
            alerts_cpu.append((time.process_time() - c1) * 1e3)
    out["micro_kqi_cpu_p50_ms"] = float(np.median(kqi_cpu))
    out["micro_alerts_cpu_p50_ms"] = float(np.median(alerts_cpu))
    both = np.add(kqi_ms, alerts_ms)
    out["micro_batches"] = len(kqi_ms)
    out["micro_kqi_p50_ms"] = float(np.median(kqi_ms))
    out["micro_alerts_p50_ms"] = float(np.median(alerts_ms))
    out["micro_kqi_alerts_p50_ms"] = float(np.median(both))
    out["micro_kqi_alerts_p99_ms"] = float(np.percentile(both, 99))
    secs, old = _best(lambda: rollup_pandas(records, assigner, rank_customers=False), 1)
    out["pandas_rollup_s"] = secs
    pd.testing.assert_frame_equal(new.table, old.table)  # the same table, to the last bit
    groups = assigner.group_codes(records[assigner.model.numbers.column], records["node"])
    bucket = time_ns(records["start"]) // (15 * 60 * 10**9)
    bucket = bucket - bucket.min()
    cell = (groups.astype(np.int64) + 1) * (int(bucket.max()) + 1) + bucket
    secs, _ = _best(lambda: np.bincount(cell))
    out["floor_bincount_s"] = secs
    # the aggregation alone, over the same (counter, record) block
    block = formulas.contributions(records).to_numpy(dtype=np.int64).T
    n_cells = int(cell.max()) + 1
    none = np.zeros(0, dtype=np.int64)
    secs, (sums, _) = _best(lambda: _kernels.sum_by_cell(cell, block, -1, none, n_cells))
    out["agg_cemkit_s"] = secs
    frame = pd.DataFrame(block.T, columns=list(formulas.COUNTERS))
    frame["cell"] = cell
    secs, by_pandas = _best(lambda: frame.groupby("cell")[list(formulas.COUNTERS)].sum())
    out["agg_pandas_s"] = secs
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    con.register("t", table)
    sql = ("SELECT cell, " + ", ".join(f"sum({c})::BIGINT AS {c}" for c in formulas.COUNTERS)
           + " FROM t GROUP BY cell ORDER BY cell")  # fmt: skip
    secs, by_duckdb = _best(lambda: con.execute(sql).df())
    out["agg_duckdb_s"] = secs
    present = np.flatnonzero(np.bincount(cell, minlength=n_cells))
    for c_i, c in enumerate(formulas.COUNTERS):
        assert (by_pandas[c].to_numpy() == sums[c_i, present]).all(), f"pandas {c}"
        assert (by_duckdb[c].to_numpy() == sums[c_i, present]).all(), f"duckdb {c}"
    out["counters"] = len(formulas.COUNTERS)
    out["cells"] = len(present)
    out["x_floor"] = out["cemkit_rollup_s"] / out["floor_bincount_s"]
    out["pandas_over_cemkit"] = out["pandas_rollup_s"] / out["cemkit_rollup_s"]
    out["agg_pandas_over_cemkit"] = out["agg_pandas_s"] / out["agg_cemkit_s"]
    out["agg_duckdb_over_cemkit"] = out["agg_duckdb_s"] / out["agg_cemkit_s"]
    out["cross_check"] = "identical KQI table (pandas stage); identical sums (pandas, DuckDB)"
    return out


def _ab_records(size: int, work: Path) -> Path:
    """The world's records loaded, protected and correlated (cached as a pickle)."""
    import os
    import pickle

    path = work / f"kqi-ab-{size}.pkl"
    if path.exists():
        return path
    from benchmarks.bench_pipeline import world
    from cemkit.correlate import match, pair_legs, sessionize, stitch
    from cemkit.io.api import plan
    from cemkit.privacy import load_key, load_policy, protect

    os.environ.setdefault("CEMKIT_KEY", "5e" * 32)
    w = world(work, size)
    the_plan = plan(sorted(str(p) for p in (w / "records").glob("*.parquet")), format="parquet")
    records = pd.concat([the_plan.loader.read_part(p)[0] for p in the_plan.parts],
                        ignore_index=True)  # fmt: skip
    policy = load_policy("default")
    protected = protect(records, policy, key=load_key(policy))
    labelled = sessionize(match(pair_legs(stitch(protected))), output="records")
    path.write_bytes(pickle.dumps(labelled, protocol=5))
    return path


def ab_child(records: Path, model: Path, repeat: int, result: Path) -> None:
    """One checkout's KQI stage: best CPU seconds of each call, and what it computed."""
    import pickle

    from cemkit import memory
    from cemkit.kqi.rollup import counter_rows, rollup
    from cemkit.model.assign import Assigner
    from cemkit.model.spec import load_model

    memory.apply()
    labelled = pickle.loads(records.read_bytes())
    assigner = Assigner(load_model(model))
    file = labelled.iloc[:166_666].reset_index(drop=True)
    calls = {
        "rollup (stage table)": lambda: rollup(labelled, assigner, rank_customers=False),
        "rollup (run's sink)": lambda: rollup(labelled, assigner, sizes=True,
                                              intents_within_partitions=True),
        "counter_rows (166,666)": lambda: counter_rows(file, assigner, ("15min", "day")),
    }  # fmt: skip
    rollup(labelled.iloc[:1000], assigner, sizes=True)  # kernels loaded / compiled
    counter_rows(labelled.iloc[:1000], assigner, ("15min", "day"))
    # the stage table's floor: two bincounts of (node x 15-minute bucket) cells
    from cemkit.correlate._frames import time_ns

    node = pd.factorize(labelled["node"])[0].astype(np.int64)
    bucket = time_ns(labelled["start"]) // (15 * 60 * 10**9)
    bucket = bucket - bucket.min()
    cell = node * (int(bucket.max()) + 1) + bucket
    answered = (labelled["outcome"] == "answered").to_numpy()
    calls["floor: bincount (node x 15 min)"] = lambda: (
        np.bincount(cell),
        np.bincount(cell, weights=answered),
    )
    best: dict[str, float] = {}
    outs: dict[str, Any] = {}
    for name, fn in calls.items():
        for _ in range(repeat):
            t0 = time.process_time()  # user + system, all threads
            out = fn()
            cpu = time.process_time() - t0
            best[name] = min(best.get(name, cpu), cpu)
        outs[name] = out
    sink = outs["rollup (run's sink)"]
    rows = outs["counter_rows (166,666)"]
    result.write_bytes(pickle.dumps({
        "cpu": best,
        "check": (outs["rollup (stage table)"].table, sink.table, sink.worst_customers,
                  sink.group_sizes, sink.customer_count,
                  {k: v for k, v in rows.rows.items()}, rows.group, rows.customer, rows.block),
    }))  # fmt: skip


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, pd.DataFrame):
        return a.equals(b) and list(a.dtypes) == list(b.dtypes)
    if isinstance(a, np.ndarray):
        return bool(np.array_equal(a, b)) and a.dtype == b.dtype
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def ab(baseline: Path, size: int, work: Path, rounds: int, repeat: int) -> dict[str, Any]:
    """This checkout's KQI stage against ``baseline``'s, alternating, same records."""
    import os
    import pickle

    records = _ab_records(size, work)
    model = work / f"world-{size}-1" / "model.yaml"
    here = Path(__file__).resolve().parent.parent
    runs: dict[str, list[dict[str, float]]] = {"this": [], "baseline": []}
    checks: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for side, root in (("baseline", baseline), ("this", here)):
                out = Path(tmp) / f"{side}.pkl"
                env = {**os.environ, "PYTHONPATH": str(root)}
                # this file as a script (its directory first on sys.path, not a checkout):
                # cemkit comes from the checkout on PYTHONPATH
                subprocess.run([sys.executable, str(Path(__file__).resolve()), "--ab-child",
                                str(records), "--data", str(model), "--repeat", str(repeat),
                                "--result", str(out)], check=True, env=env,
                               cwd=root)  # fmt: skip
                got = pickle.loads(out.read_bytes())
                runs[side].append(got["cpu"])
                checks[side] = got["check"]
    if not _same(checks["this"], checks["baseline"]):
        raise AssertionError("the two checkouts' KQI results differ")
    names = list(runs["this"][0])
    best = {side: {n: min(r[n] for r in rs) for n in names} for side, rs in runs.items()}
    return {"records": len(pickle.loads(records.read_bytes())), "baseline": str(baseline),
            "cpu_s": best, "runs": runs,
            "baseline_over_this": {n: best["baseline"][n] / best["this"][n] for n in names},
            "cross_check": "same tables, worst customers, group sizes, counter rows"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ab", type=Path, metavar="CHECKOUT",
                        help="A/B of the KQI stage with another checkout")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="with --ab: alternations")
    parser.add_argument("--repeat", type=int, default=3, help="with --ab: calls per child")
    parser.add_argument("--ab-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stage", type=int, help="records of the KQI stage benchmark only")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cemkit-bench/pipeline"))
    parser.add_argument("--records", type=Path,
                        help="with --stage: a directory of Parquet records to use instead of "
                        "the world's (e.g. a run's correlated records)")  # fmt: skip
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--size", type=int, default=5_000_000, help="records for the KQI part")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--worker", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ab_child:
        ab_child(args.ab_child, args.data, args.repeat, args.result)
        return
    if args.ab:
        import os

        report = {"machine": machine(), "load": os.getloadavg(), "versions": versions(
            ("cemkit", "pandas", "pyarrow", "numba", "numpy")),
            "ab": ab(args.ab, args.size, args.work, args.rounds, args.repeat)}  # fmt: skip
        report["load_after"] = os.getloadavg()
        print(json.dumps(report, indent=2))
        return
    if args.worker:
        worker(args.worker, args.data, args.result)
        return
    if args.stage:
        import os

        report = {"machine": machine(), "load": os.getloadavg(), "versions": versions(
            ("cemkit", "pandas", "pyarrow", "numba", "numpy", "duckdb")),
            "stage": stage(args.stage, args.work, args.records)}  # fmt: skip
        print(json.dumps(report, indent=2))
        return

    from cemkit import synth

    report: dict[str, object] = {"machine": machine(), "versions": versions(
        ("cemkit", "pandas", "pyarrow", "dask", "numba", "numpy", "duckdb"))}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        customers = tmpdir / "customers.parquet"
        make_customers(args.customers, customers, args.seed)
        res: dict[str, dict[str, float]] = {}
        outs: dict[str, pd.Series] = {}
        for name in ("model-cemkit", "model-pandas", "model-duckdb"):
            res[name] = run_child(name, customers, tmpdir / f"{name}.parquet")
            outs[name] = pd.read_parquet(tmpdir / f"{name}.parquet")["grp"].astype(object)
        ref = outs["model-cemkit"].fillna("-")
        for name in ("model-pandas", "model-duckdb"):
            same = (outs[name].fillna("-").to_numpy() == ref.to_numpy()).all()
            assert same, f"{name} assigns differently from cemkit"
        report["modeling"] = {
            "customers": args.customers,
            **{k: {**v, "customers_per_s": round(args.customers / v["seconds"])}
               for k, v in res.items()},
            "pandas_over_cemkit": round(res["model-pandas"]["seconds"]
                                        / res["model-cemkit"]["seconds"], 1),
            "duckdb_over_cemkit": round(res["model-duckdb"]["seconds"]
                                        / res["model-cemkit"]["seconds"], 1),
            "cross_check": "identical group for every customer",
        }  # fmt: skip
        print(json.dumps(report["modeling"], indent=2), flush=True)

        world = tmpdir / "world"
        synth.generate(world, records=args.size, seed=args.seed, incidents=2, formats=False)
        records = world / "records"
        kres: dict[str, dict[str, float]] = {}
        kouts: dict[str, pd.DataFrame] = {}
        for name in ("kqi-cemkit", "kqi-cemkit-full", "kqi-pandas", "kqi-duckdb"):
            kres[name] = run_child(name, records, tmpdir / f"{name}.parquet")
            kouts[name] = _normalize_kqi(pd.read_parquet(tmpdir / f"{name}.parquet"))
        ref_k = kouts["kqi-cemkit"]
        for name in ("kqi-cemkit-full", "kqi-pandas", "kqi-duckdb"):
            other = kouts[name]
            assert len(other) == len(ref_k), f"{name}: {len(other)} rows vs {len(ref_k)}"
            keys = ["grp", "bucket"]
            assert (other[keys].to_numpy() == ref_k[keys].to_numpy()).all(), f"{name}: keys"
            for c in KQI_COUNTERS:
                assert (other[c].to_numpy() == ref_k[c].to_numpy()).all(), f"{name}: {c} differs"
            for c in ("pdd_p50_ms", "pdd_p95_ms"):
                np.testing.assert_allclose(other[c].to_numpy(float), ref_k[c].to_numpy(float),
                                           rtol=0, atol=1e-9, err_msg=f"{name}: {c}")  # fmt: skip
        report["kqi"] = {
            "records": args.size,
            "rows_out": len(ref_k),
            **{k: {**v, "records_per_s": round(args.size / v["seconds"])}
               for k, v in kres.items()},
            "pandas_over_cemkit": round(kres["kqi-pandas"]["seconds"]
                                        / kres["kqi-cemkit"]["seconds"], 2),
            "duckdb_over_cemkit": round(kres["kqi-duckdb"]["seconds"]
                                        / kres["kqi-cemkit"]["seconds"], 2),
            "cross_check": "identical counters; PDD p50/p95 within 1e-9",
        }  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
