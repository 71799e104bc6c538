"""Same answer for any partitioning and scheduler; building the graph computes nothing."""

from __future__ import annotations

import math
import os
import random

import dask
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cemkit
from cemkit.io import plan
from cemkit.io.asterisk import AsteriskLoader


def _line(i: int, rng: random.Random) -> str:
    disp = rng.choice(["ANSWERED", "NO ANSWER", "BUSY", "FAILED"])
    sec = rng.randrange(0, 60)
    start = f"2024-10-27 0{rng.randrange(0, 4)}:{rng.randrange(60):02d}:{sec:02d}"
    dur = rng.randrange(0, 600)
    src = rng.choice(["+4930", "030", "0049 30 "]) + f"{rng.randrange(10**6, 10**7)}"
    src = src if rng.random() < 0.8 else str(rng.randrange(100, 999))
    return (
        f'"","{src}","{rng.randrange(100, 999)}","from-internal","""A"" <{src}>",'
        f'"PJSIP/a-{i:08x}","PJSIP/b-{i:08x}","Dial","PJSIP/b,30","{start}",'
        f'"{start if disp == "ANSWERED" else ""}","{start}",{dur},{dur},"{disp}",'
        f'"DOCUMENTATION","1700000000.{i}",""'
    )


@pytest.fixture(scope="module")
def messy_file(tmp_path_factory):
    rng = random.Random(7)
    lines = [_line(i, rng) for i in range(3000)]
    for i in rng.sample(range(3000), 40):
        kind = rng.randrange(5)
        if kind == 0:
            lines[i] = lines[i][:30]
        elif kind == 1:
            lines[i] = lines[i].replace('"from-internal"', '"from-internal')
        elif kind == 2:
            lines[i] = lines[i].replace("2024-10-27", "2024-10-x")
        elif kind == 3:
            lines[i] = ""
        else:
            lines[i] = lines[i].replace('"Dial"', '"Di\udcffal"')
    path = tmp_path_factory.mktemp("messy") / "Master.csv"
    data = "\n".join(lines).encode("utf-8", errors="surrogateescape")
    path.write_bytes(data[:-20])  # and a truncated last line
    return str(path)


def _result(path: str, nparts: int, **kw):
    size = os.path.getsize(path)
    p = plan(path, "asterisk", tz="Europe/Berlin", default_region="DE",
             blocksize=math.ceil(size / nparts) + 1, **kw)  # fmt: skip
    assert len(p.parts) == nparts
    rec = p.records().compute().sort_values("record_id").reset_index(drop=True)
    q = p.quarantine().compute().sort_values("line").reset_index(drop=True)
    return rec, q


def test_same_result_for_1_2_8_partitions(messy_file):
    rec1, q1 = _result(messy_file, 1)
    assert len(rec1) + len(q1) == 3000
    assert 30 <= len(q1) <= 42
    assert set(rec1.a_number_kind) == {"e164", "extension"}
    for n in (2, 8):
        rec, q = _result(messy_file, n)
        pd.testing.assert_frame_equal(rec, rec1)
        pd.testing.assert_frame_equal(q, q1)


def test_threads_and_local_cluster_agree(messy_file):
    from distributed import Client, LocalCluster

    with dask.config.set(scheduler="threads"):
        rec_t, q_t = _result(messy_file, 4)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster):  # fmt: skip
        rec_d, q_d = _result(messy_file, 4)
    pd.testing.assert_frame_equal(rec_d, rec_t)
    pd.testing.assert_frame_equal(q_d, q_t)


def _refuse(*args, **kwargs):
    raise AssertionError("building the graph computed something")


def test_building_the_graph_computes_nothing(messy_file, monkeypatch, tmp_path):
    def no_read(self, part):
        raise AssertionError("a part was read while building the graph")

    monkeypatch.setattr(AsteriskLoader, "read_part", no_read)
    with dask.config.set(scheduler=_refuse):
        ddf = cemkit.load(messy_file, format="asterisk", blocksize=50_000)
        answered = ddf[ddf.outcome == "answered"].duration_s.mean()
        q = plan(messy_file, "asterisk").quarantine()
        assert ddf.npartitions > 4 and q.npartitions == 1
        assert list(ddf.columns) == list(AsteriskLoader().meta().columns)
        del answered
    with pytest.raises(AssertionError, match="part was read"):
        ddf.compute(scheduler="sync")


