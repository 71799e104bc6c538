"""Tokens: RFC 4231 HMAC vectors, pinned tokens under a test key, kept prefixes."""

import pandas as pd
import pyarrow as pa
import pytest

from cemkit.privacy.keys import Key
from cemkit.privacy.operators.generalize import truncate_values
from cemkit.privacy.operators.tokenize import hmac_sha256, kept_prefix, tokenize_values

TEST_KEY = Key.from_material(bytes(range(32)), key_id="test-2026")

# RFC 4231 section 4 test cases 1-4, 6, 7 (HMAC-SHA-256), and 5 (truncated to 128 bits).
RFC4231 = [
    (b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\x0c" * 20, b"Test With Truncation", "a3b6167473100ee06e0c796c2955552b"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131, (b"This is a test using a larger than block-size key and a larger than "
     b"block-size data. The key needs to be hashed before being used by the HMAC algorithm."),
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]  # fmt: skip


@pytest.mark.parametrize(("key", "data", "expected"), RFC4231)
def test_hmac_rfc4231(key, data, expected):
    assert hmac_sha256([data], key)[0].hex()[: len(expected)] == expected


def test_pinned_tokens_under_test_key():
    values = pa.array(["+441632960961", "+441632960962", "100", "anonymous"])
    out = tokenize_values(values, TEST_KEY, keep_digits=4).to_pylist()
    assert out == PINNED


# Pinned once from the implementation; any change to derivation or formatting breaks them,
# which would break linkage with earlier outputs and must be a deliberate, versioned change.
PINNED = [
    "+4416#1e81f1476a1c025a",
    "+4416#fa6aa64a12dc93f2",
    "#3e324b14c90676c0",
    "#07a65768a967e889",
]


def test_token_follows_the_documented_derivation():
    import hashlib
    import hmac

    purpose = hmac.digest(bytes(range(32)), b"cemkit/v1/tokenize/test-2026", hashlib.sha256)
    expected = hmac.digest(purpose, b"+441632960961", hashlib.sha256).hex()[:16]
    assert PINNED[0] == "+4416#" + expected


def test_kept_prefix_only_when_enough_digits_stay_hidden():
    values = pa.array(["+441632960961", "44163296", "4416329", "100", "+44abc", "sip:1@x"])
    assert kept_prefix(values, 4).to_pylist() == ["+4416", "4416", "", "", "", ""]
    assert kept_prefix(values, 0).to_pylist() == [""] * 6


def test_empty_stays_empty():
    assert tokenize_values(pa.array(["", "x"]), TEST_KEY).to_pylist()[0] == ""


def test_length_and_separator():
    out = tokenize_values(pa.array(["x"]), TEST_KEY, length=32).to_pylist()[0]
    assert out.startswith("#") and len(out) == 33
    int(out[1:], 16)


def test_truncate():
    values = pa.array(["+441632960961", "4416329", "100", "n/a"])
    assert truncate_values(values, 3).to_pylist() == ["+441", "441", None, None]


def test_same_value_same_token_in_any_column():
    df = pd.DataFrame({"a": ["+15551234567", "+15557654321"], "b": ["+15557654321", None]},
                      dtype="string[pyarrow]")  # fmt: skip
    a = tokenize_values(pa.array(df["a"].tolist()), TEST_KEY).to_pylist()
    b = tokenize_values(pa.array(["+15557654321"]), TEST_KEY).to_pylist()
    assert a[1] == b[0]


def test_batched_hmac_kernel_equals_hmac_digest():
    import hashlib
    import hmac
    import random

    from cemkit.privacy._hmac import hmac_hex

    rng = random.Random(3)
    edge = ["", "a", "+447700900123", "é" * 40, "x" * 55, "y" * 56, "z" * 63, "w" * 64, "v" * 119]
    values = [*edge, "u" * 200] + [f"+44{rng.randrange(10**10)}" for _ in range(300)]
    for key in (bytes(range(32)), b"k", bytes(range(64)), bytes(100)):
        expected = [hmac.digest(key, v.encode(), hashlib.sha256).hex() for v in values]
        assert hmac_hex(pa.array(values), key).to_pylist() == expected
        assert hmac_hex(pa.array(values[5:]).slice(3), key, 16).to_pylist() == [
            e[:16] for e in expected[8:]
        ]
    # RFC 4231, test case 2
    rfc = hmac_hex(pa.array(["what do ya want for nothing?"]), b"Jefe").to_pylist()[0]
    assert rfc == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_tokens_are_the_same_with_and_without_the_kernel():
    from cemkit.privacy.operators import tokenize as tok

    key = Key.from_material(bytes(range(32)), key_id="k1")
    values = pa.array([f"+4420{i:08d}" for i in range(200)] + ["", "123"])
    kernel = tokenize_values(values, key, keep_digits=4)
    few = [tokenize_values(values.slice(i, 1), key, keep_digits=4)[0].as_py()
           for i in range(len(values))]  # fmt: skip
    assert len(values) >= tok._KERNEL_MIN
    assert kernel.to_pylist() == few


# --- the two compressions of the HMAC kernel (OpenSSL's SHA256_Transform, Numba's own) ----------


def _kernels():
    from cemkit.privacy import _hmac

    found = [pytest.param(_hmac._digests, id="numba")]
    mark = pytest.mark.skipif(_hmac._ADDRESS is None, reason="libcrypto has no SHA256_Transform")
    found.append(pytest.param(_hmac._digests_openssl, id="openssl", marks=mark))
    return found


