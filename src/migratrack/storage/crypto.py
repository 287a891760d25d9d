"""Encryption at rest: an AES-GCM :class:`~migratrack.storage.base.Codec`.

``MIGRATRACK_ENCRYPTION_KEY`` holds one or more keys, comma-separated, each 16, 24 or 32 random
bytes in base64 (``migratrack keygen`` prints one). The first key encrypts; every listed key
decrypts, so a key is rotated by putting the new one first and keeping the old one after it
until ``migratrack rekey`` has rewritten the store (see docs/storage.md).

Every encoded value is ``mtenc:2:<key id>:<base64url(nonce | ciphertext | tag)>``: a fresh
96-bit nonce per value, the key id being the first 8 hex digits of the key's SHA-256. Each
value's associated data is its place (:func:`migratrack.storage.base.place`): the migration, the
field and the row's ids. A value copied by whoever can write to the store into another row,
field or migration fails its tag check and is refused, as is an altered one.

Plain text found once a key is set is refused (whoever can write to the store could otherwise
slip in values the key never saw), and so are values of format 1 (written by migratrack 0.x
before values were bound to their place): ``migratrack encrypt-store`` converts a store written
before encryption was turned on, or in format 1.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from migratrack.errors import ConfigurationError
from migratrack.storage.base import ENCRYPTED_PREFIX, Codec

_VERSION = "2"
#: values encrypted without associated data: read only while `migratrack encrypt-store` runs
_UNBOUND = "1"
_HINT = "generate one with `migratrack keygen` (32 random bytes, base64)"


def generate_key() -> str:
    """A new random 256-bit key, base64-encoded: a value for MIGRATRACK_ENCRYPTION_KEY."""
    return base64.b64encode(os.urandom(32)).decode()


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def parse_keys(setting: str) -> list[bytes]:
    """``"new,old"`` -> the raw keys, newest first. Raises ConfigurationError on a malformed key."""
    keys: list[bytes] = []
    for i, part in enumerate(p.strip() for p in setting.split(",")):
        if not part:
            continue
        try:
            padded = part + "=" * (-len(part) % 4)
            raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) not in (16, 24, 32):
            raise ConfigurationError(
                f"MIGRATRACK_ENCRYPTION_KEY: key #{i + 1} is not 16, 24 or 32 bytes of base64; {_HINT}"
            )
        keys.append(raw)
    if not keys:
        raise ConfigurationError(f"MIGRATRACK_ENCRYPTION_KEY is empty; {_HINT}")
    return keys


class EncryptingCodec(Codec):
    """JSON, then AES-GCM. Encrypts with the first key, decrypts with whichever key wrote the value."""

    def __init__(self, keys: Sequence[bytes], *, allow_plaintext: bool = False) -> None:
        if not keys:
            raise ConfigurationError(f"an encrypting codec needs at least one key; {_HINT}")
        self._ciphers = {key_id(k): AESGCM(k) for k in keys}
        self.key_id = key_id(keys[0])
        self._cipher = self._ciphers[self.key_id]
        self._head = f"{ENCRYPTED_PREFIX}{_VERSION}:{self.key_id}:"
        #: read plain JSON and unbound (format 1) values too: only while `migratrack encrypt-store`
        #: converts a store
        self.allow_plaintext = allow_plaintext

    @classmethod
    def from_setting(cls, setting: str) -> EncryptingCodec:
        return cls(parse_keys(setting))

    def dumps(self, value: Any, where: str = "") -> str:
        nonce = os.urandom(12)
        plain = super().dumps(value).encode()
        sealed = self._cipher.encrypt(nonce, plain, where.encode())
        return self._head + base64.urlsafe_b64encode(nonce + sealed).decode()

    def loads(self, text: str | bytes, where: str = "") -> Any:
        if isinstance(text, bytes):
            text = text.decode()
        if not text.startswith(ENCRYPTED_PREFIX):
            if self.allow_plaintext:
                return json.loads(text)
            raise ConfigurationError(
                "this store holds a value that is not encrypted, but MIGRATRACK_ENCRYPTION_KEY is set: if the "
                "store was written before encryption was turned on, convert it once with `migratrack "
                "encrypt-store`; otherwise someone wrote to the store around migratrack")
        try:
            _, version, kid, body = text.split(":", 3)
        except ValueError:
            raise ConfigurationError("an encrypted value in the store is malformed") from None
        if version == _UNBOUND and not self.allow_plaintext:
            raise ConfigurationError(
                "this store holds values encrypted by an older migratrack, not bound to their place: convert "
                "it once with `migratrack encrypt-store` (with no worker writing)")
        if version not in (_VERSION, _UNBOUND):
            raise ConfigurationError(f"encrypted with format version {version}; upgrade migratrack")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise ConfigurationError(
                f"this store's data was encrypted with key id {kid}, but MIGRATRACK_ENCRYPTION_KEY holds "
                f"key id(s) {', '.join(self._ciphers)}: set the key it was written with (during a rotation, "
                f"list the old key after the new one: MIGRATRACK_ENCRYPTION_KEY=new,old)"
            )
        raw = base64.urlsafe_b64decode(body)
        try:
            plain = cipher.decrypt(raw[:12], raw[12:], where.encode() if version == _VERSION else None)
        except InvalidTag:
            raise ConfigurationError(
                f"cannot decrypt a value written with key id {kid}: it was altered, or moved from another "
                f"place ({_shown(where)}); someone wrote to the store around migratrack"
            ) from None
        return json.loads(plain)


def _shown(where: str) -> str:
    """A place as an error names it: ``migration m1, phase schema``."""
    parts = where.split("\x1f")
    if len(parts) < 2:
        return "unnamed"
    head = f"migration {parts[0]}, " if parts[0] else ""
    return head + " ".join(parts[1:])
