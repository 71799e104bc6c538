"""The one detector of telephone numbers and long identifiers in text.

Every part of cemkit that looks for a number in text uses this module: the notebook guard
(:mod:`cemkit.guard`, masks what a notebook shows), ``cemkit scan-notebook``
(:mod:`cemkit.privacy.scan_notebook`), the policy's free-text scanner
(:mod:`cemkit.privacy.scanner`, the presidio digit-run recognizer is :func:`digit_run_pattern`),
the treatment of source names (:func:`number_runs`: file names such as ``441632960123.csv``) and
``cemkit policy check --data``.

A *candidate* is a run of at least 7 digits with the separators people write (spaces, dots,
dashes, brackets, slashes) and an optional leading ``+``. Not candidates: ISO dates
(2026-11-26), digits that continue a word, a hex id or a token (letters, ``#``, ``_`` around
them) and decimal fractions (a ``.`` before them). A candidate is a number when

- it is an unbroken run of 15 or 16 digits (IMSI, IMEI, IMEISV — no numbering plan knows
  them, and a policy scanner flags them), or
- the ``phonenumbers`` numbering plans accept it: *possible* by its length (the display
  guard, erring on the side of masking) or *valid* (``strict``, for saved notebooks, where ids
  and counters must not raise false alarms),

unless it is table data (a decimal, a date, compact dates such as 20261126, year ranges, or
values of adjacent table columns).

Examples
--------
>>> text = "call +44 20 7946 0958 now, IMSI 234150999999999"
>>> [text[s:e] for s, e in tn_spans(text, strict=True)]
['+44 20 7946 0958', '234150999999999']
>>> mask_text("from 020 7946 0958 to ext 201")
'from [masked TN] to ext 201'
>>> number_runs("acct/441632960123.csv"), number_runs("cdr-20261126.csv")
([(5, 17)], [])
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: Replacement of each masked number.
MASK = "[masked TN]"
#: Regions whose national formats are recognized (as the shipped policies' ``scan_text``).
DEFAULT_REGIONS: tuple[str, ...] = ("GB", "US", "DE", "FR")
#: Fewest digits of a candidate.
MIN_DIGITS = 7
#: Digit counts of unbroken identifiers that are personal whatever the numbering plan says.
IDENTIFIER_DIGITS = (15, 16)

# One building block for every pattern: a digit, then digits with up to two separators between.
_SEPARATED = r"\+?\(?\d(?:[ .()/-]{{0,2}}\d){{{n},}}"
CANDIDATE = re.compile(
    r"(?<![\w.+#])(?!\d{4}-[01]\d-[0-3]\d)" + _SEPARATED.format(n=MIN_DIGITS - 1) + r"(?![\w#])"
)
#: Any digit run, letters allowed around it (for file names: ``acct441632960123.csv``).
_ANY_RUN = re.compile(r"(?<![\d#])(?!\d{4}-[01]\d-[0-3]\d)" + _SEPARATED.format(n=MIN_DIGITS - 1)
                      + r"(?!\d)")  # fmt: skip

_DATE = re.compile(r"\d{4}-[01]\d-[0-3]\d")
_COMPACT_DATE = re.compile(r"(?:19|20)\d\d[01]\d[0-3]\d(?:[0-2]\d[0-5]\d(?:[0-5]\d)?)?")
_DECIMAL = re.compile(r"\d+\.\d+")
_YEARS = re.compile(r"(?:19|20)\d\d ?- ?(?:19|20)\d\d")


def digit_run_pattern(min_digits: int = MIN_DIGITS) -> str:
    """The presidio pattern of the policy scanner: any run of ``min_digits`` or more digits.

    Letters may touch the run (switches write ``b0021791444``, ``tel:...``); a date is not one.
    """
    return r"(?<![\d+])(?!\d{4}-[01]\d-[0-3]\d)" + _SEPARATED.format(n=min_digits - 1) + r"(?!\d)"


def _tabular(candidate: str) -> bool:
    """Digits that are table data, not a number someone wrote: decimals, dates, columns."""
    return bool(
        _DATE.search(candidate)  # a row label or count next to a date
        or _DECIMAL.fullmatch(candidate)  # 558461.0, 73.277708
        or _YEARS.fullmatch(candidate)  # (c) 2014-2017
        or _COMPACT_DATE.fullmatch(candidate)  # 20261126, 20261126120000
        or "  " in candidate  # two spaces: the gap between table columns
        or ("." in candidate and " " in candidate)  # 40 0.697: values in adjacent columns
    )


def is_number(candidate: str, regions: Sequence[str] = DEFAULT_REGIONS, *,
              strict: bool = False) -> bool:  # fmt: skip
    """Whether a candidate (a match of :data:`CANDIDATE`) is a telephone number or identifier."""
    import phonenumbers

    if _tabular(candidate):
        return False
    digits = re.sub(r"\D", "", candidate)
    if len(digits) in IDENTIFIER_DIGITS and candidate.lstrip("+").isdigit():
        return True
    check = phonenumbers.is_valid_number if strict else phonenumbers.is_possible_number
    attempts: list[tuple[str, str | None]] = []
    if candidate.startswith("+"):
        attempts.append((candidate, None))
    else:
        attempts += [(candidate, r) for r in regions]
        if len(digits) >= 11:
            attempts.append(("+" + digits, None))  # international without the '+'
    for text, region in attempts:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if check(number):
            return True
    return False


def tn_spans(
    text: str, regions: Sequence[str] = DEFAULT_REGIONS, *, strict: bool = False
) -> list[tuple[int, int]]:
    """Where telephone numbers and long identifiers are in a text, as (start, end) offsets.

    Parameters
    ----------
    text : str
        Any text.
    regions : sequence of str
        Regions whose national number formats count (international ``+`` numbers always do).
    strict : bool
        False (the display guard): a *possible* number by its length for the country is enough.
        True (``scan-notebook``): the number must be *valid* in the numbering plan.
    """
    spans = []
    for m in CANDIDATE.finditer(text):
        if "  " not in m.group():
            if is_number(m.group(), regions, strict=strict):
                spans.append((m.start(), m.end()))
            continue
        # Two spaces are the gap between table columns (a printed frame): each column's
        # value is a candidate of its own.
        pos = m.start()
        for piece in _COLUMN_GAP.split(m.group()):
            for sub in CANDIDATE.finditer(piece):
                if is_number(sub.group(), regions, strict=strict):
                    spans.append((pos + sub.start(), pos + sub.end()))
            pos += len(piece) + 2
    return spans


_COLUMN_GAP = re.compile(r"  ")


def mask_text(text: str, regions: Sequence[str] = DEFAULT_REGIONS, mask: str = MASK) -> str:
    """The text with every number found by :func:`tn_spans` replaced by ``mask``."""
    for start, end in reversed(tn_spans(text, regions)):
        text = text[:start] + mask + text[end:]
    return text


def has_candidate(text: str) -> bool:
    """Whether the text could hold a number at all (a run of 7+ digits): a cheap test."""
    return CANDIDATE.search(text) is not None


def number_runs(name: str, regions: Sequence[str] = DEFAULT_REGIONS) -> list[tuple[int, int]]:
    """Number-like runs in a source name (a file path or name, a record id's file tag).

    Letters may touch the run (``acct441632960123.csv``); dates written compactly
    (``cdr-20261126.csv``) are not numbers.
    """
    return [(m.start(), m.end()) for m in _ANY_RUN.finditer(name)
            if is_number(m.group(), regions)]  # fmt: skip


__all__ = ["CANDIDATE", "DEFAULT_REGIONS", "MASK", "digit_run_pattern", "has_candidate",
           "is_number", "mask_text", "number_runs", "tn_spans"]  # fmt: skip
