"""Run directories: the one writer and the one reader of everything cemkit writes to disk.

A run directory::

    DIR/records/part-00000.parquet ...   the stage's output records
    DIR/quarantine/part-00000.parquet    rows set aside, with file, line, field, reason, raw
    DIR/kqi/..., DIR/alerts.parquet      tables of stages that reduce (KQIs)
    DIR/manifest.json                    inputs (sha256, size), counts, versions, timings, the
                                         outputs with their sha256, and one section per stage
    DIR/reveals.jsonl                    append-only log of re-identifications of this run

Everything is written into a hidden sibling ``.DIR.tmp-<id>`` and renamed into place at the end,
``manifest.json`` last; a crash leaves only the hidden temporary directory, never a ``DIR`` that
looks complete. A manifest, once the run is in place, is *sealed*: nothing rewrites it (reveals
go to the append-only log), so the checksum downstream runs recorded stays true.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import os
import platform
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cemkit import labels
from cemkit.errors import InputError, OutputError

MANIFEST = "manifest.json"
RECORDS = "records"
QUARANTINE = "quarantine"
REVEAL_LOG = "reveals.jsonl"
#: Version of the manifest layout (bumped when a key changes meaning).
MANIFEST_VERSION = 2
#: Errors of the file system written to (full, read-only, over quota, file too large).
_DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG}


def versions() -> dict[str, str]:
    """Versions of cemkit, Python and the libraries that shape results."""
    import dask
    import numpy
    import phonenumbers

    import cemkit

    return {
        "cemkit": cemkit.__version__,
        "python": platform.python_version(),
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
        "dask": dask.__version__,
        "numpy": numpy.__version__,
        "phonenumbers": phonenumbers.__version__,
    }


def sha256_of(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, hex."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Path, size and SHA-256 of a file."""
    return {"path": os.fspath(path), "size": os.path.getsize(path), "sha256": sha256_of(path)}


def part_name(index: int) -> str:
    """File name of part ``index`` (``part-00000.parquet``)."""
    return f"part-{index:05d}.parquet"


#: Parquet options of every part file, chosen by measurement (benchmarks/bench_store.py, 1M
#: protected records): zstd (level 1) writes ~40 % fewer bytes than snappy in the same time.
PARQUET_COMPRESSION = "zstd"
#: A string column is written as an Arrow dictionary when its first rows hold at most this share
#: of distinct values (node, outcome, kinds, ...): the Parquet writer then takes its codes as
#: they are instead of hashing every value again.
_DICTIONARY_SHARE = 0.05
_DICTIONARY_SAMPLE = 1 << 14


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_labels(t: pa.DataType) -> bool:
    """A dictionary of strings: a categorical label column (:mod:`cemkit.labels`)."""
    return pa.types.is_dictionary(t) and _is_string(t.value_type)


def _round_trips_without_arrow_schema(t: pa.DataType) -> bool:
    """Whether Parquet's own logical types give ``t`` back (to cemkit's readers' dtypes)."""
    if _is_labels(t):  # written as its strings would be (see narrow_table)
        return True
    if pa.types.is_timestamp(t):
        return t.tz in (None, "UTC")
    return (_is_string(t) or pa.types.is_integer(t) or pa.types.is_floating(t)
            or pa.types.is_boolean(t) or pa.types.is_date32(t))  # fmt: skip


#: Store token columns (``<kept prefix>#<16 hex>``, every value a token) as
#: :data:`cemkit.privacy.tokens.STRUCT_TYPE` (int64 bits + dictionary-encoded prefix) instead of
#: strings; the file's key-value metadata lists them under :data:`TOKENS_KEY`, and
#: :func:`read_part` / :func:`read_parts` give the strings back byte for byte. Off by default:
#: on 1M protected records (benchmarks/bench_store.py, 2026-12-01) the files are ~13 % smaller
#: but writing and reading cost slightly more CPU (the frames hold strings either way), and
#: readers other than cemkit's (pandas, DuckDB) would see structs instead of tokens.
TOKEN_BITS = False
#: Key of the file metadata that lists the columns stored as token bits (JSON list of names).
TOKENS_KEY = b"cemkit_token_columns"


