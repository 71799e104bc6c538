"""Text scanner: merging overlapping findings, prefilter soundness, caller-id names."""

from dataclasses import dataclass
from itertools import pairwise

import phonenumbers
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit.privacy.scanner import TextScanner, merge, min_phone_digits, redact


@dataclass
class Result:
    start: int
    end: int
    entity_type: str
    score: float


spans = st.lists(
    st.tuples(st.integers(0, 50), st.integers(1, 20), st.sampled_from(["A", "B"]),
              st.floats(0, 1)).map(lambda t: Result(t[0], t[0] + t[1], t[2], t[3])),
    max_size=12,
)  # fmt: skip


@given(spans)
def test_merge_gives_disjoint_sorted_spans_covering_the_union(results):
    merged = merge(results)
    covered = {i for r in results for i in range(r.start, r.end)}
    assert {i for m in merged for i in range(m.start, m.end)} == covered
    for a, b in pairwise(merged):
        assert a.end <= b.start


def test_redact_replaces_right_spans():
    text = "call +441632960961 or a@b.org"
    found = TextScanner(["PHONE_NUMBER", "EMAIL_ADDRESS"]).scan_one(text)
    out = redact(text, found, lambda f, s: f"<{f.entity}>")
    assert out == "call <PHONE_NUMBER> or <EMAIL_ADDRESS>"


def test_min_phone_digits_is_a_lower_bound_from_metadata():
    assert min_phone_digits(["FR"], 7) == 6  # international: 2-digit code + 4-digit numbers
    assert min_phone_digits(["DE"], 7) == 4  # German numbers can be 4 digits long
    for region in ("GB", "US", "DE", "FR"):
        example = phonenumbers.example_number(region)
        national = phonenumbers.national_significant_number(example)
        assert len(national) >= min_phone_digits([region], 7)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789 +-()abc@<>\"'.:", max_size=30))
def test_prefilter_never_hides_a_finding(text):
    scanner = TextScanner(["PHONE_NUMBER", "EMAIL_ADDRESS", "PERSON", "IP_ADDRESS"])
    possible = scanner.prefilter(pa.array([text]))[0]
    for finding in scanner.scan_one(text):
        i = scanner.entities.index(finding.entity)
        assert possible[i], f"{finding.entity} found in a text the prefilter ruled out"


def test_caller_id_names_without_a_model():
    scanner = TextScanner(["PERSON"])
    for text, name in [('"Ann Lee" <1001>', "Ann Lee"), ("José Núñez <+34600000000>", "José Núñez"),
                       ('"""NOMBREUSUARIO"" <100>"', "NOMBREUSUARIO")]:  # fmt: skip
        found = scanner.scan_one(text)
        assert [text[f.start : f.end] for f in found] == [name]
    assert scanner.scan_one("Outbound Call") == []


def test_international_minimum_is_the_walk_over_every_region():
    # the constant stands for the walk only for the phonenumbers version it was found with
    from cemkit.privacy.scanner import (
        INTERNATIONAL_MIN_DIGITS,
        _international_walk,
        international_min_digits,
    )

    assert international_min_digits() == _international_walk()
    if phonenumbers.__version__ == INTERNATIONAL_MIN_DIGITS[0]:
        assert INTERNATIONAL_MIN_DIGITS[1] == _international_walk()


def test_scanning_text_loads_only_the_regions_it_names():
    # the walk over every region's metadata (~250 modules) cost each process ~0.2 s of CPU
    import subprocess
    import sys

    code = (
        "import sys, pyarrow as pa\n"
        "from cemkit.privacy.scanner import TextScanner\n"
        "TextScanner(['PHONE_NUMBER'], regions=['GB']).prefilter(pa.array(['call 01632 960000']))\n"
        "print(sum(m.startswith('phonenumbers.data.region_') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[-1]) <= 5
