"""``bin``: round numbers down to a multiple of ``step`` (speeds to 10 km/h bands, ...)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cemkit.privacy.operators.base import Operator
from cemkit.privacy.policy import BinRule


class Bin(Operator):
    """Replace each value by the lower edge of its bin of width ``step``."""

    action = "bin"
    kinds = ("number",)
    rule: BinRule

    def apply(self, series: pd.Series) -> pd.Series:  # noqa: D102
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return pd.Series(np.floor(values / self.rule.step) * self.rule.step, index=series.index)
