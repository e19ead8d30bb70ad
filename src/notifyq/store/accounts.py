"""The account registry's rows: the Twilio accounts added at run time (secrets sealed by the caller)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from notifyq import statuses as st
from notifyq.errors import Conflict
from notifyq.store.engine import Database
from notifyq.store.schema import accounts, batches, deliveries


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """One registry row; ``secrets`` is the sealed token, opened only by the resolver."""

    name: str
    kind: str
    account_sid: str
    api_key_sid: str | None
    secrets: str | None
    max_in_flight: int
    calls_per_second: float
    connect_state: str | None
    created_at: float
    updated_at: float
    deauthorized_at: float | None
    sender_groups: dict[str, Any] | None = None  # name -> {rate, senders}


def _record(m: Any) -> AccountRecord:
    return AccountRecord(**dict(m))


class AccountRecords(Database):
    """The accounts table."""

    async def insert_account(self, values: dict[str, Any]) -> AccountRecord:
        """Add an account; Conflict when its name or its AccountSid is taken."""
        now = time.time()
        row = {"created_at": now, "updated_at": now, "deauthorized_at": None, **values}
        try:
            async with self._write() as conn:
                await conn.execute(insert(accounts), [row])
        except IntegrityError:
            raise Conflict(f"an account named {values['name']!r} or with SID {values['account_sid']} exists") from None
        return _record(row)

    async def account_records(self) -> list[AccountRecord]:
        """Every registered account, by name."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(accounts).order_by(accounts.c.name))).mappings().all()
        return [_record(r) for r in rows]

    async def reseal_accounts(self, reseal: Callable[[str], str]) -> int:
        """Replace every account's sealed secrets with ``reseal(sealed)``, in one transaction; how many."""
        async with self._write() as conn:
            rows = (await conn.execute(select(accounts.c.name, accounts.c.secrets))).all()
            sealed = [(name, secrets) for name, secrets in rows if secrets]
            now = time.time()
            for name, secrets in sealed:
                await conn.execute(
                    update(accounts).where(accounts.c.name == name).values(secrets=reseal(secrets), updated_at=now)
                )
        return len(sealed)

    async def account_record(self, name_or_sid: str) -> AccountRecord | None:
        """The account with this name or AccountSid."""
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        select(accounts).where(
                            or_(accounts.c.name == name_or_sid, accounts.c.account_sid == name_or_sid)
                        )
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else _record(row)

    async def set_sender_groups(self, name: str, groups: dict[str, Any]) -> AccountRecord | None:
        """Replace an account's sender groups; None when there is no such account."""
        async with self._write() as conn:
            await conn.execute(
                update(accounts).where(accounts.c.name == name).values(sender_groups=groups, updated_at=time.time())
            )
            row = (await conn.execute(select(accounts).where(accounts.c.name == name))).mappings().first()
        return None if row is None else _record(row)

    async def delete_account(self, name: str) -> bool:
        """Remove an account from the registry; False when there was none."""
        async with self._write() as conn:
            result = await conn.execute(delete(accounts).where(accounts.c.name == name))
        return int(result.rowcount) == 1

    async def authorize_connect(self, values: dict[str, Any]) -> AccountRecord:
        """Record a Connect authorisation: a new account, or one authorised again (its grant is back)."""
        now = time.time()
        async with self._write() as conn:
            found = (
                (await conn.execute(select(accounts).where(accounts.c.account_sid == values["account_sid"])))
                .mappings()
                .first()
            )
            if found is None:
                row = {"created_at": now, "updated_at": now, "deauthorized_at": None, **values}
                await conn.execute(insert(accounts), [row])
                return _record(row)
            if found["kind"] != "connect":
                raise Conflict(f"{values['account_sid']} is registered as a {found['kind']} account, not Connect")
            changes = {"connect_state": values.get("connect_state"), "deauthorized_at": None, "updated_at": now}
            await conn.execute(update(accounts).where(accounts.c.name == found["name"]).values(**changes))
            return _record({**found, **changes})

    async def deauthorize_account(self, account_sid: str, reason: str) -> tuple[bool, int]:
        """Mark a Connect account deauthorised and cancel its deliveries not yet claimed, in one transaction.

        Returns whether the account is known, and how many deliveries were canceled. A delivery
        already claimed finishes as it goes (the pacer's pause and Twilio refuse its send).
        """
        now = time.time()
        async with self._write() as conn:
            known = await conn.execute(
                update(accounts)
                .where(accounts.c.account_sid == account_sid)
                .values(deauthorized_at=now, updated_at=now)
            )
            of_account = select(batches.c.id).where(batches.c.account_sid == account_sid).scalar_subquery()
            canceled = await conn.execute(
                update(deliveries)
                .where(deliveries.c.batch_id.in_(of_account), deliveries.c.status.in_(st.CLAIMABLE))
                .values(
                    status=st.CANCELED,
                    status_rank=st.FINAL_RANK,
                    final_at=now,
                    updated_at=now,
                    error_message=reason,
                )
            )
        return int(known.rowcount) > 0, int(canceled.rowcount)

    async def cancel_for_account(self, delivery_ids: list[str], reason: str) -> int:
        """Cancel these deliveries, if not yet claimed, because their account may send no more."""
        now = time.time()
        async with self._write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(delivery_ids), deliveries.c.status.in_(st.CLAIMABLE))
                .values(
                    status=st.CANCELED, status_rank=st.FINAL_RANK, final_at=now, updated_at=now, error_message=reason
                )
            )
        return int(result.rowcount)
