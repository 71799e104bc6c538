"""The one codec of pseudonyms: ``<kept prefix>#<16 hex>`` to (int64 bits, prefix code) and back.

:mod:`~cemkit.privacy.operators.tokenize` writes a token as its kept prefix (``+`` and digits, or
nothing), ``#`` and 16 lowercase hex digits: exactly 64 bits. Everything after protect that
keys, joins or stores tokens can carry those bits as one int64 and the prefix as a small
dictionary code instead of a 24-byte string, and give the string back bit for bit:

- :func:`split`: an Arrow string column to :class:`TokenCodes`, one jitted pass over its buffers
  (offsets, bytes, validity). A column that is not all tokens (another length, upper-case hex, a
  prefix that is not ``+`` and digits, any other string) gives ``None``: the caller keeps the
  strings. Nulls and empty strings (tokenize keeps an empty value empty) are rows of their own.
- :func:`join`: the strings again, written straight into one Arrow buffer.
- :func:`factorize`: dense codes of (bits, prefix) pairs, jitted: rows scattered by hash into
  partitions, each coded with a hash table that stays in cache. Equal codes are equal strings,
  and only those (the same number tokenized under two kept prefixes gives equal bits, unequal
  strings and so unequal codes).
- :func:`to_struct` / :func:`from_struct`: the Arrow layout part files store a token column in,
  ``struct<prefix: dictionary<int32, string>, bits: int64>``.

The bits are the token's own (HMAC output), never a number of the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numba import njit

from cemkit import arrowstr, config

_jit = njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL)

#: Hex digits of a token (64 bits).
HEX_DIGITS = 16
#: Longest kept prefix the codec carries as a code (digits; E.164 numbers have at most 15).
MAX_PREFIX_DIGITS = 17
#: Prefix code of a null row and of an empty string.
NULL, EMPTY = -1, -2
#: Arrow type a token column is stored as (see :func:`to_struct`).
STRUCT_TYPE = pa.struct(
    [pa.field("prefix", pa.dictionary(pa.int32(), pa.string())), pa.field("bits", pa.int64())]
)

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).copy()
_DIGIT = np.full(256, -1, np.int64)
_DIGIT[_HEX] = np.arange(16)
_PLUS, _HASH = 0x2B, 0x23
_NDIG = MAX_PREFIX_DIGITS + 1  # digit counts 0..MAX_PREFIX_DIGITS


@dataclass(frozen=True)
class TokenCodes:
    """A token column as integers.

    Attributes
    ----------
    bits : int64 array
        The token's 64 hex bits per row (two's complement; 0 for a null or empty row).
    prefix : int32 array
        Index into ``prefixes`` per row; :data:`NULL` for a null, :data:`EMPTY` for ``""``.
    prefixes : pyarrow string array
        The distinct kept prefixes, in first-seen order (``""`` when none was kept).
    """

    bits: np.ndarray
    prefix: np.ndarray
    prefixes: pa.Array

    def __len__(self) -> int:
        return int(self.bits.shape[0])


# --- kernels (NumPy arrays only) ----------------------------------------------------------------


@njit(inline="always")
def _hash(b, t):
    """A 64-bit mix of a pair (the murmur3 finalizer over bits XOR a multiple of the tag)."""
    h = b ^ (np.uint64(t) * np.uint64(0xC2B2AE3D27D4EB4F))
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


@njit(inline="always")
def _part(h, part_bits):
    """The top ``part_bits`` bits of ``h`` (0 for none; two shifts, never one of 64)."""
    return np.int64((h >> np.uint64(1)) >> np.uint64(63 - part_bits))


@_jit
def _split_kernel(offsets, data, valid, max_digits, ndig, digit):
    """Bits and a prefix code per row, the distinct prefix keys; ``ok`` False at a non-token.

    ``digit[byte]`` is the value of a lowercase hex digit, else -1 (a lookup, no branches). A
    prefix is keyed ``(digits value * ndig + digit count) * 2 + plus`` (injective for at most
    ``max_digits`` digits) and numbered in first-seen order by a small hash table held here
    (there are few prefixes); a null row gets :data:`NULL`, an empty one :data:`EMPTY`.
    """
    n = offsets.shape[0] - 1
    bits = np.zeros(n, np.uint64)
    prefix = np.empty(n, np.int32)
    logcap = 8
    table = np.full(1 << logcap, -1, np.int64)
    keys = np.empty(1 << (logcap - 1), np.int64)
    m = 0
    last_key, last_code = -1, -1
    for i in range(n):
        if not valid[i]:
            prefix[i] = NULL
            continue
        lo, hi = np.int64(offsets[i]), np.int64(offsets[i + 1])
        if hi == lo:
            prefix[i] = EMPTY
            continue
        sep = hi - 17
        if sep < lo or data[sep] != _HASH:
            return bits, prefix, keys[:m], False
        v = np.uint64(0)
        bad = np.int64(0)
        for j in range(sep + 1, hi):
            x = digit[data[j]]
            bad |= x
            v = (v << np.uint64(4)) | np.uint64(x & 15)
        plus = 0
        q = lo
        if q < sep and data[q] == _PLUS:
            plus = 1
            q += 1
        nd = sep - q
        if nd > max_digits:
            return bits, prefix, keys[:m], False
        value = np.int64(0)
        for k in range(q, sep):
            x = digit[data[k]]
            bad |= x | (9 - x)  # negative unless 0 <= x <= 9
            value = value * 10 + x
        if bad < 0:
            return bits, prefix, keys[:m], False
        bits[i] = v
        key = (value * ndig + nd) * 2 + plus
        if key != last_key:
            h = _part(_hash(np.uint64(key), 0), logcap)
            while table[h] >= 0 and keys[table[h]] != key:
                h = (h + 1) & ((1 << logcap) - 1)
            if table[h] < 0:
                if 2 * (m + 1) > (1 << logcap):
                    logcap += 1
                    table = np.full(1 << logcap, -1, np.int64)
                    grown = np.empty(1 << (logcap - 1), np.int64)
                    grown[:m] = keys[:m]
                    keys = grown
                    for c in range(m):
                        g = _part(_hash(np.uint64(keys[c]), 0), logcap)
                        while table[g] >= 0:
                            g = (g + 1) & ((1 << logcap) - 1)
                        table[g] = c
                    h = _part(_hash(np.uint64(key), 0), logcap)
                    while table[h] >= 0:
                        h = (h + 1) & ((1 << logcap) - 1)
                table[h] = m
                keys[m] = key
                m += 1
            last_key, last_code = key, table[h]
        prefix[i] = last_code
    return bits, prefix, keys[:m], True


@_jit
def _factorize_kernel(bits, tag, part_bits):
    """Dense codes of the pairs (bits, tag); ``tag == NULL``: code -1. Returns codes and count.

    Rows are first scattered by the high bits of the pair's hash into ``2**part_bits``
    partitions (sequential passes), then each partition is factorized with a hash table small
    enough to stay in cache (open addressing, linear probing, the pairs held in the table).
    Codes are dense, numbered partition by partition (equal codes if and only if equal pairs).
    """
    n = bits.shape[0]
    nparts = 1 << part_bits
    hashes = np.empty(n, np.uint64)
    count = np.zeros(nparts + 1, np.int64)
    for i in range(n):
        if tag[i] == NULL:
            continue
        h = _hash(bits[i], tag[i])
        hashes[i] = h
        count[_part(h, part_bits)] += 1
    start = np.zeros(nparts + 1, np.int64)
    for p in range(nparts):
        start[p + 1] = start[p] + count[p]
    fill = start[:nparts].copy()
    rows = np.empty(start[nparts], np.int64)
    codes = np.full(n, -1, np.int64)
    largest = 0
    for i in range(n):
        if tag[i] == NULL:
            continue
        p = _part(hashes[i], part_bits)
        rows[fill[p]] = i
        fill[p] += 1
    for p in range(nparts):
        largest = max(largest, count[p])
    logcap = 4
    while (1 << logcap) < 2 * largest:
        logcap += 1
    cap = 1 << logcap
    mask = np.uint64(cap - 1)
    slot_code = np.full(cap, -1, np.int64)
    slot_bits = np.zeros(cap, np.uint64)
    slot_tag = np.zeros(cap, np.int64)
    used = np.empty(cap, np.int64)
    m = 0
    for p in range(nparts):
        nused = 0
        for q in range(start[p], start[p + 1]):
            i = rows[q]
            b = bits[i]
            t = tag[i]
            h = np.int64(hashes[i] & mask)
            while True:
                c = slot_code[h]
                if c < 0:
                    slot_code[h] = m
                    slot_bits[h] = b
                    slot_tag[h] = t
                    used[nused] = h
                    nused += 1
                    codes[i] = m
                    m += 1
                    break
                if slot_bits[h] == b and slot_tag[h] == t:
                    codes[i] = c
                    break
                h = (h + 1) & (cap - 1)
        for k in range(nused):
            slot_code[used[k]] = -1
    return codes, m


@_jit
def _join_kernel(bits, prefix, poffsets, pdata, hexdigits):
    """Offsets and bytes of ``<prefix>#<16 hex>`` per row (empty slots for null and empty)."""
    n = bits.shape[0]
    out_offsets = np.empty(n + 1, np.int64)
    out_offsets[0] = 0
    for i in range(n):
        p = prefix[i]
        size = 0
        if p >= 0:
            size = poffsets[p + 1] - poffsets[p] + 17
        out_offsets[i + 1] = out_offsets[i] + size
    out = np.empty(out_offsets[n], np.uint8)
    for i in range(n):
        p = prefix[i]
        if p < 0:
            continue
        o = out_offsets[i]
        for j in range(poffsets[p], poffsets[p + 1]):
            out[o] = pdata[j]
            o += 1
        out[o] = _HASH
        o += 1
        v = bits[i]
        for j in range(16):
            out[o + j] = hexdigits[(v >> np.uint64(60 - 4 * j)) & np.uint64(0xF)]
    return out_offsets, out


