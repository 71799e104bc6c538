"""The sip-pcap loader on captures written here (UDP, TCP, WebSocket, IPv6, fragments, faults)."""

from __future__ import annotations

import io
import itertools
import socket
import struct

import dask.dataframe as dd
import dpkt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit import schema
from cemkit.errors import FormatError, InputError, OutputError
from cemkit.io.base import registry
from cemkit.io.sip.capgen import Call, CaptureWriter, sip_message, write_call, write_registration
from cemkit.io.sip.stream import TcpConnection
from cemkit.io.sip_pcap import SipPcapLoader

T0 = 1_700_000_000.0


def scenarios() -> list[Call]:
    return [
        Call("udp-answered@t", T0, rtp_packets=50, rtp_drop_fwd=frozenset({3, 4, 10}),
             rtp_drop_rev=frozenset({49})),
        Call("tcp-answered@t", T0 + 10, transport="tcp", rtp_packets=20, bye_by="callee",
             caller=("192.0.2.11", 33000), rtp_ports=(40002, 50002)),
        Call("tcp-packed@t", T0 + 20, transport="tcp", pack_ack_bye=True,
             caller=("192.0.2.12", 33001), tcp_cuts=(1, 2, 3, 300)),
        Call("ws-busy@t", T0 + 30, transport="ws", caller=("192.0.2.13", 33002), status=486),
        Call("v6-answered@t", T0 + 40, caller=("2001:db8::1", 5060),
             callee=("2001:db8::2", 5060), rtp_packets=10, rtp_ports=(40004, 50004)),
        Call("auth-answered@t", T0 + 50, challenge=407, rtp_packets=5, rtp_ports=(40006, 50006),
             pai_user="+441632960999"),
        Call("cancelled@t", T0 + 60, cancel=True, status=487, retransmit_invite=True),
        Call("not-found@t", T0 + 70, status=404, ring_ms=5000),
        Call("congested@t", T0 + 80, status=503, transport="tcp", caller=("192.0.2.14", 33003)),
    ]  # fmt: skip


def write(calls, *, pcapng=False, registrations=True):
    buf = io.BytesIO()
    w = CaptureWriter(buf, pcapng=pcapng)
    truths = [write_call(w, c) for c in calls]
    if registrations:
        write_registration(w, "reg-ok@t", T0 + 100)
        write_registration(w, "reg-fail@t", T0 + 110, final=403, challenge=False)
    return buf.getvalue(), truths


def read(data: bytes, tmp_path, name="c.pcap", **options):
    path = tmp_path / name
    path.write_bytes(data)
    loader = SipPcapLoader(default_region="GB", **options)
    frames = [loader.read_part(p) for p in loader.parts([str(path)])]
    records = pd.concat([f[0] for f in frames], ignore_index=True)
    quarantine = pd.concat([f[1] for f in frames], ignore_index=True)
    return records, quarantine


