import json
import re

import pandas as pd
import pytest

import cemkit
from cemkit import synth
from cemkit.cli import main

KEY = "7f3a9c2e5b8d1f4a6c0e3b7d9a2f5c8e1b4d7a0c3f6e9b2d5a8c1f4e7b0a3d6c"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("pworld")
    truth = synth.generate(out, records=12_000, seed=21, incidents=1)
    return out, truth


@pytest.fixture(scope="module")
def result(world, tmp_path_factory):
    out = world[0]
    mp = pytest.MonkeyPatch()
    mp.setenv("CEMKIT_KEY", KEY)
    run_dir = tmp_path_factory.mktemp("prun") / "run"
    res = cemkit.run(
        out / "records",
        format="parquet",
        policy="default",
        model=out / "model.yaml",
        out=run_dir,
        scheduler="threads",
    )
    yield res
    mp.undo()


def test_run_writes_every_output(result, world):
    _, truth = world
    out = result.out
    for name in ("records", "quarantine", "kqi", "alerts.parquet", "manifest.json"):
        assert (out / name).exists(), name
    manifest = json.loads((out / "manifest.json").read_text())
    totals = manifest["load"]["totals"]
    assert totals["rows_read"] == truth["records"]
    assert totals["rows_read"] == totals["rows_loaded"] + totals["rows_quarantined"]
    assert manifest["stages"] == ["load", "protect", "correlate", "kqi"]
    assert manifest["protect"]["key"]["id"] == "cemkit-default-2026"
    assert KEY not in (out / "manifest.json").read_text()
    kqi = pd.read_parquet(out / "kqi" / "kqi.parquet")
    assert len(kqi) > 0 and len(result.kqi) == len(kqi)
    sizes = pd.read_parquet(out / "kqi" / "group_sizes.parquet")
    assert (sizes["customers"] > 0).all() and sizes.equals(result.group_sizes)


def test_records_are_protected_and_correlated(result, world):
    out, _ = world
    recs = pd.read_parquet(result.out / "records")
    raw = pd.read_parquet(out / "records")
    assert "src_intent_id" in recs.columns and "src_partials" in recs.columns
    # Partials stitched, legs paired, xDRs matched: one row per call or attempt.
    counts = world[1]["counts"]
    assert recs["src_partials"].fillna(1).gt(1).sum() >= counts["partial_calls"]
    assert recs["src_paired"].fillna(False).sum() == counts["two_leg_calls"]
    assert (recs["src_match"] == "xdr_only").sum() == counts["xdr_only_attempts"]
    assert recs["src_intent_id"].nunique() < len(recs)
    raw_numbers = set(raw["a_number"]) | set(raw["b_number"])
    assert not (set(recs["a_number"].dropna()) & raw_numbers)
    assert recs["a_number"].str.match(r"^\+\d{3}").all()  # four digits kept by the policy


def test_no_raw_number_anywhere_in_the_run_directory(result, world):
    out, _ = world
    raw = pd.read_parquet(out / "records")
    numbers = set(raw["a_number"]) | set(raw["b_number"])
    variants = set()
    for n in numbers:
        digits = n.lstrip("+")
        variants |= {n, digits}
        if n.startswith("+44"):
            variants.add("0" + digits[2:])
    blob = b"".join(p.read_bytes() for p in result.out.rglob("*") if p.is_file())
    text = blob.decode("latin-1")
    found = [v for v in variants if len(v) >= 8 and v in text]
    assert found == []


def test_run_command(world, tmp_path, monkeypatch, capsys):
    out, truth = world
    monkeypatch.setenv("CEMKIT_KEY", KEY)
    rc = main(
        [
            "run",
            str(out / "formats" / "freeswitch" / "Master.csv"),
            "--format",
            "freeswitch",
            "--model",
            str(out / "model.yaml"),
            "--out",
            str(tmp_path / "r"),
            "--tz",
            truth["timezone"],
            "--region",
            "GB",
            "--scheduler",
            "threads",
        ]
    )
    assert rc == 0
    assert re.search(r"\d+ records loaded, 0 quarantined", capsys.readouterr().out)


def test_process_batch_equals_the_batch_pipeline(world, monkeypatch):
    out, truth = world
    monkeypatch.setenv("CEMKIT_KEY", KEY)
    raw = cemkit.load(
        out / "formats" / "asterisk" / "Master.csv",
        format="asterisk",
        tz=truth["timezone"],
        default_region="GB",
    ).compute()
    batch = raw.iloc[:4000]
    got = cemkit.process_batch(batch, policy="default", model=out / "model.yaml")
    again = cemkit.process_batch(batch, policy="default", model=out / "model.yaml")
    pd.testing.assert_frame_equal(got.kqi, again.kqi)
    from cemkit.pipeline import correlate

    via_dask = correlate(
        cemkit.protect(
            __import__("dask.dataframe").dataframe.from_pandas(batch, npartitions=3), "default"
        )
    ).compute(scheduler="threads")
    key_cols = ["record_id", "a_number", "b_number", "src_intent_id", "outcome"]
    a = got.records[key_cols].sort_values("record_id").reset_index(drop=True)
    b = via_dask[key_cols].sort_values("record_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_a_runs_kqis_find_first_attempts_per_partition(world, tmp_path):
    """The run's KQI sink finds each intent's first attempt per partition (no merge of the whole
    frame): true only because every intent's records lie in one part; same table as the merge."""
    import numpy as np

    from cemkit.kqi.rollup import rollup
    from cemkit.model.spec import load_model
    from cemkit.runs import store

    out, truth = world
    mp = pytest.MonkeyPatch()
    mp.setenv("CEMKIT_KEY", KEY)
    try:
        run = cemkit.run(out / "formats" / "asterisk" / "Master.csv", format="asterisk",
                         policy="default", model=out / "model.yaml", out=tmp_path / "run",
                         tz=truth["timezone"], default_region=truth["default_region"],
                         blocksize=256 * 1024, scheduler="sync")  # fmt: skip
    finally:
        mp.undo()
    files = sorted(str(f) for f in (run.out / "records").glob("*.parquet"))
    assert len(files) > 2
    owner: dict[str, int] = {}
    for i, f in enumerate(files):
        ids = pd.read_parquet(f, columns=["src_intent_id"])["src_intent_id"].dropna()
        for x in np.unique(ids.to_numpy(dtype=object)):
            assert owner.setdefault(x, i) == i, "an intent spans two parts"
    model = load_model(world[0] / "model.yaml")
    freqs = tuple(run.kqi["freq"].unique())
    per_part = rollup(store.read_parts(files), model, freqs=freqs, intents_within_partitions=True)
    merged = rollup(store.read_parts(files), model, freqs=freqs)
    pd.testing.assert_frame_equal(per_part.table, merged.table)
    assert per_part.table["attempts"].sum() > 0
    assert run.kqi["attempts"].sum() == merged.table["attempts"].sum()
