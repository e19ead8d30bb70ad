"""Pacing shared by every worker: sender schedules and account leases in Redis."""
