"""From a TS 32.297/32.298 file to a table of the raw field values the mapping needs.

Two decoders fill the same :class:`FieldTable`:

* :func:`fast_fields`: the jitted TLV walk of :mod:`cemkit.io.threegpp._kernels` over the
  standard TS 32.298 record types (the default);
* :func:`library_fields`: every record decoded by pycrate, with the standard compiled module
  (``pycrate_asn1dir.CDR``) or an operator's own ASN.1 module (``schema=``), then read with
  :mod:`cemkit.io.threegpp.values`. It is the reference the fast path is tested against.

Both start from :func:`frame`, which finds the TS 32.297 file header and CDR headers when
present and delimits each record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cemkit import arrowstr
from cemkit.io.threegpp import _kernels as K
from cemkit.io.threegpp import values as V
from cemkit.io.threegpp.spec import (
    COMPONENTS,
    FIELDS,
    KIND_TAGS,
    KIND_TYPES,
    KINDS,
    KNOWN_TAGS,
    LEGACY_KINDS,
    SERVICE_DATA_VOLUME_TAGS,
    SLOT,
    SYSTEM_TYPE_VALUES,
    TRAFFIC_VOLUME_TAGS,
)

HEADERS = ("auto", "none", "file", "cdr", "file+cdr")

#: Integer columns of a field table (-1: absent).
INT_COLUMNS = ("rec_type", "duration", "cause", "diag_kind", "diag_value", "seq", "charging_id",
               "vol_up", "vol_down", "rat", "area", "cell", "mcc", "mnc", "mnc_digits",
               "msisdn_ton", "calling_ton", "called_ton", "entity_ton")  # fmt: skip
TIME_COLUMNS = ("start_ns", "answer_ns", "release_ns")
STRING_COLUMNS = ("imsi", "imei", "msisdn", "calling", "called", "entity", "call_ref",
                  "node_addr", "pdp_addr", "unknown_tags", "vendor_fields")  # fmt: skip


@dataclass
class Frames:
    """Records of one file: where each starts, its value's extent, outer tag and status."""

    off: np.ndarray
    voff: np.ndarray
    vlen: np.ndarray
    tag: np.ndarray
    b0: np.ndarray
    status: np.ndarray
    file_header: dict[str, int] | None = None
    cdr_headers: bool = False

    def __len__(self) -> int:
        return int(self.off.shape[0])

    def end(self, i: int) -> int:
        """Byte offset just past record ``i``."""
        return int(self.voff[i] + self.vlen[i])


@dataclass
class FieldTable:
    """Raw field values per record: ints (-1 absent), UTC ns times, Arrow strings."""

    frames: Frames
    kind: np.ndarray
    ints: dict[str, np.ndarray]
    times: dict[str, np.ndarray]
    strings: dict[str, pa.Array]
    #: per record: '' when decoded, else why not (the record is quarantined)
    errors: list[str] = field(default_factory=list)
    #: per record: the offending field ('' for the record)
    error_fields: list[str] = field(default_factory=list)


def parse_file_header(buf: np.ndarray) -> dict[str, int] | None:
    """The TS 32.297 file header's fields, or None when ``buf`` does not start with one."""
    if buf.shape[0] < 52:
        return None
    raw = buf[:52].tobytes()
    file_length = int.from_bytes(raw[0:4], "big")
    header_length = int.from_bytes(raw[4:8], "big")
    # a record starts with a context-specific constructed tag (0xA0-0xBF); a header with a length
    if 0xA0 <= raw[0] <= 0xBF or not 52 <= header_length <= buf.shape[0]:
        return None
    if file_length not in (buf.shape[0], 0, 0xFFFFFFFF) and file_length < header_length:
        return None
    return {
        "file_length": file_length,
        "header_length": header_length,
        "cdr_count": int.from_bytes(raw[18:22], "big"),
        "file_sequence_number": int.from_bytes(raw[22:26], "big"),
        "closure_reason": raw[26],
        "lost_cdr_indicator": raw[47],
    }


def _looks_like_cdr_header(buf: np.ndarray, pos: int) -> bool:
    if pos + 6 > buf.shape[0] or 0xA0 <= buf[pos] <= 0xBF:
        return False
    length = (int(buf[pos]) << 8) | int(buf[pos + 1])
    hsize = 5 if (buf[pos + 2] >> 5) == 7 else 4
    if buf[pos + 3] >> 5 != 1:
        return False
    _b0, tag, voff, vlen = K.read_tlv(buf, pos + hsize, buf.shape[0])
    return tag >= 0 and voff + vlen - (pos + hsize) in (length, length - hsize)


