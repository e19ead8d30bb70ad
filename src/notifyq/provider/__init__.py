"""Talking to Twilio: the REST client and request signatures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from notifyq.lazy import lazy_exports

if TYPE_CHECKING:
    from notifyq.provider.form import FORM_TYPES, TooManyFields, parse_form
    from notifyq.provider.signature import compute_signature, is_valid_signature
    from notifyq.provider.twilio import Form, TwilioClient, record_created
    from notifyq.provider.twilio_values import SID, SID_CHARS, bounded, fetched_report, status_report

__all__ = [
    "FORM_TYPES",
    "SID",
    "SID_CHARS",
    "Form",
    "TooManyFields",
    "TwilioClient",
    "bounded",
    "compute_signature",
    "fetched_report",
    "is_valid_signature",
    "parse_form",
    "record_created",
    "status_report",
]

# each name loads its module on first use: the simulator signs and reads forms without loading the
# REST client, or the store that ``twilio_values`` reports to
_HOMES: dict[str, str] = {
    "FORM_TYPES": "notifyq.provider.form",
    "Form": "notifyq.provider.twilio",
    "SID": "notifyq.provider.twilio_values",
    "SID_CHARS": "notifyq.provider.twilio_values",
    "TooManyFields": "notifyq.provider.form",
    "TwilioClient": "notifyq.provider.twilio",
    "bounded": "notifyq.provider.twilio_values",
    "compute_signature": "notifyq.provider.signature",
    "fetched_report": "notifyq.provider.twilio_values",
    "is_valid_signature": "notifyq.provider.signature",
    "parse_form": "notifyq.provider.form",
    "record_created": "notifyq.provider.twilio",
    "status_report": "notifyq.provider.twilio_values",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
