"""Keys: sources, errors that never show material, derivation, pickling, Dask tokens."""

import pickle

import pytest

from cemkit.errors import KeyMaterialError
from cemkit.privacy.keys import Key, generate, parse_material

HEX = "00112233445566778899aabbccddeeff" * 2


def test_env_and_file_sources(tmp_path):
    from_env = Key.load("k1", env="CEMKIT_KEY", environ={"CEMKIT_KEY": HEX})
    path = tmp_path / "key.hex"
    path.write_text(HEX + "\n")
    from_file = Key.load("k1", file=path)
    assert from_env == from_file
    assert from_env.source == "env:CEMKIT_KEY"
    assert from_file.source == f"file:{path}"
    b64 = "base64:ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8="
    assert Key.load("k1", env="K", environ={"K": b64}) == from_env


def test_material_never_shown():
    key = Key.load("k1", env="CEMKIT_KEY", environ={"CEMKIT_KEY": HEX})
    for text in (repr(key), str(key), f"{key}", str(key.__dask_tokenize__())):
        assert HEX not in text.lower() and "00112233" not in text
    assert "k1" in repr(key)


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [({}, "not set"), ({"CEMKIT_KEY": "zz" + HEX}, "neither"), ({"CEMKIT_KEY": "abcd"}, "2 bytes")],
)
def test_errors_say_what_to_do_without_material(environ, fragment):
    with pytest.raises(KeyMaterialError) as err:
        Key.load("k1", env="CEMKIT_KEY", environ=environ)
    msg = str(err.value)
    assert fragment in msg
    assert "CEMKIT_KEY" in msg
    for value in environ.values():
        assert value not in msg


def test_missing_key_file(tmp_path):
    with pytest.raises(KeyMaterialError, match="cannot be read"):
        Key.load("k1", file=tmp_path / "nope")
    with pytest.raises(KeyMaterialError, match="exactly one source"):
        Key.load("k1")


def test_derivation_depends_on_purpose_material_and_id():
    a = Key.from_material(bytes(32), key_id="a")
    assert a.derive("tokenize") != a.derive("fpe")
    assert a.derive("tokenize") != Key.from_material(bytes(32), key_id="b").derive("tokenize")
    assert a.derive("tokenize") != Key.from_material(bytes([1] * 32), key_id="a").derive("tokenize")
    assert len(a.derive("fpe-tweak", 7)) == 7
    assert a.fingerprint != Key.from_material(bytes(32), key_id="b").fingerprint


def test_pickles_for_dask_workers():
    key = Key.from_material(bytes(range(32)), key_id="k")
    clone = pickle.loads(pickle.dumps(key))
    assert clone == key and clone.derive("x") == key.derive("x")
    from dask.base import tokenize

    assert tokenize(key) == tokenize(clone)
    assert tokenize(key) != tokenize(Key.from_material(bytes(32), key_id="k"))


def test_generate_and_parse():
    text = generate()
    assert len(parse_material(text, where="test")) == 32
    assert generate() != text
