"""The simulator's state: accounts, records, counters, one ``Random``, and what a create does to them.

Everything runs on one event loop, so no locks: a create is validated, recorded and planned
without an ``await`` in between. The HTTP handlers work on this state; ``core.Simulator`` adds
the server that routes to them.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from notifyq.segments import segment_count, smart_encode
from notifyq.simulator.callbacks import Timeline
from notifyq.simulator.config import SimAccount, check_account
from notifyq.simulator.connect import Connect
from notifyq.simulator.lifecycle import plan_call, plan_message
from notifyq.simulator.magic import call_outcome, message_outcome
from notifyq.simulator.records import ApplicationRecord, CallRecord, MessageRecord, RecordIndex, SimCounters
from notifyq.simulator.registry import Registry

if TYPE_CHECKING:
    from notifyq.simulator.config import SimulatorConfig
    from notifyq.simulator.spec import Form


def _one(form: Form, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _many(form: Form, name: str) -> list[str]:
    value = form.get(name, [])
    return value if isinstance(value, list) else [value]


def _smart_encoded(form: Form, service: str | None, config: SimulatorConfig) -> bool:
    """Whether Smart Encoding applies: ``SmartEncoded`` when the create has it, else the service's setting."""
    asked = _one(form, "SmartEncoded")  # the spec check has let only true or false through, in any case
    if asked is not None:
        return asked.lower() == "true"
    return service is not None and config.service_smart_encoding