def frame(buf: np.ndarray, headers: str = "auto") -> Frames:
    """Delimit the records of a file (see :func:`_kernels.frame_records`)."""
    hdr = parse_file_header(buf) if headers in ("auto", "file", "file+cdr") else None
    if headers in ("file", "file+cdr") and hdr is None:
        from cemkit.errors import InputError

        raise InputError("the file does not start with a TS 32.297 file header",
                         hint="use -o headers=auto (or none) for files without one")  # fmt: skip
    start = hdr["header_length"] if hdr else 0
    stop = buf.shape[0]
    if hdr and hdr["file_length"] not in (0, 0xFFFFFFFF) and hdr["file_length"] < stop:
        stop = hdr["file_length"]
    if headers in ("cdr", "file+cdr"):
        cdr = True
    elif headers == "auto":
        cdr = _looks_like_cdr_header(buf, start)
    else:
        cdr = False
    empty = np.zeros(0, np.int64)
    n = K.frame_records(buf, start, stop, cdr, False, empty, empty, empty, empty, empty, empty)
    arrs = [np.zeros(n, np.int64) for _ in range(6)]
    K.frame_records(buf, start, stop, cdr, True, *arrs)
    off, voff, vlen, tag, b0, status = arrs
    return Frames(off, voff, vlen, tag, b0, status.astype(np.int8), hdr, cdr)


def _kind_of(frames: Frames) -> np.ndarray:
    lut = np.full(K.MAX_TAG, -1, np.int8)
    for outer_tag, code in KIND_TAGS.items():
        lut[outer_tag] = code
    tags = frames.tag
    ok = (tags >= 0) & (tags < K.MAX_TAG)
    kind = np.full(tags.shape[0], -1, np.int8)
    kind[ok] = lut[tags[ok]]
    return kind


def _tables() -> tuple[np.ndarray, np.ndarray]:
    slot = np.full((len(KINDS), K.MAX_TAG), -1, np.int16)
    known = np.zeros((len(KINDS), K.MAX_TAG), np.bool_)
    for k, name in enumerate(KINDS):
        for logical, (_asn1, tag) in COMPONENTS[name].items():
            slot[k, tag] = SLOT[logical]
        for lo, hi in KNOWN_TAGS[name]:
            known[k, lo : hi + 1] = True
    return slot, known


_SLOT_TABLE, _KNOWN_TABLE = _tables()


def _tbcd(buf: np.ndarray, off: np.ndarray, ln: np.ndarray, skip: int) -> pa.Array:
    n = off.shape[0]
    total = int(np.maximum(ln, 0).sum())
    data = np.zeros(2 * total + 1, np.uint8)
    offsets = np.zeros(n + 1, np.int64)
    valid = np.zeros(n, np.bool_)
    w = K.tbcd_strings(buf, off, ln, skip, data, offsets, valid)
    return arrowstr.from_buffers(offsets, data[:w], valid)


def _ip_strings(buf: np.ndarray, off: np.ndarray, ln: np.ndarray) -> pa.Array:
    n = off.shape[0]
    loff = np.zeros(n, np.int64)
    llen = np.full(n, -1, np.int64)
    ltag = np.full(n, -1, np.int64)
    K.choice_leaf(buf, off, ln, loff, llen, ltag)
    v4 = llen == 4
    octets = [pc.cast(pa.array(buf[np.where(v4, loff + k, 0)]), pa.string()) for k in range(4)]
    text = pc.if_else(pa.array(v4), pc.binary_join_element_wise(*octets, "."),
                      pa.nulls(n, pa.string()))  # fmt: skip
    other = np.flatnonzero((llen >= 0) & ~v4)
    if other.size:  # IPv6 and text addresses: few distinct values, through ipaddress
        values = text.to_pylist()
        cache: dict[bytes, str | None] = {}
        for i in other:
            raw = buf[loff[i] : loff[i] + llen[i]].tobytes()
            if raw not in cache:
                cache[raw] = V.ip_text(raw) if llen[i] in (16, 17, 18) else _text_or_none(raw)
            values[i] = cache[raw]
        text = pa.array(values, pa.string())
    return text


