"""Shared machinery of the line-oriented CSV formats (Asterisk, FreeSWITCH, CUCM, generic CSV).

A subclass says, per file, which fields to expect and how many header lines to skip
(:meth:`DelimitedLoader.layout`), and turns the text columns of a block into canonical columns
(:meth:`DelimitedLoader.convert`). Splitting, parsing, quarantining and record ids are done here.
"""

from __future__ import annotations

import abc
import codecs
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
import pyarrow as pa

from cemkit import config
from cemkit.errors import FormatError, InputError
from cemkit.io.base import Loader, Part, empty_quarantine, with_read_units
from cemkit.io.convert import Converter, quarantine_frame
from cemkit.io.csvblock import STRING, Quarantined, parse_block
from cemkit.io.textfile import (
    RawRange,
    TextFile,
    compression,
    file_tags,
    header_end,
    input_size,
    read_lines,
    split_lines,
)


@dataclass(frozen=True)
class Layout:
    """How one file is laid out: the expected fields and header lines to skip."""

    columns: tuple[str, ...]
    header_lines: int = 0
    delimiter: str = ","
    #: free-form facts a subclass wants back in :meth:`DelimitedLoader.convert`
    info: tuple[tuple[str, Any], ...] = ()
    #: columns pyarrow may convert while parsing (timestamps use ``timestamp_format``)
    types: tuple[tuple[str, pa.DataType], ...] = ()
    timestamp_format: str | None = None
    #: the type text columns are parsed as (``large_string``: no cast of them in the records)
    text: pa.DataType = STRING


