"""HMAC-SHA256 of many short values at once: one jitted loop over an Arrow string array's buffers.

Per value, ``hmac.digest`` costs a Python call, an ``encode`` and a ``hex`` (~4 µs a value here,
most of a pseudonymization pass over numbers that are nearly all distinct). This kernel keeps
the key's inner and outer SHA-256 states (RFC 2104: the compressions of ``key XOR ipad`` and
``key XOR opad``), so each value costs its own message blocks plus one outer block. Digests
are computed once per *distinct* value (:func:`hmac_words`) and the tokens of every row written
from them straight into one output buffer (:func:`tokens_by_code`). Checked against
:func:`hmac.digest` (RFC 4231 vectors and random values) in the tests.

Two backends compute the same compressions:

- ``openssl``: each block goes to OpenSSL's ``SHA256_Transform``, called from the jitted loop
  (no Python call per value), in the libcrypto that Python's :mod:`hashlib` already loaded.
  OpenSSL picks the CPU's SHA extensions (SHA-NI) or its vectorized assembly: ~4-5x the
  compression below. OpenSSL 3 marks that API deprecated but exports it; it is looked up once,
  and used only when it gives the RFC 4231 answers (:func:`backend`);
- ``numba``: the compression written out in 32-bit words (FIPS 180-4), the fallback where the
  symbol is missing (a libcrypto built without the deprecated API, another TLS library).
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
from typing import Any

import numpy as np
import pyarrow as pa
from numba import njit, types

from cemkit import arrowstr, config

_jit = njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL)

_K = np.array(
    [
        0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4,
        0xAB1C5ED5, 0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE,
        0x9BDC06A7, 0xC19BF174, 0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F,
        0x4A7484AA, 0x5CB0A9DC, 0x76F988DA, 0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7,
        0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967, 0x27B70A85, 0x2E1B2138, 0x4D2C6DFC,
        0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85, 0xA2BFE8A1, 0xA81A664B,
        0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070, 0x19A4C116,
        0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
        0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7,
        0xC67178F2,
    ],
    dtype=np.uint64,
)  # fmt: skip
_IV = np.array(
    [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB,
     0x5BE0CD19],
    dtype=np.uint64,
)  # fmt: skip
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).copy()
_HEX_PAIRS = (_HEX[np.arange(256) >> 4].astype(np.uint16)
              | (_HEX[np.arange(256) & 15].astype(np.uint16) << np.uint16(8)))  # fmt: skip
_K32 = _K.astype(np.uint32)
_SEPARATOR = np.uint8(ord("#"))
_PLUS, _ZERO, _NINE = 0x2B, 0x30, 0x39


@njit(inline="always")
def _rotr(x: np.uint32, n: int) -> np.uint32:
    return np.uint32((x >> np.uint32(n)) | (x << np.uint32(32 - n)))


@njit(inline="always")
def _compress(state: np.ndarray, w: np.ndarray, k: np.ndarray) -> None:
    """One SHA-256 compression into ``state`` (8 uint32 words) of the block in ``w[:16]``."""
    for i in range(16, 64):
        x, y = w[i - 15], w[i - 2]
        s0 = _rotr(x, 7) ^ _rotr(x, 18) ^ (x >> np.uint32(3))
        s1 = _rotr(y, 17) ^ _rotr(y, 19) ^ (y >> np.uint32(10))
        w[i] = np.uint32(w[i - 16] + s0 + w[i - 7] + s1)
    a, b, c, d = state[0], state[1], state[2], state[3]
    e, f, g, h = state[4], state[5], state[6], state[7]
    for i in range(64):
        s1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
        ch = np.uint32((e & f) ^ (~e & g))
        t1 = np.uint32(h + s1 + ch + k[i] + w[i])
        s0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
        t2 = np.uint32(s0 + ((a & b) ^ (a & c) ^ (b & c)))
        h, g, f, e = g, f, e, np.uint32(d + t1)
        d, c, b, a = c, b, a, np.uint32(t1 + t2)
    state[0] = np.uint32(state[0] + a)
    state[1] = np.uint32(state[1] + b)
    state[2] = np.uint32(state[2] + c)
    state[3] = np.uint32(state[3] + d)
    state[4] = np.uint32(state[4] + e)
    state[5] = np.uint32(state[5] + f)
    state[6] = np.uint32(state[6] + g)
    state[7] = np.uint32(state[7] + h)


@_jit
def _digests(
    offsets: np.ndarray, data: np.ndarray, inner0: np.ndarray, outer0: np.ndarray, k: np.ndarray
) -> np.ndarray:
    """HMAC-SHA256 of each value ``data[offsets[i]:offsets[i+1]]``: an (n, 8) uint32 array."""
    n = offsets.size - 1
    out = np.empty((n, 8), dtype=np.uint32)
    state = np.empty(8, dtype=np.uint32)
    w = np.empty(64, dtype=np.uint32)
    for r in range(n):
        lo = offsets[r]
        length = offsets[r + 1] - lo
        state[:] = inner0
        # message blocks: the value, 0x80, zeros, the bit length of (ipad block + value)
        nblocks = (length + 9 + 63) // 64
        bits = (64 + length) * 8
        for blk in range(nblocks):
            base = blk * 64
            for i in range(16):
                v = np.uint32(0)
                for j in range(4):
                    pos = base + 4 * i + j
                    byte = np.uint32(0)
                    if pos < length:
                        byte = np.uint32(data[lo + pos])
                    elif pos == length:
                        byte = np.uint32(0x80)
                    v = np.uint32((v << np.uint32(8)) | byte)
                w[i] = v
            if blk == nblocks - 1:
                w[14] = np.uint32(bits >> 32)
                w[15] = np.uint32(bits & 0xFFFFFFFF)
            _compress(state, w, k)
        # outer block: the inner digest, 0x80, zeros, 768 bits (opad block + 32 bytes)
        for i in range(8):
            w[i] = state[i]
        w[8] = np.uint32(0x80000000)
        for i in range(9, 15):
            w[i] = np.uint32(0)
        w[15] = np.uint32(768)
        state[:] = outer0
        _compress(state, w, k)
        out[r, :] = state
    return out


#: The name the OpenSSL compression is registered under with LLVM (see :func:`backend`).
_SYMBOL = "cemkit_openssl_sha256_transform"
#: What is looked up in libcrypto: ``void SHA256_Transform(SHA256_CTX *c, const uint8_t *block)``.
_LIBRARY_SYMBOL = "SHA256_Transform"
#: Words of an OpenSSL ``SHA256_CTX`` (h[8], Nl, Nh, data[16], num, md_len); the call reads and
#: writes ``h`` only, the rest is there so the struct it is given has its full size.
_CTX_WORDS = 28
_transform: Any = types.ExternalFunction(_SYMBOL, types.void(types.voidptr, types.voidptr))


@njit(inline="always")
def _put_be32(block: np.ndarray, at: int, word: np.uint32) -> None:
    block[at] = np.uint8(word >> np.uint32(24))
    block[at + 1] = np.uint8((word >> np.uint32(16)) & np.uint32(0xFF))
    block[at + 2] = np.uint8((word >> np.uint32(8)) & np.uint32(0xFF))
    block[at + 3] = np.uint8(word & np.uint32(0xFF))


@_jit
def _digests_openssl(
    offsets: np.ndarray, data: np.ndarray, inner0: np.ndarray, outer0: np.ndarray
) -> np.ndarray:
    """:func:`_digests` with each compression done by OpenSSL's ``SHA256_Transform``.

    The blocks are written as bytes (OpenSSL reads them big-endian itself); the state is the
    ``h`` of a ``SHA256_CTX``, native uint32 words as in :func:`_digests`.
    """
    n = offsets.size - 1
    out = np.empty((n, 8), dtype=np.uint32)
    ctx = np.zeros(_CTX_WORDS, dtype=np.uint32)
    block = np.zeros(64, dtype=np.uint8)
    pctx, pblock = ctx.ctypes.data, block.ctypes.data
    for r in range(n):
        lo = offsets[r]
        length = offsets[r + 1] - lo
        ctx[:8] = inner0
        # message blocks: the value, 0x80, zeros, the bit length of (ipad block + value)
        nblocks = (length + 9 + 63) // 64
        bits = (64 + length) * 8
        for blk in range(nblocks):
            base = blk * 64
            take = min(64, max(0, length - base))
            for i in range(take):
                block[i] = data[lo + base + i]
            for i in range(take, 64):
                block[i] = 0
            if base + take == length and take < 64:
                block[take] = 0x80
            if blk == nblocks - 1:
                _put_be32(block, 56, np.uint32(bits >> 32))
                _put_be32(block, 60, np.uint32(bits & 0xFFFFFFFF))
            _transform(pctx, pblock)
        # outer block: the inner digest, 0x80, zeros, 768 bits (opad block + 32 bytes)
        for i in range(8):
            _put_be32(block, 4 * i, ctx[i])
        block[32] = 0x80
        for i in range(33, 62):
            block[i] = 0
        block[62] = 0x03
        block[63] = 0x00
        ctx[:8] = outer0
        _transform(pctx, pblock)
        out[r, :] = ctx[:8]
    return out


def _transform_address() -> int | None:
    """Address of ``SHA256_Transform`` in the libcrypto Python's ``_hashlib`` links, or None.

    ``dlsym`` on the extension's handle searches the libraries it was linked with, so this is
    the very libcrypto :mod:`hashlib` uses (no second copy, no search of the file system).
    """
    try:
        import _hashlib

        return ctypes.cast(getattr(ctypes.CDLL(_hashlib.__file__), _LIBRARY_SYMBOL),
                           ctypes.c_void_p).value  # fmt: skip
    except (ImportError, OSError, AttributeError):
        return None


#: Known answers each backend must give before it is used: (key, message, HMAC-SHA256).
_CHECKS = [
    (b"Jefe", b"what do ya want for nothing?",  # RFC 4231, test case 2
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",  # case 6
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
]  # fmt: skip

_backend: str | None = None
#: Where ``SHA256_Transform`` is (None: not found). Registered with LLVM at import, before any
#: compiled or cached :func:`_digests_openssl` can be linked; it is only called when found.
_ADDRESS = _transform_address()
if _ADDRESS:
    import llvmlite.binding as _llvm

    _llvm.add_symbol(_SYMBOL, _ADDRESS)


def _passes(kernel: object) -> bool:
    values = [b"", b"x" * 55, b"y" * 56, b"z" * 64, b"w" * 130]
    for key, message, want in _CHECKS:
        arr = pa.array([message.decode()], pa.string())
        offsets, data, _ = arrowstr.buffers(arr)
        got = _run(kernel, offsets, data, key)
        if got[0].astype(">u4").tobytes().hex() != want:
            return False
    arr = pa.array([v.decode() for v in values], pa.string())
    offsets, data, _ = arrowstr.buffers(arr)
    got = _run(kernel, offsets, data, b"k")
    return [g.astype(">u4").tobytes() for g in got] == [
        hmac.digest(b"k", v, hashlib.sha256) for v in values
    ]


def backend() -> str:
    """The compression :func:`hmac_words` uses: ``"openssl"`` or ``"numba"`` (chosen once).

    ``openssl`` when libcrypto exports ``SHA256_Transform`` and the jitted loop calling it gives
    the known answers of RFC 4231 and :func:`hmac.digest` (checked here, once per process);
    otherwise ``numba``. The tokens are the same either way.
    """
    global _backend
    if _backend is None:
        _backend = "numba"
        if _ADDRESS:
            try:
                works = _passes(_digests_openssl)
            except Exception:  # noqa: BLE001 - a link or ABI failure means: not this one
                works = False
            if works:
                _backend = "openssl"
    return _backend


def _call(kernel: Any, offsets: np.ndarray, data: np.ndarray, inner: np.ndarray,
          outer: np.ndarray) -> np.ndarray:  # fmt: skip
    if kernel is _digests:
        return _digests(offsets, data, inner, outer, _K32)
    return _digests_openssl(offsets, data, inner, outer)


def _run(kernel: Any, offsets: np.ndarray, data: np.ndarray, key: bytes) -> np.ndarray:
    """``kernel``'s HMACs under ``key`` (the pads computed here): for checks and tests."""
    return _call(kernel, offsets, data, _pad_state(key, 0x36), _pad_state(key, 0x5C))


