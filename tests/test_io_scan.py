"""A text input is read once to split and checksum it, once to parse it (not three times)."""

from __future__ import annotations

import hashlib
import io
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit import synth
from cemkit.io import textfile
from cemkit.runs import read_manifest, store
from cemkit.runs.runner import Source, execute


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300).map(lambda b: b.replace(b"x", b"\n")),
       cuts=st.lists(st.integers(0, 300), max_size=6), chunk=st.integers(1, 40))  # fmt: skip
def test_scan_counts_each_range_and_hashes_the_whole_file(data, cuts, chunk):
    bounds = sorted({min(c, len(data)) for c in cuts} | {len(data)})
    counts, digest = textfile.scan(io.BytesIO(data), bounds, chunk)  # ranges straddle buffers
    assert counts == [data[a:b].count(b"\n") for a, b in itertools.pairwise(bounds)]
    assert digest == hashlib.sha256(data).hexdigest()


def test_run_checksums_text_inputs_in_the_splitting_pass(tmp_path, monkeypatch):
    world = tmp_path / "w"
    synth.generate(world, records=600, seed=5, incidents=0, days=1, workers=1)
    csv = world / "formats" / "asterisk" / "Master.csv"

    def read_again(path):
        raise AssertionError(f"{path} read once more to checksum it")

    monkeypatch.setattr(store, "sha256_file", read_again)
    src = Source("asterisk", [str(csv)], tz="Europe/London", default_region="GB",
                 options={"blocksize": 20_000})  # several parts  # fmt: skip
    execute([], tmp_path / "run", sources=[src], scheduler="sync")
    manifest = read_manifest(tmp_path / "run")
    assert manifest["load"]["parts"] > 3
    (entry,) = manifest["inputs"]
    assert entry["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    assert entry["size"] == csv.stat().st_size
    totals = manifest["load"]["totals"]
    assert totals["rows_read"] == totals["rows_loaded"] + totals["rows_quarantined"]
    assert totals["rows_read"] == csv.read_bytes().count(b"\n")
