"""Replays end to end: through the API and the command line, paced by the worker like any batch, sent once."""

from __future__ import annotations

import json

import pytest

from helpers import people, run_cli, settle, sms_batch
from notifyq.client import ApiError, Client
from notifyq.testing import API_TOKEN, LocalStack

UNREACHABLE = {"to": "+14155553003", "vars": {"name": "u", "code": "0"}}  # the simulator: undelivered, 30003
INVALID = {"to": "+15005550001", "vars": {"name": "i", "code": "0"}}  # Twilio's magic number: failed, 21211


async def _failed_batch(stack: LocalStack, client: Client) -> str:
    """A settled batch: two delivered, one undelivered (30003, worth a replay), one failed (21211, permanent)."""
    accepted = await client.submit(sms_batch([*people(2), UNREACHABLE, INVALID]))
    status = await settle(stack, client, accepted["id"])
    assert status["by_status"] == {"delivered": 2, "undelivered": 1, "failed": 1}
    return str(accepted["id"])


async def test_a_replay_over_http_sends_once_through_the_worker_and_is_recorded(stack: LocalStack) -> None:
    assert stack.simulator is not None
    async with Client(stack.api_url, token=API_TOKEN) as client:
        batch_id = await _failed_batch(stack, client)
        created = stack.simulator.counters.created
        dry = await client.replay(batch_ids=[batch_id], dry_run=True)
        assert (dry["id"], dry["matched"], dry["replayable"], dry["replayed"]) == (None, 2, 1, 0)
        assert dry["skipped"] == {"permanent_error": 1}
        assert dry["by_error_code"] == [
            {"error_code": 30003, "count": 1, "meaning": dry["by_error_code"][0]["meaning"]}
        ]
        assert [s["to"] for s in dry["sample"]] == ["+1•••3003"]
        assert stack.simulator.counters.created == created  # a dry run sends nothing

        stack.settings.replay.confirm_above = 0
        with pytest.raises(ApiError) as info:
            await client.replay(batch_ids=[batch_id], operator="alice")
        assert (info.value.status, info.value.problem["title"]) == (409, "Confirmation required")
        assert info.value.problem["recipients"] == 1

        replayed = await client.replay(batch_ids=[batch_id], operator="alice", confirm=True)
        assert (replayed["replayed"], len(replayed["batch_ids"])) == (1, 1)
        status = await settle(stack, client, replayed["batch_ids"][0])
        assert status["by_status"] == {"undelivered": 1}  # the simulator's number fails again, as it should
        assert stack.simulator.counters.created == created + 1

        overlapping = await client.replay(error_codes=[30003, 21211], confirm=True)
        assert (overlapping["replayed"], overlapping["skipped"]) == (1, {"already_replayed": 2})
        record = await client.replay_record(replayed["id"])
    assert record["ran_by"] == "api:alice (token environment token [env])"
    assert API_TOKEN not in record["ran_by"]
    assert (record["matched"], record["replayed"], record["batch_ids"]) == (2, 1, replayed["batch_ids"])
    assert record["filter"]["batch_ids"] == [batch_id]


async def test_a_replay_from_the_command_line_asks_for_yes_over_the_threshold(stack: LocalStack) -> None:
    assert stack.simulator is not None
    stack.settings.replay.confirm_above = 0
    async with Client(stack.api_url, token=API_TOKEN) as client:
        batch_id = await _failed_batch(stack, client)
        created = stack.simulator.counters.created
        code, out = await run_cli(stack.settings, "replay", batch_id, "--dry-run", "--json")
        assert code == 0, out
        dry = json.loads(out)
        assert (dry["matched"], dry["replayable"], dry["needs_confirmation"]) == (2, 1, True)

        code, out = await run_cli(stack.settings, "replay", batch_id)
        assert code == 2, out
        assert "--yes" in out
        assert "Traceback" not in out

        code, out = await run_cli(stack.settings, "replay", batch_id, "--yes", "--json")
        assert code == 0, out
        answer = json.loads(out)
        assert answer["ran_by"].startswith("cli:")
        assert (answer["replayed"], len(answer["batch_ids"])) == (1, 1)
        await settle(stack, client, answer["batch_ids"][0])
        assert stack.simulator.counters.created == created + 1

        code, out = await run_cli(
            stack.settings, "replay", batch_id, "-y", "--error-code", "21211", "--error-code", "30003"
        )
        assert code == 0, out
        assert "replayed 1" in out  # the permanent code, named: sent; the replayed one: skipped
        assert "already_replayed" in out
