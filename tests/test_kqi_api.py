import pandas as pd
import pytest

from cemkit.errors import InputError, PrivacyWarning
from cemkit.kqi import run
from cemkit.kqi.alerts import ALERT_COLUMNS, empty_alerts, find_alerts
from cemkit.kqi.api import read_records
from cemkit.model import ServiceModel

MODEL = ServiceModel.from_yaml_text("""
name: api
groups: [{name: uk, match: {prefixes: ["+44"]}}]
thresholds: [{indicator: asr, absolute: 0.5}]
""")


def test_missing_or_empty_input(tmp_path):
    with pytest.raises(InputError, match="not a directory"):
        read_records(tmp_path / "absent")
    (tmp_path / "records").mkdir()
    with pytest.raises(InputError, match="no \\*.parquet"):
        read_records(tmp_path)


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
    recs.to_parquet(tmp_path / "part-0.parquet")
    with pytest.raises(InputError, match="never protected"):  # hand-made raw records
        run(tmp_path, MODEL, tmp_path / "out", freqs=("day",))
    with pytest.warns(PrivacyWarning, match="RAW"):
        done = run(tmp_path, MODEL, tmp_path / "out", freqs=("day",), allow_raw=True)
    assert set(done.result.table["freq"]) == {"day", "15min"}
    assert done.alerts.empty  # 3 attempts are below the default min_attempts
    assert list(done.alerts.columns) == list(ALERT_COLUMNS)
    back = pd.read_parquet(tmp_path / "out" / "alerts.parquet")
    assert list(back.columns) == list(ALERT_COLUMNS)
    kqi = pd.read_parquet(tmp_path / "out" / "kqi" / "kqi.parquet")
    assert kqi.loc[kqi["freq"] == "day", "attempts"].sum() == 3


def test_find_alerts_on_empty_table():
    from cemkit.kqi.rollup import _empty_table

    out = find_alerts(_empty_table(), MODEL)
    assert out.empty and list(out.dtypes) == list(empty_alerts().dtypes)