def _raw_digests(kernel, messages, key):
    """Digests of raw byte messages (any bytes, not only UTF-8) by one kernel, as bytes."""
    import numpy as np

    from cemkit.privacy import _hmac

    offsets = np.cumsum([0] + [len(m) for m in messages]).astype(np.int64)
    data = np.frombuffer(b"".join(messages) or b"\0", dtype=np.uint8)
    return [w.astype(">u4").tobytes() for w in _hmac._run(kernel, offsets, data, key)]


@pytest.mark.parametrize("kernel", _kernels())
def test_each_hmac_backend_gives_rfc4231(kernel):
    for key, data, expected in RFC4231:
        got = _raw_digests(kernel, [data], key)[0].hex()
        assert got[: len(expected)] == expected


@pytest.mark.parametrize("kernel", _kernels())
def test_each_hmac_backend_equals_hmac_digest_on_random_values(kernel):
    import hashlib
    import hmac

    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.binary(max_size=200), max_size=12), st.binary(min_size=1, max_size=140))
    def check(messages, key):
        assert _raw_digests(kernel, messages, key) == [
            hmac.digest(key, m, hashlib.sha256) for m in messages
        ]

    check()


def test_openssl_backend_is_used_where_libcrypto_exports_the_compression():
    from cemkit.privacy import _hmac

    assert _hmac.backend() == ("numba" if _hmac._ADDRESS is None else "openssl")


def test_numba_backend_where_the_symbol_is_missing_or_wrong(monkeypatch):
    import hashlib
    import hmac

    from cemkit.privacy import _hmac

    values = [f"+4420{i:08d}" for i in range(300)] + ["", "x" * 100]
    want = [hmac.digest(b"k", v.encode(), hashlib.sha256) for v in values]
    monkeypatch.setattr(_hmac, "_LIBRARY_SYMBOL", "SHA256_Transform_not_there")
    assert _hmac._transform_address() is None
    monkeypatch.setattr(_hmac, "_ADDRESS", None)
    monkeypatch.setattr(_hmac, "_backend", None)
    assert _hmac.backend() == "numba"
    got = _hmac.hmac_words(pa.array(values), b"k")
    assert [w.astype(">u4").tobytes() for w in got] == want
    # a compression that does not give the known answers is not used either
    monkeypatch.setattr(_hmac, "_ADDRESS", 1)
    monkeypatch.setattr(_hmac, "_backend", None)
    monkeypatch.setattr(_hmac, "_CHECKS", [(b"k", b"m", "00" * 32)])
    assert _hmac.backend() == "numba"


def test_tokens_without_openssl_at_all():
    """A Python without ``_hashlib`` (no OpenSSL): the Numba compression, the same tokens."""
    import os
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['_hashlib'] = None\n"
        "import hashlib, hmac\n"
        "import pyarrow as pa\n"
        "from cemkit.privacy import _hmac\n"
        "assert _hmac._ADDRESS is None and _hmac.backend() == 'numba'\n"
        "values = [f'+4420{i:08d}' for i in range(100)] + ['', 'y' * 70]\n"
        "got = [w.astype('>u4').tobytes() for w in _hmac.hmac_words(pa.array(values), b'k')]\n"
        "assert got == [hmac.digest(b'k', v.encode(), hashlib.sha256) for v in values]\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_tokens_by_code_of_any_length_equal_hmac_digest():
    """Odd and even hex lengths, a shared prefix array, string and large_string out and in."""
    import hashlib
    import hmac

    import numpy as np

    from cemkit.privacy import _hmac

    values = [f"+4420{i:08d}" for i in range(40)] + ["", "abc", "+12"]
    key = b"k" * 32
    for typ in (pa.string(), pa.large_string()):
        dictionary = pa.array(values, typ)
        words = _hmac.hmac_words(dictionary, key)
        codes = np.array([3, -1, 0, 41, 40, 3, 42], dtype=np.int64)
        prefix = _hmac.prefix_lengths(dictionary, 4, 4)
        for nhex in (1, 15, 16, 33, 64):
            want = [None if c < 0 else
                    "" if values[c] == "" else
                    (values[c][:5] if values[c].startswith("+4420") else "") + "#"
                    + hmac.digest(key, values[c].encode(), hashlib.sha256).hex()[:nhex]
                    for c in codes]  # fmt: skip
            small = _hmac.tokens_by_code(codes, dictionary, words, 4, 4, nhex)
            large = _hmac.tokens_by_code(codes, dictionary, words, 4, 4, nhex, prefix=prefix,
                                         large=True)  # fmt: skip
            assert small.type == pa.string() and large.type == pa.large_string()
            assert small.to_pylist() == want == large.to_pylist()


def test_string_and_large_string_columns_share_one_dictionary():
    from cemkit.privacy import _parties

    a = pa.array(["x1", "+441632960961", None, "x2"], pa.string())
    b = pa.array(["x2", "+441632960961", "x1", "x3"], pa.large_string())
    dictionary, (ca, cb) = _parties.build([a, b])
    assert ca.tolist()[2] == -1
    assert [dictionary[c].as_py() for c in ca if c >= 0] == ["x1", "+441632960961", "x2"]
    assert [dictionary[c].as_py() for c in cb] == b.to_pylist()
    assert len(dictionary) == 4