class SimulatorState:
    """What the simulated Twilio holds (accounts, messages, calls, Applications, Connect) and how it changes."""

    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self._configured = set(config.accounts)  # what reset() keeps: accounts made later go
        self.rng = random.Random(config.seed)
        self.counters = SimCounters()
        self.message_index: RecordIndex[MessageRecord] = RecordIndex()
        self.call_index: RecordIndex[CallRecord] = RecordIndex()
        self.applications: Registry[ApplicationRecord] = Registry()
        self.connect = Connect()
        self.timeline = Timeline(config, self.counters)
        self.in_flight: dict[str, int] = {}
        self.drain_timeout_s = 1.0
        self._by_callback: Counter[str] = Counter()

    @property
    def config(self) -> SimulatorConfig:
        """The live configuration; change its fields at any time."""
        return self._config

    @config.setter
    def config(self, value: SimulatorConfig) -> None:
        self._config = value
        self._configured = set(value.accounts)
        self.timeline.config = value

    @property
    def messages(self) -> list[MessageRecord]:
        """Every accepted message, oldest first (the live list: do not modify)."""
        return self.message_index.all

    @property
    def calls(self) -> list[CallRecord]:
        """Every accepted call, oldest first (the live list: do not modify)."""
        return self.call_index.all

    def sends_by_callback(self) -> dict[str, int]:
        """StatusCallback URL -> accepted messages and calls that carry it."""
        return dict(self._by_callback)

    def draw(self, rate: float) -> bool:
        """A random event with probability ``rate``; no draw at all when the rate is 0."""
        return rate > 0.0 and self.rng.random() < rate

    def new_sid(self, prefix: str) -> str:
        """A Twilio SID: two letters and 32 hex digits."""
        return f"{prefix}{self.rng.getrandbits(128):032x}"

    def add_account(
        self, *, owner: str | None = None, friendly_name: str | None = None, when: datetime | None = None
    ) -> tuple[str, SimAccount]:
        """Make an account (a subaccount of ``owner`` when given) with an Auth Token of its own."""
        when = when or datetime.now(UTC)
        sid = self.new_sid("AC")
        account = SimAccount(
            auth_token=f"{self.rng.getrandbits(128):032x}",
            owner_account_sid=owner,
            friendly_name=friendly_name,
            date_created=when,
            date_updated=when,
        )
        check_account(sid, account, self.config.accounts)
        self.config.accounts[sid] = account
        return sid, account

    def _application(self, account_sid: str, form: Form) -> ApplicationRecord | None:
        sid = _one(form, "ApplicationSid")
        return self.applications.get(account_sid, sid) if sid else None

    def accept_message(
        self,
        account_sid: str,
        account: SimAccount,
        form: Form,
        items: list[tuple[str, str]],
        *,
        received: datetime | None = None,
    ) -> MessageRecord:
        """Record a validated message (created when its request was ``received``) and plan its progress."""
        service = _one(form, "MessagingServiceSid")
        body = _one(form, "Body") or ""
        if _smart_encoded(form, service, self.config):
            body = smart_encode(body)  # the record holds, and the API returns, the body Twilio sends
        callback = _one(form, "StatusCallback")
        reported = callback
        if callback is None and "ApplicationSid" in form:  # the Application's URL, unless StatusCallback is given
            app = self._application(account_sid, form)
            reported = (app.message_status_callback or app.sms_status_callback) if app else None
        created = received or datetime.now(UTC)
        record = MessageRecord(
            sid=self.new_sid("MM" if "MediaUrl" in form else "SM"),
            account_sid=account_sid,
            to=_one(form, "To") or "",
            from_=_one(form, "From"),
            messaging_service_sid=service,
            body=body,
            num_segments=segment_count(body),
            media_urls=_many(form, "MediaUrl"),
            status="accepted" if service else "queued",
            status_callback=reported,
            date_created=created,
            params=items,
            date_updated=created,
        )
        self.message_index.add(record)
        self._count_send(callback)
        outcome = message_outcome(record.to, self.config.outcome_rates, self.rng)
        self.timeline.schedule(
            plan_message(record, outcome, self._signing_token(account_sid, account), self.config, self.rng)
        )
        return record

    def accept_call(
        self,
        account_sid: str,
        account: SimAccount,
        form: Form,
        items: list[tuple[str, str]],
        *,
        received: datetime | None = None,
    ) -> CallRecord:
        """Record a validated call (created when its request was ``received``) and plan its progress."""
        callback = _one(form, "StatusCallback")
        created = received or datetime.now(UTC)
        record = CallRecord(
            sid=self.new_sid("CA"),
            account_sid=account_sid,
            to=_one(form, "To") or "",
            from_=_one(form, "From") or "",
            url=_one(form, "Url"),
            twiml=_one(form, "Twiml"),
            application_sid=_one(form, "ApplicationSid"),
            status_callback=callback,
            status_callback_events=_many(form, "StatusCallbackEvent"),
            status_callback_method=_one(form, "StatusCallbackMethod") or "POST",
            status="queued",
            date_created=created,
            params=items,
            date_updated=created,
        )
        self.call_index.add(record)
        app = self._application(account_sid, form) if record.application_sid else None
        # with ApplicationSid, Twilio reports to the Application's StatusCallback, not the form's
        via_app = (app.status_callback, app.status_callback_method) if app and app.status_callback else None
        self._count_send(callback)
        outcome = call_outcome(record.to, self.rng)
        self.timeline.schedule(
            plan_call(record, outcome, self._signing_token(account_sid, account), self.config, self.rng, via_app)
        )
        return record

    def _signing_token(self, account_sid: str, account: SimAccount) -> str:
        """The Auth Token an account's callbacks are signed with: its own, or its Connect App owner's.

        An account authorised to a Connect App is reached with the owner's Auth Token; the owner knows
        no other token of it, so that is the one its callbacks can be checked with.
        """
        grant = self.connect.grant(account_sid)
        owner = self.config.accounts.get(grant.owner_account_sid) if grant is not None else None
        return owner.auth_token if owner is not None else account.auth_token

    def _count_send(self, callback: str | None) -> None:
        self.counters.created += 1
        if callback:
            self._by_callback[callback] += 1

    def reset(self) -> None:
        """Forget records, counters and what the API made; cancel pending steps and queued callbacks.

        Applications, Connect Apps and their grants go, and so do the accounts made after the
        simulator started (subaccounts, Connect customers); the configured accounts stay as they are.
        """
        self.timeline.forget()
        self.message_index.clear()
        self.call_index.clear()
        self.applications.clear()
        self.connect.clear()
        for sid in set(self.config.accounts) - self._configured:
            del self.config.accounts[sid]
        self._by_callback.clear()
        for f in fields(self.counters):
            setattr(self.counters, f.name, 0)

    async def settle(self, timeout_s: float = 10.0) -> bool:
        """Wait until every planned status change and callback is done; False on timeout."""
        return await self.timeline.settle(timeout_s)
