"""The producer API and the status-callback receiver (aiohttp)."""
