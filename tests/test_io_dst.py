"""Local times across clock changes follow the zone's rules (Europe/London, 2026)."""

import pandas as pd

from cemkit import io as cio


def _asterisk_line(start, answer, end, duration, billsec, n):
    return (f'"","441632960{n:03d}","442079460{n:03d}","ctx","","SIP/lon-sw1-0000000{n}","",'
            f'"Dial","","{start}","{answer}","{end}",{duration},{billsec},"ANSWERED",'
            f'"DOCUMENTATION","17.{n}",""')  # fmt: skip


def _load(tmp_path, lines):
    path = tmp_path / "Master.csv"
    path.write_text("\n".join(lines) + "\n")
    recs = cio.load(str(path), format="asterisk", tz="Europe/London",
                    default_region="GB").compute(scheduler="sync")  # fmt: skip
    quarantine = cio.load_quarantine(str(path), format="asterisk",
                                     tz="Europe/London").compute(scheduler="sync")  # fmt: skip
    return recs.reset_index(drop=True), quarantine


def utc(text):
    return pd.Timestamp(text, tz="UTC")


def test_spring_change_nonexistent_start_is_not_its_end(tmp_path):
    # 29 March 2026: 01:00 GMT -> 02:00 BST. 01:59:30 never shows on a London clock; a switch
    # whose clock had not moved yet wrote it: 01:59:30 GMT. The call lasted 90 s.
    recs, quarantine = _load(tmp_path, [
        _asterisk_line("2026-03-29 01:59:30", "2026-03-29 01:59:35", "2026-03-29 03:01:00",
                       90, 85, 1),
    ])  # fmt: skip
    assert len(quarantine) == 0
    row = recs.iloc[0]
    assert row["start"] == utc("2026-03-29 01:59:30")
    assert row["end"] == utc("2026-03-29 02:01:00")
    assert row["start"] < row["end"] and row["duration_s"] == 90
    assert (row["end"] - row["start"]).total_seconds() == row["duration_s"]


def test_autumn_change_call_across_the_repeated_hour(tmp_path):
    # 25 October 2026: 02:00 BST -> 01:00 GMT; 01:00-02:00 happens twice. A call from 01:50 BST
    # to 01:10 GMT (20 minutes) reads end < start when both take the first pass.
    recs, quarantine = _load(tmp_path, [
        _asterisk_line("2026-10-25 01:50:00", "2026-10-25 01:50:10", "2026-10-25 01:10:00",
                       1200, 1190, 1),
        # one in the second pass only: 01:20 GMT to 01:30 GMT (10 minutes)
        _asterisk_line("2026-10-25 01:59:00", "2026-10-25 01:59:05", "2026-10-25 01:01:00",
                       120, 115, 2),
        # a normal call the same day, well after the change
        _asterisk_line("2026-10-25 14:00:00", "2026-10-25 14:00:05", "2026-10-25 14:01:00",
                       60, 55, 3),
    ])  # fmt: skip
    assert len(quarantine) == 0, quarantine["reason"].tolist()
    first, second, later = (recs.iloc[i] for i in range(3))
    assert first["start"] == utc("2026-10-25 00:50:00")  # 01:50 BST
    assert first["end"] == utc("2026-10-25 01:10:00")  # 01:10 GMT
    assert first["answer"] == utc("2026-10-25 00:50:10")
    assert (second["end"] - second["start"]).total_seconds() == 120
    assert later["start"] == utc("2026-10-25 14:00:00")
    for row in (first, second, later):
        assert (row["end"] - row["start"]).total_seconds() == row["duration_s"]
