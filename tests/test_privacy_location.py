"""Location privacy: grid and bin operators, policy checks, and no raw coordinate in any output."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit.errors import PolicyError
from cemkit.io import plan
from cemkit.io.run import load_to_dir
from cemkit.privacy.commands import run_protect
from cemkit.privacy.engine import protect
from cemkit.privacy.keys import Key
from cemkit.privacy.operators.grid import METRES_PER_DEGREE, grid_latitude, grid_longitude
from cemkit.privacy.policy import Policy, parse_policy

GNET = SAMPLES / "agent-gnettrack"
KEY = Key.from_material(bytes(range(32)), key_id="cemkit-default-2026")


def _policy(columns: dict) -> Policy:
    return Policy.model_validate({"name": "t", "version": 1, "columns": columns})


def _haversine_m(lat1, lon1, lat2, lon2):
    r = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


@settings(max_examples=200, deadline=None)
@given(st.floats(-80, 80), st.floats(-179.9, 179.9), st.sampled_from([50.0, 500.0, 5000.0]))
def test_grid_square_contains_the_point_and_is_wide_enough(lat, lon, size):
    rows, _ = grid_latitude(np.array([lat]), size)
    cols, lon_c = grid_longitude(np.array([lon]), np.array([lat]), size)
    step = size / METRES_PER_DEGREE
    lo = -90 + rows[0] * step
    assert lo - 1e-9 <= lat < lo + step + 1e-9
    assert rows[0] == math.floor((lat + 90) / step)
    # The square's width along its narrowest (poleward) edge is at least size metres.
    edge = max(abs(lo), abs(lo + step))
    half = lon_c[0] - (-180 + cols[0] * (lon_c[0] + 180) / (cols[0] + 0.5))
    width = _haversine_m(edge, lon_c[0] - half, edge, lon_c[0] + half)
    assert width >= size * 0.999
    assert abs(lon - lon_c[0]) <= half + 1e-9


def test_grid_and_bin_through_protect():
    df = pd.DataFrame({"latitude": [51.935604, 51.935739, np.nan],
                       "longitude": [-8.388186, -8.38847, -8.0],
                       "speed_kmh": [0.0, 37.0, np.nan]})  # fmt: skip
    policy = _policy({"latitude": {"action": "grid", "size_m": 500},
                      "longitude": {"action": "grid", "size_m": 500, "output": "centre"},
                      "speed_kmh": {"action": "bin", "step": 10}})  # fmt: skip
    out = protect(df, policy)
    assert out.latitude.iloc[0] == out.latitude.iloc[1] == 31388 and np.isnan(out.latitude[2])
    assert out.longitude.iloc[0] == out.longitude.iloc[1]
    assert abs(out.longitude.iloc[0] - -8.388) < 0.01
    assert np.isnan(out.longitude.iloc[2])  # no latitude: no square
    assert out.speed_kmh.tolist()[:2] == [0.0, 30.0]


@pytest.mark.parametrize(("columns", "message"), [
    ({"latitude": {"action": "grid", "size_m": 500, "cell": 1}}, "unknown parameter 'cell'"),
    ({"latitude": {"action": "grid", "size_m": 1}}, "greater than or equal to 10"),
    ({"device": {"action": "grid", "size_m": 500}}, "does not apply to a string column"),
    ({"longitude": {"action": "grid", "size_m": 500}}, "does not name"),
    ({"speed_kmh": {"action": "bin"}}, "step"),
    ({"speed_kmh": {"action": "bin", "step": 0}}, "greater than 0"),
    ({"latitud": {"action": "drop"}}, "did you mean 'latitude'"),
])  # fmt: skip
def test_bad_location_rules_fail_at_load(columns, message):
    text = json.dumps({"name": "t", "version": 1, "columns": columns})
    with pytest.raises(PolicyError, match=message):
        parse_policy(text)


def _raw_coordinates(files) -> set[str]:
    """Every position of the inputs as text to 4 decimals, read with pandas, not the loader."""
    out: set[str] = set()
    for f in files:
        rows = list(csv.reader(f.read_text().splitlines()))
        at = [rows[0].index("Latitude"), rows[0].index("Longitude")]
        for row in rows[1:]:
            for i in at:
                try:
                    v = float(row[i])
                except (ValueError, IndexError):
                    continue
                if abs(v) > 0.5:  # "0" is no GPS fix, not a place
                    out |= {f"{v:.4f}", f"{math.trunc(v * 1e4) / 1e4:.4f}"}
    return out


@pytest.mark.samples
@pytest.mark.skipif(not GNET.is_dir(), reason="shared samples absent")
def test_no_raw_coordinate_survives_the_default_policy(tmp_path):
    files = sorted(GNET.glob("*.csv"))
    # A damaged copy of one file: its quarantined raw lines hold positions too.
    damaged = tmp_path / "damaged_2019.12.14_10.16.30.csv"
    lines = files[0].read_text().splitlines()
    damaged.write_text("\n".join([lines[0], *lines[1:30], *(ln + ",extra" for ln in lines[30:40])])
                       + "\n")  # fmt: skip
    inputs = [*files, damaged]
    load_to_dir(plan([str(f) for f in inputs], "gnettrack", tz="Europe/Dublin"), tmp_path / "l")
    run_protect(tmp_path / "l", "default", tmp_path / "p", key=KEY, scheduler="threads")
    coords = _raw_coordinates(inputs)
    assert len(coords) > 500
    needles = sorted(coords)
    found = 0
    for path in sorted((tmp_path / "p").rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            table = pq.read_table(path).to_pandas()
            assert len(table) or "quarantine" in str(path)
            texts = [table[c].astype(str).str.cat(sep="|") for c in table.columns]
            if "latitude" in table.columns:
                found += len(table)
                for c in ("latitude", "longitude"):
                    v = table[c].dropna()
                    assert (v == v.round()).all(), "grid output must be square numbers"
            for col in ("latitude", "longitude"):
                if col in table.columns:
                    texts.append(table[col].map(lambda v: f"{v:.4f}").str.cat(sep="|"))
            blob = "|".join(texts)
        else:
            blob = path.read_text(errors="replace")
        leaked = [n for n in needles if n in blob]
        assert not leaked, f"{path.name} holds {len(leaked)} raw coordinate(s)"
    assert found == 44863 + 29
    q = pd.read_parquet(tmp_path / "p" / "quarantine")
    assert len(q) == 10 and q.raw.str.contains("<COORDINATE>").all()


def test_policy_check_on_measurements_names_only_their_missing_columns(tmp_path):
    from cemkit.privacy.check import check_policy

    path = tmp_path / "dev_2019.12.14_10.16.30.csv"
    path.write_text(
        "Timestamp,Longitude,Latitude,RSRP,RAWCELLID\n2019.12.14_10.16.30,-8.38,51.93,-99,1\n"
    )
    load_to_dir(plan(str(path), "gnettrack"), tmp_path / "l")
    found = check_policy("default", tmp_path / "l")
    missing = [f.where for f in found if "not in the data" in f.message]
    assert "columns.a_number" not in missing and "columns.latitude" not in missing
    assert missing == []  # every measurement column is written, null when not measured


def test_policy_diff_reads_grid_and_bin_changes():
    from cemkit.privacy.diff import diff_policies

    changes = {c.where: c for c in diff_policies("default", "research")}
    assert changes["columns.latitude"].verdict == "weaker"
    assert "250 m instead of 500 m" in changes["columns.latitude"].why
    assert changes["columns.speed_kmh"].verdict == "weaker"
    strict = {c.where: c for c in diff_policies("default", "strict")}
    assert strict["columns.latitude"].verdict == "stronger"  # grid -> drop (only the cell)
