"""What makes two submissions under one idempotency key the same request: a digest of the canonical request.

A batch created with an idempotency key stores this digest. The key coming back with the same
request answers that batch again (200); with another request it is refused (409), rather than
answering a batch that is not what the client asked for this time.

The digest is a SHA-256 over the request as validated, less the key itself:

- every member but ``recipients`` and ``idempotency_key``, as canonical JSON (sorted keys, no
  spaces, ``null`` members left out: null counts as absent);
- then the recipients as accepted: the E.164 number and the variables (integers as their text), in
  order, later copies of a number dropped.

So the same request written differently (member order, spacing, ``+1 415 555 2000`` for
``+14155552000``, ``5`` for ``"5"``) has the same digest, and anything that changes what is sent
gives another. The recipients are added as they are read, an insert block at a time, so a million of them
never exist at once here either.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from notifyq.intake.request import AcceptedRecipient

# JSON that is the same for equal values: the C encoder, sorted keys, no spaces, ASCII only
_CANONICAL: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
_NOT_DIGESTED: Final = frozenset({"recipients", "idempotency_key"})


class RequestDigest:
    """The digest of one batch request, fed its recipients as intake accepts them."""

    __slots__ = ("_sha",)

    def __init__(self, payload: Mapping[str, Any]) -> None:
        """Start with the request's members; ``payload`` has been validated (every value is plain JSON)."""
        members = {k: v for k, v in payload.items() if k not in _NOT_DIGESTED and v is not None}
        self._sha = hashlib.sha256(_CANONICAL.encode(members).encode())
        self._sha.update(b"\n")

    def add(self, recipients: Iterable[AcceptedRecipient]) -> None:
        """Add accepted recipients, in order; where the blocks split changes nothing."""
        text = _CANONICAL.encode([[to, variables] for to, variables, _, _ in recipients])
        if len(text) > 2:  # "[a,b]" is added as "a,b," so that [a] then [b] digests as [a,b]
            self._sha.update(text[1:-1].encode())
            self._sha.update(b",")

    def hexdigest(self) -> str:
        """64 hex digits."""
        return self._sha.hexdigest()
