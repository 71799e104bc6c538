"""Column mappings for the ``generic`` format: YAML read with ``safe_load``, checked by pydantic.

A mapping says how the columns of a CSV or Parquet export become canonical columns, so a probe
vendor's xDR export or a research data set loads without code. Shipped examples live in
``cemkit/data/mappings/`` and can be named without a path (``mapping="copenhagen-calls"``).

Examples
--------
>>> m = load_mapping("copenhagen-calls")
>>> m.fields["a_number"].column
'from'
"""

from __future__ import annotations

import os
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cemkit.errors import FormatError
from cemkit.schema import BY_NAME, PII, REQUIRED

_TIME_COLUMNS = {"start", "answer", "end"}


class FieldSpec(BaseModel):
    """Where one canonical column comes from."""

    model_config = ConfigDict(extra="forbid")

    column: str | None = None  #: source column
    value: Any = None  #: constant (when no column)
    #: for times: a strftime format of wall-clock text, or epoch units / seconds from ``origin``
    time: Literal["text", "epoch_s", "epoch_ms", "epoch_us", "timestamp"] | None = None
    format: str = "%Y-%m-%d %H:%M:%S"  #: strftime format when ``time: text``
    tz: str | None = None  #: zone of wall-clock text (default: the load's ``tz``)
    origin: str | None = None  #: ISO instant that epoch numbers count from (default 1970-01-01Z)
    null_if: list[str] = Field(default_factory=list)  #: source values that mean "no value"
    map: dict[str, Any] | None = None  #: source value → canonical value
    default: Any = None  #: value for source values not in ``map``
    strict: bool = False  #: quarantine rows whose value is not in ``map`` (instead of default)

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        if (self.column is None) == (self.value is None):
            raise ValueError("give exactly one of 'column' or 'value'")
        return self


class KeepSpec(BaseModel):
    """A source column kept as ``src_<name>`` text."""

    model_config = ConfigDict(extra="forbid")

    column: str
    name: str | None = None  #: column name after ``src_`` (default: the source name)
    pii: PII = PII.FREE_TEXT  #: privacy class; unknown content is treated as free text
    meaning: str = "kept from the source"


class CsvSpec(BaseModel):
    """CSV layout."""

    model_config = ConfigDict(extra="forbid")

    header: bool = True  #: first line holds the column names
    delimiter: str = ","
    columns: list[str] | None = None  #: names of the fields when there is no header line


class Mapping(BaseModel):
    """A whole mapping file."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    source: str = "generic"  #: written to ``source`` and used in record ids
    input: Literal["csv", "parquet"] = "csv"
    csv: CsvSpec = Field(default_factory=CsvSpec)
    fields: dict[str, FieldSpec]
    keep: list[KeepSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Mapping:
        unknown = sorted(set(self.fields) - set(BY_NAME))
        if unknown:
            raise ValueError(f"fields {unknown} are not canonical columns")
        missing = [c for c in REQUIRED if c not in self.fields and c not in {"record_id", "source"}]
        if missing:
            raise ValueError(f"fields {missing} are required (give a column or a value)")
        for name in _TIME_COLUMNS & set(self.fields):
            if self.fields[name].column is not None and self.fields[name].time is None:
                raise ValueError(f"field {name!r} needs 'time' (text, epoch_s, epoch_ms, ...)")
        if self.input == "csv" and not self.csv.header and not self.csv.columns:
            raise ValueError("csv without a header needs csv.columns")
        return self


def mapping_names() -> list[str]:
    """Names of the mappings shipped with cemkit."""
    folder = resources.files("cemkit.data") / "mappings"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_mapping(spec: str | os.PathLike[str] | dict[str, Any] | Mapping) -> Mapping:
    """A mapping from a file path, a shipped name, a dict or a :class:`Mapping`."""
    if isinstance(spec, Mapping):
        return spec
    where = "mapping"
    if isinstance(spec, dict):
        data = spec
    else:
        text_path = os.fspath(spec)
        if os.path.exists(text_path):
            where = text_path
            with open(text_path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        elif text_path in mapping_names():
            where = f"{text_path} (shipped)"
            res = resources.files("cemkit.data") / "mappings" / f"{text_path}.yaml"
            data = yaml.safe_load(res.read_text(encoding="utf-8"))
        else:
            raise FormatError(
                f"mapping {text_path!r} is neither a file nor a shipped mapping",
                hint=f"shipped mappings: {', '.join(mapping_names())}",
            )
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise FormatError(f"mapping {where} is invalid: {problems}") from None
