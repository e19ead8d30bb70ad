"""Requests to validate, and a batch parsed whole (spec and recipients together) to assert on.

The product never holds a whole batch: the producer streams ``BatchIntake.accepted()`` to the store.
The tests compare values, so :func:`parse_batch` reads every recipient into a :class:`ParsedBatch`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import strategies as st

from notifyq.errors import Problem, ValidationFailed
from notifyq.intake import BatchIntake, BatchSpec
from notifyq.intake.request import MAX_VALIDITY_S
from notifyq.template import Template

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
MG = "MG" + "0123456789abcdef" * 2
AP = "AP" + "0123456789ABCDEF" * 2
US, US2, UK, UK2, DE, FR = (
    "+14155550100",
    "+12125550123",
    "+442079460018",
    "+447911123456",
    "+4915123456789",
    "+33612345678",
)


@dataclass(frozen=True, slots=True)
class Recipient:
    """One accepted recipient as a value: intake's ``(to, vars, index, segments)``; segments are not compared."""

    to: str
    vars: dict[str, str] | None
    index: int
    segments: int = field(default=1, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedBatch(BatchSpec):
    """A batch request parsed whole: its spec, its accepted recipients, and the duplicates dropped."""

    recipients: list[Recipient] = field(default_factory=list)
    duplicates_dropped: int = 0

    def render_body(self, variables: Mapping[str, str] | None) -> str:
        """The message text for one recipient's variables ("" when the batch has no body)."""
        return "" if self.body_template is None else Template.compile(self.body_template).render(variables)

    def twilio_params(self, recipient: Recipient) -> list[tuple[str, str]]:
        """The form items the worker sends for ``recipient`` but StatusCallback, in its order.

        ``PreparedBatch.form`` puts To first, then the shared items, then Body (tests/worker/test_prepared.py).
        """
        params = [("To", recipient.to), *self.shared_params()]
        if self.body_template is not None:
            params.append(("Body", self.render_body(recipient.vars)))
        return params


def recipients(intake: BatchIntake) -> list[Recipient]:
    """The recipients ``intake`` accepts, as values."""
    return [Recipient(*accepted) for accepted in intake.accepted()]


def parse_batch(
    payload: Any,
    *,
    default_validity_s: int = MAX_VALIDITY_S,
    max_recipients: int = 1_000_000,
    accounts: Collection[str] | None = None,
    now: datetime | None = None,
) -> ParsedBatch:
    """Validate a batch request whole; raise ValidationFailed listing every problem found."""
    intake = BatchIntake(
        payload, default_validity_s=default_validity_s, max_recipients=max_recipients, accounts=accounts, now=now
    )
    accepted = recipients(intake)
    intake.finish()
    assert intake.spec is not None  # finish() raises otherwise
    spec = {f.name: getattr(intake.spec, f.name) for f in dataclasses.fields(BatchSpec)}
    return ParsedBatch(**spec, recipients=accepted, duplicates_dropped=intake.duplicates_dropped)


def sms(**fields: Any) -> dict[str, Any]:
    return {"channel": "sms", "from": "+15005550006", "body": "Hi there", "recipients": [US], **fields}


def mms(**fields: Any) -> dict[str, Any]:
    return sms(**{"channel": "mms", "media_url": ["https://example.com/a.png"], **fields})


def call(**fields: Any) -> dict[str, Any]:
    base = {"channel": "call", "from": "+15005550006", "url": "https://example.com/twiml", "recipients": [US]}
    return {**base, **fields}


def parse(payload: Any, **kwargs: Any) -> ParsedBatch:
    return parse_batch(payload, now=NOW, **kwargs)


def problems(payload: Any, **kwargs: Any) -> list[Problem]:
    with pytest.raises(ValidationFailed) as exc:
        parse(payload, **kwargs)
    return exc.value.problems


def problem(payload: Any, **kwargs: Any) -> Problem:
    (only,) = problems(payload, **kwargs)
    return only


def without(payload: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in keys}


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(exclude_categories=()), max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)
JSON_VALUES = _JSON_VALUES
"""Any JSON value (and floats JSON has no word for: json.dumps writes NaN and Infinity)."""


# batch requests with every kind of JSON value in their fields, text with lone surrogates and controls included
BATCH_REQUESTS = st.fixed_dictionaries(
    {},
    optional={
        "channel": st.sampled_from(["sms", "mms", "call"]) | _JSON_VALUES,
        "from": st.just("+15005550006") | _JSON_VALUES,
        "body": st.text(st.characters(exclude_categories=()), max_size=12) | _JSON_VALUES,
        "media_url": st.lists(st.just("https://example.com/a.png") | _JSON_VALUES, max_size=2) | _JSON_VALUES,
        "metadata": st.dictionaries(st.text(max_size=3), _JSON_VALUES, max_size=3) | _JSON_VALUES,
        "idempotency_key": st.text(st.characters(exclude_categories=()), max_size=6) | _JSON_VALUES,
        "recipients": st.lists(
            st.just("+14155550100")
            | st.fixed_dictionaries({"to": st.just("+14155550101")}, optional={"vars": _JSON_VALUES})
            | _JSON_VALUES,
            max_size=3,
        )
        | _JSON_VALUES,
    },
)
