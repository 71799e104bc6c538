"""Numba kernels of the TS 32.298 decoder: a BER TLV walk over the fields cemkit maps.

NumPy arrays in, NumPy arrays out, no pandas. ``buf`` is the file as ``uint8``. A field is
addressed by the offset and length of its value (``-1`` length: absent). Every kernel has a
slow, obviously-correct counterpart: the pycrate decoder plus :mod:`cemkit.io.threegpp.values`
(see ``tests/naive.py`` and ``tests/test_threegpp_kernels.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cemkit import config

_jit = njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)

_TBCD_CHARS = np.frombuffer(b"0123456789*#abc", dtype=np.uint8).copy()
_HEX_CHARS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).copy()
_MONTH_DAYS = np.array([31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
#: Sizes of the User Location Information parts, in flag-bit order (TS 29.274 8.21): CGI, SAI,
#: RAI, TAI, ECGI, LAI, macro eNodeB id, extended macro eNodeB id.
_ULI_SIZES = np.array([7, 7, 7, 5, 7, 5, 6, 6], dtype=np.int64)

#: Null time (the int64 bit pattern of NaT).
NULL_TIME = np.iinfo(np.int64).min

#: Record status codes written by :func:`frame_records` and :func:`walk_fields`.
OK = 0
BAD_TLV = 1  #: the record's BER framing is broken (its extent is known from a CDR header)
LOST = 2  #: framing lost: the rest of the file cannot be delimited
BAD_CHILD = 3  #: a component of the record is not valid BER
BAD_FORMAT = 4  #: a TS 32.297 CDR header says the record is not BER
NOT_RECORD = 5  #: the outer tag is not a context-specific constructed tag
BAD_FIELD = 6  #: a field the mapping needs has an invalid value (see the field code)

#: Largest tag number the per-kind tables cover; higher tags are vendor tags.
MAX_TAG = 256
#: Unknown tags remembered per record (more are counted, not listed).
MAX_UNKNOWN = 8


@_jit
def indefinite_end(buf, pos, end):
    """Offset just past the end-of-contents matching an indefinite length opened before ``pos``."""
    depth = 1
    p = pos
    while p < end:
        if p + 1 < end and buf[p] == 0 and buf[p + 1] == 0:
            depth -= 1
            p += 2
            if depth == 0:
                return p
            continue
        b0 = buf[p]
        p += 1
        if (b0 & 0x1F) == 0x1F:
            while p < end and (buf[p] & 0x80):
                p += 1
            p += 1
        if p >= end:
            return -1
        ln = np.int64(buf[p])
        p += 1
        if ln == 0x80:
            depth += 1
            continue
        if ln & 0x80:
            nb = ln & 0x7F
            if nb > 7 or p + nb > end:
                return -1
            v = np.int64(0)
            for k in range(nb):
                v = (v << 8) | np.int64(buf[p + k])
            p += nb
            ln = v
        p += ln
    return -1


@_jit
def read_tlv(buf, pos, end):
    """(first tag octet, tag number, value offset, value length); tag number -1 on error.

    For an indefinite length the value runs up to and including its end-of-contents octets
    (00 00), so ``offset + length`` is where the next TLV starts; walkers skip the EOC.
    """
    if pos >= end:
        return 0, -1, 0, 0
    b0: int = buf[pos]
    pos += 1
    tag = b0 & 0x1F
    if tag == 0x1F:
        tag = 0
        while True:
            if pos >= end or tag > (1 << 24):
                return b0, -1, 0, 0
            b: int = buf[pos]
            pos += 1
            tag = (tag << 7) | (b & 0x7F)
            if (b & 0x80) == 0:
                break
    if pos >= end:
        return b0, -1, 0, 0
    ln: int = buf[pos]
    pos += 1
    if ln & 0x80:
        nb = ln & 0x7F
        if nb == 0:  # indefinite length (constructed only): up to the matching end-of-contents
            if (b0 & 0x20) == 0:
                return b0, -1, 0, 0
            stop = indefinite_end(buf, pos, end)
            if stop < 0:
                return b0, -1, 0, 0
            return b0, tag, pos, stop - pos
        if nb > 7 or pos + nb > end:
            return b0, -1, 0, 0
        ln = 0
        for k in range(nb):
            ln = (ln << 8) | int(buf[pos + k])
        pos += nb
    if pos + ln > end:
        return b0, -1, 0, 0
    return b0, tag, pos, ln


@_jit
def frame_records(buf, start, stop, cdr_headers, fill, rec_off, rec_voff, rec_vlen, rec_tag,
                  rec_b0, rec_status):  # fmt: skip
    """Delimit the records of ``buf[start:stop]``; returns how many there are.

    Without CDR headers, runs of filler octets (0x00, 0xFF) between records are skipped. With
    TS 32.297 CDR headers (2-octet CDR length, release/version, format/TS number, and a release
    extension octet when the release field is 7), a record whose BER is broken is still
    delimited by its header and marked ``BAD_TLV``. When nothing delimits the rest of the file,
    one last entry covers it with status ``LOST``. With ``fill`` false only counts.
    """
    n = 0
    pos = start
    while pos < stop:
        if not cdr_headers:
            b = buf[pos]
            if b == 0x00 or b == 0xFF:
                pos += 1
                continue
            b0, tag, voff, vlen = read_tlv(buf, pos, stop)
            if tag < 0:
                if fill:
                    rec_off[n] = pos
                    rec_voff[n] = pos
                    rec_vlen[n] = stop - pos
                    rec_tag[n] = -1
                    rec_b0[n] = buf[pos]
                    rec_status[n] = LOST
                return n + 1
            if fill:
                rec_off[n] = pos
                rec_voff[n] = voff
                rec_vlen[n] = vlen
                rec_tag[n] = tag
                rec_b0[n] = b0
                rec_status[n] = OK if (b0 & 0xE0) == 0xA0 else NOT_RECORD
            n += 1
            pos = voff + vlen
            continue
        # TS 32.297 CDR header
        allfill = True
        for k in range(pos, stop):
            if buf[k] != 0x00 and buf[k] != 0xFF:
                allfill = False
                break
        if allfill:
            return n
        if pos + 4 > stop:
            if fill:
                rec_off[n] = pos
                rec_voff[n] = pos
                rec_vlen[n] = stop - pos
                rec_tag[n] = -1
                rec_b0[n] = buf[pos]
                rec_status[n] = LOST
            return n + 1
        length = (np.int64(buf[pos]) << 8) | np.int64(buf[pos + 1])
        hsize = 5 if (buf[pos + 2] >> 5) == 7 else 4
        fmt = buf[pos + 3] >> 5
        body = pos + hsize
        # the CDR length counts the CDR alone; accept writers that count the header too
        end = body + length
        b0, tag, voff, vlen = read_tlv(buf, body, stop)
        if tag >= 0 and voff + vlen != end and voff + vlen == pos + length:
            end = pos + length
        if end > stop or end < body:
            if fill:
                rec_off[n] = pos
                rec_voff[n] = body
                rec_vlen[n] = stop - body
                rec_tag[n] = -1
                rec_b0[n] = 0
                rec_status[n] = LOST
            return n + 1
        if fill:
            rec_off[n] = pos
            rec_b0[n] = b0
            if fmt != 1:
                rec_voff[n] = body
                rec_vlen[n] = end - body
                rec_tag[n] = -1
                rec_status[n] = BAD_FORMAT
            elif tag < 0 or voff + vlen != end:
                rec_voff[n] = body
                rec_vlen[n] = end - body
                rec_tag[n] = -1
                rec_status[n] = BAD_TLV
            else:
                rec_voff[n] = voff
                rec_vlen[n] = vlen
                rec_tag[n] = tag
                rec_status[n] = OK if (b0 & 0xE0) == 0xA0 else NOT_RECORD
        n += 1
        pos = end
    return n


@_jit
def walk_fields(buf, voff, vlen, kind, slot_table, known_table, status, off, ln, unknown,
                n_unknown):  # fmt: skip
    """Find the needed components of each record (a SET: children in any order).

    ``slot_table[kind, tag]`` is the slot of a needed component (-1: not needed);
    ``known_table[kind, tag]`` is true for tags TS 32.298 defines. Records whose ``status`` is
    not OK or whose ``kind`` is negative are skipped. Unknown tags are listed in ``unknown``
    (first :data:`MAX_UNKNOWN`) and counted in ``n_unknown``; a child that is not valid BER
    sets ``status`` to ``BAD_CHILD``.
    """
    n = voff.shape[0]
    for i in range(n):
        if status[i] != OK or kind[i] < 0:
            continue
        k = kind[i]
        pos = voff[i]
        end = voff[i] + vlen[i]
        while pos < end:
            b0, tag, v, vl = read_tlv(buf, pos, end)
            if tag < 0:
                status[i] = BAD_CHILD
                break
            if b0 == 0 and tag == 0 and vl == 0:  # end-of-contents of an indefinite length
                pos = v
                continue
            if (b0 & 0xC0) == 0x80 and tag < MAX_TAG:
                s = slot_table[k, tag]
                if s >= 0:
                    off[i, s] = v
                    ln[i, s] = vl
                elif not known_table[k, tag]:
                    if n_unknown[i] < MAX_UNKNOWN:
                        unknown[i, n_unknown[i]] = tag
                    n_unknown[i] += 1
            else:
                if n_unknown[i] < MAX_UNKNOWN:
                    unknown[i, n_unknown[i]] = tag
                n_unknown[i] += 1
            pos = v + vl


@_jit
def ber_integers(buf, off, ln, out, bad):
    """Signed BER INTEGER values (1 to 8 octets); absent fields keep ``out``; 0-length bad."""
    for i in range(off.shape[0]):
        vl = ln[i]
        if vl < 0:
            continue
        if vl == 0 or vl > 8:
            bad[i] = True
            continue
        p = off[i]
        v = np.int64(buf[p])
        if v >= 128:
            v -= 256
        for k in range(1, vl):
            v = (v << 8) | np.int64(buf[p + k])
        out[i] = v


@_jit
def tbcd_strings(buf, off, ln, skip, data, offsets, valid):
    """TBCD digits of each field (after ``skip`` octets), as ASCII into ``data``.

    Low nibble first; a 0xF nibble is filler and ends the digits. ``offsets`` has n + 1 entries;
    ``data`` must hold 2 x (total length) octets. Returns the octets written.
    """
    chars = _TBCD_CHARS
    w = 0
    for i in range(off.shape[0]):
        offsets[i] = w
        vl = ln[i]
        if vl <= skip:
            valid[i] = False
            continue
        valid[i] = True
        p = off[i] + skip
        stop = off[i] + vl
        while p < stop:
            b = buf[p]
            lo = b & 0x0F
            if lo == 0x0F:
                break
            data[w] = chars[lo]
            w += 1
            hi = b >> 4
            if hi == 0x0F:
                break
            data[w] = chars[hi]
            w += 1
            p += 1
    offsets[off.shape[0]] = w
    return w


@_jit
def address_ton(buf, off, ln, out):
    """Type of number (bits 7-5 of the first octet) of AddressString fields; -1 when absent."""
    for i in range(off.shape[0]):
        if ln[i] > 0:
            out[i] = (buf[off[i]] >> 4) & 0x07


@_jit
def _bcd(b):
    hi = b >> 4
    lo = b & 0x0F
    if hi > 9 or lo > 9:
        return -1
    return np.int64(hi) * 10 + np.int64(lo)


@_jit
def _days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@_jit
def timestamps(buf, off, ln, out, bad):
    """TS 32.298 TimeStamp (BCD YYMMDDhhmmss, ASCII sign, BCD hhmm offset) → UTC epoch ns.

    ``YY`` is 20YY. Local time minus the offset is UTC. Invalid values set ``bad``.
    """
    mdays = _MONTH_DAYS
    for i in range(off.shape[0]):
        vl = ln[i]
        if vl < 0:
            continue
        if vl != 9:
            bad[i] = True
            continue
        p = off[i]
        yy = _bcd(buf[p])
        mo = _bcd(buf[p + 1])
        dd = _bcd(buf[p + 2])
        hh = _bcd(buf[p + 3])
        mi = _bcd(buf[p + 4])
        ss = _bcd(buf[p + 5])
        sign = buf[p + 6]
        oh = _bcd(buf[p + 7])
        om = _bcd(buf[p + 8])
        if (yy < 0 or mo < 1 or mo > 12 or dd < 1 or dd > mdays[mo - 1] or hh < 0 or hh > 23
                or mi < 0 or mi > 59 or ss < 0 or ss > 59 or oh < 0 or oh > 14 or om < 0
                or om > 59 or (sign != 0x2B and sign != 0x2D)):  # fmt: skip
            bad[i] = True
            continue
        y = 2000 + yy
        if mo == 2 and dd == 29 and not (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
            bad[i] = True
            continue
        secs = _days_from_civil(y, mo, dd) * 86400 + hh * 3600 + mi * 60 + ss
        offset = oh * 3600 + om * 60
        if sign == 0x2B:
            secs -= offset
        else:
            secs += offset
        out[i] = secs * 1_000_000_000


@_jit
def _uint(buf, p, vl):
    v = np.int64(0)
    for k in range(vl):
        v = (v << 8) | np.int64(buf[p + k])
    return v


@_jit
def locations(buf, off, ln, area, cell, plmn_off, bad):
    """LocationAreaAndCell (locationAreaCode [0], cellId [1], mCC-MNC [2]) → LAC, CI, PLMN."""
    for i in range(off.shape[0]):
        if ln[i] < 0:
            continue
        pos = off[i]
        end = off[i] + ln[i]
        while pos < end:
            _b0, tag, v, vl = read_tlv(buf, pos, end)
            if tag < 0:
                bad[i] = True
                break
            if tag == 0 and vl >= 1 and vl <= 4:
                area[i] = _uint(buf, v, vl)
            elif tag == 1 and vl >= 1 and vl <= 4:
                cell[i] = _uint(buf, v, vl)
            elif tag == 2 and vl == 3:
                plmn_off[i] = v
            pos = v + vl


@_jit
def octet_uints(buf, off, ln, out):
    """Unsigned big-endian value of short OCTET STRINGs (LAC, cell id); -1 when absent."""
    for i in range(off.shape[0]):
        if ln[i] >= 1 and ln[i] <= 7:
            out[i] = _uint(buf, off[i], ln[i])


@_jit
def user_locations(buf, off, ln, area, cell, plmn_off, bad):
    """TS 29.274 User Location Information (CGI, SAI, RAI, TAI, ECGI, ...) → area, cell, PLMN.

    The area is the TAC of a TAI, else the LAC of a CGI/SAI/RAI; the cell the ECI of an ECGI,
    else the CI of a CGI. The PLMN is the one of the part the cell (else the area) came from.
    """
    for i in range(off.shape[0]):
        vl = ln[i]
        if vl < 0:
            continue
        if vl < 1:
            bad[i] = True
            continue
        p = off[i]
        end = p + vl
        flags = buf[p]
        q = p + 1
        sizes = _ULI_SIZES
        for bit in range(8):
            if not (flags >> bit) & 1:
                continue
            size = sizes[bit]
            if q + size > end:
                bad[i] = True
                break
            if bit == 0:  # CGI: PLMN, LAC, CI
                if area[i] < 0:
                    area[i] = _uint(buf, q + 3, 2)
                cell[i] = _uint(buf, q + 5, 2)
                plmn_off[i] = q
            elif bit == 1 or bit == 2:  # SAI / RAI: PLMN, LAC, SAC / RAC
                if area[i] < 0:
                    area[i] = _uint(buf, q + 3, 2)
                    if plmn_off[i] < 0:
                        plmn_off[i] = q
            elif bit == 3:  # TAI: PLMN, TAC
                area[i] = _uint(buf, q + 3, 2)
                if plmn_off[i] < 0:
                    plmn_off[i] = q
            elif bit == 4:  # ECGI: PLMN, 4 spare bits, ECI (28 bits)
                cell[i] = _uint(buf, q + 3, 4) & 0x0FFFFFFF
                plmn_off[i] = q
            q += size


@_jit
def plmn_codes(buf, plmn_off, mcc, mnc, mnc_digits):
    """MCC, MNC and MNC length of 3-octet PLMN identities (TS 24.008 10.5.1.3)."""
    for i in range(plmn_off.shape[0]):
        p = plmn_off[i]
        if p < 0:
            continue
        d1 = buf[p] & 0x0F
        d2 = buf[p] >> 4
        d3 = buf[p + 1] & 0x0F
        m3 = buf[p + 1] >> 4
        m1 = buf[p + 2] & 0x0F
        m2 = buf[p + 2] >> 4
        if d1 > 9 or d2 > 9 or d3 > 9 or m1 > 9 or m2 > 9 or (m3 > 9 and m3 != 0x0F):
            continue
        mcc[i] = d1 * 100 + d2 * 10 + d3
        if m3 == 0x0F:
            mnc[i] = m1 * 10 + m2
            mnc_digits[i] = 2
        else:
            mnc[i] = m1 * 100 + m2 * 10 + m3
            mnc_digits[i] = 3


@_jit
def choice_leaf(buf, off, ln, leaf_off, leaf_len, leaf_tag):
    """Descend constructed alternatives to the first primitive value (addresses, CHOICEs)."""
    for i in range(off.shape[0]):
        if ln[i] < 0:
            continue
        pos = off[i]
        end = off[i] + ln[i]
        for _depth in range(8):
            b0, tag, v, vl = read_tlv(buf, pos, end)
            if tag < 0:
                break
            if (b0 & 0x20) == 0:
                leaf_off[i] = v
                leaf_len[i] = vl
                leaf_tag[i] = tag
                break
            pos = v
            end = v + vl


@_jit
def diagnostics(buf, off, ln, kind, value):
    """Diagnostics CHOICE: the alternative's tag, and its INTEGER value when it has one."""
    for i in range(off.shape[0]):
        if ln[i] < 0:
            continue
        b0, tag, v, vl = read_tlv(buf, off[i], off[i] + ln[i])
        if tag < 0:
            continue
        kind[i] = tag
        if (b0 & 0x20) == 0 and vl >= 1 and vl <= 8:
            x = np.int64(buf[v])
            if x >= 128:
                x -= 256
            for k in range(1, vl):
                x = (x << 8) | np.int64(buf[v + k])
            value[i] = x


