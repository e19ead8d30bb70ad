"""The README's Python examples run as written (against the local stack)."""

from __future__ import annotations

from helpers import settle
from notifyq import Client, Producer
from notifyq.testing import API_TOKEN, LocalStack


async def test_readme_http_client_example(stack: LocalStack) -> None:
    async with Client(stack.api_url, token=API_TOKEN) as nq:
        batch = await nq.submit(
            {
                "channel": "sms",
                "from": "+15005550006",
                "body": "Hi {name}, your code is {code}",
                "recipients": [
                    {"to": "+14155550100", "vars": {"name": "Ann", "code": "123456"}},
                    {"to": "+44 7911 123456", "vars": {"name": "Bo", "code": "654321"}},
                ],
            },
            idempotency_key="welcome-2026-11-22",
        )
        assert batch["total"] == 2
        status = await settle(stack, nq, batch["id"])
    assert status["by_status"] == {"delivered": 2}


async def test_readme_in_process_producer_example(stack: LocalStack) -> None:
    producer = await Producer.open(stack.settings)
    try:
        submitted = await producer.submit(
            {
                "channel": "sms",
                "from": "+15005550006",
                "body": "Hi {name}",
                "recipients": [{"to": "+14155550100", "vars": {"name": "Ann"}}],
            }
        )
        status = await producer.batch_status(submitted.batch.id)
    finally:
        await producer.close()
    assert status["total"] == 1
    assert status["by_status"] == {"pending": 1}
