"""Capture reading and packet decoding down to transport payloads (dpkt does the decoding).

:func:`read_packets` yields the raw frames of a pcap or pcapng file with their 1-based packet
number; :class:`PacketDecoder` turns one frame into a :class:`Segment` (transport, addresses,
ports, payload), reassembling fragmented IPv4 datagrams on the way (SIP over UDP often exceeds
the path MTU with a large SDP body). Frames that cannot be decoded are reported as
:class:`Problem` objects, never raised, so one bad packet does not stop a capture.

Examples
--------
>>> decoder = PacketDecoder(linktype=1)
>>> decoder.decode(1, 0.0, b"")
Problem(packet=1, reason='frame could not be decoded: empty frame')
"""

from __future__ import annotations

import bisect
import math
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

import dpkt

#: Timestamps outside this window (1990-01-01 .. 2100-01-01, seconds since the epoch) are bogus.
MIN_EPOCH_S = 631_152_000.0
MAX_EPOCH_S = 4_102_444_800.0

#: A packet more than this (seconds) after the one before it means the capture clock jumped:
#: far more than any SIP timer (Timer B/F 32 s, Timer C > 3 min, session refreshes, REGISTER
#: lifetimes of an hour or so) ...
MAX_CLOCK_JUMP_S = 86_400.0
#: ... and so does one more than this (seconds) *before* it (a few packets out of order by less
#: are normal where interfaces are merged into one capture).
CLOCK_BACK_TOLERANCE_S = 1.0

#: Link-layer types handled (pcap LINKTYPE_* values).
LINK_ETHERNET = 1
LINK_NULL = 0
LINK_LOOP = 108
LINK_RAW = (101, 12, 14)
LINK_IPV4 = 228
LINK_IPV6 = 229
LINK_SLL = 113
LINK_SLL2 = 276
SUPPORTED_LINKTYPES = frozenset({LINK_ETHERNET, LINK_NULL, LINK_LOOP, *LINK_RAW, LINK_IPV4,
                                 LINK_IPV6, LINK_SLL, LINK_SLL2})  # fmt: skip

#: Fragment sets older than this (seconds) are dropped (RFC 791 suggests 15 s as a lower bound).
FRAGMENT_TIMEOUT_S = 30.0


_IPV4_FIELDS = struct.Struct("!H2xHxB")  # total length, flags+fragment offset, protocol
_PORTS = struct.Struct("!HH")
_TCP_FIELDS = struct.Struct("!HHIIH")  # ports, seq, ack, data offset + flags


class Segment(NamedTuple):
    """A transport payload with its addressing (one UDP datagram or one TCP segment)."""

    packet: int
    ts: float
    transport: str  #: "udp", "tcp" or "other" (another IP protocol, ignored)
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes
    seq: int = 0  #: TCP sequence number
    flags: int = 0  #: TCP flags
    ack: int = 0  #: TCP acknowledgement number


@dataclass(frozen=True)
class Problem:
    """A frame that could not be used, and why (goes to the quarantine)."""

    packet: int
    reason: str


class CaptureFrame(NamedTuple):
    """One frame read from a capture file (``ts``: on the repaired clock, see CaptureClock)."""

    packet: int
    ts: float
    data: bytes


