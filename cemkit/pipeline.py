"""One pipeline, end to end: load → protect → correlate → model → KQIs → outputs.

:func:`run` is the stage list ``protect + correlate`` with the KQI sink, given to the runner
(:func:`cemkit.runs.execute`) over one or more sources::

    DIR/records/       protected, correlated records (one per call / attempt), Parquet
    DIR/quarantine/    rows that could not be read, protected like the records
    DIR/kqi/           KQIs per node group and modeled customer per bucket; worst customers;
                       distinct customers per group
    DIR/alerts.parquet alerts raised by the model's thresholds
    DIR/manifest.json  inputs with checksums, counts that reconcile, policy and key id, timings,
                       every output with its checksum

The stage commands (``cemkit load``, ``protect``, ``correlate``, ``kqi``) give the runner the
same stages one at a time and chain: run one after the other they write what :func:`run` writes.

:class:`BatchProcessor` (and :func:`process_batch` over it) is the real-time path: a pandas frame
of a few thousand canonical records is one partition of the very same stage list, with policy,
key and model kept warm between calls and reloaded when they change; between the stages the
batch travels as column arrays (:mod:`cemkit.columnar`).
"""

from __future__ import annotations

import gc
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cemkit.columnar import Columns
from cemkit.model.spec import BUCKETS, ServiceModel, load_model
from cemkit.privacy.keys import Key
from cemkit.privacy.policy import Policy
from cemkit.runs import Source, apply, execute, parse_source
from cemkit.runs.library import (
    CORRELATE_DEFAULTS,
    SIGNALING_FIELDS,
    correlate_stages,
    kqi_sink,
    policy_and_key,
    protect_stages,
    with_signaling,
)

__all__ = ["CORRELATE_DEFAULTS", "SIGNALING_FIELDS", "BatchProcessor", "BatchResult", "RunResult",
           "correlate", "process_batch", "run", "with_signaling"]  # fmt: skip


@dataclass
class RunResult:
    """Where :func:`run` wrote its outputs, and what it counted."""

    out: Path
    manifest: dict[str, Any]
    kqi: pd.DataFrame
    alerts: pd.DataFrame
    worst_customers: pd.DataFrame
    group_sizes: pd.DataFrame  #: distinct customers per node group (report-level k)

    def _repr_html_(self) -> str:
        """Notebook display: counts, policy, key id, alerts and KQIs (cemkit.report.display)."""
        from cemkit.report.display import run_result_html

        return run_result_html(self)


def correlate(records: Any, npartitions: int | None = None, **settings: str) -> Any:
    """Stitch partials, pair legs, match xDRs to CDRs and label intents (pandas or Dask).

    Returns the correlated records, one per call or unmatched attempt, with the intent columns
    of :func:`cemkit.correlate.sessionize` (``src_intent_id``, ``src_attempt``) that the
    repeat-attempt KQI reads. The stages of :func:`cemkit.runs.library.correlate_stages`.
    """
    return apply(records, correlate_stages(**settings), npartitions=npartitions)


def _sources(inputs: Any, format: str | None, sources: Any, tz: str,
             default_region: str | None, options: dict[str, Any]) -> list[Source]:  # fmt: skip
    out: list[Source] = []
    if inputs is not None and (not isinstance(inputs, list | tuple) or inputs):
        if format is None:
            from cemkit.errors import InputError

            raise InputError(
                "inputs given without a format",
                hint="pass format= (--format), or FORMAT:PATH sources (--input)",
            )
        paths = (
            [os.fspath(p) for p in inputs]
            if isinstance(inputs, list | tuple)
            else [os.fspath(inputs)]
        )
        out.append(Source(format, paths, tz=tz, default_region=default_region, options=options))
    for s in sources or []:
        out.append(
            s
            if isinstance(s, Source)
            else parse_source(str(s), tz=tz, default_region=default_region, options=options)
        )
    if not out:
        from cemkit.errors import InputError

        raise InputError("no inputs given", hint="give input paths with a format, or sources")
    return out


