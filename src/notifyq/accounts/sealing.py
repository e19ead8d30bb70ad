"""The account registry's secrets, encrypted at rest with Fernet (AES-128-CBC and HMAC-SHA256).

The key is ``settings.secret_key`` (``NOTIFYQ_SECRET_KEY``). Without one, as on the embedded
defaults, a key is made once and kept in ``<data_dir>/secret.key`` (mode 0600), where every process
with the same data directory finds it, as it finds the embedded Redis in ``redis.url``.

Rotation: ``NOTIFYQ_SECRET_KEY`` may hold several keys, comma-separated, newest first. The first
seals; any opens (Fernet's ``MultiFernet``). ``notifyq accounts reseal`` seals every account's secrets
again with the first key, after which the old keys can go.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Final

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from notifyq.errors import NotifyqError
from notifyq.settings import Settings

KEY_FILE: Final = "secret.key"


class SecretKeyError(NotifyqError):
    """The registry's key is missing, malformed, or not the one its secrets were sealed with."""


class SecretBox:
    """Seals a small mapping of secrets into one Fernet token, and opens it again."""

    def __init__(self, key: bytes) -> None:
        keys = [k.strip() for k in key.split(b",") if k.strip()]
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except ValueError:
            # the key itself is never part of the message
            raise SecretKeyError(
                "the secret key is not a Fernet key (32 url-safe base64-encoded bytes; several: comma-separated)"
            ) from None

    def reseal(self, token: str) -> str:
        """The same secrets sealed with the first key (SecretKeyError when no key opens them)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError("an account's secrets cannot be opened with any of the keys") from None

    def seal(self, secrets: dict[str, str]) -> str:
        """The secrets as one token: JSON, encrypted and authenticated."""
        return self._fernet.encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()

    def open(self, token: str) -> dict[str, str]:
        """The secrets a token holds; SecretKeyError when this key did not seal it."""
        try:
            data = json.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError):
            raise SecretKeyError(
                "an account's secrets cannot be opened with this key (NOTIFYQ_SECRET_KEY changed?)"
            ) from None
        return {str(k): str(v) for k, v in data.items()}


def _kept_key(data_dir: Path) -> bytes:
    """The key kept in the data directory, made on first use.

    It is written whole to a file of its own, then linked into place: a process that starts at the
    same moment finds either no key or the whole key, and two processes never keep two keys.
    """
    path = data_dir / KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    draft = data_dir / f".{KEY_FILE}.{os.getpid()}"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(Fernet.generate_key())
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(draft, path)
    except FileExistsError:
        pass  # another process kept its key first: that one is the key
    finally:
        draft.unlink()
    return path.read_bytes().strip()


def secret_box(settings: Settings) -> SecretBox:
    """The box for ``settings``: its key, or the one kept in its data directory."""
    if settings.secret_key is not None:
        return SecretBox(settings.secret_key.get_secret_value().encode())
    return SecretBox(_kept_key(settings.data_dir))
