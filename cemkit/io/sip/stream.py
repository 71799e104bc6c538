r"""TCP reassembly and SIP framing over streams (plain TCP, and WebSocket per RFC 6455 / RFC 7118).

:class:`TcpConnection` puts the segments of one connection back in sequence order per direction
(retransmitted and overlapping bytes are dropped, out-of-order segments wait for the gap to
fill), then a :class:`StreamFramer` cuts the byte stream into SIP messages by Content-Length,
several per segment or one over many segments. A stream that does not start with SIP (or with
a WebSocket handshake) within its first bytes is not SIP and is ignored.

Examples
--------
>>> conn = TcpConnection()
>>> msg = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n"
>>> out = conn.feed(0, 1, 0.0, 1000, msg[:10], 0) + conn.feed(0, 2, 0.1, 1010, msg[10:], 0)
>>> [(m.packet, m.raw == msg) for m in out]
[(2, True)]
"""

from __future__ import annotations

import re
from typing import NamedTuple

from cemkit.io.sip.capture import Problem
from cemkit.io.sip.message import SipParseError, head_content_length, looks_like_sip, split_head

#: Bytes a stream may hold before it must have shown a SIP start line or a WebSocket handshake.
SNIFF_LIMIT = 8192
#: A message head longer than this is not SIP (the stream is resynchronised).
MAX_HEAD = 65536
#: Out-of-order bytes held while waiting for a missing segment before giving up on it.
MAX_PENDING_BYTES = 1 << 20

_SYN = 0x02
_ACK = 0x10
#: Held out-of-order segments older than this (capture seconds) mean the gap will not fill.
GAP_TIMEOUT_S = 2.0
_START_AT_LINE = re.compile(rb"(?m)^(?:[A-Z]+ \S+ SIP/2\.0\r?$|SIP/2\.0 \d{3}[ \r])")
_WS_UPGRADE = re.compile(rb"(?im)^upgrade[ \t]*:[ \t]*websocket")


class StreamMessage(NamedTuple):
    """A SIP message cut from a stream, with the packet that completed it."""

    packet: int
    ts: float
    raw: bytes
    transport: str  #: "tcp" or "ws"