@pytest.mark.parametrize("pcapng", [False, True])
def test_every_scenario_gives_the_written_result(tmp_path, pcapng):
    data, truths = write(scenarios(), pcapng=pcapng)
    records, quarantine = read(data, tmp_path)
    assert quarantine.empty, quarantine.to_dict("records")
    schema.validate(records, SipPcapLoader.extensions)
    xdrs = records[records["record_kind"] == "xdr"].set_index("call_id")
    assert sorted(xdrs.index) == sorted(t.call_id for t in truths)
    for t in truths:
        row = xdrs.loc[t.call_id]
        assert row["sip_status"] == t.sip_status, t.call_id
        assert row["outcome"] == t.outcome, t.call_id
        assert (None if pd.isna(row["released_by"]) else row["released_by"]) == t.released_by
        if t.pdd_ms is None:
            assert pd.isna(row["pdd_ms"]), t.call_id
        else:
            assert row["pdd_ms"] == pytest.approx(t.pdd_ms, abs=0.01), t.call_id
        assert row["src_sip_rtp_fwd_packets"] == t.rtp_fwd, t.call_id
        assert row["src_sip_rtp_rev_packets"] == t.rtp_rev, t.call_id
        assert row["src_sip_rtp_fwd_lost"] == t.lost_fwd, t.call_id
        assert row["src_sip_rtp_rev_lost"] == t.lost_rev, t.call_id
        assert pd.notna(row["answer"]) == t.answered
    udp = xdrs.loc["udp-answered@t"]
    # 3 lost caller→callee of 50 expected; the lost last packet of the other direction is
    # invisible to RFC 3550 (expected = highest seen - first + 1 = 49).
    assert udp["loss_ratio"] == pytest.approx(3 / (50 + 49))
    assert udp["a_number"] == "+441632960961" and udp["a_number_kind"] == "e164"
    assert udp["jitter_ms"] == pytest.approx(0.0, abs=1e-6)  # evenly spaced by construction
    assert xdrs.loc["auth-answered@t", "a_number"] == "+441632960999"  # P-Asserted-Identity
    assert xdrs.loc["auth-answered@t", "src_sip_auth_challenges"] == 1
    assert xdrs.loc["cancelled@t", "src_sip_retransmissions"] == 1
    assert xdrs.loc["ws-busy@t", "src_sip_transport"] == "ws"
    assert xdrs.loc["v6-answered@t", "node"] == "[2001:db8::2]:5060"
    assert xdrs.loc["congested@t", "outcome"] == "congestion"
    assert xdrs.loc["not-found@t", "cause_q850"] == 1
    regs = records[records["record_kind"] == "registration"].set_index("call_id")
    assert regs.loc["reg-ok@t", "sip_status"] == 200
    assert regs.loc["reg-ok@t", "src_sip_auth_challenges"] == 1
    assert regs.loc["reg-ok@t", "src_sip_register_expires_s"] == 3600
    assert regs.loc["reg-ok@t", "outcome"] == "registered_after_challenge"
    assert regs.loc["reg-fail@t", "outcome"] == "registration_failed"


def test_shards_and_dask_give_the_same_records(tmp_path):
    data, _ = write(scenarios())
    one, _ = read(data, tmp_path)
    four, _ = read(data, tmp_path, shards=4)
    key = ["record_id"]
    pd.testing.assert_frame_equal(
        one.sort_values(key).reset_index(drop=True), four.sort_values(key).reset_index(drop=True)
    )
    loader = SipPcapLoader(default_region="GB", shards=3)
    parts = loader.parts([str(tmp_path / "c.pcap")])
    graph = dd.from_map(lambda p: loader.read_part(p)[0], parts, meta=loader.meta())
    assert graph.npartitions == 3
    lazy = graph.compute(scheduler="sync")
    pd.testing.assert_frame_equal(
        one.sort_values(key).reset_index(drop=True), lazy.sort_values(key).reset_index(drop=True)
    )


def _eth_ipv4_udp(src, dst, sport, dport, payload, ident=7):
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = 8 + len(payload)
    return bytes(udp), ident


