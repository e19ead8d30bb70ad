"""The settings a command runs with: read once from the environment, its Redis found."""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_settings import SettingsError

from notifyq.cli.guard import BadInput, uses
from notifyq.cli.runtime import join_redis
from notifyq.settings import Settings


def load_settings() -> Settings:
    """``Settings()`` from the environment; BadInput naming each field that is wrong (never its value)."""
    # a settings error names the field and the reason, never the value: the value may be a secret
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = (
            f"  {'.'.join(map(str, err['loc'])) or '(settings)'}: {err['msg']}"
            for err in exc.errors(include_url=False, include_context=False, include_input=False)
        )
        raise BadInput("invalid NOTIFYQ_ settings:\n" + "\n".join(problems)) from None
    except SettingsError as exc:
        raise BadInput(f"invalid NOTIFYQ_ settings: {exc}") from None
    uses(database=settings.sqlalchemy_url(), redis=settings.redis_url)
    return settings


def with_redis(settings: Settings) -> Settings:
    """A one-shot command's settings with its Redis found (configured, or the API's embedded one)."""
    redis_url = join_redis(settings)
    uses(redis=redis_url)
    return settings.model_copy(update={"redis_url": redis_url})