def _protect_for_sources(sources: list[Source], policy: Policy, key: Key | None) -> list[Any]:
    from cemkit.io.base import empty_quarantine
    from cemkit.runs.runner import _union_meta

    metas = [s.plan().loader.meta() for s in sources]
    return protect_stages(policy, key, _union_meta(metas), empty_quarantine())


def run(
    inputs: Any = None,
    *,
    format: str | None = None,
    policy: str | Path | Policy = "default",
    model: str | Path | ServiceModel,
    out: str | Path,
    sources: list[Source | str] | None = None,
    tz: str = "UTC",
    default_region: str | None = None,
    scheduler: Any = None,
    overwrite: bool = False,
    freqs: tuple[str, ...] = BUCKETS,
    top_n: int = 20,
    key: Key | None = None,
    command: str | None = None,
    **options: Any,
) -> RunResult:
    """Run the whole pipeline on files of one or more source formats; see the module docstring.

    Parameters
    ----------
    inputs : path, glob or list of them, optional
        Input files or directories of ``format``.
    format : str
        Their source format (``asterisk``, ``freeswitch``, ``cucm``, ``generic``, ``parquet``,
        ``sip-pcap``).
    policy : path, name or Policy
        Privacy policy (``default`` names the shipped ``default.yaml``).
    model : path or ServiceModel
        Service model (node groups, modeled customers, thresholds).
    out : path
        Run directory to create (atomically: an interrupted run leaves nothing that looks done).
    sources : list of Source or ``"FORMAT:PATH"``, optional
        More inputs, of other formats (e.g. ``["asterisk:cdr/", "sip-pcap:captures/"]``): all
        are protected under one key and correlated together (xDRs matched to CDRs).
    tz, default_region, **options
        As for :func:`cemkit.load` (applied to every source given without its own).
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
    >>> result = cemkit.run(sources=["asterisk:cdr/", "sip-pcap:captures/"], policy="default",
    ...                     model="models/example.yaml", out="runs/joined")  # doctest: +SKIP
    """
    from cemkit.progress import step

    spec = model if isinstance(model, ServiceModel) else load_model(model)
    srcs = _sources(inputs, format, sources, tz, default_region, options)
    # the policy as `policy check` sees it; a one-off key for generated worlds only
    pol, key = policy_and_key(policy, key, [p for s in srcs for p in s.plan().paths])
    from cemkit.privacy.check import warn_fit

    warn_fit(pol, spec)  # a model whose prefixes the policy hides gives empty groups
    stages = [*_protect_for_sources(srcs, pol, key), *correlate_stages()]
    # the sink reads the parts this run's correlation writes: each holds whole intents
    sink = kqi_sink(spec, freqs=freqs, top_n=top_n, sizes=True, intents_within_partitions=True)
    with step(f"loading, protecting, correlating and computing KQIs ({len(srcs)} source(s))"):
        done = execute(stages, out, sources=srcs, sinks=[sink], overwrite=overwrite,
                       scheduler=scheduler, command=command, key=key)  # fmt: skip
    k = done.results["kqi"]
    warn_fit(pol, spec, k.result.table)  # and when many attempts matched no group
    return RunResult(done.out, done.manifest, k.result.table, k.alerts, k.result.worst_customers,
                     k.group_sizes)  # fmt: skip


# --- real-time micro-batches --------------------------------------------------------------------


