"""``tokenize``: keyed HMAC-SHA256 tokens, optionally after a kept prefix of digits.

A token is ``<kept prefix>#<hex>``: ``+441632#9f3a0c5e1b2d4f60``. The HMAC runs over the whole
value (prefix included) with the purpose key ``tokenize`` derived from the policy key, so the
same number gives the same token in every column, file, partition and worker, and a different
key (or key id) gives unrelated tokens. A prefix is kept only when at least
:data:`~cemkit.privacy.policy.MIN_HIDDEN_DIGITS` digits remain hidden after it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cemkit.privacy import _parties
from cemkit.privacy._hmac import (
    PREFIX_WORD_BYTES,
    hmac_words,
    prefix_lengths,
    prefix_words,
    tokens_by_code,
)
from cemkit.privacy.keys import Key
from cemkit.privacy.operators.base import Operator, from_arrow, to_arrow
from cemkit.privacy.policy import MIN_HIDDEN_DIGITS, TokenizeRule

SEPARATOR = "#"
#: Fewer distinct values than this are hashed one by one (no kernel call overhead to amortize).
_KERNEL_MIN = 64


def hmac_sha256(messages: Iterable[bytes], key: bytes) -> list[bytes]:
    """HMAC-SHA256 of each message (RFC 2104 / RFC 4231), with OpenSSL's one-shot HMAC."""
    return [hmac.digest(key, m, hashlib.sha256) for m in messages]


def token_hex(values: list[str], key: Key, length: int = 16) -> list[str]:
    """The hex part of the token of each value (``length`` hex characters)."""
    k = key.derive("tokenize")
    return [hmac.digest(k, v.encode("utf-8"), hashlib.sha256).hex()[:length] for v in values]


def kept_prefix(values: pa.Array, keep_digits: int) -> pa.Array:
    """The prefix to keep of each value ('' when none may be kept).

    Only numbers (``+`` and digits) with at least ``keep_digits + MIN_HIDDEN_DIGITS`` digits keep
    a prefix: the optional ``+`` and the first ``keep_digits`` digits.
    """
    if keep_digits == 0:
        return pa.array([""] * len(values), type=pa.string())
    pattern = rf"^(?P<p>\+?\d{{{keep_digits}}})\d{{{MIN_HIDDEN_DIGITS},}}$"
    prefix = pc.struct_field(pc.extract_regex(values, pattern), [0])
    return pc.fill_null(prefix, "")


def tokenize_values(values: pa.Array, key: Key, keep_digits: int = 0, length: int = 16) -> pa.Array:
    """Tokens of distinct values (Arrow string array without nulls).

    An empty string stays empty: it holds nothing to protect, and one shared token for every
    empty value would look like one very busy customer.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if len(values) < _KERNEL_MIN:
        hexes = pa.array(token_hex(values.to_pylist(), key, length), type=pa.string())
        tokens = pc.binary_join_element_wise(kept_prefix(values, keep_digits), hexes, SEPARATOR)
        return pc.if_else(pc.equal(values, ""), values, tokens)
    # one jitted pass over the Arrow buffers (same tokens as token_hex, ~10x faster)
    words = hmac_words(values, key.derive("tokenize"))
    codes = np.arange(len(values), dtype=np.int64)
    return tokens_by_code(codes, values, words, keep_digits, MIN_HIDDEN_DIGITS, length)


def tokenize_columns(columns: dict[str, pd.Series], rules: dict[str, TokenizeRule], key: Key,
                     threads: int = 1) -> dict[str, pd.Series]:  # fmt: skip
    """Tokens of several columns at once: one dictionary, one HMAC per distinct value.

    Tokens depend on the value and the key only (the rule's kept prefix and length are how they
    are written), so every tokenized column of a partition shares one dictionary of distinct
    values: a number that is a caller in one record and a callee in another is hashed once.
    Each column's tokens are then written by codes in one pass (:func:`tokens_by_code`); the
    result equals :func:`tokenize_values` column by column, value for value. ``threads``: the
    HMACs of a large dictionary on that many threads (:func:`~cemkit.privacy._hmac.hmac_words`).
    """
    arrays = {name: to_arrow(series) for name, series in columns.items()}
    tokens = tokenize_arrays(arrays, rules, key, threads, large=True)
    return {name: from_arrow(tokens[name], columns[name].index) for name in columns}


def tokenize_arrays(arrays: dict[str, pa.Array], rules: dict[str, TokenizeRule], key: Key,
                    threads: int = 1, codes: dict[str, np.ndarray] | None = None, *,
                    large: bool = False) -> dict[str, pa.Array]:  # fmt: skip
    """:func:`tokenize_columns` of Arrow string arrays (no pandas): the tokens as Arrow arrays.

    ``arrays`` may be ``string`` or ``large_string``. ``codes``, when given, receives each
    column's int64 codes into the one dictionary of the columns' values (-1: null): equal codes
    are equal values, in any two of these columns, and so equal tokens within a column (the
    real-time path keys its correlation by them). ``large``: the tokens as ``large_string``
    arrays (what pandas holds; no cast on the way in), else ``string``.
    """
    out: dict[str, pa.Array] = {}
    live: dict[str, pa.Array] = {}
    typ = pa.large_string() if large else pa.string()
    for name, arr in arrays.items():
        if arr.null_count == len(arr):  # nothing to hash (a column of another source kind)
            out[name] = pa.nulls(len(arr), typ)
            if codes is not None:
                codes[name] = np.full(len(arr), -1, np.int64)
        else:
            live[name] = arr
    if live:
        dictionary, found = _parties.build(list(live.values()))
        words = hmac_words(dictionary, key.derive("tokenize"), threads=threads)
        # per kept-digit count (the same for every column): prefix lengths and their bytes
        prefixes: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        for (name, _), column_codes in zip(live.items(), found, strict=True):
            rule = rules[name]
            if rule.keep_digits not in prefixes:
                lengths = prefix_lengths(dictionary, rule.keep_digits, MIN_HIDDEN_DIGITS)
                packed = (prefix_words(dictionary, lengths)
                          if rule.keep_digits < PREFIX_WORD_BYTES else None)  # fmt: skip
                prefixes[rule.keep_digits] = (lengths, packed)
            prefix, packed = prefixes[rule.keep_digits]
            out[name] = tokens_by_code(column_codes, dictionary, words, rule.keep_digits,
                                       MIN_HIDDEN_DIGITS, rule.length, prefix=prefix,
                                       prefix_words=packed, large=large)  # fmt: skip
            if codes is not None:
                codes[name] = column_codes
    return {name: out[name] for name in arrays}


class Tokenize(Operator):
    """Replace each value by ``<kept prefix>#<HMAC-SHA256 token>``."""

    action = "tokenize"
    kinds = ("string",)
    rule: TokenizeRule

    def apply(self, series: pd.Series) -> pd.Series:  # noqa: D102
        assert self.key is not None  # checked by validate()
        return tokenize_columns({self.column: series}, {self.column: self.rule}, self.key)[
            self.column
        ]
