"""Asterisk ``cdr_csv`` files (Master.csv and per-accountcode files).

No header line; 16, 17, 18 or 21 fields depending on the Asterisk version and configuration
(detected from the first line, or declared with ``columns=``). Times are local wall-clock time
unless ``usegmtime=yes`` (then declare ``tz="UTC"``).

``node`` (the switch, trunk or peer the node groups of a service model match) comes from the
calling channel's peer (``SIP/lon-sw2-00000000`` → ``lon-sw2``), else from the called
channel's; a peer that is a phone's extension or a device address is not a node (null). The
``node=`` option overrides it with one name for the whole file.

Examples
--------
>>> import cemkit
>>> ddf = cemkit.load("Master.csv", format="asterisk", tz="Europe/Madrid")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import itertools
from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from cemkit import arrowstr, config
from cemkit.errors import FormatError
from cemkit.io.base import registry
from cemkit.io.convert import Converter
from cemkit.io.delimited import DelimitedLoader, Layout
from cemkit.io.textfile import open_input
from cemkit.outcomes import ASTERISK_DISPOSITION
from cemkit.schema import PII, extension_field

_BASE = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
    "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
)  # fmt: skip
#: Field lists by column count (cdr_csv.c: the optional fields come in this order).
LAYOUTS: dict[int, tuple[str, ...]] = {
    16: _BASE,
    17: (*_BASE, "uniqueid"),
    18: (*_BASE, "uniqueid", "userfield"),
    21: (*_BASE, "uniqueid", "userfield", "peeraccount", "linkedid", "sequence"),
}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_SECONDS = pa.timestamp("s")
_jit = njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL)

EXTENSIONS = (
    extension_field("src_accountcode", pa.string(), PII.QUASI, "Asterisk accountcode."),
    extension_field("src_clid", pa.string(), PII.FREE_TEXT, "Caller id text (name and number)."),
    extension_field("src_dcontext", pa.string(), PII.NONE, "Destination dialplan context."),
    extension_field("src_channel", pa.string(), PII.QUASI, "Calling channel name."),
    extension_field("src_dstchannel", pa.string(), PII.QUASI, "Called channel name."),
    extension_field("src_lastapp", pa.string(), PII.NONE, "Last dialplan application."),
    extension_field("src_lastdata", pa.string(), PII.FREE_TEXT, "Last application's arguments."),
    extension_field("src_amaflags", pa.string(), PII.NONE, "AMA flags (DOCUMENTATION, ...)."),
    extension_field("src_uniqueid", pa.string(), PII.QUASI, "Channel unique id."),
    extension_field("src_userfield", pa.string(), PII.FREE_TEXT, "User field."),
    extension_field("src_peeraccount", pa.string(), PII.QUASI, "Peer account code."),
    extension_field("src_sequence", pa.int64(), PII.NONE, "CDR sequence number."),
)  # fmt: skip


#: ``TECH/peer-suffix`` of a channel name (``SIP/lon-sw2-00000000``, ``PJSIP/trunk-0000001a``,
#: ``IAX2/peer-1234``, ``Local/100@ctx-00000001;1``): the peer (or trunk) is the middle part.
_CHANNEL_RE = r"^[A-Za-z0-9_]+/(?P<peer>[^/]+?)(?:-[0-9A-Fa-f]+)?(?:;[12])?$"
#: Peers that are no node: a phone by its extension or number (digits only), a device by its
#: address (``172.19.45.122:5020``, ``localhost:5060``), a Local channel (``100@context``).
_NOT_A_NODE_RE = r"^\+?[0-9]+$|[:@]|^[0-9]{1,3}(\.[0-9]{1,3}){3}$"


def channel_peer(channels: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The peer or trunk a channel name names, or null when it names a phone or an address.

    One jitted pass over the names' bytes (:func:`_peer_bounds`) reads what the regular
    expressions ``_CHANNEL_RE`` and ``_NOT_A_NODE_RE`` read; names with bytes other than
    printable ASCII take the regular expressions themselves (tests compare the two).

    Examples
    --------
    >>> channel_peer(pa.array(["SIP/lon-sw2-00000000", "PJSIP/trunk-0000001a", "SIP/100-0000001",
    ...                        "SIP/172.19.45.122:5020-00000001", "", None])).to_pylist()
    ['lon-sw2', 'trunk', None, None, None, None]
    """
    arr = arrowstr.as_string_array(channels)
    if len(arr) == 0:
        return pa.array([], pa.string())
    offsets, data, valid = arrowstr.buffers(arr)
    lo, hi = _peer_bounds(offsets, data, valid)
    out_offsets, out = _gather(data, lo, hi)
    peer = arrowstr.from_buffers(out_offsets, out, hi >= 0)
    odd = np.flatnonzero(hi == _IRREGULAR)
    if len(odd):  # not printable ASCII: the regular expressions decide
        where = np.zeros(len(arr), dtype=bool)
        where[odd] = True
        slow = _channel_peer_regex(pc.take(arr, pa.array(odd)).cast(pa.string()))
        peer = pc.replace_with_mask(peer, pa.array(where), slow)
    return peer


