"""A :class:`~cemkit.io.threegpp.decode.FieldTable` → canonical records and quarantine.

* MSC ``moCallRecord`` / ``mtCallRecord``: voice CDRs. MO: ``a_number`` = servedMSISDN (else
  callingNumber), ``b_number`` = calledNumber, leg ``orig``; MT: ``a_number`` = callingNumber,
  ``b_number`` = servedMSISDN, leg ``term``. ``start`` = seizureTime (else answerTime),
  ``answer`` = answerTime, ``end`` = releaseTime (else answer + callDuration),
  ``billsec_s`` = callDuration of answered calls; outcome by
  :func:`cemkit.outcomes.outcome_from_3gpp` from causeForTerm and a Q.850 cause in the
  diagnostics (gsm0408Cause or itu-tQ767Cause), which is also ``cause_q850``.
* ``moSMSRecord`` / ``mtSMSRecord``: service ``sms``, ``start`` = ``end`` = origination /
  delivery time; ``answered`` when the record has no smsResult, else ``failed``; leg ``orig``
  (sent) or ``term`` (delivered).
* SGSN PDP / SGW / PGW records: service ``data``; ``start`` = recordOpeningTime, ``end`` = start
  + duration, ``answer`` = start (the bearer exists), ``billsec_s`` = ``duration_s`` = duration;
  ``call_id`` = chargingID and ``partial_seq`` = recordSequenceNumber, so that
  :func:`cemkit.correlate.stitch` joins the partial records of one session; volumes from
  listOfTrafficVolumes (else listOfServiceData), summed.

``node`` is the recordingEntity (MSC number) or the SGSN / SGW / PGW address; ``closing_cause``
causeForTerm / causeForRecClosing; times are converted from local time + UTC offset to UTC.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cemkit import outcomes
from cemkit.io.base import empty_quarantine
from cemkit.io.threegpp import _kernels as K
from cemkit.io.threegpp.decode import FieldTable
from cemkit.io.threegpp.spec import (
    CAUSE_FOR_REC_CLOSING,
    CAUSE_FOR_TERM,
    DATA_KINDS,
    DIAGNOSTICS,
    KINDS,
    MO_CALL,
    MO_SMS,
    MT_CALL,
    MT_SMS,
    RAT_TYPES,
    SMS_KINDS,
    SYSTEM_TYPES,
    TON_INTERNATIONAL,
    VOICE_KINDS,
)
from cemkit.numbers import normalize_arrow
from cemkit.schema import PII, Column, conform, extension_field

SOURCE = "3gpp-cdr"

#: Source-specific columns of 3gpp-cdr records.
EXTENSIONS: tuple[Column, ...] = (
    extension_field("src_3gpp_record_type", pa.string(), PII.NONE,
                    "TS 32.298 record type (moCallRecord, pGWRecord, ...)."),
    extension_field("src_3gpp_offset", pa.int64(), PII.NONE,
                    "Byte offset of the record in its file."),
    extension_field("src_3gpp_cause", pa.string(), PII.NONE,
                    "Name of causeForTerm / causeForRecClosing (normalRelease, ...)."),
    extension_field("src_3gpp_diagnostics", pa.string(), PII.NONE,
                    "Diagnostics (smsResult) alternative and value, e.g. gsm0408Cause:17."),
    extension_field("src_3gpp_unknown_tags", pa.string(), PII.NONE,
                    "Context tags not in TS 32.298 (vendor extensions), skipped; values not kept."),
    extension_field("src_3gpp_vendor_fields", pa.string(), PII.FREE_TEXT,
                    "Components only the operator's ASN.1 module defines (schema=), as JSON."),
)  # fmt: skip

_I = np.int64


def _numbers(digits: pa.Array, ton: np.ndarray, region: str | None) -> tuple[pa.Array, pa.Array]:
    intl = pa.array(ton == TON_INTERNATIONAL)
    raw = pc.if_else(intl, pc.binary_join_element_wise("+", digits, ""), digits)
    return normalize_arrow(raw, region)


def _pick(mask: np.ndarray, a: pa.Array, b: pa.Array) -> pa.Array:
    return pc.if_else(pa.array(mask), a, b)


def _opt_int(values: np.ndarray, dtype: str) -> pd.api.extensions.ExtensionArray:
    """Nullable integers: negative values (absent) become nulls."""
    return pd.array(np.where(values >= 0, values, 0), dtype=dtype).copy() if not (
        values < 0).any() else _with_nulls(values, dtype)  # fmt: skip


def _with_nulls(values: np.ndarray, dtype: str) -> pd.api.extensions.ExtensionArray:
    arr = pd.array(np.where(values >= 0, values, 0), dtype=dtype)
    arr[values < 0] = pd.NA
    return arr


def _ts(ns: np.ndarray) -> pd.Series:
    return pd.Series(ns.view("datetime64[ns]")).dt.tz_localize("UTC")


def to_frames(
    table: FieldTable, path: str, region: str | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical records of the decoded records, quarantine rows of the others."""
    fr = table.frames
    errors = np.array([bool(e) for e in table.errors], dtype=bool)
    kind = table.kind.astype(np.int64)
    ints = table.ints
    t = table.times
    start = np.where(t["start_ns"] != K.NULL_TIME, t["start_ns"], t["answer_ns"])
    no_start = (start == K.NULL_TIME) & ~errors
    err_text = list(table.errors)
    err_field = list(table.error_fields)
    for r in np.flatnonzero(no_start):
        err_text[r] = "record has no seizure, answer, origination, delivery or opening time"
        err_field[r] = "startTime"
    bad = errors | no_start
    keep = np.flatnonzero(~bad)
    q = _quarantine(table, np.flatnonzero(bad), err_text, err_field, path)
    if keep.size == 0:
        return conform(pd.DataFrame(), EXTENSIONS).iloc[0:0], q
    take = pa.array(keep)

    def s(name: str) -> pa.Array:
        return table.strings[name].take(take)

    def iv(name: str) -> np.ndarray:
        return ints[name][keep]

    k = kind[keep]
    n = keep.size
    voice = np.isin(k, VOICE_KINDS)
    sms = np.isin(k, SMS_KINDS)
    data = np.isin(k, DATA_KINDS)
    mo = (k == MO_CALL) | (k == MO_SMS)
    mt = (k == MT_CALL) | (k == MT_SMS)
    st = start[keep]
    ans = t["answer_ns"][keep]
    rel = t["release_ns"][keep]
    dur = iv("duration")
    dur_ns = np.where(dur >= 0, dur, 0) * 1_000_000_000
    answered_voice = voice & (ans != K.NULL_TIME)
    end = np.where(
        rel != K.NULL_TIME,
        rel,
        np.where(ans != K.NULL_TIME, ans + dur_ns, st + np.where(voice, 0, dur_ns)),
    )
    end = np.where(sms, st, end)
    end = np.maximum(end, st)
    answer = np.where(data, st, ans)

    msisdn, msisdn_kind = _numbers(s("msisdn"), iv("msisdn_ton"), region)
    calling, calling_kind = _numbers(s("calling"), iv("calling_ton"), region)
    called, called_kind = _numbers(s("called"), iv("called_ton"), region)
    has_msisdn = pc.is_valid(s("msisdn")).to_numpy(zero_copy_only=False)
    a_mo = _pick(has_msisdn, msisdn, calling)
    a_mo_kind = _pick(has_msisdn, msisdn_kind, calling_kind)
    a = _pick(mo, a_mo, _pick(mt, calling, msisdn))
    a_kind = _pick(mo, a_mo_kind, _pick(mt, calling_kind, msisdn_kind))
    b = _pick(mo, called, _pick(mt, msisdn, pa.nulls(n, pa.string())))
    b_kind = _pick(mo, called_kind, _pick(mt, msisdn_kind, pa.nulls(n, pa.string())))

    diag_kind = iv("diag_kind")
    diag_value = iv("diag_value")
    q850_ok = voice & np.isin(diag_kind, (0, 2)) & (diag_value >= 0) & (diag_value <= 127)
    cause = iv("cause")
    out_codes = outcomes.outcomes_from_3gpp_array(
        cause, np.where(q850_ok, diag_value, -1), answered_voice
    )
    out_codes = np.where(
        sms, np.where(diag_kind >= 0, outcomes.FAILED, outcomes.ANSWERED), out_codes
    )
    out_codes = np.where(data, outcomes.ANSWERED, out_codes)
    billsec = np.where(answered_voice, np.where(dur >= 0, dur, (end - ans) / 1e9), 0.0)
    billsec = np.where(data, np.where(dur >= 0, dur, 0), np.where(sms, 0.0, billsec))
    rat_code = iv("rat")
    rat = np.where(data, _lookup(rat_code, RAT_TYPES), _lookup(rat_code, SYSTEM_TYPES))
    area, cell = _locations(iv("area"), iv("cell"), iv("mcc"), iv("mnc"), iv("mnc_digits"))
    node = _pick(data, s("node_addr"), s("entity"))
    call_id = _pick(data, pc.cast(pa.array(iv("charging_id"), mask=iv("charging_id") < 0),
                                  pa.string()), s("call_ref"))  # fmt: skip
    names = np.array(KINDS, dtype=object)[k]
    cause_names = np.where(
        data, _lookup(cause, CAUSE_FOR_REC_CLOSING, True), _lookup(cause, CAUSE_FOR_TERM, True)
    )
    diag_names = _lookup(diag_kind, DIAGNOSTICS, True)
    with_value = pc.binary_join_element_wise(
        pa.array(diag_names, pa.string()), pc.cast(pa.array(diag_value), pa.string()), ":"
    )
    diag_text = pc.if_else(pa.array(diag_value >= 0), with_value, pa.array(diag_names, pa.string()))
    offsets = fr.off[keep]
    tag = os.path.basename(path)
    service = np.where(voice, "voice", np.where(sms, "sms", "data"))
    leg = ["orig" if m else "term" if t_ else None for m, t_ in zip(mo, mt, strict=True)]
    seq = iv("seq")
    df = pd.DataFrame(
        {
            "record_id": pd.array(
                pc.binary_join_element_wise(
                    f"{SOURCE}:{tag}", pc.cast(pa.array(offsets), pa.string()), ":"
                ),
                dtype="string[pyarrow]",
            ),
            "source": SOURCE,
            "record_kind": "cdr",
            "service": service,
            "a_number": pd.array(a, dtype="string[pyarrow]"),
            "b_number": pd.array(b, dtype="string[pyarrow]"),
            "a_number_kind": pd.array(a_kind, dtype="string[pyarrow]"),
            "b_number_kind": pd.array(pc.fill_null(b_kind, "empty"), dtype="string[pyarrow]"),
            "start": _ts(st),
            "answer": _ts(np.where(answer == K.NULL_TIME, K.NULL_TIME, answer)),
            "end": _ts(end),
            "duration_s": np.where(data & (dur >= 0), dur, (end - st) / 1e9).astype(float),
            "billsec_s": billsec.astype(float),
            "outcome": out_codes,
            "cause_q850": _opt_int(np.where(q850_ok, diag_value, -1), "Int16"),
            "call_id": pd.array(call_id, dtype="string[pyarrow]"),
            "leg": leg,
            "partial_seq": _opt_int(seq, "Int32"),
            "node": pd.array(node, dtype="string[pyarrow]"),
            "imsi": pd.array(s("imsi"), dtype="string[pyarrow]"),
            "imei": pd.array(s("imei"), dtype="string[pyarrow]"),
            "msisdn": pd.array(msisdn, dtype="string[pyarrow]"),
            "pdp_address": pd.array(s("pdp_addr"), dtype="string[pyarrow]"),
            "location_area": pd.array(area, dtype="string[pyarrow]"),
            "cell": pd.array(cell, dtype="string[pyarrow]"),
            "rat": rat,
            "volume_up_bytes": _opt_int(iv("vol_up"), "Int64"),
            "volume_down_bytes": _opt_int(iv("vol_down"), "Int64"),
            "closing_cause": _opt_int(cause, "Int16"),
            "src_3gpp_record_type": names,
            "src_3gpp_offset": pd.array(offsets, dtype="Int64"),
            "src_3gpp_cause": cause_names,
            "src_3gpp_diagnostics": pd.array(diag_text, dtype="string[pyarrow]"),
            "src_3gpp_unknown_tags": pd.array(s("unknown_tags"), dtype="string[pyarrow]"),
            "src_3gpp_vendor_fields": pd.array(s("vendor_fields"), dtype="string[pyarrow]"),
        }
    )
    df["a_number_kind"] = df["a_number_kind"].fillna("empty")
    return conform(df, EXTENSIONS), q


