"""The ``generic`` format: CSV or Parquet driven by a YAML column mapping.

Examples
--------
>>> import cemkit
>>> calls = cemkit.load("copenhagen/calls.csv", format="generic",
...                     mapping="copenhagen-calls")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cemkit.errors import InputError
from cemkit.io.base import Part, empty_quarantine, registry
from cemkit.io.convert import Converter
from cemkit.io.csvblock import Block, Quarantined
from cemkit.io.delimited import DelimitedLoader, Layout
from cemkit.io.mapping import FieldSpec, load_mapping
from cemkit.io.textfile import check_readable, file_tags, open_input
from cemkit.schema import BY_NAME, TS, Column, extension_field

_NON_NEGATIVE = {"duration_s", "billsec_s", "pdd_ms", "mos", "loss_ratio", "jitter_ms"}


class _TableBlock(Block):
    """Rows of a Parquet row group presented like parsed CSV lines (raw = the row as JSON)."""

    typed: pa.Table

    def raw_lines(self, line_numbers: np.ndarray) -> list[str]:
        """Rows rendered as JSON objects."""
        idx = pa.array(np.asarray(line_numbers, dtype=np.int64) - self.first_line)
        rows = self.typed.take(idx).to_pylist()
        return [json.dumps(r, default=str, sort_keys=True) for r in rows]


@registry.register
class GenericLoader(DelimitedLoader):
    """CSV or Parquet with a YAML column mapping."""

    name = "generic"
    description = "CSV or Parquet with a YAML column mapping (e.g. mapping='copenhagen-calls')"
    options: ClassVar[dict[str, Any]] = {"mapping": None, "node": None}

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        if self.opts["mapping"] is None:
            from cemkit.errors import FormatError
            from cemkit.io.mapping import mapping_names

            raise FormatError("format 'generic' needs mapping=<YAML file or shipped name>",
                              hint=f"shipped mappings: {', '.join(mapping_names())}")  # fmt: skip
        self.mapping = load_mapping(self.opts["mapping"])
        self.opts["mapping"] = self.mapping.model_dump(mode="json")
        self._ext = tuple(
            extension_field(f"src_{k.name or k.column}", pa.string(), k.pii, k.meaning)
            for k in self.mapping.keep
        )

    def extension_columns(self) -> tuple[Column, ...]:
        """``src_<name>`` for each ``keep`` entry of the mapping."""
        return self._ext

    def record_source(self) -> str:
        """The mapping's ``source`` (used in record ids)."""
        return self.mapping.source

    def _needed(self) -> set[str]:
        cols = {s.column for s in self.mapping.fields.values() if s.column is not None}
        return cols | {k.column for k in self.mapping.keep}

    def _check_columns(self, path: str, names: Sequence[str]) -> None:
        missing = sorted(self._needed() - set(names))
        if missing:
            raise InputError(
                f"input file {path!r} lacks the column(s) {missing} that the mapping names",
                hint=f"its columns are {list(names)[:30]}",
            )

    # -- CSV ------------------------------------------------------------------------------------
    def layout(self, path: str) -> Layout:
        """Header names (or the mapping's ``csv.columns``)."""
        spec = self.mapping.csv
        if spec.header:
            with open_input(path) as fh:
                first = fh.readline().decode("utf-8", errors="replace").strip("\r\n")
            try:
                names = [c.strip() for c in next(csv.reader([first], delimiter=spec.delimiter))]
            except (csv.Error, StopIteration):
                names = []
        else:
            names = list(spec.columns or [])
        self._check_columns(path, names)
        return Layout(tuple(names), header_lines=1 if spec.header else 0,
                      delimiter=spec.delimiter)  # fmt: skip

    # -- Parquet --------------------------------------------------------------------------------
    def parts(self, paths: Sequence[str]) -> list[Part]:
        """Byte ranges of CSV files, or row groups of Parquet files."""
        if self.mapping.input == "csv":
            return super().parts(paths)
        tags = file_tags(paths)
        self._tags = tags
        out: list[Part] = []
        for path in paths:
            check_readable(path)
            try:
                meta = pq.ParquetFile(path).metadata
            except (pa.ArrowInvalid, OSError) as exc:
                raise InputError(f"input file {path!r} is not readable Parquet: {exc}") from None
            self._check_columns(path, meta.schema.to_arrow_schema().names)
            first = 1
            for g in range(meta.num_row_groups):
                out.append(Part(path, len(out), g, g + 1, first))
                first += meta.row_group(g).num_rows
            if meta.num_row_groups == 0:
                out.append(Part(path, len(out), 0, 0, 1))
        return out

    def read_part(self, part: Part) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Parse a CSV range, or read a Parquet row group."""
        if self.mapping.input == "csv":
            return super().read_part(part)
        tags = getattr(self, "_tags", None) or file_tags([part.path])
        if part.stop <= part.start:
            return self.meta(), empty_quarantine()
        typed = pq.ParquetFile(part.path).read_row_group(part.start, columns=sorted(self._needed()))
        text = pa.table({n: _as_text(typed.column(n)) for n in typed.column_names})
        n = typed.num_rows
        block = _TableBlock(text, np.arange(part.first_line, part.first_line + n, dtype=np.int64),
                            Quarantined(), b"", part.first_line)  # fmt: skip
        block.typed = typed
        conv = Converter(block, part.path, tags.get(part.path, part.path), self.mapping.source)
        cols = self.convert(conv, Layout(tuple(text.column_names)))
        return conv.finish(cols, self._ext, default_region=self.default_region)

    # -- conversion -----------------------------------------------------------------------------
    def convert(self, conv: Converter, layout: Layout) -> Mapping[str, object]:
        """Each mapped field through its spec."""
        cols: dict[str, object] = {"source": self.mapping.source}
        for name, spec in self.mapping.fields.items():
            cols[name] = self._field(conv, name, spec)
        start, duration = cols.get("start"), cols.get("duration_s")
        if "end" not in cols and isinstance(start, pa.Array) and isinstance(duration, pa.Array):
            # Sources that give a start and a duration imply the release time.
            nanos = pc.cast(pc.round(pc.multiply(duration, 1e9)), pa.int64())
            cols["end"] = pc.cast(pc.add(pc.cast(start, pa.int64()), nanos), TS)
        if "node" not in cols and self.opts["node"] is not None:
            cols["node"] = self.opts["node"]
        for k in self.mapping.keep:
            cols[f"src_{k.name or k.column}"] = conv.text(k.column)
        if "start" in cols:
            start = cols["start"]
            if isinstance(start, pa.Array):
                conv.flag(pc.is_null(start).to_numpy(zero_copy_only=False), "start",
                          "start time is empty")  # fmt: skip
        return cols

    def _field(self, conv: Converter, name: str, spec: FieldSpec) -> object:
        if spec.value is not None:
            return spec.value
        col = str(spec.column)
        target = BY_NAME[name].type
        arr = conv.text(col)
        if spec.null_if:
            arr = pc.if_else(pc.is_in(arr, pa.array(spec.null_if, pa.string())),
                             pa.scalar(None, pa.string()), arr)  # fmt: skip
        if spec.map is not None:
            out_type = pa.string() if pa.types.is_string(target) else pa.float64()
            arr = conv.lookup(arr, {str(k): v for k, v in spec.map.items()}, out_type,
                              field=col, strict=spec.strict, default=spec.default,
                              normalize_case=False)  # fmt: skip
            if not pa.types.is_string(out_type):
                arr = pc.cast(arr, pa.string())
        if pa.types.is_timestamp(target):
            return self._time(conv, col, spec, arr)
        if pa.types.is_floating(target):
            return conv.number(col, arr=arr, allow_negative=name not in _NON_NEGATIVE, field=col)
        if pa.types.is_integer(target):
            num = conv.number(col, arr=arr, allow_negative=True, field=col)
            return _to_int(conv, num, target, col)
        return arr

    def _time(self, conv: Converter, col: str, spec: FieldSpec, arr: pa.Array) -> pa.Array:
        if spec.time == "timestamp" and isinstance(conv.block, _TableBlock):
            typed = conv.block.typed.column(col)
            if pa.types.is_timestamp(typed.type):
                t = typed if typed.type.tz else pc.assume_timezone(typed, spec.tz or self.tz)
                return pc.cast(t, TS)
        if spec.time in (None, "text", "timestamp"):
            parsed = pc.strptime(arr, format=spec.format, unit="s", error_is_null=True)
            conv._flag_failed(arr, parsed, col, f"time not in the format {spec.format!r}")
            tz = spec.tz or self.tz
            if tz.upper() != "UTC":
                parsed = pc.assume_timezone(parsed, timezone=tz, ambiguous="earliest",
                                            nonexistent="earliest")  # fmt: skip
            return pc.cast(parsed, TS)
        scale = {"epoch_s": 1e9, "epoch_ms": 1e6, "epoch_us": 1e3}[spec.time]
        num = conv.number(col, arr=arr, allow_negative=True, field=col)
        origin = 0
        if spec.origin:
            o = dt.datetime.fromisoformat(spec.origin)
            if o.tzinfo is None:
                o = o.replace(tzinfo=dt.UTC)
            origin = round(o.timestamp()) * 10**9
        ns = pc.add(pc.cast(pc.round(pc.multiply(num, scale)), pa.int64()), origin)
        return pc.cast(pc.cast(ns, pa.timestamp("ns")), TS)


def _to_int(conv: Converter, num: pa.Array, target: pa.DataType, field: str) -> pa.Array:
    info = np.iinfo(target.to_pandas_dtype())
    ok = pc.fill_null(pc.and_(pc.equal(pc.floor(num), num),
                              pc.and_(pc.greater_equal(num, float(info.min)),
                                      pc.less_equal(num, float(info.max)))), True)  # fmt: skip
    bad = ~ok.to_numpy(zero_copy_only=False)
    if bad.any():
        conv.flag(bad, field, f"not an integer that fits {target}")
        num = pc.if_else(ok, num, pa.scalar(None, pa.float64()))
    return pc.cast(num, target)


def _as_text(col: pa.ChunkedArray) -> pa.Array:
    arr = col.combine_chunks()
    if pa.types.is_string(arr.type):
        return pc.fill_null(arr, "")
    if pa.types.is_large_string(arr.type):
        return pc.fill_null(pc.cast(arr, pa.string()), "")
    try:
        return pc.fill_null(pc.cast(arr, pa.string()), "")
    except pa.ArrowNotImplementedError:
        return pa.array(["" if v is None else str(v) for v in arr.to_pylist()], pa.string())
