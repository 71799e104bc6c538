"""Service model: node groups standing for many customers, and individually modeled customers.

:func:`load_model` reads and validates a YAML model (:mod:`cemkit.model.spec`); :class:`Assigner`
puts customers and records in their most specific group (:mod:`cemkit.model.assign`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cemkit import _lazy

if TYPE_CHECKING:
    from cemkit.model.assign import (
        CUSTOMER_OBJECT_COLUMN,
        GROUP_COLUMN,
        Assigner,
        read_customer_table,
    )
    from cemkit.model.spec import ServiceModel, Threshold, load_model

_lazy.exports(
    __name__,
    {
        "CUSTOMER_OBJECT_COLUMN": "cemkit.model.assign",
        "GROUP_COLUMN": "cemkit.model.assign",
        "Assigner": "cemkit.model.assign",
        "read_customer_table": "cemkit.model.assign",
        "ServiceModel": "cemkit.model.spec",
        "Threshold": "cemkit.model.spec",
        "load_model": "cemkit.model.spec",
    },
)


__all__ = [
    "CUSTOMER_OBJECT_COLUMN",
    "GROUP_COLUMN",
    "Assigner",
    "ServiceModel",
    "Threshold",
    "load_model",
    "read_customer_table",
]
