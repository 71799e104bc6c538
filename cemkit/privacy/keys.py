"""Pseudonymization keys: an id and a source, never the material itself in any output.

A policy names a key by ``id`` and says where its material comes from: an environment variable
(``CEMKIT_KEY`` in the shipped policies) or a key file. The material is 16 to 64 bytes written as
hexadecimal (or ``base64:...``). Purpose keys are derived from it with HMAC-SHA256 over the
purpose *and the key id*, so a new key id gives new pseudonyms even with the same material.

:class:`Key` never shows its material: not in ``repr``, ``str``, errors, logs or Dask task names
(``__dask_tokenize__`` uses a keyed fingerprint).

Examples
--------
>>> key = Key.from_material(bytes(range(32)), key_id="test-2026")
>>> key
Key(id='test-2026', source='memory')
>>> len(key.derive("tokenize"))
32
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cemkit.errors import KeyMaterialError

#: Environment variable the shipped policies read the key from.
DEFAULT_ENV = "CEMKIT_KEY"
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 64
_DERIVE_LABEL = b"cemkit/v1/"


def parse_material(text: str, *, where: str) -> bytes:
    """Key bytes from their text form: hexadecimal, or ``base64:`` followed by base64.

    ``where`` names the source in error messages (the material never appears in them).
    """
    text = text.strip()
    try:
        if text.startswith("base64:"):
            material = base64.b64decode(text[len("base64:") :], validate=True)
        else:
            material = bytes.fromhex(text)
    except (ValueError, binascii.Error):
        raise KeyMaterialError(
            f"key material in {where} is neither hexadecimal nor 'base64:...'",
            hint="write the key as hex digits, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`",
        ) from None
    if not MIN_KEY_BYTES <= len(material) <= MAX_KEY_BYTES:
        raise KeyMaterialError(
            f"key material in {where} has {len(material)} bytes, "
            f"expected {MIN_KEY_BYTES} to {MAX_KEY_BYTES}",
            hint="use a random 32-byte key (64 hex digits)",
        )
    return material


def generate() -> str:
    """A new random 32-byte key as 64 hexadecimal digits (store it in a secret store)."""
    return secrets.token_hex(32)


class Key:
    """Key material with its id; the material is private and never shown.

    Build one with :meth:`load` (from the source a policy names) or :meth:`from_material`.
    """

    __slots__ = ("_material", "id", "source")

    def __init__(self, material: bytes, *, key_id: str, source: str) -> None:
        if not MIN_KEY_BYTES <= len(material) <= MAX_KEY_BYTES:
            raise KeyMaterialError(
                f"key {key_id!r} has {len(material)} bytes, "
                f"expected {MIN_KEY_BYTES} to {MAX_KEY_BYTES}"
            )
        self._material = bytes(material)
        self.id = key_id
        self.source = source

    @classmethod
    def from_material(cls, material: bytes, *, key_id: str, source: str = "memory") -> Key:
        """A key from raw bytes (tests, notebooks with their own secret store)."""
        return cls(material, key_id=key_id, source=source)

    @classmethod
    def load(
        cls,
        key_id: str,
        *,
        env: str | None = None,
        file: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Key:
        """Read the key material from an environment variable or a key file.

        Parameters
        ----------
        key_id : str
            The id the policy gives the key (recorded in manifests).
        env : str, optional
            Name of the environment variable holding the key.
        file : path, optional
            Key file holding the key (hex or ``base64:...``).
        environ : mapping, optional
            Environment to read (default ``os.environ``).
        """
        if (env is None) == (file is None):
            raise KeyMaterialError(
                f"key {key_id!r} needs exactly one source",
                hint="give either `env: CEMKIT_KEY` or `file: /path/to/keyfile`",
            )
        if env is not None:
            environ = os.environ if environ is None else environ
            text = environ.get(env)
            if not text:
                raise KeyMaterialError(
                    f"key {key_id!r}: environment variable {env} is not set",
                    hint=f"export {env}=<64 hex digits> from your secret store "
                    "(cemkit.privacy.keys.generate() makes a new one)",
                )
            return cls(parse_material(text, where=f"${env}"), key_id=key_id, source=f"env:{env}")
        path = Path(file)  # type: ignore[arg-type]
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyMaterialError(
                f"key {key_id!r}: key file {str(path)!r} cannot be read ({type(exc).__name__})",
                hint="check the path and that the file holds the key as hex digits",
            ) from None
        return cls(parse_material(text, where=f"key file {str(path)!r}"), key_id=key_id,
                   source=f"file:{path}")  # fmt: skip

    def derive(self, purpose: str, length: int = 32) -> bytes:
        """A purpose key: HMAC-SHA256(material, 'cemkit/v1/<purpose>/<key id>')[:length]."""
        label = _DERIVE_LABEL + purpose.encode() + b"/" + self.id.encode()
        return hmac.digest(self._material, label, hashlib.sha256)[:length]

    @property
    def fingerprint(self) -> str:
        """A short keyed fingerprint (safe to record) that tells keys apart."""
        return self.derive("fingerprint", 8).hex()

    def __repr__(self) -> str:
        return f"Key(id={self.id!r}, source={self.source!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Key):
            return NotImplemented
        return self.id == other.id and hmac.compare_digest(self._material, other._material)

    def __hash__(self) -> int:
        return hash((self.id, self.fingerprint))

    def __dask_tokenize__(self) -> tuple[str, str, str]:
        return ("cemkit.Key", self.id, self.fingerprint)

    def __getstate__(self) -> tuple[bytes, str, str]:
        return (self._material, self.id, self.source)

    def __setstate__(self, state: tuple[bytes, str, str]) -> None:
        self._material, self.id, self.source = state