def _seq_diff(a: int, b: int) -> int:
    """Return a - b in 32-bit sequence space (signed)."""
    return ((a - b + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


class _Direction:
    """Reassembly state of one direction of a TCP connection."""

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.pending: dict[int, tuple[int, float, bytes]] = {}
        self.pending_bytes = 0
        self.framer = StreamFramer()


class TcpConnection:
    """Both directions of one TCP connection (direction 0: first sender seen, 1: the other)."""

    def __init__(self) -> None:
        self.directions = (_Direction(), _Direction())

    def feed(self, direction: int, packet: int, ts: float, seq: int, data: bytes,
             flags: int, ack: int | None = None) -> list[StreamMessage | Problem]:  # fmt: skip
        """Account one segment; return the messages (and problems) it completes.

        A gap (bytes missing before held segments) is given up on when the other side
        acknowledges bytes past it (the capture missed them: they will never come), or when the
        held segments are older than :data:`GAP_TIMEOUT_S`.
        """
        d = self.directions[direction]
        out: list[StreamMessage | Problem] = []
        other = self.directions[1 - direction]
        if (ack is not None and flags & _ACK and other.pending and other.next_seq is not None
                and _seq_diff(ack, other.next_seq) > 0):  # fmt: skip
            out.extend(self._skip_gap(other, packet))
        for held in (d, other):
            if held.pending and ts - min(t for _, t, _ in held.pending.values()) > GAP_TIMEOUT_S:
                out.extend(self._skip_gap(held, packet))
        if flags & _SYN:
            d.next_seq = (seq + 1) & 0xFFFFFFFF
            d.pending.clear()
            d.pending_bytes = 0
            if not data:
                return out
            seq = d.next_seq
        if not data or d.framer.mode == "ignore":
            return out
        if d.next_seq is None:
            d.next_seq = seq
        diff = _seq_diff(seq, d.next_seq)
        if diff > 0:
            if seq not in d.pending:
                d.pending[seq] = (packet, ts, data)
                d.pending_bytes += len(data)
            if d.pending_bytes > MAX_PENDING_BYTES:
                out.extend(self._skip_gap(d, packet))
            return out
        if diff < 0:
            if diff + len(data) <= 0:
                return out  # a retransmission of bytes already delivered
            data = data[-diff:]
        out.extend(self._deliver(d, packet, ts, data))
        return out

    def _deliver(
        self, d: _Direction, packet: int, ts: float, data: bytes
    ) -> list[StreamMessage | Problem]:
        assert d.next_seq is not None
        out = d.framer.feed(packet, ts, data)
        d.next_seq = (d.next_seq + len(data)) & 0xFFFFFFFF
        while d.pending:
            ready = [s for s in d.pending if _seq_diff(s, d.next_seq) <= 0]
            if not ready:
                break
            for s in sorted(ready, key=lambda s: _seq_diff(s, d.next_seq or 0)):
                p, t, chunk = d.pending.pop(s)
                d.pending_bytes -= len(chunk)
                overlap = _seq_diff(d.next_seq, s)
                if overlap < len(chunk):
                    chunk = chunk[overlap:]
                    out.extend(d.framer.feed(p, t, chunk))
                    d.next_seq = (d.next_seq + len(chunk)) & 0xFFFFFFFF
        return out

    def _skip_gap(self, d: _Direction, packet: int) -> list[StreamMessage | Problem]:
        """Give up on missing bytes: resume at the earliest held segment."""
        assert d.next_seq is not None
        first = min(d.pending, key=lambda s: _seq_diff(s, d.next_seq or 0))
        missing = _seq_diff(first, d.next_seq)
        reason = (
            f"TCP stream misses {missing} byte(s) (not captured); "
            "stream resynchronised at the next SIP start line"
        )
        out: list[StreamMessage | Problem] = [Problem(packet, reason)]
        out.extend(d.framer.gap(packet))
        p, t, chunk = d.pending.pop(first)
        d.pending_bytes -= len(chunk)
        d.next_seq = first
        out.extend(self._deliver(d, p, t, chunk))
        return out

    def flush(self) -> list[StreamMessage | Problem]:
        """End of capture: deliver what is held past gaps and report unfinished messages."""
        out: list[StreamMessage | Problem] = []
        for d in self.directions:
            while d.pending and d.framer.mode != "ignore":
                last_packet = max(p for p, _, _ in d.pending.values())
                out.extend(self._skip_gap(d, last_packet))
            out.extend(d.framer.finish())
        return out


class StreamFramer:
    """Cut one direction's byte stream into SIP messages (plain, or inside WebSocket frames)."""

    def __init__(self) -> None:
        self.mode = "sniff"  #: sniff, sip, ws-handshake, ws, ignore
        self.buffer = bytearray()
        self.last_packet = 0
        self._ws_fragments = bytearray()
        self._garbage = 0
        self._ws_start = 0.0
        self._fed = 0  #: bytes fed so far: the buffer starts at stream offset _fed - len(buffer)
        self._marks: list[tuple[int, float]] = []  #: (stream offset of a segment, its time)

    def feed(self, packet: int, ts: float, data: bytes) -> list[StreamMessage | Problem]:
        """Append bytes and return the complete messages."""
        if self.mode == "ignore":
            return []
        self._marks.append((self._fed, ts))
        self.buffer += data
        self._fed += len(data)
        self.last_packet = packet
        out: list[StreamMessage | Problem] = []
        if self.mode == "sniff":
            self._sniff(packet, out)
        if self.mode == "sip":
            self._frame_sip(packet, ts, out)
        if self.mode == "ws-handshake":
            end = split_head(self.buffer)
            if end >= 0:
                del self.buffer[:end]
                self.mode = "ws"
        if self.mode == "ws":
            self._frame_ws(packet, ts, out)
        return out

    def _sniff(self, packet: int, out: list[StreamMessage | Problem]) -> None:
        buf = self.buffer.lstrip(b"\r\n")
        if not buf:
            return
        if looks_like_sip(bytes(buf[:200])):
            self.buffer = buf
            self.mode = "sip"
            return
        if buf.startswith((b"GET ", b"HTTP/1.1 101")):
            end = split_head(buf)
            if end < 0:
                if len(buf) > SNIFF_LIMIT:
                    self.mode = "ignore"
                return
            if _WS_UPGRADE.search(buf[:end]) or buf.startswith(b"HTTP/1.1 101"):
                self.buffer = buf
                self.mode = "ws-handshake"
                return
            self.mode = "ignore"
            self.buffer.clear()
            return
        # A capture that starts in the middle of a SIP connection: find the next message start.
        m = _START_AT_LINE.search(buf[:SNIFF_LIMIT])
        if m is not None:
            self.buffer = buf[m.start() :]
            self.mode = "sip"
        elif len(buf) >= SNIFF_LIMIT:
            self.mode = "ignore"
            self.buffer.clear()

    def _frame_sip(self, packet: int, ts: float, out: list[StreamMessage | Problem]) -> None:
        buf = self.buffer
        while True:
            skip = 0
            while skip < len(buf) and buf[skip] in (0x0D, 0x0A):  # CRLF keep-alives (RFC 5626)
                skip += 1
            if skip:
                del buf[:skip]
            if not buf:
                return
            if not looks_like_sip(bytes(buf[:200])):
                m = _START_AT_LINE.search(buf, 1)
                if m is None:  # keep a tail: the next start line may still be arriving
                    keep = min(len(buf), 200)
                    self._garbage += len(buf) - keep
                    del buf[: len(buf) - keep]
                    return
                self._garbage += m.start()
                del buf[: m.start()]
                reason = (
                    f"{self._garbage} byte(s) in a SIP stream are not a SIP message; "
                    "skipped to the next start line"
                )
                out.append(Problem(packet, reason))
                self._garbage = 0
                continue
            end = split_head(buf)
            if end < 0:
                if len(buf) > MAX_HEAD:
                    out.append(Problem(packet, "SIP message head longer than 64 KiB; skipped"))
                    del buf[:1]
                    continue
                return
            try:
                length = head_content_length(bytes(buf[:end])) or 0
            except SipParseError as exc:
                out.append(Problem(packet, f"SIP message over TCP dropped: {exc.reason}"))
                del buf[:end]
                continue
            total = end + length
            if len(buf) < total:
                return
            out.append(StreamMessage(packet, self._start_ts(ts), bytes(buf[:total]), "tcp"))
            del buf[:total]

    def _start_ts(self, default: float) -> float:
        """Time of the segment that carried the first byte now in the buffer."""
        base = self._fed - len(self.buffer)
        while len(self._marks) > 1 and self._marks[1][0] <= base:
            self._marks.pop(0)
        return self._marks[0][1] if self._marks and self._marks[0][0] <= base else default

    def _frame_ws(self, packet: int, ts: float, out: list[StreamMessage | Problem]) -> None:
        buf = self.buffer
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            opcode = b0 & 0x0F
            masked = b1 & 0x80
            length = b1 & 0x7F
            pos = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = int.from_bytes(buf[2:4], "big")
                pos = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = int.from_bytes(buf[2:10], "big")
                pos = 10
            mask = b""
            if masked:
                if len(buf) < pos + 4:
                    return
                mask = bytes(buf[pos : pos + 4])
                pos += 4
            if len(buf) < pos + length:
                return
            payload = bytes(buf[pos : pos + length])
            if not self._ws_fragments:
                self._ws_start = self._start_ts(ts)
            del buf[: pos + length]
            if mask:
                payload = _unmask(payload, mask)
            if opcode == 0x8:
                self.mode = "ignore"
                return
            if opcode in (0x0, 0x1, 0x2):
                self._ws_fragments += payload
                if b0 & 0x80:  # FIN: one WebSocket message carries one SIP message (RFC 7118)
                    message = bytes(self._ws_fragments)
                    out.append(StreamMessage(packet, self._ws_start, message, "ws"))
                    self._ws_fragments.clear()

    def gap(self, packet: int) -> list[StreamMessage | Problem]:
        """Bytes are missing before what comes next: drop the unfinished message."""
        out: list[StreamMessage | Problem] = []
        if self.mode in ("sip", "sniff") and self.buffer.strip(b"\r\n"):
            out.append(Problem(packet, "SIP message cut by missing TCP bytes; dropped"))
        self.buffer.clear()
        if self.mode == "sip":
            self.mode = "sniff"
        return out

    def finish(self) -> list[StreamMessage | Problem]:
        """End of capture: an unfinished SIP message is reported."""
        if self.mode == "sip" and self.buffer.strip(b"\r\n"):
            self.buffer.clear()
            return [Problem(self.last_packet, "SIP message incomplete at the end of the capture")]
        return []


def _unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR a WebSocket payload with its 4-byte masking key."""
    n = len(payload)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
