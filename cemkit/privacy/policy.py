"""Privacy policies: what happens to each column, as data a reviewer can read.

A policy is a YAML document (``policies/*.yaml``) loaded with ``yaml.safe_load`` and validated
by the pydantic models below. The models are the *specification*; the operators in
:mod:`cemkit.privacy.operators` execute it. Every rule knows its own properties
(:meth:`Rule.properties`): whether its output is linkable across data sets, whether it can be
reversed and by whom, and what a recipient can still learn — so tools can explain, check and
diff policies without reading code.

Errors name the rule and the fix: an unknown action, column or parameter is a load-time
:class:`~cemkit.errors.PolicyError`, never a silently unprotected column.

Examples
--------
>>> policy = Policy.model_validate({
...     "name": "example", "version": 1,
...     "key": {"id": "k1", "env": "CEMKIT_KEY"},
...     "columns": {"a_number": {"action": "tokenize", "keep_digits": 4},
...                 "outcome": {"action": "keep"}},
... })
>>> policy.rule_for("a_number").action, policy.rule_for("node").action
('tokenize', 'drop')
>>> policy.rule_for("a_number").properties()["linkable"]
True
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from cemkit.dp.spec import ReleaseSpec
from cemkit.errors import PolicyError

#: Directory of the shipped policies (``cemkit protect --policy default`` finds them here).
POLICY_DIR = Path(str(resources.files("cemkit.data") / "policies"))

#: Entity types ``scan_text`` can find without any downloaded language model.
TEXT_ENTITIES = ("PHONE_NUMBER", "EMAIL_ADDRESS", "PERSON", "IP_ADDRESS", "COORDINATE")

#: Columns of the loader quarantine (see ``cemkit.io.base.QUARANTINE_SCHEMA``).
QUARANTINE_COLUMNS = ("file", "line", "field", "reason", "raw")

#: Digits that must stay hidden after a kept prefix; shorter values keep no prefix at all.
MIN_HIDDEN_DIGITS = 4


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyRef(_Model):
    """Which key a policy uses: an id and exactly one source. Never the material."""

    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="Key id, recorded in every manifest. A new id gives new pseudonyms.",
    )
    env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the key (e.g. CEMKIT_KEY).",
    )
    file: str | None = Field(None, description="Path of a key file holding the key.")

    @model_validator(mode="after")
    def _one_source(self) -> KeyRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one key source: `env: CEMKIT_KEY` or `file: <path>`")
        return self

    @property
    def source(self) -> str:
        """``env:NAME`` or ``file:PATH``."""
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"


class Rule(_Model):
    """Base of all column rules. Subclasses set the class-level properties below."""

    action: str
    note: str | None = Field(None, description="Free text for reviewers: why this rule.")

    #: The output can be joined across data sets protected with the same key.
    linkable: ClassVar[bool] = False
    #: Who can recover the original value: "nobody", "key holders", or "anyone" (kept as is).
    reversible_by: ClassVar[str] = "nobody"
    #: The rule needs key material.
    needs_key: ClassVar[bool] = False
    #: Column kinds the rule applies to: "string", "time", "any".
    applies_to: ClassVar[tuple[str, ...]] = ("any",)
    summary: ClassVar[str] = ""

    def params(self) -> dict[str, Any]:
        """The rule's parameters (everything except ``action`` and ``note``)."""
        return self.model_dump(exclude={"action", "note"})

    def reveals(self) -> str:
        """What a recipient can still learn from the output, in plain words."""
        return "nothing about the original value"

    def properties(self) -> dict[str, Any]:
        """Action, parameters and privacy properties, as data (for explain/check/diff)."""
        return {
            "action": self.action,
            "params": self.params(),
            "summary": self.summary,
            "linkable": self.linkable,
            "reversible_by": self.reversible_by,
            "needs_key": self.needs_key,
            "reveals": self.reveals(),
            "note": self.note,
        }


class KeepRule(Rule):
    """Pass the column through unchanged."""

    action: Literal["keep"]
    linkable: ClassVar[bool] = True
    reversible_by: ClassVar[str] = "anyone"
    summary: ClassVar[str] = "kept as is"

    def reveals(self) -> str:  # noqa: D102
        return "the original value"


class DropRule(Rule):
    """Remove the column."""

    action: Literal["drop"]
    summary: ClassVar[str] = "removed"

    def reveals(self) -> str:  # noqa: D102
        return "nothing: the column is not in the output"