def _text_or_none(raw: bytes) -> str | None:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def fast_fields(buf: np.ndarray, frames: Frames) -> FieldTable:
    """Decode the needed fields of every standard record with the jitted TLV walk."""
    n = len(frames)
    kind = _kind_of(frames)
    status = frames.status.copy()
    nslot = len(FIELDS)
    off = np.zeros((n, nslot), np.int64)
    ln = np.full((n, nslot), -1, np.int64)
    unknown = np.full((n, K.MAX_UNKNOWN), -1, np.int64)
    n_unknown = np.zeros(n, np.int64)
    K.walk_fields(buf, frames.voff, frames.vlen, kind, _SLOT_TABLE, _KNOWN_TABLE, status, off,
                  ln, unknown, n_unknown)  # fmt: skip
    bad_field = np.full(n, -1, np.int16)

    def col(name: str) -> tuple[np.ndarray, np.ndarray]:
        s = SLOT[name]
        return np.ascontiguousarray(off[:, s]), np.ascontiguousarray(ln[:, s])

    def flag(bad: np.ndarray, name: str) -> None:
        hit = bad & (bad_field < 0)
        bad_field[hit] = SLOT[name]

    ints: dict[str, np.ndarray] = {c: np.full(n, -1, np.int64) for c in INT_COLUMNS}
    for name, target in (("recordType", "rec_type"), ("duration", "duration"),
                         ("cause", "cause"), ("sequenceNumber", "seq"),
                         ("chargingID", "charging_id"), ("rat", "rat")):  # fmt: skip
        bad = np.zeros(n, np.bool_)
        K.ber_integers(buf, *col(name), ints[target], bad)
        flag(bad, name)
    times: dict[str, np.ndarray] = {}
    for name, target in (("startTime", "start_ns"), ("answerTime", "answer_ns"),
                         ("releaseTime", "release_ns")):  # fmt: skip
        out = np.full(n, K.NULL_TIME, np.int64)
        bad = np.zeros(n, np.bool_)
        K.timestamps(buf, *col(name), out, bad)
        flag(bad, name)
        times[target] = out
    strings: dict[str, pa.Array] = {}
    strings["imsi"] = _tbcd(buf, *col("servedIMSI"), 0)
    strings["imei"] = _tbcd(buf, *col("servedIMEI"), 0)
    for name, target in (("servedMSISDN", "msisdn"), ("callingNumber", "calling"),
                         ("calledNumber", "called"), ("recordingEntity", "entity")):  # fmt: skip
        o, l_ = col(name)
        strings[target] = _tbcd(buf, o, l_, 1)
        K.address_ton(buf, o, l_, ints[target + "_ton"])
    o, l_ = col("callReference")
    data = np.zeros(2 * int(np.maximum(l_, 0).sum()) + 1, np.uint8)
    offsets = np.zeros(n + 1, np.int64)
    w = K.hex_strings(buf, o, l_, data, offsets)
    strings["call_ref"] = arrowstr.from_buffers(offsets, data[:w], l_ >= 0)
    strings["node_addr"] = _ip_strings(buf, *col("nodeAddress"))
    strings["pdp_addr"] = _ip_strings(buf, *col("pdpAddress"))
    K.diagnostics(buf, *col("diagnostics"), ints["diag_kind"], ints["diag_value"])
    bad = np.zeros(n, np.bool_)
    K.volume_sums(buf, *col("trafficVolumes"), *TRAFFIC_VOLUME_TAGS, ints["vol_up"],
                  ints["vol_down"], bad)  # fmt: skip
    flag(bad, "trafficVolumes")
    up2 = np.full(n, -1, np.int64)
    down2 = np.full(n, -1, np.int64)
    bad = np.zeros(n, np.bool_)
    K.volume_sums(buf, *col("serviceData"), *SERVICE_DATA_VOLUME_TAGS, up2, down2, bad)
    flag(bad, "serviceData")
    use2 = ints["vol_up"] < 0
    ints["vol_up"][use2] = up2[use2]
    ints["vol_down"][use2] = down2[use2]
    plmn_off = np.full(n, -1, np.int64)
    bad = np.zeros(n, np.bool_)
    K.locations(buf, *col("location"), ints["area"], ints["cell"], plmn_off, bad)
    flag(bad, "location")
    K.octet_uints(buf, *col("locationAreaCode"), ints["area"])
    K.octet_uints(buf, *col("cellIdentifier"), ints["cell"])
    bad = np.zeros(n, np.bool_)
    K.user_locations(buf, *col("userLocationInformation"), ints["area"], ints["cell"],
                     plmn_off, bad)  # fmt: skip
    flag(bad, "userLocationInformation")
    K.plmn_codes(buf, plmn_off, ints["mcc"], ints["mnc"], ints["mnc_digits"])
    strings["unknown_tags"] = _unknown_text(unknown, n_unknown)
    strings["vendor_fields"] = pa.nulls(n, pa.string())
    errors, error_fields = _errors(frames, kind, status, bad_field)
    return FieldTable(frames, kind, ints, times, strings, errors, error_fields)