#: :func:`_peer_bounds`: no peer (null), and a name the kernel leaves to the regex.
_NO_PEER, _IRREGULAR = -1, -2
_SLASH, _DASH, _SEMI, _PLUS, _COLON, _AT, _DOT = (ord(c) for c in "/-;+:@.")


@_jit
def _is_hex(c: int) -> bool:
    return 48 <= c <= 57 or 65 <= c <= 70 or 97 <= c <= 102


@_jit
def _is_digit(c: int) -> bool:
    return 48 <= c <= 57


@_jit
def _not_a_node(data: np.ndarray, a: int, b: int) -> bool:
    """``_NOT_A_NODE_RE`` on ``data[a:b]``: digits (a leading '+'), ':' or '@', an IPv4 address."""
    k = a + 1 if b > a and data[a] == _PLUS else a
    digits = k < b
    for j in range(k, b):
        if not _is_digit(data[j]):
            digits = False
            break
    if digits:
        return True
    for j in range(a, b):
        if data[j] == _COLON or data[j] == _AT:
            return True
    groups, run = 0, 0
    for j in range(a, b):
        c = data[j]
        if _is_digit(c):
            run += 1
            if run > 3:
                return False
        elif c == _DOT and run > 0 and groups < 3:
            groups += 1
            run = 0
        else:
            return False
    return groups == 3 and run > 0