class BatchResult:
    """Records and KQIs of one micro-batch.

    ``records`` is built when first read: the batch's stages pass column arrays
    (:class:`~cemkit.columnar.Columns`, also :attr:`columns`) and the pandas frame of a few
    thousand records costs about a millisecond to build, which a caller that keeps only the
    KQIs need not pay.

    ``policy``, ``key`` and ``assigner`` are what this batch was protected and assigned with
    (a :class:`BatchProcessor` reloads them when their files change, so a caller that must
    record or re-apply them, like the warehouse, reads them here rather than from the
    processor).
    """

    def __init__(self, records: pd.DataFrame | Columns, kqi: pd.DataFrame, alerts: pd.DataFrame,
                 timings_ms: dict[str, float] | None = None, policy: Policy | None = None,
                 key: Key | None = None, assigner: Any = None) -> None:  # fmt: skip
        self._records = records
        self.kqi = kqi
        self.alerts = alerts
        self.timings_ms: dict[str, float] = {} if timings_ms is None else timings_ms
        self.policy = policy
        self.key = key
        self.assigner = assigner

    @property
    def records(self) -> pd.DataFrame:
        """The protected, correlated records (one per call / attempt)."""
        if isinstance(self._records, Columns):
            self._records = self._records.frame()
        return self._records

    @records.setter
    def records(self, value: pd.DataFrame) -> None:
        self._records = value

    @property
    def columns(self) -> Columns:
        """The records as column arrays (no frame built)."""
        if isinstance(self._records, Columns):
            return self._records
        return Columns.of(self._records)

    def __repr__(self) -> str:
        return (f"BatchResult({len(self._records)} records, {len(self.kqi)} KQI rows, "
                f"{len(self.alerts)} alerts)")  # fmt: skip