def _prefix_words(keep_digits: int) -> str:
    if keep_digits == 0:
        return ""
    return (f"the first {keep_digits} digit(s) of each number (country code and, for longer "
            "prefixes, the operator or area), which a group of numbers shares")  # fmt: skip


class TokenizeRule(Rule):
    """Replace each value by a keyed HMAC-SHA256 token, optionally after a kept prefix."""

    action: Literal["tokenize"]
    keep_digits: int = Field(0, ge=0, le=12, description=(
        "Leading digits kept in clear (country code + national destination code) so that "
        "grouping by prefix still works. Values with fewer than keep_digits + "
        f"{MIN_HIDDEN_DIGITS} digits keep no prefix."))  # fmt: skip
    length: int = Field(16, ge=12, le=64, description="Hex characters of the token (64 bits = 16).")

    linkable: ClassVar[bool] = True
    needs_key: ClassVar[bool] = True
    applies_to: ClassVar[tuple[str, ...]] = ("string",)
    summary: ClassVar[str] = "replaced by a keyed token (HMAC-SHA256)"

    def reveals(self) -> str:  # noqa: D102
        prefix = _prefix_words(self.keep_digits)
        same = "which records share the same value (under the same key)"
        return f"{prefix}; and {same}" if prefix else same


class FpeRule(Rule):
    """Encrypt the digits with FF3-1, keeping length and shape; reversible with the key."""

    action: Literal["fpe"]
    keep_digits: int = Field(0, ge=0, le=12, description=(
        "Leading digits kept in clear. At least 6 digits must remain to encrypt "
        "(FF3-1 domain)."))  # fmt: skip
    tweak: str | None = Field(None, pattern=r"^[0-9A-Fa-f]{14}$", description=(
        "56-bit FF3-1 tweak as 14 hex digits; by default derived from the key id."))  # fmt: skip
    too_short: Literal["drop", "tokenize"] = Field("drop", description=(
        "What to do with values that cannot be encrypted (fewer than 6 digits after the kept "
        "prefix, or not a number): drop them (null) or tokenize them."))  # fmt: skip

    linkable: ClassVar[bool] = True
    reversible_by: ClassVar[str] = "key holders"
    needs_key: ClassVar[bool] = True
    applies_to: ClassVar[tuple[str, ...]] = ("string",)
    summary: ClassVar[str] = "encrypted format-preserving (FF3-1): same length and shape"

    def reveals(self) -> str:  # noqa: D102
        prefix = _prefix_words(self.keep_digits)
        base = ("which records share the same value; the number of digits; and the output looks "
                "like a real number (it may equal someone else's)")  # fmt: skip
        return f"{prefix}; {base}" if prefix else base


class GeneralizeRule(Rule):
    """Make values coarser: keep only leading digits, or round times down to a bucket."""

    action: Literal["generalize"]
    digits: int | None = Field(None, ge=1, le=12, description="Keep only the first N digits.")
    every: str | None = Field(None, pattern=r"^[1-9][0-9]*(s|min|h|D)$", description=(
        "Round times down to buckets of this size, e.g. 1min, 15min, 1h, 1D."))  # fmt: skip

    applies_to: ClassVar[tuple[str, ...]] = ("string", "time")
    summary: ClassVar[str] = "made coarser"

    @model_validator(mode="after")
    def _one_way(self) -> GeneralizeRule:
        if (self.digits is None) == (self.every is None):
            raise ValueError("give exactly one of `digits: N` (numbers) or `every: 1h` (times)")
        return self

    def reveals(self) -> str:  # noqa: D102
        if self.digits is not None:
            return (f"the first {self.digits} digit(s) of each number; values with fewer than "
                    f"{self.digits + MIN_HIDDEN_DIGITS} digits are removed")  # fmt: skip
        return f"the time rounded down to {self.every}"


class GridRule(Rule):
    """Snap a position to the centre of a square grid cell of ``size_m`` metres."""

    action: Literal["grid"]
    size_m: float = Field(ge=10, le=1_000_000, description=(
        "Side of the grid squares in metres (e.g. 500). Latitude steps are size_m / 110,574 "
        "degrees; longitude steps are widened by the latitude so that squares stay at least "
        "size_m wide."))  # fmt: skip
    latitude: str = Field("latitude", description=(
        "Column holding the latitude (a longitude's grid step depends on it)."))  # fmt: skip
    output: Literal["index", "centre"] = Field("index", description=(
        "index: the row (latitude) or column (longitude) number of the square, counted from "
        "the south-west corner of the world, so no degrees at all leave; centre: the degrees "
        "of the square's centre."))  # fmt: skip

    applies_to: ClassVar[tuple[str, ...]] = ("number",)
    summary: ClassVar[str] = "generalized to a grid square"

    def reveals(self) -> str:  # noqa: D102
        what = "its row/column number" if self.output == "index" else "its centre"
        return (f"the square of about {self.size_m:g} m x {self.size_m:g} m the position was "
                f"in ({what}), the same for everyone in that square")  # fmt: skip


