"""Line-oriented text inputs: split files into byte ranges at line ends, with exact line numbers.

A part of a text file starts right after a newline and ends right after one (or at the end of
the file), so every line belongs to exactly one part. Its first line number is known when the
graph is built, by counting the newlines before it: one sequential pass over the bytes
(``bytes.count`` runs at memory speed), which also computes the file's SHA-256 for the run's
manifest: the file is read once to split and checksum it, once to parse it (each part by
:func:`read_lines`, whose bytes also give the part's line count for the run's read units).
Nothing is parsed here.

Compressed inputs (gzip, bzip2, xz, zstd) are recognized by their first bytes, whatever their
name, and read through a decompressor (:func:`open_input`); such a file is one part (a
compressed stream cannot be entered in the middle), its sizes and offsets are those of the
decompressed bytes.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import itertools
import lzma
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from cemkit.errors import InputError
from cemkit.io.base import Part

_SCAN = 8 * 2**20  # bytes read at a time while counting lines

#: Compression formats by their magic bytes (RFC 1952, bzip2, xz, RFC 8878 frames).
COMPRESSION_MAGIC: dict[bytes, str] = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
}


def compression(path: str) -> str | None:
    """The compression of a file from its first bytes (``gzip``, ``bz2``, ``xz``, ``zstd``)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError:
        return None
    for magic, name in COMPRESSION_MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def open_input(path: str) -> BinaryIO:
    r"""Open an input for reading bytes, decompressing it when its content is compressed.

    Examples
    --------
    >>> import gzip, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "cdr.csv")  # the name says nothing
    >>> with gzip.open(p, "wb") as fh:
    ...     _ = fh.write(b"a,b\\n")
    >>> open_input(p).read()
    b'a,b\\n'
    """
    kind = compression(path)
    if kind == "gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if kind == "bz2":
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.open(path, "rb")  # type: ignore[return-value]
    if kind == "zstd":
        import pyarrow as pa

        with pa.input_stream(path, compression="zstd") as stream:
            return io.BytesIO(stream.read())
    return open(path, "rb")


def kind_of(path: str) -> str:
    """``gzip``/``bz2``/``xz``/``zstd``, or ``un`` for a plain file (for messages)."""
    return compression(path) or "un"


def input_size(path: str) -> int:
    """Bytes of the (decompressed) content of a readable file."""
    size = check_readable(path)
    if compression(path) is None:
        return size
    total = 0
    try:
        with open_input(path) as fh:
            while chunk := fh.read(_SCAN):
                total += len(chunk)
    except (OSError, EOFError, ValueError, lzma.LZMAError) as exc:  # pyarrow: OSError/ValueError
        raise InputError(f"input file {path!r} is {kind_of(path)}-compressed but cannot be "
                         f"decompressed: {type(exc).__name__}",
                         hint="the file may be truncated") from None  # fmt: skip
    return total


@dataclass(frozen=True)
class TextFile:
    """What a loader learned about one input file before parsing it."""

    path: str
    tag: str  #: short stable name of the file used in record ids
    size: int
    data_start: int  #: byte offset of the first data line (after header lines)
    data_first_line: int  #: 1-based line number of the first data line