@_jit
def _peer_bounds(offsets: np.ndarray, data: np.ndarray,
                 valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Bounds of each name's peer in ``data``, as ``_CHANNEL_RE`` and ``_NOT_A_NODE_RE`` read it.

    ``TECH/peer[-hex][;1|;2]``: one '/', ``TECH`` of ``[A-Za-z0-9_]``; the peer is the shortest
    non-empty text after the '/' whose remainder is one of "", ";1", ";2", "-<hex>",
    "-<hex>;1", "-<hex>;2" (the lazy ``+?``). ``hi`` is ``_NO_PEER`` for no match or no node,
    ``_IRREGULAR`` for a name with a byte outside printable ASCII.
    """
    n = offsets.size - 1
    lo = np.zeros(n, np.int64)
    hi = np.full(n, _NO_PEER, np.int64)
    for i in range(n):
        if not valid[i]:
            continue
        a = np.int64(offsets[i])
        b = np.int64(offsets[i + 1])
        slash = -1
        ok = True
        for j in range(a, b):
            c = data[j]
            if c < 0x20 or c > 0x7E:
                hi[i] = _IRREGULAR
                ok = False
                break
            if c == _SLASH:
                if slash >= 0:
                    ok = False  # a second '/': no match (the peer holds none)
                slash = j
        if not ok or slash <= a:
            continue
        for j in range(a, slash):
            c = data[j]
            if not (_is_digit(c) or 65 <= c <= 90 or 97 <= c <= 122 or c == 95):
                ok = False
                break
        start = slash + 1
        if not ok or start >= b:
            continue
        # the shortest peer [start, end) whose remainder matches the optional suffixes
        end = b
        t = b
        if b - 2 >= start + 1 and data[b - 2] == _SEMI and (data[b - 1] == 49 or data[b - 1] == 50):
            end = b - 2
            t = b - 2
        q = t
        while q > start and _is_hex(data[q - 1]):
            q -= 1
        if q < t and q - 1 >= start + 1 and data[q - 1] == _DASH:
            end = q - 1
        if _not_a_node(data, int(start), int(end)):
            continue
        lo[i] = start
        hi[i] = end
    return lo, hi


@_jit
def _gather(data: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and bytes of ``data[lo[i]:hi[i]]`` (empty where ``hi < 0``)."""
    n = lo.size
    offsets = np.zeros(n + 1, np.int64)
    for i in range(n):
        offsets[i + 1] = offsets[i] + (hi[i] - lo[i] if hi[i] >= 0 else 0)
    out = np.empty(max(1, offsets[n]), np.uint8)
    for i in range(n):
        if hi[i] >= 0:
            out[offsets[i] : offsets[i + 1]] = data[lo[i] : hi[i]]
    return offsets, out[: offsets[n]]


def _channel_peer_regex(channels: pa.Array) -> pa.Array:
    """:func:`channel_peer` by the regular expressions alone (on few values; tests compare)."""
    found = pc.extract_regex(channels, _CHANNEL_RE)
    peer = pc.struct_field(found, [0])
    not_node = pc.fill_null(pc.match_substring_regex(peer, _NOT_A_NODE_RE), True)
    return pc.if_else(not_node, pa.scalar(None, pa.string()), peer)


def detect_columns(path: str, sample: int = 50) -> int:
    """The most common known field count among the first lines of a cdr_csv file (0: none).

    A damaged first line does not decide the layout of the whole file.
    """
    counts: Counter[int] = Counter()
    with open_input(path) as fh:
        for raw in itertools.islice(fh, sample):
            line = raw.decode("utf-8", errors="replace").strip("\r\n")
            if not line.strip():
                continue
            try:
                n = len(next(csv.reader([line])))
            except csv.Error:
                continue
            if n in LAYOUTS:
                counts[n] += 1
    return counts.most_common(1)[0][0] if counts else 0


@registry.register
class AsteriskLoader(DelimitedLoader):
    """Asterisk cdr_csv (16/17/18/21 columns)."""

    name = "asterisk"
    description = "Asterisk cdr_csv (Master.csv, per-accountcode files), 16/17/18/21 columns"
    extensions = EXTENSIONS
    options: ClassVar[dict[str, Any]] = {"columns": None, "node": None}

    def layout(self, path: str) -> Layout:
        """Declared or detected field list."""
        declared = self.opts["columns"]
        n = int(declared) if declared is not None else detect_columns(path)
        if declared is not None and n not in LAYOUTS:
            raise FormatError(
                f"asterisk cdr_csv has 16, 17, 18 or 21 columns, not {n}",
                hint="declare columns=16, 17, 18 or 21",
            )
        if n not in LAYOUTS:
            # Undetectable (e.g. first line damaged): assume the common 18 so rows of the wrong
            # width are quarantined rather than the whole file refused.
            n = 18
        typed = {"start": _SECONDS, "answer": _SECONDS, "end": _SECONDS,
                 "duration": pa.float64(), "billsec": pa.float64()}  # fmt: skip
        return Layout(
            LAYOUTS[n],
            types=tuple(typed.items()),
            timestamp_format=TIME_FORMAT,
            text=pa.large_string(),
        )

    def convert(self, conv: Converter, layout: Layout) -> Mapping[str, object]:
        """cdr_csv fields → canonical columns."""
        duration = conv.number("duration")
        billsec = conv.number("billsec")
        # local times read so that the call fits its duration across DST changes
        start, answer, end = conv.call_times(("start", "answer", "end"), TIME_FORMAT, self.tz,
                                             duration, billsec)  # fmt: skip
        missing_start = pc.is_null(start).to_numpy(zero_copy_only=False)
        conv.flag(missing_start, "start", "start time is empty")
        outcome = conv.lookup(conv.raw("disposition"), ASTERISK_DISPOSITION, pa.string(),
                              field="disposition", strict=True)  # fmt: skip
        # Asterisk before 12 writes answer = start... only for answered calls; an unanswered
        # call may carry an answer time of 0 / empty: keep answer only when answered.
        answered = pc.equal(outcome, "answered")
        answer = pc.if_else(pc.fill_null(answered, False), answer, pa.scalar(None, answer.type))
        uniqueid = conv.text("uniqueid")
        call_id = conv.text("linkedid") if conv.has("linkedid") else uniqueid
        node: object = self.opts["node"]
        if node is None:  # the peer/trunk of the calling channel, else of the called one
            peer = channel_peer(conv.text("channel"))
            if peer.null_count:  # the called channel only where the calling one names none
                need = pc.is_null(peer)
                dst = channel_peer(conv.text("dstchannel").filter(need))
                peer = pc.replace_with_mask(peer, need, dst)
            node = peer
        return {
            "record_kind": "cdr",
            "service": "voice",
            "a_number": conv.text("src"),
            "b_number": conv.text("dst"),
            "start": start,
            "answer": answer,
            "end": end,
            "duration_s": duration,
            "billsec_s": billsec,
            "outcome": outcome,
            "call_id": call_id,
            "node": node,
            "src_accountcode": conv.text("accountcode"),
            "src_clid": conv.text("clid"),
            "src_dcontext": conv.text("dcontext"),
            "src_channel": conv.text("channel"),
            "src_dstchannel": conv.text("dstchannel"),
            "src_lastapp": conv.text("lastapp"),
            "src_lastdata": conv.text("lastdata"),
            "src_amaflags": conv.text("amaflags"),
            "src_uniqueid": uniqueid,
            "src_userfield": conv.text("userfield"),
            "src_peeraccount": conv.text("peeraccount"),
            "src_sequence": conv.integer("sequence", pa.int64()),
        }
