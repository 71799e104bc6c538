"""``grid``: generalize positions to the squares of a grid of ``size_m`` metres.

Latitude bands are ``size_m / 110,574`` degrees high (a degree of latitude is at least
110,574 m long). A longitude step depends on the latitude
(a degree of longitude shrinks towards the poles), so the longitude column reads the row's
latitude and widens its step by the cosine of the band's edge nearest the pole: every square is
at least ``size_m`` wide. With ``output: index`` (default) the columns hold the square's row and
column numbers, so no degrees leave at all; with ``output: centre`` the square's centre.

Examples
--------
>>> import numpy as np
>>> rows, _ = grid_latitude(np.array([51.935604]), 500.0)
>>> int(rows[0])
31388
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cemkit.errors import PolicyError
from cemkit.privacy.operators.base import Operator
from cemkit.privacy.policy import GridRule

#: Metres per degree of latitude: the shortest (at the equator, WGS84), so that squares are
#: never smaller than ``size_m`` anywhere.
METRES_PER_DEGREE = 110_574.0
_MAX_LAT = 89.9


def grid_latitude(lat: np.ndarray, size_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of the latitude bands and their centres (NaN stays NaN)."""
    step = size_m / METRES_PER_DEGREE
    rows = np.floor((lat + 90.0) / step)
    return rows, -90.0 + (rows + 0.5) * step


def grid_longitude(lon: np.ndarray, lat: np.ndarray, size_m: float
                   ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Column numbers of the longitude steps (sized by the latitude band) and their centres."""
    step = size_m / METRES_PER_DEGREE
    rows, _ = grid_latitude(lat, size_m)
    lo, hi = -90.0 + rows * step, -90.0 + (rows + 1) * step
    edge = np.minimum(np.maximum(np.abs(lo), np.abs(hi)), _MAX_LAT)
    lon_step = step / np.cos(np.radians(edge))
    cols = np.floor((lon + 180.0) / lon_step)
    return cols, -180.0 + (cols + 0.5) * lon_step


class Grid(Operator):
    """Replace latitude/longitude by their grid square (row/column number or centre)."""

    action = "grid"
    kinds = ("number",)
    rule: GridRule

    def apply(self, series: pd.Series) -> pd.Series:  # noqa: D102
        return self.apply_frame(series.to_frame(self.column))

    def apply_frame(self, df: pd.DataFrame) -> pd.Series:  # noqa: D102
        rule = self.rule
        values = df[self.column].to_numpy(dtype=np.float64, na_value=np.nan)
        if self.column == rule.latitude:
            index, centre = grid_latitude(values, rule.size_m)
        else:
            if rule.latitude not in df.columns:
                raise PolicyError(
                    f"column {self.column!r}: grid needs the latitude column "
                    f"{rule.latitude!r}, which the records do not have",
                    hint="name the latitude column with `latitude:` in the rule",
                )
            lat = df[rule.latitude].to_numpy(dtype=np.float64, na_value=np.nan)
            index, centre = grid_longitude(values, lat, rule.size_m)
        out = index if rule.output == "index" else np.round(centre, 7)
        return pd.Series(out, index=df.index, name=self.column)
