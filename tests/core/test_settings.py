"""Settings: database URLs in the forms platforms hand out, and no secret in an error, a repr or a log line."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr, ValidationError

from notifyq import logs
from notifyq.settings import Settings, TwilioAccount

AUTH_TOKEN = "Tq8vLm2ZrW9xKc4NbY7pHs3JdF6gAe5U"  # made up: no output may show any part of it
KEY_SECRET = "Kp5wXr8zNc2vBm7q"
PASSWORD = "Dv7nM3tLs8Qh"


def assert_no_fragment(text: str, *secrets: str, size: int = 6) -> None:
    for secret in secrets or (AUTH_TOKEN, KEY_SECRET, PASSWORD):
        shown = {secret[i : i + size] for i in range(len(secret) - size + 1)} & {
            text[i : i + size] for i in range(len(text) - size + 1)
        }
        assert not shown, f"{shown} in {text}"


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u:p@db.example.com:5432/notifyq", "postgresql+asyncpg://u:p@db.example.com:5432/notifyq"),
        ("postgres://u:p@db.example.com/notifyq", "postgresql+asyncpg://u:p@db.example.com/notifyq"),
        ("POSTGRES://u@db/notifyq", "postgresql+asyncpg://u@db/notifyq"),
        ("postgresql+asyncpg://u@db/notifyq?ssl=require", "postgresql+asyncpg://u@db/notifyq?ssl=require"),
        # libpq's sslmode, as Heroku, Render and others write it, is asyncpg's ssl
        ("postgres://u:p@db/notifyq?sslmode=require", "postgresql+asyncpg://u:p@db/notifyq?ssl=require"),
        ("sqlite:///var/notifyq.db", "sqlite+aiosqlite:///var/notifyq.db"),
        ("sqlite+aiosqlite:////abs/notifyq.db", "sqlite+aiosqlite:////abs/notifyq.db"),
    ],
)
def test_database_urls_get_the_async_driver(given: str, used: str) -> None:
    settings = Settings(database_url=given)
    assert settings.database_url == used
    assert settings.sqlalchemy_url() == used


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://u@db/notifyq",
        "mysql://u@db/notifyq",
        "db.example.com/notifyq",
        f"postgresql+psycopg://u:{PASSWORD}@db/notifyq",
    ],
)
def test_a_database_url_notifyq_cannot_drive_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ValidationError, match="a database URL starts with postgresql://") as caught:
        Settings(database_url=url)
    assert_no_fragment(str(caught.value), PASSWORD)


def test_a_redis_url_must_be_one(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="a Redis URL starts with redis://") as caught:
        Settings(redis_url=f"http://:{PASSWORD}@127.0.0.1/0", data_dir=tmp_path)
    assert_no_fragment(str(caught.value), PASSWORD)
    assert Settings(redis_url="", data_dir=tmp_path).redis_url is None  # empty: the embedded one


def test_the_data_dir_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(data_dir=Path("rel"))
    assert settings.data_dir == tmp_path / "rel"
    assert Settings().sqlalchemy_url() == f"sqlite+aiosqlite:///{tmp_path / '.notifyq' / 'notifyq.db'}"


def _accounts(**account: object) -> dict[str, object]:
    # the token last, where pydantic's shortened input_value shows the most of it
    return {"accounts": {"main": {"account_sid": "AC" + "1" * 32, **account, "auth_token": AUTH_TOKEN}}}


@pytest.mark.parametrize(
    "twilio",
    [
        _accounts(api_key_sid="SK" + "2" * 32),  # a key SID without its secret
        _accounts(api_key_secret=KEY_SECRET),  # a key secret without its SID
        _accounts(api_key_sid="SK-short", api_key_secret=KEY_SECRET),
        _accounts(max_in_flight=0),
    ],
)
def test_a_validation_error_shows_no_input(twilio: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(twilio=twilio, database_url=f"postgresql://u:{PASSWORD}@db/n")
    assert_no_fragment(str(caught.value))
    assert_no_fragment(repr(caught.value))
    with pytest.raises(ValidationError) as direct:
        TwilioAccount.model_validate(twilio["accounts"]["main"])  # type: ignore[index]
    assert_no_fragment(str(direct.value))


def test_the_repr_of_settings_hides_every_secret(tmp_path: Path) -> None:
    settings = Settings(
        redis_url=f"redis://:{PASSWORD}@redis.internal:6379/0",
        database_url=f"postgresql://notifyq:{PASSWORD}@db.internal/notifyq",
        data_dir=tmp_path,
        api={"tokens": [SecretStr(KEY_SECRET)]},
        twilio=_accounts(api_key_sid="SK" + "2" * 32, api_key_secret=KEY_SECRET),
    )
    shown = repr(settings) + str(settings)
    assert_no_fragment(shown)
    assert "redis://:***@redis.internal:6379/0" in shown
    assert settings.redis_url == f"redis://:{PASSWORD}@redis.internal:6379/0"  # the value itself is whole


def test_log_lines_hide_url_passwords_in_every_value_and_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers = []
    try:
        logs.configure("info", "json")
        log = structlog.get_logger("notifyq.test")
        url = f"redis://:{PASSWORD}@127.0.0.1:1/0"
        log.info("connecting", url=url, auth_token=AUTH_TOKEN)
        try:
            _connect(url)
        except ConnectionError:
            log.exception("failed")
            logging.getLogger("aiohttp.test").exception("stdlib %s", url)
    finally:
        structlog.reset_defaults()
        for handler in root.handlers:
            handler.close()
        root.handlers = handlers
        root.setLevel(level)
    text = out.getvalue()
    assert_no_fragment(text)
    first = json.loads(text.splitlines()[0])
    assert first["url"] == "redis://:***@127.0.0.1:1/0"
    assert "redis://:***@127.0.0.1:1/0" in text.split("failed", 1)[1]
    assert "stdlib redis://:***@127.0.0.1:1/0" in text


def _connect(url: str) -> None:
    raise ConnectionError(f"Error connecting to {url}")


def test_a_grace_shorter_than_the_longest_request_is_named_as_unsafe(tmp_path: Path) -> None:
    safe = Settings(data_dir=tmp_path)
    assert safe.warnings() == []
    short = Settings(data_dir=tmp_path, worker={"callback_grace_s": 3.0}, twilio={"request_timeout_s": 10.0})
    [warning] = short.warnings()
    assert "callback_grace_s (3 s)" in warning
    assert "(twilio connect + request timeout, 15 s)" in warning
