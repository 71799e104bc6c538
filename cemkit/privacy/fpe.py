"""FF3-1 format-preserving encryption (NIST SP 800-38G Rev. 1), radix 10, batched.

:func:`encrypt` and :func:`decrypt` take an array of digit strings and run the eight Feistel
rounds for *all* values at once: every round is one AES-ECB call (the ``cryptography`` package)
over a buffer holding one 16-byte block per value, and the modular arithmetic is done on NumPy
arrays. Values may have different lengths; each length is one batch.

The functions are public so that the implementation can be checked against other FF3-1
implementations (the tests compare it with the NIST/ACVP sample vectors and the ``ff3`` package).

Notation follows the standard: a value of ``n`` digits is split into ``A`` (``u = ceil(n/2)``
digits) and ``B`` (``v = n - u`` digits); FF3 reads halves as numbers *reversed*
(``NUM(REV(X))``), so below a half is held as ``sum(X[j] * 10**j)``.

Examples
--------
>>> key = bytes.fromhex("2DE79D232DF5585D68CE47882AE256D6")
>>> tweak = bytes.fromhex("CBD09280979564")
>>> encrypt(["3992520240"], key, tweak).tolist()
['8901801106']
>>> decrypt(["8901801106"], key, tweak).tolist()
['3992520240']
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from cemkit import arrowstr
from cemkit.errors import KeyMaterialError, PolicyError

RADIX = 10
ROUNDS = 8
#: Smallest length allowed: FF3-1 requires radix**minlen >= 1,000,000.
MIN_LEN = 6
#: Largest length allowed for radix 10: 2 * floor(log_10(2**96)).
MAX_LEN = 2 * math.floor(96 / math.log2(RADIX))
TWEAK_BYTES = 7
# Halves of up to this many digits are computed in uint64 (10**16 * 2**8 < 2**64).
_U64_DIGITS = 16


def _as_bytes(value: bytes | str, what: str) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    try:
        return bytes.fromhex(value)
    except (TypeError, ValueError):
        raise (KeyMaterialError if what == "key" else PolicyError)(
            f"FF3-1 {what} is neither bytes nor a hexadecimal string",
            hint=f"pass the {what} as bytes or as hex digits",
        ) from None


def _tweak64(tweak: bytes) -> tuple[bytes, bytes]:
    """Split the 56-bit FF3-1 tweak into the two 32-bit halves (T_L, T_R) of SP 800-38G Rev. 1."""
    if len(tweak) != TWEAK_BYTES:
        raise PolicyError(
            f"FF3-1 tweak has {len(tweak)} bytes, expected {TWEAK_BYTES} (56 bits)",
            hint="give 14 hexadecimal digits",
        )
    left = bytes([tweak[0], tweak[1], tweak[2], tweak[3] & 0xF0])
    right = bytes([tweak[4], tweak[5], tweak[6], (tweak[3] & 0x0F) << 4])
    return left, right


def _encryptor(key: bytes):
    if len(key) not in (16, 24, 32):
        raise KeyMaterialError(
            f"FF3-1 key has {len(key)} bytes, expected 16, 24 or 32 (AES-128/192/256)",
            hint="derive the key with cemkit.privacy.keys (never shown here)",
        )
    # FF3 applies AES to byte-reversed blocks under the byte-reversed key.
    return Cipher(algorithms.AES(key[::-1]), modes.ECB()).encryptor()


class _Rounds:
    """The Feistel round function for one batch of values of the same length."""

    def __init__(self, key: bytes, tweak: bytes, count: int) -> None:
        self.aes = _encryptor(key)
        self.left, self.right = _tweak64(tweak)
        self.block = np.zeros((count, 2), dtype="<u8")

    def y(self, i: int, half: np.ndarray, big: bool) -> np.ndarray | list[int]:
        """AES output of round ``i`` for the given half, as little-endian 128-bit numbers.

        The standard builds ``P = W xor [i]_4 || [NUM(REV(B))]^12`` and computes
        ``REV(CIPH(REV(P)))``; the byte-reversed block is written directly here: the half as a
        little-endian 12-byte number, then ``W xor i`` reversed.
        """
        w = self.right if i % 2 == 0 else self.left
        tail = bytes([0, 0, 0, 0, w[3] ^ i, w[2], w[1], w[0]])
        if big:
            raw = b"".join(int(x).to_bytes(12, "little") + tail[4:] for x in half)
            data = raw
        else:
            self.block[:, 0] = half
            self.block[:, 1] = int.from_bytes(tail, "little")
            data = self.block.tobytes()
        out = np.frombuffer(self.aes.update(data), dtype="<u8").reshape(-1, 2)
        if big:
            return [int.from_bytes(out[r].tobytes(), "little") for r in range(len(out))]
        return out

    @staticmethod
    def mod(out: np.ndarray, modulus: int) -> np.ndarray:
        """``NUM(out) mod modulus`` for little-endian 128-bit rows, in uint64 arithmetic."""
        m = np.uint64(modulus)
        lo, hi = out[:, 0], out[:, 1]
        if modulus < 2**32:
            # y = hi * 2**64 + lo; every product below stays under 2**64.
            return ((hi % m) * np.uint64(2**64 % modulus) % m + lo % m) % m
        # Horner's rule over bytes (modulus * 2**8 < 2**64 for up to 16 digits).
        limbs = out.view(np.uint8)
        r = np.zeros(len(out), dtype=np.uint64)
        for j in range(15, -1, -1):
            r = ((r << np.uint64(8)) + limbs[:, j]) % m
        return r


def _halves(digits: np.ndarray, u: int, big: bool) -> tuple[np.ndarray, np.ndarray]:
    """(NUM(REV(A)), NUM(REV(B))) of each row of a digit matrix."""
    n = digits.shape[1]
    if big:
        rows = (digits + np.uint8(48)).tobytes().decode("ascii")
        texts = [rows[k * n : (k + 1) * n] for k in range(len(digits))]
        a = np.array([int(t[:u][::-1]) for t in texts], dtype=object)
        b = np.array([int(t[u:][::-1]) for t in texts], dtype=object)
        return a, b
    a = np.zeros(len(digits), dtype=np.uint64)
    b = np.zeros(len(digits), dtype=np.uint64)
    for j in range(n - 1, u - 1, -1):
        b = b * np.uint64(10) + digits[:, j]
    for j in range(u - 1, -1, -1):
        a = a * np.uint64(10) + digits[:, j]
    return a, b


def _to_digits(a: np.ndarray, b: np.ndarray, u: int, v: int, big: bool) -> np.ndarray:
    """ASCII digit matrix of ``REV(STR(a)) || REV(STR(b))``."""
    out = np.empty((len(a), u + v), dtype=np.uint8)
    if big:
        text = "".join(
            str(x).zfill(u)[::-1] + str(y).zfill(v)[::-1] for x, y in zip(a, b, strict=True)
        )
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8).reshape(len(a), u + v).copy()
    ten = np.uint64(10)
    for num, first, width in ((a, 0, u), (b, u, v)):
        rest = num.copy()
        for j in range(first, first + width):
            out[:, j] = rest % ten
            rest //= ten
    out += np.uint8(48)
    return out


def _crypt_matrix(chars: np.ndarray, key: bytes, tweak: bytes, decrypt: bool) -> np.ndarray:
    """Encrypt/decrypt the rows of an ASCII digit matrix (one value of n digits per row)."""
    n = chars.shape[1]
    digits = chars - np.uint8(48)
    if (digits > 9).any():
        bad = int(np.argmax((digits > 9).any(axis=1)))
        raise PolicyError(
            f"FF3-1 radix 10 input #{bad} holds a character that is not a digit 0-9",
            hint="only digit strings can be encrypted; strip '+' and separators first",
        )
    u = (n + 1) // 2
    v = n - u
    big = u > _U64_DIGITS
    a, b = _halves(digits, u, big)
    rounds = _Rounds(key, tweak, len(chars))
    order = range(ROUNDS - 1, -1, -1) if decrypt else range(ROUNDS)
    for i in order:
        modulus = RADIX ** (u if i % 2 == 0 else v)
        if decrypt:
            y = rounds.y(i, a, big)
            if big:
                c = np.array([(x - yy) % modulus for x, yy in zip(b, y, strict=True)], dtype=object)
            else:
                ym = _Rounds.mod(y, modulus)  # type: ignore[arg-type]
                c = (b + (np.uint64(modulus) - ym)) % np.uint64(modulus)
            a, b = c, a
        else:
            y = rounds.y(i, b, big)
            if big:
                c = np.array([(x + yy) % modulus for x, yy in zip(a, y, strict=True)], dtype=object)
            else:
                ym = _Rounds.mod(y, modulus)  # type: ignore[arg-type]
                c = (a + ym) % np.uint64(modulus)
            a, b = b, c
    return _to_digits(a, b, u, v, big)


def crypt_arrow(values: pa.Array, key: bytes, tweak: bytes, *, decrypt: bool = False) -> pa.Array:
    """FF3-1 over an Arrow string array without nulls (the engine's fast path).

    Values are grouped by length; each group is one batch. Returns a string array in the same
    order.
    """
    key = _as_bytes(key, "key")
    tweak = _as_bytes(tweak, "tweak")
    _encryptor(key)
    _tweak64(tweak)
    if values.null_count:
        raise PolicyError("FF3-1 input holds nulls", hint="remove nulls before encryption")
    if not len(values):
        return pa.array([], type=pa.string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = values.cast(pa.string())
    lengths = pc.binary_length(values).to_numpy(zero_copy_only=False)
    data = np.empty(int(lengths.sum()), dtype=np.uint8)
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    for n in np.unique(lengths).tolist():
        if not MIN_LEN <= n <= MAX_LEN:
            raise PolicyError(
                f"FF3-1 radix 10 input of {n} digits is outside the allowed {MIN_LEN}..{MAX_LEN}",
                hint="FF3-1 needs a domain of at least one million values (6 digits)",
            )
        idx = np.flatnonzero(lengths == n)
        group = pc.take(values, pa.array(idx))
        buffers = group.buffers()
        offs = np.frombuffer(buffers[1], dtype=np.int32)[group.offset : group.offset + 2]
        chars = np.frombuffer(buffers[2], dtype=np.uint8)[offs[0] : offs[0] + n * len(idx)]
        result = _crypt_matrix(chars.reshape(-1, n), key, tweak, decrypt)
        positions = offsets[idx][:, None] + np.arange(n)
        data[positions] = result
    return arrowstr.from_buffers(offsets, data)


def _crypt(
    values: Sequence[str] | np.ndarray, key: bytes | str, tweak: bytes | str, decrypt: bool
) -> np.ndarray:
    arr = np.asarray(values, dtype=object)
    try:
        strings = pa.array(arr.ravel(), type=pa.string(), from_pandas=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        raise PolicyError(
            "FF3-1 input holds a value that is not a string",
            hint="pass digit strings; nulls must be removed before encryption",
        ) from None
    out = crypt_arrow(strings, _as_bytes(key, "key"), _as_bytes(tweak, "tweak"), decrypt=decrypt)
    return np.asarray(out.to_numpy(zero_copy_only=False), dtype=object).reshape(arr.shape)


def encrypt(values: Sequence[str] | np.ndarray, key: bytes | str, tweak: bytes | str) -> np.ndarray:
    """Encrypt digit strings with FF3-1 (radix 10), all values in one batch per length.

    Parameters
    ----------
    values : sequence of str
        Digit strings of 6 to 56 digits (different lengths allowed).
    key : bytes or str
        AES key of 16, 24 or 32 bytes (or its hexadecimal form).
    tweak : bytes or str
        The 56-bit FF3-1 tweak: 7 bytes (or 14 hexadecimal digits).

    Returns
    -------
    numpy.ndarray
        Object array of the ciphertexts, same shape as ``values``, each the same length as its
        plaintext.

    Examples
    --------
    >>> encrypt(["4406616808"], "F62EDB777A671075D47563F3A1E9AC797AA706A2D8E02FC8",
    ...         "493B8451BF6716").tolist()
    ['1807744762']
    """
    return _crypt(values, key, tweak, decrypt=False)


def decrypt(values: Sequence[str] | np.ndarray, key: bytes | str, tweak: bytes | str) -> np.ndarray:
    """Decrypt FF3-1 (radix 10) ciphertexts; the inverse of :func:`encrypt`.

    Examples
    --------
    >>> decrypt(["1807744762"], "F62EDB777A671075D47563F3A1E9AC797AA706A2D8E02FC8",
    ...         "493B8451BF6716").tolist()
    ['4406616808']
    """
    return _crypt(values, key, tweak, decrypt=True)
