"""The runner: inputs → a list of stages → one run directory, with counts that reconcile.

Every entry point (``cemkit run``, ``load``, ``protect``, ``correlate``, ``kqi``, ``reveal``,
:func:`cemkit.process_batch`) is a list of :class:`~cemkit.runs.stages.Stage` given to
:func:`execute` (or, for one pandas batch, to :func:`~cemkit.runs.stages.apply`).

Inputs are either *sources* (files of one or more formats, read by the loaders) or a *run
directory* an earlier command wrote. For sources, each input part is read by one task that also
runs the leading row-wise stages (protect), writes its quarantine and returns its counts: raw
numbers exist only inside that task. Formats that combine parts (CUCM attaches CMR metrics to
CDRs) run those stages after combining.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cemkit import config, labels
from cemkit.errors import InputError, SchemaError
from cemkit.runs import stages as st
from cemkit.runs import store

COUNT_KEYS = ("rows_read", "rows_loaded", "rows_quarantined", "rows_attached")


@dataclass
class Source:
    """Files of one source format, with the options to read them."""

    format: str
    paths: list[str]
    tz: str = "UTC"
    default_region: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    planned: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_plan(cls, plan: Any) -> Source:
        """A source for a plan already made (:func:`cemkit.io.plan`)."""
        loader = plan.loader
        return cls(loader.name, list(plan.paths), tz=loader.tz,
                   default_region=loader.default_region, planned=plan)  # fmt: skip

    def plan(self) -> Any:
        """The loader's plan of these files (nothing read yet)."""
        from cemkit.io.api import plan

        if self.planned is None:  # planned once (splitting text inputs scans them)
            self.planned = plan(self.paths, self.format, tz=self.tz,
                                default_region=self.default_region, **self.options)  # fmt: skip
        return self.planned


def parse_source(spec: str, *, tz: str = "UTC", default_region: str | None = None,
                 options: dict[str, Any] | None = None) -> Source:  # fmt: skip
    """``FORMAT:PATH`` (as ``--input asterisk:cdr/``) → :class:`Source`."""
    fmt, sep, path = spec.partition(":")
    if not sep or not fmt or not path:
        raise InputError(
            f"input {spec!r} is not FORMAT:PATH",
            hint="e.g. --input asterisk:cdr/ --input sip-pcap:captures/",
        )
    return Source(fmt, [path], tz=tz, default_region=default_region, options=dict(options or {}))


def read_sources_file(path: str | os.PathLike[str]) -> list[Source]:
    """Sources listed in a small YAML file.

    The layout::

    sources:
      - format: asterisk
        paths: [cdr/]
        tz: Europe/London
        region: GB
      - format: sip-pcap
        paths: [captures/]
    """
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(
            f"sources file {str(path)!r} cannot be read ({type(exc).__name__})",
            hint="give a YAML file with a `sources:` list",
        ) from None
    items = doc.get("sources") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise InputError(
            f"sources file {str(path)!r} has no `sources:` list",
            hint="each item: format, paths, and optionally tz, region, options",
        )
    base = Path(path).parent
    out = []
    for i, item in enumerate(items, 1):
        known = {"format", "paths", "tz", "region", "options"}
        if (
            not isinstance(item, dict)
            or "format" not in item
            or "paths" not in item
            or (set(item) - known)
        ):
            raise InputError(
                f"sources file {str(path)!r}, source {i}: expected the keys "
                f"{', '.join(sorted(known))} (format and paths required)"
            )
        paths = item["paths"] if isinstance(item["paths"], list) else [item["paths"]]
        out.append(Source(str(item["format"]),
                          [str(p if Path(p).is_absolute() else base / p) for p in paths],
                          tz=str(item.get("tz", "UTC")), default_region=item.get("region"),
                          options=dict(item.get("options") or {})))  # fmt: skip
    return out


