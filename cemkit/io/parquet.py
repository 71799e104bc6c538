"""Canonical Parquet, as cemkit writes it (``DIR/records/part-*.parquet``, synthetic workloads).

One part per row group. Columns are conformed to the canonical dtypes; ``src_*`` columns found
in the files are kept (with the PII class recorded in their field metadata, else free text).
Rows that break the schema's row rules (a required column empty, a categorical value outside its
allowed values) are quarantined with the row as JSON.

Examples
--------
>>> import cemkit
>>> ddf = cemkit.load("run1/records/", format="parquet")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cemkit import labels
from cemkit.errors import InputError
from cemkit.io.base import Loader, Part, registry, with_read_units
from cemkit.io.convert import quarantine_frame, to_pandas
from cemkit.io.csvblock import Quarantined
from cemkit.io.textfile import check_readable
from cemkit.outcomes import REGISTRATION_OUTCOMES
from cemkit.schema import BY_NAME, CATEGORIES, EXTENSION_PREFIX, PII, REQUIRED, Column, conform


@registry.register
class ParquetLoader(Loader):
    """Canonical Parquet files."""

    name = "parquet"
    description = "canonical Parquet as cemkit writes it"
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._ext: tuple[Column, ...] = ()

    def extension_columns(self) -> tuple[Column, ...]:
        """``src_*`` columns found in the input files (known after :meth:`parts`)."""
        return self._ext

    def parts(self, paths: Sequence[str]) -> list[Part]:
        """One part per row group; collects the files' ``src_*`` columns."""
        out: list[Part] = []
        ext: dict[str, Column] = {}
        for path in paths:
            check_readable(path)
            try:
                pf = pq.ParquetFile(path)
            except (pa.ArrowInvalid, OSError) as exc:
                raise InputError(f"input file {path!r} is not readable Parquet: {exc}") from None
            schema = pf.schema_arrow
            missing = [c for c in REQUIRED if c not in schema.names]
            if missing:
                raise InputError(
                    f"input file {path!r} is not canonical Parquet: no column(s) {missing}",
                    hint="use format='generic' with a mapping for other Parquet files",
                )
            for f in schema:
                if f.name.startswith(EXTENSION_PREFIX) and f.name not in ext:
                    md = f.metadata or {}
                    pii = PII(md.get(b"pii", b"free_text").decode())
                    meaning = md.get(b"meaning", b"source-specific column").decode()
                    t = f.type if not pa.types.is_large_string(f.type) else pa.string()
                    if pa.types.is_dictionary(t):
                        t = t.value_type
                    ext[f.name] = Column(f.name, t, pii, meaning)
            first = 1
            for g in range(pf.metadata.num_row_groups):
                out.append(Part(path, len(out), g, g + 1, first))
                first += pf.metadata.row_group(g).num_rows
        self._ext = tuple(ext.values())
        return out

    #: Every row of the file's row groups is a row read: a record or a quarantined row.
    unit_identities: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = (
        ("parquet_rows", ("rows_read",)),
    )

    def read_part(self, part: Part) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Read one row group, conform it, quarantine rows that break row rules."""
        return self._read(part, narrow=False)

    def read_part_narrow(self, part: Part) -> tuple[pd.DataFrame, pd.DataFrame]:
        """:meth:`read_part`, the label columns read narrow from their dictionary pages.

        Arrow dictionaries made categoricals (:func:`cemkit.labels.narrow`): their strings are
        never made, nor hashed again to narrow them; the row rules test them as they are.
        """
        return self._read(part, narrow=True)

    def _read(self, part: Part, narrow: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
        metadata = pq.read_metadata(part.path)
        labelled: list[str] = []
        if narrow:
            names = metadata.schema.to_arrow_schema().names
            labelled = [n for n in names if n in labels.VOCABULARIES]
        pf = pq.ParquetFile(part.path, metadata=metadata, read_dictionary=labelled or None)
        table = pf.read_row_group(part.start)
        for i, f in enumerate(table.schema):
            if pa.types.is_dictionary(f.type) and not (
                f.name in labelled and _is_string(f.type.value_type)
            ):
                table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
        df = to_pandas(table)
        known = set(BY_NAME) | {c.name for c in self._ext}
        df = df[[c for c in df.columns if c in known]]
        df = conform(df, self._ext, narrow=labelled)
        bad = np.zeros(len(df), dtype=bool)
        q = Quarantined()
        reasons: list[tuple[np.ndarray, str, str]] = []
        for name in REQUIRED:
            reasons.append((df[name].isna().to_numpy(), name, "required value is empty"))
        for name, allowed in CATEGORIES.items():
            col = df[name]
            m = (col.notna() & ~col.isin(allowed)).to_numpy(dtype=bool)
            reasons.append((m, name, f"value outside {list(allowed)}"))
        is_reg = (df["record_kind"] == "registration").fillna(False).to_numpy(dtype=bool)
        reg_outcome = df["outcome"].isin(REGISTRATION_OUTCOMES).fillna(False).to_numpy(dtype=bool)
        known_outcome = df["outcome"].notna().to_numpy(dtype=bool)
        other_kind = (
            "outcome of the other record kind (registrations take "
            "cemkit.outcomes.REGISTRATION_OUTCOMES, calls the call outcomes)"
        )
        reasons.append((known_outcome & (is_reg != reg_outcome), "outcome", other_kind))
        for mask, field_name, reason in reasons:
            new = mask & ~bad
            if new.any():
                for j in np.flatnonzero(new):
                    row = {k: (None if pd.isna(v) else v) for k, v in df.iloc[j].items()}
                    q.add(part.first_line + int(j), field_name, reason,
                          json.dumps(row, default=str, sort_keys=True))  # fmt: skip
                bad |= new
        if bad.any():
            df = df[~bad]
        quarantine = with_read_units(quarantine_frame(part.path, q), {"parquet_rows": len(bad)})
        df = df.reset_index(drop=True)
        return (_narrowed(df, labelled) if narrow else df), quarantine


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _narrowed(df: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The label columns read as dictionaries as :func:`cemkit.labels.narrow` makes them.

    Their categories: the vocabulary and the other values the rows kept hold (as when narrowed
    from strings): a value that only quarantined rows held is no category.
    """
    for name in names:
        values = df[name].array
        if isinstance(values, pd.Categorical) and not set(values.categories) <= set(
            labels.VOCABULARIES[name]
        ):
            df[name] = values.remove_unused_categories()
    return labels.narrow(df, names)
