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
from phonenumbers import PhoneMetadata

#: Numbers with at most this many digits (and no '+') are PBX extensions / short codes.
MAX_EXTENSION_DIGITS = 6

_STRING = pd.StringDtype("pyarrow")


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


def _national_fast_path(cleaned: pd.Series, candidates: np.ndarray,
                        region: str | None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """E.164 of national-format numbers (``0`` + national number) without phonenumbers.

    Returns a mask of the values settled and their E.164 forms. A value qualifies when it is
    digits only, starts with the region's national prefix but not its international (IDD)
    prefix, and the rest fully matches the region's national number pattern with a possible
    length: exactly the case where phonenumbers strips the prefix and prepends the country code.
    """
    plan = _national_plan(region)
    done = np.zeros(len(cleaned), dtype=bool)
    out = np.empty(len(cleaned), dtype=object)
    if plan is None or not candidates.any():
        return done, out
    prefix, idd, cc, pattern, lengths = plan
    sub = cleaned[candidates]
    ok = sub.str.startswith(prefix).fillna(False)
    if idd:
        ok &= ~sub.str.match(f"(?:{idd})").fillna(False)
    rest = sub.str.slice(len(prefix))
    ok &= rest.str.len().isin(lengths).fillna(False)
    ok &= rest.str.fullmatch(f"(?:{pattern})").fillna(False)
    ok_np = ok.to_numpy(dtype=bool)
    idx = np.flatnonzero(candidates)[ok_np]
    done[idx] = True
    out[idx] = ("+" + cc + rest[ok]).astype(object).to_numpy()
    return done, out


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
    codes, uniques = pd.factorize(strings, use_na_sentinel=True)
    uniq = pd.Series(uniques, dtype=_STRING).str.strip()
    # Separators people and switches write: spaces, dots, dashes, brackets; then the "00"
    # international prefix as "+". (pyarrow's RE2 kernels: pandas' .str.replace would fall back
    # to Python's re per value.)
    arr = pa.array(uniq.array, type=pa.string()) if len(uniq) else pa.array([], pa.string())
    arr = pc.replace_substring_regex(arr, r"[\s.\-()/]", "")
    arr = pc.replace_substring_regex(arr, r"^00([1-9])", r"+\1")
    cleaned = pd.Series(pd.arrays.ArrowStringArray(arr), index=uniq.index)
    digits_only = cleaned.str.fullmatch(r"\+?\d+").fillna(False).to_numpy(dtype=bool)
    plus = cleaned.str.startswith("+").fillna(False).to_numpy(dtype=bool)
    ndigits = cleaned.str.len().fillna(0).to_numpy() - plus

    out = uniq.astype(object).to_numpy().copy()
    kind = np.full(len(uniq), "unparsed", dtype=object)
    empty = (uniq.fillna("").str.len() == 0).to_numpy()
    kind[empty] = "empty"
    out[empty] = None

    # Fast path 1: already E.164-shaped ('+', 8 to 15 digits, no leading 0).
    fast_e164 = digits_only & plus & (ndigits >= 8) & (ndigits <= 15)
    fast_e164 &= ~cleaned.str.startswith("+0").fillna(False).to_numpy(dtype=bool)
    out[fast_e164] = cleaned[fast_e164].astype(object).to_numpy()
    kind[fast_e164] = "e164"
    # Fast path 2: short internal numbers.
    ext = digits_only & ~plus & (ndigits <= MAX_EXTENSION_DIGITS) & ~empty
    kind[ext] = "extension"

    # Fast path 3: national format ("0" + national number) in the default region.
    national, national_e164 = _national_fast_path(
        cleaned, digits_only & ~plus & ~empty & ~ext, default_region
    )
    out[national] = national_e164[national]
    kind[national] = "e164"

    # Slow path: one phonenumbers call per remaining distinct value.
    todo = np.flatnonzero(~empty & ~fast_e164 & ~ext & ~national)
    cleaned_arr = cleaned.astype(object).to_numpy()
    for i in todo:
        parsed = _parse_one(str(cleaned_arr[i]), default_region)
        if parsed is not None:
            out[i] = parsed
            kind[i] = "e164"

    result = pd.array(out, dtype=_STRING).take(codes, allow_fill=True)
    kinds = pd.array(kind, dtype=_STRING).take(codes, allow_fill=True)
    kinds[codes < 0] = "empty"
    return (
        pd.Series(result, index=values.index, dtype=_STRING),
        pd.Series(kinds, index=values.index, dtype=_STRING),
    )