@dataclass
class Sink:
    """A stage that reduces all records to tables (KQIs): ``fn(records) -> (tables, section)``.

    ``tables`` maps a path inside the run (``kqi/kqi.parquet``) to a pandas frame.

    ``columns``: the record columns ``fn`` reads, when it reads no others. A run that computes
    in this process (no cluster) and whose kept columns fit :data:`cemkit.config.SINK_KEEP_BYTES`
    then hands ``fn`` those columns of each partition as the write task had them, instead of
    reading the parts it has just written back from disk (what the KQI sink's read cost:
    ~0.4-1.2 CPU-s of the 1M run, Parquet decoded again); ``fn`` sees the same partitions,
    dtypes and values either way.
    """

    name: str
    fn: Callable[[Any], tuple[dict[str, pd.DataFrame], dict[str, Any], Any]]
    columns: Sequence[str] | None = None
    #: ``partial(partition) -> P`` and ``merge([P, ...]) -> fn's result``: ``fn`` in two halves,
    #: the first run by each write task on the partition it has just written (the same pass:
    #: nothing kept or read back, and the reductions run beside the other partitions' work),
    #: the second on what they returned. Used by a run without a cluster when every sink has
    #: both; ``fn(records)`` otherwise. ``merge`` must give what ``fn`` gives.
    partial: _PartialFn | None = None
    merge: Callable[[list[Any]], tuple[dict[str, pd.DataFrame], dict[str, Any], Any]] | None = None


_PartialFn = Callable[[pd.DataFrame], Any]  # a sink's reduction of one partition


@dataclass
class Outcome:
    """What :func:`execute` wrote and what the sinks returned."""

    out: Path
    manifest: dict[str, Any]
    results: dict[str, Any]


# --- the hook every entry point passes through before protect --------------------------------


def check_before_protect(policy: Any, key: Any, columns: Any, *, quarantine: Any = None) -> None:
    """Refuse a policy (or key) that cannot protect these columns, before anything is written.

    Every entry point that protects calls this once with the records' dtypes (and the
    quarantine's): the place for policy validation and for refusing unprotected input.
    """
    from cemkit.privacy.engine import plan

    plan(columns, policy, key)
    if quarantine is not None:
        plan(quarantine, policy, key, quarantine=True)


# --- execution ---------------------------------------------------------------------------------


def _leading_rowwise(stages: Sequence[st.Stage]) -> tuple[list[st.Stage], list[st.Stage]]:
    n = 0
    while n < len(stages) and stages[n].grouping is None:
        n += 1
    return list(stages[:n]), list(stages[n:])


def _quarantine_fns(stages: Sequence[st.Stage]) -> list[Callable[[pd.DataFrame], pd.DataFrame]]:
    return [s.quarantine for s in stages if s.quarantine is not None]


class _Aligner:
    """Give a partition the columns and dtypes of the run's meta (several sources, one frame)."""

    def __init__(self, meta: pd.DataFrame):
        self.meta = meta

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        if list(df.columns) == list(self.meta.columns):
            return df
        out = {}
        for c in self.meta.columns:
            out[c] = (
                df[c]
                if c in df.columns
                else pd.Series(pd.array([None] * len(df), dtype=self.meta[c].dtype), index=df.index)
            )
        return pd.DataFrame(out, index=df.index)


def _union_meta(metas: Sequence[pd.DataFrame]) -> pd.DataFrame:
    cols: dict[str, Any] = {}
    for m in metas:
        for c in m.columns:
            cols.setdefault(c, m[c].dtype)
    return pd.DataFrame({c: pd.Series([], dtype=d) for c, d in cols.items()})


def _read_part(loader: Any, part: Any, index: int, pre: list[st.Stage], combined: bool,
               quarantine_dir: str, q_schema: Any, align: _Aligner | None
               ) -> tuple[pd.DataFrame, dict[str, Any]]:  # fmt: skip
    """One input part: read, run the leading row stages, write the quarantine; records + counts."""
    from cemkit.io.api import number_counts

    # label columns narrow from the read on (a format may read them so at their source)
    records, quarantine = loader.read_part(part) if combined else loader.read_part_narrow(part)
    read = loader.rows_read(part, records, quarantine)
    attached = loader.rows_attached(part, records, quarantine)  # e.g. CUCM CMRs joined to CDRs
    units = loader.read_units(part, records, quarantine)  # lines, packets, BER records, ...
    numbers = number_counts(records)  # how many numbers stayed unparsed (warn_unparsed)
    if not combined:
        records = st.run_pandas(records, pre)
        records = labels.narrow(records, labels.PROTECTED)  # once protected (scan_text reads text)
        if align is not None:
            records = align(records)
    for fn in _quarantine_fns(pre):
        quarantine = fn(quarantine)
    written = store.write_part(quarantine, quarantine_dir, index, q_schema)
    counts = {"path": part.path, "rows_read": read,
              "rows_loaded": read - len(quarantine) - attached,
              "rows_quarantined": len(quarantine), "rows_attached": attached,
              "quarantine_part": written, "read_units": units, **numbers}  # fmt: skip
    return records, counts


