"""DP releases: bounding, noise that matches its stated scale, a budget that lasts, the ledger.

Everything runs on records produced by the real pipeline (synth → cemkit.run with the default
policy: pseudonymized subscribers), not on hand-built frames.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from naive import bound_contributions

import cemkit
from cemkit import synth
from cemkit.dp import api, bounding, mechanism
from cemkit.dp.ledger import BudgetExceeded, Ledger
from cemkit.errors import InputError, PolicyError
from cemkit.privacy.policy import POLICY_DIR, load_policy

KEY = "5e1f0b9d3c7a2e6f4b8d0c1a9e3f7b5d2c6a0e8f4b1d9c3a7e5f2b6d0c8a4e1f"
REPO = Path(__file__).resolve().parents[1]
START, END = "2026-03-02", "2026-03-03"


# --- the bounding kernel against its reference ---------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(-1, 6), st.integers(0, 9)), max_size=120),
    max_cells=st.integers(1, 4),
    max_records=st.integers(1, 4),
    seed=st.integers(0, 2**40),
)
def test_bounding_kernel_equals_reference(rows, max_cells, max_records, seed):
    unit = np.array([r[0] for r in rows], dtype=np.int64)
    cell = np.array([r[1] for r in rows], dtype=np.int64)
    keep = bounding.bound(unit, cell, max_cells=max_cells, max_records=max_records, seed=seed)
    cp, rp = bounding.priorities(unit, cell, seed)
    expected = bound_contributions(unit, cell, cp, rp, max_cells, max_records)
    assert keep.tolist() == expected.tolist()


def test_bounding_on_empty_input():
    empty = np.array([], dtype=np.int64)
    assert bounding.bound(empty, empty, max_cells=2, max_records=2, seed=1).size == 0


# --- records from the real pipeline ---------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("dpworld")
    synth.generate(out, records=40_000, seed=5, incidents=0, days=1, start=START)
    return out


@pytest.fixture(scope="module")
def run_dir(world, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("CEMKIT_KEY", KEY)
    out = tmp_path_factory.mktemp("dprun") / "run"
    cemkit.run(world / "records", format="parquet", policy="default", model=world / "model.yaml",
               out=out, scheduler="threads")  # fmt: skip
    yield out
    mp.undo()


def _policy(tmp_path: Path, **release) -> Path:
    """The default policy with its release section changed (a reviewer's edit)."""
    doc = yaml.safe_load((POLICY_DIR / "default.yaml").read_text())
    for key, value in release.items():
        if isinstance(value, dict):
            doc["release"][key] = {**doc["release"].get(key, {}), **value}
        else:
            doc["release"][key] = value
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def frame(run_dir, world):
    spec = load_policy("default").release
    from cemkit.model.spec import load_model

    return api._read_run(run_dir, spec, load_model(world / "model.yaml"))


def test_records_are_pseudonymized(frame):
    assert frame["a_number"].astype(str).str.contains("#").all()


def test_noise_is_unbiased_and_matches_its_stated_scale(run_dir, world, tmp_path, frame):
    """noisy - true over every released cell: mean 0, sd as stated (within a few per cent)."""
    from cemkit.model.spec import load_model

    policy = _policy(tmp_path, budget={"epsilon": 100000.0})
    model = load_model(world / "model.yaml")
    spec = load_policy(policy).release
    t0, t1 = pd.Timestamp(START, tz="UTC"), pd.Timestamp(END, tz="UTC")
    prep = api.prepare(frame, spec, model, t0, t1)
    truth = api.bounded_sums(prep, spec, model, 96, seed=42)
    residuals, sds = [], set()
    for _ in range(3):
        rel = cemkit.release(run_dir, policy=policy, model=model, start=START, end=END,
                             spend=0.8, bounding_seed=42,
                             ledger=tmp_path / "ledger.jsonl")  # fmt: skip
        for depth, level in truth.items():
            part = rel.table[rel.table["level"] == depth]
            for name, true in level["sums"].items():
                residuals.append(part[name].to_numpy() - true)
                sds.add(round(float(part[f"{name}_sd"].iloc[0]), 9))
    res = np.concatenate(residuals).astype(float)
    assert len(sds) == 1
    sd = sds.pop()
    assert res.size > 20_000
    assert abs(res.mean()) < 4 * sd / np.sqrt(res.size)
    assert abs(res.std() / sd - 1) < 0.03
    # and the true counts are not zero: the release is about real traffic
    assert truth[1]["sums"]["attempts"].sum() > 1000


def test_a_heavy_subscriber_contributes_at_most_the_bounds(frame, world):
    from cemkit.model.spec import load_model

    model = load_model(world / "model.yaml")
    spec = load_policy("default").release
    b = spec.bounds
    t0, t1 = pd.Timestamp(START, tz="UTC"), pd.Timestamp(END, tz="UTC")
    attempts = frame[(frame["record_kind"] == "cdr") & (frame["service"] == "voice")]
    heavy = attempts.iloc[[0] * 10_000].copy()
    heavy["a_number"] = heavy["a_number"].iloc[0][:5] + "#heavyuser"
    heavy["start"] = (t0 + pd.to_timedelta(np.arange(10_000) * 8, unit="s")).astype(
        frame["start"].dtype
    )  # ~1 day of buckets
    heavy["partial_seq"] = pd.array([None] * 10_000, dtype="Int32")
    with_heavy = pd.concat([frame, heavy], ignore_index=True)
    base = api.bounded_sums(api.prepare(frame, spec, model, t0, t1), spec, model, 96, seed=3)
    more = api.bounded_sums(api.prepare(with_heavy, spec, model, t0, t1), spec, model, 96, seed=3)
    for depth in base:
        diff = more[depth]["sums"]["attempts"] - base[depth]["sums"]["attempts"]
        assert diff.min() >= 0
        assert diff.max() <= b.max_records
        assert 0 < diff.sum() <= b.max_cells * b.max_records


def test_sensitivity_and_scale_come_from_opendp():
    noise = mechanism.calibrate("laplace", 36, 0.5)
    assert noise.spent <= 0.5 + 1e-12
    assert noise.scale == pytest.approx(72.0, rel=1e-6)  # ε = Δ / scale for Laplace
    g = mechanism.calibrate("gaussian", 6, 0.5)
    assert g.spent <= 0.5 + 1e-12
    assert g.scale == pytest.approx(6 / np.sqrt(2 * 0.5), rel=1e-6)  # ρ = Δ² / (2 σ²)


def test_groups_and_buckets_are_public_not_from_the_data(run_dir, world, tmp_path):
    """Every group of the model × every bucket of the period, whether or not data fell there."""
    from cemkit.model.spec import load_model

    model = load_model(world / "model.yaml")
    rel = cemkit.release(run_dir, policy=_policy(tmp_path, budget={"epsilon": 1e5}), model=model,
                         start="2026-03-02 12:00", end="2026-03-05", levels=[1],
                         ledger=tmp_path / "l.jsonl")  # fmt: skip
    top = [g.name for g in model.groups if g.parent is None] + [api.UNASSIGNED]
    assert sorted(rel.table["object"].unique()) == sorted(top)
    assert len(rel.table) == len(top) * (60 * 4)  # 2.5 days of 15-min buckets, most empty


def test_ratios_are_derived_after_noise(run_dir, world, tmp_path):
    rel = cemkit.release(run_dir, policy=_policy(tmp_path, budget={"epsilon": 1e5}),
                         model=world / "model.yaml", start=START, end=END, freq="day",
                         levels=[1], spend=5000.0, ledger=tmp_path / "l.jsonl")  # fmt: skip
    t = rel.table
    ok = t["attempts"] > 0
    expected = (t["answered"] / t["attempts"]).clip(0, 1)
    assert np.allclose(t.loc[ok, "asr"], expected[ok])
    gb = t[t["object"] == "GB"].iloc[0]
    assert 0.3 < gb["asr"] < 0.95  # a real ASR at a spend where the noise is small


# --- the budget and the ledger -------------------------------------------------------------------
def _cli(args, cwd, env_extra=None, code=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "CEMKIT_KEY": KEY, **(env_extra or {})}
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "cemkit.cli",
                                                              *args]  # fmt: skip
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
                           check=False)  # fmt: skip


