"""The canonical usage-record schema.

Every loader produces, every stage consumes, and every writer stores records in this one schema:
an Arrow schema whose fields carry their meaning and their PII class as metadata. Source-specific
columns are kept under the prefix ``src_`` (e.g. ``src_clid``, the Asterisk caller-id text); each
loader declares them with a PII class through :func:`extension_field`.

Examples
--------
>>> from cemkit import schema
>>> schema.CANONICAL.field("a_number").metadata[b"pii"]
b'tn'
>>> schema.empty_frame().shape[1] == len(schema.CANONICAL)
True
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cemkit.errors import SchemaError
from cemkit.outcomes import ALL_OUTCOMES, OUTCOMES, REGISTRATION_OUTCOMES

#: Prefix of source-specific columns kept next to the canonical ones.
EXTENSION_PREFIX = "src_"

SERVICES = ("voice", "sms", "data", "fax")
RECORD_KINDS = ("cdr", "xdr", "registration")
LEGS = ("orig", "term")
NUMBER_KINDS = ("e164", "extension", "unparsed", "empty")
RELEASED_BY = ("caller", "callee", "network")


class PII(enum.StrEnum):
    """How personal a column is; privacy policies must treat each class accordingly."""

    NONE = "none"  #: not personal (outcome, durations, counters)
    TN = "tn"  #: a telephone number: direct identifier
    DIRECT = "direct"  #: other direct identifiers: names, e-mail, IMSI/IMEI, IP addresses
    QUASI = "quasi"  #: linkable identifiers: call ids, device names, exact times
    FREE_TEXT = "free_text"  #: text that may contain anything (caller names, user fields, URIs)


@dataclass(frozen=True)
class Column:
    """A documented column: name, Arrow type, PII class and meaning."""

    name: str
    type: pa.DataType
    pii: PII
    meaning: str

    def field(self) -> pa.Field:
        """Arrow field with the PII class and the meaning as metadata."""
        return pa.field(
            self.name,
            self.type,
            nullable=True,
            metadata={"pii": self.pii.value, "meaning": self.meaning},
        )


TS = pa.timestamp("ns", tz="UTC")
STR = pa.string()

COLUMNS: tuple[Column, ...] = (
    Column(
        "record_id",
        STR,
        PII.QUASI,
        "Unique id of the record within a run: '<source>:<file tag>:<line>' or the source's id.",
    ),
    Column(
        "source",
        STR,
        PII.NONE,
        "Format the record came from (asterisk, freeswitch, cucm, sip-pcap, ...).",
    ),
    Column(
        "record_kind",
        STR,
        PII.NONE,
        "cdr (billing/switch record), xdr (signaling probe record) or registration (SIP REGISTER).",
    ),
    Column("service", STR, PII.NONE, "voice, sms, data or fax."),
    Column(
        "a_number",
        STR,
        PII.TN,
        "Calling party, E.164 ('+' and digits) when parseable, else as written.",
    ),
    Column("b_number", STR, PII.TN, "Called party, E.164 when parseable, else as written."),
    Column(
        "a_number_kind", STR, PII.NONE, "How a_number was read: e164, extension, unparsed or empty."
    ),
    Column(
        "b_number_kind", STR, PII.NONE, "How b_number was read: e164, extension, unparsed or empty."
    ),
    Column("start", TS, PII.QUASI, "Seizure / INVITE time, UTC."),
    Column("answer", TS, PII.QUASI, "Answer time, UTC; null when the call was not answered."),
    Column("end", TS, PII.QUASI, "Release time, UTC."),
    Column("duration_s", pa.float64(), PII.NONE, "Seconds from start to end."),
    Column("billsec_s", pa.float64(), PII.NONE, "Seconds from answer to end (0 when unanswered)."),
    Column(
        "outcome",
        STR,
        PII.NONE,
        "Calls: answered, no_answer, busy, failed, cancelled, rejected or congestion. "
        "Registrations (record_kind registration) have their own set: registered, "
        "registered_after_challenge, registration_failed or registration_unknown "
        "(cemkit.outcomes.REGISTRATION_OUTCOMES).",
    ),
    Column("cause_q850", pa.int16(), PII.NONE, "ITU-T Q.850 release cause value, when known."),
    Column("sip_status", pa.int16(), PII.NONE, "Final SIP response code, when known."),
    Column(
        "released_by", STR, PII.NONE, "Who ended the call: caller, callee or network, when known."
    ),
    Column(
        "call_id",
        STR,
        PII.QUASI,
        "Call reference shared by records of one call (SIP Call-ID, uniqueid, ...).",
    ),
    Column("leg", STR, PII.NONE, "orig or term: which half of a call a switch saw, when known."),
    Column(
        "partial_seq",
        pa.int32(),
        PII.NONE,
        "Sequence number of a partial record of a long call (1, 2, ...).",
    ),
    Column(
        "node",
        STR,
        PII.QUASI,
        "Network element that wrote or saw the record: switch, trunk, cell or device.",
    ),
    Column(
        "pdd_ms",
        pa.float64(),
        PII.NONE,
        "Post-dial delay: request to first ringing/progress, milliseconds.",
    ),
    Column(
        "mos",
        pa.float64(),
        PII.NONE,
        "Mean opinion score (1-5) when the source measured or allows one.",
    ),
    Column("loss_ratio", pa.float64(), PII.NONE, "Media packet loss ratio (0-1), when measured."),
    Column(
        "jitter_ms",
        pa.float64(),
        PII.NONE,
        "Media interarrival jitter, milliseconds, when measured.",
    ),
)

#: Mobile-network columns (3GPP TS 32.298 charging records): the served subscriber's
#: identities, where the UE was, the radio access and the data session's volumes.
MOBILE_COLUMNS: tuple[Column, ...] = (
    Column("imsi", STR, PII.DIRECT, "Served IMSI (MCC, MNC, MSIN digits) of a mobile record."),
    Column("imei", STR, PII.DIRECT, "Served IMEI (15 digits) or IMEISV (16 digits)."),
    Column("msisdn", STR, PII.TN,
           "Served MSISDN (the subscriber the record is about), E.164 when parseable."),
    Column("pdp_address", STR, PII.DIRECT, "PDP/PDN (IP) address given to the served UE."),
    Column("location_area", STR, PII.QUASI,
           "Location or tracking area of the UE: 'MCC-MNC-LAC' / 'MCC-MNC-TAC' (the area "
           "alone when no PLMN was recorded)."),
    Column("cell", STR, PII.QUASI,
           "Serving cell: 'MCC-MNC-area-cell' (cell = CI of a CGI or ECI of an ECGI)."),
    Column("rat", STR, PII.NONE, "Radio access: geran, utran, eutran, nr, wlan, gan, virtual."),
    Column("volume_up_bytes", pa.int64(), PII.NONE, "Uplink octets of a data session (record)."),
    Column("volume_down_bytes", pa.int64(), PII.NONE, "Downlink octets of a data session."),
    Column("closing_cause", pa.int16(), PII.NONE,
           "3GPP causeForTerm / causeForRecClosing as recorded (0 normal release, 1 partial "
           "record, 3 unsuccessful call attempt, 4 abnormal release, ...)."),
)  # fmt: skip
RATS = ("geran", "utran", "eutran", "nr", "wlan", "gan", "virtual")
COLUMNS = (*COLUMNS, *MOBILE_COLUMNS)

#: Columns by name.
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}

#: The canonical Arrow schema (without extension columns).
CANONICAL: pa.Schema = pa.schema([c.field() for c in COLUMNS])

#: Allowed values of the categorical string columns.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "record_kind": RECORD_KINDS,
    "service": SERVICES,
    "outcome": ALL_OUTCOMES,
    "leg": LEGS,
    "a_number_kind": NUMBER_KINDS,
    "b_number_kind": NUMBER_KINDS,
    "released_by": RELEASED_BY,
    "rat": RATS,
}

#: Columns every record must have a value in.
REQUIRED: tuple[str, ...] = ("record_id", "source", "record_kind", "service", "start", "outcome")


def extension_field(name: str, type: pa.DataType, pii: PII, meaning: str) -> Column:
    """Declare a source-specific column (its name must start with ``src_``)."""
    if not name.startswith(EXTENSION_PREFIX):
        raise SchemaError(
            f"source-specific column {name!r} must start with {EXTENSION_PREFIX!r}",
            hint=f"rename it to {EXTENSION_PREFIX + name!r}",
        )
    return Column(name, type, pii, meaning)


def arrow_schema(extensions: Iterable[Column] = ()) -> pa.Schema:
    """Canonical schema followed by the given extension columns."""
    return pa.schema([*CANONICAL, *(c.field() for c in extensions)])


def pandas_dtype(t: pa.DataType) -> object:
    """The pandas dtype cemkit uses for an Arrow type (nullable, Arrow-backed strings)."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pd.StringDtype("pyarrow")
    if pa.types.is_timestamp(t):
        return pd.DatetimeTZDtype(unit="ns", tz="UTC")
    if pa.types.is_integer(t):
        return {8: "Int8", 16: "Int16", 32: "Int32", 64: "Int64"}[t.bit_width]
    if pa.types.is_floating(t):
        return np.dtype("float64")
    if pa.types.is_boolean(t):
        return "boolean"
    raise SchemaError(f"no pandas dtype is defined for Arrow type {t}")


