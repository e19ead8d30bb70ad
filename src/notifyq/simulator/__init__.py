"""A Twilio API simulator over real HTTP, for the demo, tests and benchmarks.

It serves Messages and Calls (create, fetch, list), Accounts (fetch, list, subaccounts, status),
Applications (create, fetch, list, update, delete), Connect Apps and Authorized Connect Apps under
``/2010-04-01/``, with HTTP Basic auth as Twilio does it (Auth Token, API keys, parent accounts,
Connect App owners). It validates forms and list filters against Twilio's OpenAPI description,
answers magic test numbers like Twilio, injects latency, 429s, 5xxs (also on list requests
alone) and dropped connections, and sends signed status callbacks (optionally duplicated, out
of order or lost) and Connect deauthorisation callbacks. ``/_sim/...`` lets other processes
read its records and counters, change its rates and account statuses, and act as a Connect
customer (authorise or deauthorise a Connect App).

::

    sim = Simulator(SimulatorConfig(accounts={"AC...": SimAccount(auth_token="...")}))
    base_url = await sim.start(host="127.0.0.1", port=0)
    ...
    await sim.stop()
"""

from notifyq.simulator.app import make_app
from notifyq.simulator.config import SimAccount, SimulatorConfig
from notifyq.simulator.core import Simulator, run
from notifyq.simulator.records import CallRecord, MessageRecord, SimCounters

__all__ = [
    "CallRecord",
    "MessageRecord",
    "SimAccount",
    "SimCounters",
    "Simulator",
    "SimulatorConfig",
    "make_app",
    "run",
]
