"""Loader interface, format registry and quarantine schema shared by every source format.

A loader turns files of one source format into canonical records (see :mod:`cemkit.schema`)
plus a quarantine of the rows it could not read. It splits its inputs into :class:`Part` objects
(a file, or a byte range / packet range of one), and reads each part independently, so Dask can
read parts in parallel. ``read_part`` must be a pure function of the part: same part, same output.

Every row read ends up in exactly one of the two frames: rows read = rows loaded + rows
quarantined, per part.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
import pyarrow as pa

from cemkit.errors import FormatError, InputError
from cemkit.numbers import validate_region
from cemkit.schema import Column, arrow_schema, empty_frame, pandas_dtypes

#: Schema of quarantined rows. ``raw`` holds the row as read (it may contain raw TNs: the
#: quarantine is input-side data and is protected like records before it leaves a run).
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("file", pa.string(), metadata={"meaning": "input file path"}),
        pa.field("line", pa.int64(), metadata={"meaning": "1-based line (or packet) number"}),
        pa.field("field", pa.string(), metadata={"meaning": "offending field, or '' for the row"}),
        pa.field("reason", pa.string(), metadata={"meaning": "why the row was not loaded"}),
        pa.field("raw", pa.string(), metadata={"meaning": "the row as read", "pii": "free_text"}),
    ]
)


def empty_quarantine() -> pd.DataFrame:
    """An empty quarantine frame with its dtypes (the ``meta`` of Dask graphs)."""
    return pd.DataFrame(
        {n: pd.Series([], dtype=d) for n, d in pandas_dtypes(QUARANTINE_SCHEMA).items()}
    )


def validate_zone(tz: str) -> str:
    """An IANA zone name the zone database knows (``UTC`` included), or a clear error."""
    import zoneinfo

    if str(tz).upper() == "UTC":
        return "UTC"
    try:
        zoneinfo.ZoneInfo(str(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        import difflib

        close = difflib.get_close_matches(str(tz), sorted(zoneinfo.available_timezones()), n=3)
        hint = (f"did you mean {' or '.join(close)}?" if close
                else "give an IANA zone name such as Europe/London or UTC")  # fmt: skip
        raise InputError(f"unknown time zone {tz!r}", hint=hint) from None
    return str(tz)


@dataclass(frozen=True)
class Part:
    """One independently readable piece of input: a whole file or a range within one."""

    path: str
    index: int = 0
    start: int = 0  #: byte offset (or first packet) where the part begins
    stop: int = -1  #: byte offset (or packet) where it ends, -1 for end of file
    first_line: int = 1  #: 1-based line number of the first line of the part
    #: newline bytes in ``[start, stop)`` when planning counted them (None: not counted)
    newlines: int | None = None


class Loader(abc.ABC):
    """Base class of source-format loaders.

    Subclasses set :attr:`name`, :attr:`description`, :attr:`extensions` and :attr:`options`
    (the names of the format-specific keyword options they accept, with defaults).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    extensions: ClassVar[tuple[Column, ...]] = ()
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, *, tz: str = "UTC", default_region: str | None = None, **options: Any):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise FormatError(
                f"format {self.name!r} has no option(s) {', '.join(unknown)}",
                hint=f"its options are: {known}",
            )
        self.tz = validate_zone(tz)
        self.default_region = validate_region(default_region)
        self.opts: dict[str, Any] = {**self.options, **options}
        #: SHA-256 (hex) of input files hashed while :meth:`parts` scanned them anyway
        self.digests: dict[str, str] = {}
        #: Inputs :meth:`parts` did not need to scan (one part): hashed when first asked for
        self.hash_on_demand: set[str] = set()

    def known_digest(self, path: str) -> dict[str, Any] | None:
        """Path, size and SHA-256 of an input hashed while planning (``None``: not hashed).

        The run's manifest takes it instead of reading the file once more to checksum it. An
        input of one part, which planning had no need to read, is hashed here, when asked (a
        warehouse worker, which has the checksum already, never asks).
        """
        import os

        if path in self.hash_on_demand and path not in self.digests:
            from cemkit.runs.store import sha256_of

            self.digests[path] = sha256_of(path)
        if path not in self.digests:
            return None
        return {"path": path, "size": os.path.getsize(path), "sha256": self.digests[path]}

    def extension_columns(self) -> tuple[Column, ...]:
        """Source-specific columns this loader instance writes (may depend on its options)."""
        return tuple(self.extensions)

    def record_schema(self) -> pa.Schema:
        """Arrow schema of the records this loader writes (measurement loaders override it)."""
        return arrow_schema(self.extension_columns())

    def meta(self) -> pd.DataFrame:
        """Empty frame with this format's output columns and dtypes."""
        return empty_frame(self.extension_columns())

    def rows_read(self, part: Part, records: pd.DataFrame, quarantine: pd.DataFrame) -> int:
        """Rows of ``part`` that were read: loaded + quarantined unless the format says more.

        A format whose parts feed something other than records (e.g. CUCM CMR files, whose
        rows are attached to CDRs) overrides it so that the run's counts still reconcile.
        """
        return len(records) + len(quarantine)

    def rows_attached(self, part: Part, records: pd.DataFrame, quarantine: pd.DataFrame) -> int:
        """Rows of ``part`` read into other records rather than into records of their own.

        CUCM CMR rows are attached to their CDRs (as MOS, loss, jitter): they are read, not
        quarantined, and no record of their own. A run's counts reconcile as rows read = rows
        loaded (records) + rows quarantined + rows attached.
        """
        return 0

    #: Identities between read units that must hold for each input file: ``(total, parts)``
    #: means ``units[total] == sum(units[p] for p in parts)``; ``rows_read`` may be named as a
    #: unit. The runner checks them and writes them, with their figures, to the manifest.
    unit_identities: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = ()

    def read_units(self, part: Part, records: pd.DataFrame, quarantine: pd.DataFrame
                   ) -> dict[str, int]:  # fmt: skip
        """What ``part`` was read as, in the format's own units (lines, packets, BER records).

        Summed per input file in the run's manifest (``read_units``), where
        :attr:`unit_identities` must hold: e.g. every packet of a capture is a UDP or TCP
        packet or was skipped for a reason. By default, what :meth:`read_part` attached to its
        quarantine frame with :func:`with_read_units`.
        """
        return {k: int(v) for k, v in quarantine.attrs.get(READ_UNITS_ATTR, {}).items()}

    def unit_warnings(self, units: dict[str, int]) -> list[str]:
        """What the read units of a load call for a warning about (counts only, never data)."""
        return []

    def finish(self, records: Any, parts: Sequence[Part]) -> Any:
        """Post-process the lazily read records as a whole (default: unchanged).

        ``records`` is a Dask DataFrame built from :meth:`read_part` over ``parts``; a format
        that must combine inputs (CUCM attaches CMR quality metrics to CDRs) returns a new lazy
        frame with the same meta. Must not compute anything.
        """
        return records

    @abc.abstractmethod
    def parts(self, paths: Sequence[str]) -> list[Part]:
        """Split input files into independently readable parts (may stat files, never parse)."""

    @abc.abstractmethod
    def read_part(self, part: Part) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Read one part: (canonical records, quarantine)."""

    def read_part_narrow(self, part: Part) -> tuple[pd.DataFrame, pd.DataFrame]:
        """:meth:`read_part` with the label columns narrow, as a run holds them.

        (:func:`cemkit.labels.narrow`; ``node`` stays text: protect reads it.) A format that
        reads them narrow at their source (Parquet's dictionary pages) overrides it.
        """
        from cemkit import labels

        records, quarantine = self.read_part(part)
        return labels.narrow(records), quarantine


#: Key of a quarantine frame's ``attrs`` under which :meth:`Loader.read_part` leaves its part's
#: read units for :meth:`Loader.read_units` (the two run in the same task, on the same frame).
READ_UNITS_ATTR = "cemkit_read_units"


def with_read_units(quarantine: pd.DataFrame, units: dict[str, int]) -> pd.DataFrame:
    """Attach a part's read units to its quarantine frame (see :meth:`Loader.read_units`)."""
    quarantine.attrs[READ_UNITS_ATTR] = {k: int(v) for k, v in units.items()}
    return quarantine


def unit_equations(units: dict[str, int],
                   identities: Sequence[tuple[str, tuple[str, ...]]]
                   ) -> list[tuple[str, bool]]:  # fmt: skip
    """Each identity written out with its figures, and whether it holds.

    Examples
    --------
    >>> unit_equations({"lines": 3, "header_lines": 1, "rows_read": 2},
    ...                [("lines", ("header_lines", "rows_read"))])
    [('3 lines = 1 header_lines + 2 rows_read', True)]
    """
    out = []
    for total, parts in identities:
        if total not in units:
            continue
        values = [int(units.get(p, 0)) for p in parts]
        text = f"{int(units[total])} {total} = " + " + ".join(
            f"{v} {p}" for v, p in zip(values, parts, strict=True)
        )
        out.append((text, int(units[total]) == sum(values)))
    return out


#: The modules of the shipped formats, imported (and so registered) on the first look-up.
FORMAT_MODULES = ("asterisk", "freeswitch", "cucm", "generic", "parquet", "gnettrack", "agent")
#: Formats whose module may be absent from a build.
OPTIONAL_FORMAT_MODULES = ("sip_pcap", "threegpp")


def _import_format(module: str) -> None:
    """Import ``cemkit.io.<module>``; an optional format absent from this build is skipped."""
    try:
        importlib.import_module(f"cemkit.io.{module}")
    except ModuleNotFoundError as exc:  # only the optional module itself may be missing
        if module not in OPTIONAL_FORMAT_MODULES or exc.name != f"cemkit.io.{module}":
            raise


class _Registry:
    """Format name → loader class. Unknown names list the known ones."""

    def __init__(self) -> None:
        self._loaders: dict[str, type[Loader]] = {}
        self._imported = False

    def _import_formats(self) -> None:
        # on first use rather than at ``import cemkit.io``: the CLI's help must not pay for them
        if self._imported:
            return
        self._imported = True
        for module in FORMAT_MODULES + OPTIONAL_FORMAT_MODULES:
            _import_format(module)

    def _import_module_of(self, name: str) -> None:
        module = str(name).replace("-", "_")
        if module in FORMAT_MODULES + OPTIONAL_FORMAT_MODULES:
            _import_format(module)

    def register(self, cls: type[Loader]) -> type[Loader]:
        self._loaders[cls.name] = cls
        return cls

    def names(self) -> list[str]:
        self._import_formats()
        return sorted(self._loaders)

    def get(self, name: str) -> type[Loader]:
        if name not in self._loaders:
            self._import_module_of(name)  # the one format asked for: not every format's imports
        if name not in self._loaders:
            self._import_formats()
        try:
            return self._loaders[name]
        except KeyError:
            raise FormatError(
                f"unknown format {name!r}; known: {', '.join(self.names())}"
            ) from None

    def __iter__(self) -> Iterator[type[Loader]]:
        self._import_formats()
        return iter(self._loaders.values())


#: The module singleton every loader registers with (``@registry.register``).
registry = _Registry()
