"""FreeSWITCH ``mod_cdr_csv`` files.

Fields come from a template (``cdr_csv.conf.xml``): the default ``example`` template (15 fields),
the older 13-field one (``legacy``, no codecs), or any user template given as its list of channel
variable names, in order (``template=["caller_id_number", "destination_number", ...]``).
Variables cemkit understands map to canonical columns; every other one is kept as
``src_<variable>`` text. ``*_stamp`` times are local wall-clock time (declare ``tz``),
``*_epoch`` / ``*_uepoch`` are UTC epoch seconds / microseconds.

Examples
--------
>>> import cemkit
>>> ddf = cemkit.load("Master.csv", format="freeswitch", tz="Asia/Tehran")  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cemkit.errors import FormatError
from cemkit.io.base import registry
from cemkit.io.convert import Converter
from cemkit.io.delimited import DelimitedLoader, Layout
from cemkit.outcomes import FREESWITCH_CAUSE_CODES, outcomes_from_q850_array
from cemkit.schema import PII, Column, extension_field

_LEGACY = (
    "caller_id_name", "caller_id_number", "destination_number", "context", "start_stamp",
    "answer_stamp", "end_stamp", "duration", "billsec", "hangup_cause", "uuid", "bleg_uuid",
    "accountcode",
)  # fmt: skip
#: Built-in templates (mod_cdr_csv's shipped ``cdr_csv.conf.xml``).
TEMPLATES: dict[str, tuple[str, ...]] = {
    "example": (*_LEGACY, "read_codec", "write_codec"),
    "legacy": _LEGACY,
}
#: Other names people use for the built-in templates.
_ALIASES = {"default": "example", "15": "example", "old": "legacy", "13": "legacy"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

#: Variables mapped onto canonical columns (everything else becomes ``src_<name>``).
_KNOWN = {
    "caller_id_number", "destination_number", "start_stamp", "answer_stamp", "end_stamp",
    "start_epoch", "answer_epoch", "end_epoch", "start_uepoch", "answer_uepoch", "end_uepoch",
    "duration", "billsec", "hangup_cause", "hangup_cause_q850", "uuid", "sip_call_id",
    "sip_term_status", "progress_mediamsec", "progressmsec",
}  # fmt: skip
_PII = {
    "caller_id_name": PII.FREE_TEXT, "bleg_uuid": PII.QUASI, "accountcode": PII.QUASI,
    "context": PII.NONE, "read_codec": PII.NONE, "write_codec": PII.NONE,
    "network_addr": PII.DIRECT, "sip_from_user": PII.TN, "sip_to_user": PII.TN,
}  # fmt: skip
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _template(value: object) -> tuple[str, ...]:
    if isinstance(value, int) and str(value) in _ALIASES:
        value = str(value)
    if isinstance(value, str):
        value = _ALIASES.get(value, value)
        if value in TEMPLATES:
            return TEMPLATES[value]
        raise FormatError(
            f"unknown freeswitch template {value!r}",
            hint=f"use one of {', '.join(TEMPLATES)} or give the list of field names",
        )
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        bad = [v for v in value if not _NAME.match(v)]
        if bad or len(set(value)) != len(value):
            raise FormatError(
                "freeswitch template fields must be distinct channel variable names",
                hint="e.g. ['caller_id_number', 'destination_number', 'start_stamp', ...]",
            )
        return tuple(value)
    raise FormatError("freeswitch template must be a template name or a list of field names")


@registry.register
class FreeswitchLoader(DelimitedLoader):
    """FreeSWITCH mod_cdr_csv (example, legacy or user template)."""

    name = "freeswitch"
    description = "FreeSWITCH mod_cdr_csv: 'example' (15), 'legacy' (13) or a user template"
    options: ClassVar[dict[str, Any]] = {"template": "example", "node": None}

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.fields = _template(self.opts["template"])
        kept = tuple(
            extension_field(
                f"src_{f}", pa.string(), _PII.get(f, PII.FREE_TEXT), f"Channel variable {f}."
            )
            for f in self.fields
            if f not in _KNOWN
        )
        cause = extension_field("src_hangup_cause", pa.string(), PII.NONE, "Hangup cause name.")
        self._ext = (*kept, cause)

    def extension_columns(self) -> tuple[Column, ...]:
        """``src_<variable>`` for each template variable without a canonical column."""
        return self._ext

    def layout(self, path: str) -> Layout:
        """The template's fields (the same for every file)."""
        typed = {f: pa.timestamp("s") for f in self.fields if f.endswith("_stamp")}
        typed.update({f: pa.float64() for f in ("duration", "billsec") if f in self.fields})
        return Layout(
            self.fields,
            types=tuple(typed.items()),
            timestamp_format=TIME_FORMAT,
            text=pa.large_string(),
        )

    def _time(self, conv: Converter, what: str) -> pa.Array | None:
        if conv.has(f"{what}_uepoch"):
            return conv.epoch(f"{what}_uepoch", "us", zero_is_null=True)
        if conv.has(f"{what}_epoch"):
            return conv.epoch(f"{what}_epoch", "s", zero_is_null=True)
        if conv.has(f"{what}_stamp"):
            return conv.time(f"{what}_stamp", TIME_FORMAT, self.tz)
        return None

    @staticmethod
    def _node(conv: Converter) -> pa.Array | None:
        """The gateway (trunk) of the call, else the sofia profile of its channel, if written.

        ``sip_gateway_name`` names the trunk; ``channel_name`` is ``sofia/<profile>/<user>@...``.
        The shipped "example" and "legacy" templates write neither (then ``node`` is null, or
        the ``node=`` option).
        """
        found = None
        if conv.has("sip_gateway_name"):
            gateway = conv.text("sip_gateway_name")
            found = pc.if_else(pc.equal(gateway, ""), pa.scalar(None, gateway.type), gateway)
        if conv.has("channel_name"):
            profile = pc.struct_field(
                pc.extract_regex(conv.text("channel_name"), r"^sofia/(?P<p>[^/]+)/"), [0]
            )
            found = profile if found is None else pc.coalesce(found, profile)
        return found

    def convert(self, conv: Converter, layout: Layout) -> Mapping[str, object]:
        """Template variables → canonical columns."""
        start = self._time(conv, "start")
        answer = self._time(conv, "answer")
        end = self._time(conv, "end")
        stamps = ("start_stamp", "answer_stamp", "end_stamp")
        if all(conv.has(s) for s in stamps) and not any(
            conv.has(f"{w}_epoch") or conv.has(f"{w}_uepoch") for w in ("start", "answer", "end")
        ):  # local times read so that the call fits its duration across DST changes
            start, answer, end = conv.call_times(
                stamps, TIME_FORMAT, self.tz,
                conv.number("duration") if conv.has("duration") else None,
                conv.number("billsec") if conv.has("billsec") else None,
            )  # fmt: skip
        if start is None:
            raise FormatError("a freeswitch template needs a start time",
                              hint="add start_stamp, start_epoch or start_uepoch")  # fmt: skip
        conv.flag(pc.is_null(start).to_numpy(zero_copy_only=False), "start", "start time is empty")
        cause_name = conv.text("hangup_cause")
        codes = conv.lookup(cause_name, FREESWITCH_CAUSE_CODES, pa.int32(), field="hangup_cause",
                            strict=False)  # fmt: skip
        if conv.has("hangup_cause_q850"):
            codes = pc.coalesce(conv.integer("hangup_cause_q850", pa.int32()), codes)
        billsec = conv.number("billsec") if conv.has("billsec") else None
        answered = pc.is_valid(answer) if answer is not None else pc.greater(billsec, 0)
        outcome = _outcomes(codes, pc.fill_null(answered, False))
        q850 = pc.if_else(pc.less_equal(codes, 127), codes, pa.scalar(None, pa.int32()))
        call_id = conv.text("sip_call_id") if conv.has("sip_call_id") else conv.text("uuid")
        node: object = self.opts["node"]
        if node is None:
            node = self._node(conv)
        cols: dict[str, object] = {
            "record_kind": "cdr",
            "service": "voice",
            "a_number": conv.text("caller_id_number"),
            "b_number": conv.text("destination_number"),
            "start": start,
            "answer": answer,
            "end": end,
            "duration_s": conv.number("duration") if conv.has("duration") else None,
            "billsec_s": billsec,
            "outcome": outcome,
            "cause_q850": q850,
            "call_id": call_id,
            "node": node,
            "src_hangup_cause": cause_name,
        }
        if conv.has("sip_term_status"):
            cols["sip_status"] = conv.integer("sip_term_status", pa.int16())
        if conv.has("progress_mediamsec") or conv.has("progressmsec"):
            pdd = "progressmsec" if conv.has("progressmsec") else "progress_mediamsec"
            ms = conv.number(pdd)
            cols["pdd_ms"] = pc.if_else(pc.greater(ms, 0), ms, pa.scalar(None, pa.float64()))
        for col in self._ext:
            var = col.name[len("src_") :]
            if var != "hangup_cause":
                cols[col.name] = conv.text(var)
        return {k: v for k, v in cols.items() if v is not None}


def _outcomes(codes: pa.Array, answered: pa.Array) -> pa.Array:
    """Vectorized :func:`cemkit.outcomes.outcome_from_q850` (codes may be null).

    An outcome depends on the row's (cause, answered) pair alone: mapped on the few distinct
    pairs and expanded with one take.
    """
    n = len(codes)
    null = np.asarray(pc.is_null(codes).to_numpy(zero_copy_only=False), dtype=bool)
    code = np.asarray(pc.fill_null(codes, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    ans = np.asarray(answered.to_numpy(zero_copy_only=False), dtype=bool)
    key = code * 4 + null * 2 + ans
    enc = pc.dictionary_encode(pa.array(key, pa.int64())) if n else None
    distinct = enc.dictionary.to_numpy() if enc is not None else key
    causes = pd.Series(pd.array(distinct // 4, dtype=pd.Int32Dtype()))
    causes[((distinct // 2) % 2).astype(bool)] = pd.NA
    pairs = pd.Series((distinct % 2).astype(bool))
    out = pa.array(outcomes_from_q850_array(causes, pairs).to_numpy(), pa.string())
    return out if enc is None else pc.take(out, enc.indices)
