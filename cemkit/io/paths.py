"""Inputs where users keep them: fsspec URLs and globs (``s3://``, ``gs://``, ``file://``, ...).

The one place cemkit understands URLs. :func:`stage` turns every URL (and URL glob or
"directory") of an input list into local files: ``file://`` URLs become plain paths, and files of
any other fsspec filesystem are copied once into a local staging directory that keeps their path
(``<staging>/s3/bucket/cdr/Master.csv``), so that loaders, file tags, record ids and quarantine rows
are exactly those of the same files on a local disk. Plain paths pass through untouched.

``storage_options`` are given to the filesystem (``{"anon": True}``, ``{"key": ..., "secret":
...}``, ``{"client_kwargs": {"endpoint_url": ...}}`` for an S3-compatible store). Staging needs
the filesystem's package (``s3fs``, ``gcsfs``, ...); without it the error says which to install.
Staged copies live in ``$CEMKIT_STAGING`` or a temporary directory removed when the process ends.

:func:`publish` copies a finished local directory to a URL (a report directory, for example).

Examples
--------
>>> import fsspec
>>> fs = fsspec.filesystem("memory")
>>> fs.pipe("/bucket/cdr/a.csv", b"x,y")
>>> local = stage(["memory://bucket/cdr/*.csv"])
>>> [p.endswith("memory/bucket/cdr/a.csv") for p in local]
[True]
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cemkit.errors import InputError, OutputError

#: Environment variable naming a directory for staged copies (default: a temporary directory).
STAGING_ENV = "CEMKIT_STAGING"
_staging: Path | None = None


def is_url(path: str | os.PathLike[str]) -> bool:
    """True for ``protocol://...`` (any fsspec protocol, ``file://`` included)."""
    text = os.fspath(path)
    head, sep, _ = text.partition("://")
    return bool(sep) and head.replace("+", "").replace("-", "").isalnum() and len(head) > 1


def _protocol(url: str) -> str:
    return url.partition("://")[0].lower()


def _filesystem(url: str, storage_options: Mapping[str, Any] | None) -> Any:
    import fsspec

    protocol = _protocol(url)
    try:
        return fsspec.filesystem(protocol, **dict(storage_options or {}))
    except ImportError as exc:
        raise InputError(
            f"cannot read {protocol}:// inputs: {exc}",
            hint=f"install the fsspec filesystem for {protocol}:// (e.g. s3fs, gcsfs, adlfs)",
        ) from None
    except ValueError as exc:
        raise InputError(f"unknown filesystem {protocol}:// ({exc})") from None


def staging_dir() -> Path:
    """Where remote inputs are copied (created on first use)."""
    global _staging
    if _staging is None:
        given = os.environ.get(STAGING_ENV)
        if given:
            _staging = Path(given)
            _staging.mkdir(parents=True, exist_ok=True)
        else:
            _staging = Path(tempfile.mkdtemp(prefix="cemkit-staging-"))
            atexit.register(shutil.rmtree, _staging, True)
    return _staging


def _remote_files(fs: Any, url: str) -> list[str]:
    path = fs._strip_protocol(url)
    import glob as _glob

    if _glob.has_magic(path):
        found = [p for p in fs.glob(path) if fs.isfile(p)]
        if not found:
            raise InputError(f"input pattern {url!r} matches no file", hint="check the pattern")
        return sorted(found)
    if fs.isdir(path):
        found = [p for p in fs.find(path) if not Path(p).name.startswith(".")]
        if not found:
            raise InputError(f"input directory {url!r} holds no files")
        return sorted(found)
    if not fs.exists(path):
        raise InputError(f"input file {url!r} does not exist", hint="check the URL")
    return [path]


def stage(
    paths: Iterable[str | os.PathLike[str]], storage_options: Mapping[str, Any] | None = None
) -> list[str]:
    """Local paths for ``paths``: URLs copied (once) into the staging directory, paths as given."""
    out: list[str] = []
    for item in paths:
        text = os.fspath(item)
        if not is_url(text):
            out.append(text)
            continue
        if _protocol(text) in {"file", "local"}:
            out.append(text.partition("://")[2])
            continue
        fs = _filesystem(text, storage_options)
        protocol = _protocol(text)
        for remote in _remote_files(fs, text):
            local = staging_dir() / protocol / remote.lstrip("/")
            info = fs.info(remote)
            size = info.get("size")
            if not (local.is_file() and size is not None and local.stat().st_size == size):
                local.parent.mkdir(parents=True, exist_ok=True)
                try:
                    fs.get_file(remote, str(local))
                except OSError as exc:
                    raise InputError(
                        f"cannot read {protocol}://{remote.lstrip('/')}: {exc}"
                    ) from None
            out.append(str(local))
    return out


def publish(
    local_dir: str | os.PathLike[str], url: str, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Copy a finished local directory to ``url`` (every file, same relative paths)."""
    fs = _filesystem(url, storage_options)
    base = fs._strip_protocol(url).rstrip("/")
    root = Path(local_dir)
    try:
        for f in sorted(p for p in root.rglob("*") if p.is_file()):
            fs.put_file(str(f), f"{base}/{f.relative_to(root).as_posix()}")
    except OSError as exc:
        raise OutputError(f"cannot write to {url}: {exc}") from None