class BinRule(Rule):
    """Round numbers down to a multiple of ``step`` (speeds, levels)."""

    action: Literal["bin"]
    step: float = Field(gt=0, le=1e9, description=(
        "Width of the bins: values become the lower edge of their bin (e.g. 10 for speeds in "
        "10 km/h bands)."))  # fmt: skip

    applies_to: ClassVar[tuple[str, ...]] = ("number",)
    summary: ClassVar[str] = "rounded down to a bin"

    def reveals(self) -> str:  # noqa: D102
        return f"the value to within {self.step:g} (the lower edge of its bin)"


TextEntity = Literal["PHONE_NUMBER", "EMAIL_ADDRESS", "PERSON", "IP_ADDRESS", "COORDINATE"]
_DEFAULT_ENTITIES: tuple[TextEntity, ...] = ("PHONE_NUMBER", "EMAIL_ADDRESS", "PERSON")


class ScanTextRule(Rule):
    """Find personal data in free text (presidio) and replace each finding."""

    action: Literal["scan_text"]
    entities: list[TextEntity] = Field(
        default_factory=lambda: list(_DEFAULT_ENTITIES), min_length=1,
        description="What to look for.")  # fmt: skip
    replace_with: Literal["label", "token"] = Field("label", description=(
        "label: '<PHONE_NUMBER>'; token: '<PHONE_NUMBER#token>' (same token as a tokenized "
        "number column under the same key)."))  # fmt: skip
    regions: list[str] = Field(default_factory=lambda: ["GB", "US", "DE", "FR"], description=(
        "Regions whose national number formats are recognized (ISO 3166 codes)."))  # fmt: skip
    min_digits: int = Field(7, ge=5, le=15, description=(
        "Any run of this many digits (with spaces, dots, dashes, brackets) counts as a phone "
        "number, valid or not."))  # fmt: skip

    applies_to: ClassVar[tuple[str, ...]] = ("string",)
    summary: ClassVar[str] = "scanned for personal data; findings replaced"

    @field_validator("regions")
    @classmethod
    def _known_regions(cls, regions: list[str]) -> list[str]:
        import phonenumbers

        unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown region(s) {', '.join(unknown)}; use ISO 3166 codes such "
                             "as GB, US, DE, FR (upper case)")  # fmt: skip
        return regions

    @property
    def needs_key(self) -> bool:  # type: ignore[override]
        """Tokens need the key; labels do not."""
        return self.replace_with == "token"

    @property
    def linkable(self) -> bool:  # type: ignore[override]
        """Tokens in text link to tokens elsewhere."""
        return self.replace_with == "token"

    def reveals(self) -> str:  # noqa: D102
        return ("the rest of the text; whatever the scanner does not recognize as "
                f"{', '.join(self.entities)} stays in clear")  # fmt: skip


RuleSpec = Annotated[
    KeepRule
    | DropRule
    | TokenizeRule
    | FpeRule
    | GeneralizeRule
    | ScanTextRule
    | GridRule
    | BinRule,
    Field(discriminator="action"),
]

#: Action name → rule model.
RULES: dict[str, type[Rule]] = {
    "keep": KeepRule, "drop": DropRule, "tokenize": TokenizeRule, "fpe": FpeRule,
    "generalize": GeneralizeRule, "scan_text": ScanTextRule, "grid": GridRule, "bin": BinRule,
}  # fmt: skip


#: Smallest group a report may show when a policy does not say (``report: min_group_size:``).
DEFAULT_MIN_GROUP_SIZE = 10


class ReportSettings(_Model):
    """Report-level protection: what aggregates may show (see :mod:`cemkit.privacy.suppress`)."""

    min_group_size: int = Field(DEFAULT_MIN_GROUP_SIZE, ge=2, le=10_000, description=(
        "Smallest number of distinct customers a row of any aggregate (KQI table, ranking, "
        "chart) may stand for; smaller groups are suppressed or merged, and the report says so."
    ))  # fmt: skip


def _drop_raw() -> dict[str, RuleSpec]:
    return {"raw": DropRule(action="drop", note=None)}


