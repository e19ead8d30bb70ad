"""What happens to a message or call after it is accepted: its steps and their callbacks.

A plan is a list of ``Step``: ``delay`` seconds after the create, the record moves to its next
status and, when the sender asked for it, a signed callback goes out. Plans are made at create
time so that every random choice is drawn, in order, from the simulator's one ``Random``.
Reordering moves the callbacks between the steps' times; the record itself always moves forward.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from notifyq.simulator.records import API_VERSION, CallRecord, MessageRecord, rfc2822

if TYPE_CHECKING:
    import random

    from notifyq.simulator.config import SimulatorConfig
    from notifyq.simulator.magic import CallOutcome, MessageOutcome

FormItems = list[tuple[str, str]]

# a messaging service picks the sender; callbacks and later fetches show this one
POOL_SENDER = "+15005550006"


@dataclass(frozen=True, slots=True)
class Callback:
    """One signed status callback to send."""

    url: str
    method: str  # POST, or GET with the parameters in the query string
    params: FormItems
    auth_token: str
    idempotency_token: str


@dataclass(slots=True)
class Step:
    """At ``delay`` seconds after the create: ``apply`` the new status, then send ``callback`` ``copies`` times."""

    delay: float
    apply: Callable[[], None]
    callback: Callback | None = None
    copies: int = 1


def _draw(rng: random.Random, rate: float) -> bool:
    # no draw at rate 0, so that turning a fault off does not shift the other random choices
    return rate > 0.0 and rng.random() < rate


def _finish(steps: list[Step], cfg: SimulatorConfig, rng: random.Random) -> list[Step]:
    """Apply the drop, duplicate and reorder faults to a plan."""
    for step in steps:
        if step.callback is not None and _draw(rng, cfg.callback_drop_rate):
            step.callback = None  # lost on its way: the record still moves on
        if step.callback is not None and _draw(rng, cfg.callback_duplicate_rate):
            step.copies = 2
    with_callbacks = [s for s in steps if s.callback is not None]
    if len(with_callbacks) >= 2 and _draw(rng, cfg.callback_reorder_rate):
        callbacks = [(s.callback, s.copies) for s in with_callbacks]
        shuffled = callbacks[:]
        while shuffled == callbacks:  # a shuffle that changes nothing would not test anything
            rng.shuffle(shuffled)
        for step, (callback, copies) in zip(with_callbacks, shuffled, strict=True):
            step.callback, step.copies = callback, copies
    return steps


def plan_message(
    record: MessageRecord, outcome: MessageOutcome, auth_token: str, cfg: SimulatorConfig, rng: random.Random
) -> list[Step]:
    """Sent after one delay, final after two; callbacks for both (none for the initial status)."""
    delay = cfg.callback_delay_s
    sender = record.from_ or POOL_SENDER
    url = record.status_callback if cfg.callbacks and record.to not in cfg.no_callbacks_to else None

    def callback(url: str, status: str, at: datetime, extra: FormItems) -> Callback:
        params: FormItems = [
            ("AccountSid", record.account_sid),
            ("ApiVersion", API_VERSION),
            ("From", sender),
            ("MessageSid", record.sid),
            ("MessageStatus", status),
            ("SmsSid", record.sid),
            ("SmsStatus", status),
            ("To", record.to),
        ]
        if record.messaging_service_sid:
            params.append(("MessagingServiceSid", record.messaging_service_sid))
        if status in {"delivered", "undelivered"}:
            params.append(("RawDlrDoneDate", at.strftime("%y%m%d%H%M")))
        token = f"{record.sid}-{status}-{rng.getrandbits(64):016x}"
        return Callback(url, "POST", params + extra, auth_token, token)

    def sent() -> None:
        record.status, record.from_ = "sent", sender
        record.date_sent = record.date_updated = datetime.now(UTC)

    def final() -> None:
        record.status = outcome.status
        record.error_code, record.error_message = outcome.error_code, outcome.error_message
        record.date_updated = datetime.now(UTC)

    steps = [Step(delay, sent), Step(2 * delay, final)]
    if url is not None:  # the callbacks' parameters only when they will be sent (no random draw otherwise)
        failure: FormItems = []
        if outcome.error_code is not None:
            failure = [("ErrorCode", str(outcome.error_code)), ("ErrorMessage", outcome.error_message or "")]
        steps[0].callback = callback(url, "sent", record.date_created + timedelta(seconds=delay), [])
        steps[1].callback = callback(url, outcome.status, record.date_created + timedelta(seconds=2 * delay), failure)
    return _finish(steps, cfg, rng)


_CALL_EVENT_STATUS = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress"}


def plan_call(
    record: CallRecord,
    outcome: CallOutcome,
    auth_token: str,
    cfg: SimulatorConfig,
    rng: random.Random,
    app_callback: tuple[str, str] | None = None,
) -> list[Step]:
    """Initiated, ringing, answered, then the terminal status, one delay apart.

    Only the events in StatusCallbackEvent get a callback, except the terminal one which always
    does; SequenceNumber counts the callbacks of this call from 0. A call made with ApplicationSid
    reports only its terminal status, to ``app_callback`` (the Application's StatusCallback and method).
    """
    delay = cfg.callback_delay_s
    events = ["initiated"]
    if outcome.rang:
        events.append("ringing")
    if outcome.answered:
        events.append("answered")
    events.append("terminal")
    # Twilio ignores StatusCallback* when ApplicationSid is given: the app's own URL is used
    silent = not cfg.callbacks or record.to in cfg.no_callbacks_to
    url, method = record.status_callback, record.status_callback_method
    if record.application_sid is not None:
        url, method = app_callback or (None, method)
    url = None if silent else url
    wanted = set(record.status_callback_events) if record.application_sid is None else set()
    sequence = 0
    steps: list[Step] = []
    for number, event in enumerate(events, start=1):
        at = record.date_created + timedelta(seconds=number * delay)
        callback = None
        if url is not None and (event == "terminal" or event in wanted):
            status = outcome.status if event == "terminal" else _CALL_EVENT_STATUS[event]
            params: FormItems = [
                ("AccountSid", record.account_sid),
                ("ApiVersion", API_VERSION),
                ("CallSid", record.sid),
                ("CallStatus", status),
                ("CallbackSource", "call-progress-events"),
                ("Called", record.to),
                ("Caller", record.from_),
                ("Direction", "outbound-api"),
                ("From", record.from_),
                ("SequenceNumber", str(sequence)),
                ("Timestamp", rfc2822(at) or ""),
                ("To", record.to),
            ]
            if event == "terminal":
                params += [
                    ("CallDuration", str(outcome.duration_s)),
                    ("SipResponseCode", str(outcome.sip_response_code)),
                ]
                if outcome.answered:
                    params.append(("Duration", str(outcome.duration_min)))
            token = f"{record.sid}-{sequence}-{rng.getrandbits(64):016x}"
            callback = Callback(url, method, params, auth_token, token)
            sequence += 1
        steps.append(Step(number * delay, _call_move(record, event, outcome), callback))
    return _finish(steps, cfg, rng)


def _call_move(record: CallRecord, event: str, outcome: CallOutcome) -> Callable[[], None]:
    def move() -> None:
        now = datetime.now(UTC)
        record.date_updated = now
        if event == "initiated":
            record.start_time = now  # the resource keeps "queued": "initiated" exists only in callbacks
        elif event == "ringing":
            record.status = "ringing"
        elif event == "answered":
            record.status = "in-progress"
        else:
            record.status, record.end_time, record.duration = outcome.status, now, outcome.duration_s

    return move
