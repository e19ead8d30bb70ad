"""A batch as the worker needs it: what is the same for every recipient, built once per process."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from notifyq.queue.limiter import sender_kind
from notifyq.settings import Settings, TwilioAccount
from notifyq.statuses import Channel
from notifyq.store.records import BatchRow
from notifyq.store.repo import Store
from notifyq.template import Template


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """The parts of a batch every send needs, resolved once."""

    row: BatchRow
    account: TwilioAccount
    resource: str  # Messages.json or Calls.json
    common_params: tuple[tuple[str, str], ...]
    template: Template | None
    pace_key: str  # the sender the pacing limit belongs to
    pace_kind: str

    @property
    def channel(self) -> Channel:
        """SMS, MMS or call."""
        return self.row.channel

    def params(self, to: str, variables: dict[str, str] | None, callback_url: str) -> list[tuple[str, str]]:
        """The form items of the create request for one recipient."""
        items = [("To", to), *self.common_params]
        if self.template is not None:
            items.append(("Body", self.template.render(variables or {})))
        items.append(("StatusCallback", callback_url))
        return items

    def body(self, variables: dict[str, str] | None) -> str | None:
        """The rendered body (to match a message found in Twilio's list)."""
        return None if self.template is None else self.template.render(variables or {})


class BatchCache:
    """Prepared batches by id, least recently used dropped first."""

    def __init__(self, store: Store, settings: Settings, size: int = 1024) -> None:
        self.store = store
        self.settings = settings
        self.size = size
        self._items: OrderedDict[str, PreparedBatch] = OrderedDict()

    async def get(self, batch_id: str) -> PreparedBatch:
        """The prepared batch, from memory or the store."""
        hit = self._items.get(batch_id)
        if hit is not None:
            self._items.move_to_end(batch_id)
            return hit
        prepared = prepare(await self.store.get_batch(batch_id), self.settings)
        self._items[batch_id] = prepared
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return prepared


def prepare(row: BatchRow, settings: Settings) -> PreparedBatch:
    """Resolve the account and compile the template of a stored batch."""
    content = row.content
    body = content.get("body")
    sender = row.messaging_service_sid or row.sender or ""
    return PreparedBatch(
        row=row,
        account=settings.twilio.account(row.account),
        resource="Calls.json" if row.channel is Channel.CALL else "Messages.json",
        common_params=tuple((str(k), str(v)) for k, v in content.get("params", [])),
        template=Template.compile(body) if body is not None else None,
        pace_key=sender,
        pace_kind=sender_kind(row.sender, row.messaging_service_sid),
    )
