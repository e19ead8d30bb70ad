"""``notifyq purge``: the bound from --older-than or NOTIFYQ_RETENTION__DAYS, a dry run, a JSON report."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from helpers.rows import create_deliveries
from notifyq import statuses as st
from notifyq.cli import main
from notifyq.store import Store
from notifyq.store.schema import deliveries


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    for var in [v for v in os.environ if v.startswith("NOTIFYQ_") and not v.startswith("NOTIFYQ_TEST_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("NOTIFYQ_DATA_DIR", str(tmp_path))
    return CliRunner()


async def _seed(url: str) -> None:
    """Two batches created long ago: one all delivered then, one still pending."""
    store = await Store.open(url)
    try:
        done = await create_deliveries(store, ["+14155550100", "+14155550101"])
        await create_deliveries(store, ["+14155550102"])
        async with store.engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(done))
                .values(status="delivered", status_rank=st.FINAL_RANK, updated_at=100.0, final_at=100.0)
            )
    finally:
        await store.close()


def test_purge_reports_then_deletes_the_finished_batch(runner: CliRunner, tmp_path: Path) -> None:
    asyncio.run(_seed(f"sqlite+aiosqlite:///{tmp_path / 'notifyq.db'}"))
    dry = runner.invoke(main, ["purge", "--older-than", "30d", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["would_delete"] == {"batches": 1, "deliveries": 2, "events": 0}
    done = runner.invoke(main, ["purge", "--json"], env={"NOTIFYQ_RETENTION__DAYS": "30"})
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report == {"older_than_days": 30.0, "deleted": {"batches": 1, "deliveries": 2, "events": 0}}
    again = runner.invoke(main, ["purge", "--older-than", "2w", "--json"])
    assert json.loads(again.output)["deleted"] == {"batches": 0, "deliveries": 0, "events": 0}
