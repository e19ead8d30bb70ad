"""``notifyq twilio``: every connector command against the simulator over HTTP, through the account's pacing.

The commands run in a thread (click's runner; each command runs its own event loop) while the
simulator, Redis and the database serve on the test's loop. Attempts are counted at the simulator.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner, Result

from helpers import settings_env, settle
from notifyq.cli import main
from notifyq.client import Client
from notifyq.pacing import PacingAdmin
from notifyq.provider.signature import compute_signature
from notifyq.provider.twilio import TwilioClient
from notifyq.queue.connect import redis_from_url
from notifyq.simulator import Simulator, SimulatorConfig
from notifyq.testing import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, LocalStack, local_stack

SENDER = "+15005550006"
SETTINGS: dict[str, Any] = {
    "pacing": {"senders": {SENDER: 10_000.0}},
    "calls_per_second": 1000.0,
    "worker": {"callback_grace_s": 0.3, "backoff_base_s": 0.01, "backoff_cap_s": 0.05, "poll_delay_s": 0.01},
}


@pytest.fixture
async def sim_stack(tmp_path: Path, redis_url: str, sim_config: SimulatorConfig) -> AsyncIterator[LocalStack]:
    """The stack on SQLite (these commands touch the database only to send; ``test_send`` runs on both)."""
    async with local_stack(
        data_dir=tmp_path,
        redis_url=redis_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'notifyq.db'}",
        sim_config=sim_config,
        run_worker=False,
        **SETTINGS,
    ) as s:
        yield s


def sim(stack: LocalStack) -> Simulator:
    assert stack.simulator is not None
    return stack.simulator


async def cli(stack: LocalStack, *args: str, **env: str) -> Result:
    """``notifyq ARGS`` against the stack, ``env`` added (``NOTIFYQ_...`` names)."""
    environment = settings_env(stack.settings) | {"NOTIFYQ_WORKER__BACKOFF_BASE_S": "0.01"} | env
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), env=environment)


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


async def make(stack: LocalStack, resource: str, to: str, **extra: str) -> str:
    """Create a message or call at the simulator directly (as someone else's send would); its SID."""
    client = TwilioClient(stack.settings.twilio)
    try:
        form = {"To": to, "From": SENDER, **({"Body": "hello"} if resource == "Messages" else {"Twiml": "<Response/>"})}
        created = await client.create(
            stack.settings.twilio.account(None), f"{resource}.json", list({**form, **extra}.items())
        )
    finally:
        await client.close()
    return created.sid


# ---- provision -----------------------------------------------------------------------------------------


async def test_provisioning_twice_changes_nothing_the_second_time(sim_stack: LocalStack) -> None:
    first = as_json(await cli(sim_stack, "twilio", "provision", "--json"))
    assert first["changed"] is True
    assert first["action"] == "created"
    (app,) = sim(sim_stack).applications.of(ACCOUNT_SID)
    base = sim_stack.settings.public_base_url
    assert app.sid == first["application_sid"]
    assert app.friendly_name == "notifyq"
    assert app.status_callback == f"{base}/twilio/call-status"
    assert app.message_status_callback == f"{base}/twilio/message-status"
    updated_at = app.date_updated

    second = as_json(await cli(sim_stack, "twilio", "provision", "--json"))
    assert second == {
        "application_sid": first["application_sid"],
        "changed": False,
        "action": "unchanged",
        "changed_fields": [],
    }
    assert len(sim(sim_stack).applications.of(ACCOUNT_SID)) == 1
    assert app.date_updated == updated_at  # no update was sent

    said = await cli(sim_stack, "twilio", "provision")
    assert said.exit_code == 0, said.output
    assert f"application {app.sid} is up to date: nothing changed" in said.stdout


async def test_provisioning_puts_back_what_drifted_in_place(sim_stack: LocalStack) -> None:
    sid = as_json(await cli(sim_stack, "twilio", "provision", "--json"))["application_sid"]
    (app,) = sim(sim_stack).applications.of(ACCOUNT_SID)
    app.status_callback = "https://old.example.com/calls"
    app.voice_url = "https://voice.example.com/twiml"  # not ours: left as it is

    again = as_json(await cli(sim_stack, "twilio", "provision", "--json"))
    assert again == {"application_sid": sid, "changed": True, "action": "updated", "changed_fields": ["StatusCallback"]}
    assert app.status_callback == f"{sim_stack.settings.public_base_url}/twilio/call-status"
    assert app.voice_url == "https://voice.example.com/twiml"
    assert len(sim(sim_stack).applications.of(ACCOUNT_SID)) == 1


async def test_an_unknown_account_is_bad_input(sim_stack: LocalStack) -> None:
    result = await cli(sim_stack, "twilio", "provision", "--account", "nope")
    assert result.exit_code == 2, result.output
    assert "no Twilio account 'nope' is configured" in result.output
    assert len(sim(sim_stack).applications) == 0


# ---- connect-app ---------------------------------------------------------------------------------------


async def _connect_app(stack: LocalStack) -> str:
    body = {"account_sid": ACCOUNT_SID, "friendly_name": "notifyq", "permissions": ["get-all"]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{stack.settings.twilio.base_url}/_sim/connect-apps", json=body) as r,
    ):
        assert r.status == 201
        return str((await r.json())["sid"])


async def test_connect_app_show_and_update(sim_stack: LocalStack) -> None:
    sid = await _connect_app(sim_stack)
    shown = as_json(await cli(sim_stack, "twilio", "connect-app", "show", sid, "--json"))
    assert shown["sid"] == sid
    assert shown["permissions"] == ["get-all"]

    updated = as_json(
        await cli(
            sim_stack,
            "twilio", "connect-app", "update", sid,
            "--permission", "get-all", "--permission", "post-all",
            "--authorize-redirect-url", "https://n.example.com/twilio/connect/authorize",
            "--deauthorize-callback-url", "https://n.example.com/twilio/connect/deauthorize",
            "--deauthorize-callback-method", "GET",
            "--json",
        )
    )  # fmt: skip
    assert updated["permissions"] == ["get-all", "post-all"]
    assert updated["authorize_redirect_url"] == "https://n.example.com/twilio/connect/authorize"
    assert updated["deauthorize_callback_method"] == "GET"
    app = sim(sim_stack).connect.app(sid)
    assert app is not None
    assert app.deauthorize_callback_url == "https://n.example.com/twilio/connect/deauthorize"

    cleared = as_json(await cli(sim_stack, "twilio", "connect-app", "update", sid, "--no-permissions", "--json"))
    assert cleared["permissions"] == []


async def test_connect_app_refusals(sim_stack: LocalStack) -> None:
    missing = await cli(sim_stack, "twilio", "connect-app", "show", "CN" + "0" * 32)
    assert missing.exit_code == 2, missing.output
    assert "20404" in missing.output
    bad = await cli(sim_stack, "twilio", "connect-app", "show", "CNnope")
    assert bad.exit_code == 2
    assert "CN followed by 32 hex digits" in bad.output
    nothing = await cli(sim_stack, "twilio", "connect-app", "update", "CN" + "0" * 32)
    assert nothing.exit_code == 2
    assert "nothing to update" in nothing.output


# ---- messages and calls --------------------------------------------------------------------------------


async def test_messages_get_and_list_follow_the_pages(sim_stack: LocalStack) -> None:
    sids = [await make(sim_stack, "Messages", f"+1415555{2000 + i:04d}") for i in range(7)]
    got = as_json(await cli(sim_stack, "twilio", "messages", "get", sids[0], "--json"))
    assert got["sid"] == sids[0]
    assert got["to"] == "+14155552000"

    counters = sim(sim_stack).counters
    before = counters.list_requests
    listed = as_json(await cli(sim_stack, "twilio", "messages", "list", "--page-size", "3", "--limit", "7", "--json"))
    assert [m["sid"] for m in listed] == sids[::-1]  # newest first, every page read
    assert counters.list_requests - before == 3

    before = counters.list_requests
    five = as_json(await cli(sim_stack, "twilio", "messages", "list", "--page-size", "3", "--limit", "5", "--json"))
    assert [m["sid"] for m in five] == sids[::-1][:5]
    assert counters.list_requests - before == 2  # no page read past the limit

    one = as_json(await cli(sim_stack, "twilio", "messages", "list", "--to", "+14155552003", "--json"))
    assert [m["sid"] for m in one] == [sids[3]]
    today = parsedate_to_datetime(got["date_created"]).date().isoformat()  # RFC 2822, as Twilio writes it
    dated = as_json(
        await cli(sim_stack, "twilio", "messages", "list", "--from", SENDER, "--date-sent", today, "--json")
    )
    assert len(dated) == 7
    before_day = as_json(
        await cli(sim_stack, "twilio", "messages", "list", "--date-sent-before", "2001-01-01", "--json")
    )
    assert before_day == []

    text = await cli(sim_stack, "twilio", "messages", "list", "--limit", "2")
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines()[-1] == "2 message(s)"


async def test_messages_get_of_an_unknown_sid_is_bad_input(sim_stack: LocalStack) -> None:
    result = await cli(sim_stack, "twilio", "messages", "get", "SM" + "0" * 32)
    assert result.exit_code == 2, result.output
    assert "Twilio 404" in result.output
    assert "Traceback" not in result.output


async def test_calls_get_and_list(sim_stack: LocalStack) -> None:
    sids = [await make(sim_stack, "Calls", f"+1415555{3000 + i:04d}") for i in range(4)]
    got = as_json(await cli(sim_stack, "twilio", "calls", "get", sids[1], "--json"))
    assert (got["sid"], got["to"]) == (sids[1], "+14155553001")
    listed = as_json(await cli(sim_stack, "twilio", "calls", "list", "--page-size", "3", "--limit", "10", "--json"))
    assert [c["sid"] for c in listed] == sids[::-1]
    to_one = as_json(await cli(sim_stack, "twilio", "calls", "list", "--to", "+14155553002", "--json"))
    assert [c["sid"] for c in to_one] == [sids[2]]


async def test_send_is_a_batch_of_one_that_a_worker_sends(stack: LocalStack) -> None:
    body = "Hi {there}: your code is 42"  # braces are text here, not a template's variables
    sent = as_json(
        await cli(
            stack, "twilio", "messages", "send", "--to", "+14155550123", "--from", SENDER, "--body", body, "--json"
        )
    )
    assert sent["status"] == "pending"
    assert sent["account"] == "main"
    assert len(sim(stack).messages) == 0  # recorded and queued: nothing sent by the command itself

    async with Client(stack.api_url, token=API_TOKEN) as client:
        status = await settle(stack, client, sent["batch_id"])
        delivery = await client.delivery(sent["delivery_id"])
    assert status["done"], status
    assert delivery["status"] == "delivered"
    (message,) = [m.summary() for m in sim(stack).messages]
    assert (message["to"], message["body"], message["sid"]) == ("+14155550123", body, delivery["twilio_sid"])


async def test_send_refuses_what_a_batch_refuses(sim_stack: LocalStack) -> None:
    result = await cli(sim_stack, "twilio", "messages", "send", "--to", "not-a-number", "--from", SENDER, "--body", "x")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


# ---- request -------------------------------------------------------------------------------------------

MESSAGES = "/Accounts/$TWILIO_ACCOUNT_SID/Messages.json"


async def test_request_retries_a_retryable_error_up_to_the_max(sim_stack: LocalStack) -> None:
    counters = sim(sim_stack).counters
    sim(sim_stack).config.list_failures = 2  # the next two list requests answer 500
    before = counters.requests
    ok = as_json(
        await cli(
            sim_stack, "twilio", "request", "GET", MESSAGES, "--max-retries", "3", "--retry-delay-ms", "1", "--json"
        )
    )
    assert (ok["ok"], ok["status"], ok["attempts"]) == (True, 200, 3)
    assert "messages" in ok["body"]
    assert counters.requests - before == 3

    sim(sim_stack).config.list_failures = 5
    before = counters.requests
    failed = await cli(sim_stack, "twilio", "request", "GET", MESSAGES, "--max-retries", "2", "--json")
    assert failed.exit_code == 1, failed.output  # Twilio failing is a fault
    answer = json.loads(failed.stdout.splitlines()[0])
    assert (answer["ok"], answer["status"], answer["attempts"]) == (False, 500, 3)
    assert "after 3 attempts" in failed.output
    assert counters.requests - before == 3


async def test_request_with_exponential_backoff_retries_as_often(sim_stack: LocalStack) -> None:
    counters = sim(sim_stack).counters
    sim(sim_stack).config.list_failures = 2
    before = counters.requests
    ok = as_json(
        await cli(
            sim_stack, "twilio", "request", "GET", MESSAGES, "--max-retries", "2", "--exponential-backoff", "--json"
        )
    )
    assert ok["attempts"] == 3
    assert counters.requests - before == 3


async def test_request_without_retries_makes_one_attempt(sim_stack: LocalStack) -> None:
    counters = sim(sim_stack).counters
    sim(sim_stack).config.list_failures = 1
    before = counters.requests
    failed = await cli(sim_stack, "twilio", "request", "GET", MESSAGES)
    assert failed.exit_code == 1, failed.output
    assert "after 1 attempt)" in failed.output
    assert counters.requests - before == 1


async def test_request_retries_a_permanent_error_only_on_all_errors(sim_stack: LocalStack) -> None:
    counters = sim(sim_stack).counters
    missing = f"/Accounts/$TWILIO_ACCOUNT_SID/Messages/SM{'0' * 32}.json"
    before = counters.requests
    once = await cli(sim_stack, "twilio", "request", "GET", missing, "--max-retries", "3", "--json")
    assert once.exit_code == 2, once.output  # Twilio refusing is bad input
    assert json.loads(once.stdout.splitlines()[0])["attempts"] == 1
    assert counters.requests - before == 1

    before = counters.requests
    every = await cli(
        sim_stack, "twilio", "request", "GET", missing, "--max-retries", "3", "--retry-on-all-errors", "--json"
    )
    assert every.exit_code == 2, every.output
    assert json.loads(every.stdout.splitlines()[0])["attempts"] == 4
    assert counters.requests - before == 4


async def test_request_posts_a_form_and_deletes(sim_stack: LocalStack) -> None:
    made = as_json(
        await cli(sim_stack, "twilio", "request", "POST", "/Accounts/$TWILIO_ACCOUNT_SID/Applications.json",
                  "--data", "FriendlyName=raw app", "--data", "VoiceMethod=GET", "--json")
    )  # fmt: skip
    assert made["status"] == 201
    sid = made["body"]["sid"]
    app = sim(sim_stack).applications.get(ACCOUNT_SID, sid)
    assert app is not None
    assert app.friendly_name == "raw app"
    listed = as_json(
        await cli(sim_stack, "twilio", "request", "GET", "/Accounts/$TWILIO_ACCOUNT_SID/Applications.json",
                  "--query", "FriendlyName=raw app", "--json")
    )  # fmt: skip
    assert [a["sid"] for a in listed["body"]["applications"]] == [sid]
    gone = as_json(
        await cli(
            sim_stack, "twilio", "request", "DELETE", f"/Accounts/$TWILIO_ACCOUNT_SID/Applications/{sid}.json", "--json"
        )
    )
    assert (gone["status"], gone["body"]) == (204, None)
    assert sim(sim_stack).applications.get(ACCOUNT_SID, sid) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["POST", MESSAGES, "--data", "To=+14155550100", "--data", "From=" + SENDER, "--data", "Body=x"],
            "does not create",
        ),
        (["POST", "/Accounts/$TWILIO_ACCOUNT_SID/Calls.json"], "does not create"),
        (["GET", "https://example.com/Accounts.json"], "a path under /2010-04-01"),
        (["GET", MESSAGES, "--data", "To=1"], "--data is a POST's form"),
        (["GET", MESSAGES, "--query", "no-equals-sign"], "is not NAME=VALUE"),
        (["GET", MESSAGES, "--max-retries", "11"], "11"),
    ],
)
async def test_request_refuses_before_sending(sim_stack: LocalStack, args: list[str], message: str) -> None:
    counters = sim(sim_stack).counters
    before = counters.requests
    result = await cli(sim_stack, "twilio", "request", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert counters.requests == before


async def test_request_of_a_paused_account_sends_nothing(sim_stack: LocalStack) -> None:
    redis = redis_from_url(sim_stack.settings.redis_url or "")
    try:
        await PacingAdmin(redis, sim_stack.settings).pause_account(ACCOUNT_SID, "20003: test")
        before = sim(sim_stack).counters.requests
        result = await cli(sim_stack, "twilio", "request", "GET", MESSAGES, "--max-retries", "3")
        assert result.exit_code == 2, result.output
        assert "is paused" in result.output
        assert sim(sim_stack).counters.requests == before
    finally:
        await redis.aclose()


async def test_each_retry_takes_from_the_account_request_budget(sim_stack: LocalStack) -> None:
    # a budget of two requests, refilled far slower than the command waits: the third attempt is refused
    counters = sim(sim_stack).counters
    sim(sim_stack).config.list_failures = 5
    before = counters.requests
    result = await cli(
        sim_stack,
        "twilio", "request", "GET", MESSAGES, "--max-retries", "3",
        NOTIFYQ_TWILIO__CONNECTOR_REQUESTS_PER_MINUTE="0.001",
        NOTIFYQ_TWILIO__CONNECTOR_BURST="2",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "request budget stays spent" in result.output
    assert counters.requests - before == 2


async def test_a_batch_of_calls_sends_with_the_provisioned_application(sim_stack: LocalStack) -> None:
    app_sid = as_json(await cli(sim_stack, "twilio", "provision", "--json"))["application_sid"]
    to = ["+14155555001", "+14155555002", "+14155554003"]  # the simulator fails a call to a number ending 4003
    batch = {"channel": "call", "from": SENDER, "application_sid": app_sid, "recipients": to}
    async with Client(sim_stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(batch)
        status = await settle(sim_stack, client, accepted["id"])
        page = await client.deliveries(accepted["id"])
    calls = {c.sid: c for c in sim(sim_stack).calls}
    assert len(calls) == 3
    assert {c.application_sid for c in calls.values()} == {app_sid}
    # each delivery holds the SID of its call, made with the Application instead of a Url or Twiml
    assert {d["twilio_sid"] for d in page["items"]} == set(calls)
    # Twilio reported to the Application's StatusCallback: the receiver found each delivery by its Call SID
    assert status["done"], status
    assert status["by_status"] == {"completed": 2, "failed": 1}
    counters = sim(sim_stack).counters
    assert counters.callbacks_sent == 3
    assert counters.callbacks_rejected == 0


async def _post_to_application_url(stack: LocalStack, kind: str, form: dict[str, str], *, signed: bool) -> int:
    url = f"{stack.settings.public_base_url}/twilio/{kind}-status"
    headers = {"X-Twilio-Signature": compute_signature(AUTH_TOKEN, url, form)} if signed else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{stack.api_url}/twilio/{kind}-status", data=form, headers=headers) as r,
    ):
        return r.status


async def test_the_application_urls_find_the_delivery_by_its_sid(sim_stack: LocalStack) -> None:
    sim(sim_stack).config.no_callbacks_to = ["+14155556001"]  # only the test's callback reports on it
    async with Client(sim_stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit({"channel": "sms", "from": SENDER, "body": "x", "recipients": ["+14155556001"]})
        await sim_stack.run_burst()
        (delivery,) = (await client.deliveries(accepted["id"]))["items"]
        sid = delivery["twilio_sid"]
        form = {"AccountSid": ACCOUNT_SID, "MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}

        assert await _post_to_application_url(sim_stack, "message", form, signed=False) == 403
        stranger = {**form, "MessageSid": "SM" + "e" * 32}
        assert await _post_to_application_url(sim_stack, "message", stranger, signed=True) == 200
        assert await _post_to_application_url(sim_stack, "message", {**form, "MessageSid": "nope"}, signed=True) == 400
        await sim_stack.inbox.drain()
        assert (await client.delivery(delivery["id"]))["status"] != "undelivered"  # nothing kept for those

        assert await _post_to_application_url(sim_stack, "message", form, signed=True) == 200
        await sim_stack.inbox.drain()
        found = await client.delivery(delivery["id"])
    assert (found["status"], found["error_code"]) == ("undelivered", 30003)
