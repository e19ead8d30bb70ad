"""The TwiML Application notifyq keeps in each account: made once, then updated in place, and only when it drifted.

The Application is found by its FriendlyName (``twilio.application_name``). Its message status
callbacks (``MessageStatusCallback``, ``SmsStatusCallback``) and its voice ``StatusCallback`` point at
our receiver under ``public_base_url``. Provisioning again with nothing changed sends no update: the
answer says so (``changed`` False), so it is safe in a deploy step that runs on every release.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from notifyq.provider.resources import TwilioResources
from notifyq.settings import TwilioAccount

# Twilio's form parameter -> the Application resource's field
RESOURCE_FIELDS: Final = {
    "FriendlyName": "friendly_name",
    "MessageStatusCallback": "message_status_callback",
    "SmsStatusCallback": "sms_status_callback",
    "StatusCallback": "status_callback",
    "StatusCallbackMethod": "status_callback_method",
}


@dataclass(frozen=True, slots=True)
class Provisioned:
    """What provisioning did: ``created``, ``updated`` (with the fields that changed) or ``unchanged``."""

    application_sid: str
    action: str
    changed_fields: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """Whether anything at Twilio changed."""
        return self.action != "unchanged"

    def as_dict(self) -> dict[str, Any]:
        """The JSON answer of ``notifyq twilio provision --json``."""
        return {
            "application_sid": self.application_sid,
            "changed": self.changed,
            "action": self.action,
            "changed_fields": list(self.changed_fields),
        }


def application_fields(public_base_url: str, friendly_name: str) -> dict[str, str]:
    """The Application's wanted parameters: its name, and our receiver's status URLs."""
    base = public_base_url.rstrip("/")
    return {
        "FriendlyName": friendly_name,
        "MessageStatusCallback": f"{base}/twilio/message-status",
        "SmsStatusCallback": f"{base}/twilio/message-status",
        "StatusCallback": f"{base}/twilio/call-status",
        "StatusCallbackMethod": "POST",
    }


def drifted(resource: dict[str, Any], wanted: dict[str, str]) -> dict[str, str]:
    """The wanted parameters whose value in ``resource`` differs (Twilio's methods compared without case)."""
    out = {}
    for param, value in wanted.items():
        have = resource.get(RESOURCE_FIELDS[param])
        same = str(have).upper() == value.upper() if param.endswith("Method") and have else have == value
        if not same:
            out[param] = value
    return out


async def provision_application(
    resources: TwilioResources, account: TwilioAccount, wanted: dict[str, str]
) -> Provisioned:
    """Create the Application named ``wanted["FriendlyName"]``, or bring the oldest of that name to ``wanted``."""
    found = await resources.list_applications(account, friendly_name=wanted["FriendlyName"])
    if not found:
        made = await resources.create_application(account, wanted)
        return Provisioned(str(made["sid"]), "created", tuple(wanted))
    current = found[0]  # Twilio lists Applications oldest first: the one made first is kept
    changes = drifted(current, wanted)
    if not changes:
        return Provisioned(str(current["sid"]), "unchanged", ())
    await resources.update_application(account, str(current["sid"]), changes)
    return Provisioned(str(current["sid"]), "updated", tuple(changes))
