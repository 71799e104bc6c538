"""The ``agent`` format: measurements of any device agent, driven by a YAML mapping.

The mapping (like those of the ``generic`` format, :mod:`cemkit.io.mapping`) says which field
of the agent's output becomes which measurement column (:mod:`cemkit.schema_measurements`).
Inputs are CSV (``input: csv``, e.g. set-top-box telemetry) or JSON lines (``input: jsonl``,
one JSON object per line, e.g. speed-test results); nested JSON keys are addressed with dots
(``download.bandwidth``). Shipped mappings live in ``cemkit/data/mappings/agents/``.

Examples
--------
>>> m = load_agent_mapping("speedtest-jsonl")
>>> m.fields["dl_kbps"].column, m.fields["dl_kbps"].scale
('download.bandwidth', 0.008)
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cemkit.errors import FormatError, InputError
from cemkit.io.agent_base import MeasurementLoader
from cemkit.io.base import Part, registry, with_read_units
from cemkit.io.convert import Converter, quarantine_frame
from cemkit.io.csvblock import Block, Quarantined
from cemkit.io.delimited import Layout
from cemkit.io.mapping import CsvSpec, KeepSpec
from cemkit.io.textfile import check_readable, file_tags
from cemkit.schema import Column, extension_field
from cemkit.schema_measurements import (
    MEASUREMENT_BY_NAME,
    MEASUREMENT_KIND,
    RADIO_GENERATIONS,
)

#: Columns the loader fills itself.
_AUTOMATIC = {"record_id", "source", "record_kind", "radio_gen"}
_SIGNED = {"rsrp_dbm", "rsrq_db", "snr_db", "rssi_dbm", "nr_rsrp_dbm", "nr_rsrq_db",
           "latitude", "longitude"}  # fmt: skip


class AgentField(BaseModel):
    """Where one measurement column comes from."""

    model_config = ConfigDict(extra="forbid")

    column: str | None = None  #: source field (dotted path for nested JSON)
    value: Any = None  #: constant (when no column)
    time: Literal["text", "epoch_s", "epoch_ms"] | None = None  #: for ``time``
    format: str = "%Y-%m-%dT%H:%M:%S%z"  #: strptime format when ``time: text``
    scale: float | None = None  #: multiply numbers by this (units: bytes/s → kbit/s = 0.008)
    null_if: list[str] = Field(default_factory=list)  #: source values meaning "no value"
    map: dict[str, Any] | None = None  #: source value → measurement value
    default: Any = None  #: value for source values not in ``map``

    @model_validator(mode="after")
    def _one_source(self) -> AgentField:
        if (self.column is None) == (self.value is None):
            raise ValueError("give exactly one of 'column' or 'value'")
        return self


class AgentMapping(BaseModel):
    """A whole agent mapping file."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    source: str = "agent"  #: written to ``source`` and used in record ids
    input: Literal["csv", "jsonl"] = "csv"
    csv: CsvSpec = Field(default_factory=CsvSpec)
    fields: dict[str, AgentField]
    keep: list[KeepSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> AgentMapping:
        unknown = sorted(set(self.fields) - set(MEASUREMENT_BY_NAME) - _AUTOMATIC)
        if unknown:
            raise ValueError(f"fields {unknown} are not measurement columns "
                             f"(see cemkit.schema_measurements)")  # fmt: skip
        auto = sorted(set(self.fields) & _AUTOMATIC)
        if auto:
            raise ValueError(f"fields {auto} are filled by the loader; remove them")
        for name in ("time", "device"):
            if name not in self.fields:
                raise ValueError(f"field {name!r} is required (give a column or a value)")
        t = self.fields["time"]
        if t.column is not None and t.time is None:
            raise ValueError("field 'time' needs 'time' (text, epoch_s or epoch_ms)")
        if self.input == "csv" and not self.csv.header and not self.csv.columns:
            raise ValueError("csv without a header needs csv.columns")
        return self


def _folder() -> Any:
    return resources.files("cemkit.data") / "mappings" / "agents"


def agent_mapping_names() -> list[str]:
    """Names of the agent mappings shipped with cemkit."""
    return sorted(p.name[:-5] for p in _folder().iterdir() if p.name.endswith(".yaml"))


def load_agent_mapping(spec: str | os.PathLike[str] | dict[str, Any] | AgentMapping
                       ) -> AgentMapping:  # fmt: skip
    """An agent mapping from a file path, a shipped name, a dict or an :class:`AgentMapping`."""
    if isinstance(spec, AgentMapping):
        return spec
    where = "mapping"
    if isinstance(spec, dict):
        data = spec
    else:
        path = os.fspath(spec)
        if os.path.exists(path):
            where = path
            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        elif path in agent_mapping_names():
            where = f"{path} (shipped)"
            data = yaml.safe_load((_folder() / f"{path}.yaml").read_text(encoding="utf-8"))
        else:
            raise FormatError(f"agent mapping {path!r} is neither a file nor a shipped mapping",
                              hint=f"shipped: {', '.join(agent_mapping_names())}")  # fmt: skip
    try:
        return AgentMapping.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or '(top)'}: {e['msg']}"
                             for e in exc.errors())  # fmt: skip
        raise FormatError(f"agent mapping {where} is invalid: {problems}") from None


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{key}."))
        elif v is None:
            out[key] = ""
        elif isinstance(v, bool):
            out[key] = "true" if v else "false"
        elif isinstance(v, str):
            out[key] = v
        else:
            out[key] = json.dumps(v) if isinstance(v, list) else str(v)
    return out


