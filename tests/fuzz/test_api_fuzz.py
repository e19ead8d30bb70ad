"""schemathesis against the document the API serves, with a fixed seed and bounded cases (make fuzz: more)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from helpers import people, sms_batch
from notifyq.client import Client
from notifyq.testing import API_TOKEN, LocalStack

from .api_fuzz import fuzz

EXAMPLES = int(os.environ.get("NOTIFYQ_FUZZ_EXAMPLES", "15"))


@pytest.fixture
async def database_url(tmp_path: Path) -> str:
    """SQLite: the answers fuzzing checks are the API's, the same on either engine."""
    return f"sqlite+aiosqlite:///{tmp_path / 'notifyq.db'}"


async def _known(stack: LocalStack) -> dict[str, str]:
    """Path parameters that exist: a batch with its delivery, a dry-run replay's batch, the env's account."""
    async with Client(stack.api_url, token=API_TOKEN) as client:
        batch = await client.submit(sms_batch(people(2)))
        page = await client.deliveries(batch["id"])
    return {"batch_id": batch["id"], "delivery_id": page["items"][0]["id"], "name": "main"}


def _keep(path: Path, report: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report + "\n", encoding="utf-8")


@pytest.mark.slow
@pytest.mark.timeout(int(os.environ.get("NOTIFYQ_FUZZ_TIMEOUT", "240")))
async def test_the_api_answers_every_generated_request_as_its_document_says(
    stack: LocalStack, record_property: Callable[[str, object], None]
) -> None:
    async with aiohttp.ClientSession() as session, session.get(stack.api_url + "/openapi.json") as r:
        doc = await r.json()
    tally = await asyncio.to_thread(fuzz, stack.api_url, doc, API_TOKEN, EXAMPLES, await _known(stack))
    report = tally.report()
    record_property("cases_per_operation", report)  # in CI's JUnit XML
    if path := os.environ.get("NOTIFYQ_FUZZ_REPORT"):  # make fuzz prints it
        await asyncio.to_thread(_keep, Path(path), report)
    print("\n" + report)  # noqa: T201 - the cases per operation are the run's record
    assert not tally.failures, "\n\n".join(tally.failures)
    assert len(tally.statuses) == len([m for item in doc["paths"].values() for m in item])
    for label, answered in tally.statuses.items():  # every operation answered cases of its own
        assert sum(answered.values()) == tally.cases[f"{label} positive"] + tally.cases[f"{label} negative"] > 0
