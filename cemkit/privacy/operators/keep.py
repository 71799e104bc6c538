"""``keep``: pass a column through unchanged."""

from __future__ import annotations

import pandas as pd

from cemkit.privacy.operators.base import Operator


class Keep(Operator):
    """Return the column as it is."""

    action = "keep"

    def apply(self, series: pd.Series) -> pd.Series:  # noqa: D102
        return series
