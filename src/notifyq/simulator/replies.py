"""Error answers: Twilio-shaped ones on Twilio's routes, problem details on the ``/_sim`` controls.

``TwilioReply`` is a signal inside the simulator, not part of notifyq's exception tree: a handler
raises it and the app turns it into the JSON body Twilio's 2010 API sends,
``{"code", "message", "more_info", "status"}``. It never reaches notifyq's own code.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Final

from aiohttp import web


class TwilioReply(Exception):
    """An error answer from the simulated Twilio: HTTP status, Twilio code and message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        """The JSON body Twilio sends with this error."""
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }

    def response(self) -> web.Response:
        """The aiohttp response carrying this error."""
        headers = {}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return web.json_response(self.body(), status=self.status, headers=headers)


def bad_request(code: int, message: str) -> TwilioReply:
    """A 400 answer."""
    return TwilioReply(400, code, message)


# create-time refusals used by more than one module
TOO_MANY_REQUESTS = (429, 20429, "Too Many Requests")
SERVER_ERRORS = ((500, 20500, "Internal Server Error"), (503, 20503, "Service Unavailable"))


PROBLEM_JSON: Final = "application/problem+json"


def problem(status: int, detail: str) -> web.Response:
    """An RFC 9457 ``application/problem+json`` answer from a ``/_sim`` control route."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    return web.json_response(body, status=status, content_type=PROBLEM_JSON)
