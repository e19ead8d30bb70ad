"""Twilio's magic numbers end to end: each delivery ends the way Twilio's documentation says it should.

The numbers and their codes are Twilio's test credentials (https://www.twilio.com/docs/iam/test-credentials);
the simulator answers them the same way. What notifyq does with each code follows the Twilio error
dictionary (see tests/core/test_classify.py): a permanent refusal fails the delivery after one request, an
unsubscribed recipient is suppressed, a full sender queue is tried again. The last four digits 3005-3007 are
the simulator's own: the message is accepted and its status callback reports that error code.
"""

from __future__ import annotations

from collections import Counter

import pytest

from notifyq.client import Client
from notifyq.testing import ACCOUNT_SID, API_TOKEN, LocalStack

from .test_pipeline import settle, sms_batch

# To -> (final status, error code), from Twilio's documentation of each code
TO_OUTCOMES: dict[str, tuple[str, int | None]] = {
    "+15005550001": ("failed", 21211),  # invalid 'To' phone number
    "+15005550002": ("failed", 21612),  # cannot route to this number
    "+15005550003": ("failed", 21408),  # no permission to send to this region
    "+15005550004": ("suppressed", 21610),  # unsubscribed: never send to them again
    "+15005550009": ("failed", 21614),  # not a mobile number, cannot receive SMS
    "+14155550100": ("delivered", None),  # an ordinary number
    "+14155553005": ("undelivered", 30005),  # unknown destination handset
    "+14155553006": ("undelivered", 30006),  # landline or unreachable carrier: "do not retry the same SMS"
    "+14155553007": ("failed", 30007),  # carrier filtering
}
REFUSED_AT_CREATE = {to for to in TO_OUTCOMES if to.startswith("+1500555")}


async def test_each_magic_to_number_ends_as_documented(stack: LocalStack) -> None:
    recipients: list[dict[str, object]] = [{"to": to, "vars": {"name": "N", "code": "1"}} for to in TO_OUTCOMES]
    sim = stack.simulator
    assert sim is not None
    async with Client(stack.api_url, token=API_TOKEN) as client:
        accepted = await client.submit(sms_batch(recipients))
        status = await settle(stack, client, accepted["id"])
        assert status["done"], status
        page = await client.deliveries(accepted["id"])
    outcomes = {d["to"]: (d["status"], d["error_code"]) for d in page["items"]}
    assert outcomes == TO_OUTCOMES
    # none of these is worth a second request or a second message
    assert {d["to"]: d["attempts"] for d in page["items"]} == dict.fromkeys(TO_OUTCOMES, 1)
    assert sim.counters.rejected == len(REFUSED_AT_CREATE)
    assert Counter(m.to for m in sim.messages) == dict.fromkeys(set(TO_OUTCOMES) - REFUSED_AT_CREATE, 1)
    # 21610: the recipient is suppressed for the account, not only this delivery
    assert await stack.worker_app.store.is_suppressed(ACCOUNT_SID, "+15005550004")
    assert not await stack.worker_app.store.is_suppressed(ACCOUNT_SID, "+15005550001")


@pytest.mark.parametrize(
    ("sender", "code", "attempts"),
    [
        pytest.param("+15005550001", 21212, 1, id="21212 invalid From: fails at once"),
        pytest.param("+15005550007", 21606, 1, id="21606 From not message-capable: fails at once"),
        pytest.param("+15005550008", 21611, 3, id="21611 From queue full: tried again until attempts run out"),
    ],
)
async def test_each_magic_from_number_ends_as_documented(
    stack: LocalStack, sender: str, code: int, attempts: int
) -> None:
    stack.settings.worker.max_attempts = 3
    sim = stack.simulator
    assert sim is not None
    async with Client(stack.api_url, token=API_TOKEN) as client:
        recipient: dict[str, object] = {"to": "+14155550100", "vars": {"name": "N", "code": "1"}}
        batch = sms_batch([recipient])
        accepted = await client.submit({**batch, "from": sender})
        status = await settle(stack, client, accepted["id"])
        assert status["done"], status
        (delivery,) = (await client.deliveries(accepted["id"]))["items"]
    assert (delivery["status"], delivery["error_code"], delivery["attempts"]) == ("failed", code, attempts)
    assert sim.counters.rejected == attempts
    assert sim.messages == []