def pandas_dtypes(schema: pa.Schema = CANONICAL) -> dict[str, object]:
    """Column name → pandas dtype for a schema."""
    return {f.name: pandas_dtype(f.type) for f in schema}


_CANONICAL_DTYPES = pandas_dtypes()


def empty_frame(extensions: Iterable[Column] = ()) -> pd.DataFrame:
    """An empty pandas frame with the canonical dtypes (the ``meta`` of Dask graphs)."""
    dtypes = pandas_dtypes(arrow_schema(extensions))
    return pd.DataFrame({n: pd.Series([], dtype=d) for n, d in dtypes.items()})


def conform(df: pd.DataFrame, extensions: Iterable[Column] = (),
            narrow: Iterable[str] = ()) -> pd.DataFrame:  # fmt: skip
    """Return ``df`` with every canonical column present, in order, with canonical dtypes.

    Missing canonical columns are added as nulls; extension columns are kept after them. Values
    are cast, not checked: call :func:`validate` to check them. ``narrow``: label columns kept
    as they are when categorical (read narrow: :func:`cemkit.labels.narrow`), not made strings.
    """
    ext = list(extensions)
    dtypes = pandas_dtypes(arrow_schema(ext))
    ext_names = [c for c in df.columns if c.startswith(EXTENSION_PREFIX) and c not in dtypes]
    keep = set(narrow)
    if _conformed_as_is(df, dtypes, ext_names, keep):
        # already what the loop below builds: rebuilding the frame would only copy its numeric
        # columns into new blocks (~0.2 CPU-s per 1M Parquet records read); a new frame over
        # the same arrays all the same (copy-on-write: a caller's changes never reach ``df``)
        return df.copy(deep=False)
    out = {}
    n = len(df)
    for name, dtype in dtypes.items():
        if name in df.columns:
            col = df[name]
            out[name] = col if _kept_as_is(name, col.dtype, dtype, keep) else col.astype(dtype)
        else:
            out[name] = pd.Series(pd.array([None] * n, dtype=dtype), index=df.index)
    for name in ext_names:
        out[name] = df[name]
    return pd.DataFrame(out, index=df.index)