def _lookup(codes: np.ndarray, table: dict[int, str], fallback: bool = False) -> np.ndarray:
    """Names of integer codes (-1 absent → None; unknown → the number when ``fallback``)."""
    top = max(table) + 1
    lut = np.array([table.get(c) for c in range(top)] + [None], dtype=object)
    idx = np.where((codes >= 0) & (codes < top), codes, top)
    out = lut[idx]
    if fallback:
        unknown = (codes >= 0) & pd.isna(out)
        if unknown.any():
            out[unknown] = codes[unknown].astype(str)
    return out


def _locations(area: np.ndarray, cell: np.ndarray, mcc: np.ndarray, mnc: np.ndarray,
               mnc_digits: np.ndarray) -> tuple[pa.Array, pa.Array]:  # fmt: skip
    def text(v: np.ndarray) -> pa.Array:
        return pc.cast(pa.array(v, mask=v < 0), pa.string())

    mnc_text = text(mnc)
    mnc_text = pc.if_else(pa.array(mnc_digits == 3), pc.utf8_lpad(mnc_text, 3, "0"),
                          pc.utf8_lpad(mnc_text, 2, "0"))  # fmt: skip
    plmn = pc.binary_join_element_wise(pc.utf8_lpad(text(mcc), 3, "0"), mnc_text, "", "-")
    plmn = pc.fill_null(plmn, "")
    areas = pc.binary_join_element_wise(plmn, text(area), "")
    cells = pc.binary_join_element_wise(plmn, pc.fill_null(text(area), ""), "-", text(cell), "")
    return areas, cells


def _quarantine(table: FieldTable, rows: np.ndarray, reasons: list[str], fields: list[str],
                path: str) -> pd.DataFrame:  # fmt: skip
    """One row per record not loaded, with its byte offset in ``line``.

    The raw octets are not kept (TBCD identities in them would survive any text scan), only
    their size and outer tag.
    """
    if rows.size == 0:
        return empty_quarantine()
    fr = table.frames
    raw = []
    for i in rows:
        size = int(fr.voff[i] + fr.vlen[i] - fr.off[i])
        tag = int(fr.tag[i])
        raw.append(f"{size} octets at byte offset {int(fr.off[i])}"
                   + (f", outer tag [{tag}]" if tag >= 0 else ""))  # fmt: skip
    q = pd.DataFrame(
        {
            "file": [path] * rows.size,
            "line": fr.off[rows].astype(np.int64),
            "field": [fields[i] for i in rows],
            "reason": [f"byte offset {int(fr.off[i])}: {reasons[i]}" for i in rows],
            "raw": raw,
        }
    )
    return q.astype(empty_quarantine().dtypes.to_dict())
