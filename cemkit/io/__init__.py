"""Loaders: every source format behind one registry, plus the run writer.

Formats (``registry.names()``): ``asterisk`` (cdr_csv, 16/17/18/21 columns), ``freeswitch``
(mod_cdr_csv templates), ``cucm`` (CDR + CMR flat files, MOS attached to CDRs), ``generic``
(CSV/Parquet with a YAML mapping, see :mod:`cemkit.io.mapping`), ``parquet`` (canonical),
``sip-pcap`` (SIP captures) and ``3gpp-cdr`` (TS 32.298 BER charging records, see
:mod:`cemkit.io.threegpp`); device agents, which write measurement records
(:mod:`cemkit.schema_measurements`): ``gnettrack`` (G-NetTrack Pro logs) and ``agent`` (CSV /
JSON lines with a YAML mapping).

How a text file is read (:mod:`cemkit.io.textfile`, :mod:`cemkit.io.csvblock`): it is cut into
byte ranges at line ends with exact first line numbers; each range is one Dask partition parsed
by pyarrow (one thread per partition); lines pyarrow cannot account for are isolated by halving
and quarantined one by one with file, line, field, reason and the raw line. Every line read ends
up loaded or quarantined.

Entry points: :func:`load` (``cemkit.load``) and :func:`load_quarantine` build lazy Dask frames;
:func:`cemkit.io.run.load_to_dir` (``cemkit load``) writes records, quarantine and a manifest in
one parallel pass; :mod:`cemkit.io.output` holds the atomic run-directory writer
(:func:`write_run`, :class:`~cemkit.io.output.RunDir`) and :func:`read_records` for every stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cemkit import _lazy

if TYPE_CHECKING:
    from cemkit.io.api import expand_paths, load, load_quarantine, plan
    from cemkit.io.base import Loader, Part, registry
    from cemkit.io.output import read_records, write_run

# the format modules register with ``registry`` on its first look-up (cemkit.io.base)
_lazy.exports(
    __name__,
    {
        "Loader": "cemkit.io.base",
        "Part": "cemkit.io.base",
        "registry": "cemkit.io.base",
        "expand_paths": "cemkit.io.api",
        "load": "cemkit.io.api",
        "load_quarantine": "cemkit.io.api",
        "plan": "cemkit.io.api",
        "read_records": "cemkit.io.output",
        "write_run": "cemkit.io.output",
    },
)

__all__ = [
    "Loader",
    "Part",
    "expand_paths",
    "load",
    "load_quarantine",
    "plan",
    "read_records",
    "registry",
    "write_run",
]
