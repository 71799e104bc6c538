"""A capture whose packet clock jumps: packet order is kept, the records are flagged, the calls'
outcomes still follow their messages, and the load's manifest counts the jumps.

The broken captures are real samples with their packet timestamps rewritten (dpkt reads and
writes them) into a temporary directory.
"""

import dpkt
import pandas as pd
import pytest

from cemkit import io as cio
from cemkit.io.sip.capture import CaptureClock

pytestmark = pytest.mark.samples

YEARS_3 = 3 * 365 * 86_400.0


def _rewrite(src, dst, shift):
    """Copy a capture with ``shift(packet_number, ts)`` as each packet's new timestamp."""
    times = []
    with open(src, "rb") as fh, open(dst, "wb") as out:
        reader = dpkt.pcap.Reader(fh)
        writer = dpkt.pcap.Writer(out, linktype=reader.datalink())
        for i, (ts, buf) in enumerate(reader, 1):
            times.append(float(ts))
            writer.writepkt(buf, ts=shift(i, float(ts)))
    return dst, times


def _load(path):
    recs = cio.load(str(path), format="sip-pcap").compute(scheduler="sync")
    quarantine = cio.load_quarantine(str(path), format="sip-pcap").compute(scheduler="sync")
    return recs.set_index("call_id").sort_index(), quarantine


_ORIGINALS: dict = {}


def _original(path):
    """The unmodified sample's records (loaded once per test session)."""
    if path not in _ORIGINALS:
        _ORIGINALS[path] = _load(path)
    return _ORIGINALS[path]


@pytest.mark.parametrize("first", [9, 75])
def test_years_forward_in_the_middle_of_an_answered_call(samples_dir, tmp_path, first):
    # sip_ipv4_tcp.pcap: INVITE (packet 3), 180 (7), 200 OK (9), RTP, BYE (81), 200 (83); the
    # clock jumps three years forward just before the 200 OK, or 10 packets before the end
    # (too few packets to "agree" on the new time: main quarantined them, and lost the BYE)
    src = samples_dir / "sip-pcap" / "sip_ipv4_tcp.pcap"
    path, ts = _rewrite(src, tmp_path / "jump.pcap", lambda i, t: t + YEARS_3 * (i >= first))
    (orig, _), (got, quarantine) = _original(src), _load(path)
    assert quarantine.empty
    call, was = got.iloc[0], orig.iloc[0]
    assert call["outcome"] == "answered" and call["sip_status"] == 200
    assert call["src_sip_state"] == "completed" and bool(call["src_sip_clock_adjusted"])
    assert call["released_by"] == was["released_by"] == "callee"
    assert not orig["src_sip_clock_adjusted"].any()
    # no time passes across the jump: the call is shorter by the real gap at the jump only
    lost = ts[first - 1] - ts[first - 2]
    assert call["start"] == was["start"]
    assert call["duration_s"] == pytest.approx(was["duration_s"] - lost, abs=1e-6)
    assert call["billsec_s"] == pytest.approx(was["billsec_s"] - lost * (first > 9), abs=1e-6)
    assert call["src_sip_rtp_fwd_packets"] == was["src_sip_rtp_fwd_packets"]