def _reconcile(part_counts: list[dict[str, Any]], digests: list[dict[str, Any]]) -> dict[str, Any]:
    per_file: dict[str, dict[str, Any]] = {}
    for c in part_counts:
        f = per_file.setdefault(c["path"], {**dict.fromkeys(COUNT_KEYS, 0), "read_units": {}})
        for k in COUNT_KEYS:
            f[k] += c[k]
        for unit, n in c.get("read_units", {}).items():
            f["read_units"][unit] = f["read_units"].get(unit, 0) + int(n)
    empty = {**dict.fromkeys(COUNT_KEYS, 0), "read_units": {}}
    inputs = [{**d, **per_file.get(d["path"], empty)} for d in digests]
    totals: dict[str, Any] = {k: sum(f[k] for f in inputs) for k in COUNT_KEYS}
    units: dict[str, int] = {}
    for f in inputs:
        for unit, n in f["read_units"].items():
            units[unit] = units.get(unit, 0) + n
    totals["read_units"] = units
    if totals["rows_read"] != (totals["rows_loaded"] + totals["rows_quarantined"]
                               + totals["rows_attached"]):  # fmt: skip
        raise SchemaError("row counts do not reconcile (read != loaded + quarantined + attached)")
    return {"inputs": inputs, "totals": totals}


def _check_read_units(loader: Any, inputs: list[dict[str, Any]]) -> str:
    """Each file's read units reconcile by its format's identities (written to the manifest).

    Returns the identities over all the files, with their figures (one line of text), after
    warning (:class:`~cemkit.errors.ResultWarning`) of what the format finds worth saying about
    them (e.g. a capture clock that jumped).
    """
    from cemkit.errors import ResultWarning
    from cemkit.io.base import unit_equations

    total: dict[str, int] = {}
    for f in inputs:
        if not f.get("read_units"):
            continue
        units = {**f["read_units"], "rows_read": f["rows_read"]}
        for unit, n in units.items():
            total[unit] = total.get(unit, 0) + int(n)
        equations = unit_equations(units, loader.unit_identities)
        wrong = [text for text, holds in equations if not holds]
        if wrong:
            raise SchemaError(f"{f['path']}: what was read does not reconcile: "
                              + "; ".join(wrong))  # fmt: skip
        f["read_units_reconciled"] = "; ".join(text for text, _ in equations)
    for message in loader.unit_warnings(total):
        warnings.warn(ResultWarning(message), stacklevel=3)
    return "; ".join(text for text, _ in unit_equations(total, loader.unit_identities))


def _jsonable(v: object) -> bool:
    return v is None or isinstance(v, str | int | float | bool | list | tuple | dict)


#: What each records-writing task returns (one row per part written).
_WRITTEN_META = pd.DataFrame(
    {
        "file": pd.Series([], dtype=object),
        "rows": pd.Series([], dtype="int64"),
        "sha256": pd.Series([], dtype=object),
        "src_match": pd.Series([], dtype=object),
        "kept": pd.Series([], dtype=object),
    }
)


