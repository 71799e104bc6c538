"""One pass over a capture: packets → transport segments → SIP messages and RTP → dialog rows.

Parallel reading. Separate capture files are separate parts with nothing shared: that is how
probes write (rotated files) and what scales. One capture cannot be cut by packet ranges (a TCP
message or a dialog may span any cut, and RTP jitter is a running filter), so a large file is
read as ``shards`` parts that each scan the whole file (read, decode, reassemble TCP, find each
message's Call-ID) but parse and keep state only for the dialogs whose Call-ID hashes to them
(CRC-32 modulo ``shards``), with those dialogs' RTP. Each dialog is processed whole by exactly
one part, so the result does not depend on the number of shards; the shared scan is a large
share of the work, so shards spread memory and work over a cluster but speed one file up
modestly (benchmarks/results/sip.md). Problems that belong to no Call-ID (undecodable frames,
bogus timestamps, stream gaps) are reported by shard 0 only, so each lands in the quarantine
once.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from cemkit.io.sip.capture import (
    SUPPORTED_LINKTYPES,
    CaptureClock,
    PacketDecoder,
    Problem,
    Segment,
    open_reader,
    read_packets,
)
from cemkit.io.sip.dialogs import DialogTracker
from cemkit.io.sip.message import SipParseError, looks_like_sip, parse_message
from cemkit.io.sip.rtp import parse_rtp
from cemkit.io.sip.stream import StreamMessage, TcpConnection

#: Ports where a non-SIP payload that starts like text is reported as a malformed SIP message.
DEFAULT_SIP_PORTS = (5060, 5061, 5080)
#: Characters of a quarantined message kept in the quarantine's ``raw`` column.
RAW_KEEP = 2000

_CALL_ID = re.compile(rb"(?im)^(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)")


def shard_of(call_id: str | bytes, shards: int) -> int:
    """The shard that owns a Call-ID (stable across processes and Python versions)."""
    raw = call_id.encode("utf-8", "replace") if isinstance(call_id, str) else call_id
    return zlib.crc32(raw.strip()) % shards


@dataclass
class QuarantineRow:
    """One quarantined packet or message."""

    packet: int
    field: str
    reason: str
    raw: str


#: RFC 3261 Timer B (64 x T1 = 32 s): how long a client waits for a final response to an INVITE.
TIMER_B_S = 32.0


def _unresolved_at_end(rows: list[dict[str, Any]], capture_end: float | None
                       ) -> tuple[list[dict[str, Any]], list[QuarantineRow]]:  # fmt: skip
    """Split off INVITEs whose final response may have come after the capture stopped.

    An INVITE with no final response, no CANCEL and no BYE whose last message is within Timer B
    of the capture's last packet did not fail: the capture ended before its outcome was known.
    It is set aside (quarantined with that reason, so counts still reconcile), not counted as
    a failed attempt.
    """
    if capture_end is None:
        return rows, []
    kept, unknown = [], []
    for row in rows:
        if (
            row["src_sip_state"] == "no_final_response"
            and row["sip_status"] is None
            and row["outcome"] == "failed"
            and capture_end - row["end"] <= TIMER_B_S
        ):
            unknown.append(QuarantineRow(
                int(row["first_packet"]), "sip_status",
                f"INVITE without a final response within Timer B ({TIMER_B_S:g} s) of the end of "
                "the capture: outcome unknown, not counted", "",
            ))  # fmt: skip
        else:
            kept.append(row)
    return kept, unknown


#: Counters about the packets of the file: every part (shard) scans all of them, so only
#: shard 0 reports these (the others' would count the same packets again).
PACKET_COUNTERS = ("packets", "packets_bad_timestamp", "packets_undecodable",
                   "packets_fragment_held", "packets_udp", "packets_tcp", "packets_other",
                   "stream_problems", "clock_jumps", "packets_clock_adjusted")  # fmt: skip


@dataclass
class ExtractResult:
    """Rows of one pass (plain dicts; the loader makes frames of them) and counters."""

    xdrs: list[dict[str, Any]]
    registrations: list[dict[str, Any]]
    quarantine: list[QuarantineRow]
    counters: dict[str, int] = field(default_factory=dict)


class _Pass:
    def __init__(self, shard: int, shards: int, sip_ports: Iterable[int]) -> None:
        self.shard = shard
        self.shards = shards
        self.sip_ports = frozenset(sip_ports)
        self.tracker = DialogTracker()
        self.quarantine: list[QuarantineRow] = []
        self.tcp: dict[tuple[str, int, str, int], tuple[TcpConnection, int]] = {}
        # packets (shard 0 reports them): packets = bad timestamp + undecodable + fragment held
        # + UDP + TCP + other; SIP messages (each shard its own Call-IDs): sip_messages =
        # malformed + in records + other (OPTIONS, out of dialog)
        self.counters = dict.fromkeys((*PACKET_COUNTERS, "sip_messages", "sip_messages_malformed",
                                       "rtp_packets"), 0)  # fmt: skip

    def problem(self, problem: Problem, field: str = "", raw: str = "") -> None:
        if self.shard == 0:
            self.quarantine.append(QuarantineRow(problem.packet, field, problem.reason, raw))

    def owns(self, raw: bytes) -> bool:
        if self.shards == 1:
            return True
        m = _CALL_ID.search(raw, 0, raw.find(b"\r\n\r\n") if b"\r\n\r\n" in raw else len(raw))
        if m is None or not m.group(1).strip():
            return self.shard == 0
        return shard_of(m.group(1), self.shards) == self.shard

    def sip(self, packet: int, ts: float, raw: bytes, seg: Segment, transport: str) -> None:
        if not self.owns(raw):
            return
        try:
            msg = parse_message(raw, stream=transport != "udp")
        except SipParseError as exc:
            self.counters["sip_messages"] += 1
            self.counters["sip_messages_malformed"] += 1
            self.quarantine.append(QuarantineRow(
                packet, exc.field, f"malformed SIP message: {exc.reason}",
                raw[:RAW_KEEP].decode("utf-8", "replace"),
            ))  # fmt: skip
            return
        self.counters["sip_messages"] += 1
        self.tracker.on_message(msg, packet, ts, seg.src, seg.sport, seg.dst, seg.dport, transport)

    def segment(self, seg: Segment) -> None:
        if seg.transport == "udp":
            self.counters["packets_udp"] += 1
            self.udp(seg)
        elif seg.transport == "tcp":
            self.counters["packets_tcp"] += 1
            self.tcp_segment(seg)
        else:
            self.counters["packets_other"] += 1

    def udp(self, seg: Segment) -> None:
        payload = seg.payload
        if not payload:
            return
        if payload[0] >> 6 == 2 and self.tracker.is_media(seg.dst, seg.dport):
            header = parse_rtp(payload)
            if header is not None and self.tracker.on_rtp(seg.ts, seg.dst, seg.dport, header):
                self.counters["rtp_packets"] += 1
                return
        if looks_like_sip(payload):
            self.sip(seg.packet, seg.ts, payload, seg, "udp")
            return
        if not payload.strip(b"\r\n\x00 "):
            return  # keep-alive
        on_sip_port = seg.dport in self.sip_ports or seg.sport in self.sip_ports
        if on_sip_port and 0x41 <= payload[0] <= 0x5A:
            if self.shard == 0:  # reported (and counted) once, by shard 0
                self.counters["sip_messages"] += 1
                self.counters["sip_messages_malformed"] += 1
            self.problem(Problem(seg.packet, "malformed SIP message: start line is neither a "
                                             "request line nor a status line"),
                         "start", payload[:RAW_KEEP].decode("utf-8", "replace"))  # fmt: skip
            return

    def tcp_segment(self, seg: Segment) -> None:
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        entry = self.tcp.get(key)
        if entry is None:
            reverse = self.tcp.get((seg.dst, seg.dport, seg.src, seg.sport))
            entry = (reverse[0], 1 - reverse[1]) if reverse is not None else (TcpConnection(), 0)
            self.tcp[key] = entry
        conn, direction = entry
        events = conn.feed(direction, seg.packet, seg.ts, seg.seq, seg.payload, seg.flags, seg.ack)
        self.stream_events(events, seg)

    def stream_events(self, events: list[StreamMessage | Problem], seg: Segment) -> None:
        for event in events:
            if isinstance(event, Problem):
                self.counters["stream_problems"] += 1
                self.problem(event, "tcp")
            else:
                self.sip(event.packet, event.ts, event.raw, seg, event.transport)

    def finish(self) -> None:
        for key, (conn, direction) in list(self.tcp.items()):
            if direction != 0:
                continue
            src, sport, dst, dport = key
            seg = Segment(0, 0.0, "tcp", src, sport, dst, dport, b"")
            self.stream_events(conn.flush(), seg)


def extract(fh: BinaryIO, *, shard: int = 0, shards: int = 1,
            sip_ports: Iterable[int] = DEFAULT_SIP_PORTS) -> ExtractResult:  # fmt: skip
    """Read a capture (pcap or pcapng) and return its dialog and registration rows.

    Parameters
    ----------
    fh : binary file object
        The capture, positioned at its start.
    shard, shards : int
        Which share of the Call-IDs to keep (see the module docstring).
    sip_ports : iterable of int
        Ports on which a text payload that is not SIP is quarantined rather than skipped.

    Raises
    ------
    ValueError
        When the file is not a pcap/pcapng capture, or its link type is not supported.
    """
    state = _Pass(shard, shards, sip_ports)
    reader = open_reader(fh)
    clock = CaptureClock()
    frames = read_packets(reader, clock)
    reader_linktype = int(reader.datalink())
    if reader_linktype not in SUPPORTED_LINKTYPES:
        raise ValueError(f"link-layer type {reader_linktype} is not supported")
    decoder = PacketDecoder(reader_linktype)
    capture_end: float | None = None
    for frame in frames:
        if isinstance(frame, Problem):
            bad_time = "timestamp" in frame.reason
            if bad_time:  # a packet read; the other problem is a truncated file: no packet
                state.counters["packets"] += 1
                state.counters["packets_bad_timestamp"] += 1
            state.problem(frame, "timestamp" if bad_time else "")
            continue
        state.counters["packets"] += 1
        capture_end = frame.ts if capture_end is None else max(capture_end, frame.ts)
        held = decoder.fragments_held
        result = decoder.decode(frame.packet, frame.ts, frame.data)
        if result is None:
            fragment = decoder.fragments_held != held
            state.counters["packets_fragment_held" if fragment else "packets_other"] += 1
        elif isinstance(result, Problem):
            state.counters["packets_undecodable"] += 1
            state.problem(result, "", frame.data[:64].hex())
        else:
            state.segment(result)
    state.finish()
    state.counters["sip_messages_other"] = state.tracker.other_messages
    state.counters["sip_messages_in_records"] = state.tracker.messages_in_records
    affects = clock.affects if clock.jumps else None
    xdrs, unknown = _unresolved_at_end(state.tracker.xdr_rows(affects), capture_end)
    registrations = state.tracker.registration_rows(capture_end, affects)
    state.counters["invites_unresolved_at_end"] = len(unknown)
    state.counters["records"] = len(xdrs) + len(registrations)
    state.counters["clock_jumps"] = clock.jumps
    state.counters["packets_clock_adjusted"] = clock.adjusted_packets
    state.counters["records_clock_adjusted"] = sum(
        bool(r["src_sip_clock_adjusted"]) for r in (*xdrs, *registrations)
    )
    return ExtractResult(xdrs, registrations, state.quarantine + unknown, state.counters)