class Policy(_Model):
    """A privacy policy: key reference, one rule per named column, a default for the rest."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Policy name.")
    version: int | str = Field(description="Version, raised on every reviewed change.")
    description: str = ""
    key: KeyRef | None = Field(None, description="Key used by tokenize / fpe / scan_text tokens.")
    default: Literal["drop", "keep"] = Field("drop", description=(
        "Action for columns the policy does not name. Every shipped policy uses drop."
    ))  # fmt: skip
    columns: dict[str, RuleSpec] = Field(default_factory=dict, description=(
        "Canonical columns (or source-specific src_* columns) and their rules."))  # fmt: skip
    quarantine: dict[str, RuleSpec] = Field(
        default_factory=_drop_raw,
        description="Rules for the loader quarantine (file, line, field, reason, raw); "
        "unnamed quarantine columns follow `default`.")  # fmt: skip

    report: ReportSettings = Field(
        default_factory=lambda: ReportSettings.model_validate({}),
        description="Report-level protection; by default groups of fewer than "
        f"{DEFAULT_MIN_GROUP_SIZE} customers are not shown.",
    )

    release: ReleaseSpec | None = Field(None, description=(
        "Differentially private releases of aggregates (cemkit release): privacy unit, "
        "contribution bounds, mechanism, budget per period and releasable indicators. "
        "Without it, nothing may be released with DP."))  # fmt: skip

    _text: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _check(self) -> Policy:
        from cemkit.schema import EXTENSION_PREFIX
        from cemkit.schema_measurements import ALL_COLUMNS as BY_NAME

        for name, rule in self.columns.items():
            if name in BY_NAME:
                _check_type(f"columns.{name}", rule, _kind_of(str(BY_NAME[name].type)))
            elif not name.startswith(EXTENSION_PREFIX):
                close = difflib.get_close_matches(name, list(BY_NAME), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(
                    f"columns.{name}: unknown column; {hint}use a canonical column "
                    f"({', '.join(BY_NAME)}) or a source-specific one starting with "
                    f"{EXTENSION_PREFIX!r}"
                )
        kinds = {"file": "string", "line": "integer", "field": "string", "reason": "string",
                 "raw": "string"}  # fmt: skip
        for name, rule in self.quarantine.items():
            if name not in QUARANTINE_COLUMNS:
                raise ValueError(f"quarantine.{name}: unknown quarantine column; "
                                 f"known: {', '.join(QUARANTINE_COLUMNS)}")  # fmt: skip
            _check_type(f"quarantine.{name}", rule, kinds[name])
        for name, rule in self.columns.items():
            if isinstance(rule, GridRule) and rule.latitude not in self.columns:
                raise ValueError(f"columns.{name}: grid reads the latitude from column "
                                 f"{rule.latitude!r}, which the policy does not name")  # fmt: skip
        needing = [n for n, r in self.rules() if r.needs_key]
        if needing and self.key is None:
            raise ValueError(f"rules {', '.join(needing)} need a key; add "
                             "`key: {id: <key id>, env: CEMKIT_KEY}`")  # fmt: skip
        return self

    def rules(self) -> Sequence[tuple[str, Rule]]:
        """Every named rule as (``columns.<name>`` or ``quarantine.<name>``, rule)."""
        return [(f"columns.{n}", r) for n, r in self.columns.items()] + [
            (f"quarantine.{n}", r) for n, r in self.quarantine.items()
        ]

    def rule_for(self, column: str, *, quarantine: bool = False) -> Rule:
        """The rule for a column, or the default rule when the policy does not name it."""
        rules = self.quarantine if quarantine else self.columns
        rule = rules.get(column)
        if rule is not None:
            return rule
        return RULES[self.default].model_validate({"action": self.default})

    @property
    def sha256(self) -> str:
        """sha256 of the YAML text the policy was loaded from, else of its canonical JSON."""
        text = self._text
        if text is None:
            text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def properties(self) -> dict[str, Any]:
        """The whole policy as plain data: every rule's action, parameters and properties.

        What ``cemkit policy explain / check / diff`` and notebook displays are built on.
        """
        return {
            **self.summary(),
            "description": self.description,
            "key": None if self.key is None else {"id": self.key.id, "source": self.key.source},
            "default": self.rule_for("\0unnamed").properties(),
            "columns": {n: r.properties() for n, r in self.columns.items()},
            "quarantine": {n: r.properties() for n, r in self.quarantine.items()},
        }

    def summary(self) -> dict[str, Any]:
        """Name, version, sha256 and key id (what a manifest records; never the key)."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256,
                "key_id": self.key.id if self.key else None}  # fmt: skip

    def _repr_markdown_(self) -> str:
        """Notebook rich display: the policy explained (see :mod:`cemkit.privacy.explain`)."""
        from cemkit.privacy.explain import explain_markdown

        return explain_markdown(self)

    def _repr_html_(self) -> str:
        """Notebook rich display as HTML (see :mod:`cemkit.privacy.explain`)."""
        from cemkit.privacy.explain import explain_html

        return explain_html(self, standalone=False)


