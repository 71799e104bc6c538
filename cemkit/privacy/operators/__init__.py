"""Operators: one per policy action, created by :func:`create` from a rule.

Examples
--------
>>> from cemkit.privacy.policy import KeepRule
>>> create(KeepRule(action="keep"), "outcome")
Keep(column='outcome', rule=KeepRule(action='keep', note=None))
"""

from __future__ import annotations

from cemkit.errors import PolicyError
from cemkit.privacy.keys import Key
from cemkit.privacy.operators.base import Operator
from cemkit.privacy.operators.bin import Bin
from cemkit.privacy.operators.drop import Drop
from cemkit.privacy.operators.fpe import Fpe
from cemkit.privacy.operators.generalize import Generalize
from cemkit.privacy.operators.grid import Grid
from cemkit.privacy.operators.keep import Keep
from cemkit.privacy.operators.scan_text import ScanText
from cemkit.privacy.operators.tokenize import Tokenize
from cemkit.privacy.policy import Rule

#: Action name → operator class (the presidio-anonymizer ``OperatorsFactory`` pattern).
OPERATORS: dict[str, type[Operator]] = {
    cls.action: cls for cls in (Keep, Drop, Tokenize, Fpe, Generalize, ScanText, Grid, Bin)
}


def create(rule: Rule, column: str, key: Key | None = None) -> Operator:
    """The operator executing ``rule`` on ``column``; unknown actions list the known ones."""
    try:
        cls = OPERATORS[rule.action]
    except KeyError:
        raise PolicyError(
            f"column {column!r}: unknown action {rule.action!r}",
            hint=f"known actions: {', '.join(OPERATORS)}",
        ) from None
    return cls(rule, column, key)


__all__ = ["OPERATORS", "Operator", "create"]