def test_fragmented_ipv4_udp_invite_is_reassembled(tmp_path):
    big_sdp = b"v=0\r\nc=IN IP4 192.0.2.10\r\nm=audio 4000 RTP/AVP 8\r\n" + b"a=x:" + b"y" * 2500
    invite = sip_message("INVITE sip:200@example.com SIP/2.0", "frag@t", "1 INVITE",
                         "<sip:100@example.com>;tag=1", "<sip:200@example.com>",
                         body=big_sdp)  # fmt: skip
    ok = sip_message("SIP/2.0 486 Busy Here", "frag@t", "1 INVITE",
                     "<sip:100@example.com>;tag=1", "<sip:200@example.com>;tag=2")  # fmt: skip
    udp_bytes, ident = _eth_ipv4_udp("192.0.2.10", "192.0.2.20", 5060, 5060, invite)
    buf = io.BytesIO()
    w = CaptureWriter(buf)
    chunks = [udp_bytes[i : i + 1480] for i in range(0, len(udp_bytes), 1480)]
    for k, chunk in enumerate(reversed(chunks)):  # fragments arrive out of order
        index = len(chunks) - 1 - k
        ip = dpkt.ip.IP(src=socket.inet_aton("192.0.2.10"), dst=socket.inet_aton("192.0.2.20"),
                        p=17, id=ident, ttl=64, data=chunk)  # fmt: skip
        ip.offset = index * 1480 // 8
        ip.mf = 1 if index < len(chunks) - 1 else 0
        ip.len = 20 + len(chunk)
        eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=ip)
        w.frame(T0 + k * 1e-4, bytes(eth))
    w.udp(T0 + 1, "192.0.2.20", 5060, "192.0.2.10", 5060, ok)
    records, quarantine = read(buf.getvalue(), tmp_path)
    assert quarantine.empty
    assert records["call_id"].tolist() == ["frag@t"]
    assert records["sip_status"].tolist() == [486]


def test_faults_are_quarantined_and_the_run_goes_on(tmp_path):
    buf = io.BytesIO()
    w = CaptureWriter(buf)
    truths = [write_call(w, Call("before@t", T0, status=200, talk_s=1))]
    bad = b"INVITE sip:200@example.com SIP/2.0\r\nFrom: <sip:1@x>;tag=1\r\nTo: <sip:2@x>\r\n\r\n"
    w.udp(T0 + 5, "192.0.2.10", 5060, "192.0.2.20", 5060, bad)  # no Call-ID, no CSeq
    bad_packet_number = w.packets
    w.udp(T0 + 5.1, "192.0.2.10", 5060, "192.0.2.20", 5060, b"HELLO there\r\n\r\n")
    w.frame(T0 + 5.2, b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + b"\x45\x00")  # cut IPv4 header
    w.udp(5.0, "192.0.2.10", 5060, "192.0.2.20", 5060, bad)  # a bogus timestamp (1970)
    w.udp(T0 + 9e7, "192.0.2.10", 5060, "192.0.2.20", 5060, bad)  # ~3 years ahead
    truths.append(write_call(w, Call("after@t", T0 + 10, status=486)))
    w.udp(T0 + 20, "192.0.2.30", 53, "192.0.2.31", 40000, b"\x12\x34 dns-ish")  # not SIP
    w.tcp(T0 + 21, "192.0.2.30", 80, "192.0.2.31", 40001, b"HTTP/1.1 200 OK\r\n\r\nhello")
    data = buf.getvalue() + b"\x00\x01\x02"  # a truncated trailing record
    records, quarantine = read(data, tmp_path)
    assert sorted(records["call_id"]) == ["after@t", "before@t"]
    assert quarantine["file"].str.endswith("c.pcap").all()
    reasons = dict(zip(quarantine["line"], quarantine["reason"], strict=True))
    assert "Call-ID" in reasons[bad_packet_number]
    assert quarantine.loc[quarantine["line"] == bad_packet_number, "field"].item() == "Call-ID"
    assert any("start line" in r for r in reasons.values())
    assert any("could not be decoded" in r for r in reasons.values())
    assert any("truncated" in r for r in reasons.values())
    # the packets with a broken clock (1970, ~3 years ahead) are still read, on the repaired
    # clock: quarantined for what they carry (no Call-ID), not for their timestamps
    assert not any("timestamp" in r for r in reasons.values())
    assert sum("Call-ID" in r for r in reasons.values()) == 3
    assert len(quarantine) == 6
    # the clock comes back to the capture's own after the two bogus packets: no call is touched
    assert not records["src_sip_clock_adjusted"].any()
    after = records.set_index("call_id").loc["after@t", "start"]
    assert after == pd.Timestamp(int((T0 + 10) * 1e6), unit="us", tz="UTC")


