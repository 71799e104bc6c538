"""The service model as data: node groups, individually modeled customers and thresholds.

A service model is a YAML document a network or service manager reviews. It is loaded with
``yaml.safe_load`` and validated by pydantic; unknown keys, unknown indicators, unknown parents,
cycles and prefixes that a protected number cannot show are load-time errors that name the rule.
This module never touches records (the pandera spec/backend split): :mod:`cemkit.model.assign`
executes a model on data.

Examples
--------
>>> m = ServiceModel.from_yaml_text('''
... name: demo
... groups:
...   - {name: uk, match: {prefixes: ["+44"]}}
...   - {name: london, parent: uk, match: {prefixes: ["+4420"]}}
... ''')
>>> [g.name for g in m.groups], m.depth("london")
(['uk', 'london'], 2)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cemkit.errors import ModelError
from cemkit.model.buckets import BUCKETS  # noqa: F401  (cemkit.model.spec.BUCKETS, as before)

SEVERITIES: tuple[str, ...] = ("minor", "major", "critical")

_PREFIX_RE = re.compile(r"^\+?\d{1,15}$")
_RANGE_RE = re.compile(r"^(\+?\d{1,15})\s*(?:\.\.|-)\s*(\+?\d{1,15})$")
#: Largest number of prefixes one range may expand to (a range is a convenience, not a table).
MAX_RANGE_EXPANSION = 100_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _shown(rule: str) -> str:
    """A prefix rule as error messages may show it: long digit strings could be whole numbers."""
    digits = sum(ch.isdigit() for ch in rule)
    return repr(rule) if digits <= 7 else f"<a rule of {len(rule)} characters, not shown>"


def expand_prefix(rule: str) -> list[str]:
    """Expand one prefix rule to the prefixes it stands for.

    A rule is a prefix (``"+4420"``) or a range of equal-length prefixes, inclusive
    (``"+441610..+441614"`` or ``"+441610-+441614"``).

    Examples
    --------
    >>> expand_prefix("+4420")
    ['+4420']
    >>> expand_prefix("+441610..+441612")
    ['+441610', '+441611', '+441612']
    """
    text = rule.strip()
    if _PREFIX_RE.match(text):
        return [text]
    found = _RANGE_RE.match(text)
    if not found:
        raise ValueError(
            f"prefix {_shown(rule)} is neither a prefix ('+' and up to 15 digits) nor a range "
            "('+441610..+441614')"
        )
    low, high = found.group(1), found.group(2)
    if low.startswith("+") != high.startswith("+") or len(low) != len(high):
        raise ValueError(
            f"range {_shown(rule)}: both ends must have the same form and number of digits"
        )
    lo, hi = int(low.lstrip("+")), int(high.lstrip("+"))
    if hi < lo:
        raise ValueError(f"range {_shown(rule)}: the first end is above the second")
    if hi - lo + 1 > MAX_RANGE_EXPANSION:
        raise ValueError(f"range {_shown(rule)} covers more than {MAX_RANGE_EXPANSION} prefixes")
    plus = "+" if low.startswith("+") else ""
    width = len(low) - len(plus)
    return [f"{plus}{n:0{width}d}" for n in range(lo, hi + 1)]


def prefix_digits(prefix: str) -> str:
    """The digits of a prefix without the leading '+'."""
    return prefix.lstrip("+")


class Match(_Strict):
    """Rules that put a record in a group; every rule given must hold (they are ANDed).

    ``prefixes`` match the leading digits of the customer number (raw E.164 or the kept prefix
    of a protected number); ``nodes`` (and the synonyms ``switches``, ``trunks``, ``cells``) match
    the record's ``node`` column exactly or by shell-style wildcard (``lon-*``); ``attributes``
    match columns of the customer table (``plans`` and ``segments`` are shorthands for the
    ``plan`` and ``segment`` columns).
    """

    prefixes: list[str] = Field(default_factory=list)
    nodes: list[str] = Field(default_factory=list)
    switches: list[str] = Field(default_factory=list)
    trunks: list[str] = Field(default_factory=list)
    cells: list[str] = Field(default_factory=list)
    plans: list[str] = Field(default_factory=list)  #: shorthand for attributes: {plan: [...]}
    segments: list[str] = Field(default_factory=list)  #: shorthand for {segment: [...]}
    attributes: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("prefixes")
    @classmethod
    def _prefixes_parse(cls, value: list[str]) -> list[str]:
        for rule in value:
            expand_prefix(rule)
        return value

    def all_nodes(self) -> list[str]:
        """Node names and patterns of every synonym."""
        return [*self.nodes, *self.switches, *self.trunks, *self.cells]

    def all_attributes(self) -> dict[str, list[str]]:
        """Attribute rules, with ``plans``/``segments`` as the ``plan``/``segment`` columns."""
        out = {k: list(v) for k, v in self.attributes.items()}
        if self.plans:
            out["plan"] = [*out.get("plan", []), *self.plans]
        if self.segments:
            out["segment"] = [*out.get("segment", []), *self.segments]
        return out

    def expanded_prefixes(self) -> list[str]:
        """Every prefix the prefix rules stand for."""
        return [p for rule in self.prefixes for p in expand_prefix(rule)]

    def is_empty(self) -> bool:
        """True when the match has no rule at all."""
        return not (self.prefixes or self.all_nodes() or self.all_attributes())


class Threshold(_Strict):
    """One alert rule on one indicator.

    ``absolute``: breach when the indicator is worse than this value (worse means lower for
    indicators where higher is better, such as ASR, and higher for the others, such as PDD).
    ``relative``: breach when the indicator is worse than the object's own baseline by this
    factor (for shares: the *bad* share exceeds ``relative`` x its baseline, with a one-sided
    binomial z-score of at least ``min_z``; for other indicators: the value is worse than
    baseline x ``relative``). Exactly one of the two is given.
    """

    indicator: str
    absolute: float | None = None
    relative: float | None = Field(default=None, gt=1.0)
    severity: Literal["minor", "major", "critical"] = "major"
    min_attempts: int = Field(default=20, ge=1)
    min_z: float = Field(default=3.0, ge=0.0)

    @model_validator(mode="after")
    def _one_kind(self) -> Threshold:
        if (self.absolute is None) == (self.relative is None):
            raise ValueError("give exactly one of 'absolute' or 'relative'")
        from cemkit.kqi.formulas import INDICATORS  # the one place indicators are defined

        if self.indicator not in INDICATORS:
            raise ValueError(
                f"unknown indicator {self.indicator!r}; known: {', '.join(sorted(INDICATORS))}"
            )
        return self


class Group(_Strict):
    """A node group: one managed object standing for every customer its rules match."""

    name: str = Field(min_length=1)
    parent: str | None = None
    description: str = ""
    match: Match = Field(default_factory=Match)
    thresholds: list[Threshold] | None = None  #: replaces the model's defaults when given


class ModeledCustomer(_Strict):
    """A customer modeled individually, by pseudonym(s) or by customer-table attributes."""

    name: str = Field(min_length=1)
    description: str = ""
    pseudonyms: list[str] = Field(default_factory=list)
    attributes: dict[str, list[str]] = Field(default_factory=dict)
    thresholds: list[Threshold] | None = None

    @model_validator(mode="after")
    def _has_rule(self) -> ModeledCustomer:
        if not self.pseudonyms and not self.attributes:
            raise ValueError("give 'pseudonyms' or 'attributes' to say who this customer is")
        return self


class Numbers(_Strict):
    """How customer numbers look in the records the model is applied to."""

    #: Column holding the customer's number (the calling party by default).
    column: Literal["a_number", "b_number"] = "a_number"
    #: Protected numbers keep only this many leading digits (tokenize/fpe ``keep_digits``): only
    #: these digits are compared with prefixes. None for raw E.164 numbers (up to 15 digits).
    kept_prefix_digits: int | None = Field(default=None, ge=1, le=15)


class CustomerTable(_Strict):
    """A table of customers with attributes (plan, segment, ...), joined on the customer number."""

    path: str
    key: str = "customer"


class Alerting(_Strict):
    """How alerts are computed."""

    bucket: Literal["15min", "hour", "day"] = "15min"
    #: Buckets with fewer attempts than this do not count towards a baseline.
    baseline_min_attempts: int = Field(default=20, ge=1)


class ServiceModel(_Strict):
    """A validated service model (see ``models/*.yaml`` for commented examples)."""

    name: str
    version: int | str = 1
    description: str = ""
    numbers: Numbers = Field(default_factory=Numbers)
    customer_table: CustomerTable | None = None
    groups: list[Group] = Field(default_factory=list)
    customers: list[ModeledCustomer] = Field(default_factory=list)
    thresholds: list[Threshold] = Field(default_factory=list)  #: defaults for every group
    customer_thresholds: list[Threshold] = Field(default_factory=list)  #: defaults, customers
    alerting: Alerting = Field(default_factory=Alerting)

    @model_validator(mode="after")
    def _consistent(self) -> ServiceModel:
        names = [g.name for g in self.groups]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"group names must be unique; repeated: {dupes}")
        cnames = [c.name for c in self.customers]
        cdupes = sorted({n for n in cnames if cnames.count(n) > 1})
        if cdupes:
            raise ValueError(f"customer names must be unique; repeated: {cdupes}")
        known = set(names)
        for g in self.groups:
            if g.parent is not None and g.parent not in known:
                raise ValueError(
                    f"group {g.name!r}: parent {g.parent!r} is not a group of this model; "
                    f"known: {sorted(known)}"
                )
        by_name = {g.name: g for g in self.groups}
        for g in self.groups:
            seen = {g.name}
            parent = g.parent
            while parent is not None:
                if parent in seen:
                    raise ValueError(
                        f"group {g.name!r}: its parents form a cycle through {parent!r}"
                    )
                seen.add(parent)
                parent = by_name[parent].parent
        kept = self.numbers.kept_prefix_digits
        if kept is not None:
            for g in self.groups:
                for p in g.match.expanded_prefixes():
                    if len(prefix_digits(p)) > kept:
                        raise ValueError(
                            f"group {g.name!r}: prefix with {len(prefix_digits(p))} digits is "
                            f"longer than the {kept} digits protected numbers keep "
                            "(numbers.kept_prefix_digits); shorten it or keep more digits"
                        )
        uses_attributes = any(g.match.all_attributes() for g in self.groups) or any(
            c.attributes for c in self.customers
        )
        if uses_attributes and self.customer_table is None:
            raise ValueError("attribute rules need a 'customer_table' to read attributes from")
        return self

    # --- hierarchy helpers (pure Python, no data) ---------------------------------------------
    def group(self, name: str) -> Group:
        """The group of that name."""
        for g in self.groups:
            if g.name == name:
                return g
        raise ModelError(f"model {self.name!r} has no group {name!r}")

    def ancestors(self, name: str) -> list[str]:
        """Parents of a group, nearest first."""
        out: list[str] = []
        parent = self.group(name).parent
        while parent is not None:
            out.append(parent)
            parent = self.group(parent).parent
        return out

    def depth(self, name: str) -> int:
        """1 for a top-level group, 2 for its children, ..."""
        return 1 + len(self.ancestors(name))

    def thresholds_for_group(self, name: str) -> list[Threshold]:
        """The group's own thresholds, else the model's defaults."""
        own = self.group(name).thresholds
        return list(own) if own is not None else list(self.thresholds)

    def thresholds_for_customer(self, name: str) -> list[Threshold]:
        """The modeled customer's own thresholds, else the model's customer defaults."""
        for c in self.customers:
            if c.name == name:
                return (
                    list(c.thresholds)
                    if c.thresholds is not None
                    else list(self.customer_thresholds)
                )
        raise ModelError(f"model {self.name!r} has no modeled customer {name!r}")

    # --- loading ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<model>") -> ServiceModel:
        """Validate a parsed document; errors name the rule (e.g. ``groups[2].match``)."""
        if not isinstance(data, dict):
            raise ModelError(
                f"{source}: a service model is a mapping with 'name' and 'groups', "
                f"found {type(data).__name__}"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            detail = _explain(err, data)
            raise ModelError(f"{source}: invalid service model:\n  - {detail}") from None

    @classmethod
    def from_yaml_text(cls, text: str, *, source: str = "<model>") -> ServiceModel:
        """Load a model from YAML text."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ModelError(
                f"{source}{where}: not valid YAML", hint="check indentation and quoting"
            ) from None
        return cls.from_dict(data, source=source)


def _rule_name(loc: tuple[Any, ...], data: Any) -> str:
    """``groups[2] ('london').match.prefixs`` from a pydantic error location."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node):
                node = node[item]
                if isinstance(node, dict) and "name" in node:
                    label += f" ({node['name']!r})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "<top level>"


def _explain(err: ValidationError, data: Any) -> str:
    lines = []
    for e in err.errors():
        where = _rule_name(tuple(e["loc"]), data)
        if e["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key; remove it or check its spelling")
        elif e["type"] == "missing":
            lines.append(f"{where}: required key is missing")
        else:
            msg = str(e["msg"]).removeprefix("Value error, ")
            lines.append(f"{where}: {msg}")
    return "\n  - ".join(lines)


def load_model(path: str | Path) -> ServiceModel:
    r"""Load and validate a service model YAML file.

    Parameters
    ----------
    path : str or Path
        The YAML file.

    Returns
    -------
    ServiceModel

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.yaml"
    >>> _ = p.write_text("name: x\\ngroups: [{name: all, match: {prefixes: ['+']}}]\\n")
    >>> load_model(p)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    cemkit.errors.ModelError: ...
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ModelError(f"{p}: cannot read the service model ({err.strerror})") from None
    model = ServiceModel.from_yaml_text(text, source=str(p))
    if model.customer_table is not None and not Path(model.customer_table.path).is_absolute():
        table = model.customer_table.model_copy(
            update={"path": str((p.parent / model.customer_table.path).resolve())}
        )
        model = model.model_copy(update={"customer_table": table})
    return model
