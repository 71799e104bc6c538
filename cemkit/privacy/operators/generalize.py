"""``generalize``: keep only the leading digits of numbers, or round times down to a bucket."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cemkit.errors import PolicyError
from cemkit.privacy.operators.base import Operator, column_kind, on_distinct
from cemkit.privacy.policy import MIN_HIDDEN_DIGITS, GeneralizeRule


def truncate_values(values: pa.Array, digits: int) -> pa.Array:
    """The optional ``+`` and first ``digits`` digits of numbers long enough; null otherwise."""
    pattern = rf"^(?P<p>\+?\d{{{digits}}})\d{{{MIN_HIDDEN_DIGITS},}}$"
    return pc.struct_field(pc.extract_regex(values, pattern), [0])


class Generalize(Operator):
    """Truncate numbers to a prefix (``digits``) or floor times to a bucket (``every``)."""

    action = "generalize"
    kinds = ("string", "time")
    rule: GeneralizeRule

    def validate(self, dtype: object) -> None:  # noqa: D102
        super().validate(dtype)
        want = "time" if self.rule.every is not None else "string"
        if column_kind(dtype) != want:
            what = "`every:`" if want == "time" else "`digits:`"
            raise PolicyError(
                f"column {self.column!r}: generalize with {what} needs a {want} column, "
                f"found dtype {dtype}",
                hint="use `digits: N` on numbers and `every: 1h` on times",
            )
        if self.rule.every is not None:
            try:
                pd.tseries.frequencies.to_offset(self.rule.every)
            except ValueError:
                raise PolicyError(
                    f"column {self.column!r}: `every: {self.rule.every}` is not a time bucket",
                    hint="write e.g. 1min, 15min, 1h or 1D",
                ) from None

    def apply(self, series: pd.Series) -> pd.Series:  # noqa: D102
        if self.rule.every is not None:
            return series.dt.floor(self.rule.every)
        digits = self.rule.digits
        assert digits is not None
        return on_distinct(series, lambda v: truncate_values(v, digits))