class CaptureClock:
    """Repairs a capture clock that jumps, and says where it did.

    Packets are taken in packet-number order (the order the probe wrote them). A timestamp
    more than :data:`MAX_CLOCK_JUMP_S` after the previous packet's, or more than
    :data:`CLOCK_BACK_TOLERANCE_S` before it, or outside 1990..2100, is a jump of the capture
    clock, not of the network: the clock of the first packet is the reference, and the packets
    after a jump keep their spacing but continue from the packet before it (no time is assumed
    to pass across the jump). When the raw clock comes back to the reference (a single bogus
    timestamp, a clock set back), the reference is used again. The SIP exchange is still
    evidence; only its times are repaired, and the records whose messages lie on a repaired
    clock or span a jump are flagged (``src_sip_clock_adjusted``).

    Examples
    --------
    >>> clock = CaptureClock()
    >>> [clock.correct(p, t) for p, t in enumerate([100.0, 101.0, 1e9, 1e9 + 2, 103.0], 1)]
    [100.0, 101.0, 101.0, 103.0, 103.0]
    >>> clock.jumps, clock.adjusted_packets, clock.jump_packets, clock.adjusted_ranges
    (2, 2, [3, 5], [[3, 4]])
    """

    def __init__(self) -> None:
        self.jumps = 0  #: jumps seen
        self.adjusted_packets = 0  #: packets whose time was repaired
        self.jump_packets: list[int] = []  #: packet numbers at which the clock jumped
        self.adjusted_ranges: list[list[int]] = []  #: [first, last] packets on a repaired clock
        self._offset = 0.0  #: raw - repaired time of the current packet
        self._last_raw: float | None = None
        self._last: float = 0.0  #: repaired time of the previous packet
        self._reference: float = 0.0  #: raw time of the last packet on the reference clock

    def correct(self, packet: int, raw: float) -> float:
        """The repaired time of a packet (packets in packet-number order)."""
        if self._last_raw is None:
            self._last_raw = self._last = self._reference = raw
            return raw
        if not _plausible(raw - self._last_raw):
            self.jumps += 1
            self.jump_packets.append(packet)
            if self._offset != 0.0 and _plausible(raw - self._reference):
                self._offset = 0.0  # the clock came back to the reference
            else:
                self._offset = raw - self._last
        self._last_raw = raw
        ts = raw - self._offset
        self._last = ts
        if self._offset == 0.0:
            self._reference = raw
        else:
            self.adjusted_packets += 1
            if self.adjusted_ranges and self.adjusted_ranges[-1][1] == packet - 1:
                self.adjusted_ranges[-1][1] = packet
            else:
                self.adjusted_ranges.append([packet, packet])
        return ts

    def affects(self, first_packet: int, last_packet: int) -> bool:
        """Whether packets first..last lie on a repaired clock or span a jump."""
        i = bisect.bisect_right(self.jump_packets, first_packet)
        if i < len(self.jump_packets) and self.jump_packets[i] <= last_packet:
            return True
        j = bisect.bisect_right(self.adjusted_ranges, [last_packet, math.inf]) - 1
        return j >= 0 and self.adjusted_ranges[j][1] >= first_packet


def _plausible(step: float) -> bool:
    return -CLOCK_BACK_TOLERANCE_S <= step <= MAX_CLOCK_JUMP_S


def open_reader(fh: BinaryIO) -> dpkt.pcap.Reader | dpkt.pcapng.Reader:
    """Open a pcap or pcapng reader on a binary file object, by the file's magic number."""
    magic = fh.read(4)
    fh.seek(0)
    if magic == b"\x0a\x0d\x0d\x0a":
        return dpkt.pcapng.Reader(fh)
    return dpkt.pcap.Reader(fh)


def read_packets(
    reader: dpkt.pcap.Reader | dpkt.pcapng.Reader, clock: CaptureClock | None = None
) -> Iterator[CaptureFrame | Problem]:
    """Yield the frames of a capture (from :func:`open_reader`) with 1-based packet numbers.

    Timestamps go through ``clock`` (a :class:`CaptureClock`), which repairs jumps. A
    timestamp that is not finite, or outside 1990..2100 before any packet gave the clock a
    reference, yields a :class:`Problem` for that packet instead of a frame. A truncated file
    ends with a :class:`Problem`.
    """
    clock = clock if clock is not None else CaptureClock()
    number = 0
    started = False
    iterator = iter(reader)
    while True:
        try:
            ts, data = next(iterator)
        except StopIteration:
            return
        except (dpkt.NeedData, dpkt.UnpackError, ValueError, struct.error) as exc:
            yield Problem(number + 1, f"capture file is truncated or corrupt after this packet: "
                                      f"{type(exc).__name__}")  # fmt: skip
            return
        number += 1
        tsf = float(ts)
        in_range = math.isfinite(tsf) and MIN_EPOCH_S <= tsf <= MAX_EPOCH_S
        if not math.isfinite(tsf) or (not started and not in_range):
            yield Problem(number, "bogus packet timestamp (outside 1990..2100) before any "
                                  "usable one; packet skipped")  # fmt: skip
            continue
        started = True
        yield CaptureFrame(number, clock.correct(number, tsf), bytes(data))


