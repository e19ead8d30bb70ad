"""Twilio accounts: the registry (kept in the store, secrets sealed) and the environment's, resolved as one.

========== =========================================================================================
model      the kinds of account (Auth Token, API key, Connect), ``NewAccount`` and the resolved ``Account``
sealing    the registry's secrets encrypted at rest (Fernet), and where the key comes from
directory  ``AccountDirectory.resolve``: the one lookup by name or AccountSid, refreshed as it runs
registry   add (after a credential check), remove, Connect's authorise and deauthorise
========== =========================================================================================
"""

from __future__ import annotations

from notifyq.accounts.directory import AccountDirectory, ConnectNotConfigured
from notifyq.accounts.model import Account, AccountKind, NewAccount, settings_account
from notifyq.accounts.registry import DEAUTHORIZED_REASON, AccountRegistry, CredentialCheck
from notifyq.accounts.sealing import KEY_FILE, SecretBox, SecretKeyError, secret_box

__all__ = [
    "DEAUTHORIZED_REASON",
    "KEY_FILE",
    "Account",
    "AccountDirectory",
    "AccountKind",
    "AccountRegistry",
    "ConnectNotConfigured",
    "CredentialCheck",
    "NewAccount",
    "SecretBox",
    "SecretKeyError",
    "secret_box",
    "settings_account",
]
