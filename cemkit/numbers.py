"""Telephone-number normalization to E.164, on distinct values, with a vectorized fast path.

phonenumbers parses ~75K values/s, so it is called once per *distinct* value that the fast path
cannot settle. Values are never dropped: what cannot be parsed is kept as written and flagged.

Kinds (column ``<x>_number_kind``): ``e164`` (normalized), ``extension`` (a short internal
number, kept as written), ``unparsed`` (kept as written), ``empty`` (no value).

Examples
--------
>>> import pandas as pd
>>> e164, kind = normalize(pd.Series(["+441632960961", "01632 960961", "100", ""]), "GB")
>>> list(e164), list(kind)
(['+441632960961', '+441632960961', '100', <NA>], ['e164', 'e164', 'extension', 'empty'])
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit
from phonenumbers import PhoneMetadata

from cemkit import config

#: Numbers with at most this many digits (and no '+') are PBX extensions / short codes.
MAX_EXTENSION_DIGITS = 6

_STRING = pd.StringDtype("pyarrow")
_jit = njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL)


def _parse_one(value: str, region: str | None) -> str | None:
    """E.164 of one value, or None when phonenumbers cannot make a possible number of it."""
    try:
        num = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


@functools.lru_cache(maxsize=64)
def _national_plan(region: str | None) -> tuple[str, str, str, str, frozenset[int]] | None:
    """(national prefix, IDD pattern, country code, national number pattern, possible lengths).

    Only for regions whose national prefix is stripped plainly (no transform rule, no other
    prefix that could also match), where ``prefix + national number`` parses to
    ``+CC national number`` exactly as phonenumbers would.
    """
    if not region:
        return None
    meta = PhoneMetadata.metadata_for_region(region.upper())
    if meta is None or not meta.national_prefix or meta.national_prefix_transform_rule:
        return None
    prefix = meta.national_prefix
    parsing = meta.national_prefix_for_parsing
    if parsing not in (None, prefix) and not (parsing or "").startswith(prefix + "|"):
        return None
    desc = meta.general_desc
    if desc is None or not desc.national_number_pattern:
        return None
    lengths = frozenset(desc.possible_length or ())
    lengths |= frozenset(desc.possible_length_local_only or ())
    return (prefix, meta.international_prefix or "", str(meta.country_code),
            desc.national_number_pattern, lengths)  # fmt: skip


def normalize_arrow(values: pa.Array | pa.ChunkedArray, default_region: str | None = None,
                    *, large: bool = False) -> tuple[pa.Array, pa.Array]:  # fmt: skip
    """:func:`normalize` on an Arrow string array: (numbers, kinds) as Arrow string arrays.

    A dictionary array (e.g. as the CSV parser read it) is normalized on its values. With
    ``large`` the results are ``large_string`` (what a pandas string column holds).
    """
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(arr.type):  # the distinct values are at hand: no encoding
        distinct = arr.dictionary
        if not (pa.types.is_string(distinct.type) or pa.types.is_large_string(distinct.type)):
            distinct = distinct.cast(pa.string())
        indices = arr.indices
    else:
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            arr = arr.cast(pa.string())
        # Each value's result depends on that value alone: the rules run on the distinct
        # values (a number recurs in every call of its customer: 350K CSV rows hold 23K
        # callers and 104K callees) and are expanded with one take. Nulls are encoded as one
        # more distinct value (read as empty). Large text is encoded as it is, and only its
        # distinct values cast.
        encoded = arr.dictionary_encode(null_encoding="encode")
        distinct, indices = encoded.dictionary, encoded.indices
        if not pa.types.is_string(distinct.type):
            distinct = distinct.cast(pa.string())
    numbers, kinds = _normalize_distinct(distinct, default_region)
    if large:  # cast on the distinct values, not on every row
        numbers, kinds = numbers.cast(pa.large_string()), kinds.cast(pa.large_string())
    numbers, kinds = numbers.take(indices), kinds.take(indices)
    if indices.null_count:  # a null row, like an empty one
        kinds = pc.fill_null(kinds, pa.scalar("empty", kinds.type))
    return numbers, kinds


# -- the rules, on distinct values ----------------------------------------------------------------
#: Codes of :func:`_classify`: how a value is settled.
_EMPTY, _E164, _EXTENSION, _NATIONAL, _OTHER = 0, 1, 2, 3, 4
#: Kind of each code (a national candidate the patterns refuse becomes _OTHER first).
_KIND_OF_CODE = pa.array(["empty", "e164", "extension", "e164", "unparsed"], pa.string())
#: ASCII bytes ``utf8_trim_whitespace`` strips (tab to carriage return, FS/GS/RS/US, space).
_TRIM = np.zeros(256, dtype=np.bool_)
_TRIM[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
#: Separators people and switches write, removed before reading a number: RE2's ``\s``
#: (tab, newline, form feed, carriage return, space), dots, dashes, brackets and slashes.
_SEPARATOR = np.zeros(256, dtype=np.bool_)
_SEPARATOR[[9, 10, 12, 13, 32, ord("."), ord("-"), ord("("), ord(")"), ord("/")]] = True
_PLUS, _ZERO, _ONE, _NINE = 0x2B, 0x30, 0x31, 0x39


@_jit
def _classify(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray, trim: np.ndarray,
              separator: np.ndarray, prefix: np.ndarray, national_lengths: np.ndarray,
              max_extension: int) -> tuple[np.ndarray, ...]:  # fmt: skip
    """Code, cleaned text and trimmed bounds of each value, in one pass over the bytes.

    Per value: ASCII whitespace trimmed (``trim``); ``separator`` bytes removed; a leading
    ``00`` before a digit 1-9 read as ``+``. The cleaned text (``clean_offsets``, ``clean``)
    then decides the code: ``+`` and 8-15 digits, not ``+0`` (E.164); at most
    ``max_extension`` digits (an extension); digits starting with ``prefix`` whose rest has a
    length ``national_lengths`` allows (a national candidate, for the national patterns);
    anything else is left to phonenumbers. ``lo``/``hi`` bound the trimmed value in ``data``.
    """
    n = offsets.size - 1
    code = np.empty(n, np.uint8)
    lo = np.empty(n, np.int64)
    hi = np.empty(n, np.int64)
    clean_offsets = np.zeros(n + 1, np.int64)
    clean = np.empty(max(1, int(offsets[n]) - int(offsets[0])), np.uint8)
    npre = prefix.size
    pos = 0
    for i in range(n):
        a = np.int64(offsets[i])
        b = np.int64(offsets[i + 1])
        if not valid[i]:
            a = b
        while a < b and trim[data[a]]:
            a += 1
        while b > a and trim[data[b - 1]]:
            b -= 1
        lo[i] = a
        hi[i] = b
        if a == b:
            code[i] = _EMPTY
            clean_offsets[i + 1] = pos
            continue
        start = pos
        for k in range(a, b):
            c = data[k]
            if not separator[c]:
                clean[pos] = c
                pos += 1
        m = pos - start
        if (
            m >= 3
            and clean[start] == _ZERO
            and clean[start + 1] == _ZERO
            and (_ONE <= clean[start + 2] <= _NINE)
        ):
            clean[start] = _PLUS
            for k in range(start + 1, pos - 1):
                clean[k] = clean[k + 1]
            pos -= 1
            m -= 1
        clean_offsets[i + 1] = pos
        plus = m > 0 and clean[start] == _PLUS
        digits = m - 1 if plus else m
        digits_only = digits > 0
        for k in range(start + (1 if plus else 0), pos):
            if not (_ZERO <= clean[k] <= _NINE):
                digits_only = False
                break
        if not digits_only:
            code[i] = _OTHER
        elif plus:
            first = clean[start + 1]
            code[i] = _E164 if 8 <= digits <= 15 and first != _ZERO else _OTHER
        elif digits <= max_extension:
            code[i] = _EXTENSION
        else:
            cand = npre > 0 and m > npre and m - npre < national_lengths.size
            if cand:
                cand = national_lengths[m - npre]
            for k in range(npre):
                if not cand:
                    break
                cand = clean[start + k] == prefix[k]
            code[i] = _NATIONAL if cand else _OTHER
    return code, clean_offsets, clean[:pos], lo, hi


@_jit
def _assemble(code: np.ndarray, clean_offsets: np.ndarray, clean: np.ndarray, data: np.ndarray,
              lo: np.ndarray, hi: np.ndarray, country: np.ndarray, prefix_len: int,
              other_offsets: np.ndarray, other: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Offsets and bytes of the numbers of :func:`_classify`'s codes.

    The cleaned text (E.164), the trimmed text as written (extension), ``country`` + the rest
    after the national prefix (national), the next of ``other`` (the rest), nothing (empty).
    """
    n = code.size
    offsets = np.zeros(n + 1, np.int64)
    size = 0
    j = 0
    for i in range(n):
        c = code[i]
        m = clean_offsets[i + 1] - clean_offsets[i]
        if c == _E164:
            size += m
        elif c == _EXTENSION:
            size += hi[i] - lo[i]
        elif c == _NATIONAL:
            size += country.size + m - prefix_len
        elif c == _OTHER:
            size += other_offsets[j + 1] - other_offsets[j]
            j += 1
        offsets[i + 1] = size
    out = np.empty(max(1, size), np.uint8)
    j = 0
    for i in range(n):
        c = code[i]
        p = offsets[i]
        a, b = clean_offsets[i], clean_offsets[i + 1]
        if c == _E164:
            out[p : p + b - a] = clean[a:b]
        elif c == _EXTENSION:
            out[p : p + hi[i] - lo[i]] = data[lo[i] : hi[i]]
        elif c == _NATIONAL:
            out[p : p + country.size] = country
            p += country.size
            out[p : p + b - a - prefix_len] = clean[a + prefix_len : b]
        elif c == _OTHER:
            s, e = other_offsets[j], other_offsets[j + 1]
            out[p : p + e - s] = other[s:e]
            j += 1
    return offsets, out[:size]


