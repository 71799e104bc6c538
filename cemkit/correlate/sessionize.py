"""Group a customer's repeated attempts to one destination into one intent."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cemkit.correlate import _frames, _kernels

#: Columns of the intents table :func:`sessionize` returns, with their meaning.
INTENT_COLUMNS: dict[str, str] = {
    "intent_id": "record_id of the intent's first attempt.",
    "service": "Service of the attempts.",
    "a_number": "The customer (calling party), as in the records (pseudonymized).",
    "b_number": "The destination, as in the records (pseudonymized).",
    "start": "Start of the first attempt.",
    "end": "End of the last attempt (its start when the end is null).",
    "attempts": "Number of attempts in the intent (1 = no retry).",
    "final_outcome": "Outcome of the last attempt.",
    "answered": "Whether any attempt of the intent was answered.",
    "first_record_id": "record_id of the first attempt.",
    "last_record_id": "record_id of the last attempt.",
}

#: Columns ``sessionize(..., output="records")`` adds to the records (``src_`` prefix).
RECORD_INTENT_COLUMNS: dict[str, str] = {
    "src_intent_id": "intent_id of the record's intent (record_id of its first attempt).",
    "src_attempt": "Attempt number of the record within its intent (1 = first attempt).",
}

KEY = ("service", "a_number", "b_number")


def session_labels(
    records: pd.DataFrame, window: Any = "120s", close_on_answer: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(position of the intent's first attempt, attempt rank) per row; see :func:`sessionize`."""
    _frames.require(records, [*KEY, "start", "end", "outcome"], "sessionize")
    kind = _frames.time_kind(records["start"])
    win = _frames.delta_ns(window, kind, "window")
    start = _frames.time_ns(records["start"])
    key, order = _frames.key_order([records[c] for c in KEY], start)
    answered = _frames.as_bool(records["outcome"] == "answered")
    return _kernels.session_groups_sorted(
        order, key, start, _frames.time_ns(records["end"]), answered, win, bool(close_on_answer)
    )


def _empty_intents(records: pd.DataFrame) -> pd.DataFrame:
    str_dtype = pd.StringDtype("pyarrow")
    cols = {
        "intent_id": records["record_id"].dtype if "record_id" in records else str_dtype,
        "service": records["service"].dtype,
        "a_number": records["a_number"].dtype,
        "b_number": records["b_number"].dtype,
        "start": records["start"].dtype,
        "end": records["start"].dtype,
        "attempts": np.dtype("int64"),
        "final_outcome": records["outcome"].dtype,
        "answered": np.dtype("bool"),
        "first_record_id": records["record_id"].dtype if "record_id" in records else str_dtype,
        "last_record_id": records["record_id"].dtype if "record_id" in records else str_dtype,
    }
    return pd.DataFrame({c: pd.Series([], dtype=d) for c, d in cols.items()})


def _sessionize_pandas(records: pd.DataFrame, window: Any, close_on_answer: bool) -> pd.DataFrame:
    _frames.require(records, ["record_id"], "sessionize")
    label, rank = session_labels(records, window, close_on_answer)
    n = len(records)
    if n == 0:
        return _empty_intents(records)
    heads = np.flatnonzero(label == np.arange(n))
    group_of_head = np.full(n, -1, np.int64)
    group_of_head[heads] = np.arange(heads.size)
    group = group_of_head[label]
    ngroups = heads.size
    attempts = np.bincount(group, minlength=ngroups)
    last = np.empty(ngroups, np.int64)
    last[group[rank == attempts[group] - 1]] = np.flatnonzero(rank == attempts[group] - 1)
    answered = _frames.as_bool(records["outcome"] == "answered")
    any_answered = np.bincount(group, weights=answered, minlength=ngroups) > 0
    first = records.iloc[heads]
    lastrec = records.iloc[last]
    end = lastrec["end"].where(lastrec["end"].notna(), lastrec["start"])
    out = pd.DataFrame(
        {
            "intent_id": first["record_id"].to_numpy(),
            "service": first["service"].array,
            "a_number": first["a_number"].array,
            "b_number": first["b_number"].array,
            "start": first["start"].array,
            "end": end.array,
            "attempts": attempts.astype(np.int64),
            "final_outcome": lastrec["outcome"].array,
            "answered": any_answered,
            "first_record_id": first["record_id"].array,
            "last_record_id": lastrec["record_id"].array,
        }
    )
    out["intent_id"] = out["intent_id"].astype(first["record_id"].dtype)
    return out


