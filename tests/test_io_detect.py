"""Wrong input fails loudly: compressed files are read by content, formats are detected, and a
file mostly quarantined fails the load naming it and the format it looks like."""

import bz2
import gzip
import lzma

import pyarrow as pa
import pytest

from cemkit import io as cio
from cemkit.cli import main
from cemkit.errors import InputError
from cemkit.io.api import detect_format, plan

pytestmark = [
    pytest.mark.samples,
    # the real samples hold numbers no region fits: the unparsed warning is tested elsewhere
    pytest.mark.filterwarnings("ignore::cemkit.errors.ResultWarning"),
]

COMPRESSORS = {
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda data: pa.compress(data, codec="zstd", asbytes=True),
}


def _zstd_file(data: bytes, path):
    with pa.output_stream(str(path), compression="zstd") as out:
        out.write(data)


def _compressed(src, kind, dest):
    data = src.read_bytes()
    if kind == "zstd":
        _zstd_file(data, dest)  # a zstd frame, as the zstd tool writes it
    else:
        dest.write_bytes(COMPRESSORS[kind](data))
    return dest


def _load(path, fmt):
    records = cio.load(str(path), format=fmt).compute(scheduler="sync")
    quarantine = cio.load_quarantine(str(path), format=fmt).compute(scheduler="sync")
    return records, quarantine


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressed_csv_is_read_by_content_not_name(kind, samples_dir, tmp_path):
    src = samples_dir / "asterisk" / "lab-pbx-Master.csv"
    plain, _ = _load(src, "asterisk")
    packed = _compressed(src, kind, tmp_path / "Master.csv")  # the name says plain CSV
    records, quarantine = _load(packed, "asterisk")
    assert len(quarantine) == 0 and len(records) == len(plain) == 105
    cols = ["start", "end", "outcome", "billsec_s", "a_number", "b_number"]
    assert records[cols].reset_index(drop=True).equals(plain[cols].reset_index(drop=True))


def test_compressed_capture_and_cucm_load(samples_dir, tmp_path):
    pcap = samples_dir / "sip-pcap" / "zeek-wireshark.pcap"
    plain, _ = _load(pcap, "sip-pcap")
    records, _ = _load(_compressed(pcap, "gzip", tmp_path / "capture.pcap"), "sip-pcap")
    assert len(records) == len(plain) > 0
    (tmp_path / "cucm").mkdir()
    for name in ("cdr.txt", "cmr.txt"):
        _compressed(samples_dir / "cucm" / name, "bz2", tmp_path / "cucm" / name)
    cucm, _ = _load(tmp_path / "cucm", "cucm")
    assert len(cucm) == len(_load(samples_dir / "cucm", "cucm")[0]) > 0


@pytest.mark.parametrize("folder,fmt", [("asterisk", "asterisk"), ("freeswitch", "freeswitch"),
                                        ("cucm", "cucm"), ("sip-pcap", "sip-pcap")])  # fmt: skip
def test_format_auto_detects_each_sample(folder, fmt, samples_dir, tmp_path, capsys):
    for f in (samples_dir / folder).iterdir():
        assert detect_format(str(f)) == fmt, f.name
    out = tmp_path / "run"
    assert main(["load", "auto", str(samples_dir / folder), "--out", str(out),
                 "--scheduler", "sync"]) == 0  # fmt: skip
    assert " records loaded" in capsys.readouterr().out
    assert plan(str(samples_dir / folder), "auto").loader.name == fmt


def test_a_directory_of_several_formats_is_not_loaded_as_one(samples_dir, tmp_path, capsys):
    code = main(["load", "asterisk", str(samples_dir), "--out", str(tmp_path / "r"),
                 "--scheduler", "sync"])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and not (tmp_path / "r").exists()
    assert "are not asterisk" in err and "looks like" in err
    with pytest.raises(InputError, match="several formats"):
        plan([str(samples_dir / "asterisk"), str(samples_dir / "cucm")], "auto")


def test_another_switch_format_is_an_error_naming_it(samples_dir, tmp_path, capsys):
    src = samples_dir / "asterisk" / "lab-pbx-Master.csv"
    code = main(["load", "freeswitch", str(src), "--out", str(tmp_path / "r"),
                 "--scheduler", "sync"])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and "lab-pbx-Master.csv' looks like asterisk" in err


def test_mostly_quarantined_file_fails_the_load(samples_dir, tmp_path, capsys):
    # the Copenhagen calls (timestamp,from,to,duration) are no format detect_format knows,
    # so only the quarantine share can tell that this is not Asterisk
    src = samples_dir / "copenhagen" / "calls.csv"
    args = ["load", "asterisk", str(src), "--scheduler", "sync"]
    assert main([*args, "--out", str(tmp_path / "a")]) != 0
    err = capsys.readouterr().err
    assert "calls.csv" in err and "rows quarantined" in err and "asterisk" in err
    assert "--max-quarantine" in err and not (tmp_path / "a").exists()
    assert main([*args, "--out", str(tmp_path / "b"), "--max-quarantine", "1"]) == 0
    assert "0 records loaded" in capsys.readouterr().out


def test_a_damaged_minority_still_loads(samples_dir, tmp_path, capsys):
    lines = (samples_dir / "asterisk" / "lab-pbx-Master.csv").read_bytes().splitlines(True)
    damaged = tmp_path / "Master.csv"
    damaged.write_bytes(b"".join(lines[:60]) + b"garbage line\n" * 40)
    assert main(["load", "asterisk", str(damaged), "--out", str(tmp_path / "r"),
                 "--scheduler", "sync"]) == 0  # fmt: skip
    assert "60 records loaded, 40 quarantined" in capsys.readouterr().out
