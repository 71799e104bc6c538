"""The stages of cemkit, built from the domain packages' pure functions.

Each builder returns :class:`~cemkit.runs.stages.Stage` objects (or a
:class:`~cemkit.runs.runner.Sink`); every entry point assembles its list from these, so
``cemkit run`` and the stage commands run the very same functions.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import pandas as pd

from cemkit.config import CORRELATE_DEFAULTS
from cemkit.runs.runner import Sink, check_before_protect
from cemkit.runs.stages import Grouping, Stage

#: Measurements a CDR lacks and its matched signaling xDR has (``src_xdr_<name>``).
SIGNALING_FIELDS = ("pdd_ms", "sip_status", "mos", "loss_ratio", "jitter_ms")


def _stitch_key(df: pd.DataFrame) -> Any:
    from cemkit.correlate.stitch import _stitch_bucket

    return _stitch_bucket(df)


def _parties_key(df: pd.DataFrame) -> Any:
    return df[["a_number", "b_number"]]


#: Partials of one call: its call reference, else its parties.
BY_CALL = Grouping("call", _stitch_key)
#: Rows of one pair of parties (pairing legs, matching xDRs and labelling intents need them).
BY_PARTIES = Grouping("parties", _parties_key)


def policy_and_key(policy: Any, key: Any = None, inputs: Any = None) -> tuple[Any, Any]:
    """The policy, validated as ``cemkit policy check`` does (an ERROR refuses it), and its key.

    The key comes from the policy's key source; only when every input is a generated world
    (:mod:`cemkit.synth`) may a one-off key stand in (:func:`cemkit.privacy.enforce.run_key`).
    """
    from cemkit.privacy.enforce import enforce_policy, run_key

    pol = enforce_policy(policy)
    if key is None:
        key = run_key(pol, inputs)
    return pol, key


def protect_section(policy: Any, key: Any) -> dict[str, Any]:
    """What a manifest records of a protection (never the key)."""
    from cemkit.privacy.enforce import key_record

    return {
        "policy": {**policy.summary(), "description": policy.description},
        "key": key_record(key),
    }


def protect_stages(policy: Any, key: Any, records_meta: pd.DataFrame,
                   quarantine_meta: pd.DataFrame | None = None, *,
                   threads: int = 1) -> list[Stage]:  # fmt: skip
    """Pseudonymize records (and quarantine rows) by a policy.

    Passes :func:`~cemkit.runs.runner.check_before_protect` first: a policy that cannot protect
    these columns is refused before anything runs. ``threads``: for the HMACs of one partition
    (the real-time path's batch; a run's partitions are its parallelism).
    """
    check_before_protect(
        policy,
        key,
        records_meta.dtypes,
        quarantine=None if quarantine_meta is None else quarantine_meta.dtypes,
    )
    import datetime as dt
    import socket

    from cemkit.privacy.enforce import protection_marker

    settings = protect_section(policy, key)
    settings["host"] = socket.gethostname()
    settings["time_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    settings["marker"] = protection_marker(policy, key)  # the run's `protected` marker
    settings["columns"] = {c: policy.rule_for(c).action for c in records_meta.columns}
    if quarantine_meta is not None:
        settings["quarantine_columns"] = {
            c: policy.rule_for(c, quarantine=True).action for c in quarantine_meta.columns
        }
    from cemkit.privacy.engine import Protector

    # warm protectors: the policy checked, the key resolved and each plan validated once
    return [Stage("protect", Protector(policy, key, threads=threads), settings=settings,
                  quarantine=Protector(policy, key, quarantine=True))]  # fmt: skip


def _stitch(df: pd.DataFrame, gap: str) -> pd.DataFrame:
    from cemkit.correlate import stitch

    return stitch(df, gap=gap)


def with_signaling(calls: pd.DataFrame, fields: Sequence[str] = SIGNALING_FIELDS) -> pd.DataFrame:
    """Fill a matched CDR's missing measurements (PDD, SIP status, media) from its xDR."""
    from cemkit.correlate._frames import fill_nulls

    filled = {}
    for name in fields:
        src = f"src_xdr_{name}"
        if name in calls.columns and src in calls.columns:
            filled[name] = fill_nulls(calls[name].array, calls[src].array)
    return calls.assign(**filled)


