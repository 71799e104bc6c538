"""The runner: the one writer and reader of run directories, and the stages it runs.

It is the only code that creates run directories, writes parts, manifests and checksums, reads
runs back and reconciles counts.

* :mod:`cemkit.runs.store` — the run directory: atomic writer, manifest, part files, the one
  record reader, the append-only reveal log;
* :mod:`cemkit.runs.stages` — a :class:`Stage` is a partition → partition function with the
  grouping its rows need; :func:`apply` runs a list on one pandas batch or on Dask (consecutive
  stages with the same grouping share one shuffle);
* :mod:`cemkit.runs.runner` — :func:`execute`: sources (one or more formats) or a run directory
  → stages → a run directory;
* :mod:`cemkit.runs.library` — cemkit's stages (protect, correlate, KQIs) from the domain
  packages' pure functions.
"""

from __future__ import annotations

from cemkit.runs.runner import (
    Outcome,
    Sink,
    Source,
    check_before_protect,
    execute,
    parse_source,
    read_sources_file,
)
from cemkit.runs.stages import Grouping, Stage, apply, is_dask
from cemkit.runs.store import (
    MANIFEST,
    QUARANTINE,
    RECORDS,
    Manifest,
    RunWriter,
    append_reveal,
    atomic_directory,
    atomic_file,
    atomic_write_text,
    read_manifest,
    read_records,
    read_reveal_log,
    run_root,
    sha256_file,
    write_part,
    write_run,
)

__all__ = [
    "MANIFEST",
    "QUARANTINE",
    "RECORDS",
    "Grouping",
    "Manifest",
    "Outcome",
    "RunWriter",
    "Sink",
    "Source",
    "Stage",
    "append_reveal",
    "apply",
    "atomic_directory",
    "atomic_file",
    "atomic_write_text",
    "check_before_protect",
    "execute",
    "is_dask",
    "parse_source",
    "read_manifest",
    "read_records",
    "read_reveal_log",
    "read_sources_file",
    "run_root",
    "sha256_file",
    "write_part",
    "write_run",
]
