"""notifyq: bulk SMS/MMS and voice notifications through Twilio."""

from notifyq.client import ApiError, Client
from notifyq.producer import Producer, Submitted
from notifyq.settings import Settings

__all__ = ["ApiError", "Client", "Producer", "Settings", "Submitted"]
__version__ = "0.1.0"
