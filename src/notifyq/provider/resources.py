"""Twilio resources the connector reads and manages: Applications, Connect Apps, messages and calls.

Each call is one or more ``TwilioRest`` requests, so each page of a list passes the account's gate
as any request does. Forms and filters use Twilio's parameter names (``FriendlyName``,
``StatusCallback``, ``DateSent`` ...); answers are Twilio's resources as JSON objects.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qsl

from notifyq.errors import TransportError
from notifyq.provider.rest import TwilioRest
from notifyq.settings import TwilioAccount

MAX_PAGE_SIZE: Final = 1000  # Twilio's largest PageSize
# what a list key is in Twilio's page envelope, per resource
LIST_KEYS: Final = {"Messages": "messages", "Calls": "calls", "Applications": "applications"}


class TwilioResources:
    """The connector's resources over ``rest``."""

    def __init__(self, rest: TwilioRest) -> None:
        self.rest = rest

    # ---- TwiML Applications --------------------------------------------------------------------------

    async def create_application(self, account: TwilioAccount, fields: dict[str, str]) -> dict[str, Any]:
        """``POST Applications.json``: the new Application."""
        return await self.rest.post(account, _acct(account, "Applications.json"), list(fields.items()))

    async def fetch_application(self, account: TwilioAccount, sid: str) -> dict[str, Any]:
        """``GET Applications/{sid}.json``."""
        return await self.rest.get(account, _acct(account, f"Applications/{sid}.json"))

    async def list_applications(
        self, account: TwilioAccount, *, friendly_name: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """``GET Applications.json``, every page (or ``limit`` records), optionally by ``FriendlyName``."""
        filters = {"FriendlyName": friendly_name} if friendly_name is not None else {}
        return await self.list_records(account, "Applications", filters, limit=limit)

    async def update_application(self, account: TwilioAccount, sid: str, fields: dict[str, str]) -> dict[str, Any]:
        """``POST Applications/{sid}.json``: the fields given change (an empty value clears one)."""
        return await self.rest.post(account, _acct(account, f"Applications/{sid}.json"), list(fields.items()))

    async def delete_application(self, account: TwilioAccount, sid: str) -> None:
        """``DELETE Applications/{sid}.json``."""
        await self.rest.request(account, "DELETE", _acct(account, f"Applications/{sid}.json"))

    # ---- Connect Apps --------------------------------------------------------------------------------

    async def fetch_connect_app(self, account: TwilioAccount, sid: str) -> dict[str, Any]:
        """``GET ConnectApps/{sid}.json``."""
        return await self.rest.get(account, _acct(account, f"ConnectApps/{sid}.json"))

    async def update_connect_app(
        self, account: TwilioAccount, sid: str, fields: list[tuple[str, str]]
    ) -> dict[str, Any]:
        """``POST ConnectApps/{sid}.json`` (``Permissions`` may repeat)."""
        return await self.rest.post(account, _acct(account, f"ConnectApps/{sid}.json"), fields)

    # ---- messages and calls --------------------------------------------------------------------------

    async def fetch(self, account: TwilioAccount, resource: str, sid: str) -> dict[str, Any]:
        """``GET Messages/{sid}.json`` or ``Calls/{sid}.json``."""
        return await self.rest.get(account, _acct(account, f"{resource}/{sid}.json"))

    async def list_records(
        self,
        account: TwilioAccount,
        resource: str,
        filters: dict[str, str],
        *,
        limit: int | None = None,
        page_size: int | None = None,
    ) -> list[dict[str, Any]]:
        """``GET {resource}.json`` with Twilio's filters, following ``next_page_uri`` until ``limit`` records.

        ``limit`` None reads every page. Pages hold ``page_size`` records (default: ``limit``, at most
        Twilio's largest page). Twilio lists messages and calls newest first.
        """
        key = LIST_KEYS[resource]
        size = min(page_size or limit or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
        path: str | None = _acct(account, f"{resource}.json")
        query: list[tuple[str, str]] | None = [*filters.items(), ("PageSize", str(size))]
        found: list[dict[str, Any]] = []
        while path is not None and (limit is None or len(found) < limit):
            page = await self.rest.get(account, path, query)
            items = page.get(key)
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise TransportError(f"malformed list page: no {key!r} list of records", path)
            found.extend(items)
            path, query = _next(page.get("next_page_uri"))
        return found if limit is None else found[:limit]


def _acct(account: TwilioAccount, rest: str) -> str:
    return f"/Accounts/{account.account_sid}/{rest}"


def _next(uri: object) -> tuple[str | None, list[tuple[str, str]] | None]:
    """The next page's path and query from ``next_page_uri`` (a path with its query, under ``/2010-04-01``)."""
    if not isinstance(uri, str) or not uri:
        return None, None
    path, _, query = uri.partition("?")
    return path, parse_qsl(query, keep_blank_values=True)
