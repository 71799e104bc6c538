"""``cemkit.load``: any registered format into a lazy Dask DataFrame of canonical records."""

from __future__ import annotations

import csv
import glob
import itertools
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import dask.dataframe as dd
import pandas as pd

from cemkit.config import DEFAULT_MAX_QUARANTINE
from cemkit.errors import InputError
from cemkit.io.base import Loader, Part, empty_quarantine, registry
from cemkit.io.textfile import open_input

#: Pseudo-format: detect each file's format from its content.
AUTO = "auto"

_PCAP_MAGIC = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
               b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a")  # fmt: skip
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_CAUSE_NAME = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$|^NONE$")
_DISPOSITIONS = frozenset({"ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION"})
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


#: Share of numbers left unparsed above which a load warns (national numbers and no region).
UNPARSED_WARN_SHARE = 0.03
_NUMBER_KINDS = ("a_number_kind", "b_number_kind")


def number_counts(records: pd.DataFrame) -> dict[str, int]:
    """Numbers given and numbers left ``unparsed`` in a part's records (:func:`warn_unparsed`)."""
    given = unparsed = 0
    for col in _NUMBER_KINDS:
        if col in records.columns:
            kind = records[col]
            given += int((kind.notna() & (kind != "empty")).sum())
            unparsed += int((kind == "unparsed").sum())
    return {"numbers_given": given, "numbers_unparsed": unparsed}


def warn_unparsed(part_counts: Sequence[dict[str, Any]], default_region: str | None) -> str | None:
    """Warn (:class:`~cemkit.errors.ResultWarning`) when many numbers stayed unparsed.

    Unparsed numbers are kept as written, so national numbers without ``--region`` become
    tokens no prefix group matches. Returns the message, if any.
    """
    import warnings

    from cemkit.errors import ResultWarning

    given = sum(int(c.get("numbers_given", 0)) for c in part_counts)
    unparsed = sum(int(c.get("numbers_unparsed", 0)) for c in part_counts)
    if not given or unparsed / given <= UNPARSED_WARN_SHARE:
        return None
    what = ("no --region was given: national numbers (e.g. 020 7946 0000) cannot be read "
            "without one; set --region (default_region=) to the ISO 3166 code of the source"
            if default_region is None else
            f"check --region {default_region} (default_region=): is it the source's "
            "country?")  # fmt: skip
    message = (f"{unparsed} of {given} numbers ({100.0 * unparsed / given:.1f}%) stay unparsed "
               f"(kept as written, in no prefix group): {what}")  # fmt: skip
    warnings.warn(ResultWarning(message), stacklevel=2)
    return message


def _csv_vote(fields: list[str]) -> str | None:
    """The text format one CSV line of a switch looks like, from facts of each format."""
    n = len(fields)
    if n in (16, 17, 18, 21) and fields[14] in _DISPOSITIONS and _STAMP.match(fields[9]):
        return "asterisk"  # cdr_csv: start at field 10, disposition at field 15
    if n >= 11 and _CAUSE_NAME.match(fields[9]) and _UUID.match(fields[10]):
        return "freeswitch"  # example template: hangup_cause then uuid
    return None