@registry.register
class AgentLoader(MeasurementLoader):
    """Any agent's measurements (CSV or JSON lines) with a YAML mapping."""

    name = "agent"
    description = "device agent measurements, CSV or JSON lines, with a YAML mapping"
    options: ClassVar[dict[str, Any]] = {"mapping": None, "device": None}

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        if self.opts["mapping"] is None:
            raise FormatError("format 'agent' needs mapping=<YAML file or shipped name>",
                              hint=f"shipped: {', '.join(agent_mapping_names())}")  # fmt: skip
        self.mapping = load_agent_mapping(self.opts["mapping"])
        self.opts["mapping"] = self.mapping.model_dump(mode="json")
        self._ext = tuple(
            extension_field(f"src_{k.name or k.column}".replace(".", "_"), pa.string(), k.pii,
                            k.meaning)
            for k in self.mapping.keep
        )  # fmt: skip

    def extension_columns(self) -> tuple[Column, ...]:
        """``src_<name>`` for each ``keep`` entry of the mapping."""
        return self._ext

    def record_source(self) -> str:
        """The mapping's ``source``."""
        return self.mapping.source

    def _needed(self) -> set[str]:
        cols = {s.column for s in self.mapping.fields.values() if s.column is not None}
        return cols | {k.column for k in self.mapping.keep}

    # -- CSV --------------------------------------------------------------------------------
    def layout(self, path: str) -> Layout:
        """Header names (or the mapping's ``csv.columns``)."""
        spec = self.mapping.csv
        if spec.header:
            with open(path, "rb") as fh:
                first = fh.readline().decode("utf-8", "replace").lstrip("\ufeff").strip("\r\n")
            try:
                names = [c.strip() for c in next(csv.reader([first], delimiter=spec.delimiter))]
            except (csv.Error, StopIteration):
                names = []
        else:
            names = list(spec.columns or [])
        missing = sorted(self._needed() - set(names))
        if missing:
            raise InputError(f"input file {path!r} lacks the column(s) {missing} that the "
                             "mapping names", hint=f"its columns are {names[:30]}")  # fmt: skip
        return Layout(tuple(names), header_lines=1 if spec.header else 0,
                      delimiter=spec.delimiter)  # fmt: skip

    # -- JSON lines -------------------------------------------------------------------------
    def parts(self, paths: Sequence[str]) -> list[Part]:
        """CSV byte ranges, or one part per JSON-lines file."""
        if self.mapping.input == "csv":
            return super().parts(paths)
        self._tags = file_tags(paths)
        return [Part(p, i, 0, check_readable(p), 1) for i, p in enumerate(paths)]

    def read_part(self, part: Part) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Parse a CSV range, or every line of a JSON-lines file."""
        if self.mapping.input == "csv":
            return super().read_part(part)
        tags = getattr(self, "_tags", None) or file_tags([part.path])
        read = self.read_raw(part)  # the part's one read: its lines are its read units
        data = read.data
        units = {"lines": read.lines, "header_lines": 0, "data_lines": read.lines,
                 "file_problems": 0}  # fmt: skip
        newlines = read.lines - (1 if data and not data.endswith(b"\n") else 0)
        q = Quarantined()
        rows: list[dict[str, str]] = []
        lines: list[int] = []
        for i, raw in enumerate(data.split(b"\n")):
            ln = part.first_line + i
            text = raw.rstrip(b"\r").decode("utf-8", "replace")
            if not text.strip():
                if i < newlines:  # a blank line (not the end of the file)
                    q.add(ln, "", "empty line", "")
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                q.add(ln, "", f"not a JSON object: {exc.msg} (column {exc.colno})", text)
                continue
            if not isinstance(obj, dict):
                q.add(ln, "", "not a JSON object", text)
                continue
            rows.append(_flatten(obj))
            lines.append(ln)
        needed = sorted(self._needed())
        table = pa.table({n: pa.array([r.get(n, "") for r in rows], pa.string())
                          for n in needed}) if needed else pa.table({})  # fmt: skip
        block = _JsonBlock(table, np.asarray(lines, np.int64), q, data, part.first_line)
        block.rows = rows
        if not rows:
            return self.meta(), with_read_units(quarantine_frame(part.path, q), units)
        conv = Converter(block, part.path, tags.get(part.path, part.path), self.record_source())
        records, quarantine = self.finish_block(conv, self.convert(conv, Layout(tuple(needed))))
        return records, with_read_units(quarantine, units)

    # -- conversion -------------------------------------------------------------------------
    def convert(self, conv: Converter, layout: Layout) -> Mapping[str, object]:
        """Each mapped field through its spec."""
        cols: dict[str, object] = {"record_kind": MEASUREMENT_KIND}
        for name, spec in self.mapping.fields.items():
            cols[name] = self._field(conv, name, spec)
        if self.opts["device"] is not None:
            cols["device"] = str(self.opts["device"])
        t = cols["time"]
        if isinstance(t, pa.Array):
            conv.flag(pc.is_null(t).to_numpy(zero_copy_only=False),
                      str(self.mapping.fields["time"].column), "time is empty")  # fmt: skip
        dev = cols["device"]
        if isinstance(dev, pa.Array):
            conv.flag(pc.is_null(dev).to_numpy(zero_copy_only=False),
                      str(self.mapping.fields["device"].column), "device is empty")  # fmt: skip
        tech = cols.get("radio_tech")
        if isinstance(tech, pa.Array):
            cols["radio_gen"] = conv.lookup(tech, RADIO_GENERATIONS, pa.string(),
                                            field="radio_tech", strict=False,
                                            default="other")  # fmt: skip
        elif isinstance(tech, str):
            cols["radio_gen"] = RADIO_GENERATIONS.get(tech.upper(), "other")
        for k in self.mapping.keep:
            cols[f"src_{k.name or k.column}".replace(".", "_")] = conv.text(k.column)
        return cols

    def _field(self, conv: Converter, name: str, spec: AgentField) -> object:
        if spec.value is not None:
            return spec.value
        col = str(spec.column)
        target = MEASUREMENT_BY_NAME[name].type
        arr = conv.text(col)
        if spec.null_if:
            arr = pc.if_else(pc.is_in(arr, pa.array(spec.null_if, pa.string())),
                             pa.scalar(None, pa.string()), arr)  # fmt: skip
        if spec.map is not None:
            arr = conv.lookup(arr, {str(k): v for k, v in spec.map.items()}, pa.string(),
                              field=col, strict=False, default=spec.default,
                              normalize_case=False)  # fmt: skip
        if name == "time":
            if spec.time == "text":
                parsed = pc.strptime(arr, format=spec.format, unit="s", error_is_null=True)
                conv._flag_failed(arr, parsed, col, f"time not in the format {spec.format!r}")
                if "%z" not in spec.format and self.tz.upper() != "UTC":
                    parsed = pc.assume_timezone(parsed, timezone=self.tz, ambiguous="earliest",
                                                nonexistent="earliest")  # fmt: skip
                return parsed
            num = conv.number(col, arr=arr, field=col)
            scale = 1e9 if spec.time == "epoch_s" else 1e6
            ns = pc.cast(pc.round(pc.multiply(num, scale)), pa.int64())
            return pc.cast(pc.cast(ns, pa.timestamp("ns")), pa.timestamp("ns", tz="UTC"))
        if pa.types.is_floating(target):
            num = conv.number(col, arr=arr, allow_negative=name in _SIGNED, field=col)
            if spec.scale is not None:
                num = pc.multiply(num, spec.scale)
            if name == "loss_ratio":
                bad = pc.fill_null(pc.greater(num, 1.0), False).to_numpy(zero_copy_only=False)
                conv.flag(bad, col, "loss ratio above 1 (give scale: 0.01 for percent)")
            return num
        return arr


class _JsonBlock(Block):
    """Objects of a JSON-lines file presented like parsed CSV lines (raw = the line)."""

    rows: list[dict[str, str]]

    def raw_lines(self, line_numbers: np.ndarray) -> list[str]:
        """The original lines."""
        text = self.data.split(b"\n")
        return [text[int(n) - self.first_line].rstrip(b"\r").decode("utf-8", "replace")
                for n in line_numbers]  # fmt: skip


__all__ = ["AgentLoader", "AgentMapping", "agent_mapping_names", "load_agent_mapping"]