def sessionize(
    records: Any,
    window: Any = "120s",
    close_on_answer: bool = True,
    npartitions: int | None = None,
    output: str = "intents",
) -> Any:
    """Group each customer's repeated attempts to one destination into intents.

    Attempts with the same ``service``, ``a_number`` (the customer) and ``b_number`` (the
    destination) are ordered by ``start`` (ties: row order). An attempt belongs to the intent of
    the previous one when it starts at most ``window`` after the previous attempt's ``end``
    (its ``start`` when the end is null) and, with ``close_on_answer``, the previous attempt was
    not answered: an answered call fulfils the intent, a new call after it is a new intent.
    Retries signal bad experience.

    Parameters
    ----------
    records : pandas.DataFrame or dask.dataframe.DataFrame
        One record per attempt (e.g. the output of :func:`match`), with ``record_id``,
        ``service``, ``a_number``, ``b_number``, ``start``, ``end`` and ``outcome``.
    window : pandas.Timedelta, str or number of seconds
        Largest pause between one attempt and the next of the same intent (inclusive).
    close_on_answer : bool
        Whether an answered attempt ends its intent.
    npartitions : int, optional
        Dask only: partitions after the shuffle by parties (default: the input's).
    output : {"intents", "records"}
        ``"intents"``: the intents table; ``"records"``: the records themselves, in input order
        (for Dask: within each output partition), with :data:`RECORD_INTENT_COLUMNS` added
        (``src_intent_id``, ``src_attempt``), e.g. for per-record indicators.

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        With ``output="intents"``: one row per intent, columns :data:`INTENT_COLUMNS`, in the
        input order of the first attempts (for Dask: within each output partition).

    Examples
    --------
    >>> import pandas as pd
    >>> from cemkit import schema
    >>> from cemkit.correlate import sessionize
    >>> t = pd.Timestamp("2026-01-01", tz="UTC")
    >>> recs = schema.conform(pd.DataFrame({
    ...     "record_id": ["r1", "r2", "r3"], "source": "x", "record_kind": "cdr",
    ...     "service": "voice", "a_number": "p1", "b_number": "p2",
    ...     "outcome": ["busy", "answered", "answered"],
    ...     "start": [t, t + pd.Timedelta("20s"), t + pd.Timedelta("2h")]}))
    >>> print(sessionize(recs)[["intent_id", "attempts", "final_outcome"]].to_string(index=False))
    intent_id  attempts final_outcome
           r1         2      answered
           r3         1      answered
    """
    if output not in ("intents", "records"):
        raise ValueError(f"output must be 'intents' or 'records', got {output!r}")
    if _frames.is_dask(records):
        n = npartitions or records.npartitions
        shuffled = _frames.tag_and_shuffle(records, _frames.parties_key, n)
        meta = _session_partition(shuffled._meta, window, close_on_answer, output)
        return shuffled.map_partitions(
            _session_partition, window, close_on_answer, output, meta=meta,
            enforce_metadata=False,
        )  # fmt: skip
    if output == "records":
        return _label_records(records, window, close_on_answer)
    return _sessionize_pandas(records, window, close_on_answer)


def _label_records(records: pd.DataFrame, window: Any, close_on_answer: bool) -> pd.DataFrame:
    _frames.require(records, ["record_id"], "sessionize")
    label, rank = session_labels(records, window, close_on_answer)
    out = records.copy(deep=False)
    out["src_intent_id"] = records["record_id"].iloc[label].to_numpy()
    out["src_intent_id"] = out["src_intent_id"].astype(records["record_id"].dtype)
    out["src_attempt"] = pd.array(rank + 1, dtype="Int32")
    return out


def _session_partition(
    df: pd.DataFrame, window: Any, close_on_answer: bool, output: str
) -> pd.DataFrame:
    df = _frames.restore_order(df)
    if output == "records":
        return _label_records(df, window, close_on_answer)
    return _sessionize_pandas(df, window, close_on_answer)