@_jit
def _prefix_lengths(offsets: np.ndarray, data: np.ndarray, keep: int, min_hidden: int
                    ) -> np.ndarray:  # fmt: skip
    """Bytes of each value kept before its token (-1: the value is empty, it stays empty).

    A value keeps ``keep`` digits (and its leading ``+``) only when it is ``+`` and digits, with
    at least ``keep + min_hidden`` digits: the rule of
    :func:`cemkit.privacy.operators.tokenize.kept_prefix`.
    """
    n = offsets.size - 1
    out = np.zeros(n, dtype=np.int16)
    for i in range(n):
        lo, hi = offsets[i], offsets[i + 1]
        if hi == lo:
            out[i] = -1
            continue
        if keep == 0:
            continue
        start = lo + 1 if data[lo] == _PLUS else lo
        ok = hi - start >= keep + min_hidden
        j = start
        while ok and j < hi:
            ok = _ZERO <= data[j] <= _NINE
            j += 1
        if ok:
            out[i] = start - lo + keep
    return out


@_jit
def _token_offsets(codes: np.ndarray, prefix: np.ndarray, extra: int) -> np.ndarray:
    """Offsets of each row's token: ``prefix[c] + extra`` bytes (``#`` and digits), 0 for none."""
    n = codes.size
    out_offsets = np.empty(n + 1, dtype=np.int64)
    out_offsets[0] = 0
    for r in range(n):
        c = codes[r]
        size = 0
        if c >= 0 and prefix[c] >= 0:
            size = prefix[c] + extra
        out_offsets[r + 1] = out_offsets[r] + size
    return out_offsets


