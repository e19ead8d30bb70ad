"""What the ``notifyq twilio`` commands do: Twilio's REST API through the account's pacing, and single sends.

Every REST request (each page of a list, each retry of a raw request) passes the account's
``AccountGate``: its request budget and a lease on its requests in flight, in the workers' Redis.
A message sent from here is a batch of one, submitted as the API submits one: recorded, queued,
and sent by a worker through the sender's pacing like any other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from notifyq.accounts import AccountDirectory
from notifyq.errors import NotFound, Problem, ProviderError, TwilioApiError, ValidationFailed
from notifyq.pacing import AccountGate, Pacer
from notifyq.producer import Producer
from notifyq.provider.provision import application_fields, provision_application
from notifyq.provider.resources import TwilioResources
from notifyq.provider.rest import Answer, TwilioRest
from notifyq.provider.retry import RetryOptions
from notifyq.provider.twilio import TwilioClient
from notifyq.queue.connect import redis_from_url
from notifyq.settings import Settings, TwilioAccount
from notifyq.store import Store


@dataclass(frozen=True, slots=True)
class Sending:
    """The account a command acts for: its name (what a batch names) and its credentials."""

    name: str
    account: TwilioAccount


async def resolve_account(settings: Settings, name: str | None) -> Sending:
    """The account ``--account NAME`` means (the default one without it): configured, or in the registry.

    Bad input when there is none by that name or SID, or when its Connect grant was revoked.
    """
    store = await Store.open(settings.sqlalchemy_url())
    try:
        account = await AccountDirectory(settings, store).resolve(name)
    except NotFound:
        wanted = f"no Twilio account {name!r} is configured" if name else "no Twilio account is configured"
        raise ValidationFailed([Problem("account", wanted)]) from None
    finally:
        await store.close()
    if account.deauthorized_at is not None:
        raise ValidationFailed([Problem("account", f"account {account.name!r} was deauthorised (Twilio Connect)")])
    return Sending(account.name, account.twilio)


@asynccontextmanager
async def connector(settings: Settings) -> AsyncIterator[TwilioResources]:
    """Twilio's resources over one session, each request through the account's gate in ``settings.redis_url``."""
    redis = redis_from_url(settings.redis_url or "")
    client = TwilioClient(settings.twilio)
    try:
        gate = AccountGate(
            Pacer(redis, settings),
            per_minute=settings.twilio.connector_requests_per_minute,
            burst=settings.twilio.connector_burst,
        )
        yield TwilioResources(TwilioRest(client, gate))
    finally:
        await client.close()
        await redis.aclose()


async def provision(settings: Settings, sending: Sending) -> dict[str, Any]:
    """Create or update in place the account's TwiML Application; what changed."""
    wanted = application_fields(settings.public_base_url, settings.twilio.application_name)
    async with connector(settings) as resources:
        done = await provision_application(resources, sending.account, wanted)
    return done.as_dict()


async def fetch_connect_app(settings: Settings, sending: Sending, sid: str) -> dict[str, Any]:
    """The Connect App ``sid`` of the account."""
    async with connector(settings) as resources:
        return await resources.fetch_connect_app(sending.account, sid)


async def update_connect_app(
    settings: Settings, sending: Sending, sid: str, fields: list[tuple[str, str]]
) -> dict[str, Any]:
    """Update the Connect App ``sid``; the app as Twilio has it then."""
    async with connector(settings) as resources:
        return await resources.update_connect_app(sending.account, sid, fields)


async def fetch_record(settings: Settings, sending: Sending, resource: str, sid: str) -> dict[str, Any]:
    """One message (``Messages``) or call (``Calls``)."""
    async with connector(settings) as resources:
        return await resources.fetch(sending.account, resource, sid)


async def list_records(
    settings: Settings,
    sending: Sending,
    resource: str,
    filters: dict[str, str],
    limit: int,
    page_size: int | None = None,
) -> list[dict[str, Any]]:
    """Messages or calls matching Twilio's ``filters``, newest first, at most ``limit``."""
    async with connector(settings) as resources:
        return await resources.list_records(sending.account, resource, filters, limit=limit, page_size=page_size)


async def raw_request(
    settings: Settings,
    sending: Sending,
    method: str,
    path: str,
    *,
    data: list[tuple[str, str]],
    query: list[tuple[str, str]],
    retry: RetryOptions,
) -> Answer:
    """A raw request to Twilio's API with the connector's retry options; ``RequestFailed`` once they are spent."""
    async with connector(settings) as resources:
        try:
            return await resources.rest.request(
                sending.account, method, path, data=data or None, query=query, retry=retry
            )
        except ProviderError as exc:
            raise RequestFailed(exc, resources.rest.attempts) from exc


class RequestFailed(Exception):
    """A raw request's last error, and how many attempts were made."""

    def __init__(self, error: ProviderError, attempts: int) -> None:
        super().__init__(f"{error} (after {attempts} attempt{'s' if attempts != 1 else ''})")
        self.error = error
        self.attempts = attempts

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` answer of a failed raw request."""
        api = self.error if isinstance(self.error, TwilioApiError) else None
        return {
            "ok": False,
            "status": api.status if api else None,
            "code": api.code if api else None,
            "message": api.message if api else str(self.error),
            "attempts": self.attempts,
        }


async def send_message(settings: Settings, sending: Sending, to: str, from_: str, body: str) -> dict[str, Any]:
    """Submit one SMS as a batch of one, as ``POST /v1/batches`` does; where it went.

    The body is sent as written: its braces are escaped, so the batch's template has no variables.
    """
    literal = body.replace("{", "{{").replace("}", "}}")
    payload = {"channel": "sms", "account": sending.name, "from": from_, "body": literal, "recipients": [to]}
    producer = await Producer.open(settings)
    try:
        submitted = await producer.submit(payload, enqueue="wait")
        (delivery,) = await producer.store.list_deliveries(submitted.batch.id, limit=1)
    finally:
        await producer.close()
    return {
        "batch_id": submitted.batch.id,
        "delivery_id": delivery.id,
        "account": sending.name,
        "to": delivery.to_number,
        "status": delivery.status,
        "lane": submitted.batch.priority,
    }
