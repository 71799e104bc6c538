"""Registrations have their own KQIs (success ratio, RFC 6076 RRD), never call attempts."""

import pytest

from cemkit import io as cio
from cemkit.kqi import formulas

pytestmark = pytest.mark.samples


def test_registration_kqis_of_the_zeek_capture(samples_dir):
    # the capture's registrations (tshark): 403, 401, 401, 200, 401, 401, 200, 401, 200
    recs = cio.load(str(samples_dir / "sip-pcap" / "zeek-wireshark.pcap"),
                    format="sip-pcap").compute(scheduler="sync")  # fmt: skip
    regs = recs[recs["record_kind"] == "registration"]
    sums = formulas.contributions(recs).sum().to_frame().T
    assert int(sums["registrations"].iloc[0]) == len(regs) == 9
    assert int(sums["registrations_ok"].iloc[0]) == 3
    ind = formulas.indicators(sums)
    assert float(ind["registration_success_ratio"].iloc[0]) == pytest.approx(3 / 9)
    ok = regs[regs["sip_status"].between(200, 299)]
    rrd_ms = ((ok["end"] - ok["start"]).dt.total_seconds() * 1000).mean()
    assert float(ind["rrd_mean_ms"].iloc[0]) == pytest.approx(rrd_ms, abs=1e-3)
    # a REGISTER 200 is no answered call: registrations are not call attempts
    of_regs = formulas.contributions(regs)[["attempts", "answered", "invites"]].sum()
    assert (of_regs == 0).all()
