"""The runner: stage-by-stage commands equal `cemkit run`, one pandas batch equals one partition.

Records come from the real pipeline over a small synthetic world (synth → Parquet source with N
row groups = N input parts → load → protect → correlate → kqi).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import cemkit
from cemkit import synth
from cemkit.cli import main
from cemkit.runs import read_manifest, read_records
from cemkit.runs.library import correlate_stages
from cemkit.runs.stages import shuffles

KEY = "7f3a9c2e5b8d1f4a6c0e3b7d9a2f5c8e1b4d7a0c3f6e9b2d5a8c1f4e7b0a3d6c"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("rworld")
    truth = synth.generate(out, records=2_500, seed=11, incidents=1, formats=False)
    table = pq.read_table(out / "records")
    sources = {}
    for n in (1, 3, 8):
        path = out / f"source-{n}" / "records.parquet"
        path.parent.mkdir()
        pq.write_table(table, path, row_group_size=-(-len(table) // n))
        sources[n] = path
    return out, truth, sources


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("CEMKIT_KEY", KEY)


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.glob("*.parquet"))}  # fmt: skip


def test_correlation_is_two_shuffles():
    # stitch groups by call; pairing, matching, signaling and intents share one shuffle by parties
    assert shuffles(correlate_stages()) == 2


def _stage_by_stage_equals_run(world, tmp_path, n, scheduler):
    out, truth, sources = world
    src, model = sources[n], out / "model.yaml"
    run = cemkit.run(src, format="parquet", model=model, out=tmp_path / "run", scheduler=scheduler)
    assert run.manifest["load"]["parts"] == n
    address = scheduler if isinstance(scheduler, str) else scheduler.scheduler.address
    sched = ["--scheduler", address]
    assert main(["load", "parquet", str(src), "--out", str(tmp_path / "l"), *sched]) == 0
    assert main(["protect", str(tmp_path / "l"), "--out", str(tmp_path / "p"), *sched]) == 0
    # a run directory or its records/ both work as input
    assert main(["correlate", str(tmp_path / "p"), "--out", str(tmp_path / "c"), *sched]) == 0
    assert main(["kqi", str(tmp_path / "c" / "records"), "--model", str(model),
                 "--out", str(tmp_path / "k"), *sched]) == 0  # fmt: skip
    # byte-identical records (same parts) and KQI tables
    assert _digests(tmp_path / "run" / "records") == _digests(tmp_path / "c" / "records")
    assert _digests(tmp_path / "run" / "kqi") == _digests(tmp_path / "k" / "kqi")
    assert _digests(tmp_path / "run") == _digests(tmp_path / "k")  # alerts.parquet
    recs = read_records(tmp_path / "c").compute()
    # correlate filled matched CDRs from their xDRs and labelled intents as record columns
    assert (recs["src_match"] == "xdr_only").sum() == truth["counts"]["xdr_only_attempts"]
    matched = recs["src_match"] == "matched"
    assert matched.any() and recs.loc[matched, "pdd_ms"].notna().any()
    assert recs["src_intent_id"].notna().all() and recs["src_intent_id"].nunique() < len(recs)
    manifest = read_manifest(tmp_path / "k")
    assert manifest["stages"] == ["load", "protect", "correlate", "kqi"]
    assert manifest["correlate"]["xdr_only"] == truth["counts"]["xdr_only_attempts"]
    return run


@pytest.mark.parametrize("n", [1, 3, 8])
def test_stage_by_stage_equals_run_threads(world, tmp_path, key, n, capsys):
    run = _stage_by_stage_equals_run(world, tmp_path, n, "threads")
    capsys.readouterr()
    # every run directory is one `cemkit audit` reads and verifies
    for d in ("run", "l", "p", "c", "k"):
        assert main(["audit", str(tmp_path / d), "--verify"]) == 0, d
    assert "outputs verified: all match" in capsys.readouterr().out
    assert run.manifest["correlate"]["steps"] == ["stitch", "pair_legs", "match", "signaling",
                                                  "intents"]  # fmt: skip


@pytest.fixture(scope="module")
def local_cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as lc, Client(lc) as client:  # fmt: skip
        yield client


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 3, 8])
def test_stage_by_stage_equals_run_local_cluster(world, tmp_path, key, n, local_cluster,
                                                 monkeypatch):  # fmt: skip
    # workers read the key from their own environment, as on a real cluster
    local_cluster.run(lambda: __import__("os").environ.__setitem__("CEMKIT_KEY", KEY))
    _stage_by_stage_equals_run(world, tmp_path, n, local_cluster)


def test_results_do_not_depend_on_the_partitioning(world, tmp_path, key):
    out, _, sources = world
    got = {}
    for n in (1, 8):
        r = cemkit.run(sources[n], format="parquet", model=out / "model.yaml",
                       out=tmp_path / str(n), scheduler="threads")  # fmt: skip
        recs = read_records(tmp_path / str(n)).compute()
        got[n] = (recs.sort_values("record_id").reset_index(drop=True), r.kqi)
    pd.testing.assert_frame_equal(got[1][0], got[8][0])
    pd.testing.assert_frame_equal(got[1][1], got[8][1])


def test_process_batch_is_one_partition_of_the_same_stages(world, tmp_path, key):
    from cemkit.runs import write_part
    from cemkit.runs.store import read_part

    out, _, sources = world
    run = cemkit.run(sources[1], format="parquet", model=out / "model.yaml",
                     out=tmp_path / "run", scheduler="threads", freqs=("15min",))  # fmt: skip
    raw = pd.read_parquet(sources[1])
    from cemkit import schema

    batch = cemkit.process_batch(schema.conform(raw), model=out / "model.yaml")
    # the batch's records, written as the runner writes a part, are the run's part, byte for byte
    info = write_part(batch.records, tmp_path, 0)
    assert info["sha256"] == _digests(tmp_path / "run" / "records")["part-00000.parquet"]
    back = read_part(str(tmp_path / "part-00000.parquet"))
    pd.testing.assert_frame_equal(back, read_records(tmp_path / "run").compute())
    kqi = run.kqi[run.kqi["freq"] == "15min"]
    cols = ["object_kind", "object", "bucket", "attempts", "answered"]
    a = batch.kqi[cols].sort_values(cols[:3]).reset_index(drop=True)
    b = kqi[cols].sort_values(cols[:3]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_batch_processor_notices_a_changed_policy_or_key(world, tmp_path, monkeypatch):
    from cemkit.privacy.policy import POLICY_DIR

    out, _, sources = world
    raw = pd.read_parquet(sources[1]).iloc[:300]
    from cemkit import schema

    raw = schema.conform(raw)
    policy = tmp_path / "policy.yaml"
    text = (POLICY_DIR / "default.yaml").read_text()
    policy.write_text(text)
    monkeypatch.setenv("CEMKIT_KEY", KEY)
    proc = cemkit.BatchProcessor(policy=policy, model=out / "model.yaml")
    first = proc(raw).records["a_number"]
    assert proc(raw).records["a_number"].equals(first)  # warm: same answer
    # another key in the key source: other pseudonyms at once, no restart
    monkeypatch.setenv("CEMKIT_KEY", "11" * 32)
    second = proc(raw).records["a_number"]
    assert not (second.dropna() == first.dropna()).any()
    # the policy file edited in place: the new rule applies at once
    assert "keep_digits: 4" in text
    policy.write_text(text.replace("keep_digits: 4", "keep_digits: 2", 1))
    third = proc(raw).records["a_number"]
    assert third.dropna().str.match(r"^\+\d{2}#").all() and not third.equals(second)
    # process_batch is the same object underneath: it notices too
    monkeypatch.setenv("CEMKIT_KEY", KEY)
    via = cemkit.process_batch(raw, policy=policy, model=out / "model.yaml").records["a_number"]
    monkeypatch.setenv("CEMKIT_KEY", "22" * 32)
    again = cemkit.process_batch(raw, policy=policy, model=out / "model.yaml").records["a_number"]
    assert not (via.dropna() == again.dropna()).any()


def test_an_interrupted_stage_leaves_no_run(world, tmp_path, key):
    _, _, sources = world
    assert main(["load", "parquet", str(sources[3]), "--out", str(tmp_path / "l"),
                 "--scheduler", "sync"]) == 0  # fmt: skip
    # a bad correlate setting fails inside the stage: nothing that looks complete is left
    with pytest.raises(ValueError, match="gap must not be negative"):
        main(["correlate", str(tmp_path / "l"), "--gap=-5s", "--out", str(tmp_path / "c"),
              "--scheduler", "sync"])  # fmt: skip
    assert not (tmp_path / "c").exists() and not list(tmp_path.glob(".c.*"))
    manifest = json.loads((tmp_path / "l" / "manifest.json").read_text())
    assert manifest["load"]["totals"]["rows_read"] == manifest["load"]["totals"]["rows_loaded"]


def test_one_partition_is_not_shuffled(world, key):
    # one part in and one out: every key already meets in it, so no shuffle (hashing every key,
    # copying every column) is built, and the stages give what they give a pandas batch
    import dask.dataframe as dd

    from cemkit import schema
    from cemkit.runs import apply
    from cemkit.runs.library import policy_and_key, protect_stages

    _, _, sources = world
    raw = schema.conform(pd.read_parquet(sources[1]))
    policy, k = policy_and_key("default", None, [str(sources[1])])
    stages = [*protect_stages(policy, k, raw), *correlate_stages()]

    def shuffled(lazy) -> bool:
        return any("shuffle" in str(name) for name in dict(lazy.__dask_graph__()))

    one = apply(dd.from_pandas(raw, npartitions=1), stages)
    assert not shuffled(one)
    assert shuffled(apply(dd.from_pandas(raw, npartitions=2), stages))
    pd.testing.assert_frame_equal(one.compute(scheduler="sync"), apply(raw, stages))