@pytest.mark.parametrize("how", ["back_5_years", "single_bogus_packet", "back_1_hour"])
def test_clock_jumps_in_a_capture_of_many_calls(samples_dir, tmp_path, how):
    src = samples_dir / "sip-pcap" / "sip_ipv4_tcp_fragmented.pcap"
    cut = 400  # the clock breaks at this packet (in the middle of several calls)
    shifts = {
        "back_5_years": lambda i, t: t - 5 * 365 * 86_400.0 * (i >= cut),
        "single_bogus_packet": lambda i, t: t + YEARS_3 * (i == cut),
        "back_1_hour": lambda i, t: t - 3600.0 * (i >= cut),
    }
    path, ts = _rewrite(src, tmp_path / f"{how}.pcap", shifts[how])
    (orig, orig_q), (got, quarantine) = _original(src), _load(path)
    assert len(quarantine) == len(orig_q)  # no packet set aside for its timestamp
    assert got.index.tolist() == orig.index.tolist()
    cols = ["record_kind", "outcome", "sip_status", "src_sip_state", "answer"]
    pd.testing.assert_series_equal(got["outcome"], orig["outcome"])  # outcomes follow messages
    pd.testing.assert_series_equal(got["sip_status"], orig["sip_status"])
    flagged = got["src_sip_clock_adjusted"].astype(bool)
    jump_ts = pd.Timestamp(ts[cut - 1], unit="s", tz="UTC")
    later = orig["src_sip_first_packet"] >= cut
    spans = (orig["start"] < jump_ts) & (orig["end"] >= jump_ts)
    if how == "single_bogus_packet":  # the clock comes back: later calls keep their times
        assert flagged[spans].all() and not flagged[later].any()
        pd.testing.assert_series_equal(got.loc[later, "start"], orig.loc[later, "start"])
    else:  # the rest of the capture is on the repaired clock
        assert flagged[later | spans].all()
    assert not flagged[orig["end"] < jump_ts - pd.Timedelta("1s")].any()
    assert (got["end"] >= got["start"]).all()
    before = ~later & ~flagged
    pd.testing.assert_frame_equal(got.loc[before, cols], orig.loc[before, cols])
    if how != "single_bogus_packet":  # later calls keep their spacing, minus the lost gap
        lost = pd.Timedelta(seconds=ts[cut - 1] - ts[cut - 2])
        shift = (got.loc[later, "start"] - orig.loc[later, "start"]).abs()
        assert (shift <= lost + pd.Timedelta("1us")).all()


def test_clock_flags_only_what_the_jump_touches():
    clock = CaptureClock()
    times = [10.0, 11.0, 12.0, 5e8, 12.5, 13.0, 13.0 - 7200, 13.5 - 7200]
    assert [clock.correct(i, t) for i, t in enumerate(times, 1)] == [
        10.0, 11.0, 12.0, 12.0, 12.5, 13.0, 13.0, 13.5]  # fmt: skip
    assert clock.jumps == 3 and clock.jump_packets == [4, 5, 7]
    assert clock.affects(1, 3) is False  # before any jump
    assert clock.affects(3, 4) is True and clock.affects(4, 4) is True
    assert clock.affects(5, 6) is False  # back on the reference clock
    assert clock.affects(6, 7) is True and clock.affects(8, 8) is True


def test_the_clock_flag_survives_protection_in_a_pipeline_run(samples_dir, tmp_path, monkeypatch):
    # every shipped policy keeps the flag (a quality flag, not personal): a protected run's
    # records still say which calls are on a repaired clock
    from pathlib import Path

    import cemkit
    from cemkit.errors import ResultWarning
    from cemkit.runs.store import read_records

    monkeypatch.setenv("CEMKIT_KEY", "ab" * 32)
    src = samples_dir / "sip-pcap" / "sip_ipv4_tcp.pcap"
    path, _ = _rewrite(src, tmp_path / "jump.pcap", lambda i, t: t + YEARS_3 * (i >= 9))
    model = Path(cemkit.__file__).parent / "data" / "models" / "example.yaml"
    for policy in ("default", "research", "strict"):
        out = tmp_path / policy
        with pytest.warns(ResultWarning) as said:  # the jump, and the model's misfit
            cemkit.run(path, format="sip-pcap", policy=policy, model=model, out=out,
                       scheduler="sync", freqs=("day",))  # fmt: skip
        assert any("clock jumped" in str(w.message) for w in said)
        recs = read_records(out)
        recs = recs.compute() if hasattr(recs, "compute") else recs
        assert recs["src_sip_clock_adjusted"].astype(bool).any(), policy
