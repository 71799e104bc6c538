"""The load manifest reconciles what was read in each format's own units.

Lines for the CSV formats (counted here in the files' bytes), packets and SIP messages for
captures (counted here with dpkt), BER records for 3GPP files (the generator's own count); each
format's identities hold per file and `cemkit load` prints them in one line.
"""

import json
import warnings

import dpkt
import pytest

from cemkit.cli import main
from cemkit.errors import ResultWarning
from cemkit.io.sip.message import looks_like_sip
from cemkit.synth_3gpp import generate_3gpp, write_file

pytestmark = pytest.mark.samples


def _load(fmt, paths, out, *extra):
    args = ["load", fmt, *map(str, paths), "--out", str(out), "--scheduler", "sync", *extra]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResultWarning)
        assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())["load"]
    return {f["path"]: f for f in manifest["inputs"]}, manifest["totals"], caught


@pytest.mark.parametrize(("fmt", "files"), [
    ("asterisk", ["asterisk/lab-pbx-100.csv", "asterisk/lab-pbx-Master.csv"]),
    ("freeswitch", ["freeswitch/Master.csv"]),
    ("cucm", ["cucm/cdr.txt", "cucm/cmr.txt"]),
    ("gnettrack", ["agent-gnettrack/netflix-static-B_2019.11.26_13.50.48.csv"]),
])  # fmt: skip
def test_lines_of_csv_formats(samples_dir, tmp_path, capsys, fmt, files):
    paths = [samples_dir / f for f in files]
    inputs, totals, _ = _load(fmt, paths, tmp_path / "run", "--region", "US")
    for path in paths:
        units = inputs[str(path)]["read_units"]
        data = path.read_bytes()
        assert units["lines"] == data.count(b"\n") + (not data.endswith(b"\n"))
        assert units["lines"] == units["header_lines"] + units["data_lines"]
        assert units["data_lines"] == inputs[str(path)]["rows_read"]  # one row per line
    assert totals["read_units"]["lines"] == sum(inputs[str(p)]["read_units"]["lines"]
                                                for p in paths)  # fmt: skip
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("read: "))
    assert f"{totals['read_units']['lines']} lines = " in line
    assert f"{totals['rows_read']} rows_read = " in line


def _dpkt_counts(path):
    """Packets and SIP-over-UDP messages of a capture, counted with dpkt alone."""
    packets = sip_udp = 0
    with open(path, "rb") as fh:
        for _, buf in dpkt.pcap.Reader(fh):
            packets += 1
            ip = dpkt.ethernet.Ethernet(buf).data
            if isinstance(ip.data, dpkt.udp.UDP) and looks_like_sip(bytes(ip.data.data)):
                sip_udp += 1
    return packets, sip_udp


@pytest.mark.parametrize("shards", [1, pytest.param(3, marks=pytest.mark.slow)])
def test_packets_and_sip_messages_of_captures(samples_dir, tmp_path, capsys, shards):
    names = ["zeek-wireshark.pcap", "sip_ipv4_tcp.pcap", "sip_ipv4_tcp_fragmented.pcap"]
    paths = [samples_dir / "sip-pcap" / n for n in names]
    inputs, totals, _ = _load("sip-pcap", paths, tmp_path / "run", "-o", f"shards={shards}")
    for path in paths:
        f = inputs[str(path)]
        u = f["read_units"]
        packets, sip_udp = _dpkt_counts(path)
        assert u["packets"] == packets  # not once per shard
        assert u["packets"] == (u["packets_udp"] + u["packets_tcp"] + u["packets_other"]
                                + u["packets_fragment_held"] + u["packets_undecodable"]
                                + u["packets_bad_timestamp"])  # fmt: skip
        assert u["sip_messages"] == (u["sip_messages_in_records"] + u["sip_messages_other"]
                                     + u["sip_messages_malformed"])  # fmt: skip
        assert u["records"] == f["rows_loaded"]
        if u["packets_tcp"] == 0:
            assert u["sip_messages"] == sip_udp
        assert f["read_units_reconciled"].startswith(f"{packets} packets = ")
    zeek = inputs[str(paths[0])]["read_units"]
    assert zeek["packets"] == zeek["packets_udp"] == zeek["sip_messages"] == 81
    tcp = inputs[str(paths[1])]["read_units"]
    assert (tcp["packets_tcp"], tcp["packets_udp"], tcp["rtp_packets"]) == (16, 68, 66)
    assert tcp["sip_messages"] == tcp["sip_messages_in_records"] == 7  # INVITE..BYE, 200 OK
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("read: "))
    assert f"{totals['read_units']['packets']} packets = " in line and "sip_messages =" in line