# --- glue ---------------------------------------------------------------------------------------


def _flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def _prefix_string(key: int) -> str:
    plus, key = key & 1, key >> 1
    value, ndigits = divmod(key, _NDIG)
    return ("+" if plus else "") + (str(value).zfill(ndigits) if ndigits else "")


def split(values: pa.Array | pa.ChunkedArray) -> TokenCodes | None:
    """A string column as :class:`TokenCodes`; ``None`` unless every value is a token or empty.

    Parameters
    ----------
    values : pyarrow string or large_string array (or chunked array)
        Tokens ``<prefix>#<16 lowercase hex>`` (prefix: an optional ``+`` and at most
        :data:`MAX_PREFIX_DIGITS` digits), empty strings or nulls.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from cemkit.privacy import tokens
    >>> codes = tokens.split(pa.array(["+4420#00000000000000ff", None, ""]))
    >>> codes.bits.tolist(), codes.prefix.tolist(), codes.prefixes.to_pylist()
    ([255, 0, 0], [0, -1, -2], ['+4420'])
    >>> tokens.join(codes).to_pylist()
    ['+4420#00000000000000ff', None, '']
    >>> tokens.split(pa.array(["synth:1"])) is None
    True
    """
    values = _flat(values)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return None
    if values.null_count == len(values):
        return None  # nothing to gain, and the column's kind is not known
    offsets, data, valid = arrowstr.buffers(values)
    bits, prefix, keys, ok = _split_kernel(offsets, data, valid, MAX_PREFIX_DIGITS, _NDIG, _DIGIT)
    if not ok:
        return None
    prefixes = pa.array([_prefix_string(int(k)) for k in keys], pa.string())
    return TokenCodes(bits.view(np.int64), prefix, prefixes)


