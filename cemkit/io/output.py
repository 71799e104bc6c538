"""Former home of the run-directory writer; everything now lives in :mod:`cemkit.runs`.

Kept as names only, so that code written against ``cemkit.io.output`` keeps working.
"""

from __future__ import annotations

from cemkit.runs.store import (
    MANIFEST,
    QUARANTINE,
    RECORDS,
    Manifest,
    read_manifest,
    read_records,
    sha256_file,
    versions,
    write_run,
)
from cemkit.runs.store import RunWriter as RunDir
from cemkit.runs.store import write_part as write_frame

__all__ = ["MANIFEST", "QUARANTINE", "RECORDS", "Manifest", "RunDir", "read_manifest",
           "read_records", "sha256_file", "versions", "write_frame", "write_run"]  # fmt: skip