def _file_state(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _policy_path(policy: Any) -> Path | None:
    from cemkit.privacy.policy import POLICY_DIR

    if isinstance(policy, Policy):
        return None
    p = Path(policy)
    if not p.exists() and p.suffix == "" and (POLICY_DIR / f"{p}.yaml").exists():
        p = POLICY_DIR / f"{p}.yaml"
    return p


class BatchProcessor:
    """Warm state of the real-time path: policy, key, model and the stage list built from them.

    Each call checks (cheaply) whether the policy or model file changed (modification time and
    size, then the policy's sha256) or the key source now gives another key (its fingerprint),
    and rebuilds what changed; nothing stale is ever applied.

    What is built once and kept between calls: the protect stage's
    :class:`~cemkit.privacy.engine.Protector` (policy checked, key resolved, one validated plan
    per column signature, the scanner's remembered node texts; the batch's HMACs on
    :data:`cemkit.config.CORRELATE_THREADS` threads) and the compiled model's assigner.

    Between the stages the batch is column arrays (:class:`~cemkit.columnar.Columns`: NumPy
    and Arrow-backed arrays, and protect's integer codes of the pseudonymized columns, which
    stitch and correlate key by); no pandas frame is built until the caller reads
    :attr:`BatchResult.records`. The records, KQIs and alerts are those of :func:`run` on the
    same records (tests/test_realtime.py compares the records byte for byte).

    Parameters
    ----------
    policy : path, name or Policy
        Privacy policy.
    model : path or ServiceModel
        Service model.
    freqs : tuple of str
        KQI buckets (empty: no KQIs, :attr:`BatchResult.kqi` is an empty table).
    key : Key, optional
        A fixed key (default: read from the policy's key source, re-read on every call).
    alerts : bool
        Also evaluate the model's thresholds (:attr:`BatchResult.alerts`); without, ``alerts``
        is an empty alerts table (for callers that keep only counters, e.g. the warehouse).
    freeze_gc : bool
        After the first call (and after a reload) collect garbage once and move every object
        alive then (modules, policy, model, compiled kernels, the caller's own) out of the
        cyclic garbage collector's reach (:func:`gc.freeze`). A full collection walks every
        tracked object of the process: ~120 ms of CPU over the ~220K objects a warm process
        holds, on one batch in a few hundred; frozen, the collector walks only what batches
        allocated since. Objects frozen are still freed when their last reference goes (only a
        reference cycle among them is never collected).

    Examples
    --------
    >>> import cemkit
    >>> batches = cemkit.BatchProcessor(policy="default", model="model.yaml")  # doctest: +SKIP
    >>> result = batches(frame)  # doctest: +SKIP
    """

    def __init__(self, policy: str | Path | Policy = "default", *,
                 model: str | Path | ServiceModel, freqs: tuple[str, ...] = ("15min",),
                 key: Key | None = None, alerts: bool = True,
                 freeze_gc: bool = True) -> None:  # fmt: skip
        self.policy = policy
        self.model = model
        self.freqs = tuple(freqs)
        self.key = key
        self.alerts = alerts
        self.freeze_gc = freeze_gc
        self._frozen_at = -1  # self.reloads when the collector last froze the heap
        # what does not change between calls: the policy file's path (per policy given), whether
        # the policy needs a key (per policy loaded), the dtypes last seen canonical
        self._policy_path: tuple[Any, Path | None] | None = None
        self._needs_key: tuple[Policy, bool] | None = None
        self._conformed: tuple[tuple[str, ...], tuple[Any, ...]] | None = None
        self._kept_plan: tuple[Any, Any, Any] | None = None  # (protector, dtypes seen, plan)
        self._lock = threading.Lock()
        self._policy_state: Any = object()
        self._model_state: Any = object()
        self._policy: Policy | None = None
        self._key: Key | None = None
        self._assigner: Any = None
        self._stages: list[Any] = []
        self.reloads = 0  #: how often policy, key or model were (re)loaded
        from cemkit import memory

        memory.apply()  # one batch's freed memory is the next one's

    def _refresh(self) -> None:
        from cemkit import config
        from cemkit.io.base import empty_quarantine
        from cemkit.model.assign import Assigner
        from cemkit.privacy.engine import load_key
        from cemkit.privacy.policy import load_policy
        from cemkit.schema import empty_frame

        changed = False
        if self._policy_path is None or self._policy_path[0] is not self.policy:
            self._policy_path = (self.policy, _policy_path(self.policy))
        pstate = _file_state(self._policy_path[1])
        if self._policy is None or pstate != self._policy_state:
            pol = load_policy(self.policy)
            if self._policy is None or pol.sha256 != self._policy.sha256:
                self._policy, changed = pol, True
            self._policy_state = pstate
        assert self._policy is not None
        key = self.key
        if self._needs_key is None or self._needs_key[0] is not self._policy:
            self._needs_key = (self._policy, any(r.needs_key for _, r in self._policy.rules()))
        if key is None and self._needs_key[1]:
            key = load_key(self._policy)
        if changed or _fingerprint(key) != _fingerprint(self._key):
            self._key, changed = key, True
        mpath = None if isinstance(self.model, ServiceModel) else Path(self.model)
        mstate = _file_state(mpath)
        if self._assigner is None or mstate != self._model_state:
            spec = self.model if isinstance(self.model, ServiceModel) else load_model(self.model)
            self._assigner = Assigner(spec)
            self._model_state = mstate
            self.reloads += 1
        if changed:
            self._stages = [
                *protect_stages(
                    self._policy,
                    self._key,
                    empty_frame(),
                    empty_quarantine(),
                    threads=config.CORRELATE_THREADS,
                ),
                *correlate_stages(),
            ]
            self.reloads += 1

    def __call__(self, records: pd.DataFrame, *, canonical: bool = True) -> BatchResult:
        """Protect, correlate and compute KQIs for one pandas batch (one partition)."""
        from cemkit import schema
        from cemkit.kqi.alerts import empty_alerts, find_alerts
        from cemkit.kqi.rollup import _empty_table, rollup
        from cemkit.runs.stages import run_pandas

        with self._lock:
            self._refresh()
            stages, assigner = self._stages, self._assigner
            policy, key = self._policy, self._key
        t0 = time.perf_counter()
        # a frame read some other way (pd.read_parquet: nullable ints as float) is conformed
        same = canonical and self._is_conformed(records)
        recs = records if same else schema.conform(records)
        # the stages pass column arrays; the records frame is built when the caller reads it,
        # its columns gathered then from the protected arrays (keep columns: the caller's own):
        # a shallow copy held with them keeps copy-on-write watching the caller's frame
        recs = recs.copy(deep=False)
        protector = stages[0].fn
        protected = protector.columns(recs, steps=self._plan(protector, recs, same))
        protected.owner = recs
        t1 = time.perf_counter()
        calls = run_pandas(protected, stages[1:])
        t2 = time.perf_counter()
        # the assigner (compiled model, its ancestor index) stays warm between calls; no
        # buckets, no KQIs (for callers that sum counters themselves: the warehouse)
        if self.freqs:
            rolled = rollup(calls, assigner, freqs=self.freqs, rank_customers=False)
            kqi, keys = rolled.table, rolled.keys
        else:
            kqi, keys = _empty_table(), None
        t3 = time.perf_counter()
        # the table's rows and objects found by its key codes (no string compared)
        alerts = find_alerts(kqi, assigner.model, keys=keys) if self.alerts else empty_alerts()
        t4 = time.perf_counter()
        timings = {"protect": (t1 - t0) * 1e3, "correlate": (t2 - t1) * 1e3,
                   "kqi": (t3 - t2) * 1e3, "alerts": (t4 - t3) * 1e3}  # fmt: skip
        if self.freeze_gc and self._frozen_at != self.reloads:
            # warm now (this call loaded what later calls reuse): out of the collector's walk
            self._frozen_at = self.reloads
            gc.collect()
            gc.freeze()
        return BatchResult(calls, kqi, alerts, timings, policy, key, assigner)

    def _plan(self, protector: Any, recs: pd.DataFrame, same: bool) -> Any:
        """The protector's plan for these records, kept while batches keep their dtypes.

        ``same``: :meth:`_is_conformed` just found the columns and dtype objects it last
        recorded (or recorded these): the plan of that signature is reused without hashing the
        dtypes again (~80 µs a batch).
        """
        seen = self._conformed
        kept = self._kept_plan
        same = same and recs.columns.is_unique  # (seen is recorded for unique names only)
        if same and kept is not None and kept[0] is protector and kept[1] is seen:
            return kept[2]
        steps = protector.plan(recs.dtypes)
        self._kept_plan = (protector, seen, steps) if same else None
        return steps

    def _is_conformed(self, records: pd.DataFrame) -> bool:
        """:func:`cemkit.schema.conformed`, remembered for the dtypes of the last frame it passed.

        Batches of one source arrive with the same columns and dtype objects; comparing them by
        identity costs ~10 µs where the dtype comparisons cost ~0.3 ms.
        """
        from cemkit import schema
        from cemkit.columnar import column_arrays

        if not records.columns.is_unique:
            return schema.conformed(records)
        arrays = column_arrays(records)
        names = tuple(arrays)
        dtypes = tuple(a.dtype for a in arrays.values())
        seen = self._conformed
        if (seen is not None and seen[0] == names and len(seen[1]) == len(dtypes)
                and all(a is b for a, b in zip(seen[1], dtypes, strict=True))):  # fmt: skip
            return True
        if not schema.conformed(records):
            return False
        self._conformed = (names, dtypes)
        return True


def _fingerprint(key: Key | None) -> str | None:
    return None if key is None else f"{key.id}:{key.fingerprint}"


_PROCESSORS: dict[tuple[str, str, tuple[str, ...], bool], BatchProcessor] = {}


def processor(policy: str | Path, model: str | Path, freqs: tuple[str, ...] = ("15min",), *,
              alerts: bool = True) -> BatchProcessor:  # fmt: skip
    """The warm :class:`BatchProcessor` of this process for these settings (made once)."""
    ident = (str(policy), str(model), tuple(freqs), alerts)
    proc = _PROCESSORS.get(ident)
    if proc is None:
        proc = _PROCESSORS[ident] = BatchProcessor(policy, model=model, freqs=freqs,
                                                   alerts=alerts)  # fmt: skip
    return proc


def process_batch(
    records: pd.DataFrame,
    *,
    policy: str | Path = "default",
    model: str | Path,
    freqs: tuple[str, ...] = ("15min",),
    canonical: bool = True,
) -> BatchResult:
    """Protect, correlate and compute KQIs for a small pandas batch, without Dask.

    A thin convenience over :class:`BatchProcessor` (one per policy, model and buckets, kept
    warm; a changed policy file, model file or key is noticed and reloaded).

    Parameters
    ----------
    records : pandas.DataFrame
        Canonical records with raw numbers (as a loader produced them).
    policy, model : path or name
        Policy and service model.
    freqs : tuple of str
        KQI buckets.
    canonical : bool
        Records are already in the canonical dtypes (skip the conform step; checked by dtype,
        a frame whose dtypes differ is conformed anyway).

    Returns
    -------
    BatchResult
    """
    return processor(policy, model, freqs)(records, canonical=canonical)