def test_tcp_gap_is_reported_and_the_stream_resynchronises(tmp_path):
    buf = io.BytesIO()
    w = CaptureWriter(buf)
    caller, callee = ("192.0.2.10", 34000), ("192.0.2.20", 5060)
    msg1 = sip_message("OPTIONS sip:x@y SIP/2.0", "o@t", "1 OPTIONS", "<sip:a@b>;tag=1",
                       "<sip:c@d>")  # fmt: skip
    w.tcp(T0, *caller, *callee, msg1[:20])
    seq_after_gap = w.next_seq(*caller, *callee) + len(msg1) - 20  # the rest is never captured
    call = Call("gap@t", T0 + 1, transport="tcp", caller=caller, callee=callee, status=603)
    inner = io.BytesIO()
    w2 = CaptureWriter(inner)
    w2._tcp_seq[(*caller, *callee)] = seq_after_gap
    truth = write_call(w2, call)
    reader = dpkt.pcap.Reader(io.BytesIO(inner.getvalue()))
    for ts, frame in reader:
        w.frame(ts, frame)
    records, quarantine = read(buf.getvalue(), tmp_path)
    assert records["call_id"].tolist() == ["gap@t"]
    assert records["sip_status"].tolist() == [truth.sip_status]
    assert len(quarantine) >= 1
    assert quarantine["reason"].str.contains("misses").any()


MESSAGES = [
    sip_message("INVITE sip:b@x SIP/2.0", "h@t", "1 INVITE", "<sip:a@x>;tag=1", "<sip:b@x>",
                body=b"v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n"),
    sip_message("SIP/2.0 180 Ringing", "h@t", "1 INVITE", "<sip:a@x>;tag=1", "<sip:b@x>;tag=2"),
    b"\r\n\r\n",  # a keep-alive between messages
    sip_message("SIP/2.0 200 OK", "h@t", "1 INVITE", "<sip:a@x>;tag=1", "<sip:b@x>;tag=2",
                compact=True),
]  # fmt: skip
STREAM = b"".join(MESSAGES)


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12, unique=True),
    retransmit=st.lists(st.integers(min_value=0, max_value=12), max_size=3),
    swap=st.booleans(),
)
def test_tcp_framing_does_not_depend_on_segmentation(cuts, retransmit, swap):
    bounds = [0, *sorted(cuts), len(STREAM)]
    segments = [(1000 + a, STREAM[a:b]) for a, b in itertools.pairwise(bounds)]
    order = list(range(len(segments)))
    if swap and len(order) > 2:
        order[1], order[2] = order[2], order[1]  # one segment overtakes another
    for r in retransmit:
        if r < len(segments):
            order.insert(min(r + 1, len(order)), r)  # and some are sent twice
    conn = TcpConnection()
    out = []
    for packet, i in enumerate(order, start=1):
        seq, data = segments[i]
        out.extend(conn.feed(0, packet, T0 + packet * 0.01, seq, data, 0x18))  # 10 ms apart
    out.extend(conn.flush())
    raws = [m.raw for m in out]
    assert raws == [m for m in MESSAGES if m.strip()]


def test_websocket_fragmented_and_extended_length_frames():
    conn = TcpConnection()
    hello = (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Protocol: sip\r\n\r\n")  # fmt: skip
    body = b"v=0\r\n" + b"a=x\r\n" * 40
    msg = sip_message("INVITE sip:b@x SIP/2.0", "w@t", "1 INVITE", "<sip:a@x>;tag=1", "<sip:b@x>",
                      body=body)  # fmt: skip
    assert len(msg) > 125  # needs the 16-bit length form
    key = b"\x01\x02\x03\x04"
    first, second = msg[:100], msg[100:]
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(first))
    frame1 = bytes([0x01, 0x80 | 100]) + key + masked  # text, not FIN
    frame2 = bytes([0x80, 0x80 | 126]) + struct.pack("!H", len(second)) + key
    frame2 += bytes(b ^ key[i % 4] for i, b in enumerate(second))  # continuation, FIN
    stream = hello + frame1 + bytes([0x89, 0x80]) + key + frame2  # a ping in between
    out = conn.feed(0, 1, T0, 1, stream[:50], 0x18) + conn.feed(0, 2, T0, 51, stream[50:], 0x18)
    assert [m.raw for m in out] == [msg]
    assert out[0].transport == "ws"