def detect_format(path: str, sample: int = 20) -> str | None:
    """The format a file's content looks like (by magic bytes and first lines), or None.

    Compressed files are looked into. Recognized: ``sip-pcap`` (pcap/pcapng magic),
    ``parquet`` (``PAR1``), ``cucm`` (a ``cdrRecordType`` header), ``asterisk`` (cdr_csv lines
    with a disposition) and ``freeswitch`` (the example template's cause name and uuid). Other
    files (e.g. the ``generic`` format, which needs a mapping) give None.
    """
    try:
        with open_input(path) as fh:
            head = fh.read(4)
            if head.startswith(_PCAP_MAGIC):
                return "sip-pcap"
            if head == b"PAR1":
                return "parquet"
            lines = [head + fh.readline(), *itertools.islice(fh, sample - 1)]
    except (OSError, EOFError, ValueError):
        return None
    text = [raw.decode("utf-8", errors="replace").strip("\r\n") for raw in lines]
    if text and "cdrRecordType" in text[0]:
        return "cucm"
    votes: Counter[str] = Counter()
    for line in text:
        if not line.strip():
            continue
        try:
            fields = next(csv.reader([line]))
        except (csv.Error, StopIteration):
            continue
        vote = _csv_vote(fields)
        if vote:
            votes[vote] += 1
    if votes:
        name, count = votes.most_common(1)[0]
        if count * 2 > len([t for t in text if t.strip()]):
            return name
    return None


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
    #: Largest share of a file's rows that may be quarantined (:meth:`check_quarantine`).
    max_quarantine: float = DEFAULT_MAX_QUARANTINE

    def check_quarantine(self, inputs: Sequence[dict[str, Any]]) -> None:
        """Fail loudly when a file's quarantine exceeds :attr:`max_quarantine` of its rows.

        A file of another format, or a compressed file read as text, otherwise looks like a
        successful load with every row quarantined. The error names the file, the share, and
        the format its content looks like. ``inputs`` are the per-file counts of a manifest.
        """
        for f in inputs:
            read, bad = int(f.get("rows_read", 0)), int(f.get("rows_quarantined", 0))
            if read == 0 or f.get("size") == 0 or bad / read <= self.max_quarantine:
                continue
            path = str(f["path"])
            looks = detect_format(path)
            if looks and looks != self.loader.name:
                hint = f"its content looks like {looks}: use --format {looks} (or --format auto)"
            else:
                hint = ("check the format and its options; --max-quarantine SHARE raises the "
                        "limit when a damaged file is expected")  # fmt: skip
            raise InputError(
                f"input file {path!r}: {bad} of {read} rows quarantined "
                f"({100.0 * bad / read:.0f}%, more than the {100.0 * self.max_quarantine:g}% "
                f"allowed) reading it as {self.loader.name}",
                hint=hint,
            )

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
         tz: str = "UTC", default_region: str | None = None,
         max_quarantine: float = DEFAULT_MAX_QUARANTINE, **options: Any) -> Plan:  # fmt: skip
    """Resolve inputs and split them into parts, without parsing anything.

    ``format="auto"`` detects the format from the files' content (:func:`detect_format`); all
    files must then be of one format. With a named format, files whose content is clearly of
    another recognized format (a pcap among Asterisk CSVs) are an error naming them.
    ``paths`` may hold fsspec URLs and URL globs (``s3://bucket/cdr/*.csv``); the option
    ``storage_options`` goes to their filesystem (see :mod:`cemkit.io.paths`).
    """
    from cemkit.io.paths import stage

    storage_options = options.pop("storage_options", None)
    if not 0.0 <= float(max_quarantine) <= 1.0:
        raise InputError(f"max_quarantine must be a share between 0 and 1, got {max_quarantine}",
                         hint="e.g. --max-quarantine 0.5 for 50 %")  # fmt: skip
    loader = None if format == AUTO else make_loader(format, tz=tz, default_region=default_region,
                                                     **options)  # fmt: skip
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    files = expand_paths(stage(items, storage_options))
    detected = {f: detect_format(f) for f in files}
    if loader is None:
        unknown = [f for f, d in detected.items() if d is None]
        if unknown:
            raise InputError(f"cannot tell the format of {len(unknown)} file(s), e.g. "
                             f"{unknown[0]!r}", hint="name the format (e.g. --format generic "
                             "-o mapping=...)")  # fmt: skip
        kinds = Counter(detected.values())
        if len(kinds) > 1:
            listed = ", ".join(f"{n} {k}" for k, n in kinds.most_common())
            raise InputError(f"the inputs hold several formats ({listed})",
                             hint="load each format on its own")  # fmt: skip
        loader = make_loader(str(next(iter(kinds))), tz=tz, default_region=default_region,
                             **options)  # fmt: skip
    wrong = {f: d for f, d in detected.items() if d is not None and d != loader.name}
    if wrong and not (loader.name == "generic" and set(wrong.values()) <= {"parquet"}):
        first, looks = next(iter(wrong.items()))
        raise InputError(
            f"{len(wrong)} of {len(files)} input file(s) are not {loader.name}: {first!r} looks "
            f"like {looks}" + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""),
            hint=f"give only the {loader.name} files, or --format auto",
        )
    return Plan(loader, files, loader.parts(files), float(max_quarantine))


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
