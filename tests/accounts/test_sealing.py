"""The registry's secrets at rest: sealed with Fernet, the key from settings or kept in the data directory."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from notifyq.accounts import KEY_FILE, SecretBox, SecretKeyError, secret_box
from notifyq.settings import Settings

SECRET = "an-auth-token-0123456789"


def test_a_sealed_secret_opens_with_its_key_only() -> None:
    box = SecretBox(Fernet.generate_key())
    token = box.seal({"auth_token": SECRET})
    assert SECRET not in token
    assert box.open(token) == {"auth_token": SECRET}
    with pytest.raises(SecretKeyError) as caught:
        SecretBox(Fernet.generate_key()).open(token)
    assert SECRET not in str(caught.value)


def test_a_key_that_is_not_a_fernet_key_is_refused_without_showing_it() -> None:
    with pytest.raises(SecretKeyError) as caught:
        SecretBox(b"not-a-key-at-all")
    assert "not-a-key-at-all" not in str(caught.value)


def test_without_a_key_one_is_made_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    token = secret_box(settings).seal({"auth_token": SECRET})
    kept = tmp_path / KEY_FILE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    key = kept.read_bytes()
    assert secret_box(Settings(data_dir=tmp_path)).open(token) == {"auth_token": SECRET}  # another process
    assert kept.read_bytes() == key
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # no draft left behind


def test_a_configured_key_is_used_and_nothing_is_kept(tmp_path: Path) -> None:
    key = Fernet.generate_key()
    token = secret_box(Settings(data_dir=tmp_path, secret_key=SecretStr(key.decode()))).seal({"a": "b"})
    assert SecretBox(key).open(token) == {"a": "b"}
    assert not (tmp_path / KEY_FILE).exists()
