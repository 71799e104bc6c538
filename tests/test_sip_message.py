"""SIP message parsing, SDP, RTP statistics (unit level)."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit.io.sip.message import (
    SipParseError,
    header_tag,
    header_user,
    looks_like_sip,
    parse_message,
    parse_sdp,
    uri_user,
)
from cemkit.io.sip.rtp import RtpStream, parse_rtp

INVITE = (
    b"INVITE sip:+441632960962@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
    b"v: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK2\r\n"
    b'f: "Alice" <sip:+441632960961@example.com>;tag=abc\r\n'
    b"t: <sip:+441632960962@example.com>\r\n"
    b"i: call-1@example.com\r\n"
    b"CSeq: 10 INVITE\r\n"
    b"Subject: a subject folded\r\n"
    b"  over two lines\r\n"
    b"P-Asserted-Identity: <tel:+441632960963>\r\n"
    b"c: application/sdp\r\n"
    b"l: 4\r\n\r\n"
    b"v=0\r\nEXTRA"
)


def test_request_with_compact_and_folded_headers():
    msg = parse_message(INVITE)
    assert msg.method == "INVITE" and msg.status is None and msg.is_request
    assert msg.call_id == "call-1@example.com"
    assert msg.cseq == (10, "INVITE")
    assert len(msg.headers["via"]) == 2
    assert msg.header("subject") == "a subject folded over two lines"
    assert msg.from_tag == "abc" and msg.to_tag is None
    assert msg.body == b"v=0\r"  # cut at Content-Length
    assert header_user(msg.header("p-asserted-identity")) == "+441632960963"
    assert uri_user(msg.uri) == "+441632960962"


def test_response():
    raw = (b"SIP/2.0 486 Busy Here\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nFrom: <sip:a@b>;tag=1\r\n"
           b"To: <sip:c@d>;tag=2\r\nContent-Length: 0\r\n\r\n")  # fmt: skip
    msg = parse_message(raw)
    assert msg.status == 486 and msg.method is None and msg.to_tag == "2"


HEAD = b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nFrom: a\r\nTo: b\r\n"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\nFrom: a\r\nTo: b\r\n\r\n", "Call-ID"),
        (b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\nFrom: a\r\nTo: b\r\n\r\n", "CSeq"),
        (b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\nCSeq: one INVITE\r\nFrom: a\r\nTo: b\r\n\r\n",
         "CSeq"),
        (b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 BYE\r\nFrom: a\r\nTo: b\r\n\r\n",
         "CSeq"),
        (b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nTo: b\r\n\r\n", "From"),
        (b"SIP/2.0 999 Odd\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nFrom: a\r\nTo: b\r\n\r\n", "status"),
        (HEAD + b"Content-Length: 50\r\n\r\nshort", "Content-Length"),
        (HEAD + b"Content-Length: -1\r\n\r\n", "Content-Length"),
        (b"INVITE sip:a@b SIP/2.0\r\nCall-ID x\r\n\r\n", "header"),
        (b"HELLO world\r\n\r\n", "start"),
    ],
)  # fmt: skip
def test_malformed_messages_name_the_field(raw, field):
    with pytest.raises(SipParseError) as info:
        parse_message(raw)
    assert info.value.field == field
    again = pickle.loads(pickle.dumps(info.value))
    assert again.field == field and again.reason == info.value.reason


@pytest.mark.parametrize(
    ("value", "user"),
    [
        ('"Bob" <sip:bob@example.com>;tag=9', "bob"),
        ("<sips:+1%20555@example.com;transport=tls>", "+1 555"),
        ("sip:100@pbx;tag=1", "100"),
        ("<tel:+441632960961;phone-context=example.com>", "+441632960961"),
        ("<sip:+441632960961;npdi@example.com;user=phone>", "+441632960961"),
        ("<sip:user:password@example.com>", "user"),
        ("<sip:example.com>", None),
        ("<mailto:a@b>", None),
        ("", None),
    ],
)
def test_header_user(value, user):
    assert header_user(value) == user


def test_tag_inside_uri_is_not_the_header_tag():
    assert header_tag("<sip:a@b;tag=inner>;tag=outer") == "outer"
    assert header_tag("<sip:a@b;tag=inner>") is None


def test_looks_like_sip():
    assert looks_like_sip(b"SIP/2.0 200 OK\r\n")
    assert looks_like_sip(b"OPTIONS sip:x SIP/2.0\r\n")
    assert not looks_like_sip(b"GET / HTTP/1.1\r\n")
    assert not looks_like_sip(b"\x80\x08\x00\x01")


def test_sdp_media_and_session_addresses():
    body = (b"v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0 96\r\n"
            b"a=rtpmap:96 opus/48000/2\r\nm=video 0 RTP/AVP 31\r\nm=audio 5000 RTP/AVP 8\r\n"
            b"c=IN IP6 2001:db8::5\r\n")  # fmt: skip
    offers = parse_sdp(body)
    assert [(o.address, o.port) for o in offers] == [("192.0.2.1", 4000), ("2001:db8::5", 5000)]
    assert offers[0].clock_rates == {0: 8000, 96: 48000}


def test_rtp_header_and_rtcp_rejected():
    assert parse_rtp(b"\x80\x08\x00\x05" + b"\x00\x00\x00\xa0" + b"\x00\x00\x00\x01") is not None
    assert parse_rtp(b"\x80\xc8" + b"\x00" * 10) is None  # RTCP sender report
    assert parse_rtp(b"\x40\x08" + b"\x00" * 10) is None  # version 1
    assert parse_rtp(b"\x80") is None


def reference_jitter(arrivals, timestamps, rate):
    """RFC 3550 section 6.4.1, written out literally."""
    j, js = 0.0, []
    for i in range(len(arrivals)):
        if i:
            d = (arrivals[i] - arrivals[i - 1]) * rate - (timestamps[i] - timestamps[i - 1])
            j += (abs(d) - j) / 16
        js.append(j)
    return js


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=0.05), min_size=2, max_size=60))
def test_jitter_equals_the_rfc_3550_formula(delays):
    arrivals = [i * 0.02 + d for i, d in enumerate(delays)]
    stamps = [i * 160 for i in range(len(delays))]
    s = RtpStream(8000)
    for i, (a, t) in enumerate(zip(arrivals, stamps, strict=True)):
        s.add(a, i, t)
    js = reference_jitter(arrivals, stamps, 8000)
    assert s.last_jitter_ms == pytest.approx(js[-1] / 8, abs=1e-9)
    assert s.max_jitter_ms == pytest.approx(max(js) / 8, abs=1e-9)
    assert s.jitter_ms == pytest.approx(sum(js) / len(js) / 8, abs=1e-9)
    assert s.lost == 0


def test_loss_across_sequence_wrap_with_duplicates_and_reordering():
    s = RtpStream()
    seqs = [65530, 65531, 65533, 65532, 65533, 65535, 0, 1, 4]  # 65534, 2, 3 lost; one duplicate
    for i, q in enumerate(seqs):
        s.add(i * 0.02, q, i * 160)
    assert s.expected == 11  # 65530 .. 4 (wrapped)
    assert s.received == 8
    assert s.duplicates == 1
    assert s.lost == 3


@pytest.mark.parametrize(
    "module",
    ["cemkit.io.sip.capture", "cemkit.io.sip.message", "cemkit.io.sip.rtp",
     "cemkit.io.sip.stream", "cemkit.io.sip.capgen", "cemkit.io.sip_pcap",
     "cemkit.io.sip.commands"],
)  # fmt: skip
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), raise_on_error=False)
    assert result.failed == 0 and result.attempted > 0
