"""Leak test: every real sample protected with policies/default.yaml leaves no raw TN (with or
without '+', E.164, national format) and no e-mail address in any output file.

Until the loaders land, the samples are read into canonical frames here with small pandas
readers (every source column kept as src_* so that the default policy meets all of them), and
*every* raw line is put into the quarantine, the worst case for the raw-text scanner.
"""

import csv
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from cemkit.privacy.commands import run_protect
from cemkit.privacy.keys import Key

from .privacy_leaks import canonical, leaks, secrets_of, write_load_run

# ../shared/data/samples next to the repository (or next to the worktrees' parent).
_REPO = Path(__file__).resolve().parents[1]
_CANDIDATES = [p / "shared" / "data" / "samples" for p in (_REPO.parent, _REPO.parent.parent)]
SAMPLES = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])
KEY = Key.from_material(bytes(range(32)), key_id="cemkit-default-2026")

pytestmark = pytest.mark.samples


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"sample {path.name} absent")
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


ASTERISK = ["accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
            "lastdata", "start", "answer", "end", "duration", "billsec", "disposition",
            "amaflags", "uniqueid", "userfield"]  # fmt: skip
FREESWITCH = ["caller_id_name", "caller_id_number", "destination_number", "context",
              "start_stamp", "answer_stamp", "end_stamp", "duration", "billsec", "hangup_cause",
              "uuid", "bleg_uuid", "accountcode", "read_codec", "write_codec"]  # fmt: skip


def _csv(path: Path, names: list[str]) -> pd.DataFrame:
    rows = list(csv.reader(io.StringIO(path.read_text(errors="replace"))))
    width = len(names)
    return pd.DataFrame([(r + [""] * width)[:width] for r in rows], columns=names)


def asterisk(name):
    path = _need(SAMPLES / "asterisk" / name)
    df = _csv(path, ASTERISK)
    return canonical(df, "asterisk", "src", "dst"), _lines(path), list(df["src"]) + list(
        df["dst"]) + re.findall(r"<([^>]*)>", path.read_text())  # fmt: skip


def freeswitch():
    path = _need(SAMPLES / "freeswitch" / "Master.csv")
    df = _csv(path, FREESWITCH)
    tns = list(df["caller_id_number"]) + list(df["destination_number"]) + list(df["caller_id_name"])
    return canonical(df, "freeswitch", "caller_id_number", "destination_number"), _lines(path), tns


def cucm(name):
    path = _need(SAMPLES / "cucm" / name)
    df = pd.read_csv(path, skiprows=[1], dtype=str, keep_default_na=False)
    number_cols = [c for c in df.columns if "number" in c.lower() or "directorynum" in c.lower()]
    a = "callingPartyNumber" if "callingPartyNumber" in df else number_cols[0]
    b = "finalCalledPartyNumber" if "finalCalledPartyNumber" in df else number_cols[0]
    tns = [v for c in number_cols for v in df[c]]
    return canonical(df, "cucm", a, b), _lines(path), tns


def copenhagen(name):
    path = _need(SAMPLES / "copenhagen" / name)
    df = pd.read_csv(path, dtype=str)
    return canonical(df, "copenhagen", "from", "to"), _lines(path)[:2000], list(df["from"]) + list(
        df["to"])  # fmt: skip


def _sip_messages(path: Path) -> list[str]:
    """Every SIP message of a capture as text (the worst case for the quarantine scanner)."""
    import dpkt

    messages = []
    with path.open("rb") as f:
        reader = dpkt.pcap.Reader(f)
        for _, buf in reader:
            frame = dpkt.ethernet.Ethernet(buf) if reader.datalink() == 1 else dpkt.sll.SLL(buf)
            payload = bytes(getattr(getattr(frame.data, "data", None), "data", b"") or b"")
            if b"SIP/2.0" in payload[:300]:
                messages.append(payload.decode("utf-8", errors="replace"))
    return messages


def _sip_users(messages: list[str]) -> list[str]:
    """User parts of sip:/sips: URIs and tel: numbers (host-only URIs name servers)."""
    found = re.findall(r"sips?:([^@;>\s:]+)@|tel:([^;>\s]+)", "\n".join(messages))
    return [a or b for a, b in found]


def _load_sip(path: Path, region: str = "GB") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Records and quarantine of a capture, read by cemkit's sip-pcap loader."""
    import cemkit.io.sip_pcap  # noqa: F401 - registers the loader
    from cemkit.io.base import registry

    loader = registry.get("sip-pcap")(default_region=region)
    frames = [loader.read_part(part) for part in loader.parts([str(path)])]
    return (pd.concat([f[0] for f in frames], ignore_index=True),
            pd.concat([f[1] for f in frames], ignore_index=True))  # fmt: skip


