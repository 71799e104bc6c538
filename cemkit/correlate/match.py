"""Match signaling xDRs to the CDRs of the same calls, and find the attempts billing never saw."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cemkit.correlate import _frames, _kernels

#: Columns of the xDR copied onto its matched CDR, each under the prefix ``src_xdr_``.
XDR_FIELDS: tuple[str, ...] = (
    "record_id", "source", "node", "call_id", "start", "answer", "end", "outcome", "cause_q850",
    "sip_status", "released_by", "pdd_ms", "mos", "loss_ratio", "jitter_ms",
)  # fmt: skip

#: Values of the ``src_match`` column.
MATCHED, CDR_ONLY, XDR_ONLY = "matched", "cdr_only", "xdr_only"

#: Columns :func:`match` adds (names under the ``src_`` prefix of the schema).
MATCH_COLUMNS: dict[str, str] = {
    **{f"src_xdr_{c}": f"{c} of the signaling xDR matched with this CDR." for c in XDR_FIELDS},
    "src_match": (
        f"{MATCHED!r}: a CDR with its xDR; {CDR_ONLY!r}: a CDR no xDR matched; {XDR_ONLY!r}: an "
        "xDR no CDR matched (an attempt billing never saw); null for other record kinds."
    ),
}

KEY = ("service", "a_number", "b_number")


def match_positions(records: pd.DataFrame, tolerance: Any = "5s") -> np.ndarray:
    """Position of each row's matched xDR/CDR, or -1 (pandas records; see :func:`match`)."""
    _frames.require(records, [*KEY, "record_kind", "start"], "match")
    kind = _frames.time_kind(records["start"])
    tol = _frames.delta_ns(tolerance, kind, "tolerance")
    start = _frames.time_ns(records["start"])
    key, order = _frames.key_order([records[c] for c in KEY], start)
    side = np.full(len(records), 2, np.int8)
    side[_frames.as_bool(records["record_kind"] == "xdr")] = 0
    side[_frames.as_bool(records["record_kind"] == "cdr")] = 1
    return _kernels.nearest_pairs_sorted(order, key, start, side, tol)


def _match_pandas(records: pd.DataFrame, tolerance: Any) -> pd.DataFrame:
    partner = match_positions(records, tolerance)
    is_cdr = _frames.as_bool(records["record_kind"] == "cdr")
    is_xdr = _frames.as_bool(records["record_kind"] == "xdr")
    out = _frames.absorb(records, partner, is_cdr, "src_xdr_", XDR_FIELDS)
    kept = ~((partner >= 0) & is_xdr)
    status = np.full(len(records), None, dtype=object)
    status[is_cdr] = CDR_ONLY
    status[is_cdr & (partner >= 0)] = MATCHED
    status[is_xdr] = XDR_ONLY
    out["src_match"] = pd.array(status[kept], dtype="string[pyarrow]")
    return out


def match(records: Any, tolerance: Any = "5s", npartitions: int | None = None) -> Any:
    """Match signaling xDRs one-to-one with the CDRs of the same calls.

    An xDR (``record_kind == "xdr"``) and a CDR (``record_kind == "cdr"``) are candidates when
    they have the same ``service``, ``a_number`` and ``b_number`` and their starts differ by at
    most ``tolerance``. Candidate pairs are taken nearest first (ties: earlier xDR row, then
    earlier CDR row), each record at most once.

    Each matched CDR gets its xDR's fields under the prefix ``src_xdr_`` (:data:`XDR_FIELDS`) and
    the xDR row is dropped; xDRs with no CDR stay, flagged ``src_match == "xdr_only"`` (the failed
    attempts billing never saw); CDRs with no xDR are flagged ``"cdr_only"``; other records
    (e.g. registrations) pass through with a null ``src_match``. Run it on calls (after
    :func:`stitch` and :func:`pair_legs`) so each call has one CDR. Added columns: see
    :data:`MATCH_COLUMNS`.

    Parameters
    ----------
    records : pandas.DataFrame or dask.dataframe.DataFrame
        Canonical records holding both CDRs and xDRs.
    tolerance : pandas.Timedelta, str or number of seconds
        Largest difference between the starts of an xDR and its CDR (inclusive).
    npartitions : int, optional
        Dask only: partitions after the shuffle by parties (default: the input's).

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        Records in input order, minus the matched xDRs.

    Examples
    --------
    >>> import pandas as pd
    >>> from cemkit import schema
    >>> from cemkit.correlate import match
    >>> t = pd.Timestamp("2026-01-01", tz="UTC")
    >>> recs = schema.conform(pd.DataFrame({
    ...     "record_id": ["c1", "x1", "x2"], "source": "x", "service": "voice",
    ...     "record_kind": ["cdr", "xdr", "xdr"], "a_number": "p1", "b_number": "p2",
    ...     "outcome": "answered", "start": [t, t + pd.Timedelta("1s"), t + pd.Timedelta("1h")]}))
    >>> out = match(recs)
    >>> print(out[["record_id", "src_xdr_record_id", "src_match"]].to_string(index=False))
    record_id src_xdr_record_id src_match
           c1                x1   matched
           x2              <NA>  xdr_only
    """
    if _frames.is_dask(records):
        n = npartitions or records.npartitions
        shuffled = _frames.tag_and_shuffle(records, _frames.parties_key, n)
        meta = _match_partition(shuffled._meta, tolerance)
        return shuffled.map_partitions(
            _match_partition, tolerance, meta=meta, enforce_metadata=False
        )
    return _match_pandas(records, tolerance)


def _match_partition(df: pd.DataFrame, tolerance: Any) -> pd.DataFrame:
    return _match_pandas(_frames.restore_order(df), tolerance)
