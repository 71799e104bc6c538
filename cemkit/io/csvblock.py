"""Parse a block of CSV lines with pyarrow, and isolate the lines it cannot read.

The fast path hands the whole block to ``pyarrow.csv`` (one thread: Dask runs blocks in
parallel) with every column read as text, and collects rows of the wrong width through
``invalid_row_handler``. A sentinel line is appended to the block so that a quote left open on
the last line shows up as a swallowed sentinel, exactly as it would in the middle of a block.

When anything else goes wrong (bad UTF-8, a quote that swallows line ends, a row count that does
not match the line count), the block is cut in halves and each half parsed again, down to single
lines, which are then quarantined with the reason. Every line is therefore judged by the same
parser whatever the block boundaries are, which keeps results independent of partitioning, and
line numbers stay exact because one line is one row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from numba import njit

from cemkit import config

_jit = njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL)

#: Below this many lines a troubled range is examined line by line instead of halved again.
_SINGLE_LINES = 16
#: pyarrow's parse block: a part's clean range is parsed in blocks of this size on all cores.
_PARSE_BLOCK = 1 << 22
#: Whether clean ranges are parsed on pyarrow's thread pool (the sync scheduler, the
#: one-machine default, reads one part at a time; the results are the same either way).
_THREADS = True
#: The timestamp layout every CDR format here writes: read as text, then converted by
#: :func:`fixed_times` (pyarrow's ISO-8601 cast behind a strict shape check), ~10x faster than
#: the parser's ``strptime`` and giving the same instants.
FIXED_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: The type text columns are parsed as unless a caller asks for ``large_string``.
STRING = pa.string()
#: ``FIXED_TIME_FORMAT``'s bytes: 0 for a digit, else the byte itself.
_SHAPE = np.array([0 if c == "d" else ord(c) for c in "dddd-dd-dd dd:dd:dd"], np.uint8)


@dataclass
class Quarantined:
    """Rows set aside while reading a block (line numbers are 1-based, file-wide)."""

    lines: list[int] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)

    def add(self, line: int, field_name: str, reason: str, raw: str) -> None:
        """Record one row."""
        self.lines.append(line)
        self.fields.append(field_name)
        self.reasons.append(reason)
        self.raws.append(raw)

    def extend(self, other: Quarantined) -> None:
        """Append another set of rows."""
        self.lines += other.lines
        self.fields += other.fields
        self.reasons += other.reasons
        self.raws += other.raws

    def __len__(self) -> int:
        return len(self.lines)


@dataclass
class Block:
    """Good rows of a block as text columns, their line numbers, and the rows set aside."""

    table: pa.Table
    lines: np.ndarray
    quarantine: Quarantined
    data: bytes
    first_line: int
    _offsets: np.ndarray | None = None

    def raw_lines(self, line_numbers: np.ndarray) -> list[str]:
        """The raw text of some lines of the block (for quarantine records)."""
        if self._offsets is None:
            self._offsets = _line_starts(self.data)
        out = []
        for ln in line_numbers:
            i = int(ln) - self.first_line
            a, b = int(self._offsets[i]), int(self._offsets[i + 1])
            out.append(_decode(self.data[a:b]))
        return out


def _line_starts(data: bytes) -> np.ndarray:
    """Start offset of each line, plus the end of data."""
    nl = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10) + 1
    starts = np.concatenate([[0], nl])
    if len(data) and data[-1:] != b"\n":
        starts = np.concatenate([starts, [len(data)]])
    return starts.astype(np.int64)


def _decode(raw: bytes) -> str:
    return raw.rstrip(b"\r\n").decode("utf-8", errors="replace")


class _Trouble(Exception):
    """The fast path cannot account for every line of a range."""


def parse_block(
    data: bytes,
    columns: list[str],
    first_line: int,
    *,
    delimiter: str = ",",
    at_eof: bool = True,
    types: Mapping[str, pa.DataType] | None = None,
    timestamp_format: str | None = None,
    lines: int | None = None,
    text: pa.DataType = STRING,
) -> Block:
    """Parse CSV lines into text columns (or typed ones, when every value converts).

    Parameters
    ----------
    data : bytes
        Whole lines (the last one may lack its line end when the block ends the file).
    columns : list of str
        Names of the expected fields, in order; a row with another number of fields is
        quarantined.
    first_line : int
        File-wide 1-based number of the first line of ``data``.
    delimiter : str
        Field separator.
    at_eof : bool
        Whether the block ends the file (a last line without a line end is then "truncated").
    types : mapping, optional
        Columns to convert while parsing (``timestamp("s")`` with ``timestamp_format``, or
        ``float64``). Tried on the whole block first; if any value of the block does not
        convert, or anything else is wrong, the block is parsed as text instead and the
        caller's converters find the offending values. Typed and text parsing accept exactly
        the same values (pyarrow's strptime and number parsing on whitespace-trimmed text), so
        results do not depend on which path a block took.
    lines : int, optional
        The lines of ``data`` when the caller counted them already (the one raw read of a
        part, :func:`cemkit.io.textfile.read_lines`): not counted again.
    text : pyarrow.DataType
        The type text columns are parsed as: ``string``, or ``large_string`` (what the records'
        text columns and the pandas string dtype hold: no column is cast, its offsets copied,
        after parsing).

    Returns
    -------
    Block
        Good rows (``text`` columns, except typed ones when the typed parse succeeded), their
        line numbers and the quarantined rows.
    """
    names = list(columns)
    quarantine = Quarantined()
    if not data:
        return Block(_empty(names, text), np.empty(0, np.int64), quarantine, data, first_line)
    open_end = data[-1:] != b"\n"
    nlines = lines if lines is not None else data.count(b"\n") + (1 if open_end else 0)
    tables: list[pa.Table] = []
    line_parts: list[np.ndarray] = []
    starts: np.ndarray | None = None

    def accept(lo: int, hi: int, table: pa.Table, bad: list[tuple[int, str, str]]) -> None:
        lines = np.arange(first_line + lo, first_line + hi, dtype=np.int64)
        if bad:
            bad_idx = np.array([n - 1 for n, _, _ in bad], dtype=np.int64)
            lines = np.delete(lines, bad_idx)
            last = first_line + nlines - 1
            for number, row_text, reason in bad:
                ln = first_line + lo + number - 1
                if at_eof and open_end and ln == last:
                    reason = f"truncated last line (no line end): {reason}"
                quarantine.add(ln, "", reason, row_text)
        tables.append(table)
        line_parts.append(lines)

    def attempt(lo: int, hi: int) -> None:
        nonlocal starts
        if starts is None and (lo, hi) != (0, nlines):
            starts = _line_starts(data)
        chunk = data if (lo, hi) == (0, nlines) else data[starts[lo] : starts[hi]]  # type: ignore[index]
        try:
            table, bad = _fast(chunk, names, hi - lo, delimiter, text=text)
        except _Trouble:
            if hi - lo == 1:
                _single(chunk, first_line + lo)
                return
            if hi - lo <= _SINGLE_LINES:
                for i in range(lo, hi):
                    attempt(i, i + 1)
                return
            mid = (lo + hi) // 2
            attempt(lo, mid)
            attempt(mid, hi)
            return
        accept(lo, hi, table, bad)

    def _single(chunk: bytes, ln: int) -> None:
        text = chunk.rstrip(b"\r\n")
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            quarantine.add(ln, "", f"not valid UTF-8 text (byte {exc.start + 1})", _decode(text))
            return
        if decoded.count('"') % 2:
            reason = "broken quoting: a quoted field is not closed"
        else:
            reason = "broken quoting or line break inside a field"
        if at_eof and open_end and ln == first_line + nlines - 1:
            reason = f"truncated last line (no line end): {reason}"
        quarantine.add(ln, "", reason, decoded)

    typed = None
    if types:
        try:
            # The last line alone with the sentinel (an unclosed quote there swallows it), then
            # the whole block without one: saves copying the block to append the sentinel.
            last_start = data.rfind(b"\n", 0, len(data) - 1) + 1
            _fast(data[last_start:], names, 1, delimiter, types, timestamp_format, text=text)
            typed = _fast(data, names, nlines, delimiter, types, timestamp_format,
                          sentinel=False, text=text)  # fmt: skip
        except _Trouble:
            typed = None
    if typed is not None:
        accept(0, nlines, *typed)
    else:
        attempt(0, nlines)
    table = pa.concat_tables(tables) if tables else _empty(names, text)
    lines_all = np.concatenate(line_parts) if line_parts else np.empty(0, np.int64)
    if len(tables) > 1:
        order = np.argsort(lines_all, kind="stable")
        table = table.take(pa.array(order))
        lines_all = lines_all[order]
    if types:
        table = _fixed_time_columns(table, types, timestamp_format, text)
    block = Block(table, lines_all, quarantine, data, first_line)
    _drop_empty_rows(block)
    return block


def string_offsets(arr: pa.Array) -> np.ndarray:
    """The ``len(arr) + 1`` value offsets of a string array (``large_string``: int64), no copy."""
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    buf = arr.buffers()[1]
    if buf is None:  # an array of no values at all
        return np.zeros(len(arr) + 1, dtype=width)
    return np.frombuffer(
        buf, dtype=width, count=len(arr) + 1, offset=arr.offset * width(0).itemsize
    )


def fixed_times(col: pa.Array | pa.ChunkedArray) -> pa.Array | None:
    """Text in :data:`FIXED_TIME_FORMAT` as ``timestamp[s]``, the instants ``strptime`` reads.

    Every non-empty value must be exactly ``dddd-dd-dd dd:dd:dd`` (ASCII digits; ``strptime``
    would also take ``2026-3-2 9:00:00`` or blanks, pyarrow's ISO-8601 cast a ``T``, a date
    alone or a fraction) and a valid date and time (the cast refuses ``2026-02-30``, which
    ``strptime`` reads as March 2, and ``23:59:60``). For such values both readings agree. Empty
    values are null. Returns None when any value is of another shape or invalid: the caller
    then reads the column with ``strptime``, as before (tests compare the two on random text).
    Shape, date and time are checked and the seconds computed in one jitted pass
    (:func:`_fixed_seconds`) where pyarrow's cast and 19 NumPy passes of shape checks were.
    """
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    from cemkit import arrowstr

    offsets, data, valid = arrowstr.buffers(arr)
    seconds, present, ok = _fixed_seconds(offsets, data, valid)
    if not ok:
        return None
    return pa.array(seconds, pa.timestamp("s"), mask=None if present.all() else ~present)


@_jit
def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@_jit
def _fixed_seconds(offsets: np.ndarray, data: np.ndarray,
                   valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:  # fmt: skip
    """Seconds since the epoch of ``dddd-dd-dd dd:dd:dd`` values, in one pass over the bytes.

    Returns (seconds, present, ok): ``present`` False for null or empty values (seconds 0);
    ``ok`` False as soon as a non-empty value is of another shape or no valid date and time
    (month 1-12, the month's days with Gregorian leap years, 00:00:00 to 23:59:59), which is
    what pyarrow's ISO-8601 cast refuses of that shape.
    """
    n = offsets.size - 1
    seconds = np.zeros(n, np.int64)
    present = np.zeros(n, np.bool_)
    for i in range(n):
        a = int(offsets[i])
        b = int(offsets[i + 1])
        if not valid[i] or a == b:
            continue
        if b - a != 19:
            return seconds, present, False
        for k in range(19):
            c = data[a + k]
            if _SHAPE[k] == 0:
                if c < 48 or c > 57:
                    return seconds, present, False
            elif c != _SHAPE[k]:
                return seconds, present, False
        year = _number(data, a, 4)
        month = _number(data, a + 5, 2)
        day = _number(data, a + 8, 2)
        hour = _number(data, a + 11, 2)
        minute = _number(data, a + 14, 2)
        second = _number(data, a + 17, 2)
        leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0
        if month < 1 or month > 12 or day < 1 or hour > 23 or minute > 59 or second > 59:
            return seconds, present, False
        days_in = _MONTH_DAYS[month - 1] + (1 if month == 2 and leap else 0)
        if day > days_in:
            return seconds, present, False
        seconds[i] = (_days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60
                      + second)  # fmt: skip
        present[i] = True
    return seconds, present, True


_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)


@_jit
def _number(data: np.ndarray, start: int, width: int) -> int:
    value = 0
    for k in range(start, start + width):
        value = value * 10 + (int(data[k]) - 48)
    return value


def _fixed_time_columns(table: pa.Table, types: Mapping[str, pa.DataType],
                        timestamp_format: str | None, text: pa.DataType) -> pa.Table:  # fmt: skip
    """Timestamp columns read as text (:func:`_parse_type`) converted by :func:`fixed_times`.

    A column with any value that does not convert stays text, as a text parse leaves it (the
    loader's converter then reads it with ``strptime`` and flags the values that fail).
    """
    for name, t in types.items():
        if _parse_type(t, timestamp_format, text) != t and name in table.column_names:
            i = table.column_names.index(name)
            if pa.types.is_string(table.schema.field(i).type) or pa.types.is_large_string(
                table.schema.field(i).type
            ):
                out = fixed_times(table.column(i))
                if out is not None:
                    table = table.set_column(i, name, out.cast(t) if out.type != t else out)
    return table


def _parse_type(t: pa.DataType, timestamp_format: str | None, text: pa.DataType) -> pa.DataType:
    """The type the parser reads a column of type ``t`` as (text for fixed-shape seconds)."""
    if t == pa.timestamp("s") and timestamp_format == FIXED_TIME_FORMAT:
        return text
    return t


def _empty(names: list[str], text: pa.DataType = STRING) -> pa.Table:
    return pa.table({n: pa.array([], text) for n in names})


def _fast(
    chunk: bytes, names: list[str], nlines: int, delimiter: str,
    types: Mapping[str, pa.DataType] | None = None, timestamp_format: str | None = None,
    *, sentinel: bool = True, text: pa.DataType = STRING,
) -> tuple[pa.Table, list[tuple[int, str, str]]]:  # fmt: skip
    """Parse a range with pyarrow; raise :class:`_Trouble` when lines and rows disagree.

    With ``sentinel`` a known line is appended: a quote left open on the last line swallows it.
    Without, the caller must have checked the last line (``parse_block`` does).
    """
    bad: list[tuple[int, str, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        reason = f"expected {row.expected_columns} fields, found {row.actual_columns}"
        if row.text.count('"') % 2:
            reason = f"broken quoting (unbalanced quotes): {reason}"
        bad.append((row.number or -1, row.text, reason))
        return "skip"

    types = types or {}
    stamp = dt.datetime(2000, 1, 1).strftime(timestamp_format or "%Y-%m-%d %H:%M:%S")
    sentinel_values = [stamp if pa.types.is_timestamp(types.get(n, pa.string())) else "0"
                       for n in names]  # fmt: skip
    tail = delimiter.join(sentinel_values).encode() + b"\n"
    if not sentinel:
        payload = chunk
    else:
        payload = chunk + tail if chunk.endswith(b"\n") else chunk + b"\n" + tail
    convert = pacsv.ConvertOptions(
        column_types={n: _parse_type(types.get(n, text), timestamp_format, text) for n in names},
        strings_can_be_null=False, null_values=[""],
        timestamp_parsers=[timestamp_format] if timestamp_format else None,
    )  # fmt: skip

    def read(handler: Callable[[pacsv.InvalidRow], str] | None, threads: bool) -> pa.Table:
        return pacsv.read_csv(
            pa.py_buffer(payload),
            read_options=pacsv.ReadOptions(
                column_names=names, use_threads=threads, block_size=_PARSE_BLOCK
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, invalid_row_handler=handler, ignore_empty_lines=False,
                newlines_in_values=False,
            ),
            convert_options=convert,
        )  # fmt: skip

    try:
        # A clean range (every row of the expected width: nearly every block) is parsed on all
        # cores, without a handler; pyarrow checks the UTF-8 of its text columns itself.
        table = read(None, threads=_THREADS)
    except pa.ArrowInvalid:
        # Rows of the wrong width, or bytes that are not UTF-8. pyarrow decodes a rejected row's
        # text for the invalid-row handler; bad UTF-8 there raises inside pyarrow's callback,
        # which Python reports on stderr *with the raw row*: such a range takes the careful
        # per-line path instead. The handler gets line numbers from a one-thread parse only.
        if not payload.isascii():
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                raise _Trouble from None
        try:
            table = read(on_invalid, threads=False)
        except (pa.ArrowInvalid, UnicodeDecodeError):
            raise _Trouble from None
    if any(n < 1 or n > nlines or "\n" in t for n, t, _ in bad):
        raise _Trouble
    if table.num_rows + len(bad) != nlines + sentinel:
        raise _Trouble
    if not sentinel:
        return table, bad
    last = table.slice(table.num_rows - 1)
    if any(last.column(i)[0].as_py() != "0" for i, n in enumerate(names) if n not in types):
        raise _Trouble
    return table.slice(0, table.num_rows - 1), bad


def _drop_empty_rows(block: Block) -> None:
    """Move blank lines (parsed as rows whose every field is empty) to the quarantine."""
    t = block.table
    if t.num_rows == 0:
        return

    # Narrow the candidates column by column; most blocks are done after a column or two.
    candidates = np.arange(t.num_rows)
    for col in t.columns:
        sub = col.take(pa.array(candidates)) if len(candidates) < t.num_rows else col
        if pa.types.is_dictionary(col.type):  # text read as a dictionary: "" may read as null
            e = pc.or_(pc.is_null(sub), pc.equal(pc.binary_length(sub.cast(pa.string())), 0))
        elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            e = pc.equal(pc.binary_length(sub), 0)
        else:
            e = pc.is_null(sub)
        candidates = candidates[pc.fill_null(e, False).to_numpy(zero_copy_only=False)]
        if not len(candidates):
            return
    empty = np.zeros(t.num_rows, dtype=bool)
    empty[candidates] = True
    mask = empty
    idx = np.flatnonzero(mask)
    raws = block.raw_lines(block.lines[idx])
    # Only truly blank lines: a row of empty fields ("," * n) is judged like any other row.
    blank = np.array([not r.strip() for r in raws], dtype=bool)
    if not blank.any():
        return
    mask = np.zeros(len(mask), dtype=bool)
    mask[idx[blank]] = True
    for ln in block.lines[mask]:
        block.quarantine.add(int(ln), "", "empty line", "")
    keep = ~mask
    block.table = t.filter(pa.array(keep))
    block.lines = block.lines[keep]
