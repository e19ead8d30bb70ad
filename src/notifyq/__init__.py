"""notifyq: bulk SMS/MMS and voice notifications through Twilio."""

from notifyq.settings import Settings

__all__ = ["Settings"]
__version__ = "0.1.0"
