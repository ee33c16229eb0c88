"""Symmetric encryption for values kept at rest (Fernet: AES-128-CBC with HMAC-SHA256).

FIELD_ENCRYPTION_KEY holds one or more Fernet keys, comma-separated: the first
encrypts, all of them decrypt. Rotating to a new key: put it first, keep the old
one after it, run `manage.py rotate_encryption_key` (which re-encrypts every
stored value with the first key), then drop the old key. Without a key of its
own the portal uses one derived from SECRET_KEY; that derived key is always
accepted for decryption, so moving from it to a key of its own is the same
rotation.
"""

import base64
import binascii
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class DecryptionError(ValueError):
    """A stored value none of the configured keys can open."""


def _derived_key() -> str:
    derived = hashlib.sha256(b"pushbutton-fields:" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(derived).decode()


def _keys() -> list[str]:
    keys = [k.strip() for k in settings.FIELD_ENCRYPTION_KEY.split(",") if k.strip()]
    derived = _derived_key()
    return [*keys, derived] if derived not in keys else keys


def _fernet() -> MultiFernet:
    fernets = []
    for position, key in enumerate(_keys(), start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, binascii.Error) as exc:
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEY: key {position} is not a Fernet key (32 url-safe "
                "base64-encoded bytes; `manage.py rotate_encryption_key --generate` makes one)."
            ) from exc
    return MultiFernet(fernets)


def key_generate() -> str:
    return Fernet.generate_key().decode()


def encrypt_text(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt_text(token: str, *, ttl: int | None = None) -> str:
    """The text, when `token` was made with a current key (and, with `ttl`, within the
    last `ttl` seconds); DecryptionError otherwise."""
    try:
        return _fernet().decrypt(token.encode(), ttl=ttl).decode()
    except InvalidToken as exc:
        raise DecryptionError(
            "Cannot decrypt: it was encrypted with a key that is no longer in FIELD_ENCRYPTION_KEY."
        ) from exc


def encrypt_json(value) -> str:
    return encrypt_text(json.dumps(value))


def decrypt_json(token: str, *, ttl: int | None = None):
    return json.loads(decrypt_text(token, ttl=ttl))


def token_rotate(token: str) -> str:
    """The same value, encrypted again with the first (current) key."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError(
            "Cannot decrypt: it was encrypted with a key that is no longer in FIELD_ENCRYPTION_KEY."
        ) from exc


def token_is_current(token: str) -> bool:
    """Whether `token` was encrypted with the first key (rotation has nothing to do)."""
    try:
        MultiFernet([Fernet(_keys()[0])]).decrypt(token.encode())
    except InvalidToken:
        return False
    return True
