"""Hand-made broken files: each bad row quarantined with file, line, field, reason, raw line."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from cemkit.errors import FormatError, InputError
from cemkit.io import plan
from cemkit.io.run import load_to_dir


def row(i: int, *, start="2024-03-01 10:00:00", duration="30", disposition="ANSWERED",
        src="+441632960001") -> str:  # fmt: skip
    return (
        f'"acc","{src}","+44163296{i:04d}","ctx","""Name"" <{src}>","SIP/a-{i:08x}",'
        f'"SIP/b-{i:08x}","Dial","SIP/x,30","{start}","{start}","2024-03-01 10:00:30",'
        f'{duration},{duration},"{disposition}","DOCUMENTATION","17093{i}.{i}",""'
    )


def write(path, lines, *, end=b"\n"):
    data = b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines)
    path.write_bytes(data + (end if lines else b""))
    return str(path)


def load_both(path, fmt="asterisk", **kw):
    p = plan(path, fmt, **kw)
    return p.records().compute(), p.quarantine().compute().reset_index(drop=True)


def test_every_kind_of_bad_row(tmp_path):
    good = [row(i) for i in range(10)]
    lines = list(good)
    lines[1] = row(1)[: row(1).rfind(",")]  # one field short
    lines[2] = row(2, start="2024-13-45 10:00:00")  # unparseable time
    lines[3] = row(3, duration="abc")  # non-numeric duration
    lines[4] = row(4).replace('"ctx"', '"ctx')  # broken quoting: a quote left open
    lines[5] = row(5).encode().replace(b"Name", b"N\xe9me")  # Latin-1 byte in UTF-8 file
    lines[6] = ""  # blank line
    lines[7] = row(7, disposition="WHATEVER")  # unknown disposition
    path = write(tmp_path / "Master.csv", lines)
    df, q = load_both(path)
    assert len(df) + len(q) == 10
    assert sorted(df.record_id) == sorted(f"asterisk:Master.csv:{n}" for n in (1, 9, 10))
    by_line = q.set_index("line")
    assert list(by_line.index) == [2, 3, 4, 5, 6, 7, 8]
    assert "expected 18 fields, found 17" in by_line.loc[2, "reason"]
    assert by_line.loc[3, "field"] == "start" and "time" in by_line.loc[3, "reason"]
    assert by_line.loc[4, "field"] == "duration" and by_line.loc[4, "reason"] == "not a number"
    assert "quot" in by_line.loc[5, "reason"]
    assert "UTF-8" in by_line.loc[6, "reason"]
    assert by_line.loc[7, "reason"] == "empty line"
    assert by_line.loc[8, "field"] == "disposition"
    assert by_line.loc[2, "raw"] == lines[1]
    assert by_line.loc[4, "raw"] == lines[3]
    assert (q.file == path).all()


def test_truncated_last_line(tmp_path):
    lines = [row(i) for i in range(3)] + [row(3)[:40]]
    path = write(tmp_path / "Master.csv", lines, end=b"")
    df, q = load_both(path)
    assert len(df) == 3 and len(q) == 1
    assert q.line[0] == 4 and q.reason[0].startswith("truncated last line")
    assert q.raw[0] == row(3)[:40]


def test_complete_last_line_without_line_end_is_loaded(tmp_path):
    path = write(tmp_path / "Master.csv", [row(i) for i in range(3)], end=b"")
    df, q = load_both(path)
    assert len(df) == 3 and len(q) == 0


def test_open_quote_swallowing_the_next_line_only_costs_its_own_line(tmp_path):
    lines = [row(i) for i in range(6)]
    lines[2] = row(2).replace('"ctx"', '"ctx')
    path = write(tmp_path / "Master.csv", lines)
    df, q = load_both(path)
    assert list(q.line) == [3]
    assert len(df) == 5  # line 4, which the open quote ran into, is loaded on its own


def test_empty_file(tmp_path):
    path = write(tmp_path / "empty.csv", [])
    df, q = load_both(path)
    assert len(df) == 0 and len(q) == 1 and q.reason[0].startswith("empty file")
    section = load_to_dir(plan(path, "asterisk"), tmp_path / "run")
    f = section["inputs"][0]
    assert (f["rows_read"], f["rows_loaded"], f["rows_quarantined"]) == (1, 0, 1)


def test_file_that_cannot_be_read(tmp_path):
    with pytest.raises(InputError, match="nope.csv"):
        plan(str(tmp_path / "nope.csv"), "asterisk")
    with pytest.raises(InputError, match="matches no file"):
        plan(str(tmp_path / "*.csv"), "asterisk")
    locked = tmp_path / "locked.csv"
    locked.write_text(row(1) + "\n")
    os.chmod(locked, 0)
    try:
        if os.access(locked, os.R_OK):  # running as root: permissions do not bind
            pytest.skip("permissions are not enforced for this user")
        with pytest.raises(InputError, match="locked.csv"):
            plan(str(locked), "asterisk")
    finally:
        os.chmod(locked, 0o644)


