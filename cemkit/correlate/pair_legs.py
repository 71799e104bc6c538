"""Pair the originating and terminating legs of one call seen at two switches."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cemkit.correlate import _frames, _kernels

#: Columns of the terminating leg copied onto the paired call, each under the prefix ``src_term_``.
TERM_FIELDS: tuple[str, ...] = (
    "record_id", "node", "start", "answer", "end", "duration_s", "billsec_s", "outcome",
    "cause_q850", "sip_status", "released_by", "call_id", "partial_seq", "pdd_ms", "mos",
    "loss_ratio", "jitter_ms",
)  # fmt: skip

#: Columns :func:`pair_legs` adds (names under the ``src_`` prefix of the schema).
PAIR_COLUMNS: dict[str, str] = {
    **{f"src_term_{c}": f"{c} of the terminating leg paired with this originating leg."
       for c in TERM_FIELDS},
    "src_paired": "True when the record is an originating leg paired with its terminating leg.",
}  # fmt: skip

KEY = ("service", "a_number", "b_number")


def pair_positions(records: pd.DataFrame, tolerance: Any = "5s") -> np.ndarray:
    """Position of each row's paired leg, or -1 (pandas records; see :func:`pair_legs`)."""
    _frames.require(records, [*KEY, "leg", "record_kind", "start"], "pair_legs")
    kind = _frames.time_kind(records["start"])
    tol = _frames.delta_ns(tolerance, kind, "tolerance")
    start = _frames.time_ns(records["start"])
    key, order = _frames.key_order([records[c] for c in KEY], start)
    is_cdr = _frames.as_bool(records["record_kind"] == "cdr")
    side = np.full(len(records), 2, np.int8)
    side[is_cdr & _frames.as_bool(records["leg"] == "orig")] = 0
    side[is_cdr & _frames.as_bool(records["leg"] == "term")] = 1
    return _kernels.nearest_pairs_sorted(order, key, start, side, tol)


def _pair_pandas(records: pd.DataFrame, tolerance: Any) -> pd.DataFrame:
    partner = pair_positions(records, tolerance)
    keeper = _frames.as_bool(records["leg"] == "orig")
    out = _frames.absorb(records, partner, keeper, "src_term_", TERM_FIELDS)
    paired = (partner >= 0) & keeper
    kept = ~((partner >= 0) & ~keeper)
    out["src_paired"] = pd.array(paired[kept], dtype="boolean")
    return out


def pair_legs(records: Any, tolerance: Any = "5s", npartitions: int | None = None) -> Any:
    """Pair originating and terminating CDRs of the same call into one call.

    Candidates are CDRs (``record_kind == "cdr"``) with ``leg`` ``orig`` and ``term`` with the
    same ``service``, ``a_number`` and ``b_number`` (pseudonymized parties compare as well as raw
    ones) whose starts differ by at most ``tolerance``. The assignment is one-to-one and nearest
    first: candidate pairs are taken in order of time difference (ties: earlier originating row,
    then earlier terminating row), skipping rows already paired. When calls between two parties
    are further apart than their legs, which is the normal case, this finds every pair; it never
    pairs a leg twice.

    The paired call is the originating record with the terminating leg's fields added under the
    prefix ``src_term_`` (:data:`TERM_FIELDS`); the terminating record itself is dropped. Legs
    without a partner and records without a leg pass through unchanged. Added columns (see
    :data:`PAIR_COLUMNS`): ``src_term_<field>`` with the field's dtype, and ``src_paired``
    (boolean).

    Parameters
    ----------
    records : pandas.DataFrame or dask.dataframe.DataFrame
        Canonical records (stitch partial records first).
    tolerance : pandas.Timedelta, str or number of seconds
        Largest difference between the two legs' starts (inclusive).
    npartitions : int, optional
        Dask only: partitions after the shuffle by parties (default: the input's).

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        Records in input order, minus the terminating legs that were paired.

    Examples
    --------
    >>> import pandas as pd
    >>> from cemkit import schema
    >>> from cemkit.correlate import pair_legs
    >>> t = pd.Timestamp("2026-01-01", tz="UTC")
    >>> recs = schema.conform(pd.DataFrame({
    ...     "record_id": ["o", "t"], "source": "x", "record_kind": "cdr", "service": "voice",
    ...     "a_number": "p1", "b_number": "p2", "leg": ["orig", "term"], "outcome": "answered",
    ...     "node": ["sw1", "sw2"], "start": [t, t + pd.Timedelta("1s")]}))
    >>> out = pair_legs(recs)
    >>> cols = ["record_id", "node", "src_term_record_id", "src_term_node"]
    >>> print(out[cols].to_string(index=False))
    record_id node src_term_record_id src_term_node
            o  sw1                  t           sw2
    """
    if _frames.is_dask(records):
        n = npartitions or records.npartitions
        shuffled = _frames.tag_and_shuffle(records, _frames.parties_key, n)
        meta = _pair_partition(shuffled._meta, tolerance)
        return shuffled.map_partitions(
            _pair_partition, tolerance, meta=meta, enforce_metadata=False
        )
    return _pair_pandas(records, tolerance)


def _pair_partition(df: pd.DataFrame, tolerance: Any) -> pd.DataFrame:
    return _pair_pandas(_frames.restore_order(df), tolerance)
