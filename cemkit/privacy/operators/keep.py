"""``keep``: pass a column through unchanged (source names: their numbers tokenized)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cemkit.privacy._parties import may_hold_numbers
from cemkit.privacy.enforce import source_name
from cemkit.privacy.operators.base import Operator, column_kind, from_arrow, on_distinct, to_arrow

#: A text that may hold a number: 7 digits, perhaps with separators (cheap prefilter).
_DIGITS = r"\d(?:[ .()/-]{0,2}\d){6}"
#: ``source:tag:position``: the tag is everything between the first and the last ``:``.
_RECORD_ID = r"^(?P<source>[^:]*):(?P<tag>.*):(?P<position>[^:]*)$"
#: ``source:position`` (no tag; cemkit's synthetic records): a row position, a plain decimal
#: below 10^9 (no leading 0, no ``+``: not a national or international number, not 10-digit
#: North American ones); the source is a name like a tag.
_SOURCE_POSITION = r"^(?P<source>[^:]*):(?P<position>0|[1-9][0-9]{0,8})$"


class Keep(Operator):
    """Return the column as it is."""

    action = "keep"

    def apply(self, series: pd.Series) -> pd.Series:  # noqa: D102
        return series


class KeepSourceName(Keep):
    """``keep`` of a column holding source names (``record_id``, quarantine ``file``).

    Source names are data: Asterisk writes one file per account code, and account codes are
    often telephone numbers. Number-like runs of the file tag (in a record id
    ``source:tag:line``, the part between the first and the last ``:``; in an id
    ``source:position`` with a plain row position below 10^9, the source; in a path, all of it)
    become keyed tokens (:func:`cemkit.privacy.enforce.source_name`); everything else is kept.
    """

    def apply(self, series: pd.Series) -> pd.Series:  # noqa: D102
        if len(series) == 0 or column_kind(series.dtype) != "string":
            return series
        if self.column != "record_id":
            return on_distinct(series, self._names)
        # Record ids are all distinct, their file tags are few: split once (vectorized), treat
        # the distinct tags, join again.
        values = to_arrow(series)
        # cheap prefilter: a 7-digit run before the last ':' (not the line number), or in an
        # id without the source:tag:position shape (one jitted pass, ~10x the regexes' speed)
        if not may_hold_numbers(values):
            return series
        parts = pc.extract_regex(values, _RECORD_ID)
        tags = pc.struct_field(parts, [1]).dictionary_encode()
        names = tags.dictionary.to_pylist()
        mapped = [source_name(t, self.key) for t in names]
        unmatched = pc.fill_null(pc.invert(pc.is_valid(parts)), True)
        new_tags = pa.array(mapped, pa.string()).take(tags.indices)
        joined = pc.binary_join_element_wise(
            pc.struct_field(parts, [0]), new_tags, pc.struct_field(parts, [2]), ":"
        )
        out = pc.if_else(unmatched, values, joined)
        if pc.any(unmatched).as_py():
            # ``source:position``: the source treated as a tag, the position kept (every row
            # of a synthetic world past the millionth would otherwise go through the number
            # parser one by one, and come out with its row number tokenized)
            short = pc.extract_regex(values, _SOURCE_POSITION)
            use = pc.and_(unmatched, pc.is_valid(short))
            if pc.any(use).as_py():
                sources = pc.struct_field(short, [0]).dictionary_encode()
                renamed = pa.array([source_name(t, self.key) for t in
                                    sources.dictionary.to_pylist()], pa.string())  # fmt: skip
                joined_short = pc.binary_join_element_wise(
                    renamed.take(sources.indices), pc.struct_field(short, [1]), ":"
                )
                out = pc.if_else(use, joined_short, out)
                unmatched = pc.and_(unmatched, pc.invert(use))
        result = from_arrow(out, series.index)
        if pc.any(unmatched).as_py():  # no "source:tag:position" shape: the whole value
            result = result.where(~unmatched.to_numpy(zero_copy_only=False),
                                  on_distinct(series, self._names))  # fmt: skip
        return result.astype(series.dtype)

    def _names(self, values: pa.Array) -> pa.Array:
        maybe = pc.fill_null(pc.match_substring_regex(values, _DIGITS), False)
        out = values.to_pylist()
        for i in np.flatnonzero(maybe.to_numpy(zero_copy_only=False)).tolist():
            out[i] = source_name(out[i], self.key)
        return pa.array(out, pa.string())
