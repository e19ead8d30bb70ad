"""Talking to Twilio: the REST client and request signatures."""
