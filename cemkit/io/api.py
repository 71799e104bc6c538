"""``cemkit.load``: any registered format into a lazy Dask DataFrame of canonical records."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import pandas as pd

from cemkit.errors import InputError
from cemkit.io.base import Loader, Part, empty_quarantine, registry


def expand_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """Files named by paths, globs and directories (directories: their files, recursively).

    Hidden files (``.name``) inside directories are skipped. The order is sorted and stable.
    An entry that matches nothing is an :class:`~cemkit.errors.InputError` naming it.
    """
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    out: list[str] = []
    for item in items:
        p = os.fspath(item)
        if os.path.isdir(p):
            found = []
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found += [os.path.join(root, f) for f in files if not f.startswith(".")]
            if not found:
                raise InputError(f"input directory {p!r} holds no files")
            out += sorted(found)
        elif glob.has_magic(p):
            found = sorted(f for f in glob.glob(p, recursive=True) if os.path.isfile(f))
            if not found:
                raise InputError(f"input pattern {p!r} matches no file", hint="check the pattern")
            out += found
        else:
            if not os.path.exists(p):
                raise InputError(f"input file {p!r} does not exist", hint="check the path")
            out.append(p)
    if not out:
        raise InputError("no input files given")
    return list(dict.fromkeys(out))


@dataclass
class Plan:
    """A loader with its inputs split into parts (nothing read yet)."""

    loader: Loader
    paths: list[str]
    parts: list[Part]

    def records(self) -> dd.DataFrame:
        """Canonical records, one partition per part (``dd.from_map``, explicit meta)."""
        ddf = dd.from_map(
            _ReadRecords(self.loader), self.parts, meta=self.loader.meta(),
            enforce_metadata=False, label=f"load-{self.loader.name}",
        )  # fmt: skip
        return self.loader.finish(ddf, self.parts)

    def quarantine(self) -> dd.DataFrame:
        """Quarantined rows, one partition per part (reads the inputs again when computed)."""
        return dd.from_map(
            _ReadQuarantine(self.loader), self.parts, meta=empty_quarantine(),
            enforce_metadata=False, label=f"quarantine-{self.loader.name}",
        )  # fmt: skip


class _ReadRecords:
    """Picklable callable for ``from_map``: the records of a part."""

    def __init__(self, loader: Loader):
        self.loader = loader

    def __call__(self, part: Part) -> pd.DataFrame:
        return self.loader.read_part(part)[0]


class _ReadQuarantine(_ReadRecords):
    """Picklable callable for ``from_map``: the quarantine of a part."""

    def __call__(self, part: Part) -> pd.DataFrame:
        return self.loader.read_part(part)[1]


def make_loader(format: str, *, tz: str = "UTC", default_region: str | None = None,
                **options: Any) -> Loader:  # fmt: skip
    """Instantiate the loader registered under ``format`` (unknown names list the known ones)."""
    import cemkit.io  # noqa: F401 - registers every format

    return registry.get(format)(tz=tz, default_region=default_region, **options)


def plan(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], format: str, *,
         tz: str = "UTC", default_region: str | None = None, **options: Any) -> Plan:  # fmt: skip
    """Resolve inputs and split them into parts, without parsing anything.

    ``paths`` may hold fsspec URLs and URL globs (``s3://bucket/cdr/*.csv``); the option
    ``storage_options`` goes to their filesystem (see :mod:`cemkit.io.paths`).
    """
    from cemkit.io.paths import stage

    storage_options = options.pop("storage_options", None)
    loader = make_loader(format, tz=tz, default_region=default_region, **options)
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    files = expand_paths(stage(items, storage_options))
    return Plan(loader, files, loader.parts(files))


PathsLike = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def load(paths: PathsLike, format: str, *, tz: str = "UTC", default_region: str | None = None,
         **options: Any) -> dd.DataFrame:  # fmt: skip
    """Load usage records of one source format into the canonical schema, lazily.

    Parameters
    ----------
    paths : str, path or list of them
        Files, globs (``"cdr/*.csv"``) or directories (all files below them), local or as
        fsspec URLs (``s3://bucket/cdr/*.csv``, ``gs://...``, ``file://...``; remote files are
        staged locally once, keeping their names).
    format : str
        A registered format: ``asterisk``, ``freeswitch``, ``cucm``, ``generic``, ``parquet``
        (and ``sip-pcap`` when installed). An unknown name lists the known ones.
    tz : str
        IANA zone of the wall-clock times the source writes (Asterisk and FreeSWITCH write
        local time by default). Times are converted to UTC.
    default_region : str, optional
        ISO 3166 region for numbers written in national format (e.g. ``"GB"``).
    **options
        Format options (e.g. ``columns=18`` for Asterisk, ``template=[...]`` for FreeSWITCH,
        ``mapping="copenhagen-calls"`` for generic) and ``blocksize`` (bytes per partition)
        for the text formats, and ``storage_options`` for URL inputs. Unknown options are an
        error naming the valid ones.

    Returns
    -------
    dask.dataframe.DataFrame
        Canonical records; nothing has been read yet beyond file sizes and line ends. Rows that
        could not be read are not in it: see :func:`cemkit.io.load_quarantine` and
        ``cemkit load`` (which writes both, with counts, in one pass).

    Examples
    --------
    >>> import cemkit
    >>> ddf = cemkit.load("cdr/Master.csv", format="asterisk", tz="Europe/Madrid",
    ...                   default_region="ES")  # doctest: +SKIP
    >>> ddf.outcome.value_counts().compute()  # doctest: +SKIP
    """
    return plan(paths, format, tz=tz, default_region=default_region, **options).records()


def load_quarantine(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], format: str,
                    *, tz: str = "UTC", default_region: str | None = None,
                    **options: Any) -> dd.DataFrame:  # fmt: skip
    """The rows :func:`load` would set aside, with file, line, field, reason and raw line."""
    return plan(paths, format, tz=tz, default_region=default_region, **options).quarantine()