def check_readable(path: str) -> int:
    """Size of a readable regular file, or an :class:`InputError` naming it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"input file {path!r} does not exist", hint="check the path") from None
    except OSError as exc:
        raise InputError(f"input file {path!r} cannot be read: {exc.strerror}") from None
    if not os.path.isfile(path):
        raise InputError(f"input {path!r} is not a regular file", hint="pass files or directories")
    if not os.access(path, os.R_OK):
        raise InputError(f"input file {path!r} is not readable", hint="check its permissions")
    return st.st_size


def file_tags(paths: Sequence[str]) -> dict[str, str]:
    """Short, unique, deterministic tags for input files (base name; more path when ambiguous)."""
    tags: dict[str, str] = {}
    parts = {p: os.path.abspath(p).split(os.sep) for p in paths}
    depth = 1
    pending = list(dict.fromkeys(paths))
    while pending:
        cand = {p: "/".join(parts[p][-depth:]) for p in pending}
        counts: dict[str, int] = {}
        for t in cand.values():
            counts[t] = counts.get(t, 0) + 1
        nxt = []
        for p in pending:
            if counts[cand[p]] == 1 or depth >= len(parts[p]):
                tags[p] = cand[p]
            else:
                nxt.append(p)
        pending = nxt
        depth += 1
    return tags


def header_end(path: str, header_lines: int) -> tuple[int, int]:
    """Byte offset after ``header_lines`` lines, and how many lines were actually there."""
    if header_lines <= 0:
        return 0, 0
    offset = 0
    found = 0
    with open_input(path) as fh:
        while found < header_lines:
            line = fh.readline()
            if not line:
                break
            offset += len(line)
            if line.endswith(b"\n"):
                found += 1
            else:  # last line without a line end
                found += 1
                break
    return offset, found


def split_lines(
    info: TextFile, blocksize: int, first_index: int = 0
) -> tuple[list[Part], str | None]:
    """Parts of about ``blocksize`` bytes covering ``info``'s data lines, cut after newlines.

    Also the file's SHA-256 (hex), computed in the same sequential pass that counts the
    newlines before each part, so the run does not read the file again to checksum it (``None``
    for a compressed input: its checksum is of the bytes on disk, read apart).
    """
    start = info.data_start
    size = info.size
    if compression(info.path) is not None:
        return [Part(info.path, first_index, start, size, info.data_first_line)], None
    bounds = [start]
    target = start + blocksize
    with open(info.path, "rb") as fh:
        while target < size:
            fh.seek(target)
            chunk = b""
            pos = -1
            while pos < 0:
                more = fh.read(65536)
                if not more:
                    break
                pos = more.find(b"\n")
                if pos < 0:
                    chunk += more
            if pos < 0:
                break
            cut = target + len(chunk) + pos + 1
            if cut >= size:
                break
            bounds.append(cut)
            target = cut + blocksize
        bounds.append(size)
        counts, digest = scan(fh, bounds)
    first_lines = [info.data_first_line]
    for n in counts[:-1]:
        first_lines.append(first_lines[-1] + n)
    parts = [
        Part(info.path, first_index + i, a, b, first_lines[i], counts[i])
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    ]
    return parts, digest


def scan(fh: BinaryIO, bounds: Sequence[int], buffer: int = _SCAN) -> tuple[list[int], str]:
    """Newlines in each range ``bounds[i]:bounds[i+1]``, and the SHA-256 of the whole file.

    One sequential pass from offset 0 (the bytes before ``bounds[0]``, header lines, are hashed
    and not counted). Each buffer is hashed on a second thread while its newlines are counted
    (``hashlib`` releases the GIL on large buffers); buffers are hashed in order.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    digest = hashlib.sha256()
    counts = [0] * (len(bounds) - 1)
    fh.seek(0)
    seg, base = 0, 0  # the range being counted; file offset of the buffer's first byte
    hashing: Future[None] | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="cemkit-sha256") as pool:
        while buf := fh.read(buffer):
            if hashing is not None:
                hashing.result()  # at most two buffers in memory
            hashing = pool.submit(digest.update, buf)
            end = base + len(buf)
            while seg < len(counts) and bounds[seg] < end:
                lo, hi = max(bounds[seg], base) - base, min(bounds[seg + 1], end) - base
                if hi > lo:
                    counts[seg] += newlines(buf, lo, hi)
                if bounds[seg + 1] > end:
                    break
                seg += 1
            base = end
        if hashing is not None:
            hashing.result()
    return counts, digest.hexdigest()


def read_range(path: str, start: int, stop: int) -> bytes:
    """Bytes ``[start, stop)`` of a file's (decompressed) content (``stop < 0``: to the end)."""
    with open_input(path) as fh:
        fh.seek(start)
        return fh.read() if stop < 0 else fh.read(stop - start)


def count_lines(data: bytes) -> int:
    r"""Lines in a byte range cut after line ends (a last line without its newline counts).

    Examples
    --------
    >>> count_lines(b"a\nb\n"), count_lines(b"a\nb"), count_lines(b"")
    (2, 2, 0)
    """
    return newlines(data) + (1 if data and not data.endswith(b"\n") else 0)


def newlines(data: bytes, lo: int = 0, hi: int | None = None) -> int:
    r"""Newline bytes in ``data[lo:hi]`` (NumPy: ~2x ``bytes.count``, which compares byte by byte).

    Examples
    --------
    >>> newlines(b"a\nb\n"), newlines(b"a\nb\n", 2)
    (2, 1)
    """
    hi = len(data) if hi is None else hi
    view = np.frombuffer(data, dtype=np.uint8)
    step = 1 << 16  # small temporaries: reused heap memory, not fresh pages faulted in
    return sum(
        int(np.count_nonzero(view[i : min(i + step, hi)] == 10)) for i in range(lo, hi, step)
    )


@dataclass(frozen=True)
class RawRange:
    """A part's bytes as read from its input, with the physical lines counted in them."""

    data: bytes
    lines: int


def read_lines(path: str, start: int, stop: int, newlines_known: int | None = None) -> RawRange:
    """The one read of a text part: its bytes and their line count, for parse and read units.

    A loader reads each part's bytes once, here: the parser takes the bytes (and the count,
    so it does not count again) and the run's read units (``lines``) take the same count, so
    the lines reconciled in the manifest are counted in the bytes apart from the parser, but
    not read again. ``newlines_known`` is the part's newline count from planning
    (:func:`split_lines` counted every part in its pass over the file): the bytes are then not
    counted a second time, unless they are not the ``stop - start`` bytes planning counted.
    """
    data = read_range(path, start, stop)
    if newlines_known is not None and stop >= 0 and len(data) == stop - start:
        return RawRange(data, newlines_known + (1 if data and data[-1:] != b"\n" else 0))
    return RawRange(data, count_lines(data))