def join(codes: TokenCodes) -> pa.Array:
    """The string column of :class:`TokenCodes` again, byte for byte (an Arrow string array)."""
    prefixes = _flat(codes.prefixes).cast(pa.string())
    poffsets, pdata, _ = arrowstr.buffers(prefixes)
    out_offsets, out = _join_kernel(codes.bits.view(np.uint64), codes.prefix.astype(np.int64),
                                    poffsets.astype(np.int64), pdata, _HEX)  # fmt: skip
    return arrowstr.from_buffers(out_offsets, out, codes.prefix != NULL)


def factorize(bits: np.ndarray, tag: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense int64 codes of the pairs ``(bits[i], tag[i])`` in first-seen order, and how many.

    ``tag`` is a prefix code (or any small integer that must also be equal); a row with
    ``tag == NULL`` gets code -1. Equal codes if and only if equal pairs; the numbering is the
    kernel's own (dense, not first-seen).
    """
    bits = np.ascontiguousarray(bits).view(np.uint64)
    part_bits = max(0, min(12, (int(bits.shape[0]) >> 12).bit_length()))
    codes, m = _factorize_kernel(bits, np.asarray(tag, dtype=np.int64), part_bits)
    return codes, int(m)


def to_struct(codes: TokenCodes) -> pa.StructArray:
    """The stored layout: ``struct<prefix: dictionary, bits: int64>``; null rows are null structs.

    An empty string is a valid struct with both fields null.
    """
    live = codes.prefix >= 0
    nulls = codes.prefix == NULL
    indices = pa.array(codes.prefix.astype(np.int32), mask=~live)
    prefix = pa.DictionaryArray.from_arrays(indices, _flat(codes.prefixes).cast(pa.string()))
    bits = pa.array(codes.bits, pa.int64(), mask=~live)
    mask = pa.array(nulls) if nulls.any() else None
    return pa.StructArray.from_arrays([prefix, bits], fields=list(STRUCT_TYPE), mask=mask)


def from_struct(values: pa.Array | pa.ChunkedArray) -> TokenCodes:
    """:class:`TokenCodes` of a column stored by :func:`to_struct` (dictionary or plain prefix)."""
    values = _flat(values)
    n = len(values)
    if not isinstance(values, pa.StructArray):
        raise TypeError(f"a stored token column is a struct, not {values.type}")
    prefix_field = values.field("prefix")
    bits_field = values.field("bits")
    if pa.types.is_dictionary(prefix_field.type):
        dictionary = prefix_field.dictionary
        indices = prefix_field.indices
    else:
        enc = prefix_field.dictionary_encode()
        dictionary, indices = enc.dictionary, enc.indices
    idx = indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    live = prefix_field.is_valid().to_numpy(zero_copy_only=False)
    struct_valid = values.is_valid().to_numpy(zero_copy_only=False)
    prefix = np.where(live & struct_valid, idx, EMPTY)
    prefix[~struct_valid] = NULL
    bits = bits_field.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    bits = np.where(prefix >= 0, bits, 0)
    return TokenCodes(np.ascontiguousarray(bits[:n]), prefix.astype(np.int32), dictionary)


def is_token_struct(t: pa.DataType) -> bool:
    """Whether ``t`` is the stored token layout (with a dictionary or a plain string prefix)."""
    if not pa.types.is_struct(t) or t.num_fields != 2:
        return False
    p, b = t.field(0), t.field(1)
    string_prefix = pa.types.is_string(p.type) or (
        pa.types.is_dictionary(p.type) and pa.types.is_string(p.type.value_type)
    )
    return p.name == "prefix" and b.name == "bits" and pa.types.is_int64(b.type) and string_prefix
