"""Synthetic 3GPP TS 32.298 charging-record files (BER, TS 32.297 framing) with ground truth.

The customers are those of :mod:`cemkit.synth` (same numbering plans; each customer also gets an
IMSI and an IMEI). Written with pycrate's compiled TS 32.298 module, the library the loader's
reference decoder uses:

* ``msc.ber``: ``moCallRecord`` per call and ``mtCallRecord`` for calls to another customer;
  calls longer than ``partial_s`` cut into partial records (causeForTerm partialRecord,
  sequenceNumber 1, 2, ..., one callReference); ``moSMSRecord`` per SMS and ``mtSMSRecord``
  per delivered SMS to a customer;
* ``pgw.ber``: ``pGWRecord`` per data session, cut into partials (timeLimit,
  recordSequenceNumber 1, 2, ...; one chargingID), volumes in listOfServiceData, location in
  userLocationInformation (TAI + ECGI);
* with ``vendor=True``, ``pgw-vendor.ber`` and ``vendor.asn``: the same PGW records with two
  vendor components ([200] vendorCellName, [201] vendorFlags) and the operator's module that
  defines them.

Times are written in the MSC's/PGW's local time with its UTC offset (+0100 for the MSC, -0500
for the PGW) and every truth time is UTC.

Examples
--------
>>> import tempfile
>>> truth = generate_3gpp(tempfile.mkdtemp(), calls=20, sms=10, sessions=10, seed=1)
>>> sorted(truth["files"])
['msc.ber', 'pgw.ber']
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cemkit import config, outcomes

#: MSC and PGW identities (network elements, not personal).
MSC_NUMBERS = ("447700000001", "447700000002")
PGW_ADDRESSES = ("10.20.0.1", "10.20.0.2")
MCC, MNC = 234, 15
MSC_OFFSET_MIN = 60
PGW_OFFSET_MIN = -300
ORIGIN = pd.Timestamp("2026-03-02T00:00:00Z")

#: outcome → (causeForTerm, gsm0408Cause or None, answered)
_VOICE_OUTCOMES = {
    "answered": (0, 16, True),
    "dropped": (4, 41, True),
    "busy": (3, 17, False),
    "no_answer": (3, 19, False),
    "cancelled": (0, None, False),
    "congestion": (3, 34, False),
}
_VOICE_P = (0.62, 0.04, 0.1, 0.1, 0.08, 0.06)
_RATS = ((6, "eutran"), (10, "nr"), (1, "utran"))
_RAT_P = (0.7, 0.2, 0.1)

#: The operator's own module for ``pgw-vendor.ber`` (a subset of TS 32.298 PGWRecord plus two
#: vendor components), as operators receive them from their vendor.
VENDOR_MODULE = """VendorPGW DEFINITIONS IMPLICIT TAGS ::= BEGIN
GPRSRecord ::= CHOICE { pGWRecord [79] PGWRecord }
PGWRecord ::= SET {
  recordType [0] INTEGER,
  servedIMSI [3] OCTET STRING OPTIONAL,
  p-GWAddress [4] GSNAddress,
  chargingID [5] INTEGER,
  servingNodeAddress [6] SEQUENCE OF GSNAddress,
  servedPDPPDNAddress [9] PDPAddress OPTIONAL,
  recordOpeningTime [13] OCTET STRING,
  duration [14] INTEGER,
  causeForRecClosing [15] INTEGER,
  recordSequenceNumber [17] INTEGER OPTIONAL,
  servedMSISDN [22] OCTET STRING OPTIONAL,
  chargingCharacteristics [23] OCTET STRING,
  servedIMEI [29] OCTET STRING OPTIONAL,
  rATType [30] INTEGER OPTIONAL,
  userLocationInformation [32] OCTET STRING OPTIONAL,
  listOfServiceData [34] SEQUENCE OF ChangeOfServiceCondition OPTIONAL,
  servingNodeType [35] SEQUENCE OF ENUMERATED { sGSN(0), pMIPSGW(1), gTPSGW(2), ePDG(3),
    hSGW(4), mME(5), tWAN(6) },
  vendorCellName [200] UTF8String OPTIONAL,
  vendorFlags [201] INTEGER OPTIONAL
}
GSNAddress ::= CHOICE { iPBinV4Address [0] OCTET STRING, iPBinV6Address [1] OCTET STRING }
PDPAddress ::= CHOICE { iPAddress [0] GSNAddress }
ChangeOfServiceCondition ::= SEQUENCE {
  ratingGroup [1] INTEGER,
  serviceConditionChange [8] BIT STRING,
  datavolumeFBCUplink [12] INTEGER OPTIONAL,
  datavolumeFBCDownlink [13] INTEGER OPTIONAL,
  timeOfReport [14] OCTET STRING
}
END
"""


def tbcd(digits: str) -> bytes:
    """TBCD octets of a digit string (low nibble first, 0xF filler)."""
    d = digits + ("F" if len(digits) % 2 else "")
    return bytes(int(d[i + 1], 16) << 4 | int(d[i], 16) for i in range(0, len(d), 2))


def address(e164: str) -> bytes:
    """AddressString of an E.164 number: 0x91 (international, ISDN) + TBCD digits."""
    return b"\x91" + tbcd(e164.lstrip("+"))


def timestamp(ns: int, offset_min: int) -> bytes:
    """TS 32.298 TimeStamp of a UTC time, written as local time with ``offset_min``."""
    local = pd.Timestamp(ns, tz="UTC") + pd.Timedelta(minutes=offset_min)
    text = local.strftime("%y%m%d%H%M%S")
    sign = b"+" if offset_min >= 0 else b"-"
    oh, om = divmod(abs(offset_min), 60)
    return bytes.fromhex(text) + sign + bytes.fromhex(f"{oh:02d}{om:02d}")


def plmn(mcc: int = MCC, mnc: int = MNC) -> bytes:
    """PLMN identity octets (2-digit MNC)."""
    m = f"{mcc:03d}"
    n = f"{mnc:02d}"
    return bytes([int(m[1]) << 4 | int(m[0]), 0xF0 | int(m[2]), int(n[1]) << 4 | int(n[0])])


def _luhn(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


class _Customers:
    """Customers of the synthetic world with their mobile identities."""

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        from cemkit.synth import _World

        world = _World(rng, n)
        self.e164 = [str(v) for v in pa.array(world.e164).to_pylist()]
        self.imsi = [f"{MCC:03d}{MNC:02d}{1_000_000_000 + i * 7919:010d}" for i in range(n)]
        tacs = ("35209900", "35332011", "86091204")
        self.imei = []
        for i in range(n):
            body = tacs[i % len(tacs)] + f"{(i * 104729) % 1_000_000:06d}"
            self.imei.append(body + _luhn(body))
        self.tac = rng.integers(1, 5000, size=n)
        self.eci = rng.integers(1, 2**28, size=n)
        self.lac = rng.integers(1, 65535, size=n)
        self.ci = rng.integers(1, 65535, size=n)


def _uli(tac: int, eci: int) -> bytes:
    p = plmn()
    return bytes([0x18]) + p + int(tac).to_bytes(2, "big") + p + int(eci).to_bytes(4, "big")


def _cs_location(lac: int, ci: int) -> dict[str, bytes]:
    return {"locationAreaCode": int(lac).to_bytes(2, "big"), "cellId": int(ci).to_bytes(2, "big"),
            "mCC-MNC": plmn()}  # fmt: skip


def generate_3gpp(
    out_dir: str | os.PathLike[str],
    *,
    calls: int = 200,
    sms: int = 100,
    sessions: int = 100,
    customers: int = 60,
    seed: int = 0,
    headers: bool = True,
    partial_s: int = config.PARTIAL_RECORD_INTERVAL_S,
    vendor: bool = False,
) -> dict[str, Any]:
    """Write ``msc.ber`` and ``pgw.ber`` under ``out_dir`` and return the truth.

    Returns a dict with ``files`` (name → path), ``records`` (one row per written record,
    canonical column values as the loader must produce them, UTC), ``calls`` and ``sessions``
    (one row per call / data session after stitching) and ``identities`` (every IMSI, IMEI and
    MSISDN used).
    """
    from pycrate_asn1dir import CDR

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cust = _Customers(rng, customers)
    cs_choice = CDR.CSChargingDataTypes.CSRecord
    ps_choice = CDR.GPRSChargingDataTypes.GPRSRecord
    rows: list[dict[str, Any]] = []
    msc_records: list[bytes] = []
    call_rows = []
    for _call in range(calls):
        a = int(rng.integers(customers))
        on_net = rng.random() < 0.5
        b = int((a + 1 + rng.integers(customers - 1)) % customers) if on_net else -1
        b_e164 = cust.e164[b] if on_net else f"+3361{int(rng.integers(10**7)):07d}"
        what = list(_VOICE_OUTCOMES)[int(rng.choice(len(_VOICE_OUTCOMES), p=_VOICE_P))]
        cft, q850, answered = _VOICE_OUTCOMES[what]
        seize = ORIGIN.value + int(rng.integers(0, 86400)) * 10**9
        ring = int(rng.integers(2, 20))
        talk = int(rng.lognormal(4.5, 1.2)) + 1 if answered else 0
        if answered and rng.random() < 0.1:
            talk += partial_s + int(rng.integers(0, partial_s))  # a long call: partials
        ans = seize + ring * 10**9 if answered else None
        rel = seize + (ring + talk) * 10**9
        callref = int(rng.integers(1, 2**40)).to_bytes(5, "big")
        msc = int(rng.integers(len(MSC_NUMBERS)))
        outcome = "answered" if answered else what
        legs = [("moCallRecord", a, 0)] + ([("mtCallRecord", b, 1)] if on_net else [])
        for kind, served, rtype in legs:
            pieces = _pieces(ans, rel, partial_s) if answered else [(None, rel)]
            for k, (p_start, p_end) in enumerate(pieces):
                last = k == len(pieces) - 1
                partial = len(pieces) > 1
                rec: dict[str, Any] = {"recordType": rtype,
                                       "servedIMSI": tbcd(cust.imsi[served]),
                                       "servedIMEI": tbcd(cust.imei[served]),
                                       "servedMSISDN": address(cust.e164[served]),
                                       "recordingEntity": address("+" + MSC_NUMBERS[msc]),
                                       "location": _cs_location(cust.lac[served], cust.ci[served]),
                                       "callReference": callref}  # fmt: skip
                if kind == "moCallRecord":
                    rec["calledNumber"] = address(b_e164)
                else:
                    rec["callingNumber"] = address(cust.e164[a])
                if k == 0:
                    rec["seizureTime"] = timestamp(seize, MSC_OFFSET_MIN)
                if p_start is not None:
                    rec["answerTime"] = timestamp(p_start, MSC_OFFSET_MIN)
                rec["releaseTime"] = timestamp(p_end, MSC_OFFSET_MIN)
                dur = (p_end - p_start) // 10**9 if p_start is not None else 0
                rec["callDuration"] = dur
                rec["causeForTerm"] = cft if last else 1
                if last and q850 is not None:
                    rec["diagnostics"] = ("gsm0408Cause", q850)
                if partial:
                    rec["sequenceNumber"] = k + 1
                rec["systemType"] = "gERAN" if kind == "mtCallRecord" else "iuUTRAN"
                cs_choice.set_val((kind, rec))
                raw = cs_choice.to_ber()
                start_ns = seize if k == 0 else p_start
                a_num = cust.e164[a]
                b_num = b_e164
                rows.append({
                    "file": "msc.ber", "service": "voice", "src_3gpp_record_type": kind,
                    "a_number": a_num, "b_number": b_num,
                    "msisdn": cust.e164[served], "imsi": cust.imsi[served],
                    "imei": cust.imei[served], "start": start_ns, "answer": p_start,
                    "end": p_end, "billsec_s": float(dur),
                    "outcome": outcome if last or not answered else "answered",
                    "cause_q850": q850 if last else None,
                    "closing_cause": cft if last else 1, "partial_seq": k + 1 if partial else None,
                    "call_id": callref.hex(), "node": MSC_NUMBERS[msc],
                    "leg": "orig" if kind == "moCallRecord" else "term",
                    "rat": "geran" if kind == "mtCallRecord" else "utran",
                    "location_area": f"{MCC:03d}-{MNC:02d}-{cust.lac[served]}",
                    "cell": f"{MCC:03d}-{MNC:02d}-{cust.lac[served]}-{cust.ci[served]}",
                    "volume_up_bytes": None, "volume_down_bytes": None, "raw": raw,
                })  # fmt: skip
                msc_records.append(raw)
            call_rows.append({"leg": kind, "call_id": callref.hex(), "outcome": outcome,
                              "billsec_s": float(talk), "partials": len(pieces),
                              "dropped": what == "dropped"})  # fmt: skip
    sms_rows = []
    for m in range(sms):
        a = int(rng.integers(customers))
        b = int((a + 1 + rng.integers(customers - 1)) % customers)
        t = ORIGIN.value + int(rng.integers(0, 86400)) * 10**9
        failed = rng.random() < 0.1
        rec = {"recordType": 6, "servedIMSI": tbcd(cust.imsi[a]), "servedIMEI": tbcd(cust.imei[a]),
               "servedMSISDN": address(cust.e164[a]),
               "msClassmark": b"\x33\x59\x81", "serviceCentre": address("+447700000100"),
               "messageReference": bytes([m % 256]),
               "recordingEntity": address("+" + MSC_NUMBERS[0]),
               "location": _cs_location(cust.lac[a], cust.ci[a]),
               "originationTime": timestamp(t, MSC_OFFSET_MIN),
               "destinationNumber": address(cust.e164[b])}  # fmt: skip
        if failed:
            rec["smsResult"] = ("gsm0408Cause", 27)
        cs_choice.set_val(("moSMSRecord", rec))
        raw = cs_choice.to_ber()
        msc_records.append(raw)
        rows.append(_sms_row("moSMSRecord", cust, a, cust.e164[a], cust.e164[b], t, failed, raw))
        sms_rows.append({"failed": failed})
        if not failed:
            t2 = t + int(rng.integers(1, 30)) * 10**9
            rec = {"recordType": 7, "serviceCentre": address("+447700000100"),
                   "servedIMSI": tbcd(cust.imsi[b]), "servedIMEI": tbcd(cust.imei[b]),
                   "servedMSISDN": address(cust.e164[b]), "msClassmark": b"\x33\x59\x81",
                   "recordingEntity": address("+" + MSC_NUMBERS[1]),
                   "location": _cs_location(cust.lac[b], cust.ci[b]),
                   "deliveryTime": timestamp(t2, MSC_OFFSET_MIN)}  # fmt: skip
            cs_choice.set_val(("mtSMSRecord", rec))
            raw = cs_choice.to_ber()
            msc_records.append(raw)
            rows.append(_sms_row("mtSMSRecord", cust, b, None, cust.e164[b], t2, False, raw))
    pgw_records: list[bytes] = []
    vendor_records: list[bytes] = []
    session_rows = []
    vendor_choice = None
    if vendor:
        from cemkit.io.threegpp.vendor import compile_modules

        vpath = out / "vendor.asn"
        vpath.write_text(VENDOR_MODULE)
        (vmod,) = compile_modules((str(vpath),))
        vendor_choice = vmod.GPRSRecord
    for s in range(sessions):
        u = int(rng.integers(customers))
        t0 = ORIGIN.value + int(rng.integers(0, 86400)) * 10**9
        length = int(rng.lognormal(6.0, 1.3)) + 1
        abnormal = rng.random() < 0.08
        rat_code, rat_name = _RATS[int(rng.choice(len(_RATS), p=_RAT_P))]
        cid = 100_000 + s * 13
        pgw = int(rng.integers(len(PGW_ADDRESSES)))
        ue_ip = ipaddress.ip_address("100.64.0.0") + int(rng.integers(1, 2**20))
        pieces = _pieces(t0, t0 + length * 10**9, partial_s)
        up_total = down_total = 0
        for k, (p0, p1) in enumerate(pieces):
            last = k == len(pieces) - 1
            up = int(rng.integers(1_000, 5_000_000))
            down = int(rng.integers(10_000, 50_000_000))
            up_total += up
            down_total += down
            cause = (4 if abnormal else 0) if last else 17
            rec = {"recordType": 85, "servedIMSI": tbcd(cust.imsi[u]),
                   "p-GWAddress": ("iPBinaryAddress", ("iPBinV4Address",
                                   ipaddress.ip_address(PGW_ADDRESSES[pgw]).packed)),
                   "chargingID": cid,
                   "servedPDPPDNAddress": ("iPAddress", ("iPBinaryAddress",
                                           ("iPBinV4Address", ue_ip.packed))),
                   "recordOpeningTime": timestamp(p0, PGW_OFFSET_MIN),
                   "duration": (p1 - p0) // 10**9, "causeForRecClosing": cause,
                   "servedMSISDN": address(cust.e164[u]), "servedIMEI": tbcd(cust.imei[u]),
                   "rATType": rat_code, "userLocationInformation": _uli(cust.tac[u], cust.eci[u]),
                   "listOfServiceData": [{"ratingGroup": 1, "datavolumeFBCUplink": up,
                                          "datavolumeFBCDownlink": down}]}  # fmt: skip
            if len(pieces) > 1:
                rec["recordSequenceNumber"] = k + 1
            rec_std = dict(rec)
            rec_std["servingNodeAddress"] = [("iPBinaryAddress", ("iPBinV4Address",
                                              bytes([10, 30, 0, 1])))]  # fmt: skip
            rec_std["chargingCharacteristics"] = b"\x08\x00"
            rec_std["servingNodeType"] = ["gTPSGW"]
            rec_std["listOfServiceData"] = [{**rec["listOfServiceData"][0],
                                             "timeOfReport": timestamp(p1, PGW_OFFSET_MIN),
                                             "serviceConditionChange": (0, 32)}]  # fmt: skip
            ps_choice.set_val(("pGWRecord", rec_std))
            raw = ps_choice.to_ber()
            pgw_records.append(raw)
            if vendor_choice is not None:
                vrec = dict(rec_std)
                vrec["p-GWAddress"] = ("iPBinV4Address", rec["p-GWAddress"][1][1])
                vrec["servingNodeAddress"] = [("iPBinV4Address", bytes([10, 30, 0, 1]))]
                vrec["servedPDPPDNAddress"] = ("iPAddress", ("iPBinV4Address", ue_ip.packed))
                vrec["vendorCellName"] = f"cell-{int(cust.eci[u]) % 1000}"
                vrec["vendorFlags"] = 3
                vendor_choice.set_val(("pGWRecord", vrec))
                vendor_records.append(vendor_choice.to_ber())
            rows.append({
                "file": "pgw.ber", "service": "data", "src_3gpp_record_type": "pGWRecord",
                "a_number": cust.e164[u], "b_number": None, "msisdn": cust.e164[u],
                "imsi": cust.imsi[u], "imei": cust.imei[u], "start": p0, "answer": p0, "end": p1,
                "billsec_s": float((p1 - p0) // 10**9), "outcome": outcomes.ANSWERED,
                "cause_q850": None, "closing_cause": cause,
                "partial_seq": k + 1 if len(pieces) > 1 else None, "call_id": str(cid),
                "node": PGW_ADDRESSES[pgw], "leg": None, "rat": rat_name,
                "location_area": f"{MCC:03d}-{MNC:02d}-{cust.tac[u]}",
                "cell": f"{MCC:03d}-{MNC:02d}-{cust.tac[u]}-{cust.eci[u]}",
                "volume_up_bytes": up, "volume_down_bytes": down, "raw": raw,
            })  # fmt: skip
        session_rows.append({"call_id": str(cid), "partials": len(pieces), "rat": rat_name,
                             "abnormal": abnormal, "volume_up_bytes": up_total,
                             "volume_down_bytes": down_total, "duration_s": float(length),
                             "a_number": cust.e164[u]})  # fmt: skip
    files = {"msc.ber": write_file(out / "msc.ber", msc_records, headers=headers),
             "pgw.ber": write_file(out / "pgw.ber", pgw_records, headers=headers)}  # fmt: skip
    if vendor:
        files["pgw-vendor.ber"] = write_file(out / "pgw-vendor.ber", vendor_records,
                                             headers=headers)  # fmt: skip
        files["vendor.asn"] = out / "vendor.asn"
    records = pd.DataFrame(rows)
    for c in ("start", "answer", "end"):
        records[c] = pd.to_datetime(records[c].astype("Int64"), unit="ns", utc=True)
    identities = sorted(set(cust.imsi) | set(cust.imei) | set(cust.e164))
    return {"files": files, "records": records, "calls": pd.DataFrame(call_rows),
            "sms": pd.DataFrame(sms_rows), "sessions": pd.DataFrame(session_rows),
            "identities": identities}  # fmt: skip


def _sms_row(kind: str, cust: _Customers, served: int, a: str | None, b: str | None, t: int,
             failed: bool, raw: bytes) -> dict[str, Any]:  # fmt: skip
    return {
        "file": "msc.ber", "service": "sms", "src_3gpp_record_type": kind, "a_number": a,
        "b_number": b, "msisdn": cust.e164[served], "imsi": cust.imsi[served],
        "imei": cust.imei[served], "start": t, "answer": None, "end": t, "billsec_s": 0.0,
        "outcome": outcomes.FAILED if failed else outcomes.ANSWERED, "cause_q850": None,
        "closing_cause": None, "partial_seq": None, "call_id": None,
        "node": MSC_NUMBERS[0 if kind == "moSMSRecord" else 1],
        "leg": "orig" if kind == "moSMSRecord" else "term",
        "rat": None, "location_area": f"{MCC:03d}-{MNC:02d}-{cust.lac[served]}",
        "cell": f"{MCC:03d}-{MNC:02d}-{cust.lac[served]}-{cust.ci[served]}",
        "volume_up_bytes": None, "volume_down_bytes": None, "raw": raw,
    }  # fmt: skip


def _pieces(start: int | None, end: int, every_s: int) -> list[tuple[Any, int]]:
    if start is None:
        return [(None, end)]
    out = []
    t = start
    step = every_s * 10**9
    while end - t > step:
        out.append((t, t + step))
        t += step
    out.append((t, end))
    return out


def write_file(path: Path, records: list[bytes], *, headers: bool = True) -> Path:
    """Write records as a TS 32.297 file (file header + CDR headers), or bare BER records."""
    if not headers:
        path.write_bytes(b"".join(records))
        return path
    body = b"".join(
        len(r).to_bytes(2, "big") + bytes([0xE0 | 5, (1 << 5) | 7, 18 - 10]) + r for r in records
    )  # release 18 (7 + extension 8), version 5; BER; TS 32.251
    hdr_len = 54
    header = bytearray(hdr_len)
    total = hdr_len + len(body)
    header[0:4] = total.to_bytes(4, "big")
    header[4:8] = hdr_len.to_bytes(4, "big")
    header[8] = 0xE0 | 5
    header[9] = 0xE0 | 5
    header[18:22] = len(records).to_bytes(4, "big")
    header[22:26] = (1).to_bytes(4, "big")
    header[26] = 0
    header[27:31] = b"\xff\xff\xff\xff"
    header[47] = 0
    # lengths of the CDR routing filter and of the private extension: 0; release extensions
    header[52] = 8
    header[53] = 8
    path.write_bytes(bytes(header) + body)
    return path
