"""Write SIP call flows to pcap/pcapng captures (dpkt) for tests, demos and benchmarks.

Each scenario writes the packets a probe would see for one call attempt or registration: UDP,
TCP (messages split over segments or packed several to a segment, retransmitted segments),
WebSocket, IPv4 or IPv6, with RTP in both directions (optionally with packets lost). The
expected result of each scenario is returned with it, so a test can check the loader against
what was written.

Examples
--------
>>> import io
>>> buf = io.BytesIO()
>>> w = CaptureWriter(buf)
>>> truth = write_call(w, Call("c1@test", t0=1.7e9, status=486))
>>> truth.sip_status, truth.outcome, w.packets
(486, 'busy', 5)
"""

from __future__ import annotations

import io
import itertools
import socket
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import dpkt

from cemkit.outcomes import outcome_from_sip

_ETH_SRC = b"\x02\x00\x00\x00\x00\x01"
_ETH_DST = b"\x02\x00\x00\x00\x00\x02"
_PSH_ACK = dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK
REASONS = {100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 407: "Proxy Authentication Required",
           408: "Request Timeout", 480: "Temporarily Unavailable", 486: "Busy Here",
           487: "Request Terminated", 503: "Service Unavailable", 603: "Decline"}  # fmt: skip


class CaptureWriter:
    """Ethernet frames into a pcap (or pcapng) file, with IPv4/IPv6 + UDP/TCP built by dpkt."""

    def __init__(self, fh: BinaryIO, *, pcapng: bool = False) -> None:
        self._writer: dpkt.pcap.Writer | dpkt.pcapng.Writer = (
            dpkt.pcapng.Writer(fh) if pcapng else dpkt.pcap.Writer(fh)
        )
        self.packets = 0
        self._tcp_seq: dict[tuple[str, int, str, int], int] = {}

    def frame(self, ts: float, data: bytes) -> None:
        """Write one raw Ethernet frame."""
        self._writer.writepkt(data, ts=ts)
        self.packets += 1

    def _ip(self, src: str, dst: str, proto: int, body: dpkt.Packet) -> bytes:
        if ":" in src:
            payload = bytes(body)
            ip6 = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src),
                               dst=socket.inet_pton(socket.AF_INET6, dst), nxt=proto, hlim=64,
                               plen=len(payload))  # fmt: skip
            ip6.data = payload
            ip6.p = proto
            eth = dpkt.ethernet.Ethernet(src=_ETH_SRC, dst=_ETH_DST, type=0x86DD, data=bytes(ip6))
            return bytes(eth)
        ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, ttl=64,
                        data=body)  # fmt: skip
        ip.len = 20 + len(bytes(body))
        return bytes(dpkt.ethernet.Ethernet(src=_ETH_SRC, dst=_ETH_DST, type=0x0800, data=ip))

    def udp(self, ts: float, src: str, sport: int, dst: str, dport: int, payload: bytes) -> None:
        """Write one UDP datagram."""
        udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
        udp.ulen = 8 + len(payload)
        self.frame(ts, self._ip(src, dst, dpkt.ip.IP_PROTO_UDP, udp))

    def tcp(self, ts: float, src: str, sport: int, dst: str, dport: int, payload: bytes, *,
            seq: int | None = None, flags: int = _PSH_ACK) -> None:  # fmt: skip
        """Write one TCP segment; the sequence number follows on from the last one by default."""
        key = (src, sport, dst, dport)
        if seq is None:
            seq = self._tcp_seq.setdefault(key, 1000)
        ack = self._tcp_seq.get((dst, dport, src, sport), 1000)  # all the peer sent so far
        tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq & 0xFFFFFFFF, ack=ack, flags=flags,
                           win=65535, data=payload)  # fmt: skip
        self._tcp_seq[key] = max(self._tcp_seq.get(key, 0), seq + len(payload))
        self.frame(ts, self._ip(src, dst, dpkt.ip.IP_PROTO_TCP, tcp))

    def tcp_send(self, ts: float, src: str, sport: int, dst: str, dport: int,
                 data: bytes, cuts: Iterable[int] = ()) -> None:  # fmt: skip
        """Send bytes on a TCP stream cut at the given offsets (one segment per piece)."""
        bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
        for i, (a, b) in enumerate(itertools.pairwise(bounds)):
            self.tcp(ts + i * 1e-4, src, sport, dst, dport, data[a:b])

    def next_seq(self, src: str, sport: int, dst: str, dport: int) -> int:
        """The next sequence number of a TCP direction."""
        return self._tcp_seq.setdefault((src, sport, dst, dport), 1000)