def _unknown_text(unknown: np.ndarray, n_unknown: np.ndarray) -> pa.Array:
    out: list[str | None] = [None] * unknown.shape[0]
    for i in np.flatnonzero(n_unknown > 0):
        tags = [str(t) for t in unknown[i, : min(int(n_unknown[i]), K.MAX_UNKNOWN)]]
        if n_unknown[i] > K.MAX_UNKNOWN:
            tags.append(f"+{int(n_unknown[i]) - K.MAX_UNKNOWN} more")
        out[i] = ",".join(tags)
    return pa.array(out, pa.string())


_STATUS_REASON = {
    K.BAD_TLV: "record is not valid BER (its extent comes from its TS 32.297 CDR header)",
    K.LOST: "BER framing lost: the rest of the file cannot be delimited",
    K.BAD_CHILD: "a component of the record is not valid BER",
    K.BAD_FORMAT: "TS 32.297 CDR header says the record is not BER encoded",
    K.NOT_RECORD: "not a TS 32.298 record (outer tag is not context-specific constructed)",
}


def _errors(frames: Frames, kind: np.ndarray, status: np.ndarray,
            bad_field: np.ndarray) -> tuple[list[str], list[str]]:  # fmt: skip
    from cemkit.io.threegpp.spec import OTHER_RECORDS

    n = len(frames)
    errors = [""] * n
    fields = [""] * n
    for i in np.flatnonzero((status != K.OK) | (kind < 0) | (bad_field >= 0)):
        if status[i] != K.OK:
            errors[i] = _STATUS_REASON[int(status[i])]
        elif kind[i] < 0:
            tag = int(frames.tag[i])
            name = OTHER_RECORDS.get(tag, "unknown")
            errors[i] = f"record type [{tag}] ({name}) is not mapped by cemkit"
        else:
            fields[i] = FIELDS[int(bad_field[i])]
            errors[i] = f"field {fields[i]} has a value TS 32.298 does not allow"
    return errors, fields


# --- the library (pycrate) decoder -------------------------------------------------------------
def py_children(raw: bytes) -> list[tuple[int, int, int, int, int]]:
    """(first tag octet, tag number, start, value start, value end) of each TLV in ``raw``."""
    buf = np.frombuffer(raw, np.uint8)
    out = []
    pos = 0
    while pos < len(raw):
        b0, tag, v, ln = K.read_tlv(buf, pos, len(raw))
        if tag < 0:
            raise V.FieldValueError("a component is not valid BER")
        out.append((int(b0), int(tag), pos, int(v), int(v + ln)))
        pos = int(v + ln)
    return out


