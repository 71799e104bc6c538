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
    is not run per row: each name's trailing ``-<hex>`` run is replaced by ``-0`` first (a
    split at the last ``-``, no regex over the rows), which leaves the peer unchanged, and the
    peer is extracted from the few distinct names that remain.

    Examples
    --------
    >>> channel_peer(pa.array(["SIP/lon-sw2-00000000", "PJSIP/trunk-0000001a", "SIP/100-0000001",
    ...                        "SIP/172.19.45.122:5020-00000001", "", None])).to_pylist()
    ['lon-sw2', 'trunk', None, None, None, None]
    """
    arr = channels.combine_chunks() if isinstance(channels, pa.ChunkedArray) else channels
    if len(arr) == 0:
        return pa.array([], pa.string())
    parts = pc.split_pattern(arr, "-", max_splits=1, reverse=True)  # null: an empty list
    offsets = parts.offsets.to_numpy()
    flat = parts.values
    if len(flat) == 0:
        return pa.nulls(len(arr), pa.string())
    two = pa.array(np.diff(offsets) == 2)  # a null name keeps its null (its key stays null)
    last = len(flat) - 1
    head = pc.take(flat, pa.array(np.minimum(offsets[:-1], last)))
    tail = pc.take(flat, pa.array(np.clip(offsets[1:] - 1, 0, last)))
    # ``X-<hex>[;1|;2]`` with X non-empty after the last "/": the regex's optional suffix is
    # exactly that run, whatever its digits (a peer "X" either way); anything else is kept.
    hexy = pc.and_(
        pc.and_(two, pc.match_substring_regex(tail, r"^[0-9A-Fa-f]+(;[12])?$")),
        pc.invert(pc.or_(pc.ends_with(head, "/"), pc.equal(head, ""))),
    )
    leg = pc.if_else(pc.ends_with(tail, ";1"), ";1", pc.if_else(pc.ends_with(tail, ";2"), ";2", ""))
    short = pc.binary_join_element_wise(head, pa.scalar("-0"), leg, "")
    key = pc.if_else(hexy, short, arr)
    enc = pc.dictionary_encode(key)
    return pc.take(_channel_peer_regex(enc.dictionary), enc.indices)


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
