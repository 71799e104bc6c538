"""The sip-pcap loader on the three real captures in ../shared/data/samples/sip-pcap/.

How the expected values were established (independently of cemkit), with Wireshark's tshark 4.0
(Debian bookworm package), on 2026-11-26:

    tshark -r F [-d tcp.port==6060,sip] -Y sip -T fields -E separator='|' \
        -e frame.time_epoch -e sip.Call-ID -e sip.Method -e sip.Status-Code -e sip.CSeq \
        -e sip.to.tag -e sip.auth.username

(`-d tcp.port==6060,sip` for sip_ipv4_tcp_fragmented.pcap: its trunk uses port 6060, which
Wireshark otherwise decodes as X11.) From that output, by a few lines of Python run by hand:

* calls = Call-IDs having an INVITE request without a To tag (an initial INVITE); the expected
  final status of each is the status of the last response >= 200 whose CSeq method is INVITE
  (None when the capture holds none);
* registrations = REGISTER requests (distinct Call-ID + CSeq) without an Authorization header
  (a REGISTER with credentials re-sent after a 401/407 continues the same attempt); the expected
  status is the last final response to the attempt's CSeqs;
* RTP per direction from `tshark -r sip_ipv4_tcp.pcap -q -z rtp,streams` (packets, lost, mean and
  max jitter).

tshark is not needed to run these tests.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import SAMPLES

from cemkit import schema
from cemkit.io.base import registry
from cemkit.io.sip_pcap import SipPcapLoader

# shared/ sits beside the checkout (conftest's SAMPLES); a git worktree sits one level deeper.
_CANDIDATES = [SAMPLES, Path(__file__).resolve().parents[3] / "shared" / "data" / "samples"]
SIP = next((p / "sip-pcap" for p in _CANDIDATES if (p / "sip-pcap").exists()), SAMPLES / "sip-pcap")

pytestmark = [
    pytest.mark.samples,
    pytest.mark.skipif(not SIP.exists(), reason="shared SIP samples are absent"),
]

TCP_CALLS = {"158936656982201062716@10.33.6.100": 200}

FRAGMENTED_CALLS = {
    "005a5a6592e814fb25b37b77600": 200, "02220406592e81abb15b37b77600": 200,
    "0234a189-d0ab-41a9-879d-f08b6302060b": 200, "05abc5c6592e8166b25b37b77600": 200,
    "06883a22-81fb-4bc3-ad93-2bcf489ecbb0": 200, "08aa9496592e81f3b15b37b77600": 200,
    "0ba96366592e8180b15b37b77600": 200, "0ce9b153-e5f0-419c-83f4-654f1781a0bb": 200,
    "0d06c6d6592e81e2b25b37b77600": 200, "0e81616592e818cb25b37b77600": 200,
    "12734481-9c53-4d08-b07e-eda87e9950ed": 200, "17c0b3b3-dfd2-42ac-9018-6156179021c0": 200,
    "1a4c1cda-1eab-42e7-b8de-98626a5fd03a": 200, "1c244bee-3cbe-4a37-a600-e921703d2dbe": 200,
    "3717b920-957d-48b3-ae64-aa4ce117b1b8": 200, "3aab093a-5dfe-45b1-b25e-f24fca6e8079": 200,
    "5cebe16b-ac29-40a9-b100-b6e25943e877": 200, "61ab465a-07cc-4ea4-a56a-8a3ee7b96bdb": 200,
    "75efbc75-eff6-4442-b0a0-5a0dfe91f5e1": 200, "8014f9386592e8190b15b37b77600": 200,
    "802220406592e81b8b15b37b77600": 487, "8068e3636592e81aab25b37b77600": 200,
    "808aa9496592e812b25b37b77600": 200, "80e81616592e819ab25b37b77600": None,
    "80f232536592e8138b25b37b77600": 403, "82b9b6a3-441c-4ed1-bde0-fa218429ffd7": 200,
    "85b939c9-8f01-4f54-8042-a2338185f4cb": None, "976b9838-7961-43d7-84a6-cb50130a402c": 200,
    "a25a0d41-6915-4f05-a661-bd13c93d0df3": 200, "a2ac7c1c-2359-46b3-bbfc-c9716206f6c8": 200,
    "bef7ab40-12f0-4b7b-8b38-e0b729487c26": None, "db7a6eab-c42a-4a0a-a94e-aa32b071ee04": 200,
    "ddcc448f-561e-4bb1-a003-950342ed1c17": 200, "df3abe62-c8ed-4b11-8287-a44f021ae498": 200,
    "e07645c7-52c6-41fb-96bf-c0659cbe2bf8": 200, "e9b3c4c3-ebb1-472f-a1d2-6e06099ac11b": 200,
    "fa8ec971-f325-409a-bcf2-c9af49d26d8e": 200,
}  # fmt: skip

ZEEK_CALLS = {
    "105090259-446faf7a@192.168.1.2": 408,  # INVITE x3 (retransmitted), 100, CANCEL, 408
    "11894297-4432a9f8@192.168.1.2": 480,  # INVITE, 407, INVITE with credentials, 183, 480
    "24487391-449bf2a0@192.168.1.2": 403,  # INVITE, 407, INVITE with credentials, 403
    "85216695-42dcdb1d@192.168.1.2": 403,  # INVITE x3, 407, INVITE with credentials, 403
}
_R1, _R2 = "578222729-4665d775@578222732-4665d772", "29858147-465b0752@29858051-465b07b2"
ZEEK_REGISTRATIONS = [(_R1, 403), (_R1, 401), (_R1, 401), (_R1, 200), (_R1, 401), (_R1, 401),
                      (_R2, 200), (_R2, 401), (_R2, 200)]  # fmt: skip


#: INVITEs still unanswered when the capture stopped (within Timer B of its last packet).
CUT_OFF = {"sip_ipv4_tcp_fragmented.pcap": {"bef7ab40-12f0-4b7b-8b38-e0b729487c26"}}


def load(name: str, **options) -> tuple[pd.DataFrame, pd.DataFrame]:
    loader = registry.get("sip-pcap")(default_region="RU", **options)
    parts = loader.parts([str(SIP / name)])
    frames = [loader.read_part(p) for p in parts]
    records = pd.concat([f[0] for f in frames], ignore_index=True)
    quarantine = pd.concat([f[1] for f in frames], ignore_index=True)
    return records, quarantine


def epoch(text: str) -> pd.Timestamp:
    seconds, micros = text.split(".")
    return pd.Timestamp(int(seconds) * 1_000_000 + int(micros), unit="us", tz="UTC")


def statuses(records: pd.DataFrame) -> dict[str, int | None]:
    xdrs = records[records["record_kind"] == "xdr"]
    return {
        cid: (None if pd.isna(s) else int(s))
        for cid, s in zip(xdrs["call_id"], xdrs["sip_status"], strict=True)
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [("sip_ipv4_tcp.pcap", TCP_CALLS), ("sip_ipv4_tcp_fragmented.pcap", FRAGMENTED_CALLS),
     ("zeek-wireshark.pcap", ZEEK_CALLS)],
)  # fmt: skip
def test_calls_and_final_status_per_call_id(name, expected):
    records, quarantine = load(name)
    # an INVITE the capture cut off (no final response within Timer B of its end) is not a
    # failed call: it is set aside with that reason
    cut_off = CUT_OFF.get(name, set())
    assert statuses(records) == {k: v for k, v in expected.items() if k not in cut_off}
    assert records["call_id"][records["record_kind"] == "xdr"].is_unique
    assert len(quarantine) == len(cut_off)
    assert quarantine["reason"].str.contains("within Timer B").all()
    schema.validate(records, SipPcapLoader.extensions)
    assert (records["source"] == "sip-pcap").all()
    assert records["record_id"].is_unique


def test_registrations_of_the_zeek_capture():
    records, _ = load("zeek-wireshark.pcap")
    regs = records[records["record_kind"] == "registration"].sort_values("start")
    got = [(c, int(s)) for c, s in zip(regs["call_id"], regs["sip_status"], strict=True)]
    assert got == ZEEK_REGISTRATIONS
    # Each attempt is a challenge + a re-send with credentials: two transactions, one challenge.
    assert (regs["src_sip_requests"] == 2).all()
    assert (regs["src_sip_auth_challenges"] == 1).all()
    # registrations have their own outcomes: 401 + 200 is one registration after a challenge
    assert regs["outcome"].tolist().count("registered_after_challenge") == 3
    assert regs["outcome"].tolist().count("registration_failed") == 6


def test_auth_challenge_then_resent_invite_is_one_attempt():
    records, _ = load("zeek-wireshark.pcap")
    xdrs = records[records["record_kind"] == "xdr"].set_index("call_id")
    challenged = xdrs.loc["11894297-4432a9f8@192.168.1.2"]
    assert challenged["src_sip_requests"] == 2 and challenged["src_sip_auth_challenges"] == 1
    assert challenged["outcome"] == "no_answer"  # 480 Temporarily Unavailable
    assert challenged["cause_q850"] == 18
    # PDD counts from the first INVITE (RFC 6076: the challenge delay is part of it).
    assert challenged["pdd_ms"] == pytest.approx((1120470984.289950 - 1120470966.443914) * 1e3,
                                                 abs=0.01)  # fmt: skip
    cancelled = xdrs.loc["105090259-446faf7a@192.168.1.2"]
    assert cancelled["released_by"] == "caller"  # it sent CANCEL
    assert cancelled["src_sip_retransmissions"] == 2
    assert cancelled["outcome"] == "no_answer"  # the final response was 408


def test_answered_call_over_tcp_with_rtp_matches_tshark():
    records, _ = load("sip_ipv4_tcp.pcap")
    (row,) = records.itertuples(index=False)
    assert row.outcome == "answered" and row.sip_status == 200 and row.cause_q850 == 16
    # Frame times from tshark: INVITE 3 at .562096, 180 at .621123, 200 at 1311857690.905636,
    # BYE (sent by the callee, 10.33.6.101) at 1311857693.057152.
    assert row.pdd_ms == pytest.approx(59.027, abs=0.001)
    assert row.start == epoch("1311857686.562096")
    assert row.answer == epoch("1311857690.905636")
    assert row.end == epoch("1311857693.057152")
    assert row.billsec_s == pytest.approx(2.151516, abs=1e-6)
    assert row.released_by == "callee"
    assert row.a_number == "101" and row.b_number == "201" and row.a_number_kind == "extension"
    assert row.node == "10.33.6.101:5060"
    # tshark -z rtp,streams: 10.33.6.100:6000 -> .101:6050 24 pkts, 0 lost, mean jitter 0.039 ms,
    # max 0.069; .101:6050 -> .100:6000 42 pkts, 0 lost, mean 2.304 ms, max 3.063 ms.
    assert (row.src_sip_rtp_fwd_packets, row.src_sip_rtp_rev_packets) == (24, 42)
    assert (row.src_sip_rtp_fwd_lost, row.src_sip_rtp_rev_lost) == (0, 0)
    assert row.loss_ratio == 0.0
    assert row.src_sip_rtp_fwd_max_jitter_ms == pytest.approx(0.069, abs=0.001)
    assert row.src_sip_rtp_rev_max_jitter_ms == pytest.approx(3.063, abs=0.001)
    # Wireshark's mean includes its own start-up handling; agree within 10 %.
    assert row.src_sip_rtp_fwd_jitter_ms == pytest.approx(0.039, abs=0.006)
    assert row.src_sip_rtp_rev_jitter_ms == pytest.approx(2.304, rel=0.1)
    assert row.jitter_ms == row.src_sip_rtp_rev_jitter_ms  # the worse direction


def test_fragmented_tcp_capture_timing_and_states():
    records, _ = load("sip_ipv4_tcp_fragmented.pcap")
    assert len(records) == 36  # 37 INVITE dialogs, one cut off by the end of the capture
    # tshark: 35 calls have an 18x; mean INVITE→first 18x 200.81 ms (frame times). One of them
    # (18x after 14 ms, then nothing) is cut off by the end of the capture: 34 calls averaging
    # (35 x 200.81 - 14) / 34 = 206.3 ms.
    assert records["pdd_ms"].notna().sum() == 34
    assert records["pdd_ms"].mean() == pytest.approx((35 * 200.81 - 14.2) / 34, abs=0.5)
    # tshark: 32 answered calls, 12 of them with a BYE in the capture.
    answered = records[records["outcome"] == "answered"]
    assert len(answered) == 32
    assert (answered["src_sip_state"] == "completed").sum() == 12
    assert (answered["src_sip_state"] == "no_bye").sum() == 20
    assert (records["duration_s"] >= records["billsec_s"]).all()


def test_same_answer_whatever_the_number_of_shards():
    one, q1 = load("sip_ipv4_tcp_fragmented.pcap", shards=1)
    three, q3 = load("sip_ipv4_tcp_fragmented.pcap", shards=3)
    key = ["record_id"]
    pd.testing.assert_frame_equal(
        one.sort_values(key).reset_index(drop=True), three.sort_values(key).reset_index(drop=True)
    )
    assert len(q1) == len(q3)


def test_rfc6076_indicators_can_be_computed_from_the_records():
    """SER, SEER, ISA, SCR and SRD (RFC 6076 sections 4.1-4.8), in plain pandas."""
    frames = [load(n)[0] for n in ("sip_ipv4_tcp.pcap", "sip_ipv4_tcp_fragmented.pcap",
                                    "zeek-wireshark.pcap")]  # fmt: skip
    xdrs = pd.concat(frames, ignore_index=True)
    xdrs = xdrs[xdrs["record_kind"] == "xdr"]
    status = xdrs["sip_status"]
    total = len(xdrs)
    redirected = int(status.between(300, 399).sum())
    ser = 100 * (status == 200).sum() / (total - redirected)
    seer = 100 * status.isin([200, 480, 486, 600, 603]).sum() / (total - redirected)
    isa = 100 * status.isin([408, 500, 503, 504]).sum() / total
    completed = (xdrs["outcome"] == "answered") & (xdrs["src_sip_state"] == "completed")
    scr = 100 * completed.sum() / total
    # SRD of successful sessions: INVITE to the first 18x, or to the 200 when no 18x came.
    answered = xdrs[status == 200]
    srd_ms = answered["pdd_ms"].fillna(
        (answered["answer"] - answered["start"]).dt.total_seconds() * 1000
    )
    # Expected from the tshark counts: 42 INVITE dialogs (1 + 37 + 4), of which one the capture
    # cut off (no final response within Timer B of its end: outcome unknown, not counted): 41;
    # 200: 1 + 32; 480: 1; 408: 1; no 3xx; completed (200 and BYE seen): 1 + 12.
    assert total == 41
    assert ser == pytest.approx(100 * 33 / 41)
    assert seer == pytest.approx(100 * 34 / 41)
    assert isa == pytest.approx(100 * 1 / 41)
    assert scr == pytest.approx(100 * 13 / 41)
    assert srd_ms.notna().all() and (srd_ms > 0).all() and len(srd_ms) == 33


def test_node_option_and_normalised_numbers():
    records, _ = load("sip_ipv4_tcp_fragmented.pcap", node="probe-7")
    assert (records["node"] == "probe-7").all()
    # Russian mobile numbers written nationally (7...) become E.164 with default_region RU.
    e164 = records.loc[records["a_number_kind"] == "e164", "a_number"]
    assert len(e164) > 0 and e164.str.match(r"^\+7\d{10}$").all()