def _conformed_as_is(df: pd.DataFrame, dtypes: dict[str, Any], ext_names: list[str],
                     keep: set[str]) -> bool:  # fmt: skip
    """Whether :func:`conform` would give ``df``'s own columns back, in order, as they are."""
    if not df.columns.is_unique or list(df.columns) != [*dtypes, *ext_names]:
        return False
    return all(_kept_as_is(name, dtype, dtypes[name], keep)
               for name, dtype in df.dtypes.items() if name in dtypes)  # fmt: skip


def _kept_as_is(name: str, dtype: Any, canonical: Any, keep: set[str]) -> bool:
    """Whether :func:`conform` keeps a column of ``dtype`` as it is (``keep``: narrow labels)."""
    return bool(dtype == canonical) or (name in keep and isinstance(dtype, pd.CategoricalDtype))


def conformed(df: pd.DataFrame) -> bool:
    """Whether every canonical column of ``df`` already has its canonical dtype.

    A cheap check (dtypes only, no values) that tells whether :func:`conform` may be skipped.
    """
    dtypes = _CANONICAL_DTYPES
    return all(dtypes.get(name, dtype) == dtype for name, dtype in df.dtypes.items())


def validate(
    df: pd.DataFrame, extensions: Iterable[Column] = (), *, raise_: bool = True
) -> list[str]:
    """Check a frame against the canonical schema and say exactly what is wrong.

    Checks: every canonical column present with its dtype; no unknown column outside the
    ``src_`` prefix; required columns non-null; categorical columns within their values;
    durations non-negative; ``end`` not before ``start``. Messages name the column, the number of
    offending rows and the first offending row index, never the offending values of PII columns.

    Parameters
    ----------
    df : pandas.DataFrame
        Records to check.
    extensions : iterable of Column
        Declared source-specific columns.
    raise_ : bool
        Raise :class:`~cemkit.errors.SchemaError` listing every problem (default) or return them.

    Returns
    -------
    list of str
        The problems found (empty when the frame is valid).

    Examples
    --------
    >>> from cemkit import schema
    >>> schema.validate(schema.empty_frame())
    []
    """
    problems: list[str] = []
    ext = list(extensions)
    expected = pandas_dtypes(arrow_schema(ext))
    for name, dtype in expected.items():
        if name not in df.columns:
            if not name.startswith(EXTENSION_PREFIX):
                problems.append(f"column {name!r} is missing (expected dtype {dtype})")
            continue
        if df[name].dtype != dtype:
            problems.append(f"column {name!r} has dtype {df[name].dtype}, expected {dtype}")
    for name in df.columns:
        if name not in expected and not str(name).startswith(EXTENSION_PREFIX):
            problems.append(
                f"column {name!r} is not in the canonical schema; "
                f"rename it with the {EXTENSION_PREFIX!r} prefix or drop it"
            )
    for name in REQUIRED:
        if name in df.columns:
            _report_rows(problems, df, df[name].isna(), f"column {name!r} is null")
    for name, allowed in CATEGORIES.items():
        if name in df.columns:
            col = df[name]
            bad = col.notna() & ~col.isin(allowed)
            if bad.any():
                seen = sorted(set(col[bad].astype(str).unique()[:5]))
                _report_rows(
                    problems, df, bad, f"column {name!r} has values {seen} outside {list(allowed)}"
                )
    if {"record_kind", "outcome"} <= set(df.columns):
        # a registration is no call: each record kind takes its own outcome set
        is_reg = df["record_kind"] == "registration"
        wrong = df["outcome"].notna() & (
            (is_reg & ~df["outcome"].isin(REGISTRATION_OUTCOMES))
            | (~is_reg & df["record_kind"].notna() & ~df["outcome"].isin(OUTCOMES))
        )
        what = (
            "column 'outcome' has a value of the other record kind (registrations take "
            "cemkit.outcomes.REGISTRATION_OUTCOMES, calls cemkit.outcomes.OUTCOMES)"
        )
        _report_rows(problems, df, wrong, what)
    for name in ("duration_s", "billsec_s", "pdd_ms"):
        if name in df.columns and pd.api.types.is_numeric_dtype(df[name].dtype):
            _report_rows(problems, df, df[name] < 0, f"column {name!r} is negative")
    if {"start", "end"} <= set(df.columns) and _both_datetimes(df, "start", "end"):
        _report_rows(problems, df, df["end"] < df["start"], "column 'end' is before 'start'")
    if problems and raise_:
        raise SchemaError(
            "records do not match the canonical schema:\n  - " + "\n  - ".join(problems),
            hint="see cemkit.schema.COLUMNS for each column's type and meaning",
        )
    return problems


