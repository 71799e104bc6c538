"""Format variants: Asterisk 16/17/21 columns, FreeSWITCH templates, CUCM layouts, generic."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cemkit import schema
from cemkit.errors import FormatError
from cemkit.io import plan
from cemkit.io.output import write_run


def load(path, fmt, **kw):
    p = plan(path, fmt, **kw)
    df = p.records().compute().reset_index(drop=True)
    schema.validate(df, p.loader.extension_columns())
    return df, p.quarantine().compute().reset_index(drop=True)


BASE16 = ('"acc","2001","+15550100","ctx","clid","SIP/a","SIP/b","Dial","x",'
          '"2024-07-01 12:00:00","2024-07-01 12:00:05","2024-07-01 12:01:05",65,60,"ANSWERED",'
          '"BILLING"')  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "ncols"),
    [("", 16), (',"1719835200.1"', 17), (',"1719835200.1","uf"', 18),
     (',"1719835200.1","uf","peer","1719835200.0",7', 21)],
)  # fmt: skip
def test_asterisk_column_counts(tmp_path, extra, ncols):
    path = tmp_path / "Master.csv"
    path.write_text(BASE16 + extra + "\n")
    df, q = load(str(path), "asterisk", tz="America/New_York", default_region="US")
    assert len(q) == 0 and len(df) == 1
    r = df.iloc[0]
    assert r.start == pd.Timestamp("2024-07-01 16:00:00", tz="UTC")  # EDT, UTC-4
    assert r.duration_s == 65 and r.billsec_s == 60 and r.outcome == "answered"
    assert r.b_number == "+15550100" and r.b_number_kind == "e164"
    assert r.a_number == "2001" and r.a_number_kind == "extension"
    if ncols == 16:
        assert pd.isna(r.call_id)
    elif ncols == 21:
        assert r.call_id == "1719835200.0" and r.src_uniqueid == "1719835200.1"
        assert r.src_sequence == 7
    else:
        assert r.call_id == "1719835200.1"


def test_asterisk_declared_columns(tmp_path):
    path = tmp_path / "Master.csv"
    path.write_text(BASE16 + ',"1.1","uf"\n')
    df, q = load(str(path), "asterisk", columns=16)
    assert len(df) == 0 and q.reason[0] == "expected 16 fields, found 18"
    with pytest.raises(FormatError, match="16, 17, 18 or 21"):
        plan(str(path), "asterisk", columns=19)


def test_asterisk_dst_fall_back(tmp_path):
    # 02:30 happens twice in Berlin on 2024-10-27; the earlier instant (CEST) is taken.
    line = BASE16.replace("2024-07-01 12:0", "2024-10-27 02:3")
    (tmp_path / "Master.csv").write_text(line + "\n")
    df, _ = load(str(tmp_path / "Master.csv"), "asterisk", tz="Europe/Berlin")
    assert df.start[0] == pd.Timestamp("2024-10-27 00:30:00", tz="UTC")


def test_end_before_start_is_quarantined(tmp_path):
    line = BASE16.replace("2024-07-01 12:01:05", "2024-07-01 11:01:05")
    (tmp_path / "Master.csv").write_text(BASE16 + "\n" + line + "\n")
    df, q = load(str(tmp_path / "Master.csv"), "asterisk")
    assert len(df) == 1 and list(q.line) == [2] and q.field[0] == "end"


FS_LEGACY = ('"Alice","1000","+4930123456","default","2024-01-02 03:04:05","",'
             '"2024-01-02 03:04:25","20","0","USER_BUSY","uuid-1","","1000"')  # fmt: skip


def test_freeswitch_legacy_template(tmp_path):
    (tmp_path / "Master.csv").write_text(FS_LEGACY + "\n")
    df, q = load(str(tmp_path / "Master.csv"), "freeswitch", template="legacy")
    r = df.iloc[0]
    assert len(q) == 0
    assert r.outcome == "busy" and r.cause_q850 == 17 and pd.isna(r.answer)
    assert r.b_number == "+4930123456" and r.src_caller_id_name == "Alice"
    assert "src_read_codec" not in df.columns


def test_freeswitch_example_template_rejects_13_fields(tmp_path):
    (tmp_path / "Master.csv").write_text(FS_LEGACY + "\n")
    df, q = load(str(tmp_path / "Master.csv"), "freeswitch")
    assert len(df) == 0 and q.reason[0] == "expected 15 fields, found 13"


def test_freeswitch_user_template(tmp_path):
    fields = ["uuid", "sip_call_id", "caller_id_number", "destination_number", "start_epoch",
              "answer_epoch", "end_epoch", "billsec", "hangup_cause", "sip_term_status",
              "progressmsec", "network_addr"]  # fmt: skip
    lines = [
        (
            '"u1","abc@host","+441632960001","+441632960002","1700000000","1700000003",'
            '"1700000063","60","NORMAL_CLEARING","200","1500","192.0.2.1"'
        ),
        (
            '"u2","def@host","+441632960001","+441632960003","1700000100","0","1700000110",'
            '"0","NO_ANSWER","480","0","192.0.2.1"'
        ),
    ]
    (tmp_path / "Master.csv").write_text("\n".join(lines) + "\n")
    df, q = load(str(tmp_path / "Master.csv"), "freeswitch", template=fields)
    assert len(q) == 0
    a, b = df.iloc[0], df.iloc[1]
    assert a.call_id == "abc@host" and a.outcome == "answered" and a.sip_status == 200
    assert a.start == pd.Timestamp(1700000000, unit="s", tz="UTC") and a.pdd_ms == 1500
    assert b.outcome == "no_answer" and pd.isna(b.answer) and b.cause_q850 == 19
    assert pd.isna(b.pdd_ms)
    assert a.src_network_addr == "192.0.2.1"
    with pytest.raises(FormatError, match="template"):
        plan(str(tmp_path / "Master.csv"), "freeswitch", template="nope")


CDR_COLS = ["cdrRecordType", "globalCallID_callManagerId", "globalCallID_callId",
            "dateTimeOrigination", "origIpAddr", "callingPartyNumber", "origCause_value",
            "destIpAddr", "originalCalledPartyNumber", "finalCalledPartyNumber",
            "destCause_value", "dateTimeConnect", "dateTimeDisconnect", "duration",
            "origDeviceName", "destDeviceName", "globalCallId_ClusterID"]  # fmt: skip
CMR_COLS = ["cdrRecordType", "globalCallID_callManagerId", "globalCallID_callId", "nodeId",
            "directoryNum", "numberPacketsReceived", "numberPacketsLost", "jitter",
            "varVQMetrics"]  # fmt: skip


def write_cucm(tmp_path, quoted_header=False):
    def header(cols):
        names = ",".join(f'"{c}"' if quoted_header else c for c in cols)
        return names + "\n" + ",".join("INTEGER" for _ in cols) + "\n"

    cdr = tmp_path / "cdr_cl_node_202401010000_1"
    cdr_rows = [
        ('1,1,100,1704067200,16777343,"2001",16,0,"+15550100","+15550100",0,1704067202,'
         '1704067262,60,"SEPA","SEPB","clu"'),
        ('1,1,101,1704067300,0,"2002",0,0,"+15550101","+15550101",17,0,1704067305,0,'
         '"SEPA","","clu"'),
        ('1,1,102,1704067400,0,"2003",0,0,"+15550102","+15550102",17,0,1704067405,x,'
         '"SEPA","","clu"'),
    ]  # fmt: skip
    cdr.write_text(header(CDR_COLS) + "\n".join(cdr_rows) + "\n")
    cmr = tmp_path / "cmr_cl_node_202401010000_1"
    cmr_rows = [
        '2,1,100,1,"2001",990,10,4,"MLQK=4.1000;CCR=0.0010"',
        '2,1,100,1,"+15550100",980,20,9,"MLQK=3.5000;CCR=0.0200"',
        '2,1,999,1,"3000",100,0,1,"MLQK=4.5"',
    ]
    cmr.write_text(header(CMR_COLS) + "\n".join(cmr_rows) + "\n")
    return str(cdr), str(cmr)


@pytest.mark.parametrize("quoted", [False, True])
def test_cucm_mos_attached_by_call_id(tmp_path, quoted):
    cdr, cmr = write_cucm(tmp_path, quoted_header=quoted)
    df, q = load([cdr, cmr], "cucm", default_region="US")
    assert len(df) == 2
    assert list(q.line) == [5] and q.field[0] == "duration"
    df = df.set_index("call_id")
    a = df.loc["1-100"]
    assert a.mos == 3.5  # the worse endpoint
    assert a.loss_ratio == pytest.approx(30 / 2000) and a.jitter_ms == 9
    assert a.src_concealment_ratio == pytest.approx(0.02)
    assert a.src_orig_ip == "127.0.0.1" and a.released_by == "caller"
    b = df.loc["1-101"]
    assert b.outcome == "busy" and pd.isna(b.mos) and b.released_by == "callee"


def test_generic_parquet_with_inline_mapping(tmp_path):
    table = pa.table({
        "ts": pa.array([1_700_000_000_000, 1_700_000_100_000, 5], pa.int64()),
        "caller": ["+441632960001", "+441632960002", "x"],
        "callee": ["+441632960003", "+441632960004", "y"],
        "status": ["OK", "BUSY", "ODD"],
        "probe": ["p1", "p2", "p3"],
    })  # fmt: skip
    pq.write_table(table, tmp_path / "x.parquet", row_group_size=2)
    mapping = {
        "source": "probe-x",
        "input": "parquet",
        "fields": {
            "record_kind": {"value": "xdr"},
            "service": {"value": "voice"},
            "a_number": {"column": "caller"},
            "b_number": {"column": "callee"},
            "start": {"column": "ts", "time": "epoch_ms"},
            "outcome": {"column": "status", "map": {"OK": "answered", "BUSY": "busy"},
                        "strict": True},
        },
        "keep": [{"column": "probe", "pii": "quasi"}],
    }  # fmt: skip
    p = plan(str(tmp_path / "x.parquet"), "generic", mapping=mapping)
    assert len(p.parts) == 2
    df = p.records().compute().reset_index(drop=True)
    q = p.quarantine().compute()
    assert list(df.outcome) == ["answered", "busy"]
    assert df.start[0] == pd.Timestamp(1_700_000_000, unit="s", tz="UTC")
    assert list(df.src_probe) == ["p1", "p2"] and df.record_id[0] == "probe-x:x.parquet:1"
    assert list(q.line) == [3] and q.field.iloc[0] == "status" and '"ODD"' in q.raw.iloc[0]


def test_generic_mapping_errors(tmp_path):
    with pytest.raises(FormatError, match="needs mapping"):
        plan("x.csv", "generic")
    with pytest.raises(FormatError, match="not canonical"):
        plan("x.csv", "generic", mapping={"fields": {"caller": {"column": "a"}}})
    with pytest.raises(FormatError, match="shipped mappings"):
        plan("x.csv", "generic", mapping="no-such-mapping")


def test_canonical_parquet_round_trip_and_quarantine(tmp_path):
    df = schema.empty_frame()
    df = schema.conform(pd.DataFrame({
        "record_id": ["r1", "r2", "r3"], "source": "synth", "record_kind": "cdr",
        "service": ["voice", "voice", "telepathy"], "outcome": "answered",
        "start": pd.to_datetime([1, 2, 3], unit="s", utc=True),
        "src_note": ["a", "b", "c"],
    }))  # fmt: skip
    write_run(tmp_path / "run", df)
    back, q = load(str(tmp_path / "run/records"), "parquet")
    assert list(back.record_id) == ["r1", "r2"] and list(back.src_note) == ["a", "b"]
    assert list(q.line) == [3] and q.field[0] == "service"


def test_looking_up_one_format_imports_that_format_only():
    # a warehouse worker asks for one format: its first file must not pay for importing every
    # other format (pcap and 3GPP parsers); an unknown name still lists every format
    import subprocess
    import sys

    code = ("import sys\nfrom cemkit.io.base import registry\n"
            "assert registry.get('asterisk').name == 'asterisk'\n"
            "print(sorted(m for m in ('cemkit.io.sip_pcap', 'cemkit.io.threegpp', "
            "'cemkit.io.cucm', 'cemkit.io.gnettrack') if m in sys.modules))\n"
            "try:\n    registry.get('astrisk')\n"
            "except Exception as exc:\n    print(exc)\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout.splitlines()  # fmt: skip
    assert out[0] == "[]"
    assert "known: 3gpp-cdr, agent, asterisk, cucm" in out[1] and "sip-pcap" in out[1]
