"""``fpe``: FF3-1 format-preserving encryption of the digits of a number.

``+441632960961`` with ``keep_digits: 4`` becomes ``+4416`` followed by 8 encrypted digits:
same length, same shape, reversible by whoever holds the key (:func:`reveal_values`). The
purpose key ``fpe`` (AES-256) and, unless the policy gives one, the tweak are derived from the
policy key. Values that cannot be encrypted (not a number, or fewer than 6 digits after the
kept prefix) are dropped or tokenized, as the rule says.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cemkit.privacy import fpe
from cemkit.privacy.keys import Key
from cemkit.privacy.operators.base import Operator, on_distinct
from cemkit.privacy.operators.tokenize import tokenize_values
from cemkit.privacy.policy import FpeRule


def fpe_key(key: Key) -> bytes:
    """The AES-256 key FF3-1 uses under a policy key."""
    return key.derive("fpe", 32)


def fpe_tweak(key: Key, rule: FpeRule) -> bytes:
    """The 56-bit tweak: the rule's, or one derived from the key id."""
    return bytes.fromhex(rule.tweak) if rule.tweak else key.derive("fpe-tweak", 7)


def _split(values: pa.Array, keep_digits: int) -> tuple[pa.Array, np.ndarray]:
    pattern = (rf"^(?P<plus>\+?)(?P<keep>\d{{{keep_digits}}})"
               rf"(?P<rest>\d{{{fpe.MIN_LEN},{fpe.MAX_LEN}}})$")  # fmt: skip
    parts = pc.extract_regex(values, pattern)
    ok = pc.is_valid(parts).to_numpy(zero_copy_only=False)
    return parts, ok


def _crypt_values(
    values: pa.Array, key: Key, rule: FpeRule, decrypt: bool
) -> tuple[pa.Array, np.ndarray]:
    """(result for the eligible values, eligibility mask)."""
    parts, ok = _split(values, rule.keep_digits)
    idx = pa.array(np.flatnonzero(ok))
    chosen = parts.take(idx)
    rest = pc.struct_field(chosen, [2])
    crypted = fpe.crypt_arrow(rest, fpe_key(key), fpe_tweak(key, rule), decrypt=decrypt)
    head = pc.binary_join_element_wise(
        pc.struct_field(chosen, [0]), pc.struct_field(chosen, [1]), ""
    )
    return pc.binary_join_element_wise(head, crypted, ""), ok


def _scatter(n: int, ok: np.ndarray, done: pa.Array, other: pa.Array | None) -> pa.Array:
    """Combine the results of eligible values and (optionally) of the others, in order."""
    order = np.empty(n, dtype=np.int64)
    order[np.flatnonzero(ok)] = np.arange(int(ok.sum()))
    if other is None:
        combined = pa.concat_arrays([done.cast(pa.string()), pa.nulls(1, pa.string())])
        order[~ok] = len(done)
    else:
        combined = pa.concat_arrays([done.cast(pa.string()), other.cast(pa.string())])
        order[~ok] = len(done) + np.arange(int((~ok).sum()))
    return combined.take(pa.array(order))


def encrypt_values(values: pa.Array, key: Key, rule: FpeRule) -> pa.Array:
    """FPE pseudonyms of distinct values (Arrow string array without nulls)."""
    done, ok = _crypt_values(values, key, rule, decrypt=False)
    other = None
    if rule.too_short == "tokenize":
        other = tokenize_values(values.filter(pa.array(~ok)), key)
    return _scatter(len(values), ok, done, other)


def reveal_values(values: pa.Array, key: Key, rule: FpeRule) -> pa.Array:
    """Original values of FPE pseudonyms; values that are not FPE output stay as they are."""
    done, ok = _crypt_values(values, key, rule, decrypt=True)
    return _scatter(len(values), ok, done, values.filter(pa.array(~ok)))


class Fpe(Operator):
    """Encrypt the digits after the kept prefix with FF3-1 (radix 10)."""

    action = "fpe"
    kinds = ("string",)
    rule: FpeRule

    def apply(self, series: pd.Series) -> pd.Series:  # noqa: D102
        assert self.key is not None  # checked by validate()
        key, rule = self.key, self.rule
        return on_distinct(series, lambda v: encrypt_values(v, key, rule))

    def reveal(self, series: pd.Series) -> pd.Series:
        """Decrypt a column this operator produced (authorized re-identification)."""
        assert self.key is not None
        key, rule = self.key, self.rule
        return on_distinct(series, lambda v: reveal_values(v, key, rule))
