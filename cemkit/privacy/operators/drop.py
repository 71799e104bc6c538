"""``drop``: remove a column (the default for columns a policy does not name)."""

from __future__ import annotations

import pandas as pd

from cemkit.privacy.operators.base import Operator


class Drop(Operator):
    """Remove the column from the output."""

    action = "drop"

    def apply(self, series: pd.Series) -> None:  # noqa: D102
        return None