@_jit
def volume_sums(buf, off, ln, tag_up, tag_down, up, down, bad):
    """Sum the uplink / downlink INTEGERs over the items of a SEQUENCE OF (volume lists)."""
    for i in range(off.shape[0]):
        if ln[i] < 0:
            continue
        su = np.int64(0)
        sd = np.int64(0)
        seen = False
        pos = off[i]
        end = off[i] + ln[i]
        while pos < end:
            _b0, tag, v, vl = read_tlv(buf, pos, end)
            if tag < 0:
                bad[i] = True
                break
            q = v
            qend = v + vl
            while q < qend:
                c0, ctag, cv, cl = read_tlv(buf, q, qend)
                if ctag < 0:
                    bad[i] = True
                    break
                if (c0 & 0xE0) == 0x80 and ctag in (tag_up, tag_down) and cl >= 1:
                    x = np.int64(0)
                    for k in range(cl):
                        x = (x << 8) | np.int64(buf[cv + k])
                    if ctag == tag_up:
                        su += x
                    else:
                        sd += x
                    seen = True
                q = cv + cl
            pos = v + vl
        if seen:
            up[i] = su
            down[i] = sd


@_jit
def hex_strings(buf, off, ln, data, offsets):
    """Lower-case hex of each field (call references); returns the octets written."""
    chars = _HEX_CHARS
    w = 0
    for i in range(off.shape[0]):
        offsets[i] = w
        for k in range(max(ln[i], 0)):
            b = buf[off[i] + k]
            data[w] = chars[b >> 4]
            data[w + 1] = chars[b & 0x0F]
            w += 2
    offsets[off.shape[0]] = w
    return w
