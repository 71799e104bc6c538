"""Synthetic agent logs: G-NetTrack format, an injected coverage hole found by the KQIs."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cemkit.cli import main
from cemkit.io import plan
from cemkit.io.run import load_to_dir
from cemkit.kqi.coverage import coverage_holes, coverage_kqis
from cemkit.privacy.commands import run_protect
from cemkit.privacy.keys import Key
from cemkit.synth_agents import GNETTRACK_COLUMNS, generate_agents

KEY = Key.from_material(bytes(range(32)), key_id="cemkit-default-2026")


def _kqis(world, tmp_path):
    logs = world / "formats" / "gnettrack"
    section = load_to_dir(plan(str(logs), "gnettrack", tz="Europe/Dublin"), tmp_path / "l")
    assert section["totals"]["rows_quarantined"] == 0
    run_protect(tmp_path / "l", "default", tmp_path / "p", key=KEY, scheduler="threads")
    records = pd.read_parquet(tmp_path / "p" / "records")
    return section, coverage_kqis(records, "cell", every="1h")


@pytest.mark.parametrize("seed", [0, 1])
def test_incident_found_in_its_cell_and_window(tmp_path, seed):
    truth = generate_agents(tmp_path / "w", devices=6, sessions=1, seed=seed)
    section, k = _kqis(tmp_path / "w", tmp_path)
    assert section["totals"]["rows_loaded"] == truth["rows"]
    holes = coverage_holes(k)
    inc = truth["incident"]
    assert len(holes) >= 1
    assert set(holes.cell) == {inc["cell"]}
    start, end = pd.Timestamp(inc["start"]), pd.Timestamp(inc["end"])
    assert ((holes.bucket >= start) & (holes.bucket < end)).all()


def test_clean_world_is_silent(tmp_path):
    truth = generate_agents(tmp_path / "w", devices=6, sessions=2, seed=4, incident=False)
    assert truth["incident"] is None
    _, k = _kqis(tmp_path / "w", tmp_path)
    assert len(k) and coverage_holes(k).empty


def test_format_is_gnettracks(tmp_path):
    truth = generate_agents(tmp_path, devices=2, sessions=1, seed=2, incident=False)
    first = (tmp_path / "formats" / "gnettrack" / truth["files"][0]).read_text().splitlines()
    assert first[0] == ",".join(GNETTRACK_COLUMNS)
    fields = first[1].split(",")
    assert len(fields) == 26 and fields[0][4] == "." and fields[0][10] == "_"


def test_synth_command_flag(tmp_path, capsys):
    out = tmp_path / "world"
    assert main(["synth", "--records", "200", "--days", "1", "--no-formats", "--agents", "3",
                 "--out", str(out)]) == 0  # fmt: skip
    truth = json.loads((out / "agents_truth.json").read_text())
    assert truth["devices"] == 3 and truth["incident"] is not None
    assert len(list((out / "formats" / "gnettrack").glob("*.csv"))) == len(truth["files"])