def test_clock_jump_is_counted_and_warned_without_data(samples_dir, tmp_path):
    src = samples_dir / "sip-pcap" / "sip_ipv4_tcp.pcap"
    path = tmp_path / "jump.pcap"
    with open(src, "rb") as fh, open(path, "wb") as out:
        reader = dpkt.pcap.Reader(fh)
        writer = dpkt.pcap.Writer(out, linktype=reader.datalink())
        for i, (ts, buf) in enumerate(reader, 1):  # three years ahead from the 200 OK on
            writer.writepkt(buf, ts=float(ts) + 3 * 365 * 86_400.0 * (i >= 9))
    _, totals, caught = _load("sip-pcap", [path], tmp_path / "run")
    units = totals["read_units"]
    assert (units["clock_jumps"], units["packets_clock_adjusted"], units["records_clock_adjusted"]
            ) == (1, 76, 1)  # fmt: skip
    assert units["packets_bad_timestamp"] == 0 and totals["rows_quarantined"] == 0
    messages = [str(w.message) for w in caught if "capture clock" in str(w.message)]
    assert len(messages) == 1 and "jumped 1 time(s)" in messages[0]
    assert "10.33." not in messages[0] and "201" not in messages[0]  # counts, no addresses


def test_ber_records_of_3gpp_files(tmp_path):
    world = generate_3gpp(tmp_path / "w", calls=20, sms=10, sessions=15, customers=20, seed=3)
    t = world["records"]
    raws = list(t[t["file"] == "msc.ber"]["raw"])
    good = write_file(tmp_path / "msc.ber", raws, headers=False)
    cut = tmp_path / "cut.ber"
    cut.write_bytes(good.read_bytes()[:-10])  # the last record is truncated
    inputs, totals, _ = _load("3gpp-cdr", [good, cut], tmp_path / "run", "--region", "GB",
                              "--max-quarantine", "1")  # fmt: skip
    assert inputs[str(good)]["read_units"]["ber_records"] == len(raws)
    assert inputs[str(good)]["rows_loaded"] == len(raws)
    assert inputs[str(cut)]["read_units"]["ber_records"] == len(raws)
    assert inputs[str(cut)]["rows_quarantined"] == 1
    n = 2 * len(raws)
    assert totals["read_units_reconciled"] == f"{n} ber_records = {n} rows_read"


def test_parquet_rows_and_a_registration_with_a_call_outcome(samples_dir, tmp_path):
    import pandas as pd

    _load("sip-pcap", [samples_dir / "sip-pcap" / "zeek-wireshark.pcap"], tmp_path / "sip")
    records = pd.read_parquet(tmp_path / "sip" / "records")
    old = records["record_kind"] == "registration"
    first = records.index[old][0]
    records.loc[first, "outcome"] = "answered"  # as cemkit wrote registrations before
    path = tmp_path / "old.parquet"
    records.to_parquet(path)
    inputs, totals, _ = _load("parquet", [path], tmp_path / "run")
    assert inputs[str(path)]["read_units"] == {"parquet_rows": len(records)}
    assert totals["rows_quarantined"] == 1 and totals["rows_loaded"] == len(records) - 1
    quarantine = pd.read_parquet(tmp_path / "run" / "quarantine")
    assert quarantine["field"].tolist() == ["outcome"]