def sip_message(start: str, call_id: str, cseq: str, from_: str, to: str, *,
                via: str = "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK1", body: bytes = b"",
                extra: Iterable[str] = (), compact: bool = False) -> bytes:  # fmt: skip
    """Render a SIP message (compact header names when ``compact``)."""
    names = ("v", "f", "t", "i", "l") if compact else ("Via", "From", "To", "Call-ID",
                                                          "Content-Length")  # fmt: skip
    lines = [start, f"{names[0]}: {via}", f"{names[1]}: {from_}", f"{names[2]}: {to}",
             f"{names[3]}: {call_id}", f"CSeq: {cseq}", "Max-Forwards: 70", *extra]  # fmt: skip
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"{names[4]}: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def sdp(address: str, port: int) -> bytes:
    """A one-stream G.711 A-law SDP body."""
    family = "IP6" if ":" in address else "IP4"
    return (f"v=0\r\no=- 1 1 IN {family} {address}\r\ns=-\r\nc=IN {family} {address}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
            f"a=rtpmap:101 telephone-event/8000\r\n").encode()  # fmt: skip


def rtp_packet(seq: int, timestamp: int, ssrc: int, payload_len: int = 160) -> bytes:
    """An RTP packet, payload type 8 (PCMA)."""
    return struct.pack("!BBHII", 0x80, 8, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + (
        b"\xd5" * payload_len
    )


@dataclass
class Call:
    """A call attempt to write, and what the loader should make of it."""

    call_id: str
    t0: float
    status: int = 200  #: final response to the (last) INVITE
    transport: str = "udp"  #: udp, tcp or ws
    caller: tuple[str, int] = ("192.0.2.10", 5060)
    callee: tuple[str, int] = ("198.51.100.20", 5060)
    a_user: str = "+441632960961"
    b_user: str = "+441632960962"
    pai_user: str | None = None
    ring_ms: float = 120.0  #: INVITE → 180
    answer_s: float = 2.0  #: INVITE → final response
    talk_s: float = 3.0  #: answer → BYE
    bye_by: str = "caller"
    cancel: bool = False  #: caller CANCELs before the final (status should be 487)
    challenge: int | None = None  #: 401/407 before the INVITE is re-sent with credentials
    retransmit_invite: bool = False
    rtp_packets: int = 0  #: per direction, 20 ms apart
    rtp_drop_fwd: frozenset[int] = frozenset()  #: packet indexes lost caller → callee
    rtp_drop_rev: frozenset[int] = frozenset()
    rtp_ports: tuple[int, int] = (40000, 50000)  #: caller's, callee's media ports
    tcp_cuts: tuple[int, ...] = (7, 60)  #: where the INVITE is cut over TCP
    tcp_retransmit: bool = True  #: repeat the first INVITE segment over TCP
    pack_ack_bye: bool = False  #: over TCP, send ACK and BYE in one segment


@dataclass
class Truth:
    """What a correct loader reports for a written call."""

    call_id: str
    sip_status: int | None
    outcome: str
    answered: bool
    released_by: str | None
    pdd_ms: float | None
    rtp_fwd: int = 0
    rtp_rev: int = 0
    lost_fwd: int = 0
    lost_rev: int = 0
    messages: int = 0
    packets: list[int] = field(default_factory=list)


def _send(w: CaptureWriter, call: Call, ts: float, data: bytes, from_caller: bool,
          cuts: Iterable[int] = ()) -> None:  # fmt: skip
    (sa, sp), (da, dp) = (call.caller, call.callee) if from_caller else (call.callee, call.caller)
    if call.transport == "udp":
        w.udp(ts, sa, sp, da, dp, data)
    elif call.transport == "tcp":
        w.tcp_send(ts, sa, sp, da, dp, data, cuts)
    else:
        w.tcp(ts, sa, sp, da, dp, ws_frame(data, masked=from_caller))


def ws_frame(payload: bytes, *, masked: bool) -> bytes:
    """One final WebSocket text frame (masked as clients must, RFC 6455 section 5.3)."""
    head = bytearray([0x81])
    mask_bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head.append(mask_bit | n)
    elif n < 65536:
        head.append(mask_bit | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(mask_bit | 127)
        head += n.to_bytes(8, "big")
    if not masked:
        return bytes(head) + payload
    key = struct.pack("!I", zlib.crc32(payload) | 0x01010101)  # deterministic, never zero
    masked_payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(head) + key + masked_payload


def ws_handshake(w: CaptureWriter, call: Call, ts: float) -> None:
    """The HTTP upgrade exchange that opens a SIP WebSocket connection (RFC 7118)."""
    (ca, cp), (sa, sp) = call.caller, call.callee
    req = (f"GET / HTTP/1.1\r\nHost: {sa}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: sip\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n").encode()  # fmt: skip
    resp = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            b"Sec-WebSocket-Protocol: sip\r\n\r\n")  # fmt: skip
    w.tcp(ts, ca, cp, sa, sp, req)
    w.tcp(ts + 0.001, sa, sp, ca, cp, resp)


def write_call(w: CaptureWriter, call: Call) -> Truth:
    """Write the packets of one INVITE dialog; return what a loader should report for it."""
    (ca, cp), (sa, sp) = call.caller, call.callee
    proto = {"udp": "UDP", "tcp": "TCP", "ws": "WS"}[call.transport]
    via = f"SIP/2.0/{proto} {ca}:{cp};branch=z9hG4bK{zlib.crc32(call.call_id.encode()):08x}"
    frm = f'"Caller" <sip:{call.a_user}@example.com>;tag=ft{len(call.call_id)}'
    to = f"<sip:{call.b_user}@example.com>"
    to_tagged = f"{to};tag=tt1"
    extra = [f"P-Asserted-Identity: <sip:{call.pai_user}@example.com>"] if call.pai_user else []
    ruri = f"INVITE sip:{call.b_user}@{sa}:{sp} SIP/2.0"
    offer = sdp(ca, call.rtp_ports[0])
    t = call.t0
    if call.transport == "ws":
        ws_handshake(w, call, t - 0.01)

    def req(start: str, cseq: str, body: bytes = b"", more: Iterable[str] = (),
            tagged: bool = False, from_caller: bool = True) -> bytes:  # fmt: skip
        f, tt = (frm, to_tagged if tagged else to) if from_caller else (to_tagged, frm)
        return sip_message(start, call.call_id, cseq, f, tt, via=via, body=body,
                           extra=[*extra, *more])  # fmt: skip

    def resp(code: int, cseq: str, body: bytes = b"", tagged: bool = True) -> bytes:
        return sip_message(f"SIP/2.0 {code} {REASONS.get(code, 'Whatever')}", call.call_id, cseq,
                           frm, to_tagged if tagged else to, via=via, body=body)  # fmt: skip

    messages = 0
    cseq = 1
    invite = req(ruri, f"{cseq} INVITE", offer)
    _send(w, call, t, invite, True, call.tcp_cuts)
    messages += 1
    if call.transport == "tcp" and call.tcp_retransmit:
        # A retransmitted first segment: same bytes, same sequence number.
        first = invite[: min(call.tcp_cuts) if call.tcp_cuts else len(invite)]
        seq = w.next_seq(ca, cp, sa, sp) - len(invite)
        w.tcp(t + 0.0005, ca, cp, sa, sp, first, seq=seq)
    if call.retransmit_invite and call.transport == "udp":
        _send(w, call, t + 0.5, invite, True)
    if call.challenge is not None:
        _send(w, call, t + 0.05, resp(call.challenge, f"{cseq} INVITE"), False)
        _send(w, call, t + 0.06, req(f"ACK sip:{call.b_user}@{sa}:{sp} SIP/2.0", f"{cseq} ACK",
                                     tagged=True), True)  # fmt: skip
        cseq += 1
        t += 0.1
        auth = ['Proxy-Authorization: Digest username="u", realm="r", nonce="n", response="x"']
        _send(w, call, t, req(ruri, f"{cseq} INVITE", offer, auth), True, call.tcp_cuts)
        messages += 3
    _send(w, call, t + 0.01, resp(100, f"{cseq} INVITE", tagged=False), False)
    messages += 1
    pdd_ms = None
    if call.ring_ms is not None and call.ring_ms / 1000 < call.answer_s:
        _send(w, call, t + call.ring_ms / 1000, resp(180, f"{cseq} INVITE"), False)
        pdd_ms = (t + call.ring_ms / 1000 - call.t0) * 1000
        messages += 1
    t_final = t + call.answer_s
    if call.cancel:
        cancel = sip_message(f"CANCEL sip:{call.b_user}@{sa}:{sp} SIP/2.0", call.call_id,
                             f"{cseq} CANCEL", frm, to, via=via)  # fmt: skip
        _send(w, call, t_final - 0.05, cancel, True)
        _send(w, call, t_final - 0.04, resp(200, f"{cseq} CANCEL"), False)
        messages += 2
    answered = 200 <= call.status < 300
    answer_body = sdp(sa, call.rtp_ports[1]) if answered else b""
    _send(w, call, t_final, resp(call.status, f"{cseq} INVITE", answer_body), False)
    messages += 1
    ack = req(f"ACK sip:{call.b_user}@{sa}:{sp} SIP/2.0", f"{cseq} ACK", tagged=True)
    truth = Truth(call.call_id, call.status, outcome_from_sip(call.status), answered,
                  "caller" if call.cancel else None, pdd_ms)  # fmt: skip
    if not answered:
        _send(w, call, t_final + 0.01, ack, True)
        truth.messages = messages + 1
        return truth
    n = call.rtp_packets
    t_bye = t_final + max(call.talk_s, n * 0.02 + 0.1)
    if call.bye_by == "caller":
        bye = req(f"BYE sip:{call.b_user}@{sa}:{sp} SIP/2.0", f"{cseq + 1} BYE", tagged=True)
    else:
        bye = req(f"BYE sip:{call.a_user}@{ca}:{cp} SIP/2.0", "1 BYE", tagged=True,
                  from_caller=False)  # fmt: skip
    if call.transport == "tcp" and call.pack_ack_bye and call.bye_by == "caller":
        # Several messages in one segment: ACK, then (much later in reality) BYE.
        _send(w, call, t_final + 0.01, ack + bye, True, ())
        t_bye = t_final + 0.01
        n = 0
    else:
        _send(w, call, t_final + 0.01, ack, True)
    # RTP both ways, 20 ms apart, caller -> callee's port (fwd) and back (rev).
    ssrc_f, ssrc_r = 0x1000 + len(call.call_id), 0x2000 + len(call.call_id)
    for i in range(n):
        ts = t_final + 0.02 + i * 0.02
        if i not in call.rtp_drop_fwd:
            w.udp(ts, ca, call.rtp_ports[0], sa, call.rtp_ports[1], rtp_packet(i, i * 160, ssrc_f))
        if i not in call.rtp_drop_rev:
            w.udp(ts + 0.003, sa, call.rtp_ports[1], ca, call.rtp_ports[0],
                  rtp_packet(i, i * 160, ssrc_r))  # fmt: skip
    if not (call.transport == "tcp" and call.pack_ack_bye and call.bye_by == "caller"):
        _send(w, call, t_bye, bye, call.bye_by == "caller")
    ok_bye_from_caller = call.bye_by != "caller"
    bye_cseq = f"{cseq + 1} BYE" if call.bye_by == "caller" else "1 BYE"
    _send(w, call, t_bye + 0.02, resp(200, bye_cseq), ok_bye_from_caller)
    truth.released_by = call.bye_by
    truth.messages = messages + 4
    truth.rtp_fwd = n - len([i for i in call.rtp_drop_fwd if i < n])
    truth.rtp_rev = n - len([i for i in call.rtp_drop_rev if i < n])
    # Loss counts only gaps before the last packet received (RFC 3550 cannot see a lost tail).
    truth.lost_fwd = _inner_losses(n, call.rtp_drop_fwd)
    truth.lost_rev = _inner_losses(n, call.rtp_drop_rev)
    return truth


def _inner_losses(n: int, dropped: frozenset[int]) -> int:
    kept = [i for i in range(n) if i not in dropped]
    if not kept:
        return 0
    return sum(1 for i in dropped if kept[0] < i < kept[-1])


def write_registration(w: CaptureWriter, call_id: str, t0: float, *, final: int = 200,
                       challenge: bool = True, client: tuple[str, int] = ("192.0.2.10", 5060),
                       registrar: tuple[str, int] = ("203.0.113.5", 5060),
                       user: str = "+441632960961", first_cseq: int = 1) -> int:  # fmt: skip
    """Write one REGISTER attempt over UDP (optionally challenged first); return its last CSeq."""
    (ca, cp), (ra, rp) = client, registrar
    frm = f"<sip:{user}@example.com>;tag=r{first_cseq}"
    to = f"<sip:{user}@example.com>"
    via = f"SIP/2.0/UDP {ca}:{cp};branch=z9hG4bKr{first_cseq}"
    contact = [f"Contact: <sip:{user}@{ca}:{cp}>", "Expires: 3600"]
    cseq = first_cseq
    start = "REGISTER sip:example.com SIP/2.0"
    if challenge:
        w.udp(t0, ca, cp, ra, rp, sip_message(start, call_id, f"{cseq} REGISTER", frm, to,
                                               via=via, extra=contact))  # fmt: skip
        w.udp(t0 + 0.05, ra, rp, ca, cp, sip_message("SIP/2.0 401 Unauthorized", call_id,
                                                     f"{cseq} REGISTER", frm, f"{to};tag=x",
                                                     via=via))  # fmt: skip
        cseq += 1
        t0 += 0.1
        contact = [*contact, 'Authorization: Digest username="u", realm="r", nonce="n"']
    w.udp(t0, ca, cp, ra, rp, sip_message(start, call_id, f"{cseq} REGISTER", frm, to, via=via,
                                          extra=contact))  # fmt: skip
    w.udp(t0 + 0.05, ra, rp, ca, cp, sip_message(f"SIP/2.0 {final} {REASONS.get(final, 'X')}",
                                                 call_id, f"{cseq} REGISTER", frm, f"{to};tag=y",
                                                 via=via))  # fmt: skip
    return cseq


def write_workload(fh: BinaryIO, calls: int, *, rtp_packets: int = 60, seed: int = 7,
                   t0: float = 1_700_000_000.0,
                   pcapng: bool = False) -> dict[str, int]:  # fmt: skip
    """Write a capture of ``calls`` overlapping call attempts; return the final status of each.

    A seeded mix: 2/3 over UDP, 1/3 over TCP (INVITE split over segments, one segment
    retransmitted); 65 % answered with ``rtp_packets`` RTP packets each way (2 lost caller →
    callee), 10 % busy (486), 5 % cancelled (487), 5 % not found (404), 5 % challenged then
    congested (407, 503), 10 % challenged then answered; one registration attempt per 10 calls.
    Calls start 0.25 s apart. Numbers are from Ofcom's drama range (+44 1632 960xxx).

    Examples
    --------
    >>> import io
    >>> statuses = write_workload(io.BytesIO(), 20, rtp_packets=5)
    >>> len(statuses), statuses["sim-0000000@cemkit"]
    (20, 200)
    """
    import random

    rng = random.Random(seed)
    frames: list[tuple[float, bytes]] = []
    expected: dict[str, int] = {}
    for i in range(calls):
        buf = io.BytesIO()
        w = CaptureWriter(buf)
        kind = rng.random()
        status, cancel, challenge = 200, False, None
        if kind < 0.10:
            status = 486
        elif kind < 0.15:
            status, cancel = 487, True
        elif kind < 0.20:
            status = 404
        elif kind < 0.25:
            status, challenge = 503, 407
        elif kind < 0.35:
            challenge = 407
        transport = "tcp" if i % 3 == 0 else "udp"
        host = f"10.{(i >> 8) & 255}.{i & 255}.1"
        drops = frozenset(rng.sample(range(rtp_packets), 2)) if rtp_packets > 4 else frozenset()
        call = Call(
            f"sim-{i:07d}@cemkit", t0 + i * 0.25, status=status, transport=transport,
            caller=(host, 5060 if transport == "udp" else 30000 + i % 20000),
            callee=("10.255.0.1", 5060), cancel=cancel, challenge=challenge,
            rtp_packets=rtp_packets if status == 200 else 0,
            rtp_ports=(20000 + 2 * (i % 10000), 40000 + 2 * (i % 10000)), rtp_drop_fwd=drops,
            tcp_cuts=(rng.randint(5, 300), rng.randint(301, 600)),
            a_user=f"+441632960{i % 1000:03d}", b_user=f"+441632960{(i * 7 + 500) % 1000:03d}",
        )  # fmt: skip
        write_call(w, call)
        expected[call.call_id] = status
        if i % 10 == 0:
            write_registration(w, f"reg-{i:07d}@cemkit", t0 + i * 0.25 + 0.1,
                               client=(host, 5062), user=call.a_user)  # fmt: skip
        buf.seek(0)
        frames.extend((float(ts), bytes(data)) for ts, data in dpkt.pcap.Reader(buf))
    frames.sort(key=lambda f: f[0])
    writer: dpkt.pcap.Writer | dpkt.pcapng.Writer = (
        dpkt.pcapng.Writer(fh) if pcapng else dpkt.pcap.Writer(fh)
    )
    for ts, data in frames:
        writer.writepkt(data, ts=ts)
    return expected


def write_calls(fh: BinaryIO, calls: Iterable[Call], *, pcapng: bool = False) -> list[Truth]:
    """Write many (overlapping) call attempts into one capture, packets in time order."""
    frames: list[tuple[float, bytes]] = []
    truths = []
    for call in calls:
        buf = io.BytesIO()
        truths.append(write_call(CaptureWriter(buf), call))
        buf.seek(0)
        frames.extend((float(ts), bytes(data)) for ts, data in dpkt.pcap.Reader(buf))
    frames.sort(key=lambda f: f[0])
    writer: dpkt.pcap.Writer | dpkt.pcapng.Writer = (
        dpkt.pcapng.Writer(fh) if pcapng else dpkt.pcap.Writer(fh)
    )
    for ts, data in frames:
        writer.writepkt(data, ts=ts)
    return truths


def calls_for_xdrs(xdrs: Any) -> list[Call]:
    """One :class:`Call` per signaling record of a frame (e.g. a synthetic world's voice xDRs).

    Parties, start, final SIP status, PDD and duration come from the records, so a capture of
    these calls is what a probe saw for them (the loader gives the same records back).
    """
    calls = []
    for i, row in enumerate(xdrs.itertuples(index=False)):
        status = 200 if _missing(row.sip_status) else int(row.sip_status)
        pdd = 120.0 if _missing(row.pdd_ms) else max(float(row.pdd_ms), 1.0)
        dur = 0.0 if _missing(row.duration_s) else float(row.duration_s)
        host = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        calls.append(Call(
            f"xdr-{i:07d}@synth", row.start.timestamp(), status=status,
            caller=(host, 5060), callee=("10.255.0.1", 5060),
            a_user=str(row.a_number), b_user=str(row.b_number), ring_ms=pdd,
            answer_s=max(pdd / 1000.0 + 0.05, min(dur, 2.0) if status != 200 else 1.0),
            talk_s=max(dur, 0.5), cancel=status == 487,
        ))  # fmt: skip
    return calls


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))
