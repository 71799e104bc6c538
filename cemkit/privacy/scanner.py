"""Find personal data in free text with presidio-analyzer, without any downloaded model.

The analyzer runs on presidio's :class:`NoOpNlpEngine` (no spaCy model) with self-contained
recognizers:

- ``PHONE_NUMBER``: presidio's ``PhoneRecognizer`` (python-phonenumbers) for the configured
  regions, plus a pattern for any run of ``min_digits`` digits (switches write numbers without
  formatting, and test ranges such as +44 1632 are not "valid" numbers to phonenumbers);
- ``EMAIL_ADDRESS``: presidio's e-mail pattern, without the public-suffix check (which would
  download a list and let ``user@host.invalid`` through);
- ``PERSON``: the caller-id form ``"Name" <number>`` (no language model: names elsewhere in free
  text are not found — drop or tokenize whole-name columns instead);
- ``IP_ADDRESS``: presidio's ``IpRecognizer``.

:class:`TextScanner` scans *distinct* values, and only those that pass a cheap vectorized
prefilter per entity (e.g. a text with fewer digits than the shortest possible phone number is
not given to the phone recognizers; one without ``@`` not to the e-mail recognizer).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Entities and the regex a text must match to possibly hold one (the prefilter). Phone
#: numbers are prefiltered by their digit count instead (:func:`min_phone_digits`).
_PREFILTER = {
    "EMAIL_ADDRESS": "@",
    "PERSON": "<",
    "IP_ADDRESS": r":|\d\D*\d\D*\d\D*\d",
    "COORDINATE": r"\d\.\d{3}",
}

#: A decimal-degree coordinate (3 or more decimals: about 100 m or finer), as agents log them.
_COORDINATE = r"(?<![\d.])-?\d{1,3}\.\d{3,}(?![\d.])"


def min_phone_digits(regions: Sequence[str], min_digits: int) -> int:
    """Fewest digits a text must hold for any phone-number recognizer to find something.

    From the phonenumbers metadata: an international number has at least its country code's
    digits plus the shortest possible national number of that country
    (:func:`international_min_digits`); a national number (in one of ``regions``) at least that
    region's shortest possible length. The digit-run pattern needs ``min_digits``.
    """
    from phonenumbers import PhoneMetadata

    national = [_shortest(md) for r in regions if (md := PhoneMetadata.metadata_for_region(r))]
    return max(1, min([international_min_digits(), min_digits, *national]))


def _shortest(md: Any) -> int:
    return min((n for n in md.general_desc.possible_length if n > 0), default=1)


#: :func:`international_min_digits` as the walk over every region found it, for the phonenumbers
#: version it was found with (tests/test_privacy_scanner.py walks again and compares). The walk
#: loads the metadata of all ~250 regions: ~0.2 s of CPU and a full garbage collection of the
#: heap in every process that scans text (each run, each Dask worker), where only the regions a
#: policy names are used otherwise.
INTERNATIONAL_MIN_DIGITS = ("9.0.43", 6)


def international_min_digits() -> int:
    """Fewest digits of any international number: country code plus shortest national number."""
    import phonenumbers

    version, digits = INTERNATIONAL_MIN_DIGITS
    if phonenumbers.__version__ == version:
        return digits
    return _international_walk()


def _international_walk() -> int:
    """:func:`international_min_digits` from the metadata of every region (loads them all)."""
    from phonenumbers import COUNTRY_CODES_FOR_NON_GEO_REGIONS, SUPPORTED_REGIONS, PhoneMetadata

    metas = [PhoneMetadata.metadata_for_region(r) for r in SUPPORTED_REGIONS]
    metas += [PhoneMetadata.metadata_for_nongeo_region(c)
              for c in COUNTRY_CODES_FOR_NON_GEO_REGIONS]  # fmt: skip
    return min(len(str(md.country_code)) + _shortest(md) for md in metas if md)


@functools.lru_cache(maxsize=64)
def _min_phone_digits(regions: tuple[str, ...], min_digits: int) -> int:
    # once per regions, not per partition
    return min_phone_digits(regions, min_digits)


_PERSON_QUOTED = r"(?<=\")[^\W\d_][^\"<>@\d]{0,60}?(?=\"+\s*<)"
_PERSON_BARE = r"(?:(?<=^)|(?<=[,;|]))[^\W\d_][^\"<>@,;\d]{0,60}?(?=\s*<)"


#: Distinct texts whose findings a scanner remembers (per process).
SCAN_CACHE_SIZE = 200_000


@dataclass(frozen=True)
class Finding:
    """One piece of personal data found in a text."""

    entity: str
    start: int
    end: int


def _quiet_presidio() -> None:
    # presidio logs every recognizer it loads at INFO; keep our users' logs readable.
    logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)


def build_analyzer(entities: Sequence[str], regions: Sequence[str], min_digits: int) -> Any:
    """A presidio ``AnalyzerEngine`` for ``entities`` that needs no language model."""
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        EmailRecognizer,
        IpRecognizer,
        PhoneRecognizer,
    )

    from cemkit.privacy.detect import digit_run_pattern

    class OfflineEmailRecognizer(EmailRecognizer):
        """presidio's e-mail pattern; any dotted domain counts (no suffix-list download)."""

        def validate_result(self, pattern_text: str) -> bool:
            return True

    _quiet_presidio()
    registry = RecognizerRegistry(supported_languages=["en"])
    if "PHONE_NUMBER" in entities:
        registry.add_recognizer(PhoneRecognizer(supported_regions=tuple(regions)))
        registry.add_recognizer(PatternRecognizer(
            supported_entity="PHONE_NUMBER", name="DigitRunRecognizer",
            patterns=[Pattern("digit run", digit_run_pattern(min_digits), 0.3)],
        ))  # fmt: skip
    if "EMAIL_ADDRESS" in entities:
        registry.add_recognizer(OfflineEmailRecognizer())
    if "PERSON" in entities:
        registry.add_recognizer(PatternRecognizer(
            supported_entity="PERSON", name="CallerIdNameRecognizer",
            patterns=[Pattern("quoted caller-id name", _PERSON_QUOTED, 0.6),
                      Pattern("caller-id name", _PERSON_BARE, 0.4)],
        ))  # fmt: skip
    if "IP_ADDRESS" in entities:
        registry.add_recognizer(IpRecognizer())
    if "COORDINATE" in entities:
        registry.add_recognizer(PatternRecognizer(
            supported_entity="COORDINATE", name="DecimalDegreesRecognizer",
            patterns=[Pattern("decimal degrees", _COORDINATE, 0.5)],
        ))  # fmt: skip
    engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"],
                          context_aware_enhancer=_no_context_enhancer())  # fmt: skip