class _WritePart:
    """Picklable: write one records partition into the run (on the worker); one row about it.

    ``keep``: columns of the partition returned with it (``kept``), for a sink (see
    :class:`Sink`); ``partials``: the sinks' ``partial`` functions, whose results of the
    partition are returned instead (a list, one per sink); ``None``: nothing kept.
    """

    def __init__(self, directory: str, schema: Any, keep: Sequence[str] | None = None,
                 partials: Sequence[_PartialFn] | None = None):  # fmt: skip
        self.directory, self.schema, self.keep = directory, schema, keep
        self.partials = partials

    def __call__(self, df: pd.DataFrame, partition_info: dict | None = None) -> pd.DataFrame:
        index = 0 if partition_info is None else int(partition_info["number"])
        written = store.write_part(df, self.directory, index, self.schema)
        matches = {}
        if "src_match" in df.columns:  # what correlation found, counted where the rows are
            matches = {str(k): int(v) for k, v in df["src_match"].value_counts().items()}
        kept: Any = None
        if self.partials is not None:
            kept = [partial(df) for partial in self.partials]
        elif self.keep is not None:  # the columns themselves (no copy), the rows in their order
            kept = df[[c for c in self.keep if c in df.columns]].reset_index(drop=True)
        return pd.DataFrame({"file": [written["file"]], "rows": [written["rows"]],
                             "sha256": [written["sha256"]], "src_match": [matches],
                             "kept": [kept]})  # fmt: skip


def _write_lazy(records: Any, writer: store.RunWriter, schema: Any = None,
                keep: Sequence[str] | None = None,
                partials: Sequence[_PartialFn] | None = None) -> Any:  # fmt: skip
    """A lazy frame of one row per written part (computed with the rest: one graph)."""
    write = _WritePart(str(writer.records_dir), schema, keep, partials)
    return records.map_partitions(write, meta=_WRITTEN_META, enforce_metadata=False)


def _written(frame: Any) -> tuple[list[dict[str, Any]], list[Any] | None]:
    """The parts written (for the manifest), and what each kept for the sinks (or None)."""
    if not isinstance(frame, pd.DataFrame):
        return [], None
    parts = [{"file": r.file, "rows": int(r.rows), "sha256": r.sha256, "src_match": r.src_match}
             for r in frame.itertuples(index=False)]  # fmt: skip
    kept = list(frame["kept"])
    return parts, (kept if kept and all(k is not None for k in kept) else None)


def _sink_partials(sinks: Sequence[Sink], client: Any) -> list[_PartialFn] | None:
    """The sinks' ``partial`` functions for the write tasks, or None (see :class:`Sink`).

    Without a cluster only (a worker's results would travel to the client, and the functions
    to every worker): the default threaded and synchronous schedulers.
    """
    if not sinks or client is not None or any(s.partial is None or s.merge is None
                                              for s in sinks):  # fmt: skip
        return None
    return [s.partial for s in sinks if s.partial is not None]


def _sink_columns(sinks: Sequence[Sink], client: Any, paths: Sequence[str]) -> list[str] | None:
    """The record columns the write tasks keep for the sinks, or None (they read the parts).

    Only without a cluster (kept frames would travel to the client) and when what is kept (the
    columns of every partition, held until the sinks run: :data:`cemkit.config.SINK_KEEP_SHARE`
    of the run's estimated peak) fits :data:`cemkit.config.SINK_KEEP_BYTES` and free memory.
    """
    if not sinks or client is not None or any(s.columns is None for s in sinks):
        return None
    import psutil

    need = run_memory(paths)
    if need is None:
        return None
    kept = need * config.SINK_KEEP_SHARE
    if kept > min(config.SINK_KEEP_BYTES, psutil.virtual_memory().available):
        return None
    return list(dict.fromkeys(c for s in sinks for c in s.columns or ()))


class _KeptParts:
    """Partition ``i`` of the frames the write tasks kept (:func:`dask.dataframe.from_map`)."""

    def __init__(self, frames: list[pd.DataFrame]):
        self.frames = frames
        self.token = uuid.uuid4().hex  # the frames are not hashed to name the tasks

    def __dask_tokenize__(self) -> str:
        return self.token

    def __call__(self, i: int) -> pd.DataFrame:
        return self.frames[i]


def _kept_records(frames: list[pd.DataFrame]) -> Any:
    """The kept frames as a lazy Dask frame, one partition per part written."""
    import dask.dataframe as dd

    return dd.from_map(_KeptParts(frames), list(range(len(frames))), meta=frames[0].iloc[:0],
                       label="kept-records", enforce_metadata=False)  # fmt: skip


