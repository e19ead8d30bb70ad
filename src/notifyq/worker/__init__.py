"""The arq worker that sends deliveries to Twilio."""
