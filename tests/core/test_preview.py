"""A batch's preview: segments, encoding and price per recipient and in all, refused as a submit is."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import phonenumbers
import pytest

from notifyq.errors import ValidationFailed
from notifyq.intake import BatchIntake
from notifyq.preview import country_of, preview_batch
from notifyq.segments import analyse
from notifyq.settings import PricingSettings

PRICES = PricingSettings(
    sms={"US": Decimal("0.0083"), "GB": Decimal("0.0524"), "default": Decimal("0.07")},
    mms={"US": Decimal("0.02")},
    call={"US": Decimal("0.014")},
)
US, GB, FR = "+14155550101", "+447400123456", "+33612345678"
CURLY = "Your order\u2019s ready \u2014 see you soon"


def preview(payload: dict[str, Any], pricing: PricingSettings = PRICES, shown: int = 100) -> dict[str, Any]:
    return preview_batch(BatchIntake(payload), pricing, shown=shown)


def sms(**fields: Any) -> dict[str, Any]:
    return {"channel": "sms", "from": "+15005550006", "body": "Hi {name}", "recipients": []} | fields


def test_each_recipient_and_the_batch_are_counted_and_priced() -> None:
    recipients = [
        {"to": US, "vars": {"name": "Ann"}},
        {"to": GB, "vars": {"name": "Zo\u00eb " + "x" * 70}},  # e-diaeresis is not GSM-7: UCS-2, 2 segments
        {"to": FR, "vars": {"name": "Jo"}},
        {"to": US, "vars": {"name": "again"}},  # a duplicate, dropped as a submit drops it
    ]
    answer = preview(sms(recipients=recipients))
    assert [(r["to"], r["country"], r["segments"], r["encoding"], r["price"]) for r in answer["recipients"]] == [
        (US, "US", 1, "GSM-7", "0.0083"),
        (GB, "GB", 2, "UCS-2", "0.1048"),
        (FR, "FR", 1, "GSM-7", "0.07"),  # the default price
    ]
    assert answer["segments"] == 4 == sum(r["segments"] for r in answer["recipients"])
    assert (answer["total"], answer["duplicates_dropped"]) == (3, 1)
    assert answer["encodings"] == {"GSM-7": 2, "UCS-2": 1}
    assert (answer["price"], answer["currency"], answer["unpriced"]) == ("0.1831", "USD", 0)
    assert answer["by_country"]["GB"] == {"recipients": 1, "segments": 2, "price": "0.1048"}
    assert answer["dry_run"] is True


def test_smart_encoding_lowers_the_count_and_the_price() -> None:
    body = CURLY + " " + "x" * 110  # GSM-7 once smart-encoded: 144 characters, 1 segment or 3
    plain = preview(sms(body=body, recipients=[US]))
    smart = preview(sms(body=body, recipients=[US], smart_encoded=True))
    assert (plain["smart_encoded"], plain["segments"], plain["encodings"]) == (False, 3, {"UCS-2": 1})
    assert (smart["smart_encoded"], smart["segments"], smart["encodings"]) == (True, 1, {"GSM-7": 1})
    assert analyse(body, smart=True).segments == 1
    assert Decimal(smart["price"]) * 3 == Decimal(plain["price"])


def test_the_listing_is_bounded_and_the_rest_counted() -> None:
    numbers = [f"+1415555{2000 + i:04d}" for i in range(7)]
    answer = preview(sms(body="Hi", recipients=numbers), shown=3)
    assert [r["index"] for r in answer["recipients"]] == [0, 1, 2]
    assert (answer["recipients_not_shown"], answer["total"], answer["segments"]) == (4, 7, 7)
    assert answer["price"] == str(Decimal("0.0083") * 7)


def test_a_country_without_a_price_is_unpriced() -> None:
    answer = preview(sms(body="Hi", recipients=[US, FR]), PricingSettings(sms={"US": Decimal("0.01")}))
    assert [r["price"] for r in answer["recipients"]] == ["0.01", None]
    assert (answer["price"], answer["unpriced"]) == ("0.01", 1)
    assert answer["by_country"]["FR"]["price"] is None


def test_mms_is_priced_per_message_and_calls_per_call() -> None:
    mms = {"channel": "mms", "from": "+15005550006", "body": "x" * 300, "media_url": ["https://e.com/a.png"]}
    answer = preview(mms | {"recipients": [US]})
    assert (answer["segments"], answer["price"]) == (2, "0.02")
    call = {"channel": "call", "from": "+15005550006", "url": "https://e.com/t.xml", "recipients": [US, FR]}
    answer = preview(call)
    assert (answer["segments"], answer["encodings"], answer["price"], answer["unpriced"]) == (None, {}, "0.014", 1)
    assert answer["recipients"][0] | {} == {
        "index": 0, "to": US, "country": "US", "segments": None, "encoding": None, "price": "0.014"
    }  # fmt: skip


def test_bad_input_is_refused_with_the_problems_a_submit_lists() -> None:
    payload = sms(body="Hi {name}", recipients=["+1 nope", {"to": US}], smart_encoded="yes")
    with pytest.raises(ValidationFailed) as previewed:
        preview(payload)
    with pytest.raises(ValidationFailed) as submitted:
        BatchIntake(payload).reject()
    assert previewed.value.problems == submitted.value.problems
    assert len(previewed.value.problems) == 3


EXAMPLES = {r: n for r in sorted(phonenumbers.SUPPORTED_REGIONS) if (n := phonenumbers.example_number(r)) is not None}


@pytest.mark.parametrize("region", EXAMPLES)
def test_the_country_is_phonenumbers_region(region: str) -> None:
    example = EXAMPLES[region]
    number = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    assert country_of(number) == phonenumbers.region_code_for_number(example)
