"""An INVITE left unanswered because the capture ended (within Timer B) is not a failed call."""

import re
import struct

import pytest

from cemkit import io as cio
from cemkit.io.sip.extract import TIMER_B_S

pytestmark = pytest.mark.samples


def _packets(path):
    """(global header, [record bytes]) of a little-endian classic pcap."""
    data = path.read_bytes()
    off, out = 24, []
    while off + 16 <= len(data):
        incl = struct.unpack("<I", data[off + 8 : off + 12])[0]
        out.append(data[off : off + 16 + incl])
        off += 16 + incl
    return data[:24], out


def _ts(record):
    sec, usec = struct.unpack("<II", record[:8])
    return sec + usec / 1e6


def _load(path):
    recs = cio.load(str(path), format="sip-pcap").compute(scheduler="sync")
    quarantine = cio.load_quarantine(str(path), format="sip-pcap").compute(scheduler="sync")
    return recs, quarantine


@pytest.fixture
def capture(samples_dir):
    # zeek-wireshark.pcap: packets 18-20 are an INVITE and its retransmissions; its 408 comes
    # 37 s later (packet 21 on)
    return _packets(samples_dir / "sip-pcap" / "zeek-wireshark.pcap")


def test_invite_cut_off_by_the_capture_end_is_not_failed(capture, tmp_path):
    head, packets = capture
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(head + b"".join(packets[:21]))  # the capture stops 1.5 s after the INVITE
    assert _ts(packets[20]) - _ts(packets[18]) < TIMER_B_S
    recs, quarantine = _load(cut)
    xdrs = recs[recs["record_kind"] == "xdr"]
    assert not (xdrs["outcome"] == "failed").any()
    reason = quarantine["reason"].str.contains("within Timer B")
    assert reason.sum() == 1 and (quarantine.loc[reason, "field"] == "sip_status").all()
    assert quarantine.loc[reason, "raw"].eq("").all()  # nothing of the message is copied


def test_invite_unanswered_long_before_the_end_is_still_failed(capture, tmp_path):
    head, packets = capture
    call_id = re.search(rb"Call-ID: *([^\r\n]+)", packets[18], re.IGNORECASE).group(1)
    later = next(
        p
        for p in packets[22:]
        if _ts(p) - _ts(packets[18]) > 2 * TIMER_B_S and b"INVITE sip" not in p and call_id not in p
    )  # another call's message
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(head + b"".join(packets[:21]) + later)  # the capture goes on without a reply
    recs, quarantine = _load(cut)
    xdrs = recs[recs["record_kind"] == "xdr"]
    assert (xdrs["outcome"] == "failed").sum() == 1
    assert not quarantine["reason"].str.contains("within Timer B").any()