def _token_columns(table: pa.Table) -> tuple[pa.Table, list[str]]:
    """String columns that hold nothing but tokens, converted to the stored struct layout."""
    from cemkit.privacy import tokens

    names = []
    for i, f in enumerate(table.schema):
        if not _is_string(f.type) or len(table) == 0:
            continue
        codes = tokens.split(table.column(i))
        if codes is not None:
            struct = tokens.to_struct(codes)
            table = table.set_column(i, pa.field(f.name, struct.type, f.nullable), struct)
            names.append(f.name)
    if names:
        metadata = dict(table.schema.metadata or {})
        metadata[TOKENS_KEY] = json.dumps(names).encode()
        table = table.replace_schema_metadata(metadata)
    return table, names


def _stored_tokens(schema: pa.Schema) -> list[str]:
    """The columns of a part file's schema stored as token bits (see :data:`TOKEN_BITS`)."""
    from cemkit.privacy import tokens

    listed = (schema.metadata or {}).get(TOKENS_KEY)
    if not listed:
        return []
    return [n for n in json.loads(listed) if n in schema.names
            and tokens.is_token_struct(schema.field(n).type)]  # fmt: skip


def decode_tokens(table: pa.Table) -> pa.Table:
    """A table read from a part file with its token columns as the readable strings again."""
    from cemkit.privacy import tokens

    for name in _stored_tokens(table.schema):
        i = table.schema.get_field_index(name)
        strings = tokens.join(tokens.from_struct(table.column(i)))
        table = table.set_column(i, pa.field(name, pa.string(), table.schema.field(i).nullable),
                                 strings)  # fmt: skip
    return table


def decode_schema(schema: pa.Schema) -> pa.Schema:
    """A part file's schema as :func:`decode_tokens` gives its tables (tokens as strings)."""
    for name in _stored_tokens(schema):
        i = schema.get_field_index(name)
        schema = schema.set(i, pa.field(name, pa.string(), schema.field(i).nullable))
    return schema


def narrow_table(table: pa.Table, token_bits: bool | None = None
                 ) -> tuple[pa.Table, dict[str, Any]]:  # fmt: skip
    """The table as written, and the ``pq.write_table`` options to write it with.

    Low-cardinality string columns become Arrow dictionaries and are written dictionary-encoded;
    high-cardinality ones (tokens, record ids) plainly, without min/max statistics (useless for
    random tokens); Parquet's own dictionary is not tried on them or on timestamps (it fills
    its page and falls back: on 1M protected records 20 % less CPU, 3 % fewer bytes). The Arrow
    schema is not stored when Parquet's types give every column back as it was, so readers see
    plain strings again (same values, same dtypes). With
    ``token_bits`` (default :data:`TOKEN_BITS`) token columns are stored as int64 bits and a
    prefix dictionary, listed in the file's metadata.
    """
    tokens_stored: list[str] = []
    if TOKEN_BITS if token_bits is None else token_bits:
        table, tokens_stored = _token_columns(table)
    low: list[str] = []
    fields = [f for f in table.schema if f.name not in tokens_stored]
    if all(_round_trips_without_arrow_schema(f.type) for f in fields):
        for f in fields:
            i = table.schema.get_field_index(f.name)
            if _is_labels(f.type):
                column, is_low = _labels_as_written(table.column(i))
                table = table.set_column(i, pa.field(f.name, column.type, f.nullable), column)
                if is_low:
                    low.append(f.name)
                continue
            if not _is_string(f.type) or len(table) == 0:
                continue
            head = table.column(i).slice(0, _DICTIONARY_SAMPLE)
            if pc.count_distinct(head).as_py() <= max(1, _DICTIONARY_SHARE * len(head)):
                column = table.column(i).cast(pa.string()).dictionary_encode()
                table = table.set_column(i, pa.field(f.name, column.type, f.nullable), column)
                low.append(f.name)
        store_schema = False
    else:
        store_schema = True
    # (from the table as written: a label column written as strings is one of them)
    high = {f.name for f in table.schema if _is_string(f.type) and f.name not in low
            and f.name not in tokens_stored}  # fmt: skip
    options: dict[str, Any] = {
        "compression": PARQUET_COMPRESSION,
        # Parquet's dictionary for the low-cardinality columns and the numbers that repeat
        # (durations, causes, statuses); not tried for the high-cardinality strings and the
        # timestamps, where it fills its page and falls back after hashing every value
        "use_dictionary": [
            f.name for f in fields if f.name not in high and not pa.types.is_timestamp(f.type)
        ]
        + [f"{name}.prefix" for name in tokens_stored],
        "write_statistics": [f.name for f in fields if f.name not in high],
        "store_schema": store_schema,
    }
    return table, options