def test_cucm_not_a_cucm_file(tmp_path):
    path = write(tmp_path / "cdr_x", ["a,b,c", "INTEGER,INTEGER,INTEGER", "1,2,3"])
    with pytest.raises(InputError, match="cdr_x"):
        plan(path, "cucm")


def test_cucm_truncated_header(tmp_path):
    path = write(tmp_path / "cdr_only_names", ['"cdrRecordType","dateTimeOrigination"'], end=b"")
    df, q = load_both(path, "cucm")
    assert len(df) == 0 and q.reason[0].startswith("truncated header")


def test_unknown_format_lists_known_ones():
    with pytest.raises(FormatError) as err:
        plan("x.csv", "astrisk")
    for name in ("asterisk", "freeswitch", "cucm", "generic", "parquet"):
        assert name in str(err.value)


def test_unknown_option_is_an_error(tmp_path):
    with pytest.raises(FormatError, match="columns"):
        plan(write(tmp_path / "m.csv", [row(1)]), "asterisk", colums=18)


def test_errors_do_not_leak_numbers(tmp_path):
    lines = [row(1, src="+441632960999"), row(2, src="+441632960999", duration="x")]
    _, q = load_both(write(tmp_path / "Master.csv", lines))
    assert "+441632960999" not in q.reason[0] and "+441632960999" not in q.field[0]


def test_counts_reconcile_in_the_manifest(tmp_path):
    lines = [row(i) for i in range(20)]
    lines[5] = "garbage"
    lines[11] = row(11, duration="-3")
    path = write(tmp_path / "Master.csv", lines)
    section = load_to_dir(plan(path, "asterisk", blocksize=700), tmp_path / "run")
    assert section["parts"] > 3
    f = section["inputs"][0]
    assert (f["rows_read"], f["rows_loaded"], f["rows_quarantined"]) == (20, 18, 2)
    q = pd.read_parquet(tmp_path / "run/quarantine")
    assert sorted(q.line) == [6, 12]
    assert set(q.reason) == {"expected 18 fields, found 1", "negative value"}


def test_row_of_empty_fields_is_not_a_blank_line(tmp_path):
    lines = [row(1), "," * 17, "", row(2)]
    df, q = load_both(write(tmp_path / "Master.csv", lines))
    assert len(df) == 2
    by_line = q.set_index("line")
    assert by_line.loc[2, "field"] == "start" and by_line.loc[3, "reason"] == "empty line"


def test_declared_encoding(tmp_path):
    lines = [row(1).encode().replace(b"Name", b"N\xf3mbre"), row(2).encode()]
    path = write(tmp_path / "Master.csv", lines)
    df, q = load_both(path, encoding="latin-1")
    assert len(q) == 0 and df.sort_values("record_id").src_clid.iloc[0].startswith('"Nómbre"')
    df, q = load_both(path)
    assert len(df) == 1 and "UTF-8" in q.reason[0]
    with pytest.raises(FormatError, match="encoding"):
        load_both(path, encoding="no-such-codec")


def test_layout_detected_from_the_majority_of_lines(tmp_path):
    lines = [row(0)[:60], *[row(i) for i in range(1, 6)]]
    df, q = load_both(write(tmp_path / "Master.csv", lines))
    assert len(df) == 5 and list(q.line) == [1]


@pytest.mark.parametrize("end", [b"\n", b""])
def test_quote_left_open_on_the_last_line(tmp_path, end):
    lines = [row(i) for i in range(4)] + [row(4)[:-1]]  # ends with ,"  : an unclosed quote
    df, q = load_both(write(tmp_path / "Master.csv", lines, end=end))
    assert len(df) == 4 and list(q.line) == [5]
    assert "quot" in q.reason[0]


@pytest.mark.parametrize("tz", ["Europe/London", "UTC"])
def test_time_outside_the_timestamp_range_is_a_bad_row(tmp_path, tz):
    # years a nanosecond timestamp cannot hold stopped the whole load with an Arrow error
    lines = [row(i) for i in range(6)]
    lines[1] = row(1, start="9999-12-31 23:59:59")
    lines[4] = row(4, start="1000-01-01 00:00:00")
    df, q = load_both(write(tmp_path / "Master.csv", lines), tz=tz)
    assert len(df) == 4 and q.line.tolist() == [2, 5]
    assert set(q.field) == {"start"} and q.reason.str.contains("out of range").all()
    assert q.raw.tolist() == [lines[1], lines[4]]
