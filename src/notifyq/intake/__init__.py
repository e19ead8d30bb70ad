"""Batch intake: a request's text read, its fields and recipients validated, and its digest.

The producer reads a request with :func:`load_request` (or :func:`decode_json`), validates it with a
:class:`BatchIntake` as its recipients are stored, and binds an idempotency key to it with a
:class:`RequestDigest`. Every problem is reported at once; text that is not JSON notifyq can read
raises one of :data:`MALFORMED_JSON`.
"""

from notifyq.intake.digest import RequestDigest
from notifyq.intake.problems import shown
from notifyq.intake.reader import MALFORMED_JSON, RecipientsNotLast, decode_json, load_request
from notifyq.intake.request import AcceptedRecipient, BatchSpec, Priority, smart_encoding_applies
from notifyq.intake.text import text_problem
from notifyq.intake.validate import BatchIntake

__all__ = [
    "MALFORMED_JSON",
    "AcceptedRecipient",
    "BatchIntake",
    "BatchSpec",
    "Priority",
    "RecipientsNotLast",
    "RequestDigest",
    "decode_json",
    "load_request",
    "shown",
    "smart_encoding_applies",
    "text_problem",
]
