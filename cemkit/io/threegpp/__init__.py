"""Loader ``3gpp-cdr``: 3GPP charging records (ASN.1 BER per TS 32.298, files per TS 32.297).

Reads MSC voice and SMS records (``moCallRecord``, ``mtCallRecord``, ``moSMSRecord``,
``mtSMSRecord``) and packet-core data records (``sgsnPDPRecord``, ``sGWRecord``,
``pGWRecord``, and the G-CDR / eG-CDR ``ggsnPDPRecord`` / ``egsnPDPRecord`` of releases before
8, fast decoder only), in files with or without the TS 32.297 file header and CDR headers (detected;
filler octets 0x00/0xFF between records are skipped; definite and indefinite BER lengths).
See :mod:`cemkit.io.threegpp.mapping` for how each record becomes a canonical record.

Two decoders give the same records: the default jitted TLV walk over the components cemkit maps
(:mod:`cemkit.io.threegpp._kernels`; vendor tags are skipped and listed in
``src_3gpp_unknown_tags``), and pycrate (``engine=library``), with the TS 32.298 module it ships
or with an operator's module (``schema=vendor.asn``: components only it defines are kept as
JSON in ``src_3gpp_vendor_fields``). A record that cannot be decoded is quarantined with the
file, its byte offset (in ``line``) and the reason, and decoding goes on at the next record;
rows read = records loaded + quarantined. Record types cemkit does not map (location updates,
SS actions, ...) are quarantined with their name.

Options
-------
headers : str
    ``auto`` (default), ``none``, ``file`` (TS 32.297 file header), ``cdr`` (CDR headers only)
    or ``file+cdr``.
engine : str
    ``fast`` (default) or ``library`` (pycrate, record by record).
schema : str, optional
    Path of the operator's ASN.1 module (comma-separated paths for several files); implies
    ``engine=library``.

Examples
--------
>>> from cemkit.io.base import registry
>>> loader = registry.get("3gpp-cdr")(default_region="GB")
>>> loader.name, loader.opts["headers"]
('3gpp-cdr', 'auto')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from cemkit.errors import FormatError, InputError
from cemkit.io.base import Loader, Part, registry, with_read_units
from cemkit.io.threegpp.decode import HEADERS, LibraryDecoder, fast_fields, frame, library_fields
from cemkit.io.threegpp.mapping import EXTENSIONS, to_frames
from cemkit.schema import Column

ENGINES = ("fast", "library")


@registry.register
class ThreeGppCdrLoader(Loader):
    """3GPP TS 32.298 charging records (BER; TS 32.297 files) → voice, SMS and data CDRs."""

    name: ClassVar[str] = "3gpp-cdr"
    description: ClassVar[str] = (
        "3GPP TS 32.298 charging records (ASN.1 BER, TS 32.297 files): MSC voice and SMS, "
        "SGSN/SGW/PGW data sessions"
    )
    extensions: ClassVar[tuple[Column, ...]] = EXTENSIONS
    options: ClassVar[dict[str, Any]] = {"headers": "auto", "engine": "fast", "schema": None}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.opts["headers"] not in HEADERS:
            raise FormatError(f"option 'headers' must be one of {', '.join(HEADERS)}, "
                              f"found {self.opts['headers']!r}")  # fmt: skip
        if self.opts["engine"] not in ENGINES:
            raise FormatError(f"option 'engine' must be one of {', '.join(ENGINES)}, "
                              f"found {self.opts['engine']!r}")  # fmt: skip
        schema = self.opts["schema"]
        self.schema_paths: tuple[str, ...] = ()
        if schema:
            paths = schema if isinstance(schema, list | tuple) else str(schema).split(",")
            self.schema_paths = tuple(os.path.abspath(p.strip()) for p in paths if p.strip())
            for p in self.schema_paths:
                if not os.path.isfile(p):
                    raise FormatError(
                        f"ASN.1 schema {p} does not exist",
                        hint="-o schema=PATH names the operator's .asn file",
                    )
            self.opts["engine"] = "library"
        self._decoder: LibraryDecoder | None = None

    def parts(self, paths: Sequence[str]) -> list[Part]:
        """One part per file (records are delimited by walking the file)."""
        out: list[Part] = []
        for path in paths:
            if not os.path.isfile(path):
                raise InputError(f"cannot read CDR file {path}: no such file",
                                 hint="check the path")  # fmt: skip
            out.append(Part(path, index=len(out)))
        return out

    unit_identities: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = (
        ("ber_records", ("rows_read",)),
    )

    def read_part(self, part: Part) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Decode one file: its records and the quarantine of those that could not be read."""
        try:
            with open(part.path, "rb") as fh:
                buf = np.frombuffer(fh.read(), dtype=np.uint8)
        except OSError as exc:
            raise InputError(f"cannot read CDR file {part.path}: {exc.strerror}") from None
        try:
            frames = frame(buf, self.opts["headers"])
        except InputError as exc:
            raise InputError(f"{part.path}: {exc.message}", hint=exc.hint) from None
        if self.opts["engine"] == "fast":
            table = fast_fields(buf, frames)
        else:
            if self._decoder is None:
                self._decoder = LibraryDecoder(self.schema_paths)
            table = library_fields(buf, frames, self._decoder)
        records, quarantine = to_frames(table, part.path, self.default_region)
        # one BER record framed in the file is one row read: a record or a quarantined one
        return records, with_read_units(quarantine, {"ber_records": len(frames)})

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_decoder"] = None  # compiled modules stay in their process
        return state