def test_cucm_join_is_lazy(tmp_path, monkeypatch):
    from test_io_formats import write_cucm

    cdr, cmr = write_cucm(tmp_path)
    with dask.config.set(scheduler=_refuse):
        ddf = cemkit.load([cdr, cmr], format="cucm")
        assert "mos" in ddf.columns
    assert ddf.compute().mos.notna().any()


def test_typed_and_text_parsing_agree(messy_file, monkeypatch, tmp_path):
    import dataclasses

    from cemkit.io import csvblock

    # Values both parsers must judge alike: padded numbers, infinities, odd but valid times.
    extra = tmp_path / "odd.csv"
    rng = random.Random(3)
    lines = [_line(i, rng) for i in range(200)]
    lines[10] = lines[10].replace(',"ANSWERED"', ',"ANSWERED"').replace(",0,", ", 0 ,")
    lines[20] = lines[20].replace('","DOCUMENTATION"', '","DOCUMENTATION"')
    for i, (old, new) in enumerate([("-10-27 0", "-10-27 "), ("-10-27", "-10-28"),
                                    ("\"Dial\"", "\"Dial \"")]):  # fmt: skip
        lines[30 + i] = lines[30 + i].replace(old, new, 1)
    parts = lines[40].split(",")
    parts[13] = " 42 "  # duration (lastdata "PJSIP/b,30" holds a comma)
    lines[40] = ",".join(parts)
    parts = lines[41].split(",")
    parts[13] = "inf"
    lines[41] = ",".join(parts)
    extra.write_text("\n".join(lines) + "\n")

    used = []
    real_fast = csvblock._fast

    def spy(chunk, names, nlines, delimiter, types=None, timestamp_format=None, **kw):
        used.append(bool(types))
        return real_fast(chunk, names, nlines, delimiter, types, timestamp_format, **kw)

    monkeypatch.setattr(csvblock, "_fast", spy)
    for path in (messy_file, str(extra)):
        used.clear()
        typed = _result(path, 8)
        assert any(used), "the typed parse was never tried"
        original = AsteriskLoader.layout
        monkeypatch.setattr(
            AsteriskLoader,
            "layout",
            lambda self, p, o=original: dataclasses.replace(o(self, p), types=()),
        )
        used.clear()
        text = _result(path, 8)
        assert not any(used)
        monkeypatch.setattr(AsteriskLoader, "layout", original)
        pd.testing.assert_frame_equal(typed[0], text[0])
        pd.testing.assert_frame_equal(typed[1], text[1])
    q = typed[1].set_index("line")
    assert q.loc[42, "reason"] == "not a finite number"
    assert 41 not in q.index  # " 42 " is a number


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000), blocksize=st.integers(150, 30_000))
def test_any_cut_gives_the_same_answer(tmp_path, seed, blocksize):
    rng = random.Random(seed)
    lines = [_line(i, rng) for i in range(300)]
    for i in rng.sample(range(300), 15):
        cut = rng.randrange(len(lines[i]))
        lines[i] = rng.choice([lines[i][:cut], lines[i][:cut] + '"' + lines[i][cut:], "",
                               lines[i].replace("from-internal", "from-\udcffx")])  # fmt: skip
    path = tmp_path / f"m{seed}.csv"
    data = "\n".join(lines).encode("utf-8", errors="surrogateescape")
    data = data if rng.random() < 0.5 else data + b"\n"
    path.write_bytes(data)
    # a last line left empty by the damage is no line when nothing follows its line end
    n_lines = data.count(b"\n") + (not data.endswith(b"\n"))
    whole = plan(str(path), "asterisk", blocksize=10**9)
    cut = plan(str(path), "asterisk", blocksize=blocksize)
    a = whole.records().compute().sort_values("record_id").reset_index(drop=True)
    b = cut.records().compute().sort_values("record_id").reset_index(drop=True)
    qa = whole.quarantine().compute().sort_values("line").reset_index(drop=True)
    qb = cut.quarantine().compute().sort_values("line").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(qa, qb)
    assert len(a) + len(qa) == n_lines
