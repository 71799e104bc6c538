import pandas as pd
import pytest

from cemkit.cli import main
from cemkit.errors import InputError, PrivacyWarning
from cemkit.kqi import run
from cemkit.kqi.alerts import ALERT_COLUMNS, empty_alerts, find_alerts
from cemkit.kqi.api import read_records
from cemkit.model import ServiceModel
from cemkit.runs import read_manifest, write_run

MODEL_TEXT = """
name: api
groups: [{name: uk, match: {prefixes: ["+44"]}}]
thresholds: [{indicator: asr, absolute: 0.5}]
"""
MODEL = ServiceModel.from_yaml_text(MODEL_TEXT)


def test_missing_or_empty_input(tmp_path):
    with pytest.raises(InputError, match="not a run directory"):
        read_records(tmp_path / "absent")
    (tmp_path / "records").mkdir()
    with pytest.raises(InputError, match="no manifest.json"):
        read_records(tmp_path)
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(InputError, match="has no records files"):
        read_records(tmp_path / "records")


def test_run_from_frame_writes_files(tmp_path):
    recs = pd.DataFrame(
        {
            "a_number": pd.array(["+441", "+442", "+443"], dtype="string[pyarrow]"),
            "service": "voice",
            "record_kind": "cdr",
            "outcome": ["answered", "failed", "busy"],
            "start": pd.to_datetime(["2026-01-01 10:01"] * 3, utc=True),
        }
    )
    write_run(tmp_path / "in", recs)
    model = tmp_path / "model.yaml"
    model.write_text(MODEL_TEXT)
    # hand-made raw records: refused, unless the data owner says --allow-raw (loudly)
    assert main(["kqi", str(tmp_path / "in"), "--model", str(model), "--freq", "day",
                 "--out", str(tmp_path / "out"), "--scheduler", "sync"]) == 1  # fmt: skip
    argv = ["kqi", str(tmp_path / "in"), "--model", str(model), "--freq", "day", "--out",
            str(tmp_path / "out"), "--scheduler", "sync", "--allow-raw"]  # fmt: skip
    with pytest.warns(PrivacyWarning, match="RAW"):
        code = main(argv)
    assert code == 0
    with pytest.warns(PrivacyWarning, match="RAW"):
        done = run(tmp_path / "in" / "records", MODEL, freqs=("day",), allow_raw=True)
    assert set(done.result.table["freq"]) == {"day", "15min"}
    assert done.alerts.empty  # 3 attempts are below the default min_attempts
    assert list(done.alerts.columns) == list(ALERT_COLUMNS)
    back = pd.read_parquet(tmp_path / "out" / "alerts.parquet")
    assert list(back.columns) == list(ALERT_COLUMNS)
    kqi = pd.read_parquet(tmp_path / "out" / "kqi" / "kqi.parquet")
    assert kqi.loc[kqi["freq"] == "day", "attempts"].sum() == 3
    pd.testing.assert_frame_equal(kqi, done.result.table.reset_index(drop=True))
    manifest = read_manifest(tmp_path / "out")
    assert manifest["kqi"]["rows"] == len(kqi)
    assert {o["path"] for o in manifest["kqi"]["outputs"]} >= {"kqi/kqi.parquet", "alerts.parquet"}


def test_find_alerts_on_empty_table():
    from cemkit.kqi.rollup import _empty_table

    out = find_alerts(_empty_table(), MODEL)
    assert out.empty and list(out.dtypes) == list(empty_alerts().dtypes)
