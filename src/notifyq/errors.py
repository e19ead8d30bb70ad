"""notifyq's exceptions, one tree under one root.

::

    NotifyqError
    ├── ValidationFailed          a request we refuse; carries every problem found (HTTP 422)
    ├── NotFound                  no such batch, delivery or replay (HTTP 404)
    ├── Conflict                  the request clashes with what is stored (HTTP 409)
    │   ├── ConfirmationRequired  a replay over the threshold, not confirmed: recipients, threshold
    │   └── IdempotencyConflict   an idempotency key used before for another request
    ├── Forbidden                 the caller may not do this (HTTP 403)
    │   └── QuotaExceeded         a batch would pass its token's recipient quota: quota, limit, left
    ├── Unsendable                a stored delivery (or batch) that cannot be sent as it is: it fails alone
    ├── ProviderError             something Twilio (or the way to it) did
    │   ├── TwilioApiError        Twilio answered with an error: status, code, message, more_info
    │   ├── TransportError        no usable answer: connect failure, timeout, lost connection
    │   │   └── AmbiguousSend     the request was written; Twilio may have acted on it
    │   └── ListTooLong           a list holds more pages than one call reads: the rest is unknown
    ├── Unavailable               a part notifyq needs (Redis, the database) cannot be reached: part, url
    └── EmbeddedRedisError        the embedded redis-server would not start (queue/redis_server.py)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from notifyq.redact import mask_url


class NotifyqError(Exception):
    """Root of every error notifyq raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a request: where (a JSON pointer-ish path) and why."""

    field: str
    reason: str
    index: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form for problem+json bodies."""
        out: dict[str, Any] = {"field": self.field, "reason": self.reason}
        if self.index is not None:
            out["index"] = self.index
        return out


class ValidationFailed(NotifyqError):
    """The request is refused whole; ``problems`` lists every reason found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s): " + "; ".join(p.reason for p in problems[:3]))
        self.problems = problems


class NotFound(NotifyqError):
    """No such resource."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"no {kind} {ident!r}")
        self.kind = kind
        self.ident = ident


class Conflict(NotifyqError):
    """The request clashes with stored state."""


class ConfirmationRequired(Conflict):
    """A replay would send to more recipients than the threshold without being confirmed."""

    def __init__(self, recipients: int, threshold: int) -> None:
        super().__init__(
            f"this replay sends to {recipients} recipients, more than the {threshold} that need no confirmation: "
            'check a dry run, then confirm (--yes; over HTTP, "confirm": true)'
        )
        self.recipients = recipients
        self.threshold = threshold


class IdempotencyConflict(Conflict):
    """An idempotency key arrived again with a request other than the one that created ``batch_id``."""

    def __init__(self, key: str, batch_id: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was used for batch {batch_id} with a different request; "
            "send that same request to get the batch again, or use a new key for a new batch"
        )
        self.key = key
        self.batch_id = batch_id


class Forbidden(NotifyqError):
    """The caller is known but may not do what it asks."""


class QuotaExceeded(Forbidden):
    """A batch would take its token past a recipient quota (``daily`` or ``monthly``): it is refused whole."""

    def __init__(self, quota: str, limit: int, left: int, asked: int) -> None:
        super().__init__(f"the token's {quota} quota is {limit} recipients and {left} are left; this batch has {asked}")
        self.quota, self.limit, self.left, self.asked = quota, limit, left, asked


class Unsendable(NotifyqError):
    """A stored delivery or batch that cannot be sent as it is (its text cannot be encoded, a variable is missing).

    Raised by the worker's request building; the delivery ends ``failed`` with ``reason``, and the
    others of its chunk go on.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unavailable(NotifyqError):
    """A part notifyq needs cannot be reached; ``url`` is shown with its password hidden."""

    def __init__(self, part: str, url: str, reason: str) -> None:
        url = mask_url(url)
        super().__init__(f"{part} unreachable at {url}: {reason}" if url else f"{part} unreachable: {reason}")
        self.part = part
        self.url = url
        self.reason = reason


class ProviderError(NotifyqError):
    """Something Twilio, or the network to it, did."""


@dataclass
class TwilioApiError(ProviderError):
    """Twilio answered with an error body ``{code, message, more_info, status}``."""

    status: int
    code: int | None
    message: str
    more_info: str | None = None
    retry_after_s: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"Twilio {self.status} code={self.code}: {self.message}")


class TransportError(ProviderError):
    """No usable answer from Twilio: the request was not (known to be) processed."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url


class AmbiguousSend(TransportError):
    """The request was written but no answer came: Twilio may have created the message or call."""


class ListTooLong(ProviderError):
    """A list of Twilio's holds more pages than one call reads (``pages``): what was not read is unknown.

    Never "nothing found": the record looked for may be on a page that was not read.
    """

    def __init__(self, url: str, pages: int) -> None:
        super().__init__(f"more than {pages} pages in Twilio's list")
        self.url = url
        self.pages = pages