def load_sources(
    sources: Sequence[Source], pre: list[st.Stage], writer: store.RunWriter, *, raw_schema: bool
) -> tuple[Any, list[Any], list[Any], dict[str, Any]]:
    """Lazy records of several sources (leading row stages applied), lazy counts and digests."""
    import dask
    import dask.dataframe as dd

    from cemkit.io.base import QUARANTINE_SCHEMA, Loader
    from cemkit.schema import arrow_schema

    plans = [s.plan() for s in sources]
    metas = []
    for p in plans:
        # label columns narrow from the read on (cemkit.labels): the run's records in memory
        meta = labels.narrowed_meta(p.loader.meta())
        metas.append(labels.narrowed_meta(st.run_pandas(meta, pre), labels.PROTECTED))
    union = _union_meta(metas)
    q_schema = QUARANTINE_SCHEMA if not _quarantine_fns(pre) else None
    frames, counts, digests, index = [], [], [], 0
    for p, meta in zip(plans, metas, strict=True):
        combined = type(p.loader).finish is not Loader.finish
        align = None if list(meta.columns) == list(union.columns) else _Aligner(union)
        tasks = []
        for part in p.parts:
            tasks.append(dask.delayed(_read_part, pure=False, nout=2)(
                p.loader, part, index, pre, combined, str(writer.quarantine_dir), q_schema,
                align))  # fmt: skip
            index += 1
        raw_meta = p.loader.meta() if combined else (meta if align is None else union)
        frame = dd.from_delayed([t[0] for t in tasks], meta=raw_meta, verify_meta=False)
        if combined:
            finished = p.loader.finish(frame, p.parts)
            finished = finished.map_partitions(
                labels.narrow, meta=labels.narrowed_meta(finished._meta)
            )
            frame = st.apply(finished, pre)
            frame = frame.map_partitions(
                labels.narrow,
                labels.PROTECTED,
                meta=labels.narrowed_meta(frame._meta, labels.PROTECTED),
            )
            if align is not None:
                frame = frame.map_partitions(align, meta=union, enforce_metadata=False)
        frames.append(frame)
        counts += [t[1] for t in tasks]
        for f in p.paths:  # text inputs were hashed in the pass that split them
            known = p.loader.known_digest(f)
            digests.append(known if known is not None
                           else dask.delayed(store.sha256_file, pure=False)(f))  # fmt: skip
    records = frames[0] if len(frames) == 1 else dd.concat(frames, interleave_partitions=False)
    schema = None
    if raw_schema and len(plans) == 1:
        schema = plans[0].loader.record_schema()  # a loader's own kind (e.g. measurements)
    elif raw_schema:
        exts: dict[str, Any] = {}
        for p in plans:
            for col in p.loader.extension_columns():
                exts.setdefault(col.name, col)
        schema = arrow_schema(tuple(exts.values()))
    sections = []
    for p in plans:
        sections.append({"format": p.loader.name, "tz": p.loader.tz,
                         "default_region": p.loader.default_region,
                         "options": {k: v for k, v in p.loader.opts.items() if _jsonable(v)},
                         "parts": len(p.parts), "paths": list(p.paths)})  # fmt: skip
    return records, counts, digests, {"sources": sections, "schema": schema}