def _calls(df: pd.DataFrame, pair_tolerance: str, match_tolerance: str,
           window: str) -> pd.DataFrame:  # fmt: skip
    """Pair legs, match xDRs, fill signaling fields and label intents, in one pass.

    Equals ``sessionize(with_signaling(match(pair_legs(df))), output="records")``: filling the
    signaling fields changes no column the intents read, so it runs last, on the one frame
    (on its arrays, before the frame is built: :func:`with_signaling`'s fill).
    """
    from cemkit.correlate.calls import correlate_calls

    return correlate_calls(df, pair_tolerance, match_tolerance, window,
                           fill_from_xdr=SIGNALING_FIELDS)  # fmt: skip


#: The steps the fused parties stage runs (as the manifest lists them).
PARTIES_STEPS = ("pair_legs", "match", "signaling", "intents")


def correlate_stages(**settings: str) -> list[Stage]:
    """Stitch partials, pair legs, match xDRs to CDRs, fill signaling fields, label intents.

    Two shuffles on Dask: by call (stitch), then by parties. The four steps keyed by parties run
    as one stage (:func:`cemkit.correlate.calls.correlate_calls`: one key, one sort, the records
    gathered once); the manifest lists them as steps.
    """
    opts = {**CORRELATE_DEFAULTS, **{k: v for k, v in settings.items() if v is not None}}
    unknown = sorted(set(opts) - set(CORRELATE_DEFAULTS))
    if unknown:
        raise TypeError(
            f"unknown correlation setting(s) {unknown}; known: {sorted(CORRELATE_DEFAULTS)}"
        )
    sec = {"settings": dict(opts)}
    calls = functools.partial(_calls, pair_tolerance=opts["pair_tolerance"],
                              match_tolerance=opts["match_tolerance"],
                              window=opts["window"])  # fmt: skip
    return [
        Stage("stitch", functools.partial(_stitch, gap=opts["gap"]), BY_CALL, "correlate", sec),
        Stage("calls", calls, BY_PARTIES, "correlate", steps=PARTIES_STEPS),
    ]  # fmt: skip


def kqi_sink(model: Any, *, freqs: tuple[str, ...], top_n: int = 20, sizes: bool = True,
             intents_within_partitions: bool = False) -> Sink:  # fmt: skip
    """KQIs per node group and modeled customer, alerts, worst customers and group sizes.

    ``intents_within_partitions``: the sink reads the records a run's own correlation wrote in
    this run (one part per correlated partition, intents labelled within each), so each
    intent's first attempt is found per partition (:func:`cemkit.kqi.rollup.rollup`).
    """
    from cemkit.kqi.api import compute, merge
    from cemkit.kqi.rollup import PartitionRollup
    from cemkit.model.assign import Assigner

    assigner = Assigner(model)
    reduce = PartitionRollup(assigner, rank_customers=True, sizes=sizes)
    # what the rollup reads (cemkit.kqi.api.compute ranks customers): all a run need keep for it
    columns = reduce.columns

    def fn(records: Any) -> tuple[dict[str, pd.DataFrame], dict[str, Any], Any]:
        return outputs(compute(records, model, freqs=freqs, top_n=top_n, sizes=sizes,
                               intents_within_partitions=intents_within_partitions))  # fmt: skip

    def merged(partials: list[Any]) -> tuple[dict[str, pd.DataFrame], dict[str, Any], Any]:
        return outputs(merge(partials, assigner, freqs=freqs, top_n=top_n, sizes=sizes))

    def outputs(done: Any) -> tuple[dict[str, pd.DataFrame], dict[str, Any], Any]:
        tables = {"kqi/kqi.parquet": done.result.table,
                  "kqi/worst_customers.parquet": done.result.worst_customers,
                  "alerts.parquet": done.alerts}  # fmt: skip
        if done.group_sizes is not None:
            tables["kqi/group_sizes.parquet"] = done.group_sizes
        section = {"model": done.model_name, "buckets": list(done.result.freqs),
                   "rows": len(done.result.table), "alerts": len(done.alerts),
                   "customers": done.result.customer_count}  # fmt: skip
        return tables, section, done

    if not intents_within_partitions:  # an intent's first attempt is found across partitions
        return Sink("kqi", fn, columns)
    # a run's own records: each partition reduced by the task that writes it
    return Sink("kqi", fn, columns, reduce, merged)
