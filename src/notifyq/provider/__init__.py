"""Talking to Twilio: the REST client, request signatures, and the connector's resources and raw requests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from notifyq.lazy import lazy_exports

if TYPE_CHECKING:
    from notifyq.provider.form import FORM_TYPES, TooManyFields, parse_form
    from notifyq.provider.provision import Provisioned, application_fields, provision_application
    from notifyq.provider.resources import TwilioResources
    from notifyq.provider.rest import Answer, Gate, TwilioRest
    from notifyq.provider.retry import RetryOptions
    from notifyq.provider.signature import compute_signature, is_valid_signature
    from notifyq.provider.twilio import Form, TwilioClient, record_created
    from notifyq.provider.twilio_values import SID, SID_CHARS, bounded, fetched_report, status_report

__all__ = [
    "FORM_TYPES",
    "SID",
    "SID_CHARS",
    "Answer",
    "Form",
    "Gate",
    "Provisioned",
    "RetryOptions",
    "TooManyFields",
    "TwilioClient",
    "TwilioResources",
    "TwilioRest",
    "application_fields",
    "bounded",
    "compute_signature",
    "fetched_report",
    "is_valid_signature",
    "parse_form",
    "provision_application",
    "record_created",
    "status_report",
]

# each name loads its module on first use: the simulator signs and reads forms without loading the
# REST client, or the store that ``twilio_values`` reports to
_HOMES: dict[str, str] = {
    "Answer": "notifyq.provider.rest",
    "FORM_TYPES": "notifyq.provider.form",
    "Gate": "notifyq.provider.rest",
    "Provisioned": "notifyq.provider.provision",
    "RetryOptions": "notifyq.provider.retry",
    "TwilioResources": "notifyq.provider.resources",
    "TwilioRest": "notifyq.provider.rest",
    "application_fields": "notifyq.provider.provision",
    "provision_application": "notifyq.provider.provision",
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