def test_a_scheduled_report_is_refused_when_the_budget_is_spent(run_dir, world, tmp_path):
    """Three runs in three processes against a budget for two: the third is refused."""
    policy = _policy(tmp_path, budget={"epsilon": 2.0})
    ledger = tmp_path / "ledger.jsonl"
    outs = []
    for night in range(3):
        out = tmp_path / f"night{night}"
        args = ["release", str(run_dir), "--policy", str(policy), "--model",
                str(world / "model.yaml"), "--start", START, "--end", END, "--spend", "1.0",
                "--ledger", str(ledger), "--out", str(out)]  # fmt: skip
        outs.append(_cli(args, tmp_path))
    assert [o.returncode for o in outs] == [0, 0, 1], [o.stderr for o in outs]
    assert "release refused" in outs[2].stderr
    assert not (tmp_path / "night2").exists()
    assert (tmp_path / "night1" / "release.parquet").is_file()
    events = Ledger(ledger).entries()
    assert [e["event"] for e in events] == ["reserve", "commit", "reserve", "commit"]
    shown = _cli(["ledger", "show", str(ledger)], tmp_path)
    assert shown.returncode == 0
    assert "epsilon 2 of 2 (0 left)" in shown.stdout


CRASH = """
import os, signal, sys
import cemkit.dp.mechanism as m
def die(values, noise):
    os.kill(os.getpid(), signal.SIGKILL)
m.noisy = die
from cemkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_ledger_survives_a_crash_mid_release(run_dir, world, tmp_path):
    policy = _policy(tmp_path, budget={"epsilon": 1.5})
    ledger = tmp_path / "ledger.jsonl"
    args = ["release", str(run_dir), "--policy", str(policy), "--model",
            str(world / "model.yaml"), "--start", START, "--end", END, "--spend", "1.0",
            "--ledger", str(ledger)]  # fmt: skip
    crashed = _cli([*args, "--out", str(tmp_path / "a")], tmp_path, code=CRASH)
    assert crashed.returncode == -9
    assert not (tmp_path / "a").exists()
    events = Ledger(ledger).entries()
    assert [e["event"] for e in events] == ["reserve"]  # reserved before any noise was drawn
    # the crashed release still counts: 1.0 of 1.5 is gone, another 1.0 does not fit
    again = _cli([*args, "--out", str(tmp_path / "b")], tmp_path)
    assert again.returncode == 1 and "release refused" in again.stderr
    shown = _cli(["ledger", "show", str(ledger)], tmp_path)
    assert "reserved (not completed)" in shown.stdout


def test_a_torn_last_line_spends_nothing_and_is_cut_off(tmp_path):
    book = Ledger(tmp_path / "l.jsonl")
    book.reserve(data_set="d", measure="epsilon", spend={"2026-03": 1.0}, budget=2.0, details={})
    with open(book.path, "a") as fh:
        fh.write('{"event":"reserve","data_set":"d","spe')  # the process died mid-write
    assert book.spent("d", "epsilon") == {"2026-03": 1.0}
    book.reserve(data_set="d", measure="epsilon", spend={"2026-03": 1.0}, budget=2.0, details={})
    assert len(book.entries()) == 2
    with pytest.raises(BudgetExceeded):
        book.reserve(data_set="d", measure="epsilon", spend={"2026-03": 0.1}, budget=2.0,
                     details={})  # fmt: skip


def test_an_edited_ledger_is_refused(tmp_path):
    book = Ledger(tmp_path / "l.jsonl")
    for _ in range(2):
        book.reserve(data_set="d", measure="epsilon", spend={"2026-03": 1.0}, budget=5.0,
                     details={})  # fmt: skip
    lines = book.path.read_text().splitlines()
    first = json.loads(lines[0])
    first["spend"] = {"2026-03": 0.0}  # someone gives the budget back
    lines[0] = json.dumps(first)
    book.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="line 1: the hash chain is broken"):
        book.entries()


def test_concurrent_releases_cannot_both_spend_the_last_budget(tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    path = tmp_path / "l.jsonl"
    with ProcessPoolExecutor(4) as pool:
        results = list(pool.map(_try_reserve, [str(path)] * 8))
    assert sum(results) == 3  # budget 3.0, each asks 1.0
    assert sum(1 for e in Ledger(path).entries() if e["event"] == "reserve") == 3


def _try_reserve(path: str) -> int:
    try:
        Ledger(path).reserve(data_set="d", measure="epsilon", spend={"2026-03": 1.0},
                             budget=3.0, details={})  # fmt: skip
    except BudgetExceeded:
        return 0
    return 1


def test_periods_are_those_of_the_data(tmp_path):
    starts = pd.date_range("2026-03-31 23:30", periods=4, freq="15min", tz="UTC")
    assert sorted(set(api._periods(starts, "month"))) == ["2026-03", "2026-04"]
    assert sorted(set(api._periods(starts, "day"))) == ["2026-03-31", "2026-04-01"]


# --- the policy section -------------------------------------------------------------------------
def test_policy_without_release_section_refuses(run_dir, world, tmp_path):
    doc = yaml.safe_load((POLICY_DIR / "default.yaml").read_text())
    del doc["release"]
    path = tmp_path / "norelease.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PolicyError, match="no `release:` section"):
        cemkit.release(run_dir, policy=path, model=world / "model.yaml", start=START, end=END,
                       ledger=tmp_path / "l.jsonl")  # fmt: skip
    assert not (tmp_path / "l.jsonl").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"indicators": ["asr", "pdd_p95_ms"]}, "cannot be released"),
        ({"mechanism": "gaussian"}, "spends rho"),
        ({"indicators": ["acd_s"]}, "bounds.clamp"),
        ({"bounds": {"max_records": 0}}, "max_records"),
        ({"bounds": {"max_cels": 3}}, "max_cels"),
    ],
)
def test_bad_release_sections_fail_at_load(tmp_path, edit, message):
    with pytest.raises(PolicyError, match=message):
        load_policy(_policy(tmp_path, **edit))


def test_explain_states_the_guarantee():
    from cemkit.privacy.explain import explain_markdown

    text = explain_markdown(load_policy("default"))
    assert "## Releases with differential privacy" in text
    assert "ε = 4 per month" in text and "at most 3 record(s)" in text
