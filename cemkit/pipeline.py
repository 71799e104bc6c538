"""One pipeline, end to end: load → protect → correlate → model → KQIs → outputs.

:func:`run` processes files of one source format into a run directory::

    DIR/records/       protected, correlated records (one per call / attempt), Parquet
    DIR/quarantine/    rows that could not be read, protected like the records
    DIR/kqi/           KQIs per node group and modeled customer per bucket; worst customers
    DIR/alerts.parquet alerts raised by the model's thresholds
    DIR/manifest.json  inputs with checksums, counts that reconcile, policy and key id, timings

It streams partition by partition: every input part is read, normalized and pseudonymized by
one task on a worker, which writes its quarantine rows itself; correlation shuffles protected
records between workers by key; KQIs are computed from the written records. Raw numbers exist
only inside the first task of each part.

:func:`process_batch` is the real-time path: a pandas frame of a few thousand canonical records,
no Dask, with compiled kernels, policy and model kept warm between calls; it gives the same
records and KQIs as :func:`run` on the same records.
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd

from cemkit.cluster import add_scheduler_option, connect
from cemkit.errors import SchemaError
from cemkit.io.api import number_counts, warn_unparsed
from cemkit.io.base import Loader, Part
from cemkit.io.output import RunDir, sha256_file, write_frame
from cemkit.model.spec import BUCKETS, ServiceModel, load_model
from cemkit.privacy.check import warn_fit
from cemkit.privacy.engine import load_key, protect
from cemkit.privacy.keys import Key
from cemkit.privacy.policy import Policy, load_policy
from cemkit.progress import step

#: Correlation settings of the pipeline (the ``cemkit correlate`` defaults).
CORRELATE_DEFAULTS: dict[str, str] = {
    "gap": "1s",
    "pair_tolerance": "5s",
    "match_tolerance": "5s",
    "window": "120s",
}


@dataclass
class RunResult:
    """Where :func:`run` wrote its outputs, and what it counted."""

    out: Path
    manifest: dict[str, Any]
    kqi: pd.DataFrame
    alerts: pd.DataFrame
    worst_customers: pd.DataFrame
    group_sizes: pd.DataFrame  #: distinct customers per node group (report-level k)


def _protected_meta(loader: Loader, policy: Policy, key: Key | None) -> pd.DataFrame:
    return protect(loader.meta(), policy, key=key)


def _load_protect_part(
    loader: Loader, part: Part, policy: Policy, key: Key | None, quarantine_dir: str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read one part, pseudonymize it, write its quarantine; return protected records + counts."""
    records, quarantine = loader.read_part(part)
    read = loader.rows_read(part, records, quarantine)
    attached = loader.rows_attached(part, records, quarantine)
    protected = protect(records, policy, key=key)
    write_frame(protect(quarantine, policy, key=key, quarantine=True), quarantine_dir, part.index)
    counts = {"path": part.path, "rows_read": read,
              "rows_loaded": read - len(quarantine) - attached,
              "rows_quarantined": len(quarantine), "rows_attached": attached,
              **number_counts(records)}  # fmt: skip
    return protected, counts


def correlate(records: Any, npartitions: int | None = None, **settings: str) -> Any:
    """Stitch partials, pair legs, match xDRs to CDRs and label intents (pandas or Dask).

    Returns the correlated records, one per call or unmatched attempt, with the intent columns
    of :func:`cemkit.correlate.sessionize` (``src_intent_id``, ``src_attempt``) that the
    repeat-attempt KQI reads.
    """
    from cemkit.correlate import _frames, stitch

    opts = {**CORRELATE_DEFAULTS, **settings}
    calls = stitch(records, gap=opts["gap"], npartitions=npartitions)
    if not _frames.is_dask(calls):
        return _by_parties(calls, opts)
    # Pairing legs, matching xDRs and labelling intents all need the rows of one pair of parties
    # in one partition, and none of them changes a row's parties: one shuffle by parties serves
    # the three (shuffling again by the same hash into as many partitions would move no row and
    # keep each partition's order, so the result is that of the three separate Dask steps).
    n = npartitions or calls.npartitions
    shuffled = _frames.tag_and_shuffle(calls, _frames.parties_key, n)

    def by_parties(df: pd.DataFrame) -> pd.DataFrame:
        return _by_parties(_frames.restore_order(df), opts)

    return shuffled.map_partitions(by_parties, meta=by_parties(shuffled._meta),
                                   enforce_metadata=False)  # fmt: skip