def _no_context_enhancer() -> Any:
    """A context enhancer that leaves scores alone.

    Without a language model the text has no tokens or lemmas, so presidio's lemma enhancer
    cannot find context words anyway; it would only deep-copy every result.
    """
    from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer

    class NoContextEnhancer(ContextAwareEnhancer):
        def __init__(self) -> None:
            super().__init__(0.0, 0.0, 0, 0)

        def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers,
                                  context=None):  # fmt: skip
            return raw_results

    return NoContextEnhancer()


def merge(results: Sequence[Any]) -> list[Finding]:
    """Non-overlapping findings from presidio results: overlaps are merged into one span.

    The merged span takes the entity of its longest part (ties: higher score).
    """
    spans = sorted(
        ((r.start, r.end, r.entity_type, r.score) for r in results), key=lambda s: (s[0], -s[1])
    )
    out: list[Finding] = []
    best: tuple[int, float] = (-1, 0.0)
    for start, end, entity, score in spans:
        if out and start < out[-1].end:
            last = out[-1]
            rank = (end - start, score)
            ent = entity if rank > best else last.entity
            best = max(best, rank)
            out[-1] = Finding(ent, last.start, max(last.end, end))
        else:
            out.append(Finding(entity, start, end))
            best = (end - start, score)
    return out