def _inet(family: int, raw: bytes) -> str:
    return socket.inet_ntop(family, raw)


class PacketDecoder:
    """Decode frames of one link type into transport segments, reassembling IPv4 fragments."""

    def __init__(self, linktype: int) -> None:
        self.linktype = linktype
        self._fragments: dict[tuple[bytes, bytes, int, int], _FragmentSet] = {}
        self.fragments_held = 0  #: frames kept as a fragment of a datagram not yet whole
        self._addresses: dict[bytes, str] = {}

    def decode(self, packet: int, ts: float, data: bytes) -> Segment | Problem | None:
        """Decode one frame: a segment, a problem, or None for traffic that is not UDP/TCP."""
        if not data:
            return Problem(packet, "frame could not be decoded: empty frame")
        if self.linktype == LINK_ETHERNET:
            fast = self._fast_ipv4(packet, ts, data)
            if fast is not None:
                return fast
        try:
            ip = self._network_layer(data)
        except (dpkt.UnpackError, dpkt.NeedData, IndexError, ValueError) as exc:
            return Problem(packet, f"frame could not be decoded: {type(exc).__name__}")
        if ip is None:
            return None
        try:
            return self._transport(packet, ts, ip)
        except (dpkt.UnpackError, dpkt.NeedData, IndexError, ValueError) as exc:
            return Problem(packet, f"IP packet could not be decoded: {type(exc).__name__}")

    def _fast_ipv4(self, packet: int, ts: float, data: bytes) -> Segment | None:
        """Ethernet + option-less, unfragmented IPv4 + UDP/TCP: most of a probe's traffic.

        Building dpkt objects costs ~25 us a frame; reading the fixed header fields directly is
        several times cheaper. Anything else (VLAN tags, IP options, fragments, IPv6, short or
        odd frames) returns None and goes through dpkt.
        """
        if len(data) < 42 or data[12:14] != b"\x08\x00" or data[14] != 0x45:
            return None
        total, frag, proto = _IPV4_FIELDS.unpack_from(data, 16)
        end = 14 + total
        if frag & 0x3FFF or total < 28 or end > len(data):
            return None
        src = self._addr(data[26:30])
        dst = self._addr(data[30:34])
        if proto == 17:
            sport, dport = _PORTS.unpack_from(data, 34)
            return Segment(packet, ts, "udp", src, sport, dst, dport, data[42:end])
        if proto == 6 and total >= 40:
            sport, dport, seq, ack, off_flags = _TCP_FIELDS.unpack_from(data, 34)
            start = 34 + (off_flags >> 12) * 4
            if start > end:
                return None
            return Segment(packet, ts, "tcp", src, sport, dst, dport, data[start:end], seq,
                           off_flags & 0x1FF, ack)  # fmt: skip
        return Segment(packet, ts, "other", src, 0, dst, 0, b"")

    def _addr(self, raw: bytes) -> str:
        text = self._addresses.get(raw)
        if text is None:
            if len(self._addresses) > 100_000:
                self._addresses.clear()
            text = self._addresses[raw] = socket.inet_ntoa(raw)
        return text

    def _network_layer(self, data: bytes) -> dpkt.ip.IP | dpkt.ip6.IP6 | None:
        lt = self.linktype
        if lt == LINK_ETHERNET:
            frame: dpkt.Packet = dpkt.ethernet.Ethernet(data)
            ip = frame.data
        elif lt in (LINK_NULL, LINK_LOOP):
            frame = dpkt.loopback.Loopback(data)
            ip = frame.data
        elif lt == LINK_SLL:
            ip = dpkt.sll.SLL(data).data
        elif lt == LINK_SLL2:
            ip = dpkt.sll2.SLL2(data).data
        elif lt in LINK_RAW or lt in (LINK_IPV4, LINK_IPV6):
            version = data[0] >> 4
            ip = dpkt.ip.IP(data) if version == 4 else dpkt.ip6.IP6(data)
        else:
            raise ValueError(f"unsupported link type {lt}")
        if isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
            return ip
        if isinstance(ip, bytes) and _claims_ip(lt, data):
            # dpkt keeps an undecodable network layer as bytes: the IP header is broken.
            raise ValueError("IP header truncated or invalid")
        return None

    def _transport(
        self, packet: int, ts: float, ip: dpkt.ip.IP | dpkt.ip6.IP6
    ) -> Segment | Problem | None:
        if isinstance(ip, dpkt.ip.IP):
            family = socket.AF_INET
            more = bool(ip.mf)
            offset = ip.offset * 8
            if more or offset:
                whole = self._reassemble(ts, ip, offset, more)
                if whole is None:
                    self.fragments_held += 1
                    return None
                ip = whole
            body = ip.data
        else:
            family = socket.AF_INET6
            body = ip.data
            if dpkt.ip.IP_PROTO_FRAGMENT in getattr(ip, "extension_hdrs", {}):
                return Problem(packet, "IPv6 fragments are not reassembled; packet skipped")
        if isinstance(body, dpkt.udp.UDP):
            payload = bytes(body.data)
            return Segment(packet, ts, "udp", _inet(family, ip.src), body.sport,
                           _inet(family, ip.dst), body.dport, payload)  # fmt: skip
        if isinstance(body, dpkt.tcp.TCP):
            return Segment(packet, ts, "tcp", _inet(family, ip.src), body.sport,
                           _inet(family, ip.dst), body.dport, bytes(body.data),
                           body.seq, body.flags, body.ack)  # fmt: skip
        return None

    def _reassemble(self, ts: float, ip: dpkt.ip.IP, offset: int, more: bool) -> dpkt.ip.IP | None:
        key = (ip.src, ip.dst, ip.id, ip.p)
        self._expire(ts)
        fset = self._fragments.setdefault(key, _FragmentSet(ts))
        payload = bytes(ip.data)
        fset.parts[offset] = payload
        if not more:
            fset.total = offset + len(payload)
        if offset == 0:
            fset.header = ip
        data = fset.complete()
        if data is None:
            return None
        del self._fragments[key]
        head = fset.header
        assert head is not None
        whole = dpkt.ip.IP(src=head.src, dst=head.dst, p=head.p, id=head.id, ttl=head.ttl)
        if head.p == dpkt.ip.IP_PROTO_UDP:
            whole.data = dpkt.udp.UDP(data)
        elif head.p == dpkt.ip.IP_PROTO_TCP:
            whole.data = dpkt.tcp.TCP(data)
        else:
            whole.data = data
        return whole

    def _expire(self, ts: float) -> None:
        if len(self._fragments) < 64:
            return
        for key in [k for k, v in self._fragments.items() if ts - v.first_ts > FRAGMENT_TIMEOUT_S]:
            del self._fragments[key]


def _claims_ip(linktype: int, data: bytes) -> bool:
    """Whether the link layer says an IP packet follows (Ethernet and Linux cooked only)."""
    if linktype == LINK_ETHERNET and len(data) >= 14:
        ethertype = int.from_bytes(data[12:14], "big")
        if ethertype == 0x8100 and len(data) >= 18:  # one 802.1Q tag
            ethertype = int.from_bytes(data[16:18], "big")
        return ethertype in (0x0800, 0x86DD)
    if linktype == LINK_SLL and len(data) >= 16:
        return int.from_bytes(data[14:16], "big") in (0x0800, 0x86DD)
    return False


class _FragmentSet:
    """The fragments of one IPv4 datagram seen so far."""

    def __init__(self, first_ts: float) -> None:
        self.first_ts = first_ts
        self.parts: dict[int, bytes] = {}
        self.total: int | None = None
        self.header: dpkt.ip.IP | None = None

    def complete(self) -> bytes | None:
        if self.total is None or self.header is None:
            return None
        out = bytearray()
        for offset in sorted(self.parts):
            if offset > len(out):
                return None
            chunk = self.parts[offset]
            out[offset : offset + len(chunk)] = chunk
        if len(out) < self.total:
            return None
        return bytes(out[: self.total])
