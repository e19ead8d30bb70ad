"""The connector's retry options for a raw request, and the two small rules they make.

The options are the Twilio connector's: a max retry count (0: none), a fixed retry delay in
milliseconds, exponential backoff (which replaces the fixed delay by notifyq's own schedule,
``backoff.backoff_delay``: full jitter between zero and a doubling ceiling), and "retry on all errors".
Without that last one, an error is retried only when ``classify`` says so (429/20429, 5xx, a
connection that never opened, the retryable Twilio codes), the same table every send obeys.

An answer that may have been acted on (the request was written, no answer came) is retried only
for a GET, or when all errors are to be retried: a write repeated blindly could act twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from notifyq.backoff import backoff_delay
from notifyq.classify import Action, classify

MAX_RETRIES: Final = 10  # a raw request is an operator's: it waits in the terminal, never for hours
MAX_DELAY_MS: Final = 60_000


@dataclass(frozen=True, slots=True)
class RetryOptions:
    """How a raw request is retried; the defaults retry nothing, as the connector's do."""

    max_retries: int = 0
    retry_delay_ms: int = 0
    exponential_backoff: bool = False
    retry_on_all_errors: bool = False
    backoff_base_s: float = 1.0  # exponential backoff's first ceiling (``worker.backoff_base_s``)
    backoff_cap_s: float = 30.0  # ... and its last

    def __post_init__(self) -> None:
        if not 0 <= self.max_retries <= MAX_RETRIES:
            raise ValueError(f"max retries is between 0 and {MAX_RETRIES}, not {self.max_retries}")
        if not 0 <= self.retry_delay_ms <= MAX_DELAY_MS:
            raise ValueError(f"retry delay is between 0 and {MAX_DELAY_MS} ms, not {self.retry_delay_ms}")


@dataclass(frozen=True, slots=True)
class Failure:
    """What one attempt ended with: an HTTP status and Twilio code, or no answer (both None)."""

    http_status: int | None
    code: int | None
    ambiguous: bool = False  # the request was written and no answer came
    retry_after_s: float | None = None


def should_retry(options: RetryOptions, failure: Failure, *, method: str, retries_done: int) -> bool:
    """Whether a failed attempt is tried again (``retries_done``: retries made so far)."""
    if retries_done >= options.max_retries:
        return False
    if failure.retry_after_s is not None and failure.retry_after_s * 1000 > MAX_DELAY_MS:
        return False  # the server asks for a wait longer than an operator's request waits
    if options.retry_on_all_errors:
        return True
    if failure.ambiguous:
        return method == "GET"
    return classify(failure.http_status, failure.code).action is Action.RETRY


def retry_delay_s(options: RetryOptions, failure: Failure, retry: int, rng: random.Random | None = None) -> float:
    """Seconds before retry number ``retry`` (1 = the first); a server's ``Retry-After`` is a floor."""
    if options.exponential_backoff:
        return backoff_delay(
            retry,
            base_s=options.backoff_base_s,
            cap_s=options.backoff_cap_s,
            rng=rng,
            retry_after_s=failure.retry_after_s,
        )
    return max(options.retry_delay_ms / 1000, failure.retry_after_s or 0.0)