def _by_parties(calls: pd.DataFrame, opts: dict[str, str]) -> pd.DataFrame:
    """Pair legs, match xDRs, fill signaling fields and label intents (pandas)."""
    from cemkit.correlate import match, pair_legs, sessionize

    calls = pair_legs(calls, tolerance=opts["pair_tolerance"])
    calls = match(calls, tolerance=opts["match_tolerance"])
    calls = with_signaling(calls)
    return sessionize(calls, window=opts["window"], output="records")


#: Measurements a CDR lacks and its matched signaling xDR has (``src_xdr_<name>``).
SIGNALING_FIELDS = ("pdd_ms", "sip_status", "mos", "loss_ratio", "jitter_ms")


def with_signaling(calls: pd.DataFrame) -> pd.DataFrame:
    """Fill a matched CDR's missing measurements (PDD, SIP status, media) from its xDR."""
    filled = {}
    for name in SIGNALING_FIELDS:
        src = f"src_xdr_{name}"
        if name in calls.columns and src in calls.columns:
            filled[name] = calls[name].fillna(calls[src].astype(calls[name].dtype))
    return calls.assign(**filled)


def run(
    inputs: Any,
    *,
    format: str,
    policy: str | Path | Policy,
    model: str | Path | ServiceModel,
    out: str | Path,
    tz: str = "UTC",
    default_region: str | None = None,
    scheduler: Any = None,
    overwrite: bool = False,
    freqs: tuple[str, ...] = BUCKETS,
    top_n: int = 20,
    key: Key | None = None,
    **options: Any,
) -> RunResult:
    """Run the whole pipeline on files of one source format; see the module docstring.

    Parameters
    ----------
    inputs : path, glob or list of them
        Input files or directories.
    format : str
        Source format (``asterisk``, ``freeswitch``, ``cucm``, ``generic``, ``parquet``,
        ``sip-pcap``).
    policy : path, name or Policy
        Privacy policy (``default`` names ``policies/default.yaml``).
    model : path or ServiceModel
        Service model (node groups, modeled customers, thresholds).
    out : path
        Run directory to create (atomically: an interrupted run leaves nothing that looks done).
    tz, default_region, **options
        As for :func:`cemkit.load`.
    scheduler : optional
        Where Dask computes (:mod:`cemkit.cluster`; default ``$CEMKIT_SCHEDULER``, else an
        embedded LocalCluster).
    overwrite : bool
        Replace an existing run directory.
    freqs : tuple of str
        KQI buckets.
    top_n : int
        Worst customers to list.
    key : Key, optional
        Pseudonymization key (default: from the policy's key source).

    Returns
    -------
    RunResult

    Examples
    --------
    >>> import cemkit
    >>> result = cemkit.run("cdr/", format="asterisk", policy="default",
    ...                     model="models/example.yaml", out="runs/today")  # doctest: +SKIP
    """
    from cemkit.io.api import plan as make_plan
    from cemkit.kqi.api import read_records
    from cemkit.kqi.api import run as kqi_run
    from cemkit.kqi.sizes import group_sizes

    pol = load_policy(policy)
    if key is None and any(r.needs_key for _, r in pol.rules()):
        key = load_key(pol)
    spec = model if isinstance(model, ServiceModel) else load_model(model)
    warn_fit(pol, spec)  # a model whose prefixes the policy hides gives empty groups
    the_plan = make_plan(inputs, format, tz=tz, default_region=default_region, **options)
    loader = the_plan.loader
    timings: dict[str, float] = {}
    with connect(scheduler) as client, RunDir(out, overwrite=overwrite) as run_dir, \
            dask.config.set(_shuffle_config(client, the_plan.paths)):  # fmt: skip
        t0 = time.perf_counter()
        with step(f"loading, protecting and correlating {len(the_plan.paths)} file(s)"):
            records, counts = _protected_records(the_plan, pol, key, str(run_dir.quarantine_dir))
            calls = correlate(records)
            write = calls.to_parquet(
                run_dir.records_dir, write_index=False, write_metadata_file=False,
                name_function=lambda i: f"part-{i:05d}.parquet", compute=False,
            )  # fmt: skip
            hashes = [dask.delayed(sha256_file, pure=False)(p) for p in the_plan.paths]
            with warnings.catch_warnings():
                # one graph on purpose: the delayed counts come from the very tasks that read
                # the parts, so computing them apart would read every input twice
                warnings.filterwarnings("ignore", message="Computing mixed collections")
                _, part_counts, digests = dask.compute(write, counts, hashes)
        timings["load_protect_correlate"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        with step("computing KQIs and alerts"):
            done = kqi_run(str(run_dir.records_dir), spec, run_dir.path, freqs=freqs, top_n=top_n)
            sizes = group_sizes(read_records(str(run_dir.records_dir)), spec)
            sizes.to_parquet(run_dir.path / "kqi" / "group_sizes.parquet", index=False)
        timings["kqi"] = time.perf_counter() - t1
        warn_fit(pol, spec, done.result.table)
        manifest = run_dir.manifest
        inputs_section = _reconcile(part_counts, digests)
        the_plan.check_quarantine(inputs_section["inputs"])
        warn_unparsed(part_counts, loader.default_region)
        manifest.data["inputs"] = [
            {k: f[k] for k in ("path", "size", "sha256")} for f in inputs_section["inputs"]
        ]
        manifest.add_section("load", {"format": loader.name, "tz": loader.tz,
                                      "default_region": loader.default_region,
                                      "parts": len(the_plan.parts), **inputs_section})  # fmt: skip
        manifest.add_section("protect", _protect_section(pol, key))
        manifest.add_section("kqi", {
            "model": spec.name, "buckets": list(done.result.freqs), "rows": len(done.result.table),
            "alerts": len(done.alerts), "customers": done.result.customer_count,
        })  # fmt: skip
        manifest.data["stages"] = ["load", "protect", "correlate", "kqi"]
        manifest.data["timings_s"].update({k: round(v, 6) for k, v in timings.items()})
        data = dict(manifest.data)
    return RunResult(
        Path(out), data, done.result.table, done.alerts, done.result.worst_customers, sizes
    )


#: Peak memory of an in-memory run per byte of input (measured: ~6x for Asterisk CSV).
MEMORY_PER_INPUT_BYTE = 8


def _shuffle_config(client: Any, paths: list[str]) -> dict[str, str]:
    """Dask's shuffle method for this run (an explicit ``dataframe.shuffle.method`` wins).

    Without a cluster Dask shuffles through files on disk (partd), which costs more than the
    correlation itself; when the run fits in this machine's free memory the in-memory ``tasks``
    shuffle is used instead. A cluster keeps its own default (peer-to-peer, which spills).
    """
    if client is not None or dask.config.get("dataframe.shuffle.method", None):
        return {}
    import psutil

    size = 0
    for path in paths:
        try:
            size += Path(path).stat().st_size
        except OSError:
            return {}
    if size * MEMORY_PER_INPUT_BYTE < psutil.virtual_memory().available:
        return {"dataframe.shuffle.method": "tasks"}
    return {}


def _protected_records(
    the_plan: Any, policy: Policy, key: Key | None, quarantine_dir: str
) -> tuple[dd.DataFrame, list[Any]]:
    """Lazy protected records, and lazy per-part counts (quarantine written by the tasks)."""
    loader = the_plan.loader
    meta = _protected_meta(loader, policy, key)
    tasks = [
        dask.delayed(_load_protect_part, pure=False, nout=2)(
            loader, part, policy, key, quarantine_dir
        )
        for part in the_plan.parts
    ]
    if type(loader).finish is not Loader.finish:
        # Formats that combine parts (CUCM joins CMR metrics to CDRs) protect after combining.
        records = protect(the_plan.records(), policy, key=key)
    else:
        records = dd.from_delayed([t[0] for t in tasks], meta=meta, verify_meta=False)
    return records, [t[1] for t in tasks]


def _reconcile(part_counts: list[dict[str, Any]], digests: list[dict[str, Any]]) -> dict[str, Any]:
    per_file: dict[str, dict[str, int]] = {}
    for c in part_counts:
        f = per_file.setdefault(c["path"], dict.fromkeys(
            ("rows_read", "rows_loaded", "rows_quarantined", "rows_attached"), 0))  # fmt: skip
        for k in f:
            f[k] += c.get(k, 0)
    inputs = [{**d, **per_file.get(d["path"], {})} for d in digests]
    keys = ("rows_read", "rows_loaded", "rows_quarantined", "rows_attached")
    totals = {k: sum(f.get(k, 0) for f in inputs) for k in keys}
    if totals["rows_read"] != (totals["rows_loaded"] + totals["rows_quarantined"]
                               + totals["rows_attached"]):  # fmt: skip
        raise SchemaError("row counts do not reconcile (read != loaded + quarantined + attached)")
    return {"inputs": inputs, "totals": totals}


def _protect_section(policy: Policy, key: Key | None) -> dict[str, Any]:
    return {
        "policy": {**policy.summary(), "description": policy.description},
        "key": None if key is None else {"id": key.id, "fingerprint": key.fingerprint},
    }


# --- real-time micro-batches --------------------------------------------------------------------


@dataclass
class BatchResult:
    """Records and KQIs of one micro-batch."""

    records: pd.DataFrame
    kqi: pd.DataFrame
    alerts: pd.DataFrame
    timings_ms: dict[str, float] = field(default_factory=dict)


@lru_cache(maxsize=8)
def _warm(policy: str, model: str) -> tuple[Policy, Key | None, Any]:
    from cemkit.model.assign import Assigner

    pol = load_policy(policy)
    key = load_key(pol) if any(r.needs_key for _, r in pol.rules()) else None
    return pol, key, Assigner(load_model(model))


def process_batch(
    records: pd.DataFrame,
    *,
    policy: str | Path = "default",
    model: str | Path,
    freqs: tuple[str, ...] = ("15min",),
    canonical: bool = True,
) -> BatchResult:
    """Protect, correlate and compute KQIs for a small pandas batch, without Dask.

    Parameters
    ----------
    records : pandas.DataFrame
        Canonical records with raw numbers (as a loader produced them).
    policy, model : path or name
        Loaded once and kept warm (cached by path) across calls.
    freqs : tuple of str
        KQI buckets.
    canonical : bool
        Records are already in the canonical dtypes (skip the conform step).

    Returns
    -------
    BatchResult
    """
    from cemkit import schema
    from cemkit.kqi.alerts import find_alerts
    from cemkit.kqi.rollup import rollup

    pol, key, assigner = _warm(str(policy), str(model))
    t0 = time.perf_counter()
    recs = records if canonical else schema.conform(records)
    protected = protect(recs, pol, key=key)
    t1 = time.perf_counter()
    calls = correlate(protected)
    t2 = time.perf_counter()
    result = rollup(calls, assigner, freqs=freqs, rank_customers=False)
    alerts = find_alerts(result.table, assigner.model)
    t3 = time.perf_counter()
    timings = {"protect": (t1 - t0) * 1e3, "correlate": (t2 - t1) * 1e3, "kqi": (t3 - t2) * 1e3}
    return BatchResult(calls, result.table, alerts, timings)


# --- command line -------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add the ``run`` sub-command."""
    from cemkit.io.commands import add_max_quarantine_option

    p = subparsers.add_parser(
        "run",
        help="load, protect, correlate, model and compute KQIs in one pass",
        description="Run the whole pipeline on files of one source format into a run directory "
        "(records/, quarantine/, kqi/, alerts.parquet, manifest.json).",
    )
    p.add_argument("inputs", nargs="+", help="input files, globs or directories")
    p.add_argument("--format", required=True, help="source format (e.g. asterisk; auto: detect)")
    p.add_argument("--policy", default="default", help="privacy policy path or name")
    p.add_argument("--model", required=True, help="service model YAML")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--tz", default="UTC", help="zone of the source's local times")
    p.add_argument("--region", default=None, help="default region for national numbers")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="format option, as for `cemkit load` (e.g. blocksize=1048576)")
    add_max_quarantine_option(p)
    add_scheduler_option(p)
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from cemkit.io.commands import _options

    result = run(
        args.inputs, format=args.format, policy=args.policy, model=args.model, out=args.out,
        tz=args.tz, default_region=args.region, scheduler=args.scheduler,
        overwrite=args.overwrite, max_quarantine=args.max_quarantine,
        **_options(getattr(args, "option", [])),
    )  # fmt: skip
    totals = result.manifest["load"]["totals"]
    print(f"{result.out}: {totals['rows_loaded']} records loaded, "
          f"{totals['rows_quarantined']} quarantined, {len(result.alerts)} alert(s)")  # fmt: skip
    return 0
