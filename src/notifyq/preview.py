"""What a batch would cost, before it is sent: segments, encoding and price per recipient and in all.

``preview_batch`` reads a batch with the same :class:`~notifyq.intake.BatchIntake` a submit uses, so it
counts the same segments (smart-encoded when the batch is) and refuses the same input with the same
problems; it stores nothing and queues nothing. Prices come from ``settings.pricing``: SMS per segment,
MMS per message, calls per call, by the recipient's country (``default`` for the others). The first
``shown`` recipients are listed one by one; the rest are only counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import phonenumbers

from notifyq.segments import analyse
from notifyq.statuses import Channel
from notifyq.template import Template

if TYPE_CHECKING:
    from notifyq.intake import BatchIntake
    from notifyq.settings import PricingSettings

SHOWN: Final = 100  # recipients listed one by one in a preview; the rest are counted
UNKNOWN_COUNTRY: Final = "ZZ"  # phonenumbers' code for a number of no country


def country_of(number: str) -> str:
    """The ISO 3166 country of an E.164 number, as ``phonenumbers.region_code_for_number`` finds it.

    A calling code that only one country uses (most of them) decides without parsing the number.
    """
    for digits in (1, 2, 3):  # calling codes are prefix-free: the first that is one is the one
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(number[1 : 1 + digits]))
        if regions:
            if len(regions) == 1:
                return regions[0]
            break
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return UNKNOWN_COUNTRY
    return region or UNKNOWN_COUNTRY


def _price(table: dict[str, Decimal], country: str) -> Decimal | None:
    return table.get(country, table.get("default"))


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


@dataclass(slots=True)
class _Country:
    recipients: int = 0
    segments: int = 0
    price: Decimal | None = field(default=Decimal(0))


def preview_batch(intake: BatchIntake, pricing: PricingSettings, *, shown: int = SHOWN) -> dict[str, Any]:
    """The preview of a batch whose fields ``intake`` has read; ValidationFailed as a submit would raise it."""
    spec = intake.spec
    if spec is None:
        intake.reject()
    channel = spec.channel
    template = None if spec.body_template is None else Template.compile(spec.body_template)
    fixed = None if template is None or template.names else analyse(template.render(None), smart=intake.smart)
    table = {Channel.SMS: pricing.sms, Channel.MMS: pricing.mms, Channel.CALL: pricing.call}[channel]
    listed: list[dict[str, Any]] = []
    countries: dict[str, _Country] = {}
    encodings: dict[str, int] = {}
    total = segments = unpriced = 0
    price = Decimal(0)
    for to, variables, index, cost in intake.accepted():
        total += 1
        country = country_of(to)
        encoding = None
        if channel.is_message:
            segments += cost
            info = fixed
            if info is None and template is not None:
                info = analyse(template.render(variables), smart=intake.smart)
            if info is not None:
                encoding = info.encoding
                encodings[encoding] = encodings.get(encoding, 0) + 1
        unit = _price(table, country)
        # SMS is billed per segment; MMS per message and calls per call
        each = None if unit is None else unit * cost if channel is Channel.SMS else unit
        if each is None:
            unpriced += 1
        else:
            price += each
        sums = countries.setdefault(country, _Country())
        sums.recipients += 1
        sums.segments += cost if channel.is_message else 0
        sums.price = None if each is None or sums.price is None else sums.price + each
        if len(listed) < shown:
            listed.append({
                "index": index,
                "to": to,
                "country": country,
                "segments": cost if channel.is_message else None,
                "encoding": encoding,
                "price": _money(each),
            })  # fmt: skip
    intake.finish()
    return {
        "dry_run": True,
        "channel": channel.value,
        "smart_encoded": intake.smart,
        "total": total,
        "duplicates_dropped": intake.duplicates_dropped,
        "segments": segments if channel.is_message else None,
        "encodings": encodings,
        "price": _money(price),
        "currency": pricing.currency,
        "unpriced": unpriced,
        "by_country": {
            code: {
                "recipients": c.recipients,
                "segments": c.segments if channel.is_message else None,
                "price": _money(c.price),
            }
            for code, c in sorted(countries.items())
        },
        "recipients": listed,
        "recipients_not_shown": total - len(listed),
    }
