"""Each part of a text input is read once: its bytes serve the parse and the read units.

The run reads a part, counts its rows and its read units (lines) one after the other
(:func:`cemkit.runs.runner._read_part`); the lines are counted in the bytes the parser got,
not in a second read of the part. Counted here: the bytes read through
:func:`cemkit.io.textfile.open_input`, by which every part read goes (planning sniffs headers
line by line and scans the file for its checksum apart from it).
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import pytest

from cemkit import synth
from cemkit.io import plan, textfile
from cemkit.runs import read_manifest
from cemkit.runs.runner import Source, execute


@pytest.fixture
def bytes_read(monkeypatch):
    """Bytes read with ``read()`` through ``open_input``, per path (sniffing lines is not)."""
    counts: collections.Counter[str] = collections.Counter()
    real = textfile.open_input

    class Counted:
        def __init__(self, path):
            self._fh = real(path)
            self._path = str(path)

        def read(self, n=-1):
            data = self._fh.read(n)
            counts[self._path] += len(data)
            return data

        def __getattr__(self, name):
            return getattr(self._fh, name)

        def __iter__(self):
            return iter(self._fh)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()

    monkeypatch.setattr(textfile, "open_input", Counted)
    return counts


def _read_like_the_runner(the_plan):
    """Every part read, counted and measured in units as the runner does, one after the other."""
    out = []
    for part in the_plan.parts:
        records, quarantine = the_plan.loader.read_part(part)
        read = the_plan.loader.rows_read(part, records, quarantine)
        attached = the_plan.loader.rows_attached(part, records, quarantine)
        units = the_plan.loader.read_units(part, records, quarantine)
        out.append((part, records, quarantine, read, attached, units))
    return out


def _data_bytes(the_plan, path):
    return sum((p.stop if p.stop >= 0 else os.path.getsize(path)) - p.start
               for p in the_plan.parts if p.path == path)  # fmt: skip


@pytest.fixture(scope="module")
def master_csv(tmp_path_factory):
    world = tmp_path_factory.mktemp("w")
    synth.generate(world, records=1500, seed=5, incidents=0, days=1, workers=1)
    return str(world / "formats" / "asterisk" / "Master.csv")


def test_each_asterisk_part_is_read_once(master_csv, bytes_read):
    the_plan = plan(master_csv, "asterisk", tz="Europe/London", default_region="GB",
                    blocksize=40_000)  # fmt: skip
    assert len(the_plan.parts) > 3
    bytes_read.clear()  # planning sniffed the first lines
    results = _read_like_the_runner(the_plan)
    assert bytes_read[master_csv] == os.path.getsize(master_csv)  # not twice the file
    data = Path(master_csv).read_bytes()
    assert sum(u["lines"] for *_, u in results) == data.count(b"\n")
    for part, records, quarantine, read, _, units in results:
        lines = data[part.start : part.stop].count(b"\n")
        assert units == {"lines": lines, "header_lines": 0, "data_lines": lines,
                         "file_problems": 0}  # fmt: skip
        assert read == len(records) + len(quarantine) == lines


def test_units_are_counted_again_only_for_a_frame_that_lost_them(master_csv, bytes_read):
    the_plan = plan(master_csv, "asterisk", tz="Europe/London", blocksize=40_000)
    part = the_plan.parts[1]
    records, quarantine = the_plan.loader.read_part(part)
    attached = the_plan.loader.read_units(part, records, quarantine)
    bytes_read.clear()
    lost = quarantine.copy()
    lost.attrs = {}  # e.g. a frame rebuilt elsewhere
    again = the_plan.loader.read_units(part, records, lost)
    assert again == attached  # same figures, from a second read of the same bytes
    assert bytes_read[master_csv] == part.stop - part.start


@pytest.mark.samples
def test_each_cucm_cdr_and_cmr_part_is_read_once(samples_dir, bytes_read):
    cdr, cmr = str(samples_dir / "cucm" / "cdr.txt"), str(samples_dir / "cucm" / "cmr.txt")
    the_plan = plan([cdr, cmr], "cucm", default_region="US")
    bytes_read.clear()
    results = _read_like_the_runner(the_plan)
    for path in (cdr, cmr):
        assert bytes_read[path] == _data_bytes(the_plan, path), path  # once, header skipped
        data = Path(path).read_bytes()
        lines = sum(u["lines"] for p, *_, u in results if p.path == path)
        assert lines == data.count(b"\n") + (not data.endswith(b"\n"))
    for part, records, quarantine, read, attached, units in results:
        assert read == units["data_lines"] + units["file_problems"]
        if part.path == cmr:  # CMR rows are attached to the CDRs, not records of their own
            assert attached == read - len(quarantine) and len(records) == 0


def test_each_jsonl_agent_file_is_read_once(tmp_path, bytes_read):
    rows = [{"type": "result", "timestamp": "2026-03-01T12:00:00Z", "download": {"bandwidth": 8},
             "interface": {"name": "eth0"}}, "not json", {}]  # fmt: skip
    path = tmp_path / "tests.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in rows) + "\n")
    the_plan = plan(str(path), "agent", mapping="speedtest-jsonl")
    bytes_read.clear()
    ((_, records, quarantine, read, _, units),) = _read_like_the_runner(the_plan)
    assert bytes_read[str(path)] == path.stat().st_size
    assert units == {"lines": 3, "header_lines": 0, "data_lines": 3, "file_problems": 0}
    assert read == len(records) + len(quarantine) == 3


def test_run_reads_each_part_once_and_reconciles(master_csv, tmp_path, bytes_read):
    src = Source("asterisk", [master_csv], tz="Europe/London", default_region="GB",
                 options={"blocksize": 40_000})  # fmt: skip
    execute([], tmp_path / "run", sources=[src], scheduler="sync")
    assert bytes_read[master_csv] == os.path.getsize(master_csv)
    totals = read_manifest(tmp_path / "run")["load"]["totals"]
    assert totals["rows_read"] == totals["rows_loaded"] + totals["rows_quarantined"]
    assert totals["read_units"]["lines"] == Path(master_csv).read_bytes().count(b"\n")


def test_a_one_part_input_is_hashed_when_asked_not_scanned(master_csv, monkeypatch):
    # a part that is the whole file needs no newline count before it: planning does not read
    # the file; the run's manifest still gets its checksum (taken when asked, not before)
    import hashlib

    def no_scan(*args, **kwargs):
        raise AssertionError("a one-part input was scanned while planning")

    monkeypatch.setattr(textfile, "scan", no_scan)
    the_plan = plan(master_csv, "asterisk", tz="UTC")
    assert len(the_plan.parts) == 1 and the_plan.loader.digests == {}
    want = hashlib.sha256(Path(master_csv).read_bytes()).hexdigest()
    known = the_plan.loader.known_digest(master_csv)
    assert known == {"path": master_csv, "size": os.path.getsize(master_csv), "sha256": want}
    # a file of several parts is still hashed in the pass that counts its lines
    monkeypatch.undo()
    several = plan(master_csv, "asterisk", tz="UTC", blocksize=4096)
    assert len(several.parts) > 1 and several.loader.digests == {master_csv: want}