def _kind_of(arrow_type: str) -> str:
    if arrow_type.startswith("timestamp"):
        return "time"
    if arrow_type in ("string", "large_string"):
        return "string"
    return "number"


def _check_type(where: str, rule: Rule, kind: str) -> None:
    allowed = rule.applies_to
    if "any" in allowed:
        return
    if isinstance(rule, GeneralizeRule):
        allowed = ("time",) if rule.every is not None else ("string",)
    if kind not in allowed:
        raise ValueError(f"{where}: action {rule.action!r} does not apply to a {kind} column "
                         f"(it applies to {' or '.join(allowed)} columns)")  # fmt: skip


def _format_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        # Drop the discriminator tag pydantic puts in locations ('columns.x.tokenize.length').
        parts = [p for p in e["loc"] if p not in RULES or e["loc"].index(p) < 2]
        loc = ".".join(str(p) for p in parts)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            parent = e["loc"][:-1]
            known = _known_params(parent)
            msg = f"unknown parameter {e['loc'][-1]!r}" + (f"; allowed: {known}" if known else "")
            loc = ".".join(str(p) for p in parent if p not in RULES) or "(top level)"
        elif e["type"] == "union_tag_invalid":
            found = (e.get("ctx") or {}).get("tag", "?")
            msg = f"unknown action {found!r}; known actions: {', '.join(RULES)}"
        elif e["type"] == "union_tag_not_found":
            msg = f"rule has no `action:`; known actions: {', '.join(RULES)}"
        lines.append(f"{loc}: {msg}" if loc else msg)
    return f"policy {source} is invalid:\n  - " + "\n  - ".join(lines)


def _known_params(loc: tuple[Any, ...]) -> str:
    # loc is like ('columns', 'a_number', 'tokenize'): the last part is the discriminator tag.
    if loc and loc[-1] in RULES:
        return ", ".join(f for f in RULES[loc[-1]].model_fields if f != "action")
    if loc and loc[0] == "key":
        return ", ".join(KeyRef.model_fields)
    if not loc:
        return ", ".join(Policy.model_fields)
    return ""


def parse_policy(text: str, *, source: str = "<text>") -> Policy:
    """Build a policy from YAML text (``yaml.safe_load``), or raise PolicyError naming the fix."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PolicyError(f"policy {source} is not valid YAML{where}",
                          hint="check indentation and colons") from None  # fmt: skip
    if not isinstance(data, dict):
        raise PolicyError(f"policy {source} is not a YAML mapping",
                          hint="start with `name:`, `version:`, `key:` and `columns:`")  # fmt: skip
    try:
        policy = Policy.model_validate(data)
    except ValidationError as err:
        raise PolicyError(_format_error(err, source),
                          hint="see policies/default.yaml for a commented example",
                          ) from None  # fmt: skip
    policy._text = text
    return policy


def load_policy(policy: str | Path | Policy) -> Policy:
    """Load a policy from a YAML file, or a shipped policy by name (``"default"``).

    Examples
    --------
    >>> load_policy("default").default
    'drop'
    """
    if isinstance(policy, Policy):
        return policy
    path = Path(policy)
    if not path.exists() and path.suffix == "" and (POLICY_DIR / f"{path}.yaml").exists():
        path = POLICY_DIR / f"{path}.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        shipped = sorted(p.stem for p in POLICY_DIR.glob("*.yaml"))
        raise PolicyError(f"policy file {str(path)!r} cannot be read ({type(exc).__name__})",
                          hint=f"give a path or a shipped policy name ({', '.join(shipped)})"
                          ) from None  # fmt: skip
    return parse_policy(text, source=str(path))


def json_schema() -> dict[str, Any]:
    """JSON Schema of policy files, for editors (``policies/policy.schema.json``)."""
    schema = Policy.model_json_schema()
    schema["title"] = "cemkit privacy policy"
    return schema
