"""A Twilio API simulator over real HTTP, for the demo, tests and benchmarks."""
