"""Durable records: batches, deliveries, events (SQLAlchemy Core, Alembic)."""
