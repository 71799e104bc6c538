"""Base of the device-agent loaders: delimited input, measurement records out.

Agent loaders (``gnettrack``, ``agent``) share the splitting, parsing and quarantine of
:class:`~cemkit.io.delimited.DelimitedLoader`; they differ from usage-record loaders only in
the schema they write (:mod:`cemkit.schema_measurements`) and in having no telephone numbers to
normalize.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import pyarrow as pa

from cemkit.io.convert import Converter
from cemkit.io.delimited import DelimitedLoader
from cemkit.schema_measurements import empty_measurements, measurement_schema


class MeasurementLoader(DelimitedLoader):
    """A delimited loader whose records are measurements."""

    def record_schema(self) -> pa.Schema:
        """The measurement schema with this loader's extension columns."""
        return measurement_schema(self.extension_columns())

    def meta(self) -> pd.DataFrame:
        """Empty measurement frame."""
        return empty_measurements(self.extension_columns())

    def finish_block(self, conv: Converter, cols: Mapping[str, object]
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
        """Measurement records of the good rows and the quarantine of the block."""
        ext = self.extension_columns()
        return conv.finish(cols, ext, default_region=None, numbers=(),
                           schema=measurement_schema(ext))  # fmt: skip
