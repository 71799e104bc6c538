"""Run directories written atomically: ``records/``, ``quarantine/`` and ``manifest.json``.

Every stage that writes results (load, protect, kqi, ...) writes a *run directory*::

    DIR/records/part-00000.parquet ...   canonical records (or the stage's output rows)
    DIR/quarantine/part-00000.parquet    rows set aside, with file, line, field, reason, raw
    DIR/manifest.json                    inputs (sha256, size), counts, versions, timings and
                                         one section per stage

Everything is written into a hidden sibling ``.DIR.tmp-<id>`` and renamed into place at the end,
``manifest.json`` last; a crash leaves only the hidden temporary directory, never a ``DIR`` that
looks complete. :func:`read_records` refuses a directory without its manifest.

Examples
--------
>>> from cemkit.io.output import RunDir
>>> with RunDir("out/run1") as run:  # doctest: +SKIP
...     write_frame(df, run.records_dir)
...     run.manifest.section("kqi")["indicators"] = ["asr", "ner"]
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

import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cemkit.errors import InputError, OutputError

MANIFEST = "manifest.json"
RECORDS = "records"
QUARANTINE = "quarantine"
#: Errors of the file system written to (full, read-only, over quota, file too large).
_DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG}
#: Version of the manifest layout (bumped when a key changes meaning).
MANIFEST_VERSION = 1


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


def sha256_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Path, size and SHA-256 of a file."""
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return {"path": os.fspath(path), "size": os.path.getsize(path), "sha256": digest}


class Manifest:
    """The contents of ``manifest.json``: common keys plus one section per stage.

    Stages add their own section with :meth:`section` (a plain dict, JSON-serializable values)
    and time their steps with :meth:`timed`.
    """

    def __init__(self) -> None:
        self.data: dict[str, Any] = {
            "manifest_version": MANIFEST_VERSION,
            "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "versions": versions(),
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


class RunDir:
    """Context manager that builds a run directory in a temporary sibling and renames it.

    Parameters
    ----------
    out : str or path
        The run directory to create.
    overwrite : bool
        Replace an existing ``out`` (it is moved aside and removed only after the new one is in
        place). Without it an existing non-empty ``out`` is an error.
    """

    def __init__(self, out: str | os.PathLike[str], *, overwrite: bool = False):
        self.out = Path(out)
        self.overwrite = overwrite
        self.manifest = Manifest()
        self.path = self.out.parent / f".{self.out.name}.tmp-{uuid.uuid4().hex[:12]}"

    @property
    def records_dir(self) -> Path:
        """Where record part files go."""
        return self.path / RECORDS

    @property
    def quarantine_dir(self) -> Path:
        """Where quarantine part files go."""
        return self.path / QUARANTINE

    def __enter__(self) -> Self:
        if self.out.exists() and not self.overwrite and (
            not self.out.is_dir() or any(self.out.iterdir())
        ):
            raise OutputError(
                f"output directory {str(self.out)!r} already exists",
                hint="choose a new directory or pass overwrite=True (--overwrite)",
            )
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

    def _is_output_failure(self, exc: OSError) -> bool:
        """Whether an error raised inside the block is a failure to write this run directory."""
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
            tmp_manifest = self.path / (MANIFEST + ".part")
            with open(tmp_manifest, "w", encoding="utf-8") as fh:
                fh.write(self.manifest.to_json())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_manifest, self.path / MANIFEST)
            old = None
            if self.out.exists():
                old = self.out.parent / f".{self.out.name}.old-{uuid.uuid4().hex[:12]}"
                os.replace(self.out, old)
            os.replace(self.path, self.out)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            shutil.rmtree(self.path, ignore_errors=True)
            raise OutputError(f"cannot write {str(self.out)!r}: {exc.strerror}") from None


def write_frame(df: pd.DataFrame, directory: str | os.PathLike[str], index: int = 0,
                schema: pa.Schema | None = None) -> Path:  # fmt: skip
    """Write one pandas frame as ``part-<index>.parquet`` in ``directory``."""
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    path = Path(directory) / f"part-{index:05d}.parquet"
    pq.write_table(table, path)
    return path


def _write_any(frame: dd.DataFrame | pd.DataFrame, directory: Path) -> None:
    if isinstance(frame, pd.DataFrame):
        write_frame(frame, directory)
    else:
        frame.to_parquet(directory, write_index=False, write_metadata_file=False,
                         name_function=lambda i: f"part-{i:05d}.parquet")  # fmt: skip


def write_run(
    out: str | os.PathLike[str],
    records: dd.DataFrame | pd.DataFrame,
    quarantine: dd.DataFrame | pd.DataFrame | None = None,
    *,
    sections: Mapping[str, Mapping[str, Any]] | None = None,
    inputs: list[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write records (and a quarantine) as a run directory, atomically.

    Parameters
    ----------
    out : str or path
        Run directory to create.
    records, quarantine : Dask or pandas DataFrame
        Frames to write under ``records/`` and ``quarantine/``. Dask frames are written by the
        workers (nothing is gathered to the client).
    sections : mapping, optional
        Stage sections for the manifest, e.g. ``{"protect": {"policy_sha256": ..., ...}}``.
    inputs : list of str, optional
        Input files to list in the manifest with size and SHA-256.
    overwrite : bool
        Replace an existing run directory.

    Returns
    -------
    pathlib.Path
        The run directory.
    """
    with RunDir(out, overwrite=overwrite) as run:
        with run.manifest.timed("write_records"):
            _write_any(records, run.records_dir)
        if quarantine is not None:
            with run.manifest.timed("write_quarantine"):
                _write_any(quarantine, run.quarantine_dir)
        if inputs:
            run.manifest.data["inputs"] = [sha256_file(p) for p in inputs]
        for name, content in (sections or {}).items():
            run.manifest.add_section(name, content)
    return Path(out)


def read_manifest(run: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a complete run directory."""
    path = Path(run) / MANIFEST
    if not path.is_file():
        raise InputError(
            f"{str(run)!r} is not a complete run directory (no {MANIFEST})",
            hint="pass a directory written by cemkit; an interrupted run leaves none",
        )
    with open(path, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def read_records(run: str | os.PathLike[str], what: str = RECORDS) -> dd.DataFrame:
    """Read ``run/records/`` (or ``run/quarantine/``) back as a lazy Dask DataFrame.

    Strings come back as ``string[pyarrow]``, nullable integers as pandas nullable integers and
    times as ``datetime64[ns, UTC]``, as the stage that wrote them had them.
    """
    from cemkit.io.convert import pandas_types

    read_manifest(run)
    directory = Path(run) / what
    files = sorted(str(p) for p in directory.glob("*.parquet"))
    if not files:
        raise InputError(f"run directory {str(run)!r} has no {what} files")
    meta = pq.read_schema(files[0]).empty_table().to_pandas(types_mapper=pandas_types)
    return dd.from_map(_read_parquet_file, files, meta=meta, label=f"read-{what}",
                       enforce_metadata=False)  # fmt: skip


def _read_parquet_file(path: str) -> pd.DataFrame:
    from cemkit.io.convert import to_pandas

    return to_pandas(pq.read_table(path))
