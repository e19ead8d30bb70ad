"""Validating a batch request as it is read: every field at once, then the recipients one by one.

The batch is accepted whole or refused whole, with every problem listed (:mod:`notifyq.intake.problems`):
the fields other than ``recipients`` are read first (:mod:`notifyq.intake.fields`); then each recipient
is checked (its number by :mod:`notifyq.intake.phones`, its variables by :mod:`notifyq.intake.text`),
duplicates dropped, and its body's segments counted, as the recipients are read. So a million
recipients can be written to the store in insert blocks as they are accepted, and the batch still refused
whole: the writes go into one transaction that :meth:`BatchIntake.finish` can roll back.

The common recipient, a string or ``{"to": str, "vars": {str: str}}`` whose variable names have been
seen before, takes a path of a few type checks and the fast number check; anything else takes the
full checks, which also say what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, NoReturn

from notifyq.errors import ValidationFailed
from notifyq.intake import phones
from notifyq.intake.fields import FieldReader
from notifyq.intake.problems import Problems, shown
from notifyq.intake.reader import RecipientArray
from notifyq.intake.request import (
    MAX_BODY_CHARS,
    MAX_VALIDITY_S,
    MAX_VARS,
    AcceptedRecipient,
    BatchSpec,
    smart_encoding_applies,
)
from notifyq.intake.text import vars_problem
from notifyq.segments import segment_count

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator

    from notifyq.template import Template

_GOOD_NAMES_KEPT: Final = 1000  # bounded: a request may use a million different names


class BatchIntake:
    """A batch validated as it is read: every field but ``recipients`` at once, the recipients one by one.

    ``spec`` is the batch without its recipients (None when those fields have problems). ``accepted()``
    yields each accepted recipient, with its segment count, for as long as no problem has been found;
    after the first problem it goes on reading only to list the rest. ``finish()`` raises
    ValidationFailed with every problem: write the accepted recipients in a transaction and call
    ``finish()`` before committing it.

    ``recipients`` may be a list or any iterable without a length (e.g. :class:`RecipientArray`, read
    from the request text one element at a time); then the limit is checked while reading.
    """

    def __init__(
        self,
        payload: Mapping[str, Any],
        *,
        default_validity_s: int = MAX_VALIDITY_S,
        max_recipients: int = 1_000_000,
        accounts: Collection[str] | None = None,
        now: datetime | None = None,
    ) -> None:
        self.duplicates_dropped = 0
        self.spec: BatchSpec | None = None
        self.smart = False  # whether segments are counted on the smart-encoded body
        self._problems = problems = Problems()
        self._max = max_recipients
        self._items: Iterable[Any] = []
        self._template: Template | None = None
        self._segments: int | None = None
        # variable names found good: the common recipient's names are checked by looking them up here
        self._good_names: set[str] = set()
        if not isinstance(payload, Mapping):
            problems.add("", "the request body must be a JSON object")
            problems.mark_list_place()
            return
        fields = FieldReader(payload, problems, now or datetime.now(UTC))
        fields.unknown()
        channel = fields.channel()
        account = fields.account(accounts)
        sender, sender_kind = fields.sender()
        mg_sid = fields.messaging_service_sid()
        fields.channel_rules(channel, sender, sender_kind)
        template = fields.body(channel)
        smart = fields.smart_encoded()
        media = fields.media(channel)
        call = fields.call(channel)
        self._items = self._recipient_items(payload.get("recipients"), max_recipients)
        problems.mark_list_place()
        spec_args: dict[str, Any] = {
            "account": account,
            "sender": sender,
            "messaging_service_sid": mg_sid,
            "body_template": None if template is None else template.source,
            "media_urls": media,
            **call,
            "idempotency_key": fields.idempotency_key(),
            "priority": fields.priority(),
            "send_at": fields.send_at(),
            "validity_s": fields.validity_s(default_validity_s),
            "metadata": fields.metadata(),
            "smart_encoded": smart,
        }
        # counted on the body Twilio sends; Smart Encoding changes nothing of a GSM-7 body, so the common
        # body costs no more with it on
        self.smart = channel is not None and channel.is_message and smart_encoding_applies(smart, mg_sid)
        if channel is not None and channel.is_message and template is not None:
            self._template = template
            if not template.has_placeholders:
                self._segments = segment_count(template.render(None), smart=self.smart)
        if not problems.found and channel is not None:
            self.spec = BatchSpec(channel=channel, **spec_args)

    def accepted(self) -> Iterator[AcceptedRecipient]:
        """The accepted recipients, in order, until a problem is found; read only once."""
        problems = self._problems
        template = self._template
        check = template if template is not None and template.has_placeholders else None
        fixed = self._segments or 1
        seen: set[str] = set()
        # through the module: read_e164 is the fast path's seam, and one swapped there is swapped here too
        shape, read, slow = phones.E164_SHAPE.fullmatch, phones.read_e164, phones.to_e164_slow
        listed = isinstance(self._items, list)
        items = iter(self._items)
        count = 0
        for index, item in enumerate(items):
            count += 1
            if count > self._max and not listed:
                self._too_many(items, count)
                return
            if isinstance(item, str):
                raw, variables = item, None
            else:
                entry = self._entry(item, index)
                if entry is None:
                    continue
                raw, variables = entry
            to = read(raw) if shape(raw) else None
            if not to:
                # past the listing cap only the count matters, so skip working out why
                number, reason = slow(raw, problems.listing)
                if number is None:
                    problems.recipient(f"recipients[{index}]", reason, index)
                    continue
                to = number
            if to in seen:
                self.duplicates_dropped += 1
                continue
            seen.add(to)
            segments = fixed if check is None else self._segments_for(check, variables, index)
            if segments and not (problems.general or problems.recipient_count):
                yield to, variables, index, segments
        if count == 0 and not listed:
            problems.add_list_problem("needs at least one recipient")

    def finish(self) -> None:
        """Raise ValidationFailed listing every problem found; call it once ``accepted()`` is exhausted."""
        if self._problems.found or self.spec is None:
            raise ValidationFailed(self._problems.listed())

    def reject(self) -> NoReturn:
        """Read every recipient to list their problems too, then raise (for a batch whose fields are wrong)."""
        for _ in self.accepted():
            pass
        self.finish()
        raise AssertionError  # pragma: no cover - finish() raises when spec is None

    def _recipient_items(self, items: object, max_recipients: int) -> Iterable[Any]:
        """The recipients to read; a list is checked for its length here, before any is read."""
        if isinstance(items, RecipientArray):
            return items  # read lazily: emptiness and the limit are checked while reading
        if not isinstance(items, list):
            self._problems.add("recipients", "is required: a list of numbers or {to, vars} objects")
            return []
        if not items:
            self._problems.add("recipients", "needs at least one recipient")
        elif len(items) > max_recipients:
            # refuse before looking at each one: a huge batch is cheap to turn away
            self._problems.add("recipients", f"has {len(items)} recipients; at most {max_recipients} per batch")
            return []
        return items

    def _too_many(self, rest: Iterator[Any], count: int) -> None:
        """Read the rest of a list that is over the limit only to count it, and refuse it for that alone."""
        for _ in rest:
            count += 1
        self._problems.refuse_list(f"has {count} recipients; at most {self._max} per batch")

    def _segments_for(self, template: Template, variables: dict[str, str] | None, index: int) -> int:
        """Segments of the body rendered for this recipient; 0 (and a problem) when it does not fit."""
        if variables is not None:
            try:
                body = template.render(variables)  # once: its length and its segments
            except KeyError:
                pass
            else:
                if 0 < len(body) <= MAX_BODY_CHARS and not body.isspace():
                    return segment_count(body, smart=self.smart)
                if body.isspace():
                    self._problems.recipient("body", "renders to only whitespace for this recipient", index)
                    return 0
        length = template.rendered_length(variables)
        if length is None:
            names = ", ".join(template.missing(variables))
            self._problems.recipient(f"recipients[{index}].vars", f"missing variable(s) used by body: {names}", index)
        elif length == 0:
            self._problems.recipient("body", "renders to an empty body for this recipient", index)
        else:
            self._problems.recipient(
                "body", f"renders to {length} characters for this recipient; at most {MAX_BODY_CHARS}", index
            )
        return 0

    def _entry(self, item: object, index: int) -> tuple[str, dict[str, str] | None] | None:
        """``(to, vars)`` of a recipient that is not a bare string; None (and a problem) when it is unusable."""
        # the common shape, checked with as little work as possible: {"to": str, "vars": {str: str}}
        if isinstance(item, dict) and isinstance(raw := item.get("to"), str):
            variables = item.get("vars")
            if len(item) == 1 or (len(item) == 2 and "vars" in item):
                if variables is None:
                    return raw, None
                if type(variables) is dict and len(variables) <= MAX_VARS:
                    names = self._good_names
                    for name, value in variables.items():
                        # a printable value holds no text the slow path would refuse (isprintable is one C pass)
                        if (
                            type(value) is not str
                            or len(value) > MAX_BODY_CHARS
                            or not value.isprintable()
                            or name not in names
                        ):
                            break
                    else:
                        return raw, variables
        return self._entry_slow(item, index)

    def _entry_slow(self, item: object, index: int) -> tuple[str, dict[str, str] | None] | None:
        """``_entry`` with every check, for the uncommon shapes and for names not seen yet."""
        where = f"recipients[{index}]"
        if not isinstance(item, dict):
            self._problems.recipient(where, "must be a phone number string or an object with to and vars", index)
            return None
        raw = item.get("to")
        variables = item.get("vars")
        extra = [k for k in item if k not in {"to", "vars"}]
        if extra:
            self._problems.recipient(where, f"unknown field(s) {shown(extra)}; a recipient has to and vars", index)
        elif not isinstance(raw, str):
            self._problems.recipient(where + ".to", "is required: a phone number string", index)
        elif variables is None:
            return raw, None
        elif reason := vars_problem(variables):
            self._problems.recipient(where + ".vars", reason, index)
        else:
            if len(self._good_names) < _GOOD_NAMES_KEPT:
                self._good_names.update(variables)
            return raw, {k: str(v) for k, v in variables.items()}
        return None