def _both_datetimes(df: pd.DataFrame, a: str, b: str) -> bool:
    return all(isinstance(df[c].dtype, pd.DatetimeTZDtype) for c in (a, b))


def _report_rows(problems: list[str], df: pd.DataFrame, mask: pd.Series, what: str) -> None:
    mask = mask.fillna(False).astype(bool)
    count = int(mask.sum())
    if count:
        first = df.index[np.argmax(mask.to_numpy())]
        problems.append(f"{what} in {count} row(s), first at index {first!r}")


def pii_columns(schema: pa.Schema, classes: Iterable[PII] = (PII.TN,)) -> list[str]:
    """Names of the columns of a schema whose PII class is among ``classes``."""
    wanted = {c.value for c in classes}
    return [f.name for f in schema if (f.metadata or {}).get(b"pii", b"").decode() in wanted]


def describe(extensions: Mapping[str, Column] | None = None) -> pd.DataFrame:
    """The schema as a table (name, type, PII class, meaning) for docs and notebooks."""
    cols = list(COLUMNS) + list((extensions or {}).values())
    return pd.DataFrame(
        {
            "column": [c.name for c in cols],
            "type": [str(c.type) for c in cols],
            "pii": [c.pii.value for c in cols],
            "meaning": [c.meaning for c in cols],
        }
    )
