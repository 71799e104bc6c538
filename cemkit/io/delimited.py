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
from cemkit.io.base import Loader, Part, empty_quarantine
from cemkit.io.convert import Converter, quarantine_frame
from cemkit.io.csvblock import Quarantined, parse_block
from cemkit.io.textfile import (
    TextFile,
    file_tags,
    header_end,
    input_size,
    read_range,
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
            parts, digest = split_lines(info, blocksize, first_index=len(out))
            out.extend(parts)
            if digest is not None:
                self.digests[path] = digest
        return out

    def read_part(self, part: Part) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Parse one byte range into canonical records and quarantined rows."""
        info, layout = self._file(part.path)
        if info.size == 0:
            q = Quarantined()
            q.add(0, "", "empty file: no lines at all", "")
            return self.meta(), quarantine_frame(part.path, q)
        if part.start < info.data_start:  # the header itself was cut short
            q = Quarantined()
            head = read_range(part.path, 0, info.size).decode("utf-8", "replace")[:1000]
            q.add(1, "", f"truncated header: expected {layout.header_lines} header line(s)", head)
            return self.meta(), quarantine_frame(part.path, q)
        data = self.read_bytes(part)
        at_eof = part.stop < 0 or part.stop >= info.size
        block = parse_block(data, list(layout.columns), part.first_line,
                            delimiter=layout.delimiter, at_eof=at_eof, types=dict(layout.types),
                            timestamp_format=layout.timestamp_format)  # fmt: skip
        if block.table.num_rows == 0:
            return self.meta(), quarantine_frame(part.path, block.quarantine)
        conv = Converter(block, part.path, info.tag, self.record_source())
        return self.finish_block(conv, self.convert(conv, layout))

    #: Lines of a file are its header lines and its data lines; every data line is one row read
    #: (a record, a quarantined row or a row attached to records: no value spans lines), and a
    #: file that cannot be parsed at all (empty, header cut short) is one quarantined row.
    unit_identities: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = (
        ("lines", ("header_lines", "data_lines")),
        ("rows_read", ("data_lines", "file_problems")),
    )

    def read_units(self, part: Part, records: pd.DataFrame, quarantine: pd.DataFrame
                   ) -> dict[str, int]:  # fmt: skip
        """Physical lines of the part (counted in its bytes, apart from the parser)."""
        mapping = getattr(self, "mapping", None)
        text_input = getattr(mapping, "input", "csv")
        if text_input not in ("csv", "jsonl"):
            return {}  # Parquet row groups: no lines
        if text_input == "jsonl":
            lines = count_lines(read_range(part.path, part.start, part.stop))
            return {"lines": lines, "header_lines": 0, "data_lines": lines, "file_problems": 0}
        info, _ = self._file(part.path)
        if info.size == 0 or part.start < info.data_start:  # empty, or the header cut short
            whole = count_lines(read_range(part.path, 0, info.size)) if info.size else 0
            return {"lines": whole, "header_lines": whole, "data_lines": 0, "file_problems": 1}
        data = count_lines(read_range(part.path, part.start, part.stop))
        header = info.data_first_line - 1 if part.start == info.data_start else 0
        return {"lines": header + data, "header_lines": header, "data_lines": data,
                "file_problems": 0}  # fmt: skip

    def finish_block(self, conv: Converter, cols: Mapping[str, object]
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
        """Records and quarantine of a converted block (measurement loaders change the schema)."""
        return conv.finish(cols, self.extension_columns(), default_region=self.default_region)

    def read_bytes(self, part: Part) -> bytes:
        """The part's bytes as UTF-8 (transcoded line by line from ``encoding`` when declared).

        A line that does not decode in the declared encoding is passed on unchanged, so the
        parser quarantines it as undecodable instead of losing its line number.
        """
        try:
            data = read_range(part.path, part.start, part.stop)
        except OSError as exc:
            raise InputError(f"input file {part.path!r} cannot be read: {exc.strerror}") from None
        enc = str(self.opts["encoding"]).lower().replace("_", "-")
        if enc in ("utf-8", "utf8"):
            return data
        try:
            return data.decode(enc).encode("utf-8")
        except UnicodeDecodeError:
            out = []
            for line in data.split(b"\n"):
                try:
                    out.append(line.decode(enc).encode("utf-8"))
                except UnicodeDecodeError:
                    out.append(line)
            return b"\n".join(out)

    def _file(self, path: str) -> tuple[TextFile, Layout]:
        if path not in self._files:  # a part read without parts() in this process
            self.parts([path])
        return self._files[path]


def count_lines(data: bytes) -> int:
    """Lines in a byte range cut after line ends (a last line without its newline counts)."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def empty_result(loader: Loader) -> tuple[pd.DataFrame, pd.DataFrame]:
    """No records, no quarantine."""
    return loader.meta(), empty_quarantine()
