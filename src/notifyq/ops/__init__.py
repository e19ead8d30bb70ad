"""Operators' tools: CLI, metrics, demo, requeue."""
