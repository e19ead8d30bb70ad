"""What the simulator accepted: message, call and Application records, indexed for fetch and list.

Creating a record is O(1): it goes into a SID map, its account's list and its account's list for
its ``To`` number. A list request with ``To`` scans only that number's records, newest first.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Final, Generic, Protocol, TypeVar

from notifyq.simulator.spec import snake

API_VERSION = "2010-04-01"


def rfc2822(moment: datetime | None) -> str | None:
    """Twilio's date format, e.g. ``Thu, 24 Aug 2023 05:01:45 +0000``."""
    if moment is None:
        return None
    return _rfc2822_second(moment.replace(microsecond=0), moment.utcoffset())


@functools.lru_cache(maxsize=256)
def _rfc2822_second(moment: datetime, _offset: timedelta | None) -> str:
    # a resource carries up to three dates, mostly of the same few seconds: each second is formatted once.
    # The offset is part of the key: the same instant in two zones compares equal, but is written differently
    return format_datetime(moment)


def _formatted(number: str) -> str:
    if len(number) == 12 and number.startswith("+1") and number[1:].isdigit():
        return f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


@dataclass(slots=True)
class MessageRecord:
    """One accepted message, as the simulated Twilio holds it."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    num_segments: int
    media_urls: list[str]
    status: str
    status_callback: str | None
    date_created: datetime
    params: list[tuple[str, str]]
    date_updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    date_sent: datetime | None = None
    error_code: int | None = None
    error_message: str | None = None

    @property
    def uri(self) -> str:
        """The resource's path."""
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"

    def resource(self) -> dict[str, Any]:
        """The JSON Twilio returns for this message (``api.v2010.account.message``)."""
        base = self.uri.removesuffix(".json")
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": rfc2822(self.date_created),
            "date_sent": rfc2822(self.date_sent),
            "date_updated": rfc2822(self.date_updated),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": str(len(self.media_urls)),
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": f"{base}/Media.json", "feedback": f"{base}/Feedback.json"},
            "to": self.to,
            "uri": self.uri,
        }

    def summary(self) -> dict[str, Any]:
        """The introspection form (``GET /_sim/messages``)."""
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "to": self.to,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "body": self.body,
            "num_segments": self.num_segments,
            "num_media": len(self.media_urls),
            "status": self.status,
            "error_code": self.error_code,
            "status_callback": self.status_callback,
            "created_at": self.date_created.timestamp(),
        }


@dataclass(slots=True)
class CallRecord:
    """One accepted call."""

    sid: str
    account_sid: str
    to: str
    from_: str
    url: str | None
    twiml: str | None
    application_sid: str | None
    status_callback: str | None
    status_callback_events: list[str]
    status_callback_method: str
    status: str
    date_created: datetime
    params: list[tuple[str, str]]
    date_updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None

    @property
    def uri(self) -> str:
        """The resource's path."""
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json"

    def resource(self) -> dict[str, Any]:
        """The JSON Twilio returns for this call (``api.v2010.account.call``)."""
        base = self.uri.removesuffix(".json")
        subresources = ("notifications", "recordings", "payments", "events", "siprec", "streams")
        return {
            "account_sid": self.account_sid,
            "answered_by": None,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "direction": "outbound-api",
            "duration": None if self.duration is None else str(self.duration),
            "end_time": rfc2822(self.end_time),
            "forwarded_from": None,
            "from": self.from_,
            "from_formatted": _formatted(self.from_),
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": self.sid,
            "start_time": rfc2822(self.start_time),
            "status": self.status,
            "subresource_uris": {name: f"{base}/{name.capitalize()}.json" for name in subresources},
            "to": self.to,
            "to_formatted": _formatted(self.to),
            "trunk_sid": None,
            "uri": self.uri,
        }

    def summary(self) -> dict[str, Any]:
        """The introspection form (``GET /_sim/calls``)."""
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "to": self.to,
            "from": self.from_,
            "status": self.status,
            "duration": self.duration,
            "status_callback": self.status_callback,
            "created_at": self.date_created.timestamp(),
        }


class _Resource(Protocol):
    @property
    def sid(self) -> str: ...


class _Record(_Resource, Protocol):
    @property
    def account_sid(self) -> str: ...
    @property
    def to(self) -> str: ...


T = TypeVar("T", bound=_Resource)
R = TypeVar("R", bound=_Record)


