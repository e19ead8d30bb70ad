"""A batch as the worker needs it: what is the same for every recipient, built once per process."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import quote_plus, urlencode

from notifyq.accounts import AccountDirectory
from notifyq.errors import NotFound, Unsendable, ValidationFailed
from notifyq.intake import smart_encoding_applies
from notifyq.pacing import sender_kind
from notifyq.provider.twilio import Form
from notifyq.segments import segment_count
from notifyq.settings import Settings, TwilioAccount
from notifyq.statuses import Channel
from notifyq.store import BatchRow, Store
from notifyq.template import Template


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """The parts of a batch every send needs, resolved once.

    A batch whose shared parts cannot be sent (text that cannot be encoded, a body that is not a
    template) is still prepared, with ``broken`` saying why: each of its sends then fails alone
    (``form`` raises Unsendable) rather than the chunk, again on every try.
    """

    row: BatchRow
    account: TwilioAccount
    resource: str  # Messages.json or Calls.json
    common_params: tuple[tuple[str, str], ...]
    template: Template | None
    pace_key: str  # the sender the pacing limit belongs to
    pace_kind: str
    callback_base: str  # a delivery's status callback URL is this and its id
    broken: str | None = None  # why no send of this batch can be built
    smart: bool = False  # Twilio smart-encodes the body: its segments are counted on the body it sends
    # the request body is urlencoded from parts: what every send of the batch shares is encoded here, once
    # (urlencode quotes a URL, a phone number or a body with spaces character by character)
    _shared: str = field(init=False, repr=False, compare=False)
    _body: str | None = field(init=False, repr=False, compare=False)  # the encoded body when it has no variables
    _callback: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        template = self.template
        set_ = object.__setattr__  # frozen: the encoded parts are derived once, here
        set_(self, "_shared", "")
        set_(self, "_body", None)
        set_(self, "_callback", "")
        if self.broken is not None:
            return
        try:
            set_(self, "_shared", urlencode(self.common_params))
            set_(self, "_body", quote_plus(template.render(None)) if template and not template.names else None)
            set_(self, "_callback", quote_plus(self.callback_base))
        except UnicodeEncodeError as exc:
            set_(self, "broken", f"the batch's text cannot be encoded as UTF-8 ({exc.reason})")

    @property
    def channel(self) -> Channel:
        """SMS, MMS or call."""
        return self.row.channel

    def form(self, to: str, variables: dict[str, str] | None, delivery_id: str) -> Form:
        """The create request's form items for one recipient (its status callback: ``callback_base`` + id), encoded.

        The encoding is ``urlencode``'s, built from the parts encoded once: quoting maps each character
        on its own, so a value's encoding is the concatenation of its parts' encodings. Unsendable when
        the request cannot be built: the batch is ``broken``, the delivery's own text cannot be
        encoded, or it lacks a variable the body uses.
        """
        if self.broken is not None:
            raise Unsendable(self.broken)
        try:
            return self._form(to, variables, delivery_id)
        except UnicodeEncodeError as exc:
            raise Unsendable(f"its text cannot be encoded as UTF-8 ({exc.reason})") from None
        except KeyError as exc:  # Template.render names the variable
            raise Unsendable(f"missing variable {exc.args[0]!r} used by the body") from None

    def _form(self, to: str, variables: dict[str, str] | None, delivery_id: str) -> Form:
        callback = self.callback_base + delivery_id
        items = [("To", to), *self.common_params]
        parts = ["To=" + quote_plus(to)]
        if self._shared:
            parts.append(self._shared)
        if self.template is not None:
            text = self.template.render(variables or {})
            items.append(("Body", text))
            parts.append("Body=" + (self._body if self._body is not None else quote_plus(text)))
        items.append(("StatusCallback", callback))
        parts.append("StatusCallback=" + self._callback + quote_plus(delivery_id))
        return Form(items, "&".join(parts).encode())

    def body(self, variables: dict[str, str] | None) -> str | None:
        """The rendered body (to match a message found in Twilio's list); Unsendable as ``form`` is."""
        if self.broken is not None:
            raise Unsendable(self.broken)
        try:
            return None if self.template is None else self.template.render(variables or {})
        except KeyError as exc:
            raise Unsendable(f"missing variable {exc.args[0]!r} used by the body") from None

    def cost(self, variables: dict[str, str] | None) -> int:
        """What one send costs its sender's pace: the rendered body's segments (1 for a call, or media alone).

        A send whose body cannot be rendered costs 1: it fails on its own before any request is made.
        """
        if self.channel is Channel.CALL:
            return 1
        try:
            body = self.body(variables)
        except Unsendable:
            return 1
        return segment_count(body, smart=self.smart) if body else 1


class BatchCache:
    """Prepared batches by id, least recently used dropped first."""

    def __init__(
        self, store: Store, settings: Settings, size: int = 1024, *, accounts: AccountDirectory | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        self.accounts = accounts or AccountDirectory(settings, store)
        self.size = size
        self._items: OrderedDict[str, PreparedBatch] = OrderedDict()

    async def get(self, batch_id: str) -> PreparedBatch:
        """The prepared batch, from memory or the store."""
        hit = self._items.get(batch_id)
        if hit is not None:
            self._items.move_to_end(batch_id)
            return hit
        row = await self.store.get_batch(batch_id)
        try:
            account = (await self.accounts.resolve(row.account)).twilio
        except NotFound:
            raise Unsendable(f"batch {row.id}: no Twilio account {row.account!r} is configured") from None
        prepared = prepare(row, self.settings, account)
        self._items[batch_id] = prepared
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return prepared


def prepare(row: BatchRow, settings: Settings, account: TwilioAccount | None = None) -> PreparedBatch:
    """Compile the template of a stored batch, with its account (resolved by the caller, else from settings).

    Unsendable when its account is not configured (any more): nothing of the batch can go until it is.
    """
    content = row.content
    body = content.get("body")
    sender = row.messaging_service_sid or row.sender or ""
    if account is None:
        try:
            account = settings.twilio.account(row.account)
        except KeyError:
            raise Unsendable(f"batch {row.id}: no Twilio account {row.account!r} is configured") from None
    common_params = tuple((str(k), str(v)) for k, v in content.get("params", []))
    asked = dict(common_params).get("SmartEncoded")
    smart = smart_encoding_applies(None if asked is None else asked == "true", row.messaging_service_sid)
    template, broken = None, None
    if body is not None:
        try:
            template = Template.compile(body)
        except ValidationFailed:
            broken = "the batch's stored body is not a valid template"
    return PreparedBatch(
        row=row,
        account=account,
        resource="Calls.json" if row.channel is Channel.CALL else "Messages.json",
        common_params=common_params,
        template=template,
        pace_key=sender,
        pace_kind=sender_kind(row.sender, row.messaging_service_sid),
        callback_base=settings.callback_url("call" if row.channel is Channel.CALL else "message", ""),
        broken=broken,
        smart=smart,
    )