def _labels_as_written(column: pa.ChunkedArray) -> tuple[pa.Array, bool]:
    """A categorical label column as :func:`narrow_table` writes its strings, and whether low.

    What the string column gives: when its first rows hold few distinct values, the dictionary
    encoding of its strings (values in order of first appearance, int32 indices), else the
    strings. Made from the codes (a pass per category), not from strings encoded again.
    """
    arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(arr)
    k = len(arr.dictionary)
    # the codes in their own type (int8 for a few categories), -1 for null
    codes = np.asarray(pc.fill_null(arr.indices, -1).to_numpy(zero_copy_only=False))
    valid = codes >= 0 if arr.null_count else None
    head = codes[:_DICTIONARY_SAMPLE]
    present_head = np.bincount(head[head >= 0], minlength=k) if k else np.zeros(0, np.int64)
    distinct_head = int(np.count_nonzero(present_head))
    if n == 0 or distinct_head > max(1, _DICTIONARY_SHARE * len(head)):
        return arr.cast(pa.large_string()), False
    # each category's first row: those the head holds found in it, only the others searched
    # for in the whole column (a pass each; a label's categories nearly all appear early)
    first = np.full(k, n, np.int64)
    seen, at = np.unique(head[head >= 0], return_index=True)
    first[seen] = np.flatnonzero(head >= 0)[at]
    for c in np.flatnonzero(present_head == 0).tolist():
        hits = np.flatnonzero(codes[head.size :] == c)
        if hits.size:
            first[c] = head.size + int(hits[0])
    order = [c for c in np.argsort(first, kind="stable").tolist() if first[c] < n]
    remap = np.zeros(k + 1, np.int32)  # (the last slot: a null's code, -1)
    remap[order] = np.arange(len(order), dtype=np.int32)
    indices = remap[codes]
    dictionary = arr.dictionary.cast(pa.string()).take(pa.array(order, pa.int64()))
    mask = None if valid is None else ~valid
    encoded = pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32(), mask=mask), dictionary)
    return encoded, True


def write_part(df: pd.DataFrame, directory: str | os.PathLike[str], index: int = 0,
               schema: pa.Schema | None = None) -> dict[str, Any]:  # fmt: skip
    """Write one pandas frame as ``part-<index>.parquet``; returns its file name, rows and sha256.

    Called inside a Dask task (the worker writes, the client gathers only this small dict).
    Written narrow (:func:`narrow_table`); :func:`read_part` gives the same frame back.
    """
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    if any(isinstance(t, pd.CategoricalDtype) for t in df.dtypes):
        # the pandas metadata of the strings the categoricals stand for: readers (pandas' own)
        # give strings back, as from a run that held them as strings
        wide = pa.Table.from_pandas(labels.widen(df.iloc[:0]), schema=schema, preserve_index=False)
        table = table.replace_schema_metadata(wide.schema.metadata)
    table, options = narrow_table(table)
    path = Path(directory) / part_name(index)
    with pq.ParquetWriter(path, table.schema, **options) as writer:
        writer.write_table(table)
        if not options["store_schema"] and table.schema.metadata:
            # without the Arrow schema, its key-value metadata (the protection marker) is not
            # written by itself
            writer.add_key_value_metadata(table.schema.metadata)
    return {"file": path.name, "rows": len(df), "sha256": sha256_of(path)}