def sip_pcap(name):
    path = _need(SAMPLES / "sip-pcap" / name)
    records, quarantine = _load_sip(path)
    messages = _sip_messages(path)
    users = _sip_users(messages)
    raw = list(quarantine["raw"].dropna()) + messages
    return records, raw, users + list(records["a_number"]) + list(records["b_number"])


CASES = {
    "asterisk/lab-pbx-Master.csv": lambda: asterisk("lab-pbx-Master.csv"),
    "asterisk/lab-pbx-100.csv": lambda: asterisk("lab-pbx-100.csv"),
    "freeswitch/Master.csv": freeswitch,
    "cucm/cdr.txt": lambda: cucm("cdr.txt"),
    "cucm/cmr.txt": lambda: cucm("cmr.txt"),
    "copenhagen/calls.csv": lambda: copenhagen("calls.csv"),
    "copenhagen/sms.csv": lambda: copenhagen("sms.csv"),
    "sip-pcap/zeek-wireshark.pcap": lambda: sip_pcap("zeek-wireshark.pcap"),
    "sip-pcap/sip_ipv4_tcp_fragmented.pcap": lambda: sip_pcap("sip_ipv4_tcp_fragmented.pcap"),
    "sip-pcap/sip_ipv4_tcp.pcap": lambda: sip_pcap("sip_ipv4_tcp.pcap"),
}


@pytest.mark.parametrize("sample", list(CASES))
def test_no_raw_tn_or_email_in_any_output(sample, tmp_path):
    records, raw_lines, tn_values = CASES[sample]()
    secrets = secrets_of(tn_values, raw_lines)
    run, out = tmp_path / "load", tmp_path / "protected"
    write_load_run(run, records, raw_lines, sample)
    # The search must be able to find something: the unprotected run leaks.
    if secrets:
        assert leaks(run, secrets), "the leak search finds nothing even in the raw input"
    manifest = run_protect(run, "default", out, key=KEY, scheduler="threads")
    assert manifest["counts"] == {"records": len(records), "quarantine": len(raw_lines)}
    found = leaks(out, secrets)
    assert not found, f"{len(found)} raw value(s) found in outputs: {sorted(set(found))[:5]}"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from cemkit import synth

    out = tmp_path_factory.mktemp("synth")
    synth.generate(out, records=3000, seed=5, incidents=1)
    return out


def _synthetic_case(world: Path, which: str):
    if which == "sip-pcap":
        from cemkit.io.sip.capgen import write_workload

        path = world / "capture.pcap"
        if not path.exists():
            with path.open("wb") as fh:
                write_workload(fh, 150, rtp_packets=2, seed=3)
        records, _ = _load_sip(path)
        messages = _sip_messages(path)
        users = _sip_users(messages)
        tns = users + list(records["a_number"]) + list(records["b_number"])
        return records, messages[::7][:300], secrets_of(tns, messages, "GB")
    truth = json.loads((world / "truth.json").read_text())
    records = pd.read_parquet(world / "records")
    asterisk_path = world / "formats" / "asterisk" / "Master.csv"
    freeswitch_path = world / "formats" / "freeswitch" / "Master.csv"
    tns = list(records["a_number"]) + list(records["b_number"])
    if which == "records":
        frame, raw = records, _lines(asterisk_path) + _lines(freeswitch_path)
    elif which == "asterisk":
        df = _csv(asterisk_path, ASTERISK)
        frame, raw = canonical(df, "asterisk", "src", "dst"), _lines(asterisk_path)
        tns += list(df["src"]) + list(df["dst"])
    else:
        df = _csv(freeswitch_path, FREESWITCH)
        frame, raw = canonical(df, "freeswitch", "caller_id_number", "destination_number"), \
            _lines(freeswitch_path)  # fmt: skip
        tns += list(df["caller_id_number"]) + list(df["destination_number"])
    # Every record is protected; a sample of the raw lines goes to the quarantine (scanning a
    # long raw line costs presidio's phone matcher ~5 ms, and real quarantines are small).
    return frame, raw[::7][:300], secrets_of(tns, raw, truth["default_region"])


@pytest.mark.parametrize("which", ["records", "asterisk", "freeswitch", "sip-pcap"])
def test_synthetic_formats_leak_nothing(which, synthetic, tmp_path):
    frame, raw, secrets = _synthetic_case(synthetic, which)
    assert len(secrets) > 100
    run, out = tmp_path / "load", tmp_path / "protected"
    write_load_run(run, frame, raw, which)
    assert leaks(run, secrets)
    manifest = run_protect(run, "default", out, key=KEY, scheduler="threads")
    assert manifest["counts"]["records"] == len(frame)
    found = leaks(out, secrets)
    assert not found, f"{len(found)} raw value(s) found in outputs: {sorted(set(found))[:5]}"