class LibraryDecoder:
    """Decode whole records with pycrate: the standard TS 32.298 module or a vendor module."""

    def __init__(self, schema_paths: tuple[str, ...] = ()) -> None:
        self.schema_paths = schema_paths
        self._choices: list[Any] | None = None

    def choices(self) -> list[Any]:
        """The top-level CHOICE types whose alternatives are record types cemkit maps."""
        if self._choices is None:
            if self.schema_paths:
                from cemkit.io.threegpp.vendor import compile_modules

                modules = compile_modules(self.schema_paths)
            else:
                from pycrate_asn1dir import CDR

                modules = [CDR.CSChargingDataTypes, CDR.GPRSChargingDataTypes]
            found = []
            for mod in modules:
                for name in getattr(mod, "_obj_", []):
                    obj = getattr(mod, name.replace("-", "_"), None)
                    if obj is None or getattr(obj, "TYPE", None) != "CHOICE":
                        continue
                    if set(obj._cont.keys()) & set(KINDS):
                        found.append(obj)
            self._choices = found
        return self._choices

    def decode(self, raw: bytes) -> tuple[str, dict[str, Any], list[int]]:
        """(alternative name, component values, tags left out as unknown) of one record."""
        errors = []
        for choice in self.choices():
            try:
                choice.from_ber(raw)
                name, value = choice.get_val()
                return name, value, []
            except Exception as exc:  # noqa: BLE001 - pycrate raises many types
                errors.append(exc)
        if not self.schema_paths:
            stripped, dropped = self._strip_unknown(raw)
            if dropped:
                for choice in self.choices():
                    try:
                        choice.from_ber(stripped)
                        name, value = choice.get_val()
                        return name, value, dropped
                    except Exception:  # noqa: BLE001, S112
                        continue
        raise V.FieldValueError("the ASN.1 module does not decode this record")

    @staticmethod
    def _strip_unknown(raw: bytes) -> tuple[bytes, list[int]]:
        ((_b0, tag, _s, v, e),) = py_children(raw)[:1] or [(0, -1, 0, 0, 0)]
        kind = KIND_TAGS.get(tag)
        if kind is None:
            return raw, []
        known: set[int] = set()
        for lo, hi in KNOWN_TAGS[KINDS[kind]]:
            known.update(range(lo, hi + 1))
        kept = []
        dropped = []
        for c0, ctag, s, _cv, ce in py_children(raw[v:e]):
            if c0 == 0 and ctag == 0 and ce == _cv:  # end-of-contents: re-framed definite
                continue
            if (c0 & 0xC0) == 0x80 and ctag in known:
                kept.append(raw[v + s : v + ce])
            else:
                dropped.append(ctag)
        body = b"".join(kept)
        return raw[: _tag_len(raw)] + _ber_length(len(body)) + body, dropped


def _tag_len(raw: bytes) -> int:
    if raw[0] & 0x1F != 0x1F:
        return 1
    i = 1
    while raw[i] & 0x80:
        i += 1
    return i + 1


def _ber_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def library_fields(buf: np.ndarray, frames: Frames, decoder: LibraryDecoder) -> FieldTable:
    """Decode every record with pycrate and read the needed fields with plain Python."""
    n = len(frames)
    kind = np.full(n, -1, np.int8)
    ints = {c: np.full(n, -1, np.int64) for c in INT_COLUMNS}
    times = {c: np.full(n, K.NULL_TIME, np.int64) for c in TIME_COLUMNS}
    strs: dict[str, list[str | None]] = {c: [None] * n for c in STRING_COLUMNS}
    errors = [""] * n
    error_fields = [""] * n
    base_kind = _kind_of(frames)
    for i in range(n):
        st = int(frames.status[i])
        if st != K.OK:
            errors[i] = _STATUS_REASON[st]
            continue
        raw = buf[_record_start(buf, frames, i) : frames.end(i)].tobytes()
        try:
            name, value, dropped = decoder.decode(raw)
        except V.FieldValueError:
            tag = int(frames.tag[i])
            if base_kind[i] < 0 and not decoder.schema_paths:
                from cemkit.io.threegpp.spec import OTHER_RECORDS

                errors[i] = (f"record type [{tag}] ({OTHER_RECORDS.get(tag, 'unknown')}) is "
                             "not mapped by cemkit")  # fmt: skip
            elif base_kind[i] in LEGACY_KINDS and not decoder.schema_paths:
                errors[i] = (f"{KINDS[base_kind[i]]} (TS 32.298 before Rel-8) is not in the "
                             "module pycrate ships: use engine=fast or schema=")  # fmt: skip
            else:
                errors[i] = "the ASN.1 module does not decode this record"
            continue
        if name not in KINDS:
            errors[i] = f"record type {name} is not mapped by cemkit"
            continue
        k = KINDS.index(name)
        kind[i] = k
        comps = COMPONENTS[name]
        try:
            _read_record(i, value, comps, ints, times, strs)
        except V.FieldValueError as exc:
            errors[i] = f"field {exc.args[1]} has a value TS 32.298 does not allow"
            error_fields[i] = exc.args[1]
            kind[i] = -1
            continue
        if dropped:
            strs["unknown_tags"][i] = ",".join(str(t) for t in dropped[: K.MAX_UNKNOWN]) + (
                f",+{len(dropped) - K.MAX_UNKNOWN} more" if len(dropped) > K.MAX_UNKNOWN else ""
            )
        if decoder.schema_paths:
            std = _standard_components(name)
            extra = {key: _jsonable(val) for key, val in value.items() if key not in std}
            if extra:
                strs["vendor_fields"][i] = json.dumps(extra, sort_keys=True)
    strings = {c: pa.array(v, pa.string()) for c, v in strs.items()}
    return FieldTable(frames, kind, ints, times, strings, errors, error_fields)


