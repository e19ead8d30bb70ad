"""The password of a URL, and secret-named query parameters, are hidden wherever a URL is shown."""

from __future__ import annotations

import pytest

from notifyq.redact import mask_secrets


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:pw@h/0", "redis://user:***@h/0"),
        ("postgresql+asyncpg://u:p@ss@db/n", "postgresql+asyncpg://u:***@db/n"),  # an unencoded @ in it
        ("error at 'postgresql://u:pw@db/n': refused", "error at 'postgresql://u:***@db/n': refused"),
        ("redis://h:6379/0?password=pw&db=1", "redis://h:6379/0?password=***&db=1"),
        ("postgresql://postgres@127.0.0.1/test", "postgresql://postgres@127.0.0.1/test"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("no URL here", "no URL here"),
        ("headers=<'Authorization': 'Basic QUMxOnNlY3JldA=='>", "headers=<'Authorization': 'Basic ***'>"),
        ("Authorization: Bearer tok.en-1_2~3456789", "Authorization: Bearer ***"),
        ("Basic facts", "Basic facts"),
    ],
)
def test_mask_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked
