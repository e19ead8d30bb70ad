"""A preview over the API: nothing stored, queued or sent, and the segments a real send then costs at the simulator."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from helpers import settle
from notifyq.api.app import STATE
from notifyq.client import ApiError, Client
from notifyq.settings import PricingSettings
from notifyq.store import Store
from notifyq.store.schema import batches, deliveries
from notifyq.testing import API_TOKEN, LocalStack

MG = "MG" + "1" * 32
CURLY = "It\u2019s {name}\u2019s turn \u2014 \u201cbring {thing}\u201d"  # GSM-7 once smart-encoded


async def _rows(store: Store) -> tuple[int, int]:
    async with store.engine.connect() as conn:
        counts = [
            int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
            for table in (batches, deliveries)
        ]
    return counts[0], counts[1]


def _batch(**fields: Any) -> dict[str, Any]:
    recipients = [
        {"to": "+14155552001", "vars": {"name": "Ann", "thing": "cake"}},
        {"to": "+14155552002", "vars": {"name": "Bo", "thing": "x" * 150}},  # several segments
        {"to": "+14155552003", "vars": {"name": "Cy", "thing": "tea \U0001f375"}},  # emoji: stays UCS-2
    ]
    return {"channel": "sms", "from": "+15005550006", "body": CURLY, "recipients": recipients} | fields


@pytest.mark.parametrize(
    ("fields", "smart"),
    [
        pytest.param({"smart_encoded": True}, True, id="asked"),
        pytest.param({}, False, id="not asked"),
        pytest.param({"from": None, "messaging_service_sid": MG}, True, id="a Messaging Service by default"),
    ],
)
async def test_a_preview_stores_nothing_and_counts_what_the_send_costs(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], smart: bool
) -> None:
    producer = stack.app[STATE].require_producer()
    monkeypatch.setattr(producer.settings, "pricing", PricingSettings(sms={"US": Decimal("0.0083")}))
    batch = _batch(**fields)
    async with Client(stack.api_url, token=API_TOKEN) as client:
        preview = await client.preview(batch)
        assert await _rows(producer.store) == (0, 0)
        await stack.run_burst()  # anything queued would be sent now
        assert stack.simulator is not None
        assert stack.simulator.messages == []
        assert preview["smart_encoded"] is smart
        accepted = await client.submit(batch)
        status = await settle(stack, client, accepted["id"])
        assert status["done"], status
        page = await client.deliveries(accepted["id"])
    sent = {m.to: m for m in stack.simulator.messages}
    by_number = {d["to"]: await _delivery_segments(stack, d["id"]) for d in page["items"]}
    previewed = {r["to"]: r["segments"] for r in preview["recipients"]}
    assert previewed == by_number == {to: m.num_segments for to, m in sent.items()}
    assert preview["segments"] == sum(by_number.values())
    assert Decimal(preview["price"]) == Decimal("0.0083") * preview["segments"]
    # the smart-encoded body is the one the simulator received, and it is GSM-7 where the preview says so
    ann = sent["+14155552001"]
    assert ("\u2019" not in ann.body) is smart
    assert [r["encoding"] for r in preview["recipients"]][:2] == (["GSM-7"] * 2 if smart else ["UCS-2"] * 2)


async def _delivery_segments(stack: LocalStack, delivery_id: str) -> int:
    async with Client(stack.api_url, token=API_TOKEN) as client:
        segments: int = (await client.delivery(delivery_id))["segments"]
    return segments


async def test_a_bad_preview_is_refused_as_a_submit_is(stack: LocalStack) -> None:
    producer = stack.app[STATE].require_producer()
    bad = _batch(smart_encoded="yes", account="nobody")
    async with Client(stack.api_url, token=API_TOKEN) as client:
        with pytest.raises(ApiError) as previewed:
            await client.preview(bad)
        with pytest.raises(ApiError) as submitted:
            await client.submit(bad)
        with pytest.raises(ApiError) as unknown_account:
            await client.preview(_batch(account="nobody"))
    assert previewed.value.status == submitted.value.status == 422
    assert previewed.value.problem["errors"] == submitted.value.problem["errors"]
    assert unknown_account.value.status == 422
    assert "nobody" in str(unknown_account.value.problem["errors"])
    assert await _rows(producer.store) == (0, 0)