def _standard_components(kind: str) -> set[str]:
    """Component names TS 32.298 defines for a record type (pycrate's compiled module)."""
    from pycrate_asn1dir import CDR

    for mod in (CDR.CSChargingDataTypes, CDR.GPRSChargingDataTypes):
        typ = getattr(mod, KIND_TYPES[kind], None)
        if typ is not None:
            return set(typ._cont.keys())
    return set()


def _record_start(buf: np.ndarray, frames: Frames, i: int) -> int:
    """Where record ``i``'s BER TLV starts (after its TS 32.297 CDR header, if any)."""
    off = int(frames.off[i])
    if not frames.cdr_headers:
        return off
    return off + (5 if (buf[off + 2] >> 5) == 7 else 4)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _read_record(i: int, value: dict[str, Any], comps: dict[str, tuple[str, int]],
                 ints: dict[str, np.ndarray], times: dict[str, np.ndarray],
                 strs: dict[str, list[str | None]]) -> None:  # fmt: skip
    def get(logical: str) -> Any:
        if logical not in comps:
            return None
        return value.get(comps[logical][0])

    def guard(logical: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except V.FieldValueError:
            raise V.FieldValueError("bad field", logical) from None

    for logical, target in (("recordType", "rec_type"), ("duration", "duration"),
                            ("cause", "cause"), ("sequenceNumber", "seq"),
                            ("chargingID", "charging_id"), ("rat", "rat")):  # fmt: skip
        v = get(logical)
        if isinstance(v, str):  # an ENUMERATED decoded to its name (systemType)
            v = SYSTEM_TYPE_VALUES.get(v)
        if v is not None:
            ints[target][i] = int(v)
    for logical, target in (("startTime", "start_ns"), ("answerTime", "answer_ns"),
                            ("releaseTime", "release_ns")):  # fmt: skip
        v = get(logical)
        if v is not None:
            times[target][i] = guard(logical, V.timestamp_ns, v)
    for logical, target in (("servedIMSI", "imsi"), ("servedIMEI", "imei")):
        v = get(logical)
        if v:
            strs[target][i] = V.tbcd(v)
    for logical, target in (("servedMSISDN", "msisdn"), ("callingNumber", "calling"),
                            ("calledNumber", "called"), ("recordingEntity", "entity")):  # fmt: skip
        v = get(logical)
        if v:
            ints[target + "_ton"][i] = (v[0] >> 4) & 0x07
            a = V.address(v)
            if a is not None:
                strs[target][i] = a[1]
    v = get("callReference")
    if v is not None:
        strs["call_ref"][i] = bytes(v).hex()
    for logical, target in (("nodeAddress", "node_addr"), ("pdpAddress", "pdp_addr")):
        v = get(logical)
        if v is not None:
            strs[target][i] = V.ip_text(v)
    v = get("diagnostics")
    if v is not None:
        d = V.diagnostics(v)
        if d is not None:
            ints["diag_kind"][i] = d[0]
            if d[1] is not None:
                ints["diag_value"][i] = d[1]
    vol = None
    v = get("trafficVolumes")
    if v is not None:
        vol = V.volumes(v, "dataVolumeGPRSUplink", "dataVolumeGPRSDownlink")
    v = get("serviceData")
    if vol is None and v is not None:
        vol = V.volumes(v, "datavolumeFBCUplink", "datavolumeFBCDownlink")
    if vol is not None:
        ints["vol_up"][i], ints["vol_down"][i] = vol
    plmn_octets = None
    v = get("location")
    if v is not None:
        area, cell, plmn_octets = V.location(v)
        if area is not None:
            ints["area"][i] = area
        if cell is not None:
            ints["cell"][i] = cell
    for logical, target in (("locationAreaCode", "area"), ("cellIdentifier", "cell")):
        v = get(logical)
        if v is not None and 1 <= len(v) <= 7:
            ints[target][i] = int.from_bytes(v, "big")
    v = get("userLocationInformation")
    if v is not None:
        area, cell, p2 = guard("userLocationInformation", V.user_location, v)
        if area is not None:
            ints["area"][i] = area
        if cell is not None:
            ints["cell"][i] = cell
        if p2 is not None:
            plmn_octets = p2
    if plmn_octets is not None:
        p = V.plmn(plmn_octets)
        if p is not None:
            ints["mcc"][i], ints["mnc"][i], ints["mnc_digits"][i] = p