class Manifest:
    """The contents of ``manifest.json``: common keys plus one section per stage."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {
            "manifest_version": MANIFEST_VERSION,
            "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "versions": versions(),
            "stages": [],
            "timings_s": {},
        }

    def section(self, name: str) -> dict[str, Any]:
        """The (new or existing) section of a stage, to fill in."""
        sec = self.data.setdefault(name, {})
        if not isinstance(sec, dict):
            raise OutputError(f"manifest key {name!r} is reserved", hint="choose another name")
        return sec

    def add_section(self, name: str, content: Mapping[str, Any]) -> None:
        """Merge ``content`` into a stage's section."""
        self.section(name).update(content)

    @contextlib.contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Record the wall time of a step under ``timings_s``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.data["timings_s"][step] = round(time.perf_counter() - t0, 6)

    def to_json(self) -> str:
        """Serialized, keys in a stable order."""
        return json.dumps(self.data, indent=2, sort_keys=True, default=str) + "\n"


class RunWriter:
    """Context manager that builds a run directory in a temporary sibling and renames it.

    Parameters
    ----------
    out : str or path
        The run directory to create.
    overwrite : bool
        Replace an existing ``out`` (moved aside, removed only after the new one is in place).
        Without it an existing non-empty ``out`` is an error.

    Examples
    --------
    >>> from cemkit.runs import RunWriter
    >>> with RunWriter("out/run1") as run:  # doctest: +SKIP
    ...     run.write_table(df, "kqi/kqi.parquet")
    ...     run.manifest.add_section("kqi", {"rows": len(df)})
    """

    def __init__(self, out: str | os.PathLike[str], *, overwrite: bool = False):
        self.out = Path(out)
        self.overwrite = overwrite
        self.manifest = Manifest()
        self.path = self.out.parent / f".{self.out.name}.tmp-{uuid.uuid4().hex[:12]}"
        self.outputs: list[dict[str, Any]] = []

    @property
    def records_dir(self) -> Path:
        """Where record part files go."""
        return self.path / RECORDS

    @property
    def quarantine_dir(self) -> Path:
        """Where quarantine part files go."""
        return self.path / QUARANTINE

    def __enter__(self) -> Self:
        check_writable(self.out, self.overwrite)
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.path.mkdir()
            self.records_dir.mkdir()
            self.quarantine_dir.mkdir()
        except OSError as exc:
            raise OutputError(
                f"cannot create the run directory {str(self.out)!r} "
                f"(temporary {str(self.path)!r}): {exc.strerror}",
                hint="choose a writable location with free space",
            ) from None
        return self

    def add_outputs(self, directory: str, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """List written part files (from :func:`write_part`) among the run's outputs."""
        listed = [{"path": f"{directory}/{p['file']}", "rows": int(p["rows"]),
                   "sha256": p["sha256"]} for p in parts]  # fmt: skip
        self.outputs += listed
        return listed

    def write_table(self, frame: pd.DataFrame, relpath: str) -> dict[str, Any]:
        """Write a small table (KQIs, alerts) at ``relpath`` inside the run, listed with sha256."""
        path = self.path / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
        entry = {"path": relpath, "rows": len(frame), "sha256": sha256_of(path)}
        self.outputs.append(entry)
        return entry

    def copy_parts(self, source: Path, directory: str) -> list[dict[str, Any]]:
        """Carry part files of an input run over unchanged (e.g. its quarantine)."""
        target = self.path / directory
        parts = []
        for f in sorted(source.glob("*.parquet")):
            shutil.copyfile(f, target / f.name)
            parts.append({"file": f.name, "rows": pq.ParquetFile(f).metadata.num_rows,
                          "sha256": sha256_of(target / f.name)})  # fmt: skip
        return self.add_outputs(directory, parts)

    def _is_output_failure(self, exc: OSError) -> bool:
        if exc.filename is not None:
            name = os.path.abspath(os.fsdecode(exc.filename))
            return any(name == str(p) or name.startswith(str(p) + os.sep)
                       for p in (self.path.absolute(), self.out.absolute()))  # fmt: skip
        # writers such as pyarrow's do not say which file; these errors are the disk's
        return exc.errno in _DISK_ERRNOS

    def __exit__(self, exc_type: object, exc_value: object, tb: object) -> None:
        if exc_type is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            if isinstance(exc_value, OSError) and self._is_output_failure(exc_value):
                reason = exc_value.strerror or str(exc_value)
                raise OutputError(
                    f"cannot write the run directory {str(self.out)!r}: {reason}",
                    hint="free space or choose a writable location (nothing was written there "
                    "and the inputs are untouched), then run again",
                ) from None
            return
        try:
            if self.outputs:
                self.manifest.data["outputs"] = self.outputs
            _write_synced(self.path / MANIFEST, self.manifest.to_json())
            _swap_into_place(self.path, self.out)
        except OSError as exc:
            shutil.rmtree(self.path, ignore_errors=True)
            raise OutputError(f"cannot write {str(self.out)!r}: {exc.strerror}") from None


def check_writable(out: Path, overwrite: bool) -> None:
    """Refuse an existing non-empty ``out`` unless ``overwrite`` (before any work is done)."""
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(
            f"output directory {str(out)!r} already exists",
            hint="choose a new directory or pass overwrite=True (--overwrite)",
        )


def _write_synced(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _swap_into_place(tmp: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a text file (a report page, a policy) beside ``path``, then rename it into place."""
    target = Path(path)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(
            f"cannot write {target}: {exc.strerror or exc}",
            hint="choose a writable output location with free space",
        ) from None


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; renamed to ``path`` when the block succeeds."""
    target = Path(path)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.partial"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot write {target}: {exc.strerror or exc}",
            hint="choose a writable output location with free space",
        ) from None
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a directory (a report, a generated world) under a hidden name; rename on success.

    An existing ``path`` is replaced only once the new one is complete; on error the temporary
    directory is removed and ``path`` is left as it was.
    """
    target = Path(path)
    tmp = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:12]}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as exc:
        raise OutputError(
            f"cannot create output directory {target}: {exc.strerror or exc}",
            hint="choose a writable output location with free space",
        ) from None
    try:
        yield tmp
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def seal_manifest(directory: str | os.PathLike[str], manifest: Manifest) -> None:
    """Write ``manifest.json`` into a directory built by other means (synth's world), last."""
    _write_synced(Path(directory) / MANIFEST, manifest.to_json())


# --- reading ------------------------------------------------------------------------------------


def run_root(path: str | os.PathLike[str]) -> Path:
    """The run directory of ``path``: ``path`` itself, or its parent for ``RUN/records``."""
    p = Path(path)
    if (
        not (p / MANIFEST).is_file()
        and p.name in (RECORDS, QUARANTINE)
        and (p.parent / MANIFEST).is_file()
    ):
        return p.parent
    if not p.is_dir():
        raise InputError(
            f"{str(p)!r} is not a run directory (it does not exist)",
            hint="give a directory written by cemkit (load, protect, correlate, ...)",
        )
    if not (p / MANIFEST).is_file():
        raise InputError(
            f"{str(p)!r} is not a complete run directory (no {MANIFEST})",
            hint="pass a directory written by cemkit; an interrupted run leaves none",
        )
    return p


def read_manifest(run: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a complete run directory (or of the run ``RUN/records`` belongs to)."""
    path = run_root(run) / MANIFEST
    try:
        with open(path, encoding="utf-8") as fh:
            data: dict[str, Any] = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(
            f"{path}: manifest cannot be read ({type(exc).__name__})",
            hint="the run directory is damaged; re-run the stage",
        ) from None
    return data


def part_files(run: str | os.PathLike[str], what: str = RECORDS) -> list[str]:
    """The part files of ``run/what``, in part order."""
    return sorted(str(p) for p in (run_root(run) / what).glob("*.parquet"))


def read_records(run: str | os.PathLike[str], what: str = RECORDS, *,
                 narrow: bool = False) -> Any:  # fmt: skip
    """Read ``run/records/`` (or ``run/quarantine/``) back as a lazy Dask DataFrame.

    ``run`` is a run directory or its ``records`` directory. One partition per part file, in part
    order; strings come back as ``string[pyarrow]``, nullable integers as pandas nullable
    integers and times as ``datetime64[ns, UTC]``, as the stage that wrote them had them.
    ``narrow``: label columns as categoricals instead (:mod:`cemkit.labels`; what a stage that
    reads them reads, their dictionary pages taken as they are).
    """
    root = run_root(run)
    files = part_files(root, what)
    if not files:
        raise InputError(
            f"run directory {str(root)!r} has no {what} files",
            hint="give the run directory that load, protect or correlate wrote",
        )
    return read_parts(files, what, narrow=narrow)


def read_parts(files: list[str], what: str = RECORDS, *, narrow: bool = False) -> Any:
    """Part files as a lazy Dask DataFrame, one partition per file (meta from the first).

    Only the columns a computation uses are read (Dask's column projection). ``narrow``: as
    :func:`read_part`.
    """
    import functools

    import dask.dataframe as dd

    from cemkit.io.convert import to_pandas

    # the schema only, no rows read
    meta = to_pandas(decode_schema(pq.read_schema(files[0])).empty_table())
    read = read_part
    if narrow:
        meta = labels.narrowed_meta(meta, labels.ALL)
        read = functools.partial(read_part, narrow=True)
    # read_part takes ``columns=``: Dask passes the projection
    return dd.from_map(read, files, meta=meta, label=f"read-{what}", enforce_metadata=False)


def read_part(path: str, columns: list[str] | None = None, *,
              narrow: bool = False) -> pd.DataFrame:  # fmt: skip
    """One part file as pandas with cemkit's dtypes (the one record reader; tokens as strings).

    ``narrow``: label columns as categoricals (:func:`cemkit.labels.narrow`), read from their
    dictionary pages without making their strings.
    """
    from cemkit.io.convert import to_pandas

    dictionaries = None
    if narrow:
        names = pq.read_schema(path).names if columns is None else columns
        dictionaries = [n for n in names if n in labels.ALL] or None
    table = pq.read_table(path, columns=columns, read_dictionary=dictionaries)
    frame = to_pandas(decode_tokens(table))
    return labels.narrow(frame, labels.ALL) if narrow else frame


def append_reveal(run: str | os.PathLike[str], event: Mapping[str, Any]) -> None:
    """Append one re-identification event to ``run/reveals.jsonl`` (the manifest stays sealed)."""
    line = json.dumps(dict(event), sort_keys=True, default=str) + "\n"
    path = run_root(run) / REVEAL_LOG
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())  # one write with O_APPEND: never interleaved
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise OutputError(
            f"cannot append to the reveal log {path}: {exc.strerror}",
            hint="the reveal run was written; fix the permissions",
        ) from None


def read_reveal_log(run: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Re-identification events recorded for a run (empty when none)."""
    path = run_root(run) / REVEAL_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_frame_parts(frame: Any, directory: Path) -> list[dict[str, Any]]:
    """A pandas frame (one part) or a Dask frame (one part per partition, written by workers)."""
    from cemkit.runs.stages import is_dask

    if not is_dask(frame):
        return [write_part(frame, directory, 0)]
    import dask

    tasks = [dask.delayed(write_part, pure=False)(p, str(directory), i)
             for i, p in enumerate(frame.to_delayed())]  # fmt: skip
    return list(dask.compute(*tasks))


def write_run(
    out: str | os.PathLike[str],
    records: Any,
    quarantine: Any = None,
    *,
    sections: Mapping[str, Mapping[str, Any]] | None = None,
    inputs: list[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write records (and a quarantine) of pandas or Dask frames as a run directory, atomically.

    Parameters
    ----------
    out : str or path
        Run directory to create.
    records, quarantine : Dask or pandas DataFrame
        Frames to write under ``records/`` and ``quarantine/`` (Dask: written by the workers).
    sections : mapping, optional
        Stage sections for the manifest (their names are listed under ``stages``).
    inputs : list of str, optional
        Input files to list in the manifest with size and SHA-256.
    overwrite : bool
        Replace an existing run directory.
    """
    with RunWriter(out, overwrite=overwrite) as run:
        with run.manifest.timed("write_records"):
            run.add_outputs(RECORDS, _write_frame_parts(records, run.records_dir))
        if quarantine is not None:
            with run.manifest.timed("write_quarantine"):
                run.add_outputs(QUARANTINE, _write_frame_parts(quarantine, run.quarantine_dir))
        if inputs:
            run.manifest.data["inputs"] = [sha256_file(p) for p in inputs]
        for name, content in (sections or {}).items():
            run.manifest.add_section(name, content)
            run.manifest.data["stages"].append(name)
    return Path(out)
