"""List requests: Twilio's filters (``To``, ``From``, ``DateSent<`` ...) and its page envelope.

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

from notifyq.simulator.records import Page, R, RecordIndex, paginate
from notifyq.simulator.replies import bad_request

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 1000


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

    to: str | None
    from_: str | None
    status: str | None
    moments: tuple[tuple[str, Moment], ...]  # (operator "", "<" or ">", bound)
    page: int
    page_size: int
    page_token: str | None
    echo: tuple[tuple[str, str], ...]  # the filters, repeated in the page URIs

    def when_ok(self, when: datetime) -> bool:
        """Whether ``when`` passes every date filter."""
        for op, bound in self.moments:
            ok = bound.on_or_before(when) if op == "<" else bound.on_or_after(when) if op == ">" else bound.same(when)
            if not ok:
                return False
        return True


def _int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise bad_request(20001, f"{name} must be an integer from {low} to {high}, not {raw!r}")
    return value


def parse_list_query(query: Mapping[str, str], date_param: str) -> ListQuery:
    """Read filters and paging from a list request's query; ``date_param`` is DateSent or StartTime."""
    moments = []
    echo = [(name, query[name]) for name in ("To", "From", "Status") if query.get(name)]
    for op in ("", "<", ">"):
        raw = query.get(date_param + op)
        if raw:
            moments.append((op, parse_moment(date_param + op, raw)))
            echo.append((date_param + op, raw))
    return ListQuery(
        to=query.get("To") or None,
        from_=query.get("From") or None,
        status=query.get("Status") or None,
        moments=tuple(moments),
        page=_int(query, "Page", 0, 0, 10**9),
        page_size=_int(query, "PageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
        page_token=query.get("PageToken") or None,
        echo=tuple(echo),
    )


def envelope(key: str, path: str, q: ListQuery, page: Page[R], render: Callable[[R], dict[str, Any]]) -> dict[str, Any]:
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