def redact(text: str, findings: Sequence[Finding], replace: Callable[[Finding, str], str]) -> str:
    """``text`` with each finding replaced by ``replace(finding, found_text)``."""
    pieces, pos = [], 0
    for f in findings:
        pieces.append(text[pos : f.start])
        pieces.append(replace(f, text[f.start : f.end]))
        pos = f.end
    pieces.append(text[pos:])
    return "".join(pieces)


class TextScanner:
    """Scan texts for personal data: distinct values only, cheap prefilter first.

    The presidio analyzer is built on first use and not pickled, so a scanner can travel to
    Dask workers and build its own there.

    Examples
    --------
    >>> scanner = TextScanner(["PHONE_NUMBER", "EMAIL_ADDRESS", "PERSON"])
    >>> scanner.scan_one('"Ann Lee" <+441632960961> ann@example.com')
    [Finding(entity='PERSON', start=1, end=8), Finding(entity='PHONE_NUMBER', start=11, end=24), \
Finding(entity='EMAIL_ADDRESS', start=26, end=41)]
    """

    def __init__(
        self,
        entities: Sequence[str] = ("PHONE_NUMBER", "EMAIL_ADDRESS", "PERSON"),
        regions: Sequence[str] = ("GB", "US", "DE", "FR"),
        min_digits: int = 7,
    ) -> None:
        self.entities = list(entities)
        self.regions = list(regions)
        self.min_digits = min_digits
        self._analyzer: Any = None
        # Findings of texts already scanned: partitions of one column repeat their values.
        self._seen: dict[str, list[Finding]] = {}

    @property
    def analyzer(self) -> Any:
        """The presidio ``AnalyzerEngine`` (built on first use)."""
        if self._analyzer is None:
            self._analyzer = build_analyzer(self.entities, self.regions, self.min_digits)
        return self._analyzer

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_analyzer": None, "_seen": {}}

    def prefilter(self, texts: pa.Array) -> np.ndarray:
        """Boolean matrix (texts x entities): which entities each text may hold.

        One vectorized regex per entity over all texts; a text failing an entity's regex cannot
        hold that entity, so its recognizers are not run on it.
        """
        masks = []
        for e in self.entities:
            if e == "PHONE_NUMBER":
                need = _min_phone_digits(tuple(self.regions), self.min_digits)
                mask = pc.greater_equal(pc.count_substring_regex(texts, r"\d"), need)
            else:
                mask = pc.match_substring_regex(texts, _PREFILTER[e])
            masks.append(pc.fill_null(mask, False).to_numpy(zero_copy_only=False))
        return np.column_stack(masks) if masks else np.zeros((len(texts), 0), dtype=bool)

    def scan_one(self, text: str, entities: Sequence[str] | None = None) -> list[Finding]:
        """Findings in one text (presidio; all entities unless told which to look for)."""
        wanted = list(self.entities if entities is None else entities)
        return merge(self.analyzer.analyze(text, language="en", entities=wanted))

    def scan(self, texts: pa.Array) -> list[list[Finding]]:
        """Findings per text of an array of *distinct* texts (prefilter, then presidio)."""
        possible = self.prefilter(texts)
        found: list[list[Finding]] = [[] for _ in range(len(texts))]
        values = texts.to_pylist()
        seen = self._seen
        if len(seen) > SCAN_CACHE_SIZE:
            seen.clear()
        for i in np.flatnonzero(possible.any(axis=1)).tolist():
            text = values[i]
            hit = seen.get(text)
            if hit is None:
                entities = [e for e, ok in zip(self.entities, possible[i], strict=True) if ok]
                hit = seen[text] = self.scan_one(text, entities)
            found[i] = hit
        return found
