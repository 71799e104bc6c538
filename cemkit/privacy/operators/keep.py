"""``keep``: pass a column through unchanged (source names: their numbers tokenized)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cemkit.privacy.operators.base import Operator, column_kind, on_distinct

#: A text that may hold a number: 7 digits, perhaps with separators (cheap prefilter).
_DIGITS = r"\d(?:[ .()/-]{0,2}\d){6}"


class Keep(Operator):
    """Return the column as it is."""

    action = "keep"

    def apply(self, series: pd.Series) -> pd.Series:  # noqa: D102
        return series


class KeepSourceName(Keep):
    """``keep`` of a column holding source names (``record_id``, quarantine ``file``).

    Source names are data: Asterisk writes one file per account code, and account codes are
    often telephone numbers. Number-like runs of the file tag (in a record id
    ``source:tag:line``, the part between the first and the last ``:``; in a path, all of it)
    become keyed tokens (:func:`cemkit.privacy.enforce.source_name`); everything else is kept.
    """

    def apply(self, series: pd.Series) -> pd.Series:  # noqa: D102
        if len(series) == 0 or column_kind(series.dtype) != "string":
            return series
        return on_distinct(series, self._names)

    def _names(self, values: pa.Array) -> pa.Array:
        from cemkit.privacy.enforce import source_name

        maybe = pc.fill_null(pc.match_substring_regex(values, _DIGITS), False)
        out = values.to_pylist()
        for i in np.flatnonzero(maybe.to_numpy(zero_copy_only=False)).tolist():
            value = out[i]
            if self.column == "record_id" and value.count(":") >= 2:
                head, _, rest = value.partition(":")
                tag, _, tail = rest.rpartition(":")
                out[i] = f"{head}:{source_name(tag, self.key)}:{tail}"
            else:
                out[i] = source_name(value, self.key)
        return pa.array(out, pa.string())
