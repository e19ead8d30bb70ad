"""The command line, the top layer: ``notifyq`` runs the parts, watches the queue and recovers deliveries.

``commands`` holds the click commands; ``runtime`` the process tuning and the service loop they
share; ``guard`` how a command fails; ``embedded`` the API's embedded Redis; ``status``, ``requeue``,
``callbacks`` and ``demo`` what the operators' commands do; ``twilio`` (with ``connector``) the
connector's actions on a Twilio account; ``preview`` a batch's cost before it is sent. Nothing below
this package imports it.
"""

from notifyq.cli.commands import main
from notifyq.cli.preview import preview
from notifyq.cli.twilio import twilio

main.add_command(twilio)
main.add_command(preview)

__all__ = ["main"]