@_jit
def _gather_tokens(
    codes: np.ndarray,
    prefix: np.ndarray,
    offsets: np.ndarray,
    data: np.ndarray,
    words: np.ndarray,
    nhex: int,
    hexpairs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's token ``<kept prefix>#<nhex hex digits>`` of the distinct value ``codes[r]``.

    A negative code (a null) or an empty value gives an empty slot. Returns offsets and bytes.
    ``hexpairs[b]`` holds the two hex digits of byte ``b`` (first digit in the low byte): one
    lookup per byte of the digest, not two shifts and a lookup per digit.
    """
    n = codes.size
    out_offsets = _token_offsets(codes, prefix, 1 + nhex)
    out = np.empty(out_offsets[n], dtype=np.uint8)
    nbytes = nhex // 2
    for r in range(n):
        p = out_offsets[r]
        if out_offsets[r + 1] == p:
            continue
        c = codes[r]
        lo = offsets[c]
        for j in range(prefix[c]):
            out[p + j] = data[lo + j]
        p += prefix[c]
        out[p] = _SEPARATOR
        p += 1
        for j in range(nbytes):
            byte = (words[c, j >> 2] >> np.uint32(24 - 8 * (j & 3))) & np.uint32(0xFF)
            pair = hexpairs[byte]
            out[p] = np.uint8(pair & np.uint16(0xFF))
            out[p + 1] = np.uint8(pair >> np.uint16(8))
            p += 2
        if nhex & 1:  # an odd length: the high digit of the next byte
            byte = (words[c, nbytes >> 2] >> np.uint32(24 - 8 * (nbytes & 3))) & np.uint32(0xFF)
            out[p] = np.uint8(hexpairs[byte] & np.uint16(0xFF))
    return out_offsets, out


#: Longest kept prefix (bytes: ``+`` and digits) :func:`_gather_tokens16` writes as one word.
PREFIX_WORD_BYTES = 8


@_jit
def _prefix_words(prefix: np.ndarray, offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Each dictionary value's kept prefix (at most 8 bytes) as one little-endian uint64."""
    n = prefix.size
    out = np.zeros(n, dtype=np.uint64)
    for c in range(n):
        v = np.uint64(0)
        lo = offsets[c]
        for j in range(prefix[c]):
            v |= np.uint64(data[lo + j]) << np.uint64(8 * j)
        out[c] = v
    return out


@_jit
def _gather_tokens16(codes: np.ndarray, prefix: np.ndarray, prefix_words: np.ndarray,
                     words: np.ndarray, hexpairs: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """:func:`_gather_tokens` of 16 hex digits and kept prefixes of at most 8 bytes.

    The prefix is written as 8 bytes at once from :func:`_prefix_words` (the bytes past it are
    overwritten by ``#`` and the digits: a token is 17 bytes longer than its prefix), with no
    loop of the prefix's length over the dictionary's bytes, and the 16 digits from the
    digest's first two words: ~35 % less CPU per row than the general kernel.
    """
    n = codes.size
    out_offsets = _token_offsets(codes, prefix, 17)
    out = np.empty(out_offsets[n], dtype=np.uint8)
    for r in range(n):
        p = out_offsets[r]
        if out_offsets[r + 1] == p:
            continue
        c = codes[r]
        v = prefix_words[c]
        for j in range(8):
            out[p + j] = np.uint8((v >> np.uint64(8 * j)) & np.uint64(0xFF))
        p += prefix[c]
        out[p] = _SEPARATOR
        w0 = words[c, 0]
        w1 = words[c, 1]
        for j in range(4):
            pair = hexpairs[(w0 >> np.uint32(24 - 8 * j)) & np.uint32(0xFF)]
            out[p + 1 + 2 * j] = np.uint8(pair & np.uint16(0xFF))
            out[p + 2 + 2 * j] = np.uint8(pair >> np.uint16(8))
        for j in range(4):
            pair = hexpairs[(w1 >> np.uint32(24 - 8 * j)) & np.uint32(0xFF)]
            out[p + 9 + 2 * j] = np.uint8(pair & np.uint16(0xFF))
            out[p + 10 + 2 * j] = np.uint8(pair >> np.uint16(8))
    return out_offsets, out


def _pad_state(key: bytes, pad: int) -> np.ndarray:
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    block = np.frombuffer(bytes(b ^ pad for b in key.ljust(64, b"\0")), dtype=np.uint8)
    w = np.zeros(64, dtype=np.uint32)
    w[:16] = block.view(">u4")
    state = _IV.astype(np.uint32)
    _compress_one(state, w, _K32)
    return state


@_jit
def _compress_one(state: np.ndarray, w: np.ndarray, k: np.ndarray) -> None:
    _compress(state, w, k)


#: Fewest values worth splitting over threads (below: one call, no hand-off). A 4,000-record
#: batch's dictionary holds ~8,100-8,400 values (numbers and call ids; up to 12,000), which
#: the old threshold of 8,192 split: on the 2-core machine two threads were slower than one
#: at every size measured (8K values: 1.9 vs 1.7 ms wall, 64K: 14.0 vs 13.1 ms), and the
#: caller's wait for the pool cost the micro-batch ~1.4 ms. Only much larger batches split.
THREAD_MIN_VALUES = 1 << 16


def hmac_words(values: pa.Array, key: bytes, threads: int = 1) -> np.ndarray:
    """HMAC-SHA256(``key``, value) of each UTF-8 value, as an (n, 8) array of uint32 words.

    ``values`` is an Arrow string array without nulls. Computed once per value: callers pass
    distinct values (a dictionary) and expand by codes (:func:`tokens_by_code`). With
    ``threads`` > 1 and enough values, contiguous slices are hashed on that many threads (the
    kernel releases the GIL); the words are the same.
    """
    offsets, data, _ = arrowstr.buffers(values)
    inner, outer = _pad_state(key, 0x36), _pad_state(key, 0x5C)
    kernel = _digests_openssl if backend() == "openssl" else _digests

    def digests(o: np.ndarray) -> np.ndarray:
        return _call(kernel, o, data, inner, outer)

    n = offsets.size - 1
    if threads <= 1 or n < THREAD_MIN_VALUES:
        return digests(offsets)
    from cemkit.correlate._kernels import _pool

    cuts = np.linspace(0, n, threads + 1).astype(np.int64)
    # each slice's offsets keep their absolute positions in ``data``
    parts = _pool(threads).map(lambda c: digests(offsets[cuts[c] : cuts[c + 1] + 1]),
                               range(threads))  # fmt: skip
    return np.concatenate(list(parts))


def prefix_lengths(dictionary: pa.Array, keep_digits: int, min_hidden: int) -> np.ndarray:
    """Bytes of each dictionary value kept before its token, -1 for an empty value.

    What :func:`tokens_by_code` computes when not given ``prefix``: callers tokenizing several
    columns with one rule over one dictionary compute it once.
    """
    offsets, data, _ = arrowstr.buffers(dictionary)
    return _prefix_lengths(offsets, data, keep_digits, min_hidden)


def tokens_by_code(
    codes: np.ndarray,
    dictionary: pa.Array,
    words: np.ndarray,
    keep_digits: int,
    min_hidden: int,
    nhex: int,
    *,
    prefix: np.ndarray | None = None,
    prefix_words: np.ndarray | None = None,
    large: bool = False,
) -> pa.Array:
    """Tokens ``<kept prefix>#<hex>`` of ``dictionary[codes]``, from the dictionary's HMACs.

    ``codes`` are int32/int64 indices into ``dictionary`` (-1 for a null row, which stays null);
    ``words`` are :func:`hmac_words` of the dictionary. An empty value stays empty. One pass over
    the rows writes the tokens straight into the output buffer. ``prefix``: the dictionary's
    :func:`prefix_lengths` for ``keep_digits`` and ``min_hidden``, if already known, and
    ``prefix_words`` its :func:`prefix_words`; ``large``: a ``large_string`` array (what
    pandas holds), else ``string``.
    """
    if not 0 < nhex <= 64:
        raise ValueError("nhex must be between 1 and 64")
    offsets, data, _ = arrowstr.buffers(dictionary)
    if prefix is None:
        prefix = _prefix_lengths(offsets, data, keep_digits, min_hidden)
    if nhex == 16 and keep_digits < PREFIX_WORD_BYTES:  # the default token: 16 hex digits
        if prefix_words is None:
            prefix_words = _prefix_words(prefix, offsets, data)
        out_offsets, out = _gather_tokens16(codes, prefix, prefix_words, words, _HEX_PAIRS)
    else:
        out_offsets, out = _gather_tokens(codes, prefix, offsets, data, words, nhex, _HEX_PAIRS)
    return arrowstr.from_buffers(out_offsets, out, codes >= 0, large=large)


def prefix_words(dictionary: pa.Array, prefix: np.ndarray) -> np.ndarray:
    """The kept prefixes (:func:`prefix_lengths`) of a dictionary as one uint64 each.

    What :func:`tokens_by_code` computes when not given ``prefix_words`` (for tokens of 16 hex
    digits and fewer than 8 kept digits): callers tokenizing several columns with one rule
    compute it once.
    """
    offsets, data, _ = arrowstr.buffers(dictionary)
    return _prefix_words(prefix, offsets, data)


@_jit
def _hex(words: np.ndarray, nhex: int, hexdigits: np.ndarray) -> np.ndarray:
    n = words.shape[0]
    out = np.empty(n * nhex, dtype=np.uint8)
    for r in range(n):
        for j in range(nhex):
            nib = (words[r, j // 8] >> np.uint32(28 - 4 * (j % 8))) & np.uint32(0xF)
            out[r * nhex + j] = hexdigits[nib]
    return out


def hmac_hex(values: pa.Array, key: bytes, nhex: int = 64) -> pa.Array:
    """The first ``nhex`` hex digits of HMAC-SHA256(``key``, value) of each UTF-8 value.

    ``values`` is an Arrow string array without nulls; returns an Arrow string array.
    """
    if not 0 < nhex <= 64:
        raise ValueError("nhex must be between 1 and 64")
    out = _hex(hmac_words(values, key), nhex, _HEX)
    out_offsets = np.arange(len(values) + 1, dtype=np.int64) * nhex
    return arrowstr.from_buffers(out_offsets, out)
