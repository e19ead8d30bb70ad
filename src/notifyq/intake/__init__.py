"""Batch intake: the request's types, its validation, the phone-number checks and the streaming reader."""