def execute(
    stages: Sequence[st.Stage],
    out: str | os.PathLike[str],
    *,
    sources: Sequence[Source] | None = None,
    run: str | os.PathLike[str] | None = None,
    sinks: Sequence[Sink] = (),
    write_records: bool = True,
    overwrite: bool = False,
    scheduler: Any = None,
    command: str | None = None,
    extra_sections: dict[str, dict[str, Any]] | None = None,
    key: Any = None,
    allow_raw: bool = False,
) -> Outcome:
    """Run stages over sources (files) or a run directory into the run directory ``out``.

    Parameters
    ----------
    stages : list of Stage
        Partition → partition steps, in order.
    out : path
        Run directory to create (atomically; ``manifest.json`` written last).
    sources, run
        Exactly one: source files (one or more formats), or a run directory (or ``RUN/records``)
        an earlier command wrote.
    sinks : list of Sink
        Reductions over the written records (KQIs), written as tables inside the run.
    write_records : bool
        Write the records (a command that only reduces, ``cemkit kqi``, reads them in place).
    scheduler
        Where Dask computes (:mod:`cemkit.cluster`).
    command : str, optional
        The command line, recorded in the manifest.
    key : Key, optional
        The run's pseudonymization key: input paths in the manifest become source names
        (number-like runs tokenized under it; masked without it).
    allow_raw : bool
        Let stages after protect run on a run directory that was never protected (a data
        owner's own raw data, loudly); without it such input is refused.
    """
    import dask

    from cemkit import memory
    from cemkit.cluster import connect
    from cemkit.privacy import enforce

    if (sources is None) == (run is None):
        raise ValueError("give exactly one of sources= and run=")
    out = Path(out)
    names = [s.name for s in stages]
    if run is not None and "protect" in names:
        enforce.refuse_protected(store.run_root(run))  # protecting tokens again breaks links
    elif run is not None and "reveal" not in names:
        enforce.require_protected(store.run_root(run), "+".join(names) or "kqi",
                                  allow_raw=allow_raw)  # fmt: skip
    store.check_writable(out, overwrite)
    memory.apply()  # what one partition frees, the next reuses (not faulted in again)
    with memory.heap_frozen(), connect(scheduler) as client, \
            store.RunWriter(out, overwrite=overwrite) as writer:  # fmt: skip
        manifest = writer.manifest
        results: dict[str, Any] = {}
        partials: list[_PartialFn] | None = None
        if sources is not None:
            pre, rest = _leading_rowwise(stages)
            records, counts, digests, info = load_sources(
                sources, pre, writer, raw_schema=not stages
            )
            records = st.apply(records, rest)
            paths = [p for s in info["sources"] for p in s["paths"]]
            partials = _sink_partials(sinks, client) if write_records else None
            keep = _sink_columns(sinks, client, paths) if write_records and not partials else None
            writes = (_write_lazy(records, writer, info["schema"], keep, partials)
                      if write_records else [])  # fmt: skip
            with manifest.timed("+".join(["load", *st.stage_names(stages)])), \
                    dask.config.set(shuffle_config(client, paths)), \
                    warnings.catch_warnings():  # fmt: skip
                # one graph on purpose: the counts come from the very tasks that read the parts
                warnings.filterwarnings("ignore", message="Computing mixed collections")
                written, part_counts, hashes = dask.compute(writes, counts, digests)
            parts, kept = _written(written)
            reconciled = _reconcile(part_counts, hashes)
            from cemkit.io.api import warn_unparsed

            unit_lines = []
            for s in sources:  # loud failures: a file mostly quarantined, numbers left unparsed
                planned = s.plan()
                mine = set(planned.paths)
                planned.check_quarantine([f for f in reconciled["inputs"] if f["path"] in mine])
                line = _check_read_units(planned.loader, [f for f in reconciled["inputs"]
                                                          if f["path"] in mine])  # fmt: skip
                if line:
                    unit_lines.append(f"{planned.loader.name}: {line}" if len(sources) > 1
                                      else line)  # fmt: skip
                warn_unparsed([c for c in part_counts if c["path"] in mine],
                              planned.loader.default_region)  # fmt: skip
            if unit_lines:
                reconciled["totals"]["read_units_reconciled"] = " | ".join(unit_lines)
            writer.add_outputs(store.QUARANTINE,
                               [c["quarantine_part"] for c in part_counts])  # fmt: skip
            manifest.data["inputs"] = [{k: f[k] for k in ("path", "size", "sha256")}
                                       for f in reconciled["inputs"]]  # fmt: skip
            load = (
                dict(info["sources"][0])
                if len(sources) == 1
                else {
                    "format": "+".join(s["format"] for s in info["sources"]),
                    "sources": info["sources"],
                }
            )
            load.pop("paths", None)
            load["parts"] = sum(s["parts"] for s in info["sources"])
            load.update(reconciled)
            if command is not None:
                load["command"] = command
            manifest.add_section("load", load)
            manifest.data["stages"] = ["load"]
            if paths and all(enforce.is_generated(p) for p in paths):
                # generated worlds hold no personal data; runs made from them say so too
                manifest.data[enforce.GENERATED] = {"from": "cemkit.synth"}
            rows_in = reconciled["totals"]["rows_loaded"]
            read_counts = dict(reconciled["totals"])
            q_rows = reconciled["totals"]["rows_quarantined"]
        else:
            assert run is not None
            source = store.run_root(run)
            upstream = store.read_manifest(source)
            records = store.read_records(source)
            _carry_over(upstream, manifest, source, key)
            rows_in = sum(pq_rows(f) for f in store.part_files(source))
            q_fns = _quarantine_fns(stages)
            q_files = store.part_files(source, store.QUARANTINE)
            out_records = st.apply(records, stages)
            partials = _sink_partials(sinks, client) if write_records else None
            keep = (_sink_columns(sinks, client, store.part_files(source))
                    if write_records and not partials else None)  # fmt: skip
            writes = (_write_lazy(out_records, writer, keep=keep, partials=partials)
                      if write_records else [])  # fmt: skip
            q_writes: list[Any] = []
            q_parts: Any = []
            if q_fns and q_files:
                quarantine = store.read_records(source, store.QUARANTINE)
                for fn in q_fns:
                    quarantine = quarantine.map_partitions(fn, meta=fn(quarantine._meta))
                q_writes = [dask.delayed(store.write_part, pure=False)(
                    part, str(writer.quarantine_dir), i)
                    for i, part in enumerate(quarantine.to_delayed())]  # fmt: skip
            with manifest.timed("+".join(st.stage_names(stages)) or "read"), \
                    dask.config.set(shuffle_config(client, store.part_files(source))), \
                    warnings.catch_warnings():  # fmt: skip
                # records and quarantine written in one graph (each read once)
                warnings.filterwarnings("ignore", message="Computing mixed collections")
                written, q_parts = dask.compute(writes, q_writes)
            parts, kept = _written(written)
            if q_fns:
                writer.add_outputs(store.QUARANTINE, list(q_parts))
            elif write_records:
                q_parts = writer.copy_parts(source / store.QUARANTINE, store.QUARANTINE)
            q_rows = sum(int(p["rows"]) for p in q_parts)
            read_counts = {}
        listed = writer.add_outputs(store.RECORDS, list(parts))
        rows_out = sum(p["rows"] for p in listed)
        matches: dict[str, int] = {}
        for p in parts:
            for k, v in p.get("src_match", {}).items():
                matches[k] = matches.get(k, 0) + v
        for name, sec in st.sections(stages).items():
            sec["records_in"] = rows_in
            sec["counts"] = {**read_counts, "records": rows_out, "quarantine": q_rows}
            if name == "correlate":
                sec["matches"] = dict(sorted(matches.items()))
                sec["xdr_only"] = matches.get("xdr_only", 0)
            manifest.add_section(name, sec)
        for name, sec in (extra_sections or {}).items():
            manifest.add_section(name, sec)
        manifest.data["stages"] += [n for n in st.stage_names(stages)
                                    if n not in manifest.data["stages"]]  # fmt: skip
        marker = (manifest.data.get("protect") or {}).pop("marker", None)
        if "protect" in names:
            manifest.data[enforce.MARKER] = marker
        elif "reveal" in names:
            manifest.data[enforce.MARKER] = False  # revealed numbers are raw data again
        if "protect" in names or key is not None:
            # protected outputs: file names are data too (a raw load keeps its real paths)
            manifest.data.update(enforce.source_names_in_manifest(manifest.data, key))
        for i, sink in enumerate(sinks):
            # the KQI reductions shuffle too: without a cluster never Dask's p2p default (a
            # distributed Client alive elsewhere in the process would make it the default)
            with manifest.timed(sink.name), dask.config.set(shuffle_config(client, [])):
                if partials is not None and kept is not None and sink.merge is not None:
                    # what the write tasks reduced their partitions to (Sink.partial; every
                    # sink has both halves then, so each part holds one partial per sink)
                    tables, section, result = sink.merge([k[i] for k in kept])
                else:
                    # label columns as categoricals (cemkit.labels), as they were written
                    if kept is not None:  # the columns the sinks read, as the write tasks had
                        data = _kept_records(kept)
                    elif write_records:
                        data = store.read_parts(_files(writer.records_dir), narrow=True)
                    else:
                        data = store.read_records(source, narrow=True)
                    tables, section, result = sink.fn(data)
                for rel, frame in tables.items():
                    writer.write_table(frame, rel)
            manifest.add_section(sink.name, section)
            manifest.data["stages"].append(sink.name)
            results[sink.name] = result
        if manifest.data["stages"] and isinstance(manifest.data.get(manifest.data["stages"][-1]),
                                                  dict):  # fmt: skip
            # the files this run wrote, under its last stage (where `cemkit audit` looks)
            order = {store.RECORDS: 0, store.QUARANTINE: 1}
            writer.outputs.sort(key=lambda o: order.get(o["path"].split("/")[0], 2))
            manifest.data[manifest.data["stages"][-1]]["outputs"] = writer.outputs
        data = dict(manifest.data)
    return Outcome(out, data, results)