def test_loader_errors_name_the_file_and_leak_nothing(tmp_path):
    with pytest.raises(FormatError, match="no option"):
        SipPcapLoader(colour="red")
    with pytest.raises(FormatError, match="shards"):
        SipPcapLoader(shards=0)
    loader = registry.get("sip-pcap")()
    with pytest.raises(InputError, match="missing.pcap"):
        loader.parts([str(tmp_path / "missing.pcap")])
    not_pcap = tmp_path / "calls.csv"
    not_pcap.write_text("+441632960961,+441632960962\n")
    (part,) = loader.parts([str(not_pcap)])
    with pytest.raises(InputError) as info:
        loader.read_part(part)
    assert "calls.csv" in str(info.value) and "441632960961" not in str(info.value)


def test_parts_split_large_files_into_call_id_shards(tmp_path):
    data, _ = write(scenarios())
    path = tmp_path / "c.pcap"
    path.write_bytes(data)
    loader = SipPcapLoader(shard_bytes=len(data) // 3 + 1)
    parts = loader.parts([str(path), str(path)])
    assert [(p.index, p.shard, p.shards) for p in parts] == [
        (0, 0, 3), (1, 1, 3), (2, 2, 3), (3, 0, 3), (4, 1, 3), (5, 2, 3)
    ]  # fmt: skip
    assert (
        SipPcapLoader().meta().columns.tolist()
        == schema.empty_frame(SipPcapLoader.extensions).columns.tolist()
    )


def test_a_capture_clock_reset_is_repaired_and_flagged_not_quarantined(tmp_path):
    buf = io.BytesIO()
    w = CaptureWriter(buf)
    write_call(w, Call("before@t", T0, status=486))
    later = T0 + 3 * 86_400  # the probe's clock was set three days ahead mid-capture
    write_call(w, Call("after@t", later, status=200, rtp_packets=10, talk_s=1))
    records, quarantine = read(buf.getvalue(), tmp_path)
    assert quarantine.empty
    recs = records.set_index("call_id")
    # packet order is kept and no time passes across the jump: the later call starts when the
    # last packet before the jump was seen, and is flagged; its outcome follows its messages
    gap = recs.loc["after@t", "start"] - recs.loc["before@t", "end"]
    assert pd.Timedelta(0) <= gap < pd.Timedelta("1s")  # the ACK of the 486 came 10 ms later
    assert recs.loc["after@t", "outcome"] == "answered"
    assert recs["src_sip_clock_adjusted"].tolist() == [False, True]
    assert 1 <= recs.loc["after@t", "duration_s"] < 5


def _ipv4_udp(payload: bytes) -> dpkt.ip.IP:
    udp = dpkt.udp.UDP(sport=5060, dport=5060, data=payload)
    udp.ulen = 8 + len(payload)
    ip = dpkt.ip.IP(src=socket.inet_aton("192.0.2.1"), dst=socket.inet_aton("192.0.2.2"), p=17,
                    ttl=64, data=udp)  # fmt: skip
    ip.len = 20 + len(bytes(udp))
    return ip


@pytest.mark.parametrize(
    ("linktype", "wrap"),
    [
        (113, lambda ip: dpkt.sll.SLL(type=0, hrd=1, hlen=6, hdr=b"\x01" * 8, ethtype=0x0800,
                                      data=ip)),  # Linux cooked (tcpdump -i any)
        (276, lambda ip: dpkt.sll2.SLL2(protocol=0x0800, data=ip)),
        (101, lambda ip: ip),  # raw IP
        (0, lambda ip: dpkt.loopback.Loopback(family=2, data=ip)),  # BSD loopback
        (1, lambda ip: b"\x02" * 6 + b"\x04" * 6 + b"\x81\x00\x00\x64\x08\x00" + bytes(ip)),  # VLAN
    ],
)  # fmt: skip
def test_link_layer_types(tmp_path, linktype, wrap):
    invite = sip_message("INVITE sip:200@x SIP/2.0", "l@t", "1 INVITE", "<sip:100@x>;tag=1",
                         "<sip:200@x>")  # fmt: skip
    busy = sip_message("SIP/2.0 486 Busy Here", "l@t", "1 INVITE", "<sip:100@x>;tag=1",
                       "<sip:200@x>;tag=2")  # fmt: skip
    buf = io.BytesIO()
    writer = dpkt.pcap.Writer(buf, linktype=linktype)
    writer.writepkt(bytes(wrap(_ipv4_udp(invite))), ts=T0)
    writer.writepkt(bytes(wrap(_ipv4_udp(busy))), ts=T0 + 1)
    records, quarantine = read(buf.getvalue(), tmp_path)
    assert quarantine.empty
    assert records["sip_status"].tolist() == [486]


def test_unsupported_link_type_is_an_input_error(tmp_path):
    buf = io.BytesIO()
    dpkt.pcap.Writer(buf, linktype=105).writepkt(b"\x00" * 40, ts=T0)  # 802.11
    path = tmp_path / "wifi.pcap"
    path.write_bytes(buf.getvalue())
    loader = SipPcapLoader()
    (part,) = loader.parts([str(path)])
    with pytest.raises(InputError, match="link-layer type 105"):
        loader.read_part(part)


def _fuzz_base() -> bytes:
    buf = io.BytesIO()
    w = CaptureWriter(buf)
    write_call(w, Call("a@t", T0, rtp_packets=5, transport="tcp", caller=("192.0.2.1", 33000)))
    write_call(w, Call("b@t", T0 + 5, rtp_packets=5, rtp_ports=(40002, 50002)))
    write_call(w, Call("c@t", T0 + 9, transport="ws", caller=("192.0.2.3", 33001), status=486))
    write_call(w, Call("d@t", T0 + 12, caller=("2001:db8::1", 5060),
                       callee=("2001:db8::2", 5060), challenge=401))  # fmt: skip
    return buf.getvalue()


FUZZ_BASE = _fuzz_base()


@settings(max_examples=40, deadline=None)
@given(
    flips=st.lists(st.tuples(st.integers(24, len(FUZZ_BASE) - 1), st.integers(0, 255)),
                   min_size=1, max_size=30),
    cut=st.one_of(st.none(), st.integers(24, len(FUZZ_BASE))),
)  # fmt: skip
def test_corrupted_captures_never_break_the_run(tmp_path_factory, flips, cut):
    data = bytearray(FUZZ_BASE)
    for offset, value in flips:
        data[offset] = value
    if cut is not None:
        data = data[:cut]
    records, quarantine = read(bytes(data), tmp_path_factory.mktemp("fuzz"))
    assert schema.validate(records, SipPcapLoader.extensions, raise_=False) == []
    assert len(records) <= 4 + len(flips)  # corruption may split a dialog, never invent many
    assert quarantine["line"].ge(1).all()


def test_sip_capture_command_writes_a_loadable_capture(tmp_path, capsys):
    import argparse

    from cemkit.io.sip import commands

    parser = argparse.ArgumentParser(prog="cemkit")
    commands.register(parser.add_subparsers())
    out = tmp_path / "demo.pcapng"
    args = parser.parse_args(["sip-capture", "--calls", "30", "--rtp-packets", "5", "--pcapng",
                              "--out", str(out)])  # fmt: skip
    assert args.func(args) == 0
    assert "30 call attempts" in capsys.readouterr().out
    with pytest.raises(OutputError, match="exists"):  # refuses without --overwrite
        args.func(args)
    assert not list(tmp_path.glob(".demo.pcapng*"))  # no temporary file left
    records, quarantine = read(out.read_bytes(), tmp_path, name="demo.pcapng")
    assert quarantine.empty
    assert (records["record_kind"] == "xdr").sum() == 30
    assert (records["record_kind"] == "registration").sum() == 3
    assert (
        records.loc[records["a_number_kind"] == "e164", "a_number"]
        .str.startswith("+441632960")
        .all()
    )


def test_reinvite_from_the_callee_moves_the_media(tmp_path):
    from cemkit.io.sip.capgen import rtp_packet, sdp

    buf = io.BytesIO()
    w = CaptureWriter(buf)
    a, b = ("192.0.2.10", 5060), ("198.51.100.20", 5060)
    frm, to = "<sip:100@x>;tag=ft", "<sip:200@x>"
    to_t = f"{to};tag=tt"

    def send(ts, src, dst, start, cseq, f, t, body=b""):
        w.udp(ts, *src, *dst, sip_message(start, "re@t", cseq, f, t, body=body))

    send(T0, a, b, "INVITE sip:200@x SIP/2.0", "1 INVITE", frm, to, sdp(a[0], 40000))
    send(T0 + 1, b, a, "SIP/2.0 200 OK", "1 INVITE", frm, to_t, sdp(b[0], 50000))
    send(T0 + 1.01, a, b, "ACK sip:200@x SIP/2.0", "1 ACK", frm, to_t)
    for i in range(5):  # RTP on the first ports, both ways
        w.udp(T0 + 1.1 + i * 0.02, a[0], 40000, b[0], 50000, rtp_packet(i, i * 160, 1))
        w.udp(T0 + 1.1 + i * 0.02, b[0], 50000, a[0], 40000, rtp_packet(i, i * 160, 2))
    # The callee re-INVITEs (From/To swapped) with a new port; the caller answers with another.
    send(T0 + 2, b, a, "INVITE sip:100@x SIP/2.0", "1 INVITE", to_t, frm, sdp(b[0], 50010))
    send(T0 + 2.01, a, b, "SIP/2.0 200 OK", "1 INVITE", to_t, frm, sdp(a[0], 40010))
    for i in range(5, 12):
        w.udp(T0 + 2.1 + i * 0.02, a[0], 40010, b[0], 50010, rtp_packet(i, i * 160, 1))
        w.udp(T0 + 2.1 + i * 0.02, b[0], 50010, a[0], 40010, rtp_packet(i, i * 160, 2))
    send(T0 + 3, b, a, "BYE sip:100@x SIP/2.0", "2 BYE", to_t, frm)
    records, quarantine = read(buf.getvalue(), tmp_path)
    assert quarantine.empty
    (row,) = records.itertuples(index=False)
    assert (row.src_sip_rtp_fwd_packets, row.src_sip_rtp_rev_packets) == (12, 12)
    assert (row.src_sip_rtp_fwd_lost, row.src_sip_rtp_rev_lost) == (0, 0)
    assert row.released_by == "callee" and row.sip_status == 200


@pytest.mark.slow
def test_shards_on_a_real_cluster_give_the_same_records(tmp_path):
    import loopback_cluster as loopback
    from distributed import Client

    data, _ = write(scenarios())
    path = tmp_path / "c.pcap"
    path.write_bytes(data)
    one, _ = read(data, tmp_path)
    loader = SipPcapLoader(default_region="GB", shards=3)
    parts = loader.parts([str(path)])
    graph = dd.from_map(lambda p: loader.read_part(p)[0], parts, meta=loader.meta())
    (tmp_path / "cluster").mkdir()
    c = loopback.start(tmp_path / "cluster")
    try:
        with Client(c.address) as client:
            got = client.compute(graph).result()
    finally:
        c.stop()
    key = ["record_id"]
    pd.testing.assert_frame_equal(
        one.sort_values(key).reset_index(drop=True), got.sort_values(key).reset_index(drop=True)
    )
