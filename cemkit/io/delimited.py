"""Shared machinery of the line-oriented CSV formats (Asterisk, FreeSWITCH, CUCM, generic CSV).

A subclass says, per file, which fields to expect and how many header lines to skip
(:meth:`DelimitedLoader.layout`), and turns the text columns of a block into canonical columns
(:meth:`DelimitedLoader.convert`). Splitting, parsing, quarantining and record ids are done here.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from cemkit import config
from cemkit.errors import InputError
from cemkit.io.base import Loader, Part, empty_quarantine
from cemkit.io.convert import Converter, quarantine_frame
from cemkit.io.csvblock import Quarantined, parse_block
from cemkit.io.textfile import (
    TextFile,
    check_readable,
    file_tags,
    header_end,
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


class DelimitedLoader(Loader):
    """Base of loaders for delimited text, one record per line."""

    #: Options every delimited format accepts.
    common_options: ClassVar[dict[str, Any]] = {"blocksize": config.DEFAULT_BLOCKSIZE}

    def __init__(self, *, tz: str = "UTC", default_region: str | None = None, **options: Any):
        common = {k: options.pop(k) for k in list(options) if k in self.common_options}
        super().__init__(tz=tz, default_region=default_region, **options)
        self.opts.update({**self.common_options, **common})
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
            size = check_readable(path)
            layout = self.layout(path) if size else Layout(())
            start, found = header_end(path, layout.header_lines) if size else (0, 0)
            info = TextFile(path, tags[path], size, start, found + 1)
            self._files[path] = (info, layout)
            if size == 0 or found < layout.header_lines:
                out.append(Part(path, len(out), 0, size, 1))
                continue
            out.extend(split_lines(info, blocksize, first_index=len(out)))
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
        try:
            data = read_range(part.path, part.start, part.stop)
        except OSError as exc:
            raise InputError(f"input file {part.path!r} cannot be read: {exc.strerror}") from None
        at_eof = part.stop < 0 or part.stop >= info.size
        block = parse_block(data, list(layout.columns), part.first_line,
                            delimiter=layout.delimiter, at_eof=at_eof)  # fmt: skip
        if block.table.num_rows == 0:
            return self.meta(), quarantine_frame(part.path, block.quarantine)
        conv = Converter(block, part.path, info.tag, self.record_source())
        cols = self.convert(conv, layout)
        records, quarantine = conv.finish(
            cols, self.extension_columns(), default_region=self.default_region
        )
        return records, quarantine

    def _file(self, path: str) -> tuple[TextFile, Layout]:
        if path not in self._files:  # a part read without parts() in this process
            self.parts([path])
        return self._files[path]


def empty_result(loader: Loader) -> tuple[pd.DataFrame, pd.DataFrame]:
    """No records, no quarantine."""
    return loader.meta(), empty_quarantine()