def _files(directory: Path) -> list[str]:
    files = sorted(str(p) for p in directory.glob("*.parquet"))
    if not files:
        raise InputError(
            "the run wrote no records to compute from", hint="check that the inputs hold records"
        )
    return files


def pq_rows(path: str) -> int:
    """Rows of a Parquet file (from its footer)."""
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _carry_over(upstream: dict[str, Any], manifest: store.Manifest, source: Path,
                key: Any = None) -> None:  # fmt: skip
    """Keep the upstream stages' sections (what was loaded, from which files) in the new run.

    Its protection marker too; paths are source names (number-like runs tokenized).
    """
    from cemkit.privacy import enforce

    for mark in (enforce.MARKER, enforce.GENERATED):
        if mark in upstream:
            manifest.data[mark] = upstream[mark]
    for name in upstream.get("stages", []):
        if isinstance(upstream.get(name), dict):  # its files are not this run's: not listed
            manifest.add_section(name, {k: v for k, v in upstream[name].items() if k != "outputs"})
    if "inputs" in upstream:
        manifest.data["inputs"] = upstream["inputs"]
    manifest.data["stages"] = list(upstream.get("stages", []))
    manifest.data["upstream"] = {
        "path": enforce.source_name(str(source), key),
        "manifest_sha256": store.sha256_of(source / store.MANIFEST),
    }