class DelimitedLoader(Loader):
    """Base of loaders for delimited text, one record per line."""

    #: Options every delimited format accepts.
    common_options: ClassVar[dict[str, Any]] = {
        "blocksize": config.DEFAULT_BLOCKSIZE,
        "encoding": "utf-8",  # text encoding of the files (e.g. "latin-1", "cp1252")
    }

    def __init__(self, *, tz: str = "UTC", default_region: str | None = None, **options: Any):
        common = {k: options.pop(k) for k in list(options) if k in self.common_options}
        super().__init__(tz=tz, default_region=default_region, **options)
        self.opts.update({**self.common_options, **common})
        try:
            codecs.lookup(str(self.opts["encoding"]))
        except LookupError:
            raise FormatError(
                f"unknown text encoding {self.opts['encoding']!r}",
                hint="use a Python codec name such as latin-1 or cp1252",
            ) from None
        if int(self.opts["blocksize"]) < 1:
            raise FormatError("blocksize must be a positive number of bytes")
        self._files: dict[str, tuple[TextFile, Layout]] = {}

    # -- hooks ------------------------------------------------------------------------------
    @abc.abstractmethod
    def layout(self, path: str) -> Layout:
        """Expected fields and header lines of a file (may read its first lines)."""

    @abc.abstractmethod
    def convert(self, conv: Converter, layout: Layout) -> Mapping[str, object]:
        """Canonical columns (Arrow arrays or constants) from a block's text columns."""

    def record_source(self) -> str:
        """Source name written to ``source`` and used in record ids."""
        return self.name

    # -- Loader interface ---------------------------------------------------------------------
    def parts(self, paths: Sequence[str]) -> list[Part]:
        """Byte ranges of about ``blocksize`` bytes cut after line ends, with first line numbers."""
        tags = file_tags(paths)
        out: list[Part] = []
        blocksize = int(self.opts["blocksize"])
        for path in paths:
            size = input_size(path)
            layout = self.layout(path) if size else Layout(())
            start, found = header_end(path, layout.header_lines) if size else (0, 0)
            info = TextFile(path, tags[path], size, start, found + 1)
            self._files[path] = (info, layout)
            if size == 0 or found < layout.header_lines:
                out.append(Part(path, len(out), 0, size, 1))
                continue
            if size - start <= blocksize and compression(path) is None:
                # one part: nothing to count before it; the checksum is taken when asked
                out.append(Part(path, len(out), start, size, info.data_first_line))
                self.hash_on_demand.add(path)
                continue
            parts, digest = split_lines(info, blocksize, first_index=len(out))
            out.extend(parts)
            if digest is not None:
                self.digests[path] = digest
        return out

    def read_part(self, part: Part) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Parse one byte range into canonical records and quarantined rows.

        The part's bytes are read once (:meth:`read_raw`); their line count goes to the parser
        and, as the part's read units, to the quarantine frame (:func:`with_read_units`).
        """
        info, layout = self._file(part.path)
        if info.size == 0 or part.start < info.data_start:
            return self.meta(), self._unparsable(part, info, layout)
        raw = self.read_raw(part)
        data, lines = self.transcode(raw)
        at_eof = part.stop < 0 or part.stop >= info.size
        block = parse_block(data, list(layout.columns), part.first_line,
                            delimiter=layout.delimiter, at_eof=at_eof, types=dict(layout.types),
                            timestamp_format=layout.timestamp_format, lines=lines,
                            text=layout.text)  # fmt: skip
        units = self.line_units(part, info, raw.lines)
        if block.table.num_rows == 0:
            empty = quarantine_frame(part.path, block.quarantine)
            return self.meta(), with_read_units(empty, units)
        conv = Converter(block, part.path, info.tag, self.record_source())
        records, quarantine = self.finish_block(conv, self.convert(conv, layout))
        return records, with_read_units(quarantine, units)

    def _unparsable(self, part: Part, info: TextFile, layout: Layout) -> pd.DataFrame:
        """The quarantine of a file that cannot be parsed at all: empty, or its header cut short."""
        q = Quarantined()
        if info.size == 0:
            q.add(0, "", "empty file: no lines at all", "")
            whole = 0
        else:  # the header itself was cut short: the file is that short header
            raw = self.read_raw(Part(part.path, part.index, 0, info.size, 1))
            head = raw.data.decode("utf-8", "replace")[:1000]
            q.add(1, "", f"truncated header: expected {layout.header_lines} header line(s)", head)
            whole = raw.lines
        units = {"lines": whole, "header_lines": whole, "data_lines": 0, "file_problems": 1}
        return with_read_units(quarantine_frame(part.path, q), units)

    @staticmethod
    def line_units(part: Part, info: TextFile, lines: int) -> dict[str, int]:
        """Read units of a part of ``lines`` physical lines (the first part holds the header)."""
        header = info.data_first_line - 1 if part.start == info.data_start else 0
        return {"lines": header + lines, "header_lines": header, "data_lines": lines,
                "file_problems": 0}  # fmt: skip

    #: Lines of a file are its header lines and its data lines; every data line is one row read
    #: (a record, a quarantined row or a row attached to records: no value spans lines), and a
    #: file that cannot be parsed at all (empty, header cut short) is one quarantined row.
    unit_identities: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = (
        ("lines", ("header_lines", "data_lines")),
        ("rows_read", ("data_lines", "file_problems")),
    )

    def read_units(self, part: Part, records: pd.DataFrame, quarantine: pd.DataFrame
                   ) -> dict[str, int]:  # fmt: skip
        """Physical lines of the part, counted in its bytes apart from the parser.

        :meth:`read_part` counted them in the bytes it read (:meth:`read_raw`) and attached
        them to its quarantine frame. Only a frame that lost them (not one :meth:`read_part`
        returned) has the part's bytes read again, by the same step.
        """
        units = super().read_units(part, records, quarantine)
        mapping = getattr(self, "mapping", None)
        if units or getattr(mapping, "input", "csv") not in ("csv", "jsonl"):
            return units  # Parquet row groups: no lines
        if getattr(mapping, "input", "csv") == "jsonl":
            lines = self.read_raw(part).lines
            return {"lines": lines, "header_lines": 0, "data_lines": lines, "file_problems": 0}
        info, layout = self._file(part.path)
        if info.size == 0 or part.start < info.data_start:
            return super().read_units(part, records, self._unparsable(part, info, layout))
        return self.line_units(part, info, self.read_raw(part).lines)

    def finish_block(self, conv: Converter, cols: Mapping[str, object]
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
        """Records and quarantine of a converted block (measurement loaders change the schema)."""
        return conv.finish(cols, self.extension_columns(), default_region=self.default_region)

    def read_raw(self, part: Part) -> RawRange:
        """The part's bytes as read and their lines: the one read of a part (:func:`read_lines`)."""
        try:
            return read_lines(part.path, part.start, part.stop, part.newlines)
        except OSError as exc:
            raise InputError(f"input file {part.path!r} cannot be read: {exc.strerror}") from None

    def transcode(self, raw: RawRange) -> tuple[bytes, int | None]:
        """The bytes as UTF-8, and their line count when it is still ``raw``'s (else ``None``).

        Transcoded line by line from ``encoding`` when one is declared (the parser then counts
        the lines of the transcoded bytes). A line that does not decode in the declared
        encoding is passed on unchanged, so the parser quarantines it as undecodable instead of
        losing its line number.
        """
        data = raw.data
        enc = str(self.opts["encoding"]).lower().replace("_", "-")
        if enc in ("utf-8", "utf8"):
            return data, raw.lines
        try:
            return data.decode(enc).encode("utf-8"), None
        except UnicodeDecodeError:
            out = []
            for line in data.split(b"\n"):
                try:
                    out.append(line.decode(enc).encode("utf-8"))
                except UnicodeDecodeError:
                    out.append(line)
            return b"\n".join(out), None

    def _file(self, path: str) -> tuple[TextFile, Layout]:
        if path not in self._files:  # a part read without parts() in this process
            self.parts([path])
        return self._files[path]


def empty_result(loader: Loader) -> tuple[pd.DataFrame, pd.DataFrame]:
    """No records, no quarantine."""
    return loader.meta(), empty_quarantine()
