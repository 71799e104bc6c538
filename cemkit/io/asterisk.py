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

from cemkit.errors import FormatError
from cemkit.io.base import registry
from cemkit.io.convert import NUMBER_TEXT, Converter
from cemkit.io.csvblock import string_offsets
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

    Channel names are unique per call (their ``-00000000`` suffix), so the regular expression
    is not run per row: each name's trailing ``-<hex>`` run is replaced by ``-0`` first (found
    in the names' bytes with NumPy: the last ``-`` of each name, its tail checked for hex
    digits), which leaves the peer unchanged, and the peer is extracted from the few distinct
    names that remain.

    Examples
    --------
    >>> channel_peer(pa.array(["SIP/lon-sw2-00000000", "PJSIP/trunk-0000001a", "SIP/100-0000001",
    ...                        "SIP/172.19.45.122:5020-00000001", "", None])).to_pylist()
    ['lon-sw2', 'trunk', None, None, None, None]
    """
    arr = channels.combine_chunks() if isinstance(channels, pa.ChunkedArray) else channels
    if len(arr) == 0:
        return pa.array([], pa.string())
    if not pa.types.is_string(arr.type):
        arr = arr.cast(pa.string())
    enc = pc.dictionary_encode(_without_hex_suffix(arr))
    return pc.take(_channel_peer_regex(enc.dictionary), enc.indices)


#: Bytes that are hexadecimal digits.
_HEX = np.zeros(256, dtype=bool)
_HEX[np.frombuffer(b"0123456789abcdefABCDEF", dtype=np.uint8)] = True


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions ``starts[i] .. starts[i] + lengths[i] - 1`` of every range, in order."""
    total = int(lengths.sum())
    first = np.cumsum(lengths) - lengths
    return np.repeat(starts - first, lengths) + np.arange(total, dtype=np.int64)


def _without_hex_suffix(arr: pa.Array) -> pa.Array:
    """Names ``X-<hex>[;1|;2]`` as ``X-0[;1|;2]`` (X non-empty after its last ``/``); others kept.

    The regular expression's optional ``-<hex>`` suffix is exactly that run whatever its digits,
    so the peer it extracts is the same (tests compare every row with the expression alone).
    """
    n = len(arr)
    offsets = string_offsets(arr).astype(np.int64)
    start, end = offsets[:-1], offsets[1:]
    data = (
        np.frombuffer(arr.buffers()[2], dtype=np.uint8)
        if arr.buffers()[2]
        else np.zeros(0, np.uint8)
    )
    dashes = np.flatnonzero(data[: offsets[-1]] == ord("-"))
    if not len(dashes):
        return arr
    at = np.searchsorted(dashes, end) - 1  # the last "-" before each name's end ...
    dash = dashes[np.maximum(at, 0)]
    hexy = (at >= 0) & (dash >= start)  # ... inside the name
    if arr.null_count:
        hexy &= np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), dtype=bool)
    # leg: a trailing ";1" / ";2"
    two = end - start >= 2
    semi = np.zeros(n, dtype=bool)
    semi[two] = (data[end[two] - 2] == ord(";")) & np.isin(data[end[two] - 1], (ord("1"), ord("2")))
    leg = np.where(semi, 2, 0)
    # the tail between the "-" and the leg: at least one byte, every byte a hex digit
    tail_len = np.where(hexy, end - leg - dash - 1, 0)
    hexy &= tail_len > 0
    tail_len = np.where(hexy, tail_len, 0)
    not_hex = np.concatenate([[0], np.cumsum(~_HEX[data[_ranges(dash + 1, tail_len)]])])
    first = np.cumsum(tail_len) - tail_len
    hexy &= not_hex[first + tail_len] == not_hex[first]
    # X: non-empty, not ending in "/"
    hexy &= (dash > start) & (data[np.maximum(dash - 1, 0)] != ord("/"))
    if not hexy.any():
        return arr
    head = np.where(hexy, dash - start, end - start)
    lengths = head + np.where(hexy, 2 + leg, 0)
    out_off = np.concatenate([[0], np.cumsum(lengths)])
    out = np.empty(int(out_off[-1]), dtype=np.uint8)
    out[_ranges(out_off[:-1], head)] = data[_ranges(start, head)]
    at = out_off[:-1][hexy] + head[hexy]
    out[at] = ord("-")
    out[at + 1] = ord("0")
    legged = hexy & semi
    at = out_off[:-1][legged] + head[legged]
    out[at + 2] = ord(";")
    out[at + 3] = data[end[legged] - 1]
    validity = arr.buffers()[0] if arr.null_count else None
    if validity is not None and arr.offset:
        validity = pa.py_buffer(np.packbits(
            np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), dtype=bool),
            bitorder="little"))  # fmt: skip
    return pa.Array.from_buffers(
        pa.string(), n, [validity, pa.py_buffer(out_off.astype(np.int32)), pa.py_buffer(out)]
    )


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
                 "duration": pa.float64(), "billsec": pa.float64(),
                 "src": NUMBER_TEXT, "dst": NUMBER_TEXT}  # fmt: skip
        return Layout(LAYOUTS[n], types=tuple(typed.items()), timestamp_format=TIME_FORMAT)

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
            "a_number": conv.number_text("src"),
            "b_number": conv.number_text("dst"),
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
