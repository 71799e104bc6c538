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

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cemkit.privacy._hmac import hmac_hex
from cemkit.privacy.keys import Key
from cemkit.privacy.operators.base import Operator, on_distinct
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
    prefix = kept_prefix(values, keep_digits)
    if len(values) >= _KERNEL_MIN and 0 < length <= 64:
        # one jitted pass over the Arrow buffers (same tokens as token_hex, ~10x faster)
        hexes = hmac_hex(values, key.derive("tokenize"), length)
    else:
        hexes = pa.array(token_hex(values.to_pylist(), key, length), type=pa.string())
    tokens = pc.binary_join_element_wise(prefix, hexes, SEPARATOR)
    return pc.if_else(pc.equal(values, ""), values, tokens)


class Tokenize(Operator):
    """Replace each value by ``<kept prefix>#<HMAC-SHA256 token>``."""

    action = "tokenize"
    kinds = ("string",)
    rule: TokenizeRule

    def apply(self, series: pd.Series) -> pd.Series:  # noqa: D102
        assert self.key is not None  # checked by validate()
        key, rule = self.key, self.rule
        return on_distinct(
            series, lambda v: tokenize_values(v, key, rule.keep_digits, rule.length)
        )