class RecordIndex(Generic[R]):
    """Records of one kind by SID, by account, and by (account, To); creation order kept."""

    def __init__(self) -> None:
        self.all: list[R] = []
        self._by_sid: dict[str, R] = {}
        self._by_account: dict[str, list[R]] = {}
        self._by_account_to: dict[tuple[str, str], list[R]] = {}

    def __len__(self) -> int:
        return len(self.all)

    def add(self, record: R) -> None:
        """Index a new record: O(1)."""
        self.all.append(record)
        self._by_sid[record.sid] = record
        self._by_account.setdefault(record.account_sid, []).append(record)
        self._by_account_to.setdefault((record.account_sid, record.to), []).append(record)

    def get(self, account_sid: str, sid: str) -> R | None:
        """The account's record with this SID."""
        record = self._by_sid.get(sid)
        return record if record is not None and record.account_sid == account_sid else None

    def newest_first(self, account_sid: str, to: str | None) -> Iterator[R]:
        """The account's records (only those to ``to`` when given), newest first."""
        bucket = self._by_account.get(account_sid, []) if to is None else self._by_account_to.get((account_sid, to), [])
        return reversed(bucket)

    def clear(self) -> None:
        """Forget every record."""
        self.all.clear()
        self._by_sid.clear()
        self._by_account.clear()
        self._by_account_to.clear()


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: the records, their offset in the list, and whether more follow."""

    items: list[T]
    start: int
    has_next: bool


def paginate(
    records: Iterator[T], keep: Callable[[T], bool], *, page: int, page_size: int, page_token: str | None
) -> Page[T]:
    """Skip to the page and take ``page_size``.

    ``PageToken`` ``PA<sid>`` resumes after that SID, ``PB<sid>`` takes the page before it (what
    Twilio's ``next_page_uri`` and ``previous_page_uri`` carry), so that records added meanwhile
    do not shift the pages; a token naming no record of the list gives an empty page.
    """
    matching = (r for r in records if keep(r))
    start = page * page_size
    if page_token and page_token.startswith("PB"):
        return _page_before(matching, page_token[2:], start, page_size)
    if page_token and page_token.startswith("PA"):
        after = page_token[2:]
        for record in matching:
            if record.sid == after:
                break
    else:
        for _ in range(start):
            if next(matching, None) is None:
                break
    items: list[T] = []
    for record in matching:
        if len(items) == page_size:
            return Page(items, start, has_next=True)
        items.append(record)
    return Page(items, start, has_next=False)


def _page_before(matching: Iterator[T], before: str, start: int, page_size: int) -> Page[T]:
    window: deque[T] = deque(maxlen=page_size)
    for record in matching:
        if record.sid == before:
            return Page(list(window), start, has_next=True)
        window.append(record)
    return Page([], start, has_next=False)


@dataclass(slots=True)
class SimCounters:
    """What the simulator has seen and done since it started (or was reset)."""

    requests: int = 0  # every API request, introspection excluded
    created: int = 0  # messages and calls accepted
    rejected: int = 0  # 4xx answers other than 429 (auth, validation, magic numbers, not found)
    http_429: int = 0
    http_5xx: int = 0
    dropped: int = 0  # created, then the connection was closed without an answer
    list_requests: int = 0  # GET Messages.json / Calls.json answered: look-ups of what was created
    callbacks_sent: int = 0  # callbacks that got an HTTP answer (any status)
    callbacks_rejected: int = 0  # ... of which the answer was not 2xx
    callbacks_retried: int = 0  # a connect failure, tried once more
    callbacks_failed: int = 0  # no answer, after the retry

    def as_dict(self) -> dict[str, int]:
        """The counters as JSON."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


_BOOLEANS: Final = frozenset({"voice_caller_id_lookup", "public_application_connect_enabled"})


@dataclass(slots=True)
class ApplicationRecord:
    """One TwiML Application (``api.v2010.account.application``)."""

    sid: str
    account_sid: str
    date_created: datetime
    date_updated: datetime
    friendly_name: str | None = None
    api_version: str = API_VERSION
    voice_url: str | None = None
    voice_method: str = "POST"
    voice_fallback_url: str | None = None
    voice_fallback_method: str = "POST"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    voice_caller_id_lookup: bool = False
    sms_url: str | None = None
    sms_method: str = "POST"
    sms_fallback_url: str | None = None
    sms_fallback_method: str = "POST"
    sms_status_callback: str | None = None
    message_status_callback: str | None = None
    public_application_connect_enabled: bool = False

    @property
    def uri(self) -> str:
        """The resource's path."""
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Applications/{self.sid}.json"

    def resource(self) -> dict[str, Any]:
        """The JSON Twilio returns for this Application."""
        return {
            "account_sid": self.account_sid,
            "api_version": self.api_version,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "friendly_name": self.friendly_name,
            "message_status_callback": self.message_status_callback,
            "sid": self.sid,
            "sms_fallback_method": self.sms_fallback_method,
            "sms_fallback_url": self.sms_fallback_url,
            "sms_method": self.sms_method,
            "sms_status_callback": self.sms_status_callback,
            "sms_url": self.sms_url,
            "status_callback": self.status_callback,
            "status_callback_method": self.status_callback_method,
            "uri": self.uri,
            "voice_caller_id_lookup": self.voice_caller_id_lookup,
            "voice_fallback_method": self.voice_fallback_method,
            "voice_fallback_url": self.voice_fallback_url,
            "voice_method": self.voice_method,
            "voice_url": self.voice_url,
            "public_application_connect_enabled": self.public_application_connect_enabled,
        }

    def apply(self, form: dict[str, str | list[str]], clear: set[str], when: datetime) -> None:
        """Set the fields a create or update form gives, and reset the ones it clears."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in clear:
            setattr(self, snake(name), defaults[snake(name)])
        for name, value in form.items():
            attr = snake(name)
            setattr(self, attr, str(value).lower() == "true" if attr in _BOOLEANS else value)
        self.date_updated = when
