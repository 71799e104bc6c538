"""The CSV loaders' passes over a part's bytes: none repeated, no text column cast after parsing.

* Planning counts the newlines of every part (:func:`cemkit.io.textfile.split_lines`, in its
  one pass over the file for the checksum): reading a part takes that count instead of
  counting its bytes again, and the count equals the bytes' own.
* Asterisk and FreeSWITCH parse their text as ``large_string``, what the records hold:
  ``parse_block(text=large_string)`` reads exactly what the ``string`` parse reads, quarantine
  included; telephone numbers are normalized on the same distinct values either way.
* A source column is joined from the parser's chunks once per block, however often it is used.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import SAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit.io import csvblock, plan, textfile
from cemkit.io.convert import Converter
from cemkit.io.csvblock import parse_block
from cemkit.numbers import normalize_arrow

_FIELD = st.one_of(
    st.sampled_from(["", "a", "0044 20 7946 0000", "+441632960000", "x,y", 'q"q', "é", "7"]),
    st.text(alphabet="ab1 -+", max_size=6),
)


def _line(fields: list[str]) -> str:
    return ",".join('"' + f.replace('"', '""') + '"' for f in fields)


#: Lines of a 3-field CSV, with damaged ones: wrong width, unclosed quote, blank, bad UTF-8.
_LINES = st.lists(
    st.one_of(
        st.lists(_FIELD, min_size=3, max_size=3).map(lambda f: _line(f).encode()),
        st.sampled_from([b'"a","b"', b'"open,"x","y"', b"", b'"\xff","b","c"', b",,"]),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(_LINES, st.booleans())
def test_large_string_parse_reads_what_the_string_parse_reads(lines, end_newline):
    data = b"\n".join(lines) + (b"\n" if end_newline else b"")
    if not data:
        return
    names = ["a", "b", "c"]
    small = parse_block(data, names, 1)
    large = parse_block(data, names, 1, text=pa.large_string())
    assert all(pa.types.is_large_string(f.type) for f in large.table.schema)
    assert large.table.cast(small.table.schema).equals(small.table)
    assert large.lines.tolist() == small.lines.tolist()
    assert large.quarantine == small.quarantine


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), _FIELD), max_size=40), st.sampled_from([None, "GB", "US"]))
def test_numbers_of_large_text_equal_those_of_text(values, region):
    small = normalize_arrow(pa.array(values, pa.string()), region, large=True)
    large = normalize_arrow(pa.array(values, pa.large_string()), region, large=True)
    dictionary = normalize_arrow(
        pa.array(values, pa.string()).dictionary_encode(), region, large=True
    )
    assert [a.to_pylist() for a in large] == [a.to_pylist() for a in small]
    assert [a.to_pylist() for a in dictionary] == [a.to_pylist() for a in small]
    assert all(a.type == pa.large_string() for a in large)


def _csv(tmp_path, rows: int, end_newline: bool = True) -> str:
    path = tmp_path / "Master.csv"
    lines = [
        _line(
            [
                "",
                f"0207946{i:04d}",
                "700",
                "phones",
                "x",
                f"SIP/lon-{i:08x}",
                "",
                "Dial",
                "",
                "2026-03-02 10:00:00",
                "2026-03-02 10:00:01",
                "2026-03-02 10:00:09",
                "9",
                "8",
                "ANSWERED",
                "DOCUMENTATION",
                f"{i}.1",
                "",
            ]
        )
        for i in range(rows)
    ]
    path.write_text("\n".join(lines) + ("\n" if end_newline else ""))
    return str(path)


@pytest.mark.parametrize("end_newline", [True, False])
def test_a_planned_part_is_not_counted_again_when_read(tmp_path, monkeypatch, end_newline):
    the_plan = plan(_csv(tmp_path, 400, end_newline), "asterisk", blocksize=4096)
    assert len(the_plan.parts) > 3
    counted = []
    real = textfile.count_lines

    def count_lines(data):
        counted.append(len(data))
        return real(data)

    monkeypatch.setattr(textfile, "count_lines", count_lines)
    total = 0
    for part in the_plan.parts:
        raw = the_plan.loader.read_raw(part)
        assert raw.lines == real(raw.data)  # planning's count is the bytes' own
        total += raw.lines
        records, _ = the_plan.loader.read_part(part)
        assert records["record_id"].str.rsplit(":", n=1).str[1].astype(int).min() == (
            part.first_line
        )
    assert counted == []
    assert total == 400


def test_a_part_whose_bytes_changed_since_planning_is_counted(tmp_path):
    path = _csv(tmp_path, 200)
    the_plan = plan(path, "asterisk", blocksize=4096)
    last = the_plan.parts[-1]
    with open(path, "ab") as fh:  # the file grew: the last part reads more than was planned
        fh.write(b"\n\n")
    raw = the_plan.loader.read_raw(type(last)(last.path, last.index, last.start, -1,
                                              last.first_line, last.newlines))  # fmt: skip
    assert raw.lines == textfile.count_lines(raw.data)


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared samples absent")
@pytest.mark.parametrize(("sample", "fmt"), [("asterisk/lab-pbx-Master.csv", "asterisk"),
                                             ("freeswitch/Master.csv", "freeswitch")])  # fmt: skip
def test_text_columns_are_parsed_as_records_hold_them_and_joined_once(sample, fmt, monkeypatch):
    monkeypatch.setattr(csvblock, "_PARSE_BLOCK", 2048)  # the parser's table in several chunks
    the_plan = plan(str(SAMPLES / sample), fmt, tz="UTC", blocksize=3000)
    part = the_plan.parts[0]
    loader = the_plan.loader
    info, layout = loader._file(part.path)
    assert layout.text == pa.large_string()
    raw = loader.read_raw(part)
    block = parse_block(raw.data, list(layout.columns), part.first_line,
                        types=dict(layout.types), timestamp_format=layout.timestamp_format,
                        text=layout.text)  # fmt: skip
    assert block.table.column(0).num_chunks > 1
    conv = Converter(block, part.path, info.tag, fmt)
    name = "uuid" if fmt == "freeswitch" else "uniqueid"
    assert conv.raw(name) is conv.raw(name)
    assert conv.raw(name).type == pa.large_string()
    assert pc.all(pc.equal(conv.raw(name), block.table.column(name))).as_py()
