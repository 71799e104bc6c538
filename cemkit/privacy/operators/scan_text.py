"""``scan_text``: replace personal data found in free text (caller names, SIP URIs, raw lines).

Each finding becomes ``<ENTITY>`` (``replace_with: label``) or ``<ENTITY#token>``
(``replace_with: token``). A phone number's token is the token of its E.164 form, the same as
``tokenize`` gives that number in a number column under the same key, so text and columns link.
"""

from __future__ import annotations

import re

import pandas as pd
import phonenumbers
import pyarrow as pa

from cemkit.privacy.operators.base import Operator, on_distinct
from cemkit.privacy.operators.tokenize import SEPARATOR, token_hex
from cemkit.privacy.policy import ScanTextRule
from cemkit.privacy.scanner import SCAN_CACHE_SIZE, Finding, TextScanner, redact

_SEPARATORS = re.compile(r"[^\d+]")
#: Columns of at most this many distinct values a partition remember their redactions.
_MEMO_VALUES = 1024


def phone_key(text: str, region: str | None) -> str:
    """The E.164 form of a phone number found in text (its digits when it does not parse)."""
    compact = _SEPARATORS.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if compact.startswith("+"):
        return "+" + compact[1:].replace("+", "")
    try:
        num = phonenumbers.parse(compact, region)
        if phonenumbers.is_possible_number(num):
            return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    return compact.replace("+", "")


class ScanText(Operator):
    """Find PHONE_NUMBER, EMAIL_ADDRESS, PERSON, IP_ADDRESS in text and replace each finding."""

    action = "scan_text"
    kinds = ("string",)
    rule: ScanTextRule

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        r = self.rule
        self.scanner = TextScanner(r.entities, r.regions, r.min_digits)
        # Redacted text by text, for columns whose few values repeat in every partition (node
        # names): a warm batch looks them up. In memory only: never pickled (see __getstate__).
        self._redacted: dict[str, str] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_redacted": {}}

    def _replacement(self, finding: Finding, found: str) -> str:
        if self.rule.replace_with == "label":
            return f"<{finding.entity}>"
        assert self.key is not None
        if finding.entity == "PHONE_NUMBER":
            value = phone_key(found, self.rule.regions[0] if self.rule.regions else None)
        elif finding.entity == "EMAIL_ADDRESS":
            value = found.lower()
        else:
            value = found
        return f"<{finding.entity}{SEPARATOR}{token_hex([value], self.key)[0]}>"

    def redact_values(self, texts: pa.Array) -> pa.Array:
        """Redacted distinct texts (Arrow string array without nulls)."""
        values = texts.to_pylist()
        known = self._redacted
        if len(values) <= _MEMO_VALUES and all(v in known for v in values):
            return pa.array([known[v] for v in values], type=pa.string())
        found = self.scanner.scan(texts)
        out = [
            redact(text, f, self._replacement) if f else text
            for text, f in zip(values, found, strict=True)
        ]
        if len(values) <= _MEMO_VALUES:
            if len(known) > SCAN_CACHE_SIZE:
                known.clear()
            known.update(zip(values, out, strict=True))
        return pa.array(out, type=pa.string())

    def apply(self, series: pd.Series) -> pd.Series:  # noqa: D102
        return on_distinct(series, self.redact_values)
