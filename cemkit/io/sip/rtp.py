"""RTP stream statistics: packets, loss and interarrival jitter as RFC 3550 defines them.

One :class:`RtpStream` per (call, direction, SSRC). Loss follows RFC 3550 appendix A.3 (expected =
highest extended sequence number - base + 1; lost = expected - received, duplicates not counted
as received); jitter follows section 6.4.1 / appendix A.8 (J += (|D| - J) / 16 in timestamp units,
reported in milliseconds with the payload's clock rate).

Examples
--------
>>> s = RtpStream(clock_rate=8000)
>>> for i, seq in enumerate([1, 2, 4, 5]):  # packet 3 lost, 20 ms spacing, no jitter
...     s.add(arrival=i * 0.02 + (0.02 if seq > 3 else 0.0), seq=seq, timestamp=seq * 160)
>>> s.received, s.expected, s.lost, round(s.jitter_ms, 6)
(4, 5, 1, 0.0)
"""

from __future__ import annotations

import struct
from typing import NamedTuple

#: Sequence-number jumps larger than this (forward) or reorderings deeper than this are treated
#: as a restarted source rather than loss (RFC 3550 appendix A.1 MAX_DROPOUT / MAX_MISORDER).
MAX_DROPOUT = 3000
MAX_MISORDER = 100
DEFAULT_CLOCK_RATE = 8000


class RtpHeader(NamedTuple):
    """The RTP fixed-header fields the statistics need."""

    payload_type: int
    seq: int
    timestamp: int
    ssrc: int


def parse_rtp(payload: bytes) -> RtpHeader | None:
    """Parse the fixed RTP header, or None when the payload is not RTP version 2 (or is RTCP)."""
    if len(payload) < 12 or payload[0] >> 6 != 2:
        return None
    pt = payload[1] & 0x7F
    if 72 <= pt <= 76:  # RTCP packet types 200-204 with the marker bit folded in
        return None
    seq, ts, ssrc = struct.unpack_from("!HII", payload, 2)
    return RtpHeader(pt, seq, ts, ssrc)


class RtpStream:
    """Running statistics of one RTP source."""

    __slots__ = ("_base", "_cycles", "_max", "_seen", "_transit", "clock_rate", "duplicates",
                 "first_arrival", "jitter", "jitter_max", "jitter_sum", "last_arrival",
                 "received")  # fmt: skip

    def __init__(self, clock_rate: int = DEFAULT_CLOCK_RATE) -> None:
        self.clock_rate = clock_rate
        self.received = 0
        self.duplicates = 0
        self._base = 0
        self._max = 0
        self._cycles = 0
        self._seen: set[int] = set()
        self._transit: float | None = None
        self.jitter = 0.0  #: current estimate J, in timestamp units
        self.jitter_sum = 0.0  #: sum of J after each packet (for the mean)
        self.jitter_max = 0.0
        self.first_arrival = 0.0
        self.last_arrival = 0.0

    def add(self, arrival: float, seq: int, timestamp: int) -> None:
        """Account one packet arriving at ``arrival`` seconds."""
        if self.received == 0:
            self._base = self._max = seq
            self.first_arrival = arrival
        else:
            delta = (seq - self._max) & 0xFFFF
            if 0 < delta < MAX_DROPOUT:
                if seq < self._max:
                    self._cycles += 1 << 16
                self._max = seq
            elif delta == 0 or (self._cycles + seq) in self._seen:
                self.duplicates += 1
                return
            elif delta <= (1 << 16) - MAX_MISORDER:
                # A very large jump: the source restarted; begin counting afresh (RFC 3550 A.1).
                self._base = self._max = seq
                self._cycles = 0
                self._seen.clear()
                self.received = 0
        extended = self._cycles + seq if seq <= self._max else self._cycles - (1 << 16) + seq
        self._seen.add(extended)
        if len(self._seen) > 4 * MAX_MISORDER:  # keep only the window reorderings can reach
            floor = self._cycles + self._max - MAX_MISORDER
            self._seen = {x for x in self._seen if x >= floor}
        self.received += 1
        self.last_arrival = arrival
        transit = arrival * self.clock_rate - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            self.jitter += (d - self.jitter) / 16.0
        self._transit = transit
        self.jitter_sum += self.jitter
        self.jitter_max = max(self.jitter_max, self.jitter)

    @property
    def expected(self) -> int:
        """Packets expected from the sequence numbers seen (RFC 3550 A.3)."""
        if self.received == 0:
            return 0
        return self._cycles + self._max - self._base + 1

    @property
    def lost(self) -> int:
        """Packets expected but not received (never negative)."""
        return max(self.expected - self.received, 0)

    @property
    def jitter_ms(self) -> float:
        """Mean interarrival jitter over the stream, milliseconds (Wireshark's 'Mean Jitter')."""
        if self.received == 0:
            return 0.0
        return self.jitter_sum / self.received * 1000.0 / self.clock_rate

    @property
    def max_jitter_ms(self) -> float:
        """Largest interarrival jitter estimate seen, milliseconds."""
        return self.jitter_max * 1000.0 / self.clock_rate

    @property
    def last_jitter_ms(self) -> float:
        """The final RFC 3550 jitter estimate (what an RTCP receiver report would carry), ms."""
        return self.jitter * 1000.0 / self.clock_rate
