"""Plain-Python readings of TS 32.298 field values.

They are the library decoder's path, and the reference the fast kernels are tested against.

Each function takes the value as pycrate decodes it (bytes for OCTET STRINGs, int for INTEGERs,
nested tuples for CHOICEs, dicts for SEQUENCEs, lists for SEQUENCE OFs) and returns what the
mapping needs, or ``None``.
"""

from __future__ import annotations

import calendar
import ipaddress
from typing import Any

from cemkit.io.threegpp.spec import TBCD_DIGITS


class FieldValueError(ValueError):
    """A field's value is not what TS 32.298 says it is (the message never holds the value)."""


def tbcd(octets: bytes) -> str:
    """TBCD digits, low nibble first, up to the first filler (0xF) nibble.

    >>> tbcd(bytes([0x32, 0x54, 0xF6]))
    '23456'
    """
    out: list[str] = []
    for b in octets:
        for nib in (b & 0x0F, b >> 4):
            if nib == 0x0F:
                return "".join(out)
            out.append(TBCD_DIGITS[nib])
    return "".join(out)


def address(octets: bytes) -> tuple[int, str] | None:
    """AddressString: (type of number, TBCD digits); None when it holds no digit.

    >>> address(bytes([0x91, 0x44, 0x97]))
    (1, '4479')
    """
    if len(octets) < 2:
        return None
    return (octets[0] >> 4) & 0x07, tbcd(octets[1:])


def _bcd(b: int) -> int:
    hi, lo = b >> 4, b & 0x0F
    if hi > 9 or lo > 9:
        raise FieldValueError("not a BCD octet")
    return hi * 10 + lo


def timestamp_ns(octets: bytes) -> int:
    """TimeStamp (YYMMDDhhmmss BCD, ASCII '+'/'-', hhmm BCD offset) → UTC epoch nanoseconds.

    >>> timestamp_ns(bytes([0x26, 0x03, 0x02, 0x10, 0x00, 0x00, 0x2B, 0x01, 0x00]))
    1772442000000000000
    """
    if len(octets) != 9:
        raise FieldValueError(f"a TimeStamp has 9 octets, found {len(octets)}")
    yy, mo, dd, hh, mi, ss = (_bcd(b) for b in octets[:6])
    sign = octets[6]
    oh, om = _bcd(octets[7]), _bcd(octets[8])
    if sign not in (0x2B, 0x2D) or oh > 14 or om > 59 or hh > 23 or mi > 59 or ss > 59:
        raise FieldValueError("TimeStamp out of range")
    if not 1 <= mo <= 12 or not 1 <= dd <= calendar.monthrange(2000 + yy, mo)[1]:
        raise FieldValueError("TimeStamp date out of range")
    secs = calendar.timegm((2000 + yy, mo, dd, hh, mi, ss, 0, 0, 0))
    offset = oh * 3600 + om * 60
    secs += -offset if sign == 0x2B else offset
    return secs * 1_000_000_000


def plmn(octets: bytes) -> tuple[int, int, int] | None:
    """PLMN identity (3 octets) → (MCC, MNC, MNC digits), or None when not BCD."""
    d = [octets[0] & 0x0F, octets[0] >> 4, octets[1] & 0x0F, octets[1] >> 4,
         octets[2] & 0x0F, octets[2] >> 4]  # fmt: skip
    mcc = d[0] * 100 + d[1] * 10 + d[2]
    if max(d[0], d[1], d[2], d[4], d[5]) > 9 or (d[3] > 9 and d[3] != 0x0F):
        return None
    if d[3] == 0x0F:
        return mcc, d[4] * 10 + d[5], 2
    return mcc, d[4] * 100 + d[5] * 10 + d[3], 3


def location(value: dict[str, Any]) -> tuple[int | None, int | None, bytes | None]:
    """LocationAreaAndCell → (LAC, cell id, PLMN octets)."""
    lac = value.get("locationAreaCode")
    ci = value.get("cellId")
    mm = value.get("mCC-MNC")
    return (
        int.from_bytes(lac, "big") if lac is not None and 1 <= len(lac) <= 4 else None,
        int.from_bytes(ci, "big") if ci is not None and 1 <= len(ci) <= 4 else None,
        mm if mm is not None and len(mm) == 3 else None,
    )


def user_location(octets: bytes) -> tuple[int | None, int | None, bytes | None]:
    """TS 29.274 User Location Information → (area, cell, PLMN octets); see the kernel."""
    if not octets:
        raise FieldValueError("empty User Location Information")
    flags = octets[0]
    q = 1
    area = cell = None
    plmn_octets = None
    for bit, size in enumerate((7, 7, 7, 5, 7, 5, 6, 6)):
        if not flags >> bit & 1:
            continue
        if q + size > len(octets):
            raise FieldValueError("User Location Information shorter than its flags say")
        part = octets[q : q + size]
        if bit == 0:
            area = int.from_bytes(part[3:5], "big") if area is None else area
            cell = int.from_bytes(part[5:7], "big")
            plmn_octets = part[:3]
        elif bit in (1, 2):
            if area is None:
                area = int.from_bytes(part[3:5], "big")
                plmn_octets = plmn_octets or part[:3]
        elif bit == 3:
            area = int.from_bytes(part[3:5], "big")
            plmn_octets = plmn_octets or part[:3]
        elif bit == 4:
            cell = int.from_bytes(part[3:7], "big") & 0x0FFFFFFF
            plmn_octets = part[:3]
        q += size
    return area, cell, plmn_octets


def choice_leaf(value: Any) -> Any:
    """The innermost value of nested CHOICE tuples (``('iPAddress', ('iPBinaryAddress', ...))``)."""
    while isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        value = value[1]
    return value


def ip_text(value: Any) -> str | None:
    """Text of an IP address given as binary octets (4 or 16, or with an IPv6 prefix length)."""
    leaf = choice_leaf(value)
    if isinstance(leaf, str):
        return leaf
    if not isinstance(leaf, bytes | bytearray):
        return None
    if len(leaf) in (4, 16):
        return str(ipaddress.ip_address(bytes(leaf)))
    if len(leaf) in (17, 18):  # IPv6 prefix (+ prefix length) as some PGWs write it
        return str(ipaddress.ip_address(bytes(leaf[-16:])))
    return None


def diagnostics(value: Any) -> tuple[int, int | None] | None:
    """Diagnostics CHOICE → (alternative index, INTEGER value or None)."""
    from cemkit.io.threegpp.spec import DIAGNOSTICS

    if not isinstance(value, tuple):
        return None
    names = {v: k for k, v in DIAGNOSTICS.items()}
    name, inner = value
    if name not in names:
        return None
    return names[name], inner if isinstance(inner, int) and not isinstance(inner, bool) else None


def volumes(items: list[dict[str, Any]], up: str, down: str) -> tuple[int, int] | None:
    """Sum of the uplink / downlink volumes over a volume list; None when none has one."""
    su = sd = 0
    seen = False
    for item in items:
        if up in item:
            su += int(item[up])
            seen = True
        if down in item:
            sd += int(item[down])
            seen = True
    return (su, sd) if seen else None
