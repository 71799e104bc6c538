"""The loader's fast paths give what the careful ones give.

A clean range is parsed on pyarrow's thread pool (in blocks of ``csvblock._PARSE_BLOCK``), a
range with bad rows on one thread (the only way to learn their line numbers); Asterisk numbers
are read as a dictionary and normalized on its values. Same records and quarantine either way.
"""

from __future__ import annotations

import random

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit import synth
from cemkit.io import asterisk, csvblock, plan
from cemkit.numbers import normalize_arrow

_END = b',"2026-03-02 00:00:09",1,0,"BUSY","DOCUMENTATION","1.1",""\n'


def _row(number: bytes, clid: bytes, start: bytes) -> bytes:
    return (
        b'"","'
        + number
        + b'","0161","c",'
        + clid
        + b',"SIP/a-1","","Dial","x","'
        + start
        + b'",'
        + _END
    )


BAD = [
    b'"","0207","0161","from-internal","x <1>","SIP/lon-sw2-00000001"\n',  # too few fields
    b"\n",
    _row(b"\xff\xfe0207", b'"x"', b"2026-03-02 00:00:08"),  # not UTF-8
    _row(b"0207", b'"x"', b"2026-03-02 99:00:08"),  # bad time
    _row(b"0207", b'"open quote,', b"2026-03-02 00:00:08"),  # unbalanced quotes
    b'"","","","","","","","","","","","","","","","","",""\n',  # every field empty
]


@pytest.fixture(scope="module")
def broken_csv(tmp_path_factory):
    world = tmp_path_factory.mktemp("w")
    synth.generate(world, records=3000, seed=9, incidents=0, days=1, workers=1)
    lines = (world / "formats" / "asterisk" / "Master.csv").read_bytes().splitlines(True)
    rng = random.Random(4)
    for _ in range(40):
        lines.insert(rng.randrange(len(lines)), rng.choice(BAD))
    path = world / "broken.csv"
    path.write_bytes(b"".join(lines))
    return str(path)


def _load(path, **opts):
    the_plan = plan(path, "asterisk", tz="Europe/London", default_region="GB", **opts)
    out = [the_plan.loader.read_part(p) for p in the_plan.parts]
    records = pd.concat([r for r, _ in out], ignore_index=True)
    quarantine = pd.concat([q for _, q in out], ignore_index=True)
    return records, quarantine


def test_threaded_parse_in_many_blocks_equals_one_thread(broken_csv, monkeypatch):
    monkeypatch.setattr(csvblock, "_PARSE_BLOCK", 8192)  # many pyarrow blocks per part
    records, quarantine = _load(broken_csv, blocksize=200_000)
    monkeypatch.setattr(csvblock, "_THREADS", False)
    records_1, quarantine_1 = _load(broken_csv, blocksize=200_000)
    pd.testing.assert_frame_equal(records, records_1)
    pd.testing.assert_frame_equal(quarantine, quarantine_1)
    assert len(quarantine) >= 30 and quarantine.line.is_unique
    assert set(quarantine.reason) >= {"empty line", "time not in the format '%Y-%m-%d %H:%M:%S'"}


def test_numbers_read_as_a_dictionary_equal_numbers_read_as_text(broken_csv, monkeypatch):
    records, quarantine = _load(broken_csv)
    real = asterisk.AsteriskLoader.layout

    def as_text(self, path):  # the numbers parsed as plain text, encoded by the normalizer
        layout = real(self, path)
        types = tuple((n, t) for n, t in layout.types if n not in ("src", "dst"))
        return csvblock_layout(layout, types)

    monkeypatch.setattr(asterisk.AsteriskLoader, "layout", as_text)
    records_text, quarantine_text = _load(broken_csv)
    pd.testing.assert_frame_equal(records, records_text)
    pd.testing.assert_frame_equal(quarantine, quarantine_text)
    assert (records.a_number_kind == "e164").mean() > 0.5


def csvblock_layout(layout, types):
    import dataclasses

    return dataclasses.replace(layout, types=types)


NUMBERS = st.sampled_from(["+441632960961", "01632 960961", "01632960961", "100", "", " ",
                           "00441632960961", "+1 (201) 555-0123", "abc", "0", "+0123456789",
                           "2015550123", "٣٣٣"])  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(st.none(), NUMBERS), max_size=40),
       region=st.sampled_from([None, "GB", "US"]))  # fmt: skip
def test_normalizing_a_dictionary_equals_normalizing_its_strings(values, region):
    strings = pa.array(values, pa.string())
    as_dict = pa.array(values, pa.string()).dictionary_encode()  # nulls as null indices
    assert [a.to_pylist() for a in normalize_arrow(as_dict, region)] == [
        a.to_pylist() for a in normalize_arrow(strings, region)
    ]
