"""List requests: Twilio's filters (``To``, ``From``, ``DateSent<`` ...) and its page envelope.

The filters a list takes, and the types, enums and ranges of their values, are the list
operation's query parameters in the spec.

Date filters take ``YYYY-MM-DD`` (compared by UTC day, bounds inclusive, as Twilio documents
``DateSent<`` = "on and before"), or a full date-time in ISO 8601 or RFC 2822 form (compared to
the second). A message not yet sent is matched by its creation time, so that a search right after
an ambiguous send finds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import urlencode

from notifyq.simulator.records import Page, R, RecordIndex, T, paginate
from notifyq.simulator.replies import bad_request
from notifyq.simulator.spec import Query
from notifyq.simulator.validation import query_problem

DEFAULT_PAGE_SIZE: Final = 50


@dataclass(frozen=True, slots=True)
class Moment:
    """A date filter's value: a day, or an instant."""

    at: datetime
    day_only: bool

    def on_or_before(self, when: datetime) -> bool:
        """``when`` <= this bound."""
        return when.date() <= self.at.date() if self.day_only else when <= self.at

    def on_or_after(self, when: datetime) -> bool:
        """``when`` >= this bound."""
        return when.date() >= self.at.date() if self.day_only else when >= self.at

    def same(self, when: datetime) -> bool:
        """``when`` falls on this bound's day (or is this instant)."""
        return when.date() == self.at.date() if self.day_only else when == self.at


def parse_moment(name: str, value: str) -> Moment:
    """Parse a date filter value, or raise a 400."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return Moment(datetime(day.year, day.month, day.day, tzinfo=UTC), day_only=True)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = parsedate_to_datetime(text)
    except (ValueError, TypeError) as exc:
        raise bad_request(20001, f"Invalid value for {name}: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Moment(moment.astimezone(UTC), day_only=False)


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A parsed list request."""

    filters: dict[str, str]  # the equality filters given (To, From, Status, FriendlyName ...)
    moments: tuple[tuple[str, str, Moment], ...]  # (date filter, "" or "<" or ">", bound)
    page: int
    page_size: int
    page_token: str | None
    echo: tuple[tuple[str, str], ...]  # the filters, repeated in the page URIs

    @property
    def to(self) -> str | None:
        """The ``To`` filter (an index narrows Messages and Calls by it)."""
        return self.filters.get("To")

    def matches(self, name: str, value: str | None) -> bool:
        """Whether ``value`` passes the equality filter ``name`` (or no such filter was given)."""
        wanted = self.filters.get(name)
        return wanted is None or value == wanted

    def when_ok(self, name: str, when: datetime | None) -> bool:
        """Whether ``when`` passes every filter on the date ``name`` (no date passes none)."""
        for param, op, bound in self.moments:
            if param != name:
                continue
            if when is None:
                return False
            ok = bound.on_or_before(when) if op == "<" else bound.on_or_after(when) if op == ">" else bound.same(when)
            if not ok:
                return False
        return True


_PAGING: Final = frozenset({"Page", "PageSize", "PageToken"})


def parse_list_query(query: Mapping[str, str], op: Query) -> ListQuery:
    """Read the filters and paging ``op`` knows from a list request's query, or raise a 400.

    Names the operation does not know are ignored, as Twilio ignores them in a list request.
    """
    filters: dict[str, str] = {}
    moments = []
    echo = []
    for name, param in op.params.items():
        raw = query.get(name)
        if raw is None or raw == "":
            continue
        if name in _PAGING:
            why = query_problem(param, raw)
        elif param.fmt == "date-time":
            base = name.rstrip("<>")
            moments.append((base, name[len(base) :], parse_moment(name, raw)))
            why = None
        else:
            why = query_problem(param, raw)
            filters[name] = raw
        if why is not None:
            raise bad_request(20001, f"Invalid value for {name}: {raw!r} {why}")
        if name not in _PAGING:
            echo.append((name, raw))
    return ListQuery(
        filters=filters,
        moments=tuple(moments),
        page=int(query.get("Page") or 0),
        page_size=int(query.get("PageSize") or DEFAULT_PAGE_SIZE),
        page_token=query.get("PageToken") or None,
        echo=tuple(echo),
    )


def envelope(key: str, path: str, q: ListQuery, page: Page[T], render: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """Twilio's list page: the records under ``key`` plus page, page_size, uris, start and end."""

    def uri(number: int, token: str | None = None) -> str:
        params = [*q.echo, ("PageSize", str(q.page_size)), ("Page", str(number))]
        if token:
            params.append(("PageToken", token))
        return f"{path}?{urlencode(params)}"

    next_uri = uri(q.page + 1, "PA" + page.items[-1].sid) if page.has_next and page.items else None
    previous_uri = uri(q.page - 1, "PB" + page.items[0].sid) if q.page > 0 and page.items else None
    return {
        key: [render(r) for r in page.items],
        "end": page.start + max(len(page.items) - 1, 0),
        "first_page_uri": uri(0),
        "next_page_uri": next_uri,
        "page": q.page,
        "page_size": q.page_size,
        "previous_page_uri": previous_uri,
        "start": page.start,
        "uri": uri(q.page, q.page_token),
    }


def select(index: RecordIndex[R], account_sid: str, q: ListQuery, keep: Callable[[R], bool]) -> Page[R]:
    """The page of the account's records (only those to ``q.to``, via its index) that ``keep`` accepts."""
    records = index.newest_first(account_sid, q.to)
    return paginate(records, keep, page=q.page, page_size=q.page_size, page_token=q.page_token)
