"""The examples in the OpenAPI document: requests intake accepts, and answers as the handlers write them.

``tests/api/test_openapi_intake.py`` sends each request example to intake; ``tests/api/test_openapi.py``
checks each example against its schema.
"""

from __future__ import annotations

from typing import Any, Final

from notifyq.api.spec import EXAMPLE_ID

BATCH_EXAMPLES: Final[dict[str, dict[str, Any]]] = {
    "sms": {
        "summary": "An SMS with a variable per recipient",
        "value": {
            "channel": "sms",
            "from": "+15005550006",
            "body": "Hi {name}, your code is {code}",
            "recipients": [
                {"to": "+14155550100", "vars": {"name": "Ann", "code": "123456"}},
                {"to": "+44 7911 123456", "vars": {"name": "Bo", "code": 654321}},
            ],
            "idempotency_key": "welcome-2026-11-22",
            "priority": "urgent",
            "validity_s": 600,
            "metadata": {"campaign": "welcome"},
        },
    },
    "mms": {
        "summary": "An MMS through a Messaging Service",
        "value": {
            "channel": "mms",
            "messaging_service_sid": "MG" + "0123456789abcdef" * 2,
            "body": "Your ticket",
            "media_url": ["https://example.com/ticket.png"],
            "recipients": ["+14155550101", "+12125550123"],
        },
    },
    "call": {
        "summary": "A call that plays TwiML",
        "value": {
            "channel": "call",
            "from": "+15005550006",
            "twiml": "<Response><Say>Your table is ready.</Say></Response>",
            "status_callback_event": ["initiated", "completed"],
            "machine_detection": "Enable",
            "timeout": 30,
            "recipients": ["+14155550102"],
        },
    },
}
ACCEPTED_EXAMPLE: Final = {
    "id": EXAMPLE_ID,
    "created": True,
    "channel": "sms",
    "total": 2,
    "duplicates_dropped": 0,
    "priority": "urgent",
    "send_at": None,
    "valid_until": 1795341600.0,
    "idempotency_key": "welcome-2026-11-22",
    "links": {"self": f"/v1/batches/{EXAMPLE_ID}"},
}
STATUS_EXAMPLE: Final = {
    "id": EXAMPLE_ID,
    "channel": "sms",
    "total": 2,
    "final": 1,
    "done": False,
    "by_status": {"delivered": 1, "sent": 1},
    "by_error_code": {},
    "duplicates_dropped": 0,
    "created_at": 1795338000.0,
    "enqueued_at": 1795338000.1,
    "canceled_at": None,
    "meta": {"campaign": "welcome"},
}