def _utf8(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and bytes of Python strings (the few values phonenumbers settles)."""
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return offsets, np.frombuffer(b"".join(encoded) or b"\0", np.uint8)


def _normalize_distinct(arr: pa.Array, default_region: str | None) -> tuple[pa.Array, pa.Array]:
    """(numbers, kinds) of each value of an Arrow string array (a null reads as empty).

    One jitted pass trims, cleans and classifies every value (:func:`_classify`); the region's
    IDD and national number patterns (RE2, from phonenumbers' metadata) run on the national
    candidates only, and phonenumbers on what no rule settles. Equal to the rules written as
    Arrow passes (``tests/naive.py``) and, for E.164 results, to phonenumbers.
    """
    from cemkit import arrowstr

    n = len(arr)
    if n == 0:
        return pa.array([], pa.string()), pa.array([], pa.string())
    offsets, data, valid = arrowstr.buffers(arr)
    lo_byte, hi_byte = int(offsets[0]), int(offsets[-1])
    if hi_byte > lo_byte and int(data[lo_byte:hi_byte].max()) >= 0x80:
        # Unicode whitespace at either end (U+00A0, U+3000...) is trimmed by Arrow first; inner
        # non-ASCII text is kept and, never a digit or a separator, left to phonenumbers.
        trimmed = pc.utf8_trim_whitespace(arrowstr.as_string_array(arr))
        offsets, data, valid = arrowstr.buffers(trimmed)
    plan = _national_plan(default_region)
    prefix = np.frombuffer((plan[0] if plan else "").encode(), np.uint8)
    lengths = np.zeros(32, np.bool_)
    for length in plan[4] if plan else ():
        if length < lengths.size:
            lengths[length] = True
    code, clean_offsets, clean, lo, hi = _classify(
        offsets, data, valid, _TRIM, _SEPARATOR, prefix, lengths, MAX_EXTENSION_DIGITS
    )
    cleaned = arrowstr.from_buffers(clean_offsets, clean)
    candidates = np.flatnonzero(code == _NATIONAL)
    if len(candidates):
        national = _national_patterns(pc.take(cleaned, pa.array(candidates)), plan)
        code[candidates[~national]] = _OTHER
    # Slow path: one phonenumbers call per remaining value; what it cannot read stays as
    # written (trimmed).
    kind = np.minimum(code, _OTHER)
    todo = np.flatnonzero(code == _OTHER)
    results: list[str] = []
    if len(todo):
        seen: dict[str, str | None] = {}
        for i, value in zip(todo, pc.take(cleaned, pa.array(todo)).to_pylist(), strict=True):
            if value not in seen:
                seen[value] = _parse_one(str(value), default_region)
            parsed = seen[value]
            if parsed is not None:
                kind[i] = _E164
            results.append(parsed if parsed is not None else _text(data, lo[i], hi[i]))
    other_offsets, other = _utf8(results)
    country = np.frombuffer(("+" + plan[2]).encode() if plan else b"", np.uint8)
    out_offsets, out = _assemble(code, clean_offsets, clean, data, lo, hi, country,
                                 prefix.size, other_offsets, other)  # fmt: skip
    numbers = arrowstr.from_buffers(out_offsets, out, code != _EMPTY)
    return numbers, _KIND_OF_CODE.take(pa.array(kind))


def _text(data: np.ndarray, lo: int, hi: int) -> str:
    return bytes(data[lo:hi]).decode("utf-8")


def _national_patterns(candidates: pa.Array,
                       plan: tuple[str, str, str, str, frozenset[int]] | None
                       ) -> np.ndarray:  # fmt: skip
    """Which national candidates phonenumbers reads as ``+CC`` and the rest.

    The candidates are digits, start with the region's national prefix and have a possible
    length: those that are not the IDD prefix and whose rest fully matches the region's
    national number pattern. All False when RE2 cannot compile a pattern.
    """
    assert plan is not None
    prefix, idd, _cc, pattern, _lengths = plan
    try:
        ok = pc.match_substring_regex(pc.utf8_slice_codeunits(candidates, len(prefix)),
                                      f"^(?:{pattern})$")  # fmt: skip
        if idd:
            ok = pc.and_(ok, pc.invert(pc.match_substring_regex(candidates, f"^(?:{idd})")))
    except pa.ArrowInvalid:  # a pattern RE2 cannot compile: leave it to phonenumbers
        return np.zeros(len(candidates), dtype=bool)
    return np.asarray(pc.fill_null(ok, False).to_numpy(zero_copy_only=False), dtype=bool)


def normalize(values: pd.Series, default_region: str | None = None) -> tuple[pd.Series, pd.Series]:
    """Normalize telephone numbers to E.164.

    Parameters
    ----------
    values : pandas.Series
        Numbers as written by the source (strings; nulls allowed).
    default_region : str, optional
        ISO 3166 region for numbers written in national format (e.g. ``"GB"``). Without it only
        international forms (``+CC...``, ``00CC...``) are normalized.

    Returns
    -------
    (pandas.Series, pandas.Series)
        The normalized numbers (E.164, or the value as written) and their kinds.
    """
    strings = values.astype(_STRING)
    arr = pa.array(strings.array, type=pa.string()) if len(strings) else pa.array([], pa.string())
    numbers, kinds = normalize_arrow(arr, default_region)
    return (
        pd.Series(pd.arrays.ArrowStringArray(numbers), index=values.index, dtype=_STRING),
        pd.Series(pd.arrays.ArrowStringArray(kinds), index=values.index, dtype=_STRING),
    )


#: Names people write for a region that are not its ISO 3166 code.
_REGION_ALIASES = {"UK": "GB", "EN": "GB", "EL": "GR"}


def validate_region(region: str | None) -> str | None:
    """The ISO 3166 region code phonenumbers knows (upper case), or a clear error.

    Examples
    --------
    >>> validate_region("gb")
    'GB'
    >>> validate_region("UK")
    Traceback (most recent call last):
    ...
    cemkit.errors.InputError: unknown region 'UK' — the ISO 3166 code of the United Kingdom is GB
    """
    from cemkit.errors import InputError

    if region is None or region == "":
        return None
    code = str(region).strip().upper()
    if code in phonenumbers.SUPPORTED_REGIONS:
        return code
    if code in _REGION_ALIASES:
        alias = _REGION_ALIASES[code]
        name = "the United Kingdom" if alias == "GB" else alias
        raise InputError(f"unknown region {region!r}",
                         hint=f"the ISO 3166 code of {name} is {alias}")  # fmt: skip
    import difflib

    close = difflib.get_close_matches(code, sorted(phonenumbers.SUPPORTED_REGIONS), n=3)
    hint = f"did you mean {' or '.join(close)}?" if close else "give an ISO 3166 code, e.g. GB"
    raise InputError(f"unknown region {region!r} (ISO 3166 two-letter code expected)", hint=hint)