MEMORY_PER_INPUT_BYTE = config.RUN_MEMORY_PER_INPUT_BYTE
MEMORY_PER_PARQUET_RECORD = config.RUN_MEMORY_PER_PARQUET_RECORD


def run_memory(paths: Sequence[str]) -> int | None:
    """Estimated peak bytes of an in-memory run over these input files (None: one is missing).

    Parquet compresses ~7x below its pandas frames (dictionary pages, zstd), so its files are
    counted by their rows (from the footers, nothing read); other inputs by their bytes.
    """
    import pyarrow.parquet as pq

    total = 0
    for path in paths:
        try:
            size = Path(path).stat().st_size
        except OSError:
            return None
        need = size * MEMORY_PER_INPUT_BYTE
        if str(path).endswith(".parquet"):
            # not Parquet after all: counted by its bytes
            with contextlib.suppress(OSError, ValueError):
                need = pq.ParquetFile(path).metadata.num_rows * MEMORY_PER_PARQUET_RECORD
        total += need
    return total


def shuffle_config(client: Any, paths: Sequence[str]) -> dict[str, str]:
    """Dask's shuffle method for this run (an explicit ``dataframe.shuffle.method`` wins).

    Without a cluster Dask's default shuffles through files on disk (partd). The in-memory
    ``tasks`` shuffle holds every partition's pieces at once (at 10M Parquet records the run
    passed 8 GB); it is used when the run's estimated peak (:func:`run_memory`) fits in this
    machine's free memory, the disk shuffle (bounded memory, measured ~7 % more CPU at 1M)
    otherwise. A cluster keeps its own default (peer-to-peer, which spills).
    """
    import dask

    if client is not None or dask.config.get("dataframe.shuffle.method", None):
        return {}
    import psutil

    need = run_memory(paths)
    if need is not None and need < psutil.virtual_memory().available:
        return {"dataframe.shuffle.method": "tasks"}
    return {}
