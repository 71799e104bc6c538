"""Registrations have their own outcomes and KQIs (success ratio, RFC 6076 RRD), never calls.

Registrations are measured on records of the real pipeline (load → protect → correlate → KQIs,
:func:`cemkit.process_batch`): correlation must keep each REGISTER attempt a record of its own
(a refresh reuses its Call-ID, RFC 3261 section 10.2.4, and is no partial of a long call).
"""

import dpkt
import pytest

import cemkit
from cemkit import io as cio
from cemkit import outcomes
from cemkit.kqi import formulas
from cemkit.report.tables import glossary

pytestmark = pytest.mark.samples

KEY = "7f3a9c2e5b8d1f4a6c0e3b7d9a2f5c8e1b4d7a0c3f6e9b2d5a8c1f4e7b0a3d6c"
ZEEK = "zeek-wireshark.pcap"
REG_COUNTERS = ["registrations", "registrations_ok", "registrations_challenged",
                "registrations_unknown", "rrd_count"]  # fmt: skip


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("regmodel") / "model.yaml"
    path.write_text("name: sip\ngroups:\n  - {name: uk, match: {prefixes: ['+44']}}\n")
    return path


def _load(path):
    return cio.load(str(path), format="sip-pcap").compute(scheduler="sync")


def _pipeline_sums(records, model, monkeypatch):
    """Counters of the whole capture from the pipeline's KQI table (one day bucket)."""
    monkeypatch.setenv("CEMKIT_KEY", KEY)
    res = cemkit.process_batch(records, policy="default", model=model, freqs=("day",))
    groups = res.kqi[res.kqi["object_kind"] == "group"]
    top = groups[groups["object"].isin(["uk", "(unassigned)"])]
    sums = top[list(formulas.COUNTERS)].sum().to_frame().T
    return sums, res.records


def _cut(src, dst, keep):
    """Write the first ``keep`` packets of a capture (dpkt reads and writes it)."""
    with open(src, "rb") as fh, open(dst, "wb") as out:
        reader = dpkt.pcap.Reader(fh)
        writer = dpkt.pcap.Writer(out, linktype=reader.datalink())
        for i, (ts, buf) in enumerate(reader, 1):
            if i in keep:
                writer.writepkt(buf, ts=ts)
    return dst


def test_registration_kqis_of_the_zeek_capture_through_the_pipeline(samples_dir, model,
                                                                      monkeypatch):  # fmt: skip
    # the capture's 9 REGISTER attempts (tshark): each a 401 challenge and a re-send with
    # credentials on the same Call-ID, answered 403, 401, 401, 200, 401, 401, 200, 401, 200
    loaded = _load(samples_dir / "sip-pcap" / ZEEK)
    regs = loaded[loaded["record_kind"] == "registration"]
    assert set(regs["outcome"]) <= set(outcomes.REGISTRATION_OUTCOMES)
    sums, recs = _pipeline_sums(loaded, model, monkeypatch)
    got = sums.iloc[0]
    # the challenged-then-200 attempts are one successful registration each, not a failure
    assert got[REG_COUNTERS].tolist() == [9, 3, 3, 0, 3]
    # registrations are never call attempts: the 4 INVITE dialogs are the only attempts
    assert got["attempts"] == 4 and got["answered"] == 0 and got["invites"] == 4
    piped = recs[recs["record_kind"] == "registration"]
    assert len(piped) == 9  # correlation stitched none of them (same Call-ID, refreshes)
    ind = formulas.indicators(sums)
    assert float(ind["registration_success_ratio"].iloc[0]) == pytest.approx(3 / 9)
    ok = regs[regs["outcome"].isin(sorted(outcomes.REGISTRATION_SUCCESS))]
    # RFC 6076 RRD: first REGISTER of the attempt to its 200, the challenge round trip included
    # (packets 14 → 18: 1120469938.910409 → 1120469956.406918, and two more)
    assert ((ok["end"] - ok["start"]).dt.total_seconds() > 17).all()
    rrd_ms = ((ok["end"] - ok["start"]).dt.total_seconds() * 1000).mean()
    assert float(ind["rrd_mean_ms"].iloc[0]) == pytest.approx(rrd_ms, abs=1e-3)


def test_registration_cut_off_by_the_capture_end_is_unknown(samples_dir, model, tmp_path,
                                                             monkeypatch):  # fmt: skip
    # packets 1-15: three failed attempts, then REGISTER (14) challenged by 401 (15) as the
    # capture stops: the re-send with credentials (16, 17 s later) is not in it
    cut = _cut(samples_dir / "sip-pcap" / ZEEK, tmp_path / "cut.pcap", set(range(1, 16)))
    loaded = _load(cut)
    last = loaded[loaded["record_kind"] == "registration"].sort_values("start").iloc[-1]
    assert last["outcome"] == "registration_unknown" and last["sip_status"] == 401
    sums, _ = _pipeline_sums(loaded, model, monkeypatch)
    assert sums.iloc[0][REG_COUNTERS].tolist() == [3, 0, 0, 1, 0]
    assert float(formulas.indicators(sums)["registration_success_ratio"].iloc[0]) == 0.0


def test_registration_without_response_long_before_the_end_failed(samples_dir, tmp_path):
    # REGISTER 16 (credentials) never answered, and the capture goes on 93 s (> Timer F) to an
    # INVITE of another Call-ID: the attempt timed out (RFC 3261 17.1.2.2), a failure
    cut = _cut(samples_dir / "sip-pcap" / ZEEK, tmp_path / "late.pcap", {*range(1, 17), 19})
    regs = _load(cut)
    regs = regs[regs["record_kind"] == "registration"].sort_values("start")
    assert regs["outcome"].iloc[-1] == "registration_failed"
    assert regs["src_sip_state"].iloc[-1] == "no_final_response"
    sums = formulas.contributions(regs).sum()
    assert sums["registrations"] == 4 and sums["registrations_unknown"] == 0


def test_registration_kqis_are_in_the_catalogue_and_glossary():
    text = glossary(["registration_success_ratio", "rrd_mean_ms"]).to_html()
    assert "RFC 6076" in text and "Registration request delay" in text
    assert formulas.COUNTERS[-2:] == ("registrations_challenged", "registrations_unknown")
