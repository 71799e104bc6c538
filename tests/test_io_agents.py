"""Device-agent loaders: ``gnettrack`` (real G-NetTrack Pro logs) and ``agent`` (YAML mappings)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import SAMPLES

from cemkit.errors import FormatError, InputError
from cemkit.io import plan
from cemkit.io.run import load_to_dir
from cemkit.schema_measurements import validate_measurements

GNET = SAMPLES / "agent-gnettrack"

HEADER = ("Timestamp,Longitude,Latitude,Speed,Operatorname,CellID,NetworkMode,RSRP,RSRQ,SNR,"
          "CQI,RSSI,DL_bitrate,UL_bitrate,State,PINGAVG,PINGMIN,PINGMAX,PINGSTDEV,PINGLOSS,"
          "CELLHEX,NODEHEX,LACHEX,RAWCELLID,NRxRSRP,NRxRSRQ")  # fmt: skip
ROW = ("2019.12.14_10.16.30,-8.388186,51.935604,0,B,12,5G,-99,-15,6.0,12,-90,7,1,D,-,-,-,-,-,"
       "C,A81B,9CBA,11016972,-100.0,-15.0")  # fmt: skip


def _load(path, fmt="gnettrack", **kw):
    p = plan(str(path), fmt, **kw)
    df = p.records().compute().reset_index(drop=True)
    q = p.quarantine().compute().reset_index(drop=True)
    validate_measurements(df, p.loader.extension_columns())
    return df, q


@pytest.mark.samples
@pytest.mark.skipif(not GNET.is_dir(), reason="shared samples absent")
def test_every_shared_file_reconciles(tmp_path):
    files = sorted(GNET.glob("*.csv"))
    assert len(files) == 15
    section = load_to_dir(plan([str(f) for f in files], "gnettrack", tz="Europe/Dublin",
                               blocksize=64 * 1024), tmp_path / "run")  # fmt: skip
    for entry in section["inputs"]:
        lines = Path(entry["path"]).read_bytes().count(b"\n") - 1  # minus the header
        assert entry["rows_read"] == lines
        assert entry["rows_read"] == entry["rows_loaded"] + entry["rows_quarantined"]
    assert section["totals"]["rows_loaded"] == 44863
    back = pd.read_parquet(tmp_path / "run" / "records")
    assert len(back) == 44863 and set(back.radio_gen) == {"5G", "4G", "3G"}


@pytest.mark.samples
@pytest.mark.skipif(not GNET.is_dir(), reason="shared samples absent")
def test_values_of_one_real_file_equal_pandas():
    path = GNET / "download-driving-B_2019.12.14_10.16.30.csv"
    df, q = _load(path, tz="Europe/Dublin")
    raw = pd.read_csv(path, na_values=["-"], dtype={"RAWCELLID": str, "NODEHEX": str,
                                                    "CELLHEX": str})  # fmt: skip
    assert len(q) == 0 and len(df) == len(raw)
    assert (df.device == "download-driving-B").all()
    assert (df.session == "download-driving-B_2019.12.14_10.16.30").all()
    pd.testing.assert_series_equal(df.dl_kbps, raw.DL_bitrate.astype(float), check_names=False)
    pd.testing.assert_series_equal(df.rsrp_dbm, raw.RSRP.astype(float), check_names=False)
    pd.testing.assert_series_equal(df.loss_ratio, raw.PINGLOSS / 100, check_names=False)
    assert df.cell.tolist() == (raw.NODEHEX + "-" + raw.CELLHEX).tolist()
    assert df.src_rawcellid.tolist() == raw.RAWCELLID.tolist()
    assert df.node.tolist() == raw.NODEHEX.tolist()
    # Irish winter time is UTC; the stamp is device local time.
    assert df.time.iloc[0] == pd.Timestamp("2019-12-14 10:16:30", tz="UTC")
    madrid, _ = _load(GNET / "download-static-B_2020.02.27_18.39.27.csv", tz="Europe/Madrid")
    assert madrid.time.iloc[0] == pd.Timestamp("2020-02-27 17:39:27", tz="UTC")


def test_tab_separated_other_order_no_nr_extra_columns(tmp_path):
    cols = HEADER.split(",")
    vals = ROW.split(",")
    keep = [i for i, c in enumerate(cols) if not c.startswith("NRx")]
    order = list(reversed(keep))
    head = [cols[i] for i in order] + ["Altitude", "IMEI"]
    body = [vals[i] for i in order] + ["25", "356938035643809"]
    path = tmp_path / "phone7_2021.05.01_08.00.00.txt"
    path.write_text("\t".join(head) + "\n" + "\t".join(body) + "\n")
    df, q = _load(path)
    assert len(df) == 1 and len(q) == 0
    row = df.iloc[0]
    assert row.device == "phone7" and row.cell == "A81B-C" and row.rsrp_dbm == -99
    assert pd.isna(row.nr_rsrp_dbm) and row.state == "active" and row.activity == "download"
    assert row.src_altitude == "25" and row.src_imei == "356938035643809"


def test_app_log_names(tmp_path):
    # The app's own tab-separated log names some columns differently (Level, Qual, Node, ...).
    head = ["Timestamp", "Longitude", "Latitude", "Speed", "Operator", "Node", "CellID", "LAC",
            "NetworkTech", "Level", "Qual", "SNR", "CQI", "LTERSSI", "DL_bitrate", "UL_bitrate",
            "State"]  # fmt: skip
    body = ["2021.05.01_08.00.00", "-8.4", "51.9", "12", "27203", "43179", "12", "40122", "LTE",
            "-101", "-11", "8.0", "10", "-70", "1200", "40", "I"]  # fmt: skip
    path = tmp_path / "g_2021.05.01_08.00.00.txt"
    path.write_text("\t".join(head) + "\n" + "\t".join(body) + "\n")
    df, q = _load(path)
    row = df.iloc[0]
    assert len(q) == 0 and row.cell == "43179-12" and row.node == "43179" and row.area == "40122"
    assert row.rsrp_dbm == -101 and row.rsrq_db == -11 and row.rssi_dbm == -70
    assert row.radio_gen == "4G" and row.state == "idle" and row.operator == "27203"


def test_bad_rows_quarantined_with_line_and_field(tmp_path):
    good = ROW
    bad_time = ROW.replace("2019.12.14_10.16.30", "14/12/2019 10:16")
    bad_lat = ROW.replace("51.935604", "151.9")
    bad_num = ROW.replace(",-99,", ",strong,")
    short = ",".join(ROW.split(",")[:10])
    path = tmp_path / "dev_2019.12.14_10.16.30.csv"
    rows = [HEADER, good, bad_time, bad_lat, bad_num, short, good]
    path.write_text("".join(f"{r}\n" for r in rows))
    df, q = _load(path)
    assert len(df) == 2 and len(q) == 4
    got = dict(zip(q.line, zip(q.field, q.reason, strict=True), strict=True))
    assert got[3][0] == "Timestamp" and "YYYY.MM.DD_HH.MM.SS" in got[3][1]
    assert got[4][0] == "Latitude" and "range" in got[4][1]
    assert got[5] == ("RSRP", "not a number")
    assert "expected 26 fields" in got[6][1]
    # Reasons never carry the offending value (it may be a position).
    assert not q.reason.str.contains("151.9").any()


def test_device_options(tmp_path):
    folder = tmp_path / "stb-0042"
    folder.mkdir()
    path = folder / "log.csv"
    path.write_text(HEADER + "\n" + ROW + "\n")
    assert _load(path, device_from="folder")[0].device.iloc[0] == "stb-0042"
    assert _load(path, device="X1")[0].device.iloc[0] == "X1"
    pattern = r"^(?P<device>log)$"
    assert _load(path, device_pattern=pattern)[0].device.iloc[0] == "log"
    with pytest.raises(FormatError, match="named group"):
        plan(str(path), "gnettrack", device_pattern="x")
    not_gnet = tmp_path / "calls.csv"
    not_gnet.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="no Timestamp column"):
        plan(str(not_gnet), "gnettrack")


def test_agent_mapping_speedtest_jsonl(tmp_path):
    lines = [
        {"type": "result", "timestamp": "2026-03-01T12:00:00Z",
         "ping": {"jitter": 0.5, "latency": 10.2}, "download": {"bandwidth": 12_500_000},
         "upload": {"bandwidth": 2_500_000}, "packetLoss": 1.5, "isp": "Op",
         "interface": {"name": "wlan0", "macAddr": "AA:BB:CC:DD:EE:FF"}, "server": {"id": 42}},
        "not json",
        {"type": "result", "timestamp": "yesterday", "interface": {"macAddr": "AA"}},
        {"type": "result", "timestamp": "2026-03-01T13:00:00Z", "download": {"bandwidth": 1000},
         "interface": {"name": "eth0"}},
    ]  # fmt: skip
    path = tmp_path / "tests.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    df, q = _load(path, "agent", mapping="speedtest-jsonl")
    assert len(df) == 1 and df.dl_kbps.iloc[0] == 100_000 and df.ul_kbps.iloc[0] == 20_000
    assert df.loss_ratio.iloc[0] == pytest.approx(0.015) and df.radio_gen.iloc[0] == "wifi"
    assert df.time.iloc[0] == pd.Timestamp("2026-03-01 12:00", tz="UTC")
    assert q.line.tolist() == [2, 3, 4]
    assert q.field.tolist() == ["", "timestamp", "interface.macAddr"]
    section = load_to_dir(
        plan(str(path), "agent", mapping="speedtest-jsonl", max_quarantine=1.0), tmp_path / "r"
    )  # three bad rows on purpose
    rows = {k: v for k, v in section["totals"].items() if k.startswith("rows_")}
    assert rows == {"rows_read": 4, "rows_loaded": 1, "rows_quarantined": 3, "rows_attached": 0}
    assert section["totals"]["read_units"]["lines"] == 4


def test_agent_mapping_csv_and_refusals(tmp_path):
    mapping = {
        "source": "stb", "input": "csv",
        "fields": {"device": {"column": "box"}, "time": {"column": "ts", "time": "epoch_s"},
                   "dl_kbps": {"column": "down_mbps", "scale": 1000},
                   "radio_tech": {"value": "DSL"}, "state": {"value": "active"}},
        "keep": [{"column": "fw", "pii": "none", "meaning": "firmware"}],
    }  # fmt: skip
    path = tmp_path / "stb.csv"
    path.write_text("box,ts,down_mbps,fw\nb1,1700000000,12.5,3.1\nb2,x,1,3.1\n")
    df, q = _load(path, "agent", mapping=mapping)
    assert df.dl_kbps.tolist() == [12500.0] and df.radio_gen.tolist() == ["fixed"]
    assert df.src_fw.tolist() == ["3.1"] and q.line.tolist() == [3]
    with pytest.raises(FormatError, match="not measurement columns"):
        plan(
            str(path),
            "agent",
            mapping={**mapping, "fields": {**mapping["fields"], "rsrp": {"column": "x"}}},
        )
    with pytest.raises(FormatError, match="needs mapping"):
        plan(str(path), "agent")


def test_same_records_whatever_the_blocksize_and_empty_files(tmp_path):
    rows = [ROW.replace("10.16.30", f"10.16.{s:02d}").replace(",7,1,D,", f",{s},1,D,")
            for s in range(60)]  # fmt: skip
    rows[17] = rows[17].replace("-99", "x")
    path = tmp_path / "dev_2019.12.14_10.16.30.csv"
    path.write_text("".join(f"{r}\n" for r in [HEADER, *rows]))
    whole, q1 = _load(path)
    parts = plan(str(path), "gnettrack", blocksize=200)
    assert len(parts.parts) > 5
    cut = parts.records().compute().reset_index(drop=True)
    q2 = parts.quarantine().compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(whole, cut)
    pd.testing.assert_frame_equal(q1, q2)
    assert q1.line.tolist() == [19] and len(whole) == 59
    header_only = tmp_path / "x_2019.12.14_10.16.30.csv"
    header_only.write_text(HEADER + "\n")
    df, q = _load(header_only)
    assert len(df) == 0 and len(q) == 0
    empty = tmp_path / "y.csv"
    empty.write_text("")
    df, q = _load(empty)
    assert len(df) == 0 and q.reason.tolist() == ["empty file: no lines at all"]
