"""Rotated input files for the warehouse tests, generated with cemkit.synth."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pandas as pd

from cemkit import synth

KEY = "5e" * 32
TZ = "Europe/London"
REGION = "GB"
START = pd.Timestamp("2026-03-02T00:00:00Z")


def rotated_files(out: Path, n: int, *, records: int = 300, fmt: str = "asterisk") -> list[Path]:
    """``n`` rotated files of one writer, file ``i`` covering day ``i`` (self-contained calls).

    Each file is its own synthetic day (seed ``100 + i``): a rotated file is a time slice of
    one switch, so no call crosses two files. Returns the files; ``out/model.yaml`` is the
    service model.
    """
    files = []
    for i in range(n):
        world = out / "worlds" / f"w{i:02d}"
        day = (START + pd.Timedelta(days=i)).isoformat()
        synth.generate(world, records=records, seed=100 + i, days=1, incidents=0, workers=1,
                       start=day, formats=fmt != "parquet")  # fmt: skip
        target = out / "rotated" / f"Master-{i:02d}.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            target = target.with_suffix(".parquet")
            shutil.copy(next((world / "records").glob("*.parquet")), target)
        else:
            shutil.copy(world / "formats" / fmt / "Master.csv", target)
        files.append(target)
    synth.write_service_model(out / "model.yaml")
    return files


def gzip_copy(src: Path, dst: Path) -> Path:
    """``dst``: the gzip-compressed content of ``src``."""
    with open(src, "rb") as fin, gzip.open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    return dst
